//! What every WebSocket of the API does besides its payload: ping the client, answer its
//! pings, and notice when it has gone quiet or said goodbye.

use std::time::{Duration, Instant};

use actix_ws::{CloseCode, CloseReason, Message, ProtocolError, Session};

const PING_EVERY: Duration = Duration::from_secs(15);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(45);
/// Clients send nothing but pings, pongs and closes: anything large is a mistake.
pub const MAX_FRAME_BYTES: usize = 4096;

/// What a connection loop does next.
pub enum Step {
    Continue,
    /// Close with this reason.
    Close(Option<CloseReason>),
    /// The client is gone: stop without a close frame.
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
    pub async fn ping(&mut self, session: &mut Session) -> Step {
        if self.last_heard.elapsed() > CLIENT_TIMEOUT {
            return Step::Close(Some(CloseReason::from((CloseCode::Policy, "no pong in time"))));
        }
        if session.ping(b"").await.is_err() { Step::Gone } else { Step::Continue }
    }

    /// Handles what the client sent.
    pub async fn heard(
        &mut self,
        incoming: Option<Result<Message, ProtocolError>>,
        session: &mut Session,
    ) -> Step {
        match incoming {
            Some(Ok(Message::Ping(bytes))) => {
                self.last_heard = Instant::now();
                if session.pong(&bytes).await.is_err() { Step::Gone } else { Step::Continue }
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
