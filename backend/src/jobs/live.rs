//! Live job output: log chunks fanned out to whoever follows a job right now. A follower
//! that falls behind is dropped with a resync message rather than slowing anyone down; it
//! reconnects and catches up from storage.
//!
//! Each followed job keeps its last `FOLLOWER_BUFFER` chunks (text only) for followers that
//! are a little behind: at most 32 MiB of ASCII output per job, shared by all its followers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::jobs::model::LogChunk;

const FOLLOWER_BUFFER: usize = 64;

#[derive(Debug, Default)]
pub struct LogHub {
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<LogChunk>>>>,
}

impl LogHub {
    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<Arc<LogChunk>>>> {
        self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn subscribe(&self, job_id: &str) -> broadcast::Receiver<Arc<LogChunk>> {
        self.channels()
            .entry(job_id.to_owned())
            .or_insert_with(|| broadcast::channel(FOLLOWER_BUFFER).0)
            .subscribe()
    }

    /// Whether anyone follows `job_id` here now.
    pub fn is_followed(&self, job_id: &str) -> bool {
        self.channels().get(job_id).is_some_and(|tx| tx.receiver_count() > 0)
    }

    /// Hands a stored chunk to the job's followers, if any (`chunk` makes it only then).
    pub fn publish(&self, job_id: &str, chunk: impl FnOnce() -> LogChunk) {
        let mut channels = self.channels();
        if let Some(tx) = channels.get(job_id) {
            if tx.receiver_count() == 0 {
                channels.remove(job_id);
            } else {
                let _ = tx.send(Arc::new(chunk()));
            }
        }
    }
}
