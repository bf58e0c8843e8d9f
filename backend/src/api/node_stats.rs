//! `GET /api/nodes/{id}/stats?since=`: one node's stats over time, for the UI's charts.
//!
//! The primary keeps at most one sample per node per minute for `STATS_RETENTION` (14 days
//! by default). A long window is averaged down to at most `MAX_POINTS` points, so a chart
//! never receives more than it can draw.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::api::PathId;
use crate::api::state::AppState;
use crate::clock::Timestamp;
use crate::error::{AppError, AppResult};
use crate::nodes::NodeId;
use crate::nodes::repo::StatsSample;

/// The window when `since` is not given.
const DEFAULT_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// Most points one answer carries.
const MAX_POINTS: usize = 720;
/// Most samples read for one answer (two weeks at one a minute, with room).
const MAX_SAMPLES: i64 = 25_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// RFC 3339; default 24 hours ago.
    #[param(format = DateTime)]
    since: Option<String>,
}

/// One point of a node's stats history (an average when samples were merged).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct StatsPoint {
    pub at: Timestamp,
    pub cpu_percent: f64,
    pub load_one: f64,
    #[cfg_attr(test, ts(type = "number"))]
    pub memory_used: u64,
    #[cfg_attr(test, ts(type = "number"))]
    pub memory_total: u64,
    #[cfg_attr(test, ts(type = "number"))]
    pub disk_used: u64,
    #[cfg_attr(test, ts(type = "number"))]
    pub disk_total: u64,
    /// Network throughput, bytes per second received and sent.
    pub net_rx: f64,
    pub net_tx: f64,
    /// Disk throughput, bytes per second read and written.
    pub disk_read: f64,
    pub disk_write: f64,
    /// The hottest sensor, °C (none where the node has no sensors).
    pub temperature: Option<f64>,
}

/// The answer: the window asked for and its points, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct StatsHistory {
    pub node_id: NodeId,
    pub since: Timestamp,
    pub items: Vec<StatsPoint>,
}

#[utoipa::path(
    get,
    path = "/api/nodes/{id}/stats",
    operation_id = "node_stats",
    tag = "nodes",
    params(crate::api::PathId, StatsQuery),
    responses((status = 200, body = StatsHistory)),
)]
pub async fn history(
    state: web::Data<AppState>,
    PathId(id): PathId,
    query: web::Query<StatsQuery>,
) -> AppResult<HttpResponse> {
    let id = NodeId::parse(&id).map_err(|e| AppError::validation("id", e))?;
    let registry = state.registry()?;
    let since = match query.into_inner().since {
        Some(raw) => parse_time(&raw).map_err(|e| AppError::validation("since", e))?,
        None => registry.now().minus(DEFAULT_WINDOW),
    };
    let samples = registry.samples(&id, since, MAX_SAMPLES).await?;
    let items = downsample(&samples, MAX_POINTS);
    Ok(HttpResponse::Ok().json(StatsHistory { node_id: id, since, items }))
}

fn parse_time(raw: &str) -> Result<Timestamp, String> {
    let t = humantime::parse_rfc3339_weak(raw.trim())
        .map_err(|_| "must be an RFC 3339 time, e.g. 2026-11-23T18:00:00Z".to_string())?;
    let ms =
        t.duration_since(std::time::UNIX_EPOCH).map_err(|_| "must be after 1970".to_string())?.as_millis();
    Ok(Timestamp(i64::try_from(ms).unwrap_or(i64::MAX)))
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// At most `max` points: consecutive runs of samples averaged into one point each.
fn downsample(samples: &[StatsSample], max: usize) -> Vec<StatsPoint> {
    if samples.is_empty() || max == 0 {
        return Vec::new();
    }
    let per_point = samples.len().div_ceil(max);
    samples
        .chunks(per_point)
        .map(|chunk| {
            #[expect(clippy::cast_precision_loss, reason = "a chunk is a few dozen samples")]
            let n = chunk.len() as f64;
            let mean_f = |f: fn(&StatsSample) -> f64| chunk.iter().map(f).sum::<f64>() / n;
            let mean_i = |f: fn(&StatsSample) -> i64| {
                let sum: i128 = chunk.iter().map(|s| i128::from(f(s))).sum();
                to_u64(i64::try_from(sum / i128::try_from(chunk.len()).unwrap_or(1)).unwrap_or(i64::MAX))
            };
            StatsPoint {
                at: Timestamp(chunk.last().map_or(0, |s| s.at)),
                cpu_percent: mean_f(|s| s.cpu_percent),
                load_one: mean_f(|s| s.load_one),
                memory_used: mean_i(|s| s.memory_used),
                memory_total: mean_i(|s| s.memory_total),
                disk_used: mean_i(|s| s.disk_used),
                disk_total: mean_i(|s| s.disk_total),
                net_rx: mean_f(|s| s.net_rx),
                net_tx: mean_f(|s| s.net_tx),
                disk_read: mean_f(|s| s.disk_read),
                disk_write: mean_f(|s| s.disk_write),
                // The hottest of the merged samples that had a sensor.
                temperature: chunk.iter().filter_map(|s| s.temperature).reduce(f64::max),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: i64, cpu: f64) -> StatsSample {
        StatsSample {
            node_id: "n".into(),
            at,
            cpu_percent: cpu,
            load_one: cpu / 100.0,
            memory_used: at * 10,
            memory_total: 1000,
            disk_used: 5,
            disk_total: 10,
            net_rx: cpu * 1000.0,
            net_tx: 0.0,
            disk_read: 0.0,
            disk_write: cpu,
            // Every other sample from a sensor.
            temperature: (at % 2 == 0).then_some(40.0 + f64::from(u8::try_from(at % 10).unwrap_or(0))),
        }
    }

    #[test]
    fn short_windows_are_kept_whole_and_long_ones_averaged_down() {
        let few: Vec<_> = (0..3).map(|i| sample(i, 10.0)).collect();
        assert_eq!(downsample(&few, 720).len(), 3);
        assert_eq!(downsample(&few, 720)[2].at, Timestamp(2));

        let many: Vec<_> = (0..1000).map(|i| sample(i, if i % 2 == 0 { 0.0 } else { 50.0 })).collect();
        let points = downsample(&many, 100);
        assert_eq!(points.len(), 100);
        assert!(points.iter().all(|p| (p.cpu_percent - 25.0).abs() < 1e-9));
        assert_eq!(points[0].memory_used, 45, "mean of 0, 10, …, 90");
        assert!((points[0].net_rx - 25_000.0).abs() < 1e-6, "throughput is averaged");
        assert_eq!(points[0].temperature, Some(48.0), "the hottest of the merged samples with a sensor");
        assert_eq!(points[99].at, Timestamp(999));
        assert!(downsample(&[], 10).is_empty());
    }

    #[test]
    fn since_is_an_rfc3339_time() {
        assert_eq!(parse_time("2023-11-14T22:13:20.123Z").unwrap(), Timestamp(1_700_000_000_123));
        assert!(parse_time("yesterday").is_err());
    }
}
