//! The leader's lease: the rules (pure functions, tested with an injected clock) and the
//! one transaction that applies them.
//!
//! - **The row** (`leader_lease`, one row): `holder`, `epoch`, `since`, `expires_at`, in the
//!   database's time (never a primary's clock).
//! - **A round** ([`claim`]), every `RENEW_EVERY` on every primary: the row is read and locked
//!   (`FOR UPDATE` on PostgreSQL; SQLite's one writer serializes it) with the database's
//!   `now`. The holder renews (`expires_at = now + TTL`, same epoch). Anyone takes it when it
//!   has no holder (a resignation), has expired, or its holder's session is gone (below):
//!   `epoch + 1`, `since = now`. A holder whose own lease expired takes it anew, with a new
//!   epoch: its old term ended on its side too. Otherwise it stays held.
//! - **Stopping in time** ([`Term`]): a leader believes it leads until `SAFE_FOR` after it
//!   *sent* the round that renewed the lease, on its own monotonic clock. The database set
//!   `expires_at` from a `now` read after that, `TTL` later, so a leader that cannot renew
//!   (cut off, its database gone, its process paused) stops leader work `TTL - SAFE_FOR`
//!   before anyone else may take over.
//! - **Fencing** ([`Fence`], `cluster::fence`): every leader-only write checks, in its own
//!   transaction, that the row still names this primary with this epoch and has not
//!   expired, holding a share lock on the row until it commits, so a take-over waits for it
//!   or it fails. A leader that wakes up from a pause with stale beliefs writes nothing.
//! - **Noticing a dead leader early** (PostgreSQL): the leader holds a session advisory lock
//!   on its own connection. A primary that finds the lease held tries that lock; getting it
//!   means the holder's session ended (its process died, its connection broke), and it
//!   takes the lease without waiting for the TTL. This only speeds up a take-over: fencing,
//!   not the lock, keeps two leaders from acting (a holder whose lock connection broke but
//!   who still runs loses its next round and stops).

use std::time::{Duration, Instant};

use crate::clock::Timestamp;

/// How often every primary runs a lease round.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
/// How long a renewed lease lasts.
pub const TTL: Duration = Duration::from_secs(10);
/// How long after sending a successful round a leader goes on believing it leads.
pub const SAFE_FOR: Duration = Duration::from_secs(7);

/// The lease row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub holder: Option<String>,
    pub epoch: i64,
    /// When the holder took it (Unix ms, the database's clock).
    pub since: i64,
    pub expires_at: i64,
}

/// What one round ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Still ours, for another `TTL`.
    Renewed(Lease),
    /// Ours now, in a new epoch.
    Taken(Lease),
    /// Someone else's.
    HeldBy(Lease),
}

/// The round's rule: what `me` gets of `current` at database time `now` (Unix ms).
/// `holder_gone`: the holder's session is known to have ended.
pub fn claim(current: &Lease, me: &str, now: i64, holder_gone: bool) -> Claim {
    let expires_at = Timestamp(now).plus(TTL).0;
    let live = current.expires_at > now;
    match current.holder.as_deref() {
        Some(holder) if holder == me && live => Claim::Renewed(Lease { expires_at, ..current.clone() }),
        Some(_) if live && !holder_gone => Claim::HeldBy(current.clone()),
        _ => Claim::Taken(Lease {
            holder: Some(me.to_owned()),
            epoch: current.epoch + 1,
            since: now,
            expires_at,
        }),
    }
}

/// The lease after `me` resigned: no holder, expired, the epoch kept (the next taker adds
/// one). Unchanged if `me` does not hold it.
pub fn resign(current: &Lease, me: &str) -> Option<Lease> {
    (current.holder.as_deref() == Some(me)).then(|| Lease { holder: None, expires_at: 0, ..current.clone() })
}

/// This primary's time as leader, as it sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub epoch: i64,
    /// When the term began (Unix ms, the database's clock).
    pub since: i64,
    /// Leader work stops at this instant unless a round renews the lease before.
    pub until: Instant,
}

impl Term {
    /// The term a successful round gives, the round having been sent at `sent`.
    pub fn after_round(lease: &Lease, sent: Instant) -> Term {
        Term { epoch: lease.epoch, since: lease.since, until: sent + SAFE_FOR }
    }

