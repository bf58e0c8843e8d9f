//! The health rules, as pure functions of failures and time (SPEC §6):
//!
//! | consecutive failures | checked every | status      |
//! |----------------------|---------------|-------------|
//! | 0–2                  | each tick     | online      |
//! | 3–5                  | 2 min         | offline     |
//! | 6–10                 | 5 min         | offline     |
//! | 11–20                | 15 min        | unreachable |
//! | 21+                  | 30 min        | unreachable |
//!
//! A node never reached stays `pending` (backing off all the same) until its first success.

use std::time::Duration;

use crate::clock::Timestamp;
use crate::nodes::NodeStatus;

const MINUTE: Duration = Duration::from_secs(60);

/// How long to wait between checks of a node with `failures` consecutive failures.
pub fn check_every(failures: u32, tick: Duration) -> Duration {
    match failures {
        0..=2 => tick,
        3..=5 => 2 * MINUTE,
        6..=10 => 5 * MINUTE,
        11..=20 => 15 * MINUTE,
        _ => 30 * MINUTE,
    }
}

/// The status a reached node has after `failures` consecutive failures.
pub fn status_for(failures: u32) -> NodeStatus {
    match failures {
        0..=2 => NodeStatus::Online,
        3..=10 => NodeStatus::Offline,
        _ => NodeStatus::Unreachable,
    }
}

/// Whether a node is due for a check at `now`. Below three failures, every tick is.
pub fn is_due(failures: u32, last_check: Option<Timestamp>, now: Timestamp, tick: Duration) -> bool {
    if failures < 3 {
        return true;
    }
    last_check.is_none_or(|last| now >= last.plus(check_every(failures, tick)))
}

/// The health part of a node's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    pub status: NodeStatus,
    pub failures: u32,
}

impl Health {
    /// After a successful probe or a heartbeat.
    pub fn after_success(self) -> Health {
        Health { status: NodeStatus::Online, failures: 0 }
    }

    /// After a failed probe. A node never reached stays `pending`.
    pub fn after_failure(self) -> Health {
        let failures = self.failures.saturating_add(1);
        let status = match self.status {
            NodeStatus::Pending => NodeStatus::Pending,
            _ => status_for(failures),
        };
        Health { status, failures }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock as _, ManualClock};

    const TICK: Duration = Duration::from_secs(30);

    #[test]
    fn the_whole_table_of_failures_status_and_interval() {
        let expected: &[(u32, NodeStatus, u64)] = &[
            (0, NodeStatus::Online, 30),
            (1, NodeStatus::Online, 30),
            (2, NodeStatus::Online, 30),
            (3, NodeStatus::Offline, 120),
            (5, NodeStatus::Offline, 120),
            (6, NodeStatus::Offline, 300),
            (10, NodeStatus::Offline, 300),
            (11, NodeStatus::Unreachable, 900),
            (20, NodeStatus::Unreachable, 900),
            (21, NodeStatus::Unreachable, 1800),
            (1000, NodeStatus::Unreachable, 1800),
        ];
        for &(failures, status, secs) in expected {
            assert_eq!(status_for(failures), status, "status at {failures}");
            assert_eq!(check_every(failures, TICK), Duration::from_secs(secs), "interval at {failures}");
        }
    }

    #[test]
    fn a_dead_node_walks_the_table_driven_by_an_injected_clock() {
        let clock = ManualClock::starting_now();
        let mut health = Health { status: NodeStatus::Online, failures: 0 };
        let mut last_check = None;
        let mut seen = Vec::new();
        // Simulate two hours of 30 s ticks against a node that never answers.
        for _ in 0..(2 * 3600 / 30) {
            let now = clock.now();
            if is_due(health.failures, last_check, now, TICK) {
                health = health.after_failure();
                last_check = Some(now);
                seen.push((health.failures, health.status, now));
            }
            clock.advance(TICK);
        }
        let at = |n: u32| seen.iter().find(|(f, _, _)| *f == n).copied().unwrap();
        assert_eq!(at(2).1, NodeStatus::Online);
        assert_eq!(at(3).1, NodeStatus::Offline);
        assert_eq!(at(11).1, NodeStatus::Unreachable);
        // Gaps between checks follow the table.
        let gap = |n: u32| at(n + 1).2.since(at(n).2);
        assert_eq!(gap(1), TICK);
        assert_eq!(gap(3), Duration::from_secs(120));
        assert_eq!(gap(6), Duration::from_secs(300));
        assert_eq!(gap(11), Duration::from_secs(900));
        // One success resets everything.
        assert_eq!(health.after_success(), Health { status: NodeStatus::Online, failures: 0 });
    }

    #[test]
    fn a_never_reached_node_stays_pending_while_backing_off() {
        let mut health = Health { status: NodeStatus::Pending, failures: 0 };
        for _ in 0..25 {
            health = health.after_failure();
        }
        assert_eq!(health, Health { status: NodeStatus::Pending, failures: 25 });
        assert_eq!(health.after_success().status, NodeStatus::Online);
    }

    #[test]
    fn due_only_after_the_backoff_has_passed() {
        let t = Timestamp(1_000_000);
        assert!(is_due(2, Some(t), t, TICK));
        assert!(!is_due(3, Some(t), t.plus(Duration::from_secs(119)), TICK));
        assert!(is_due(3, Some(t), t.plus(Duration::from_secs(120)), TICK));
        assert!(is_due(21, None, t, TICK));
    }
}
