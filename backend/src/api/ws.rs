//! What every WebSocket of the API does besides its payload: bound what waits to be sent
//! to each client, ping it, answer its pings, and notice when it has gone quiet, stopped
//! reading or said goodbye.
//!
//! actix-ws puts a channel of 32 *messages* between a `Session` and the connection, and the
//! connection moves all of them into its write buffer whenever it may write. With large
//! messages (job output comes in chunks of up to 512 KiB) a client that stops reading would
//! pin tens of megabytes, and its sender would wait forever, pings and timeouts included.
//! So every send goes through an [`Outbox`]: the response body is wrapped to count the bytes
//! the connection has taken, and a send first waits until less than [`QUEUE_BUDGET`] is
//! queued but not taken (one larger message may go when nothing is queued). A client that
//! lets nothing drain for [`STALL_AFTER`] is stalled: it is sent `{"type":"resync"}`, which
//! it sees if it ever reads again, and the connection is aborted — the body yields an error
//! once what was queued is taken, and actix drops the connection. A connection whose writes
//! are blocked altogether is not polled by actix at all; the kernel drops it
//! ([`drop_unresponsive_peers`]: `TCP_USER_TIMEOUT` of `UNRESPONSIVE_PEER`, 30 s, set on
//! every accepted connection by the server's `on_connect` hook; Linux only). Pings go
//! through the outbox too, so a client that reads nothing cannot keep the pong timeout from
//! being checked.
//!
//! Each connection's [`Keepalive`] pings every `PING_EVERY` (15 s) and closes (1008) a
//! client not heard from for `CLIENT_TIMEOUT` (45 s). Clients send only pings, pongs and a
//! close, so frames over `MAX_FRAME_BYTES` (4 KiB) are refused.
//!
//! What a client that stops reading costs, then: at most `QUEUE_BUDGET` (512 KiB) queued,
//! or one larger message, plus what the connection's write buffer already took (and, for a
//! log follower, the page of stored output being replayed), until it is dropped:
//! `STALL_AFTER` (15 s) after a send first finds the queue full, or, when the socket takes
//! nothing at all, `UNRESPONSIVE_PEER` (30 s) after the peer last acknowledged anything.
//! How many log followers there may be is capped per job and per address (`api::followers`).

use std::any::Any;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::Extensions;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, ProtocolError, Session};
use futures_util::task::AtomicWaker;
use futures_util::{FutureExt as _, SinkExt as _};
use tokio::sync::Notify;

use crate::error::AppError;

const PING_EVERY: Duration = Duration::from_secs(15);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(45);
/// Clients send nothing but pings, pongs and closes: anything large is a mistake.
const MAX_FRAME_BYTES: usize = 4096;
/// Bytes sent to one client that the connection has not taken yet, at most: what the
/// application holds for a client, besides the connection's own write buffer.
pub const QUEUE_BUDGET: u64 = 512 * 1024;
/// How long a send waits for the queue to drain before the client counts as stalled.
pub const STALL_AFTER: Duration = Duration::from_secs(15);
/// A peer that acknowledges nothing sent to it for this long is dropped by the kernel.
const UNRESPONSIVE_PEER: Duration = Duration::from_secs(30);
/// What a client that missed something is told, on every socket: refetch, or reconnect
/// from what it has.
pub const RESYNC: &str = r#"{"type":"resync"}"#;

/// Upgrades `req` to a WebSocket whose sends go through an [`Outbox`]. `held` is kept until
/// the connection ends (a follower's place under the caps, say).
pub fn upgrade<H: Unpin + 'static>(
    req: &HttpRequest,
    body: web::Payload,
    held: H,
) -> Result<(HttpResponse, Outbox, MessageStream), AppError> {
    upgrade_sized(req, body, held, MAX_FRAME_BYTES)
}

/// [`upgrade`] for a client that sends more than pings: frames up to `max_frame` bytes.
pub fn upgrade_sized<H: Unpin + 'static>(
    req: &HttpRequest,
    body: web::Payload,
    held: H,
    max_frame: usize,
) -> Result<(HttpResponse, Outbox, MessageStream), AppError> {
    let (response, session, stream) = actix_ws::handle(req, body)
        .map_err(|e| AppError::BadRequest(format!("expected a WebSocket upgrade: {e}")))?;
    let meter = Arc::new(Meter::default());
    let metered = meter.clone();
    let response =
        response.map_body(move |_, inner| BoxBody::new(MeteredBody { inner, meter: metered, _held: held }));
    let outbox = Outbox { session, meter, stall_after: STALL_AFTER };
    Ok((response, outbox, stream.max_frame_size(max_frame)))
}

