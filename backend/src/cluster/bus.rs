//! What primaries tell each other, through PostgreSQL's LISTEN/NOTIFY on one channel
//! (`fleetdeck`). No second engine: the database that holds the data carries the news.
//!
//! - **Out**: [`Bus::send`] queues a [`Message`]; one task sends the queue in order, many
//!   messages to a round trip (`pg_notify` over `unnest`), on a pooled connection. A change
//!   to a row primaries keep in memory is announced inside its own transaction instead
//!   (`cluster::record_change`), so it is delivered when, and only if, it commits.
//! - **In**: one thread holds a connection of its own that `LISTEN`s. diesel's
//!   `notifications_iter` reads what has arrived without waiting, so the thread looks every
//!   `POLL` (20 ms: a non-blocking read of the socket, no query and no round trip) and asks
//!   the database the time every `ALIVE_EVERY` (2 s), which also tells a dead connection.
//!   What other primaries sent goes to the application as [`Incoming::Message`], in the
//!   order PostgreSQL delivers it: commit order. A primary's own messages are skipped.
//! - **Lost and back**: after a connection is lost the thread reconnects (backoff 0.5 s to
//!   5 s) and, before anything else, hands over [`Incoming::Reconnected`] with the database
//!   time the last one was known alive (minus `CATCH_UP_MARGIN`): the application reapplies
//!   the change log from there and tells live clients to refetch. The first connection
//!   does the same from the time given at start (before the caches were loaded), so no
//!   change falls between loading and listening.
//!
//! A payload over PostgreSQL's limit (8000 bytes) is sent as [`Message::Resync`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cluster::repo;
use crate::db::{Db, DbConnection};
use crate::events::Event;

/// The channel every primary listens on.
pub const CHANNEL: &str = "fleetdeck";
const POLL: Duration = Duration::from_millis(20);
const ALIVE_EVERY: Duration = Duration::from_secs(2);
const CATCH_UP_MARGIN: i64 = 5_000;
/// PostgreSQL refuses payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7_900;
/// Messages taken into one `pg_notify` round trip.
const SEND_BATCH: usize = 256;

/// What one primary tells the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Message {
    /// A row every primary keeps in memory changed (a node: `kind` "node", `subject` its
    /// ID); the change log has it too.
    Changed { kind: String, subject: String },
    /// A live event for the UI.
    Event { event: Event },
    /// A job's output chunk `seq` was stored.
    Chunk { job: String, seq: u64 },
    /// The leader resigned: whoever can, take over now.
    Resigned,
    /// Something could not be carried: live clients should refetch.
    Resync,
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// The sending primary.
    o: String,
    #[serde(flatten)]
    m: Message,
}

/// What the listener hands the application.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Message(Message),
    /// Listening (again): changes logged since `since` (database time, Unix ms) may have
    /// been missed.
    Reconnected {
        since: i64,
    },
}

/// The sending half; cheap to clone. On SQLite (one primary) it sends nothing.
#[derive(Debug, Clone, Default)]
pub struct Bus {
    out: Option<mpsc::UnboundedSender<Message>>,
}

/// A message as its JSON payload, or a resync when it is too large to carry.
pub fn payload(origin: &str, message: Message) -> String {
    let text = serde_json::to_string(&Envelope { o: origin.to_owned(), m: message }).unwrap_or_default();
    if text.len() <= MAX_PAYLOAD {
        text
    } else {
        serde_json::to_string(&Envelope { o: origin.to_owned(), m: Message::Resync }).unwrap_or_default()
    }
}

/// Reads a payload: the message, unless it is this primary's own (or unreadable).
fn read(me: &str, payload: &str) -> Option<Message> {
    match serde_json::from_str::<Envelope>(payload) {
        Ok(envelope) if envelope.o == me => None,
        Ok(envelope) => Some(envelope.m),
        Err(e) => {
            tracing::warn!(error = %e, "unreadable message from another primary");
            None
        }
    }
}