    pub fn is_current(&self, now: Instant) -> bool {
        now < self.until
    }
}

/// Proof, for one write, of which term it belongs to: checked in the write's own
/// transaction (`cluster::fence`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub holder: String,
    pub epoch: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    fn held(holder: &str, epoch: i64, expires_at: i64) -> Lease {
        Lease { holder: Some(holder.into()), epoch, since: T0 - 60_000, expires_at }
    }

    #[test]
    fn an_empty_lease_is_taken_with_a_new_epoch_and_the_databases_time() {
        let empty = Lease { holder: None, epoch: 0, since: 0, expires_at: 0 };
        let Claim::Taken(lease) = claim(&empty, "a", T0, false) else { panic!() };
        assert_eq!(lease, Lease { holder: Some("a".into()), epoch: 1, since: T0, expires_at: T0 + 10_000 });
    }

    #[test]
    fn the_holder_renews_within_its_lease_and_keeps_its_epoch_and_start() {
        let lease = held("a", 4, T0 + 8_000);
        assert_eq!(
            claim(&lease, "a", T0, false),
            Claim::Renewed(Lease { expires_at: T0 + 10_000, ..lease.clone() })
        );
    }

    #[test]
    fn a_live_lease_of_another_is_left_alone_until_it_expires() {
        let lease = held("a", 4, T0 + 1);
        assert_eq!(claim(&lease, "b", T0, false), Claim::HeldBy(lease.clone()));
        // At the expiry instant it is over: the next primary takes it, one epoch on.
        let Claim::Taken(taken) = claim(&lease, "b", T0 + 1, false) else { panic!() };
        assert_eq!((taken.holder.as_deref(), taken.epoch, taken.since), (Some("b"), 5, T0 + 1));
    }

    #[test]
    fn a_holder_whose_session_ended_is_replaced_at_once() {
        let lease = held("a", 4, T0 + 9_000);
        let Claim::Taken(taken) = claim(&lease, "b", T0, true) else { panic!() };
        assert_eq!(taken.epoch, 5);
        // The holder itself is never told its own session ended: it renews.
        assert!(matches!(claim(&lease, "a", T0, true), Claim::Renewed(_)));
    }

    #[test]
    fn a_holder_that_let_its_lease_expire_starts_a_new_term() {
        // Paused past its lease: nobody took over meanwhile, but its term ended on its own
        // side, so what it decided before must not count in the new one.
        let lease = held("a", 4, T0 - 1);
        let Claim::Taken(taken) = claim(&lease, "a", T0, false) else { panic!() };
        assert_eq!((taken.epoch, taken.since), (5, T0));
    }

    #[test]
    fn resigning_clears_the_holder_and_only_the_holder_may() {
        let lease = held("a", 4, T0 + 9_000);
        assert_eq!(resign(&lease, "b"), None);
        let resigned = resign(&lease, "a").unwrap();
        assert_eq!((resigned.holder, resigned.epoch, resigned.expires_at), (None, 4, 0));
        let Claim::Taken(next) = claim(&resign(&lease, "a").unwrap(), "b", T0, false) else { panic!() };
        assert_eq!(next.epoch, 5);
    }

    #[test]
    fn a_leader_stops_before_its_lease_can_expire_when_it_cannot_renew() {
        // The round was sent at `sent`; the database read its `now` at or after that, so the
        // lease expires at least TTL after `sent`.
        let sent = Instant::now();
        let lease = Lease { holder: Some("a".into()), epoch: 2, since: T0, expires_at: T0 + 10_000 };
        let term = Term::after_round(&lease, sent);
        assert!(term.is_current(sent));
        assert!(term.is_current(sent + Duration::from_millis(6_999)));
        assert!(!term.is_current(sent + SAFE_FOR));
        // Every later round that fails leaves it at that: work stops 3 s before anyone else
        // may take the lease.
        assert!(SAFE_FOR + Duration::from_secs(3) <= TTL);
        // While renewals succeed (every RENEW_EVERY), the term never runs out in between.
        assert!(RENEW_EVERY * 3 < SAFE_FOR);
    }
}
