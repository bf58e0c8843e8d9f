//! The leader's delivery loop: takes the deliveries that are due from the outbox (claiming
//! them for a minute, in a transaction fenced by the leader's epoch), sends them — up to
//! `CONCURRENCY` at once, or as one summary per channel when more wait than the channel's
//! `summary_over` — and records each attempt, fenced again. A failed attempt is tried again
//! with exponential backoff and jitter (or after the receiver's `Retry-After`) for
//! `RETRY_FOR`; a refusal is final. A primary that stops or loses the lead mid-send leaves
//! its claims to lapse, and the next leader sends them: a message is lost never, and sent
//! twice only if a leader dies between the receiver's answer and the write of it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use rand::Rng as _;
use tokio::sync::Notify;

use crate::alerts::message::Notification;
use crate::alerts::model::DeliveryStatus;
use crate::alerts::repo::{self, Attempted, DeliveryParts};
use crate::alerts::send::{Content, Outcome, Sender, Target};
use crate::clock::{SharedClock, Timestamp};
use crate::db::Db;
use crate::error::AppResult;
use crate::nodes::Registry;
use crate::secrets::MasterKey;

/// Failed deliveries are tried again for this long before they are given up.
pub const RETRY_FOR: Duration = Duration::from_secs(24 * 3600);
/// The first retry waits about this long; each next one twice as long …
const FIRST_RETRY: Duration = Duration::from_secs(5);
/// … up to this.
const LONGEST_RETRY: Duration = Duration::from_secs(30 * 60);
/// A receiver's `Retry-After` is honoured up to this.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);
/// Deliveries taken for one round.
const BATCH: i64 = 1000;
/// Sends running at once.
const CONCURRENCY: usize = 64;
/// A claimed delivery is out of reach for this long (longer than any attempt).
const CLAIM_FOR: Duration = Duration::from_secs(60);
/// With nothing to do, the loop looks again after this (or when woken).
const IDLE: Duration = Duration::from_secs(1);

pub struct Outbox {
    db: Db,
    clock: SharedClock,
    registry: Arc<Registry>,
    master_key: MasterKey,
    sender: Sender,
    wake: Arc<Notify>,
}

/// What one attempt sends: to a channel, one message or several as one summary.
struct Batch {
    target: Option<Target>,
    /// The channel's kind (`webhook`, `email`, …), for the metrics.
    kind: String,
    deliveries: Vec<(String, Timestamp, Notification)>,
    summary: bool,
}

impl Outbox {
    pub fn new(
        db: Db,
        clock: SharedClock,
        registry: Arc<Registry>,
        master_key: MasterKey,
        sender: Sender,
        wake: Arc<Notify>,
    ) -> Outbox {
        Outbox { db, clock, registry, master_key, sender, wake }
    }

