//! How many may follow job logs at once (`GET /api/jobs/:id/logs/ws`): at most [`PER_JOB`]
//! followers of one job and [`PER_SOURCE`] from one source address. Each follower costs the
//! primary a bounded amount of memory (`api::ws`); the caps bound how many such costs one
//! job or one client can run up. A follower past a cap is refused with a 429 before the
//! upgrade. An admitted follower holds a [`FollowerPlace`], which rides in its response body
//! (`api::ws::upgrade`), so the place is free again however the connection ends. What a
//! follower does once admitted (replay, live chunks, a status poll every 500 ms) is in
//! `api::jobs`.
//!
//! Behind a reverse proxy every client has the proxy's address, so `PER_SOURCE` is then a
//! cap for all of them together.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::error::{AppError, AppResult};

/// Followers of one job at once: far more than people watch one job.
pub const PER_JOB: usize = 64;
/// Followers from one address at once: a browser opens one per job log on screen.
pub const PER_SOURCE: usize = 32;

#[derive(Debug, Default)]
pub struct FollowerCaps {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    per_job: HashMap<String, usize>,
    per_source: HashMap<IpAddr, usize>,
}

/// One admitted follower; its place is free again when this is dropped.
#[derive(Debug)]
pub struct FollowerPlace {
    caps: Arc<FollowerCaps>,
    job_id: String,
    source: Option<IpAddr>,
}

impl FollowerCaps {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for one more follower of `job_id` from `source`, if both are under their caps.
    pub fn admit(self: &Arc<Self>, job_id: &str, source: Option<IpAddr>) -> AppResult<FollowerPlace> {
        let mut counts = self.counts();
        if counts.per_job.get(job_id).is_some_and(|n| *n >= PER_JOB) {
            return Err(AppError::RateLimited(format!(
                "job {job_id} already has {PER_JOB} log followers; try again later"
            )));
        }
        if let Some(ip) = source
            && counts.per_source.get(&ip).is_some_and(|n| *n >= PER_SOURCE)
        {
            return Err(AppError::RateLimited(format!(
                "at most {PER_SOURCE} log followers per address at once; close one first"
            )));
        }
        *counts.per_job.entry(job_id.to_owned()).or_default() += 1;
        if let Some(ip) = source {
            *counts.per_source.entry(ip).or_default() += 1;
        }
        Ok(FollowerPlace { caps: self.clone(), job_id: job_id.to_owned(), source })
    }
}

impl Drop for FollowerPlace {
    fn drop(&mut self) {
        let mut counts = self.caps.counts();
        release(&mut counts.per_job, &self.job_id);
        if let Some(ip) = &self.source {
            release(&mut counts.per_source, ip);
        }
    }
}

/// Takes one off `key`'s count, forgetting the key at zero (shared with `api::edge`'s
/// connection counts).
pub(crate) fn release<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = counts.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_counted_per_job_and_per_source_and_freed_when_dropped() {
        let caps = Arc::new(FollowerCaps::default());
        let ip: IpAddr = [10, 0, 0, 1].into();
        let mut held: Vec<_> = (0..PER_SOURCE).map(|_| caps.admit("a", Some(ip)).unwrap()).collect();
        assert!(matches!(caps.admit("b", Some(ip)), Err(AppError::RateLimited(_))));
        held.pop();
        held.push(caps.admit("b", Some(ip)).unwrap());
        for i in 0..(PER_JOB - PER_SOURCE + 1) {
            held.push(caps.admit("a", Some([10, 0, 1, u8::try_from(i).unwrap()].into())).unwrap());
        }
        assert!(matches!(caps.admit("a", None), Err(AppError::RateLimited(_))));
        drop(held);
        let counts = caps.counts();
        assert!(counts.per_job.is_empty() && counts.per_source.is_empty(), "{:?}", *counts);
    }
}
