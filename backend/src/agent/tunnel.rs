//! An outbound node's socket to its primary (`NODE_CONNECT=outbound`, or `auto` without
//! `NODE_API_ENDPOINT`): the node dials out, so a primary that cannot reach it (NAT, a
//! firewall) still probes it, hands it jobs and cancels them.
//!
//! Once the primary knows the node (its ID is configured, or learned from the first
//! heartbeat reply, after a registration), the node opens
//! `GET /api/internal/nodes/:id/connect` on its current primary (WebSocket,
//! with its ID and key, and the Access service token when there is one), waits for the
//! primary's `hello` and checks the primary's ID as it checks a heartbeat reply's, then
//! answers every `call` frame with an `answer` frame (calls run concurrently; what they do is
//! the caller's `answer` function: the same as the node's HTTP API). Heartbeats, job output
//! and reports keep their HTTP paths (and the spool), so a socket that drops mid-job loses
//! nothing: the job runs on, its output arrives as before.
//!
//! The socket is kept up: the primary pings every 15 s, and a socket silent for
//! [`SILENCE`] is given up. A failed attempt, or the end of a socket, is followed by a new
//! attempt after [`retry_delay`] (1–2 s at first, doubling to 5 min, jittered so that nodes
//! dropped together do not come back together; back to the start only after a socket that
//! lasted [`STABLE`]), on the next primary of `PRIMARY_NODE_URL` when this one did not
//! answer.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use rand::Rng as _;
use secrecy::ExposeSecret as _;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest as _};
use tokio_util::sync::CancellationToken;

use super::{PrimaryLink, retry_delay};
use crate::identity::NodeIdentity;
use crate::nodes::NodeUrl;
use crate::protocol::{
    ACCESS_CLIENT_ID_HEADER, ACCESS_CLIENT_SECRET_HEADER, NODE_ID_HEADER, NODE_KEY_HEADER, NodeAnswer,
    NodeCall, TunnelFrame,
};

/// A socket the primary says nothing on for this long (it pings every 15 s) is given up.
const SILENCE: Duration = Duration::from_secs(45);
/// Connecting, and the primary's hello, must not take longer.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// A socket that lasted this long resets the backoff (one replaced at once, say by another
/// process with this node's identity, does not).
const STABLE: Duration = Duration::from_secs(30);

/// How one socket ended.
enum Ended {
    /// It was up (the hello came), for `lived`.
    AfterHello { why: String, lived: Duration },
    /// It never got that far.
    Failed { why: String, unanswered: bool },
}

