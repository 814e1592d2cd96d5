//! The breaker's state machine, with time passed in: no clock, no lock, no I/O, so every
//! rule can be checked by property tests over any sequence of calls and instants.
//!
//! - **Closed**: calls pass. Outcomes are counted in a tumbling window of
//!   `window` length; once the window holds at least `min_calls` calls and at least
//!   `failure_percent` % of them failed, the breaker opens.
//! - **Open**: calls are refused until `cooldown` has passed since it opened.
//! - **Half-open**: one call — the probe — passes; every other call is refused while it runs.
//!   Its success closes the breaker (with a fresh window), its failure opens it again for
//!   another `cooldown`. A probe that never reports (its caller was cancelled) frees the slot
//!   for the next call.
//!
//! ## Why a tumbling window rather than a sliding one?
//! Two counters and a start instant, nothing per call: the state stays a few words whatever
//! the traffic. A tumbling window can let a burst straddling its edge go unseen once; the
//! next window sees the outage all the same, within `window`.

use std::time::{Duration, Instant};

use super::{BreakerSettings, BreakerState};

/// What the machine says about a call about to be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Make the call and report its outcome with this ticket.
    Allowed(Ticket),
    /// Do not make it; the breaker may let calls through again in `retry_after`.
    Refused {
        /// Time until the cool-down ends (zero while a probe is running).
        retry_after: Duration,
    },
}

/// Which kind of call an outcome belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ticket {
    /// A call of the closed breaker, counted in the window it started in.
    Counted {
        /// Start of the window the call was admitted in.
        window: Instant,
    },
    /// The one call of the half-open breaker.
    Probe,
}

/// A change of state, for logs and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transition {
    pub(crate) from: BreakerState,
    pub(crate) to: BreakerState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        window: Instant,
        calls: u32,
        failures: u32,
    },
    Open {
        until: Instant,
    },
    HalfOpen {
        probing: bool,
    },
}

/// The state machine of one breaker.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    settings: BreakerSettings,
    state: State,
}

impl Machine {
    /// A closed breaker whose first window starts at `now`.
    pub(crate) fn new(settings: BreakerSettings, now: Instant) -> Self {
        Self {
            settings,
            state: State::Closed {
                window: now,
                calls: 0,
                failures: 0,
            },
        }
    }

    /// The state at `now`, moving from open to half-open once the cool-down is over.
    pub(crate) fn state(&mut self, now: Instant) -> (BreakerState, Option<Transition>) {
        let transition = self.cool_down(now);
        (self.public_state(), transition)
    }

