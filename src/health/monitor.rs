//! Every health check of the node: which ones run, and their verdicts, sans-IO.
//!
//! The daemon runs the checks (sockets, TLS) and hands each result here with the check's
//! generation, so that a result of a check that has since been replaced or removed is
//! dropped. [`Monitor::sync`] follows the configuration: a new check starts unhealthy, a
//! check whose target changed starts over, one whose timings or thresholds changed keeps its
//! verdict.

use super::verdict::{Change, Outcome, Verdict};
use crate::config::vip::HealthCheck;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// One running check.
#[derive(Debug)]
pub struct Check {
    pub generation: u64,
    pub spec: HealthCheck,
    pub verdict: Verdict,
}

/// What [`Monitor::sync`] asks the caller to do.
#[derive(Debug, Default, PartialEq)]
pub struct Sync {
    /// Start (or restart) these checkers: name, generation, what to check.
    pub start: Vec<(String, u64, HealthCheck)>,
    /// Stop these checkers.
    pub stop: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Monitor {
    checks: BTreeMap<String, Check>,
    generations: u64,
}

impl Monitor {
    /// Makes the running checks those of `wanted` (name, check).
    pub fn sync<'a>(&mut self, now: Instant, wanted: impl IntoIterator<Item = (&'a str, &'a HealthCheck)>) -> Sync {
        let mut out = Sync::default();
        let mut keep = BTreeSet::new();
        for (name, spec) in wanted {
            keep.insert(name.to_string());
            match self.checks.get_mut(name) {
                Some(c) if c.spec == *spec => {}
                Some(c) if c.spec.target == spec.target && c.spec.expected_status == spec.expected_status => {
                    // Same check, other timings: keep the verdict; the checker restarts with them.
                    self.generations += 1;
                    c.generation = self.generations;
                    c.spec = spec.clone();
                    c.verdict.set_policy(spec.policy);
                    out.start.push((name.to_string(), c.generation, spec.clone()));
                }
                _ => {
                    self.generations += 1;
                    let c = Check {
                        generation: self.generations,
                        spec: spec.clone(),
                        verdict: Verdict::new(now, spec.policy),
                    };
                    out.start.push((name.to_string(), c.generation, spec.clone()));
                    self.checks.insert(name.to_string(), c);
                }
            }
        }
        self.checks.retain(|name, _| {
            let k = keep.contains(name);
            if !k {
                out.stop.push(name.clone());
            }
            k
        });
        out
    }

    /// A result of checker `name` of `generation`; the change of verdict it caused, if any.
    pub fn record(
        &mut self,
        now: Instant,
        name: &str,
        generation: u64,
        outcome: Outcome,
        latency: Duration,
    ) -> Option<Change> {
        let c = self.checks.get_mut(name).filter(|c| c.generation == generation)?;
        c.verdict.record(now, outcome, latency)
    }

    /// The next time a healthy check counts as stalled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.checks.values().filter_map(|c| c.verdict.poll_timeout()).min()
    }

    /// Checks that stalled by `now`, with their change.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<(String, Change)> {
        self.checks.iter_mut().filter_map(|(n, c)| Some((n.clone(), c.verdict.handle_timeout(now)?))).collect()
    }

    /// The names of the checks that pass.
    pub fn healthy(&self) -> BTreeSet<String> {
        self.checks.iter().filter(|(_, c)| c.verdict.healthy()).map(|(n, _)| n.clone()).collect()
    }

    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Check)> {
        self.checks.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::vip::Target;
    use crate::health::Policy;

    fn tcp(port: u16, interval_ms: u64) -> HealthCheck {
        HealthCheck {
            target: Target::Tcp { host: "127.0.0.1".into(), port },
            expected_status: 200,
            policy: Policy { interval: Duration::from_millis(interval_ms), ..Policy::default() },
        }
    }

    fn pass(m: &mut Monitor, t: Instant, name: &str, generation: u64) -> Option<Change> {
        m.record(t, name, generation, Outcome::Pass, Duration::from_millis(1))
    }

    #[test]
    fn checks_follow_the_configuration_and_old_results_are_dropped() {
        let t = Instant::now();
        let mut m = Monitor::default();
        let a = tcp(6443, 1000);
        let s = m.sync(t, [("api", &a)]);
        assert_eq!(s.start, vec![("api".to_string(), 1, a.clone())]);
        assert!(m.sync(t, [("api", &a)]) == Sync::default(), "unchanged: nothing to do");
        assert_eq!(pass(&mut m, t, "api", 1), None);
        assert!(pass(&mut m, t, "api", 1).unwrap().healthy);
        assert_eq!(m.healthy(), BTreeSet::from(["api".to_string()]));

        // Faster checks, same target: still healthy, the checker restarts with generation 2.
        let faster = tcp(6443, 200);
        let s = m.sync(t, [("api", &faster)]);
        assert_eq!(s.start[0].1, 2);
        assert!(m.get("api").unwrap().verdict.healthy());
        assert_eq!(m.get("api").unwrap().verdict.policy().interval, Duration::from_millis(200));
        // A late result of generation 1 is dropped.
        for _ in 0..5 {
            assert_eq!(m.record(t, "api", 1, Outcome::Fail("x".into()), Duration::ZERO), None);
        }
        assert!(m.get("api").unwrap().verdict.healthy());

        // Another target: a new verdict, unhealthy until it rises.
        let other = tcp(8443, 200);
        m.sync(t, [("api", &other)]);
        assert!(m.healthy().is_empty());

        // Removed: stopped, forgotten.
        let s = m.sync(t, []);
        assert_eq!(s.stop, vec!["api".to_string()]);
        assert_eq!(pass(&mut m, t, "api", 3), None);
    }

    #[test]
    fn the_earliest_stall_is_the_timeout() {
        let t = Instant::now();
        let mut m = Monitor::default();
        let (a, b) = (tcp(1, 1000), tcp(2, 100));
        m.sync(t, [("a", &a), ("b", &b)]);
        for _ in 0..2 {
            pass(&mut m, t, "a", 1);
            pass(&mut m, t, "b", 2);
        }
        // b: 3 × 100 ms + 800 ms.
        assert_eq!(m.poll_timeout(), Some(t + Duration::from_millis(1100)));
        let c = m.handle_timeout(t + Duration::from_millis(1100));
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].0.as_str(), c[0].1.healthy), ("b", false));
        assert_eq!(m.healthy(), BTreeSet::from(["a".to_string()]));
    }
}
