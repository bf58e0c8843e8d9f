//! Prometheus metrics (`GET /metrics`), one registry per process (tests run several
//! primaries in one): counters and histograms the domains record as things happen, and fleet
//! gauges set from memory (the node cache, the job counts) just before each scrape is
//! encoded, so a scrape never reads the database.
//!
//! The `prometheus` crate gives the classic text format (what `promtool check metrics`
//! checks) and the standard `process_*` metrics.

use prometheus::{
    Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Buckets for calls across the network (probes, dispatches), 1 ms to 10 s.
const NETWORK_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Buckets for answering an HTTP request, 0.5 ms to 10 s.
const HTTP_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Every metric this process serves.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Authenticated heartbeats taken by this primary.
    pub heartbeats_received: IntCounter,
    /// Health probes by `result` (`success`, `failure`).
    pub health_probe_duration: HistogramVec,
    /// Node status changes this primary decided, by the status changed `to`.
    pub node_status_changes: IntCounterVec,
    /// Handing a job to its node, until the node took it.
    pub job_dispatch_duration: Histogram,
    /// Job output stored by this primary.
    pub job_log_bytes: IntCounter,
    /// Requests answered, by method, route template and status code.
    pub http_request_duration: HistogramVec,
    /// Alert delivery attempts by channel kind and how they ended (`delivered`, `pending`:
    /// to be retried, `failed`: for good).
    pub alert_deliveries: IntCounterVec,
    nodes: IntGaugeVec,
    jobs: IntGaugeVec,
    job_queue_depth: IntGauge,
    leader: IntGauge,
}

/// The fleet as this primary holds it in memory, for the gauges.
#[derive(Debug, Clone, Default)]
pub struct FleetGauges {
    /// Nodes by status, every status named (zero or not).
    pub nodes: Vec<(&'static str, i64)>,
    /// Jobs by state, every state named.
    pub jobs: Vec<(&'static str, i64)>,
    /// Jobs waiting for a node.
    pub queue_depth: i64,
    pub leader: bool,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let metrics = Metrics {
            heartbeats_received: IntCounter::new(
                "fleetdeck_heartbeats_received_total",
                "Authenticated heartbeats taken by this primary.",
            )?,
            health_probe_duration: HistogramVec::new(
                HistogramOpts::new(
                    "fleetdeck_health_probe_duration_seconds",
                    "Health probes of secondaries by this primary, by result (success, failure).",
                )
                .buckets(NETWORK_BUCKETS.to_vec()),
                &["result"],
            )?,
            node_status_changes: IntCounterVec::new(
                Opts::new(
                    "fleetdeck_node_status_changes_total",
                    "Node status changes this primary decided, by the new status.",
                ),
                &["to"],
            )?,
            job_dispatch_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "fleetdeck_job_dispatch_duration_seconds",
                    "Time to hand a job to its node, until the node took it.",
                )
                .buckets(NETWORK_BUCKETS.to_vec()),
            )?,
            job_log_bytes: IntCounter::new(
                "fleetdeck_job_log_bytes_total",
                "Bytes of job output stored by this primary.",
            )?,
            http_request_duration: HistogramVec::new(
                HistogramOpts::new(
                    "fleetdeck_http_request_duration_seconds",
                    "HTTP requests answered, by method, route template and status code.",
                )
                .buckets(HTTP_BUCKETS.to_vec()),
                &["method", "route", "status"],
            )?,
            alert_deliveries: IntCounterVec::new(
                Opts::new(
                    "fleetdeck_alert_deliveries_total",
                    "Alert delivery attempts by the leader, by channel kind and outcome (delivered, pending, failed).",
                ),
                &["kind", "outcome"],
            )?,
            nodes: IntGaugeVec::new(Opts::new("fleetdeck_nodes", "Nodes by status."), &["status"])?,
            jobs: IntGaugeVec::new(Opts::new("fleetdeck_jobs", "Jobs kept, by state."), &["state"])?,
            job_queue_depth: IntGauge::new("fleetdeck_job_queue_depth", "Jobs queued, waiting for a node.")?,
            leader: IntGauge::new("fleetdeck_leader", "1 on the primary that leads, 0 on the others.")?,
            registry,
        };
        let build_info = IntGaugeVec::new(
            Opts::new("fleetdeck_build_info", "This build's version; always 1."),
            &["version"],
        )?;
        build_info.with_label_values(&[crate::VERSION]).set(1);
        let collectors: [Box<dyn prometheus::core::Collector>; 12] = [
            Box::new(metrics.heartbeats_received.clone()),
            Box::new(metrics.health_probe_duration.clone()),
            Box::new(metrics.node_status_changes.clone()),
            Box::new(metrics.job_dispatch_duration.clone()),
            Box::new(metrics.job_log_bytes.clone()),
            Box::new(metrics.http_request_duration.clone()),
            Box::new(metrics.alert_deliveries.clone()),
            Box::new(metrics.nodes.clone()),
            Box::new(metrics.jobs.clone()),
            Box::new(metrics.job_queue_depth.clone()),
            Box::new(metrics.leader.clone()),
            Box::new(build_info),
        ];
        for collector in collectors {
            metrics.registry.register(collector)?;
        }
        #[cfg(target_os = "linux")]
        metrics.registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        Ok(metrics)
    }

    /// Counts a status change (`to`).
    pub fn status_changed(&self, to: &str) {
        self.node_status_changes.with_label_values(&[to]).inc();
    }

    /// The text exposition of every metric, with the fleet gauges set to `fleet`.
    pub fn render(&self, fleet: &FleetGauges) -> String {
        for (status, n) in &fleet.nodes {
            self.nodes.with_label_values(&[*status]).set(*n);
        }
        for (state, n) in &fleet.jobs {
            self.jobs.with_label_values(&[*state]).set(*n);
        }
        self.job_queue_depth.set(fleet.queue_depth);
        self.leader.set(i64::from(fleet.leader));
        let mut out = Vec::new();
        // Encoding into memory fails only on a metric the registry would not have taken.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_names_every_metric_with_its_help_and_the_fleet_as_given() {
        let metrics = Metrics::new().unwrap();
        metrics.heartbeats_received.inc();
        metrics.status_changed("offline");
        metrics.health_probe_duration.with_label_values(&["success"]).observe(0.003);
        let text = metrics.render(&FleetGauges {
            nodes: vec![("online", 3), ("offline", 1)],
            jobs: vec![("succeeded", 2)],
            queue_depth: 5,
            leader: true,
        });
        for line in [
            "fleetdeck_heartbeats_received_total 1",
            "fleetdeck_node_status_changes_total{to=\"offline\"} 1",
            "fleetdeck_health_probe_duration_seconds_count{result=\"success\"} 1",
            "fleetdeck_nodes{status=\"online\"} 3",
            "fleetdeck_nodes{status=\"offline\"} 1",
            "fleetdeck_jobs{state=\"succeeded\"} 2",
            "fleetdeck_job_queue_depth 5",
            "fleetdeck_leader 1",
            &format!("fleetdeck_build_info{{version=\"{}\"}} 1", crate::VERSION),
            "# HELP fleetdeck_job_log_bytes_total Bytes of job output stored by this primary.",
            "# TYPE fleetdeck_health_probe_duration_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
    }
}