impl Bus {
    /// A bus that carries nothing (SQLite: the only primary).
    pub fn none() -> Bus {
        Bus::default()
    }

    /// Starts the sender task and the listener thread; what others send arrives on the
    /// returned receiver. `since`: the database time before this primary loaded its caches.
    pub fn start(
        db: &Db,
        me: &str,
        since: i64,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<(Bus, mpsc::Receiver<Incoming>)> {
        let (out, queue) = mpsc::unbounded_channel();
        tokio::spawn(send_loop(db.clone(), me.to_owned(), queue));
        let (incoming, rx) = mpsc::channel(4096);
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, shutdown) = (stop.clone(), shutdown.clone());
        tokio::spawn(async move {
            shutdown.cancelled().await;
            flag.store(true, Ordering::Relaxed);
        });
        let listener = Listener { db: db.clone(), me: me.to_owned(), incoming, stop };
        std::thread::Builder::new().name("cluster-listen".into()).spawn(move || listener.run(since))?;
        Ok((Bus { out: Some(out) }, rx))
    }

    /// Queues `message` for every other primary.
    pub fn send(&self, message: Message) {
        if let Some(out) = &self.out {
            let _ = out.send(message);
        }
    }
}

async fn send_loop(db: Db, me: String, mut queue: mpsc::UnboundedReceiver<Message>) {
    let mut batch = Vec::with_capacity(SEND_BATCH);
    while queue.recv_many(&mut batch, SEND_BATCH).await > 0 {
        let payloads: Vec<String> = batch.drain(..).map(|m| payload(&me, m)).collect();
        let n = payloads.len();
        let sent = db
            .run(move |conn| match conn {
                DbConnection::Postgres(pg) => repo::notify(pg, CHANNEL, &payloads),
                DbConnection::Sqlite(_) => Ok(()),
            })
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, messages = n, "could not tell the other primaries; their live views refetch when they next reconnect");
        }
    }
}

struct Listener {
    db: Db,
    me: String,
    incoming: mpsc::Sender<Incoming>,
    stop: Arc<AtomicBool>,
}

impl Listener {
    fn run(self, mut since: i64) {
        let mut backoff = Duration::from_millis(500);
        while !self.stop.load(Ordering::Relaxed) {
            match self.listen(&mut since) {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "lost the connection other primaries' news comes on; reconnecting");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// One connection's life: `Ok` when stopping, `Err` when the connection failed.
    /// `since` moves on with every liveness check.
    fn listen(&self, since: &mut i64) -> anyhow::Result<()> {
        let mut conn = self.db.connect_dedicated()?;
        diesel::sql_query(format!("LISTEN {CHANNEL}")).execute(&mut conn)?;
        if self.incoming.blocking_send(Incoming::Reconnected { since: *since - CATCH_UP_MARGIN }).is_err() {
            return Ok(());
        }
        let mut checked = Instant::now();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let DbConnection::Postgres(pg) = &mut conn else { anyhow::bail!("LISTEN needs PostgreSQL") };
            for notification in pg.notifications_iter() {
                let notification = notification?;
                if let Some(message) = read(&self.me, &notification.payload)
                    && self.incoming.blocking_send(Incoming::Message(message)).is_err()
                {
                    return Ok(());
                }
            }
            if checked.elapsed() >= ALIVE_EVERY {
                *since = repo::db_now(&mut conn)?;
                checked = Instant::now();
            }
            std::thread::sleep(POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_their_origin_and_a_primary_skips_its_own() {
        let message = Message::Chunk { job: "j".into(), seq: 3 };
        let text = payload("a", message.clone());
        assert_eq!(read("b", &text), Some(message));
        assert_eq!(read("a", &text), None);
        assert_eq!(read("b", "not json"), None);
    }

    #[test]
    fn a_message_too_large_to_carry_becomes_a_resync() {
        let message = Message::Changed { kind: "node".into(), subject: "x".repeat(10_000) };
        assert_eq!(read("b", &payload("a", message)), Some(Message::Resync));
    }
}