/// Set on every accepted connection (which one will become a WebSocket is not known yet):
/// a peer that acknowledges nothing for [`UNRESPONSIVE_PEER`], or keeps its receive window
/// shut that long, is dropped by the kernel (`TCP_USER_TIMEOUT`, Linux). That is what ends a
/// connection whose client stopped reading once its write buffer is full: actix waits for
/// the socket to become writable and polls nothing else of it, an aborted body included.
pub fn drop_unresponsive_peers(connection: &dyn Any, _: &mut Extensions) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>()
        && let Err(e) = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(UNRESPONSIVE_PEER))
    {
        tracing::warn!(error = %e, "cannot set TCP_USER_TIMEOUT on a connection");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (connection, UNRESPONSIVE_PEER);
}

/// What the sender and the response body share.
#[derive(Debug, Default)]
struct Meter {
    /// Bytes of the frames sent into the session, and of those the connection has taken.
    sent: AtomicU64,
    taken: AtomicU64,
    /// Told whenever the connection takes bytes.
    took: Notify,
    aborted: AtomicBool,
    /// The connection's task, woken on abort.
    body: AtomicWaker,
}

impl Meter {
    fn queued(&self) -> u64 {
        self.sent.load(Ordering::Acquire).saturating_sub(self.taken.load(Ordering::Acquire))
    }
}

/// Why the connection ended with an error: actix drops it then.
#[derive(Debug, thiserror::Error)]
#[error("the WebSocket client stopped reading; connection aborted")]
struct Aborted;

/// The response body: actix-ws's, counted, and failing once aborted and drained.
struct MeteredBody<H> {
    inner: BoxBody,
    meter: Arc<Meter>,
    _held: H,
}

impl<H: Unpin> MessageBody for MeteredBody<H> {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        this.meter.body.register(cx.waker());
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                this.meter.taken.fetch_add(bytes.len() as u64, Ordering::AcqRel);
                this.meter.took.notify_one();
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(None) | Poll::Pending if this.meter.aborted.load(Ordering::Acquire) => {
                Poll::Ready(Some(Err(Box::new(Aborted))))
            }
            other => other,
        }
    }
}

/// The connection is over: stop, sending nothing more.
#[derive(Debug)]
pub struct Gone;

/// Sends to one client, holding at most [`QUEUE_BUDGET`] for it.
pub struct Outbox {
    session: Session,
    meter: Arc<Meter>,
    stall_after: Duration,
}

impl Outbox {
    pub async fn text(&mut self, text: String) -> Result<(), Gone> {
        self.send(Message::Text(text.into())).await
    }

    async fn ping(&mut self) -> Result<(), Gone> {
        self.send(Message::Ping(Bytes::new())).await
    }

    async fn pong(&mut self, bytes: Bytes) -> Result<(), Gone> {
        self.send(Message::Pong(bytes)).await
    }

    /// Says goodbye, unless the client is stalled or gone (then the connection just ends).
    pub async fn close(mut self, reason: Option<CloseReason>) {
        let _ = self.send(Message::Close(reason)).await;
    }

    /// Sends `message` once the queue has room for it; a client that lets nothing drain
    /// meanwhile is told to resync and its connection aborted.
    async fn send(&mut self, message: Message) -> Result<(), Gone> {
        let frame = frame_len(&message);
        let deadline = tokio::time::Instant::now() + self.stall_after;
        let meter = &self.meter;
        let session = &mut self.session;
        let sent = async {
            loop {
                let queued = meter.queued();
                if queued == 0 || queued + frame <= QUEUE_BUDGET {
                    break;
                }
                meter.took.notified().await;
            }
            meter.sent.fetch_add(frame, Ordering::AcqRel);
            session.send(message).await
        };
        match tokio::time::timeout_at(deadline, sent).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_closed)) => Err(Gone),
            Err(_stalled) => {
                tracing::info!(
                    queued = self.meter.queued(),
                    "a WebSocket client stopped reading; disconnecting it"
                );
                // Only if there is room in the channel: it is seen if the client reads again.
                let resync = self.session.send(Message::Text(RESYNC.into())).now_or_never();
                if matches!(resync, Some(Ok(()))) {
                    self.meter.sent.fetch_add(frame_len(&Message::Text(RESYNC.into())), Ordering::AcqRel);
                }
                self.meter.aborted.store(true, Ordering::Release);
                self.meter.body.wake();
                Err(Gone)
            }
        }
    }
}

/// The bytes `message` takes on the wire, as actix encodes it (a server's frames are not
/// masked; control payloads are cut to 125 bytes, close reasons to 123).
fn frame_len(message: &Message) -> u64 {
    let payload = match message {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) => bytes.len(),
        Message::Ping(bytes) | Message::Pong(bytes) => bytes.len().min(125),
        Message::Close(reason) => {
            reason.as_ref().map_or(0, |r| 2 + r.description.as_ref().map_or(0, |d| d.len().min(123)))
        }
        Message::Continuation(_) | Message::Nop => 0,
    };
    let header = match payload {
        0..126 => 2,
        126..=65_535 => 4,
        _ => 10,
    };
    (header + payload) as u64
}