    fn public_state(&self) -> BreakerState {
        match self.state {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn cool_down(&mut self, now: Instant) -> Option<Transition> {
        match self.state {
            State::Open { until } if now >= until => {
                self.state = State::HalfOpen { probing: false };
                Some(Transition {
                    from: BreakerState::Open,
                    to: BreakerState::HalfOpen,
                })
            }
            _ => None,
        }
    }

    /// May a call start at `now`?
    pub(crate) fn admit(&mut self, now: Instant) -> (Admission, Option<Transition>) {
        let transition = self.cool_down(now);
        let admission = match &mut self.state {
            State::Closed {
                window,
                calls,
                failures,
            } => {
                if now.saturating_duration_since(*window) >= self.settings.window {
                    *window = now;
                    *calls = 0;
                    *failures = 0;
                }
                Admission::Allowed(Ticket::Counted { window: *window })
            }
            State::Open { until } => Admission::Refused {
                retry_after: until.saturating_duration_since(now),
            },
            State::HalfOpen { probing } if *probing => Admission::Refused {
                retry_after: Duration::ZERO,
            },
            State::HalfOpen { probing } => {
                *probing = true;
                Admission::Allowed(Ticket::Probe)
            }
        };
        (admission, transition)
    }

    /// The call of `ticket` ended at `now`; `failed` says whether the backend failed.
    pub(crate) fn record(
        &mut self,
        ticket: Ticket,
        failed: bool,
        now: Instant,
    ) -> Option<Transition> {
        match (ticket, &mut self.state) {
            (
                Ticket::Counted { window: started },
                State::Closed {
                    window,
                    calls,
                    failures,
                },
            ) => {
                // An outcome of an older window, or of a closed state that opened and closed
                // again meanwhile, says nothing about this one.
                if started != *window {
                    return None;
                }
                *calls += 1;
                *failures += u32::from(failed);
                if *calls >= self.settings.min_calls
                    && u64::from(*failures) * 100
                        >= u64::from(self.settings.failure_percent) * u64::from(*calls)
                {
                    self.state = State::Open {
                        until: now + self.settings.cooldown,
                    };
                    return Some(Transition {
                        from: BreakerState::Closed,
                        to: BreakerState::Open,
                    });
                }
                None
            }
            (Ticket::Probe, State::HalfOpen { probing: true }) => {
                if failed {
                    self.state = State::Open {
                        until: now + self.settings.cooldown,
                    };
                    Some(Transition {
                        from: BreakerState::HalfOpen,
                        to: BreakerState::Open,
                    })
                } else {
                    self.state = State::Closed {
                        window: now,
                        calls: 0,
                        failures: 0,
                    };
                    Some(Transition {
                        from: BreakerState::HalfOpen,
                        to: BreakerState::Closed,
                    })
                }
            }
            // Late outcomes of calls admitted in an earlier state change nothing.
            _ => None,
        }
    }

    /// The call of `ticket` was abandoned before it said how it went.
    pub(crate) fn abandon(&mut self, ticket: Ticket) {
        if let (Ticket::Probe, State::HalfOpen { probing }) = (ticket, &mut self.state) {
            *probing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            failure_percent: 50,
            min_calls: 4,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(5),
        }
    }

    fn call(machine: &mut Machine, failed: bool, now: Instant) -> Admission {
        let (admission, _) = machine.admit(now);
        if let Admission::Allowed(ticket) = admission {
            machine.record(ticket, failed, now);
        }
        admission
    }

    #[test]
    fn it_opens_at_the_threshold_and_closes_after_a_good_probe() {
        let start = Instant::now();
        let mut machine = Machine::new(settings(), start);
        for failed in [true, false, true] {
            call(&mut machine, failed, start);
        }
        assert_eq!(
            machine.state(start).0,
            BreakerState::Closed,
            "below min_calls"
        );
        call(&mut machine, false, start);
        assert_eq!(machine.state(start).0, BreakerState::Open, "2 of 4 failed");
        let later = start + Duration::from_secs(2);
        assert_eq!(
            machine.admit(later).0,
            Admission::Refused {
                retry_after: Duration::from_secs(3)
            }
        );
        let cooled = start + Duration::from_secs(5);
        let (probe, transition) = machine.admit(cooled);
        assert_eq!(probe, Admission::Allowed(Ticket::Probe));
        assert_eq!(transition.map(|t| t.to), Some(BreakerState::HalfOpen));
        assert!(matches!(machine.admit(cooled).0, Admission::Refused { .. }));
        let closed = machine.record(Ticket::Probe, false, cooled);
        assert_eq!(closed.map(|t| t.to), Some(BreakerState::Closed));
        assert!(matches!(machine.admit(cooled).0, Admission::Allowed(_)));
    }

    #[test]
    fn a_failed_probe_opens_again_and_an_abandoned_one_frees_the_slot() {
        let start = Instant::now();
        let mut machine = Machine::new(settings(), start);
        for _ in 0..4 {
            call(&mut machine, true, start);
        }
        let cooled = start + Duration::from_secs(5);
        let (Admission::Allowed(probe), _) = machine.admit(cooled) else {
            panic!("no probe after the cool-down");
        };
        machine.abandon(probe);
        let (Admission::Allowed(probe), _) = machine.admit(cooled) else {
            panic!("an abandoned probe kept the slot");
        };
        let reopened = machine.record(probe, true, cooled);
        assert_eq!(reopened.map(|t| t.to), Some(BreakerState::Open));
        assert_eq!(
            machine.admit(cooled + Duration::from_secs(1)).0,
            Admission::Refused {
                retry_after: Duration::from_secs(4)
            }
        );
    }

    #[test]
    fn outcomes_of_an_old_window_do_not_count() {
        let start = Instant::now();
        let mut machine = Machine::new(settings(), start);
        let (Admission::Allowed(old), _) = machine.admit(start) else {
            panic!("closed refused");
        };
        let next = start + Duration::from_secs(11);
        for _ in 0..3 {
            call(&mut machine, true, next);
        }
        machine.record(old, true, next);
        assert_eq!(machine.state(next).0, BreakerState::Closed);
    }

    /// One step of a random history: a call that ends at once, a call left running, the
    /// end or the abandonment of the latest running call.
    #[derive(Debug, Clone)]
    enum Step {
        Call { after_ms: u64, failed: bool },
        Start { after_ms: u64 },
        Finish { failed: bool },
        Abandon,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0u64..3_000, any::<bool>())
                .prop_map(|(after_ms, failed)| Step::Call { after_ms, failed }),
            1 => (0u64..3_000).prop_map(|after_ms| Step::Start { after_ms }),
            1 => any::<bool>().prop_map(|failed| Step::Finish { failed }),
            1 => Just(Step::Abandon),
        ]
    }

    fn any_settings() -> impl Strategy<Value = BreakerSettings> {
        (1u8..=100, 1u32..10, 1u64..20, 1u64..10).prop_map(|(percent, min, window, cooldown)| {
            BreakerSettings {
                failure_percent: percent,
                min_calls: min,
                window: Duration::from_secs(window),
                cooldown: Duration::from_secs(cooldown),
            }
        })
    }

    /// The test's own account of a history, to check the machine's answers against.
    struct Model {
        settings: BreakerSettings,
        /// Calls and failures counted in the machine's current closed window.
        calls: u32,
        failures: u32,
        /// When the breaker last opened.
        opened_at: Option<Instant>,
        /// Calls admitted and not yet finished or abandoned, latest last.
        running: Vec<Ticket>,
    }

