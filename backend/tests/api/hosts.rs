//! DNS rebinding: a page whose domain re-resolves to the primary's address talks to it as
//! its own origin. Only the `Host` it sends gives it away; such requests are refused before
//! routing, in every auth mode, over HTTP and WebSocket alike.

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::helpers::{TestPrimary, send};

const EVIL: &str = "attacker.example:8080";

async fn jobs_count(primary: &TestPrimary) -> usize {
    let (status, body) = primary.get("/api/jobs").await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_rebound_page_cannot_run_a_job_or_open_a_socket() {
    let primary = TestPrimary::spawn().await;
    let url = format!("{}/api/jobs", primary.url);
    let job = json!({ "command": "true", "labels": [] });

    // What a rebound page sends: its own name as Host and as Origin.
    let (status, body) = send(
        primary.http.post(&url).header("Host", EVIL).header("Origin", format!("http://{EVIL}")).json(&job),
    )
    .await;
    assert_eq!(status, 421, "{body}");
    assert_eq!(body["error"]["code"], "misdirected_request", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("ALLOWED_HOSTS"), "{body}");
    // Nor with a made-up X-Requested-With instead of Origin, nor to read.
    let (status, _) =
        send(primary.http.post(&url).header("Host", EVIL).header("X-Requested-With", "x").json(&job)).await;
    assert_eq!(status, 421);
    let (status, _) = send(primary.http.get(&url).header("Host", EVIL)).await;
    assert_eq!(status, 421);
    assert_eq!(jobs_count(&primary).await, 0, "nothing was created");

    // The WebSockets: the handshake is refused.
    for path in ["/api/events/ws", "/api/jobs/00000000-0000-7000-8000-000000000000/logs/ws"] {
        let ws_url = format!("{}{path}", primary.url.replace("http://", "ws://"));
        let mut request = ws_url.into_client_request().unwrap();
        request.headers_mut().insert("Host", EVIL.parse().unwrap());
        request.headers_mut().insert("Origin", format!("http://{EVIL}").parse().unwrap());
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 421, "{path}");
            }
            other => panic!("{path}: expected a refused handshake, got {other:?}"),
        }
    }

    // The names the primary serves still work, loopback ones included.
    let port = primary.url.rsplit(':').next().unwrap().to_owned();
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("LOCALHOST.:{port}")] {
        let (status, body) = send(primary.http.get(&url).header("Host", &host)).await;
        assert_eq!(status, 200, "{host}: {body}");
    }
}

#[tokio::test]
async fn names_given_in_allowed_hosts_are_served_and_same_origin_compares_the_scheme() {
    let primary = TestPrimary::spawn_with(&[("ALLOWED_HOSTS", "fleet.example.com, other.example.org")]).await;
    let url = format!("{}/api/jobs", primary.url);
    let job = json!({ "command": "true", "labels": [] });
    let post = |host: &'static str, origin: &'static str, proto: Option<&'static str>| {
        let mut request = primary.http.post(&url).header("Host", host).header("Origin", origin).json(&job);
        if let Some(proto) = proto {
            request = request.header("X-Forwarded-Proto", proto);
        }
        send(request)
    };

    let (status, body) = post("fleet.example.com", "http://fleet.example.com", None).await;
    assert_eq!(status, 201, "{body}");
    // Behind a TLS-terminating proxy that says so, the https origin is ours.
    let (status, body) = post("Fleet.Example.com", "https://fleet.example.com", Some("https")).await;
    assert_eq!(status, 201, "{body}");
    // The scheme counts: an https page is not the plain-HTTP server, and the other way round.
    let (status, body): (u16, Value) = post("fleet.example.com", "https://fleet.example.com", None).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = post("fleet.example.com", "http://fleet.example.com", Some("https")).await;
    assert_eq!(status, 403, "{body}");
    // An allowed name does not make another allowed name's page same-origin.
    let (status, body) = post("fleet.example.com", "http://other.example.org", None).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = post("evil.example.com", "http://evil.example.com", None).await;
    assert_eq!(status, 421);
    assert_eq!(jobs_count(&primary).await, 2);
}
