//! The verdict of one health check, sans-IO: fed each check's outcome and the time, it says
//! whether the address it guards may be announced.
//!
//! Rules:
//! - it starts unhealthy: nothing is announced until `rise` checks in a row have passed;
//! - healthy, it turns unhealthy after `fall` failures in a row (a check that timed out is a
//!   failure);
//! - a checker that stalls must not keep a route alive: healthy, and no result for
//!   `fall × interval + timeout`, it turns unhealthy, and needs `rise` fresh passes again;
//! - during `startup_grace` after the start, failures are recorded but not counted: a server
//!   that takes a while to come up does not log a string of failures (passes count at once).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How a check is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Policy {
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    pub startup_grace: Duration,
}

impl Default for Policy {
    /// 1 s interval, 800 ms timeout, rise 2, fall 3, no grace.
    fn default() -> Policy {
        Policy {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(800),
            rise: 2,
            fall: 3,
            startup_grace: Duration::ZERO,
        }
    }
}

impl Policy {
    /// Healthy, how long without a result before the checker counts as stalled.
    pub fn stall_after(&self) -> Duration {
        self.interval * self.fall + self.timeout
    }
}

/// One check's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// Why: the status, the error, "timed out after 800 ms".
    Fail(String),
}

/// One result as `kbgp why` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub at: Instant,
    pub outcome: Outcome,
    pub latency: Duration,
    /// Inside the startup grace: not counted.
    pub in_grace: bool,
}

/// A change of verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub healthy: bool,
    pub reason: String,
}

/// Results kept for display.
const KEPT: usize = 10;

#[derive(Debug)]
pub struct Verdict {
    policy: Policy,
    started: Instant,
    healthy: bool,
    passes: u32,
    failures: u32,
    last_result: Option<Instant>,
    recent: VecDeque<Record>,
    reason: String,
    since: Instant,
    transitions: u64,
}

impl Verdict {
    pub fn new(now: Instant, policy: Policy) -> Verdict {
        Verdict {
            policy,
            started: now,
            healthy: false,
            passes: 0,
            failures: 0,
            last_result: None,
            recent: VecDeque::new(),
            reason: format!("starting: {} passing checks in a row needed", policy.rise),
            since: now,
            transitions: 0,
        }
    }

    pub fn healthy(&self) -> bool {
        self.healthy
    }

    /// Why the verdict is what it is.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// When the verdict last changed (or the start).
    pub fn since(&self) -> Instant {
        self.since
    }

    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    /// The latest results, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &Record> {
        self.recent.iter()
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// New timings or thresholds for the same check: the verdict and the counts stay, and
    /// apply to the new thresholds from the next result.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// One check finished at `now` after `latency`.
    pub fn record(&mut self, now: Instant, outcome: Outcome, latency: Duration) -> Option<Change> {
        let in_grace = now < self.started + self.policy.startup_grace;
        if self.recent.len() == KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(Record { at: now, outcome: outcome.clone(), latency, in_grace });
        self.last_result = Some(now);
        match outcome {
            Outcome::Pass => {
                self.failures = 0;
                self.passes = self.passes.saturating_add(1);
                if !self.healthy && self.passes >= self.policy.rise {
                    let why = format!("{} checks passed in a row", self.passes);
                    return self.turn(now, true, why);
                }
            }
            Outcome::Fail(_) if in_grace => {}
            Outcome::Fail(why) => {
                self.passes = 0;
                self.failures = self.failures.saturating_add(1);
                if self.healthy && self.failures >= self.policy.fall {
                    let why = format!("{} checks failed in a row, the last: {why}", self.failures);
                    return self.turn(now, false, why);
                }
                if !self.healthy {
                    self.reason = format!("failing: {why}");
                }
            }
        }
        None
    }

    /// While healthy: when the checker counts as stalled without a new result.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.healthy.then(|| self.last_result.unwrap_or(self.since) + self.policy.stall_after())
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Option<Change> {
        if self.poll_timeout().is_some_and(|t| t <= now) {
            self.passes = 0;
            self.failures = 0;
            let why = format!("no check result for {} ms: the checker stalled", self.policy.stall_after().as_millis());
            return self.turn(now, false, why);
        }
        None
    }