    impl Model {
        /// `admit` at `now`, checked: closed admits a counted call; open refuses until the
        /// cool-down ends, saying how long is left, then admits a probe; half-open admits a
        /// probe only when none is running.
        fn admit(
            &mut self,
            machine: &mut Machine,
            now: Instant,
        ) -> Result<Admission, TestCaseError> {
            let before = machine.state(now).0;
            let window_before = current_window(machine);
            let (admission, _) = machine.admit(now);
            let probe_running = self.running.contains(&Ticket::Probe);
            match before {
                BreakerState::Closed => {
                    let counted = matches!(admission, Admission::Allowed(Ticket::Counted { .. }));
                    prop_assert!(counted, "closed refused a call: {:?}", admission);
                    if current_window(machine) != window_before {
                        (self.calls, self.failures) = (0, 0);
                    }
                }
                BreakerState::Open => {
                    // Still cooling down (`state` ends an elapsed cool-down): refused, and the
                    // exact wait is checked below.
                    let refused = matches!(admission, Admission::Refused { .. });
                    prop_assert!(refused, "open let a call through: {:?}", admission);
                    prop_assert!(self.opened_at.is_some(), "open without having opened");
                }
                BreakerState::HalfOpen if probe_running => {
                    prop_assert_eq!(
                        admission,
                        Admission::Refused {
                            retry_after: Duration::ZERO
                        }
                    );
                }
                BreakerState::HalfOpen => {
                    prop_assert_eq!(admission, Admission::Allowed(Ticket::Probe))
                }
            }
            if let Some(opened_at) = self.opened_at {
                let until = opened_at + self.settings.cooldown;
                if now < until {
                    prop_assert_eq!(
                        admission,
                        Admission::Refused {
                            retry_after: until - now
                        }
                    );
                }
            }
            if let Admission::Allowed(ticket) = admission {
                prop_assert!(
                    !(ticket == Ticket::Probe && probe_running),
                    "two probes at once"
                );
            }
            Ok(admission)
        }

        /// `record` at `now`, checked: the breaker opens only on a window of at least
        /// `min_calls` calls of which at least `failure_percent` % failed, or on a failed
        /// probe; it closes only on a successful probe.
        fn record(
            &mut self,
            machine: &mut Machine,
            ticket: Ticket,
            failed: bool,
            now: Instant,
        ) -> Result<(), TestCaseError> {
            if matches!(ticket, Ticket::Counted { window } if Some(window) == current_window(machine))
            {
                self.calls += 1;
                self.failures += u32::from(failed);
            }
            let Some(transition) = machine.record(ticket, failed, now) else {
                return Ok(());
            };
            match (transition.from, transition.to) {
                (BreakerState::Closed, BreakerState::Open) => {
                    let (calls, failures, settings) = (self.calls, self.failures, self.settings);
                    prop_assert!(
                        calls >= settings.min_calls,
                        "opened below min_calls: {calls}"
                    );
                    prop_assert!(
                        u64::from(failures) * 100
                            >= u64::from(settings.failure_percent) * u64::from(calls),
                        "opened below the threshold: {failures} of {calls}"
                    );
                    self.opened_at = Some(now);
                }
                (BreakerState::HalfOpen, BreakerState::Open) => {
                    prop_assert!(ticket == Ticket::Probe && failed);
                    self.opened_at = Some(now);
                }
                (BreakerState::HalfOpen, BreakerState::Closed) => {
                    prop_assert!(ticket == Ticket::Probe && !failed);
                    (self.calls, self.failures) = (0, 0);
                }
                other => prop_assert!(false, "unexpected transition {other:?}"),
            }
            Ok(())
        }
    }

    fn current_window(machine: &Machine) -> Option<Instant> {
        match machine.state {
            State::Closed { window, .. } => Some(window),
            _ => None,
        }
    }

    proptest! {
        /// Whatever the history: never open below the threshold, always refuse while open
        /// before the cool-down ends, exactly one probe at a time when half-open.
        #[test]
        fn the_rules_hold_for_any_history(
            settings in any_settings(),
            steps in prop::collection::vec(step(), 1..200),
        ) {
            let start = Instant::now();
            let mut now = start;
            let mut machine = Machine::new(settings, start);
            let mut model = Model { settings, calls: 0, failures: 0, opened_at: None, running: Vec::new() };
            for step in steps {
                match step {
                    Step::Call { after_ms, failed } => {
                        now += Duration::from_millis(after_ms);
                        if let Admission::Allowed(ticket) = model.admit(&mut machine, now)? {
                            model.record(&mut machine, ticket, failed, now)?;
                        }
                    }
                    Step::Start { after_ms } => {
                        now += Duration::from_millis(after_ms);
                        if let Admission::Allowed(ticket) = model.admit(&mut machine, now)? {
                            model.running.push(ticket);
                        }
                    }
                    Step::Finish { failed } => {
                        if let Some(ticket) = model.running.pop() {
                            model.record(&mut machine, ticket, failed, now)?;
                        }
                    }
                    Step::Abandon => {
                        if let Some(ticket) = model.running.pop() {
                            machine.abandon(ticket);
                        }
                    }
                }
            }
        }
    }
}
