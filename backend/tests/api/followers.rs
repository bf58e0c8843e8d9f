//! Followers of a job's log (`GET /api/jobs/:id/logs/ws`) that stop reading, and how many
//! may follow at once. A follower that reads nothing costs the primary a bounded amount of
//! memory and is disconnected; one that reads gets everything meanwhile. The follower past
//! a cap is refused with a 429, and admitted again once another one has left.
//!
//! The memory test runs the primary as its own process, so that its resident memory is
//! measured alone and not together with whatever the other tests of this binary allocate.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{NodeProcess, SECONDS, TestDb, TestPrimary, client, eventually, send};

/// The documented caps (docs/API.md).
const PER_SOURCE: usize = 32;
const PER_JOB: usize = 64;

/// 64-byte lines; `LINES` of them make 20 MB.
const LINE: &str = "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0";
const LINES: usize = 312_500;

/// A masked, empty WebSocket pong: what a client that reads nothing may still write.
const PONG: [u8; 6] = [0x8A, 0x80, 1, 2, 3, 4];

/// Opens a follower of `path` from `local`, completes the handshake and reads nothing more
/// (with a small receive buffer, so the server's writes back up at once). Returns the
/// answer's status, its body when it is not an upgrade, and the socket.
async fn raw_follower(server: SocketAddr, local: [u8; 4], path: &str) -> (u16, Value, TcpStream) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind(SocketAddr::from((local, 0))).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Origin: http://{server}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // Byte by byte, so that nothing after the head is read.
    let mut head = Vec::new();
    tokio::time::timeout(SECONDS, async {
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8];
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "closed during the handshake");
            head.push(byte[0]);
        }
    })
    .await
    .expect("an answer to the upgrade");
    let head = String::from_utf8(head).unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = Value::Null;
    if status != 101 {
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        let mut bytes = vec![0; length];
        stream.read_exact(&mut bytes).await.unwrap();
        body = serde_json::from_slice(&bytes).unwrap();
    }
    (status, body, stream)
}