    /// Delivers while this primary leads.
    pub async fn run(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let cluster = self.registry.cluster().clone();
        cluster
            .leadership()
            .during_terms(&shutdown, || {
                let outbox = self.clone();
                async move {
                    loop {
                        match outbox.run_once().await {
                            Ok(n) if n > 0 => continue,
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "delivering alerts failed"),
                        }
                        tokio::select! {
                            () = outbox.wake.notified() => {}
                            () = tokio::time::sleep(IDLE) => {}
                        }
                    }
                }
            })
            .await;
    }

    /// One round: claims what is due, sends it, records how it went; returns how many
    /// deliveries it tried.
    pub async fn run_once(&self) -> AppResult<usize> {
        let fence = self.registry.leader_fence()?;
        let now = self.clock.now();
        let claim_fence = fence.clone();
        let due = self
            .db
            .transaction(move |conn| -> AppResult<Vec<DeliveryParts>> {
                crate::cluster::check_fence(conn, &claim_fence)?;
                Ok(repo::claim_due(conn, now, now.plus(CLAIM_FOR), BATCH)?)
            })
            .await?;
        if due.is_empty() {
            return Ok(0);
        }
        let tried = due.len();
        let batches = self.group(due);
        let sender = &self.sender;
        let results: Vec<Vec<Attempted>> = futures_util::stream::iter(batches)
            .map(|batch| async move {
                let outcome = match &batch.target {
                    None => Outcome::Refused {
                        error: "the channel's secrets cannot be opened with this master key".into(),
                        status: None,
                    },
                    Some(target) if batch.summary => {
                        let all: Vec<Notification> = batch.deliveries.iter().map(|d| d.2.clone()).collect();
                        sender.send(target, Content::Summary(&all), now).await
                    }
                    Some(target) => sender.send(target, Content::One(&batch.deliveries[0].2), now).await,
                };
                let at = self.clock.now();
                let attempts: Vec<Attempted> = batch
                    .deliveries
                    .iter()
                    .map(|(id, created, _)| attempted(id, *created, &outcome, at))
                    .collect();
                let deliveries = &self.registry.metrics().alert_deliveries;
                for a in &attempts {
                    deliveries.with_label_values(&[batch.kind.as_str(), a.status.as_str()]).inc();
                }
                attempts
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let attempts: Vec<Attempted> = results.into_iter().flatten().collect();
        for a in attempts.iter().filter(|a| a.status != DeliveryStatus::Delivered) {
            tracing::warn!(delivery = %a.id, status = a.status.as_str(), error = a.error.as_deref().unwrap_or_default(), "alert not delivered");
        }
        self.db
            .transaction(move |conn| -> AppResult<()> {
                crate::cluster::check_fence(conn, &fence)?;
                for a in &attempts {
                    repo::record_attempt(conn, a)?;
                }
                Ok(())
            })
            .await?;
        Ok(tried)
    }

    /// Splits claimed deliveries into batches: a channel with more waiting than its
    /// `summary_over` gets one summary; every other delivery goes on its own.
    fn group(&self, due: Vec<DeliveryParts>) -> Vec<Batch> {
        let mut by_channel: BTreeMap<String, Vec<DeliveryParts>> = BTreeMap::new();
        for d in due {
            by_channel.entry(d.2.id.clone()).or_default().push(d);
        }
        let mut batches = Vec::new();
        for (_, deliveries) in by_channel {
            let channel = &deliveries[0].2;
            let target = super::open_target(&self.master_key, channel);
            let summary_over = channel.summary_over.and_then(|n| usize::try_from(n).ok());
            let parsed: Vec<(String, Timestamp, Notification)> = deliveries
                .iter()
                .filter_map(|(d, m, _)| {
                    let n = serde_json::from_str(&m.body).ok()?;
                    Some((d.id.clone(), Timestamp(d.created_at), n))
                })
                .collect();
            let kind = channel.kind.clone();
            if summary_over.is_some_and(|n| parsed.len() > n) {
                batches.push(Batch { target, kind, deliveries: parsed, summary: true });
            } else {
                batches.extend(parsed.into_iter().map(|d| Batch {
                    target: target.clone(),
                    kind: kind.clone(),
                    deliveries: vec![d],
                    summary: false,
                }));
            }
        }
        batches
    }
}

/// An attempt's record: delivered; failed for good (refused, or retried for `RETRY_FOR`);
/// or pending again after a backoff.
fn attempted(id: &str, created: Timestamp, outcome: &Outcome, at: Timestamp) -> Attempted {
    let record =
        |status, next_try_at, error| Attempted { id: id.to_owned(), status, next_try_at, error, at: at.0 };
    match outcome {
        Outcome::Delivered { .. } => record(DeliveryStatus::Delivered, None, None),
        Outcome::Refused { error, .. } => record(DeliveryStatus::Failed, None, Some(error.clone())),
        Outcome::Retry { error, .. } if at.since(created) >= RETRY_FOR => {
            record(DeliveryStatus::Failed, None, Some(format!("gave up after 24h of retries; last: {error}")))
        }
        Outcome::Retry { error, after, .. } => {
            let wait = after.map_or_else(|| backoff(at.since(created)), |a| a.min(LONGEST_RETRY_AFTER));
            record(DeliveryStatus::Pending, Some(at.plus(wait).0), Some(error.clone()))
        }
    }
}

/// The wait before the next try, doubling with the time already spent trying (so it needs
/// no attempt count): 5 s, 10 s, 20 s … up to 30 min, each ±20 %.
fn backoff(trying_for: Duration) -> Duration {
    let mut wait = FIRST_RETRY;
    while wait < LONGEST_RETRY && wait <= trying_for {
        wait *= 2;
    }
    let wait = wait.min(LONGEST_RETRY);
    wait.mul_f64(rand::thread_rng().gen_range(0.8..1.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_seconds_to_half_an_hour_and_stop_after_a_day() {
        let within =
            |d: Duration, lo: u64, hi: u64| d >= Duration::from_secs(lo) && d <= Duration::from_secs(hi);
        assert!(within(backoff(Duration::ZERO), 4, 6));
        assert!(within(backoff(Duration::from_secs(7)), 8, 12));
        assert!(within(backoff(Duration::from_secs(3600)), 1440, 2160));
        let retry = Outcome::Retry { error: "HTTP 503".into(), status: Some(503), after: None };
        let created = Timestamp(0);
        let a = attempted("d", created, &retry, created.plus(Duration::from_secs(60)));
        assert_eq!(a.status, DeliveryStatus::Pending);
        let a = attempted("d", created, &retry, created.plus(RETRY_FOR));
        assert_eq!(a.status, DeliveryStatus::Failed);
        assert!(a.error.unwrap().starts_with("gave up after 24h"));
    }

    #[test]
    fn retry_after_is_honoured_and_a_refusal_is_final() {
        let created = Timestamp(0);
        let at = Timestamp(1000);
        let slow = Outcome::Retry {
            error: "HTTP 429".into(),
            status: Some(429),
            after: Some(Duration::from_secs(120)),
        };
        assert_eq!(attempted("d", created, &slow, at).next_try_at, Some(at.plus(Duration::from_secs(120)).0));
        let refused = Outcome::Refused { error: "HTTP 404".into(), status: Some(404) };
        let a = attempted("d", created, &refused, at);
        assert_eq!((a.status, a.next_try_at), (DeliveryStatus::Failed, None));
    }
}
