//! Health rules: thresholds on a running job's figures, like the seeds' monitors.
//!
//! A rule is `FIGURE>VALUE` or `FIGURE<VALUE`, optionally followed by ` for DURATION`:
//!
//! | figure | meaning | value |
//! |---|---|---|
//! | `lag` | output frontier behind the wall clock | a duration: `30s` |
//! | `event_lag` | output frontier behind the largest event time | a duration |
//! | `p99` | output latency p99 (live inputs) | a duration: `500ms` |
//! | `rejected_share` | rejected lines / lines read, since the start | a fraction `0.01` or `1%` |
//! | `late_share` | late records / records read, since the start | a fraction or percentage |
//! | `input_rate` | records read per second over the last second | a number: `input_rate<1 for 5m` is "no input for 5 minutes" |
//! | `intake_fill` | the live intake queue's fill (backpressure) | a fraction or percentage |
//!
//! Contract: rules are checked once a second. A breach *episode* begins when the
//! condition has held at every check for `DURATION` (at once when there is none); it
//! fires once: one line on stderr, and `kappa_health_breaches_total{rule}` grows by
//! one. It ends at the first check where the condition does not hold (a recovery line).
//! A figure that is undefined at the moment (no frontier yet, no latency for a file)
//! never breaches.

use std::collections::VecDeque;
use std::str::FromStr;
use std::time::{Duration as StdDuration, Instant};

use serde::Serialize;

use super::figures::Figures;
use super::history::Sample;
use crate::time::{Duration, Millis};

/// Breach events kept for the dashboard.
pub const EVENTS: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Figure {
    Lag,
    EventLag,
    P99,
    RejectedShare,
    LateShare,
    InputRate,
    IntakeFill,
}

/// One parsed rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// The rule as written, the `rule` label.
    pub text: String,
    figure: Figure,
    above: bool,
    threshold: f64,
    hold: StdDuration,
}

impl FromStr for Rule {
    type Err = String;

    fn from_str(text: &str) -> Result<Rule, String> {
        let bad = |why: &str| format!("invalid health rule '{text}': {why}");
        let (condition, hold) = match text.split_once(" for ") {
            Some((c, h)) => (c, h.trim().parse::<Duration>().map_err(|e| bad(&e))?.to_std()),
            None => (text, StdDuration::ZERO),
        };
        let at = condition.find(['>', '<']).ok_or_else(|| bad("expected FIGURE>VALUE or FIGURE<VALUE"))?;
        let (name, value) = (condition[..at].trim(), condition[at + 1..].trim());
        let figure = match name {
            "lag" => Figure::Lag,
            "event_lag" => Figure::EventLag,
            "p99" => Figure::P99,
            "rejected_share" => Figure::RejectedShare,
            "late_share" => Figure::LateShare,
            "input_rate" => Figure::InputRate,
            "intake_fill" => Figure::IntakeFill,
            _ => {
                return Err(bad(&format!(
                    "unknown figure '{name}' (lag, event_lag, p99, rejected_share, late_share, input_rate, intake_fill)"
                )));
            }
        };
        let threshold = match figure {
            Figure::Lag | Figure::EventLag | Figure::P99 => {
                value.parse::<Duration>().map_err(|e| bad(&e))?.millis() as f64 / 1000.0
            }
            _ => match value.strip_suffix('%') {
                Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
                None => value.parse::<f64>(),
            }
            .map_err(|_| bad(&format!("'{value}' is not a number")))?,
        };
        Ok(Rule {
            text: text.trim().to_owned(),
            figure,
            above: condition.as_bytes()[at] == b'>',
            threshold,
            hold,
        })
    }
}

impl Rule {
    /// The rule's figure now, if defined.
    fn value(&self, f: &Figures, s: &Sample) -> Option<f64> {
        let share = |n: u64| (f.read > 0).then(|| n as f64 / f.read as f64);
        match self.figure {
            Figure::Lag => f.lag_wall_seconds,
            Figure::EventLag => f.lag_event_seconds,
            Figure::P99 => f.latency.filter(|l| l.count > 0).map(|l| l.p99),
            Figure::RejectedShare => share(f.rejected),
            Figure::LateShare => share(f.late),
            // After the input has ended, a quiet input is not a fault.
            Figure::InputRate => s.in_rate.filter(|_| !f.closed),
            Figure::IntakeFill => s.intake_fill,
        }
    }
}

