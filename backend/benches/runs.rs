//! Fleet-wide runs over 1,000 simulated nodes, timed (docs/BENCHMARKS.md):
//! `cargo bench -p fleetdeck --bench runs`.
//!
//! The primary runs in this process (SQLite, production logging into a counting sink). The
//! nodes are simulated cheaply by one stub server on loopback that acts as every one of
//! them (`/n/<i>/…`, each with its own ID and key): it answers the health probe with a real
//! stats snapshot, takes each dispatched job (202) and reports it `succeeded` to the primary
//! as that node, over the real node-facing API. One sweep of the health checker brings them
//! online; then:
//!
//! 1. One run over all 1,000 at once (`POST /api/runs {labels: [sim]}`): the time to answer,
//!    until every job has been dispatched (the stub has taken all 1,000), and until every
//!    result is stored (the run `succeeded`); then how long `GET /api/runs/:id` (1,000 rows,
//!    what the run page loads) and `GET /api/runs/:id/output` take.
//! 2. The same rolling 100 at a time (`max_parallel: 100`): the time until it `succeeded`.
//!
//! Knobs (environment): BENCH_NODES (1000), BENCH_PARALLEL (100).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use fleetdeck::App;
use fleetdeck::nodes::registry::NewNode;
use fleetdeck::nodes::{Labels, NodeName, NodeUrl};
use fleetdeck::secrets::ApiKey;
use fleetdeck::stats::{NodeFacts, StatsCollector};
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use common::verdict;

const TARGET_DISPATCHED: Duration = Duration::from_secs(5);
const TARGET_STORED: Duration = Duration::from_secs(10);
const TARGET_PAGE: Duration = Duration::from_millis(500);

/// A duration in milliseconds, with its unit.
fn t(d: Duration) -> String {
    format!("{} ms", common::ms(d))
}

fn node_key(salt: &str, i: usize) -> String {
    format!("{salt}-{i:05}")
}

/// A job the stub took: which node, which job, which attempt.
type Taken = (usize, String, u32);

