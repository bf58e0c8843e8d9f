//! `GET /metrics`: what a scrape shows after real heartbeats, probes and jobs, checked by
//! `promtool check metrics` (scripts/test-promtool.sh; `FLEETDECK_PROMTOOL`).

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{NodeProcess, SECONDS, TestPrimary, eventually, free_port, parse_env};

/// The scrape's text.
pub async fn scrape(url: &str, bearer: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(format!("{url}/metrics"));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The value of the sample `series` (name and labels exactly as printed), if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `promtool <args>` given `stdin`: its complaints, if any. With `CI=true` a missing
/// promtool is a failure, never a skip.
fn promtool(args: &[&str], stdin: &str) -> Result<(), String> {
    let promtool = std::env::var("FLEETDECK_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let child = Command::new(&promtool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("promtool ({promtool}) cannot run: {e}; scripts/test-promtool.sh provides it")
        }
        Err(e) => {
            eprintln!("NOTE: promtool not checked ({promtool}: {e}); run scripts/test-promtool.sh");
            return Ok(());
        }
    };
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // `check metrics` says nothing when all is well; `check rules` says SUCCESS.
    let complaint =
        said.lines().any(|l| !l.trim().is_empty() && !l.contains("SUCCESS") && !l.starts_with("Checking"));
    if out.status.success() && !complaint { Ok(()) } else { Err(said) }
}

#[tokio::test]
async fn a_scrape_after_heartbeats_probes_and_jobs_shows_them_and_passes_promtool() {
    let primary = TestPrimary::spawn().await;
    let added = primary.add_node("metrics-1", &format!("http://127.0.0.1:{}", free_port())).await;
    let node_id = added["node"]["id"].as_str().unwrap().to_owned();
    let mut vars = parse_env(added["env"].as_str().unwrap());
    vars.push(("HEARTBEAT_INTERVAL".into(), "1s".into()));
    let _secondary = NodeProcess::spawn(&vars).await;
    primary.wait_status(&node_id, "online", SECONDS).await;
    // A node nothing answers for: its probes fail.
    primary.add_node("metrics-silent", "http://127.0.0.1:9").await;
    let ok = primary
        .post("/api/jobs", json!({ "command": "echo hello; echo oops >&2", "node_id": node_id }))
        .await;
    let failing = primary.post("/api/jobs", json!({ "command": "exit 3", "node_id": node_id })).await;
    for (status, job) in [&ok, &failing] {
        assert_eq!(*status, 201, "{job}");
    }
    for (job, state) in [(&ok.1, "succeeded"), (&failing.1, "failed")] {
        let id = job["id"].as_str().unwrap();
        eventually(SECONDS, &format!("job {id} {state}"), || async {
            (primary.get(&format!("/api/jobs/{id}")).await.1["status"] == state).then_some(())
        })
        .await;
    }
    primary.sweeps_pass(2).await;

    // The job counts follow within about a second of the last change.
    let text = eventually(Duration::from_secs(5), "both jobs counted, and a heartbeat", || async {
        let (status, text) = scrape(&primary.url, None).await;
        assert_eq!(status, 200, "{text}");
        (sample(&text, r#"fleetdeck_jobs{state="succeeded"}"#) == Some(1.0)
            && sample(&text, r#"fleetdeck_jobs{state="failed"}"#) == Some(1.0)
            && sample(&text, "fleetdeck_heartbeats_received_total") >= Some(1.0))
        .then_some(text)
    })
    .await;
    let (_, nodes) = primary.get("/api/nodes").await;
    let count =
        |status: &str| nodes["items"].as_array().unwrap().iter().filter(|n| n["status"] == status).count();
    for status in ["pending", "online", "offline", "unreachable"] {
        let series = format!("fleetdeck_nodes{{status=\"{status}\"}}");
        assert_eq!(sample(&text, &series), Some(count(status) as f64), "{series} in:\n{text}");
    }
    assert_eq!(count("online"), 2, "the primary and the secondary: {nodes}");
    let at_least = |series: &str, min: f64| {
        let value = sample(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
        assert!(value >= min, "{series} is {value}, expected at least {min}");
    };
    at_least("fleetdeck_heartbeats_received_total", 1.0);
    at_least(r#"fleetdeck_node_status_changes_total{to="online"}"#, 1.0);
    at_least(r#"fleetdeck_health_probe_duration_seconds_count{result="success"}"#, 1.0);
    at_least(r#"fleetdeck_health_probe_duration_seconds_count{result="failure"}"#, 1.0);
    at_least(
        r#"fleetdeck_http_request_duration_seconds_count{method="POST",route="/api/internal/nodes/{id}/heartbeat",status="200"}"#,
        1.0,
    );
    at_least(
        r#"fleetdeck_http_request_duration_seconds_count{method="POST",route="/api/jobs",status="201"}"#,
        2.0,
    );
    at_least("fleetdeck_job_log_bytes_total", "hello\noops\n".len() as f64);
    at_least("process_resident_memory_bytes", 1.0);
    assert_eq!(sample(&text, "fleetdeck_job_dispatch_duration_seconds_count"), Some(2.0), "{text}");
    assert_eq!(sample(&text, r#"fleetdeck_jobs{state="queued"}"#), Some(0.0), "{text}");
    assert_eq!(sample(&text, "fleetdeck_job_queue_depth"), Some(0.0), "{text}");
    assert_eq!(sample(&text, "fleetdeck_leader"), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, &format!("fleetdeck_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))),
        Some(1.0)
    );
    // Routes by their template: no node's ID ever becomes a label.
    assert!(!text.contains(&node_id), "a raw path reached a label:\n{text}");
    promtool(&["check", "metrics"], &text)
        .unwrap_or_else(|e| panic!("promtool check metrics:\n{e}\non:\n{text}"));
    docs_name_only_served_metrics(&text);
}

/// The Grafana dashboard and the alerting rules in docs/monitoring name only metrics a scrape
/// serves, and promtool accepts the rules.
fn docs_name_only_served_metrics(scrape: &str) {
    let served: Vec<&str> =
        scrape.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/monitoring");
    for file in ["grafana-dashboard.json", "alerts.yml"] {
        let text = std::fs::read_to_string(docs.join(file)).unwrap();
        let words = text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
        for word in words.filter(|w| w.starts_with("fleetdeck_") || w.starts_with("process_")) {
            let family =
                ["_bucket", "_count", "_sum"].iter().find_map(|s| word.strip_suffix(s)).unwrap_or(word);
            assert!(
                served.contains(&family),
                "docs/monitoring/{file} names {word}, which /metrics does not serve"
            );
        }
    }
    let rules = docs.join("alerts.yml");
    let rules = rules.to_str().unwrap();
    promtool(&["check", "rules", rules], "").unwrap_or_else(|e| panic!("promtool check rules {rules}:\n{e}"));
}

#[tokio::test]
async fn a_queued_job_is_counted_in_the_queue_depth() {
    let primary = TestPrimary::spawn_with(&[("NODE_MAX_JOBS", "0")]).await;
    let (status, job) = primary.post("/api/jobs", json!({ "command": "true" })).await;
    assert_eq!(status, 201, "{job}");
    eventually(Duration::from_secs(5), "the job in the queue depth", || async {
        let (_, text) = scrape(&primary.url, None).await;
        (sample(&text, "fleetdeck_job_queue_depth") == Some(1.0)
            && sample(&text, r#"fleetdeck_jobs{state="queued"}"#) == Some(1.0))
        .then_some(())
    })
    .await;
}
