//! Clients that hold connections open without finishing their requests: a body sent a byte
//! at a time, or hundreds of connections from one address. Each is cut off, and the server
//! keeps answering everyone else.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::{TestPrimary, send};

const TOKEN: &str = "a-registration-token-for-tests";

/// Opens a connection and sends a request head announcing a body of `length` bytes.
async fn start_request(primary: &TestPrimary, path: &str, headers: &str, length: usize) -> TcpStream {
    let address = primary.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n{headers}\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"{").await.unwrap();
    stream.flush().await.unwrap();
    stream
}

/// The status line's code and the rest of what the server sent before closing (or `None`
/// when nothing came within `within`).
async fn answer(stream: &mut TcpStream, within: Duration) -> Option<(u16, String)> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
            if String::from_utf8_lossy(&received).contains("\r\n\r\n{") && received.ends_with(b"}") {
                break;
            }
        }
    })
    .await;
    if read.is_err() && received.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&received).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, text))
}

#[tokio::test]
async fn registration_is_refused_from_its_headers_before_any_body_is_read() {
    let primary = TestPrimary::spawn_with(&[("REGISTRATION_TOKEN", TOKEN)]).await;
    for (headers, expected) in [("", 401), ("X-Registration-Token: wrong-token-wrong-token\r\n", 401)] {
        let mut stream = start_request(&primary, "/api/internal/nodes/register", headers, 100_000).await;
        let (status, text) =
            answer(&mut stream, Duration::from_secs(3)).await.expect("an answer without the body");
        assert_eq!(status, expected, "{text}");
        assert!(text.contains("registration token"), "{text}");
    }
    // Registration off: refused at once too.
    let off = TestPrimary::spawn().await;
    let mut stream = start_request(&off, "/api/internal/nodes/register", "", 100_000).await;
    let (status, text) =
        answer(&mut stream, Duration::from_secs(3)).await.expect("an answer without the body");
    assert_eq!(status, 403, "{text}");
}

#[tokio::test]
async fn a_body_trickling_in_is_cut_off_and_others_are_served_meanwhile() {
    let primary = TestPrimary::spawn_with(&[("REGISTRATION_TOKEN", TOKEN)]).await;
    let started = Instant::now();
    let token = format!("X-Registration-Token: {TOKEN}\r\n");
    let slow = start_request(&primary, "/api/internal/nodes/register", &token, 2_000).await;
    // Many more like it, on the user API too.
    let mut others = Vec::new();
    for _ in 0..50 {
        others.push(start_request(&primary, "/api/nodes", "", 2_000).await);
    }
    let (mut slow_read, mut slow_write) = slow.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if slow_write.write_all(b" ").await.is_err() {
                break;
            }
        }
    });
    let (status, _) = send(primary.http.get(format!("{}/api/health", primary.url))).await;
    assert_eq!(status, 200, "the server answers others meanwhile");
    let mut received = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), slow_read.read_to_end(&mut received)).await;
    trickle.abort();
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(15), "cut off after {elapsed:?}");
    for stream in &mut others {
        let (status, text) = answer(stream, Duration::from_secs(5)).await.expect("an answer");
        assert_eq!(status, 408, "{text}");
    }
    let (_, nodes) = primary.get("/api/nodes").await;
    assert_eq!(nodes["items"].as_array().unwrap().len(), 1, "nothing was created: {nodes}");
}

#[tokio::test]
async fn one_address_cannot_hold_hundreds_of_connections() {
    let primary = TestPrimary::spawn().await;
    let address = primary.url.trim_start_matches("http://").to_owned();
    let limit = 256;
    // Connections the server has certainly counted: each served one request, then kept alive.
    let mut held = Vec::new();
    for _ in 0..limit {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        let request = format!("GET /api/health HTTP/1.1\r\nHost: {address}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let (status, text) = answer(&mut stream, Duration::from_secs(5)).await.expect("an answer");
        assert_eq!(status, 200, "{text}");
        held.push(stream);
    }
    // One more from the same address: its request is refused, with a JSON error.
    let mut extra = TcpStream::connect(&address).await.unwrap();
    let request = format!("GET /api/health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    extra.write_all(request.as_bytes()).await.unwrap();
    let (status, text) = answer(&mut extra, Duration::from_secs(5)).await.expect("an answer");
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("rate_limited"), "{text}");
    // Another address is unaffected; once connections close, this one is served again.
    let other = crate::helpers::client(Some([127, 0, 0, 61]));
    assert_eq!(send(other.get(format!("{}/api/health", primary.url))).await.0, 200);
    drop(held);
    crate::helpers::eventually(Duration::from_secs(10), "the address to be served again", || async {
        let (status, _) = send(primary.http.get(format!("{}/api/health", primary.url))).await;
        (status == 200).then_some(())
    })
    .await;
}