/// Whether the server has dropped this connection. Writing is the only way to tell without
/// reading: the first write after the server is gone draws a reset, the next one fails.
fn server_closed(stream: &TcpStream) -> bool {
    match stream.try_write(&PONG) {
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// Follows `url` (a `…/logs/ws` address) to its end as the web UI does, reconnecting with
/// `after_seq` when told to resync or when dropped. Returns every chunk's text, checking
/// that the sequence numbers run 0, 1, 2… with no gap and no duplicate.
async fn follow_to_end(url: &str, origin: &str) -> String {
    let mut text = String::new();
    let mut next_seq = 0u64;
    for _attempt in 0..20 {
        let after = next_seq.checked_sub(1).map(|s| format!("?after_seq={s}")).unwrap_or_default();
        let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            format!("{url}{after}"),
        )
        .unwrap();
        request.headers_mut().insert("Origin", origin.parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        while let Some(Ok(msg)) = socket.next().await {
            let Message::Text(t) = msg else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            match v["type"].as_str().unwrap() {
                "chunk" => {
                    assert_eq!(v["seq"], next_seq, "no gap, no duplicate");
                    next_seq += 1;
                    text.push_str(v["text"].as_str().unwrap());
                }
                "end" => {
                    assert_eq!(v["status"], "succeeded");
                    return text;
                }
                "resync" => break,
                other => panic!("unexpected {other}"),
            }
        }
    }
    panic!("no end after 20 connections");
}

fn expected_output() -> String {
    format!("{LINE}\n").repeat(LINES)
}

/// The primary as its own process, with the database of this test.
async fn primary_process() -> (NodeProcess, TestDb, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(dir.path());
    let vars = [("NODE_IS_PRIMARY", "true"), ("NODE_NAME", "primary"), ("DATABASE_URL", db.url.as_str())];
    let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let primary = NodeProcess::spawn(&vars).await;
    (primary, db, dir)
}

#[tokio::test]
async fn followers_that_stop_reading_cost_bounded_memory_and_are_disconnected() {
    const STALLED: usize = 8;
    let (primary, _db, _dir) = primary_process().await;
    let http = client(None);
    let primary_id = primary.node_info().await["id"].as_str().unwrap().to_owned();
    let command = format!("yes {LINE} | head -n {LINES}");
    let (status, job) = send(http.post(format!("{}/api/jobs", primary.url)).json(&json!({
        "command": command, "node_id": primary_id
    })))
    .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let done = eventually(Duration::from_secs(90), "the 20 MB job to succeed", || async {
        let (_, job) = send(http.get(format!("{}/api/jobs/{id}", primary.url))).await;
        (job["status"] == "succeeded").then_some(job)
    })
    .await;
    assert_eq!(done["log_bytes"], 20_000_000);

    let baseline = primary.resident_bytes();
    let server: SocketAddr = primary.url.trim_start_matches("http://").parse().unwrap();
    let path = format!("/api/jobs/{id}/logs/ws");
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let (status, body, stream) = raw_follower(server, [127, 0, 0, 41], &path).await;
        assert_eq!(status, 101, "{body}");
        stalled.push(stream);
    }
    let reader = tokio::spawn({
        let url = format!("{}{path}", primary.url.replace("http://", "ws://"));
        let origin = primary.url.clone();
        async move { follow_to_end(&url, &origin).await }
    });

    // Until every stalled follower is disconnected, checking each second (a write each).
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    let mut peak = baseline;
    let mut closed_after = vec![None; STALLED];
    let mut last_check = started;
    while closed_after.iter().any(Option::is_none) && Instant::now() < deadline {
        peak = peak.max(primary.resident_bytes());
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = Instant::now();
            for (stream, closed) in stalled.iter().zip(&mut closed_after) {
                if closed.is_none() && server_closed(stream) {
                    *closed = Some(started.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "RSS {} MB before, peak {} MB with {STALLED} stalled followers (+{} MB); closed after {closed_after:?}",
        baseline >> 20,
        peak >> 20,
        growth >> 20
    );
    // The old way, each stalled follower held its whole 20 MB replay, and then some.
    assert!(growth < STALLED as u64 * (4 << 20), "memory grew by {} MB", growth >> 20);
    assert!(closed_after.iter().all(Option::is_some), "still connected after 60 s: {closed_after:?}");

    let text =
        tokio::time::timeout(Duration::from_secs(60), reader).await.expect("the reader finishes").unwrap();
    assert!(text == expected_output(), "the reading follower got all 20 MB, exactly ({} bytes)", text.len());
}

#[tokio::test]
async fn a_follower_past_a_cap_is_refused_until_another_leaves() {
    let primary = TestPrimary::spawn().await;
    let (status, job) =
        primary.post("/api/jobs", json!({ "command": "sleep 60", "node_id": primary.primary_id() })).await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let server: SocketAddr = primary.url.trim_start_matches("http://").parse().unwrap();
    let path = format!("/api/jobs/{id}/logs/ws");
    let open = |local: [u8; 4]| {
        let path = path.clone();
        async move { raw_follower(server, local, &path).await }
    };

    // One source: up to its cap, then refused; another source is not.
    let mut first = Vec::new();
    for _ in 0..PER_SOURCE {
        let (status, body, stream) = open([127, 0, 0, 51]).await;
        assert_eq!(status, 101, "{body}");
        first.push(stream);
    }
    let (status, body, _) = open([127, 0, 0, 51]).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    let (status, body, second) = open([127, 0, 0, 52]).await;
    assert_eq!(status, 101, "{body}");

    // Once one leaves, its place is free again.
    drop(first.pop());
    let again = eventually(SECONDS, "a follower admitted again", || async {
        let (status, _, stream) = open([127, 0, 0, 51]).await;
        (status == 101).then_some(stream)
    })
    .await;
    first.push(again);

    // The job: up to its cap (across sources), then refused whatever the source.
    let mut more = Vec::new();
    for i in 0..PER_JOB - PER_SOURCE - 1 {
        let source = [127, 0, 0, 53 + u8::try_from(i / 16).unwrap()];
        let (status, body, stream) = open(source).await;
        assert_eq!(status, 101, "{body}");
        more.push(stream);
    }
    let (status, body, _) = open([127, 0, 0, 60]).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    drop(second);
    eventually(SECONDS, "a follower of the job admitted again", || async {
        let (status, _, stream) = open([127, 0, 0, 60]).await;
        (status == 101).then_some(stream)
    })
    .await;
}
