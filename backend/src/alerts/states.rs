//! What a rule concludes about one node over time, as a pure function of what it saw
//! before, whether its condition holds now, and the time: the rules that make "exactly one
//! message per real change" and "never a storm".
//!
//! | phase    | condition holds                         | it does not                          |
//! |----------|-----------------------------------------|--------------------------------------|
//! | (none)   | pending, or firing at once if `for` = 0 | nothing                              |
//! | pending  | firing (**fire**) once it held `for`    | gone: a blip, nothing said           |
//! | firing   | stays                                   | resolved (**recover**)               |
//! | resolved | flapping: back within the flap window   | gone once the window has passed      |
//! | flapping | counts each return; once it has been steady for the window, **one message** says how often it flapped and how it is now (firing or resolved); after an hour of flapping, one such message an hour |
//!
//! One-off events (a node registered, a job failed) are `sent`: the mark that their one
//! message was decided.

use std::time::Duration;

use crate::clock::Timestamp;

/// While a node keeps flapping, one message at most this often.
pub const FLAP_REPORT_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Firing,
    Resolved,
    Flapping,
    Sent,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Firing => "firing",
            Phase::Resolved => "resolved",
            Phase::Flapping => "flapping",
            Phase::Sent => "sent",
        }
    }

    pub fn from_db(raw: &str) -> Phase {
        match raw {
            "pending" => Phase::Pending,
            "firing" => Phase::Firing,
            "resolved" => Phase::Resolved,
            "flapping" => Phase::Flapping,
            _ => Phase::Sent,
        }
    }
}

/// A rule's state for one subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub phase: Phase,
    /// When the phase began (flapping: when the condition last changed).
    pub since: Timestamp,
    /// When flapping began (or was last reported).
    pub flapping_since: Option<Timestamp>,
    /// How often the condition came back while flapping.
    pub flips: u32,
    /// Whether the condition held at the last look.
    pub holds: bool,
}

impl State {
    fn new(phase: Phase, now: Timestamp, holds: bool) -> State {
        State { phase, since: now, flapping_since: None, flips: 0, holds }
    }
}

/// What a step decided to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said {
    Fire,
    Recover,
    /// The condition came back `flips` times over `during`; `holds` is how it is now.
    Flapped {
        flips: u32,
        during: Duration,
        holds: bool,
    },
}

/// The next state and what to say, given the last state, whether the condition `holds`
/// now, the rule's `for_` and the flap `window`.
pub fn step(
    state: Option<State>,
    holds: bool,
    now: Timestamp,
    for_: Duration,
    window: Duration,
) -> (Option<State>, Option<Said>) {
    let Some(state) = state else {
        return match (holds, for_.is_zero()) {
            (false, _) => (None, None),
            (true, true) => (Some(State::new(Phase::Firing, now, true)), Some(Said::Fire)),
            (true, false) => (Some(State::new(Phase::Pending, now, true)), None),
        };
    };
    match (state.phase, holds) {
        (Phase::Pending, true) if now.since(state.since) >= for_ => {
            (Some(State::new(Phase::Firing, now, true)), Some(Said::Fire))
        }
        (Phase::Pending, true) | (Phase::Firing, true) | (Phase::Sent, _) => (Some(state), None),
        (Phase::Pending, false) => (None, None),
        (Phase::Firing, false) => (Some(State::new(Phase::Resolved, now, false)), Some(Said::Recover)),
        (Phase::Resolved, false) if now.since(state.since) >= window => (None, None),
        (Phase::Resolved, false) => (Some(state), None),
        (Phase::Resolved, true) => {
            let flapping =
                State { phase: Phase::Flapping, since: now, flapping_since: Some(now), flips: 1, holds };
            (Some(flapping), None)
        }
        (Phase::Flapping, _) => flapping(state, holds, now, window),
    }
}