/// Keeps the node's socket to its primary up until `shutdown`, answering calls with
/// `answer`.
pub async fn run<F, Fut>(
    link: Arc<PrimaryLink>,
    identity: NodeIdentity,
    answer: F,
    shutdown: CancellationToken,
) where
    F: Fn(NodeCall) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = NodeAnswer> + Send + 'static,
{
    // Not before the primary knows this node: a joining node registers first, and learns
    // the primary's ID from its first heartbeat (a node added on the primary knows it from
    // PRIMARY_NODE_ID).
    while link.primary_id().is_none() {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    let mut failures = 0u32;
    loop {
        let primary = link.urls.current();
        let ended = tokio::select! {
            () = shutdown.cancelled() => return,
            ended = session(&link, &identity, &primary, answer.clone()) => ended,
        };
        match ended {
            Ended::AfterHello { why, lived } => {
                tracing::warn!(%primary, reason = %why, "the connection to the primary ended; reconnecting");
                failures = if lived >= STABLE { 1 } else { failures + 1 };
            }
            Ended::Failed { why, unanswered } => {
                tracing::warn!(%primary, reason = %why, "cannot connect to the primary");
                if unanswered {
                    link.urls.failed(&primary);
                }
                failures += 1;
            }
        }
        // One step up from `retry_delay`'s first, so that even the first wait is jittered.
        let delay = retry_delay(failures + 1, rand::thread_rng().r#gen());
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// The upgrade request: the socket's URL on `primary`, with the node's credentials and the
/// Access service token.
fn request(
    link: &PrimaryLink,
    identity: &NodeIdentity,
    primary: &NodeUrl,
) -> Result<tungstenite::handshake::client::Request, String> {
    let url = primary.join(&format!("/api/internal/nodes/{}/connect", identity.id));
    let url = match url.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}"),
        Some((_, rest)) => format!("ws://{rest}"),
        None => url,
    };
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    let mut headers = vec![
        (NODE_ID_HEADER, identity.id.to_string()),
        (NODE_KEY_HEADER, identity.api_key.expose().to_owned()),
        ("User-Agent", concat!("fleetdeck/", env!("CARGO_PKG_VERSION")).to_owned()),
    ];
    if let Some(access) = link.urls.access() {
        headers.push((ACCESS_CLIENT_ID_HEADER, access.client_id.clone()));
        headers.push((ACCESS_CLIENT_SECRET_HEADER, access.client_secret.expose_secret().to_owned()));
    }
    for (name, value) in headers {
        let mut value = tungstenite::http::HeaderValue::from_str(&value).map_err(|e| e.to_string())?;
        value.set_sensitive(name != NODE_ID_HEADER);
        request.headers_mut().insert(name, value);
    }
    Ok(request)
}

/// One socket, from connecting until it ends.
async fn session<F, Fut>(link: &PrimaryLink, identity: &NodeIdentity, primary: &NodeUrl, answer: F) -> Ended
where
    F: Fn(NodeCall) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = NodeAnswer> + Send + 'static,
{
    let request = match request(link, identity, primary) {
        Ok(request) => request,
        Err(why) => return Ended::Failed { why, unanswered: false },
    };
    let (socket, _) = match tokio::time::timeout(HANDSHAKE, tokio_tungstenite::connect_async(request)).await {
        Err(_) => return Ended::Failed { why: "no answer in time".into(), unanswered: true },
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status();
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
            let why = format!(
                "the primary answered HTTP {}: {}",
                status.as_u16(),
                body.chars().take(300).collect::<String>()
            );
            return Ended::Failed { why, unanswered: status.is_server_error() };
        }
        Ok(Err(e)) => return Ended::Failed { why: e.to_string(), unanswered: true },
        Ok(Ok(connected)) => connected,
    };
    let (mut write, mut read) = socket.split();
    // The hello: who the primary is.
    let hello = tokio::time::timeout(HANDSHAKE, read.next()).await;
    let Ok(Some(Ok(Message::Text(text)))) = hello else {
        return Ended::Failed { why: "the primary sent no hello".into(), unanswered: true };
    };
    match serde_json::from_str::<TunnelFrame>(&text) {
        Ok(TunnelFrame::Hello { primary_node_id }) if link.learn(&primary_node_id) => {}
        Ok(TunnelFrame::Hello { .. }) => {
            return Ended::Failed {
                why: "the primary answered with another node ID".into(),
                unanswered: false,
            };
        }
        _ => {
            return Ended::Failed {
                why: "the primary's first frame was not a hello".into(),
                unanswered: false,
            };
        }
    }
    tracing::info!(%primary, node_id = %identity.id, "connected to the primary (outbound): it reaches this node over this connection");
    let up = std::time::Instant::now();
    let ended = |why: String| Ended::AfterHello { why, lived: up.elapsed() };

    let (answers, mut answered) = mpsc::channel::<String>(64);
    loop {
        tokio::select! {
            frame = tokio::time::timeout(SILENCE, read.next()) => match frame {
                Err(_) => return ended(format!("nothing from the primary for {}s", SILENCE.as_secs())),
                Ok(None) => return ended("the primary closed the connection".into()),
                Ok(Some(Err(e))) => return ended(e.to_string()),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    let why = frame.map_or_else(String::new, |f| f.reason.to_string());
                    return ended(format!("the primary closed the connection {why}").trim_end().to_owned());
                }
                Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<TunnelFrame>(&text) {
                    Ok(TunnelFrame::Call { id, call }) => {
                        let (answers, answering) = (answers.clone(), answer(call));
                        tokio::spawn(async move {
                            let frame = TunnelFrame::Answer { id, answer: answering.await };
                            let _ = answers.send(serde_json::to_string(&frame).unwrap_or_default()).await;
                        });
                    }
                    _ => tracing::debug!("ignoring an unexpected frame from the primary"),
                },
                // Pings are answered by the socket itself (on the next write or flush).
                Ok(Some(Ok(_))) => {
                    if let Err(e) = write.flush().await {
                        return ended(e.to_string());
                    }
                }
            },
            Some(text) = answered.recv() => {
                if let Err(e) = write.send(Message::text(text)).await {
                    return ended(e.to_string());
                }
            }
        }
    }
}