/// A rule and its episodes so far.
#[derive(Clone, Debug, Serialize)]
pub struct RuleState {
    /// The rule as written.
    pub rule: String,
    /// Whether an episode is firing now.
    pub firing: bool,
    /// Episodes that have fired.
    pub breaches: u64,
    /// The figure at the last check.
    pub value: Option<f64>,
    #[serde(skip)]
    held_since: Option<Instant>,
}

/// One fired or ended episode, for the dashboard's alerts.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// When, in milliseconds since the Unix epoch.
    pub unix_ms: Millis,
    /// The rule.
    pub rule: String,
    /// `breach` or `recovered`.
    pub what: &'static str,
    /// The figure then.
    pub value: Option<f64>,
}

/// Every rule's state and the latest events.
#[derive(Debug, Default)]
pub struct Health {
    rules: Vec<Rule>,
    /// Each rule's state, in the order given.
    pub states: Vec<RuleState>,
    /// The last [`EVENTS`] events, oldest first.
    pub events: VecDeque<Event>,
}

impl Health {
    /// Health with these rules.
    pub fn new(rules: Vec<Rule>) -> Health {
        let states = rules
            .iter()
            .map(|r| RuleState {
                rule: r.text.clone(),
                firing: false,
                breaches: 0,
                value: None,
                held_since: None,
            })
            .collect();
        Health { rules, states, events: VecDeque::new() }
    }

    /// Checks every rule against the figures `f` and the latest sample `s` at `now`;
    /// returns the lines to print, one per episode that fired or ended.
    pub fn check(&mut self, f: &Figures, s: &Sample, now: Instant) -> Vec<String> {
        let mut lines = Vec::new();
        for (rule, state) in self.rules.iter().zip(&mut self.states) {
            let value = rule.value(f, s);
            state.value = value;
            let holds =
                value.is_some_and(|v| if rule.above { v > rule.threshold } else { v < rule.threshold });
            let what = if holds {
                let since = *state.held_since.get_or_insert(now);
                if state.firing || now.duration_since(since) < rule.hold {
                    continue;
                }
                state.firing = true;
                state.breaches += 1;
                "breach"
            } else {
                state.held_since = None;
                if !std::mem::take(&mut state.firing) {
                    continue;
                }
                "recovered"
            };
            let shown = value.map_or("undefined".into(), |v| format!("{v:.3}"));
            lines.push(format!("health: {what}: {} (now {shown})", rule.text));
            if self.events.len() == EVENTS {
                self.events.pop_front();
            }
            self.events.push_back(Event { unix_ms: f.unix_ms, rule: rule.text.clone(), what, value });
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_durations_fractions_and_percentages() {
        let r: Rule = "lag>30s for 1m".parse().unwrap();
        assert_eq!(
            (r.figure, r.above, r.threshold, r.hold),
            (Figure::Lag, true, 30.0, StdDuration::from_secs(60))
        );
        assert_eq!("rejected_share>1%".parse::<Rule>().unwrap().threshold, 0.01);
        assert!(!"input_rate<1 for 5m".parse::<Rule>().unwrap().above);
        assert!("speed>3".parse::<Rule>().unwrap_err().contains("unknown figure 'speed'"));
        assert!("lag>soon".parse::<Rule>().is_err());
    }

    #[test]
    fn an_episode_fires_once_after_holding_and_ends_when_the_condition_clears() {
        let mut h = Health::new(vec!["lag>10s for 2s".parse().unwrap()]);
        let t0 = Instant::now();
        let at = |s: u64| t0 + StdDuration::from_secs(s);
        let lag = |v: f64| Figures { lag_wall_seconds: Some(v), ..Figures::default() };
        let s = Sample::default();
        let fired: Vec<usize> = [20.0, 20.0, 20.0, 20.0, 5.0, 20.0, 20.0, 20.0]
            .iter()
            .enumerate()
            .map(|(i, v)| h.check(&lag(*v), &s, at(i as u64)).len())
            .collect();
        // Breach at 2s (held 2s), once; recovery at 4s; a new episode fires at 7s.
        assert_eq!(fired, vec![0, 0, 1, 0, 1, 0, 0, 1]);
        assert_eq!(h.states[0].breaches, 2);
        assert!(h.states[0].firing);
        assert_eq!(
            h.events.iter().map(|e| e.what).collect::<Vec<_>>(),
            vec!["breach", "recovered", "breach"]
        );
        assert!(h.check(&Figures::default(), &s, at(9)).len() == 1, "an undefined figure ends the episode");
    }
}