fn flapping(
    mut state: State,
    holds: bool,
    now: Timestamp,
    window: Duration,
) -> (Option<State>, Option<Said>) {
    if holds != state.holds {
        state.holds = holds;
        state.since = now;
        if holds {
            state.flips += 1;
        }
    }
    let began = state.flapping_since.unwrap_or(state.since);
    let said = Said::Flapped { flips: state.flips, during: now.since(began), holds };
    if now.since(state.since) >= window {
        let phase = if holds { Phase::Firing } else { Phase::Resolved };
        return (Some(State::new(phase, now, holds)), Some(said));
    }
    if now.since(began) >= FLAP_REPORT_EVERY {
        state.flapping_since = Some(now);
        state.flips = 0;
        return (Some(state), Some(said));
    }
    (Some(state), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(600);
    const S: Duration = Duration::from_secs(1);

    /// Runs a condition through time: `(seconds from start, holds)`; returns what was said.
    fn run(for_: Duration, timeline: &[(u64, bool)]) -> Vec<(u64, Said)> {
        let mut state = None;
        let mut said = Vec::new();
        for &(t, holds) in timeline {
            let (next, s) =
                step(state, holds, Timestamp(0).plus(S * u32::try_from(t).unwrap()), for_, WINDOW);
            state = next;
            if let Some(s) = s {
                said.push((t, s));
            }
        }
        said
    }

    #[test]
    fn one_outage_says_down_once_and_back_once() {
        let said =
            run(Duration::ZERO, &[(0, false), (10, true), (20, true), (30, true), (40, false), (50, false)]);
        assert_eq!(said, vec![(10, Said::Fire), (40, Said::Recover)]);
    }

    #[test]
    fn a_blip_shorter_than_for_says_nothing_a_longer_one_fires_once() {
        let for_ = Duration::from_secs(60);
        assert!(run(for_, &[(0, true), (30, true), (50, false), (100, false)]).is_empty());
        let said = run(for_, &[(0, true), (30, true), (60, true), (90, true), (120, false)]);
        assert_eq!(said, vec![(60, Said::Fire), (120, Said::Recover)]);
    }

    #[test]
    fn flapping_becomes_one_message_once_steady() {
        // Down, back, then down/up every 20 s for two minutes, then steady up.
        let mut timeline = vec![(0, true), (20, false)];
        for i in 0..6 {
            timeline.push((40 + i * 20, i % 2 == 0));
        }
        timeline.extend([(200, false), (700, false), (800, false), (900, false)]);
        let said = run(Duration::ZERO, &timeline);
        assert_eq!(said[..2], [(0, Said::Fire), (20, Said::Recover)]);
        assert_eq!(said.len(), 3, "{said:?}");
        let (at, Said::Flapped { flips, holds, .. }) = said[2] else { panic!("{said:?}") };
        assert_eq!((flips, holds), (3, false));
        // Steady since the last change at 140 s, for the window.
        assert_eq!(at, 800);
    }

    #[test]
    fn flapping_that_settles_down_leaves_the_alert_firing_until_it_recovers() {
        let said = run(
            Duration::ZERO,
            &[(0, true), (10, false), (20, true), (700, true), (800, false), (2000, false)],
        );
        assert_eq!(said.len(), 4, "{said:?}");
        assert!(matches!(said[2], (700, Said::Flapped { flips: 1, holds: true, .. })));
        assert_eq!(said[3], (800, Said::Recover));
    }

    #[test]
    fn endless_flapping_is_reported_once_an_hour() {
        let timeline: Vec<(u64, bool)> = (0..1000).map(|i| (i * 10, i % 2 == 0)).collect();
        let said = run(Duration::ZERO, &timeline);
        let flapped = said.iter().filter(|(_, s)| matches!(s, Said::Flapped { .. })).count();
        // 10 000 s of flipping every 10 s: the first down and back, then one an hour.
        assert_eq!(flapped, 2, "{said:?}");
        assert_eq!(said.len(), 4);
    }

    #[test]
    fn a_quiet_resolved_state_is_forgotten_after_the_window() {
        let (state, _) = step(None, true, Timestamp(0), Duration::ZERO, WINDOW);
        let (state, _) = step(state, false, Timestamp(1000), Duration::ZERO, WINDOW);
        assert_eq!(state.map(|s| s.phase), Some(Phase::Resolved));
        let later = Timestamp(1000).plus(WINDOW);
        assert_eq!(step(state, false, later, Duration::ZERO, WINDOW), (None, None));
        // Down again after that: a fresh outage, said at once.
        assert_eq!(step(None, true, later, Duration::ZERO, WINDOW).1, Some(Said::Fire));
    }
}
