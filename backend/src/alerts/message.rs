//! What a message says: the webhook body (documented in OPERATIONS "Alerts", stable), and
//! the short human text every other kind gets, written once when the message is decided.

use serde::{Deserialize, Serialize};

use crate::alerts::model::{MessageState, RuleRef};
use crate::clock::Timestamp;
use crate::nodes::NodeStatus;

/// The webhook JSON of one message; the chat kinds and email show its `title` and `text`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Notification {
    /// The message's ID: the same in every retry and on every channel (for deduplication).
    pub id: String,
    /// The rule's event; `node_online` for "back online".
    pub event: String,
    pub state: MessageState,
    pub rule: RuleRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeFacts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<JobFacts>,
    /// The measured percentage (threshold events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    pub at: Timestamp,
    pub title: String,
    pub text: String,
    /// The node's or job's page in the web UI.
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct NodeFacts {
    pub id: String,
    pub name: String,
    pub labels: Vec<String>,
    pub status: NodeStatus,
    pub previous_status: Option<NodeStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct JobFacts {
    pub id: String,
    pub name: Option<String>,
    pub status: String,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
}

/// Several messages for one channel sent as one (a channel's `summary_over`).
#[derive(Debug, Clone, Serialize)]
pub struct Summary<'a> {
    pub event: &'static str,
    pub count: usize,
    pub at: Timestamp,
    pub title: String,
    pub text: String,
    pub alerts: &'a [Notification],
}

/// Shown in a summary text before "and N more".
const SUMMARY_LINES: usize = 20;

impl<'a> Summary<'a> {
    pub fn of(alerts: &'a [Notification], at: Timestamp) -> Summary<'a> {
        let mut text: Vec<String> =
            alerts.iter().take(SUMMARY_LINES).map(|a| format!("• {}", a.title)).collect();
        if alerts.len() > SUMMARY_LINES {
            text.push(format!("… and {} more", alerts.len() - SUMMARY_LINES));
        }
        Summary {
            event: "summary",
            count: alerts.len(),
            at,
            title: format!("{} Fleetdeck alerts", alerts.len()),
            text: text.join("\n"),
            alerts,
        }
    }
}

/// A duration for people: "4m 12s", "2h 5m", "40s".
pub fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// A percentage for people: "97.3%".
pub fn percent(value: f64) -> String {
    format!("{value:.1}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        use std::time::Duration;
        assert_eq!(human_duration(Duration::from_secs(40)), "40s");
        assert_eq!(human_duration(Duration::from_secs(252)), "4m 12s");
        assert_eq!(human_duration(Duration::from_secs(7500)), "2h 5m");
        assert_eq!(human_duration(Duration::from_secs(90_000)), "1d 1h");
    }

    #[test]
    fn a_summary_lists_the_first_twenty_and_counts_the_rest() {
        let one = |i: usize| Notification {
            id: i.to_string(),
            event: "node_offline".into(),
            state: MessageState::Firing,
            rule: RuleRef { id: "r".into(), name: "down".into() },
            node: None,
            job: None,
            value: None,
            threshold: None,
            at: Timestamp(0),
            title: format!("node-{i} is offline"),
            text: String::new(),
            url: String::new(),
        };
        let alerts: Vec<Notification> = (0..25).map(one).collect();
        let summary = Summary::of(&alerts, Timestamp(0));
        assert_eq!(summary.count, 25);
        assert_eq!(summary.title, "25 Fleetdeck alerts");
        assert!(summary.text.starts_with("• node-0 is offline\n"));
        assert!(summary.text.ends_with("… and 5 more"));
    }
}