fn main() {
    let nodes = common::env_number("BENCH_NODES", 1000) as usize;
    let parallel = common::env_number("BENCH_PARALLEL", 100);
    let log_lines = common::install_production_logging();
    println!("fleet-wide runs benchmark on {}", common::machine());
    let rt = common::server_runtime();
    let data_dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let app = App::build(common::primary_config(data_dir.path(), &[])).await.unwrap();
        let url = app.url().unwrap();
        let salt = fleetdeck::secrets::random_token(24);
        let (taken_tx, taken_rx) = tokio::sync::mpsc::unbounded_channel::<Taken>();
        let dispatched = Arc::new(AtomicUsize::new(0));
        let stub = stub_server(&salt, taken_tx, dispatched.clone());

        let registry = app.state().registry().unwrap();
        let mut ids = Vec::with_capacity(nodes);
        for i in 0..nodes {
            let issued = registry
                .create(NewNode {
                    id: None,
                    name: NodeName::parse(&format!("sim-{i:04}")).unwrap(),
                    api_endpoint: NodeUrl::parse(&format!("http://127.0.0.1:{stub}/n/{i}")).unwrap(),
                    api_key: Some(ApiKey::parse(&node_key(&salt, i)).unwrap()),
                    labels: Labels::parse(&["sim"]).unwrap(),
                })
                .await
                .unwrap();
            ids.push(issued.node.id.to_string());
        }
        let report = app.state().checker().unwrap().run_once().await.unwrap();
        println!(
            "{nodes} simulated nodes added and probed ({} online after one sweep)",
            report.probed - report.failed
        );
        tokio::spawn(report_results(url.clone(), salt.clone(), Arc::new(ids), taken_rx));

        let http = reqwest::Client::new();
        let mut rows = Vec::new();

        // 1. All at once.
        let started = Instant::now();
        let run: Value =
            post(&http, &format!("{url}/api/runs"), &json!({ "command": "true", "labels": ["sim"] })).await;
        let answered = started.elapsed();
        let id = run["id"].as_str().unwrap().to_owned();
        let mut all_dispatched = None;
        let stored = loop {
            if all_dispatched.is_none() && dispatched.load(Ordering::Relaxed) >= nodes {
                all_dispatched = Some(started.elapsed());
            }
            let run: Value = get(&http, &format!("{url}/api/runs/{id}")).await;
            if run["status"] != "running" {
                assert_eq!(run["totals"]["succeeded"], nodes, "{}", run["totals"]);
                break started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let all_dispatched = all_dispatched.unwrap_or(stored);
        rows.push(format!("| answer to `POST /api/runs` ({nodes} jobs queued) | {} | | |", t(answered)));
        rows.push(format!(
            "| every job dispatched | {} | < {} | {} |",
            t(all_dispatched),
            t(TARGET_DISPATCHED),
            verdict(all_dispatched < TARGET_DISPATCHED)
        ));
        rows.push(format!(
            "| every result stored (run `succeeded`) | {} | < {} | {} |",
            t(stored),
            t(TARGET_STORED),
            verdict(stored < TARGET_STORED)
        ));
        let page = timed(&http, &format!("{url}/api/runs/{id}")).await;
        rows.push(format!(
            "| `GET /api/runs/:id` ({nodes} rows, {} KiB), median of 10 | {} | < {} | {} |",
            page.1 / 1024,
            t(page.0),
            t(TARGET_PAGE),
            verdict(page.0 < TARGET_PAGE)
        ));
        let output = timed(&http, &format!("{url}/api/runs/{id}/output")).await;
        rows.push(format!(
            "| `GET /api/runs/:id/output` (grouped), median of 10 | {} | < {} | {} |",
            t(output.0),
            t(TARGET_PAGE),
            verdict(output.0 < TARGET_PAGE)
        ));

        // 2. Rolling.
        let started = Instant::now();
        let body = json!({ "command": "true", "labels": ["sim"], "max_parallel": parallel });
        let run: Value = post(&http, &format!("{url}/api/runs"), &body).await;
        let id = run["id"].as_str().unwrap().to_owned();
        let rolled = loop {
            let run: Value = get(&http, &format!("{url}/api/runs/{id}")).await;
            assert!(run["totals"]["active"].as_u64().unwrap() <= parallel, "{}", run["totals"]);
            if run["status"] != "running" {
                assert_eq!(run["totals"]["succeeded"], nodes, "{}", run["totals"]);
                break started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        rows.push(format!("| rolling, {parallel} at a time: every result stored | {} | | |", t(rolled)));

        println!();
        println!("| measure | result | target | verdict |");
        println!("|---|---|---|---|");
        for row in rows {
            println!("{row}");
        }
        println!("(log lines written during the run: {})", log_lines.load(Ordering::Relaxed));
        app.stop().await;
    });
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Value {
    let response = http.post(url).json(body).send().await.unwrap();
    assert!(response.status().is_success(), "{url}: {}", response.status());
    response.json().await.unwrap()
}

async fn get(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// The median time of ten reads of `url`, and the size of its answer.
async fn timed(http: &reqwest::Client, url: &str) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..10 {
        let started = Instant::now();
        size = http.get(url).send().await.unwrap().bytes().await.unwrap().len();
        times.push(started.elapsed());
    }
    times.sort();
    (times[times.len() / 2], size)
}

/// The stub every simulated node is: its port.
fn stub_server(
    salt: &str,
    taken: tokio::sync::mpsc::UnboundedSender<Taken>,
    dispatched: Arc<AtomicUsize>,
) -> u16 {
    let collector =
        StatsCollector::new(NodeFacts { labels: Vec::new(), max_jobs: 4, data_dir: std::env::temp_dir() });
    let stats = web::Bytes::from(serde_json::to_vec(&collector.latest()).unwrap());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let salt = salt.to_owned();
    let server = actix_web::HttpServer::new(move || {
        let (stats, salt, taken, dispatched) =
            (stats.clone(), salt.clone(), taken.clone(), dispatched.clone());
        let keyed = move |req: &actix_web::HttpRequest, i: usize| {
            req.headers().get("x-node-api-key").and_then(|v| v.to_str().ok())
                == Some(node_key(&salt, i).as_str())
        };
        let probe_keyed = keyed.clone();
        actix_web::App::new()
            .route(
                "/n/{i}/api/internal/system/stats",
                web::get().to(move |req: actix_web::HttpRequest, i: web::Path<usize>| {
                    let ok = probe_keyed(&req, *i);
                    let stats = stats.clone();
                    async move {
                        if ok {
                            HttpResponse::Ok().content_type("application/json").body(stats)
                        } else {
                            HttpResponse::Unauthorized().finish()
                        }
                    }
                }),
            )
            .route(
                "/n/{i}/api/internal/jobs",
                web::post().to(
                    move |req: actix_web::HttpRequest, i: web::Path<usize>, job: web::Json<Value>| {
                        let ok = keyed(&req, *i);
                        let (taken, dispatched) = (taken.clone(), dispatched.clone());
                        async move {
                            if !ok {
                                return HttpResponse::Unauthorized().finish();
                            }
                            let id = job["job_id"].as_str().unwrap_or_default().to_owned();
                            let attempt = u32::try_from(job["attempt"].as_u64().unwrap_or(1)).unwrap_or(1);
                            dispatched.fetch_add(1, Ordering::Relaxed);
                            let _ = taken.send((*i, id.clone(), attempt));
                            HttpResponse::Accepted().json(json!({ "accepted": id }))
                        }
                    },
                ),
            )
    })
    .listen(listener)
    .unwrap()
    .disable_signals()
    .workers(1)
    .backlog(4096)
    .run();
    tokio::spawn(server);
    port
}

/// Reports every job the stub took as `succeeded`, as its node, 16 at a time.
async fn report_results(
    url: String,
    salt: String,
    ids: Arc<Vec<String>>,
    taken: tokio::sync::mpsc::UnboundedReceiver<Taken>,
) {
    let http = reqwest::Client::new();
    tokio_stream_of(taken)
        .for_each_concurrent(16, |(i, job, attempt)| {
            let (http, url, salt, ids) = (http.clone(), url.clone(), salt.clone(), ids.clone());
            async move {
                let response = http
                    .post(format!("{url}/api/internal/jobs/{job}/status"))
                    .header("X-Node-ID", &ids[i])
                    .header("X-Node-API-Key", node_key(&salt, i))
                    .json(&json!({ "attempt": attempt, "state": "succeeded", "exit_code": 0 }))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success(), "report refused: {}", response.status());
            }
        })
        .await;
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