/// What a connection loop does next.
pub enum Step {
    Continue,
    /// Close with this reason.
    Close(Option<CloseReason>),
    /// The client is gone or stalled: stop without a close frame.
    Gone,
}

/// One connection's pings and liveness.
pub struct Keepalive {
    ping: tokio::time::Interval,
    last_heard: Instant,
}

impl Keepalive {
    pub fn new() -> Keepalive {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        Keepalive { ping, last_heard: Instant::now() }
    }

    /// Completes when it is time to ping.
    pub async fn due(&mut self) {
        self.ping.tick().await;
    }

    /// Pings the client, or closes it when it has not been heard from for too long.
    pub async fn ping(&mut self, outbox: &mut Outbox) -> Step {
        if self.last_heard.elapsed() > CLIENT_TIMEOUT {
            return Step::Close(Some(CloseReason::from((CloseCode::Policy, "no pong in time"))));
        }
        if outbox.ping().await.is_err() { Step::Gone } else { Step::Continue }
    }

    /// Handles what the client sent.
    pub async fn heard(
        &mut self,
        incoming: Option<Result<Message, ProtocolError>>,
        outbox: &mut Outbox,
    ) -> Step {
        match incoming {
            Some(Ok(Message::Ping(bytes))) => {
                self.last_heard = Instant::now();
                if outbox.pong(bytes).await.is_err() { Step::Gone } else { Step::Continue }
            }
            Some(Ok(Message::Close(_))) | None => Step::Close(None),
            Some(Ok(_)) => {
                self.last_heard = Instant::now();
                Step::Continue
            }
            Some(Err(_)) => Step::Close(Some(CloseReason::from(CloseCode::Protocol))),
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::FromRequest as _;
    use actix_web::test::TestRequest;

    use super::*;

    async fn upgraded(stall_after: Duration) -> (BoxBody, Outbox) {
        let (req, mut payload) = TestRequest::default()
            .insert_header(("upgrade", "websocket"))
            .insert_header(("connection", "upgrade"))
            .insert_header(("sec-websocket-version", "13"))
            .insert_header(("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="))
            .to_http_parts();
        let payload = web::Payload::from_request(&req, &mut payload).await.unwrap();
        let (response, mut outbox, _stream) = upgrade(&req, payload, ()).unwrap();
        outbox.stall_after = stall_after;
        (response.into_body(), outbox)
    }

    /// Takes what the body has now, as the connection would.
    fn take(body: &mut BoxBody) -> Option<Result<Bytes, Box<dyn std::error::Error>>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(body).poll_next(&mut cx) {
            Poll::Ready(item) => item,
            Poll::Pending => None,
        }
    }

    #[actix_web::test]
    async fn what_is_queued_is_counted_exactly_and_bounded() {
        let (mut body, mut outbox) = upgraded(Duration::from_millis(200)).await;
        // Every frame size class, counted exactly as actix encodes it.
        let mut on_wire = 0;
        for size in [0, 125, 126, 65_535, 65_536, 300_000] {
            outbox.text("x".repeat(size)).await.unwrap();
            on_wire += take(&mut body).unwrap().unwrap().len() as u64;
            assert_eq!(outbox.meter.queued(), 0, "after a {size}-byte message");
        }
        assert_eq!(on_wire, outbox.meter.sent.load(Ordering::Acquire));
        outbox.ping().await.unwrap();
        outbox.pong(Bytes::from_static(b"hi")).await.unwrap();
        take(&mut body).unwrap().unwrap();
        assert_eq!(outbox.meter.queued(), 0);

        // Nothing taken: the budget fills (one oversized message may go into an empty queue).
        outbox.text("y".repeat(600_000)).await.unwrap();
        let started = tokio::time::Instant::now();
        assert!(outbox.text("z".to_owned()).await.is_err(), "stalled");
        assert!(started.elapsed() >= Duration::from_millis(200));
        // What was queued is still delivered, then the connection fails.
        assert!(take(&mut body).unwrap().is_ok());
        assert!(matches!(take(&mut body), Some(Err(_))), "aborted");
    }

    #[actix_web::test]
    async fn a_send_waits_for_the_connection_to_take_what_is_queued() {
        let (mut body, mut outbox) = upgraded(Duration::from_secs(5)).await;
        outbox.text("a".repeat(400_000)).await.unwrap();
        let taker = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            take(&mut body).unwrap().unwrap()
        };
        let (sent, taken) = tokio::join!(outbox.text("b".repeat(400_000)), taker);
        sent.unwrap();
        assert!(taken.len() > 400_000);
    }
}