    fn turn(&mut self, now: Instant, healthy: bool, reason: String) -> Option<Change> {
        self.healthy = healthy;
        self.reason = reason.clone();
        self.since = now;
        self.transitions += 1;
        Some(Change { healthy, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn fail() -> Outcome {
        Outcome::Fail("HTTP 500".into())
    }

    /// Feeds one result per interval, from `t`; returns the index of the result that changed
    /// the verdict, and the change.
    fn feed(v: &mut Verdict, t: &mut Instant, outcomes: &[Outcome]) -> Vec<(usize, Change)> {
        let mut changes = vec![];
        for (i, o) in outcomes.iter().enumerate() {
            *t += v.policy().interval;
            if let Some(c) = v.handle_timeout(*t) {
                changes.push((i, c));
            }
            if let Some(c) = v.record(*t, o.clone(), ms(5)) {
                changes.push((i, c));
            }
        }
        changes
    }

    #[test]
    fn nothing_until_rise_passes_in_a_row_and_down_after_fall_failures() {
        let mut t = Instant::now();
        let mut v = Verdict::new(t, Policy::default());
        assert!(!v.healthy());
        let c = feed(&mut v, &mut t, &[Outcome::Pass, fail(), Outcome::Pass, Outcome::Pass]);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].0, c[0].1.healthy), (3, true), "a failure resets the rise");
        // One or two failures do not withdraw; the third in a row does.
        let c = feed(&mut v, &mut t, &[fail(), Outcome::Pass, fail(), fail(), fail()]);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].0, c[0].1.healthy), (4, false));
        assert!(c[0].1.reason.contains("3 checks failed in a row, the last: HTTP 500"), "{}", c[0].1.reason);
        assert_eq!(v.transitions(), 2);
    }

    #[test]
    fn a_stalled_checker_withdraws_and_then_needs_rise_fresh_passes() {
        let mut t = Instant::now();
        let mut v = Verdict::new(t, Policy::default());
        feed(&mut v, &mut t, &[Outcome::Pass, Outcome::Pass]);
        assert!(v.healthy());
        let last = t;
        // No results: healthy until fall × interval + timeout = 3.8 s, then not.
        assert_eq!(v.poll_timeout(), Some(last + ms(3800)));
        assert_eq!(v.handle_timeout(last + ms(3799)), None);
        let c = v.handle_timeout(last + ms(3800)).unwrap();
        assert!(!c.healthy && c.reason.contains("the checker stalled"), "{c:?}");
        assert_eq!(v.poll_timeout(), None, "unhealthy: nothing to time out");
        // It resumes: one pass is not enough.
        t = last + ms(5000);
        assert_eq!(v.record(t, Outcome::Pass, ms(5)), None);
        assert!(v.record(t + ms(1000), Outcome::Pass, ms(5)).unwrap().healthy);
    }

    #[test]
    fn startup_grace_ignores_failures_but_not_passes() {
        let mut t = Instant::now();
        let policy = Policy { startup_grace: Duration::from_secs(5), ..Policy::default() };
        let mut v = Verdict::new(t, policy);
        let c = feed(&mut v, &mut t, &[fail(), Outcome::Pass, fail(), Outcome::Pass]);
        assert_eq!((c.len(), v.healthy()), (1, true), "failures in the grace do not reset the rise");
        assert!(v.recent().filter(|r| r.in_grace).count() == 4);
        // After the grace, failures count.
        let c = feed(&mut v, &mut t, &[fail(), fail(), fail()]);
        assert_eq!(c.last().map(|c| c.1.healthy), Some(false));
    }

    #[test]
    fn only_the_latest_results_are_kept() {
        let mut t = Instant::now();
        let mut v = Verdict::new(t, Policy::default());
        feed(&mut v, &mut t, &vec![Outcome::Pass; 25]);
        assert_eq!(v.recent().count(), KEPT);
        assert_eq!(v.recent().last().map(|r| r.at), Some(t));
    }
}
