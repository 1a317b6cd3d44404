//! Alert rules over sensor readings, with episodes: one row when an episode starts and
//! one when it resolves, never one per reading.
//!
//! # The rules file
//!
//! One rule per line: a name, a severity (`info`, `warning` or `critical`) and a
//! condition. Blank lines and lines starting with `#` are ignored.
//!
//! ```text
//! # name       severity  condition
//! hot          critical  temperature > 45 for 30s
//! shaking      warning   vibration >= 3.000 for 5 readings
//! alert_share  warning   alert share > 15% over 5m
//! offline      critical  silent for 2m
//! heating      warning   temperature rate > 5 per 1m
//! ```
//!
//! Metrics are `temperature`, `humidity`, `pressure`, `vibration` and
//! `power_consumption`; values are decimals with at most the metric's decimals, so every
//! comparison is exact. A bad line is a one-line error naming it: `line 3: …`.
//!
//! # What each condition means, per sensor, in event-time order
//!
//! * **`METRIC OP VALUE for DURATION`** (`OP` is `>`, `>=`, `<`, `<=`): a *run* is a
//!   maximal sequence of consecutive readings that satisfy the comparison. The episode
//!   starts at the first reading of a run whose time is at least `DURATION` after the
//!   run's first reading (`for 0s`: at once), and resolves at the first reading that
//!   does not satisfy it. **`for N readings`**: starts at the run's N-th reading.
//! * **`alert share > P% over DURATION`**: the sensor's readings are cut into tumbling
//!   windows of `DURATION`. When a window with readings closes, the episode starts if
//!   more than `P`% of them (exactly: `100 · alerts > P · count`) have status `alert`, and
//!   resolves if not; rows are stamped with the window's end. A window without readings
//!   changes nothing.
//! * **`silent for DURATION`**: the sensor is offline once the watermark passes its last
//!   reading plus `DURATION` with no reading after it; the episode starts at that time
//!   and resolves at its next reading. Silence is decided by the watermark, never the
//!   wall clock. The rows depend only on the readings, not on which watermarks the
//!   operator happens to observe: a gap longer than `DURATION` between two readings is
//!   an episode from `last + DURATION` to the next reading, whenever it is noticed. When
//!   an input ends, the watermark passes every time (as it closes every window), so
//!   each sensor's final silence starts an episode at its last reading plus `DURATION`
//!   that never resolves; a live job learns it as soon as the watermark passes.
//! * **`METRIC rate OP VALUE per DURATION`**: between a reading and the sensor's previous
//!   one (at an earlier time), the change per `DURATION`, compared exactly by
//!   cross-multiplying (`Δx · DURATION OP VALUE · Δt`). The episode starts at the first
//!   reading where it holds and resolves at the first where it does not.

use std::cmp::Ordering;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::operators::keyed::KeyLogic;
use crate::record::sensor::{DECIMALS, METRICS, Status};
use crate::sink::{Cell, Tabular};
use crate::time::{Duration, Millis};

/// How bad an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    /// For information.
    Info,
    /// Needs attention.
    Warning,
    /// Needs action now.
    Critical,
}

impl Severity {
    /// The name used in the rules file and the output.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

impl Op {
    /// Whether `a OP b`.
    #[inline]
    pub fn holds<N: Ord>(self, a: N, b: N) -> bool {
        match self {
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
        }
    }
}

/// How long a threshold must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Hold {
    /// For this long in event time.
    For(Duration),
    /// For this many consecutive readings (at least 1).
    Readings(u64),
}

/// A rule's condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    /// A metric compared with a value, held for a while.
    Threshold {
        /// Index into [`METRICS`].
        metric: usize,
        /// The comparison.
        op: Op,
        /// The value, in the metric's units.
        value: i64,
        /// How long it must hold.
        hold: Hold,
    },
    /// The share of alert-status readings in tumbling windows above a limit.
    AlertShare {
        /// The limit in percent (exclusive).
        percent: u64,
        /// The window length.
        window: Duration,
    },
    /// No reading for a while.
    Silent {
        /// How long.
        after: Duration,
    },
    /// The change between consecutive readings per duration compared with a value.
    Rate {
        /// Index into [`METRICS`].
        metric: usize,
        /// The comparison.
        op: Op,
        /// The change, in the metric's units.
        value: i64,
        /// Per this long.
        per: Duration,
    },
}

/// One alert rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Its name, printed in alerts.
    pub name: CompactString,
    /// Its severity.
    pub severity: Severity,
    /// When it fires.
    pub condition: Condition,
}

fn parse_value(text: &str, metric: usize) -> Result<i64, String> {
    let mut s = crate::record::json::Scan::new(text);
    match s.number() {
        Ok(n) if s.at_end() => n.fixed(DECIMALS[metric]).map_err(|e| match e {
            crate::money::MoneyError::TooPrecise => {
                format!("'{text}' has more than {} decimals for {}", DECIMALS[metric], METRICS[metric])
            }
            _ => format!("'{text}' is out of range"),
        }),
        _ => Err(format!("'{text}' is not a number")),
    }
}

fn parse_op(text: &str) -> Result<Op, String> {
    match text {
        ">" => Ok(Op::Gt),
        ">=" => Ok(Op::Ge),
        "<" => Ok(Op::Lt),
        "<=" => Ok(Op::Le),
        other => Err(format!("'{other}' is not a comparison (>, >=, < or <=)")),
    }
}

fn parse_metric(text: &str) -> Result<usize, String> {
    METRICS
        .iter()
        .position(|m| *m == text)
        .ok_or_else(|| format!("unknown metric '{text}' (expected {})", METRICS.join(", ")))
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    text.parse::<Duration>()
}

const SHAPES: &str = "expected METRIC OP VALUE for DURATION|N readings, alert share > P% over DURATION, silent for DURATION, or METRIC rate OP VALUE per DURATION";

fn parse_condition(words: &[&str]) -> Result<Condition, String> {
    match words {
        ["alert", "share", ">", percent, "over", window] => {
            let percent = percent
                .strip_suffix('%')
                .and_then(|p| p.parse::<u64>().ok())
                .filter(|p| *p <= 100)
                .ok_or_else(|| format!("'{percent}' is not a whole percentage such as 15%"))?;
            let window = parse_duration(window)?;
            if window.millis() == 0 {
                return Err("the window must be longer than 0".into());
            }
            Ok(Condition::AlertShare { percent, window })
        }
        ["silent", "for", after] => {
            let after = parse_duration(after)?;
            if after.millis() == 0 {
                return Err("silent for 0 would always be true".into());
            }
            Ok(Condition::Silent { after })
        }
        [metric, "rate", op, value, "per", per] => {
            let metric = parse_metric(metric)?;
            let per = parse_duration(per)?;
            if per.millis() == 0 {
                return Err("per 0 is not a rate".into());
            }
            Ok(Condition::Rate { metric, op: parse_op(op)?, value: parse_value(value, metric)?, per })
        }
        [metric, op, value, "for", rest @ ..] => {
            let metric = parse_metric(metric)?;
            let (op, value) = (parse_op(op)?, parse_value(value, metric)?);
            let hold = match rest {
                [n, "readings" | "reading"] => Hold::Readings(
                    n.parse::<u64>()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| format!("'{n}' readings: need 1 or more"))?,
                ),
                [d] => Hold::For(parse_duration(d)?),
                _ => return Err(SHAPES.into()),
            };
            Ok(Condition::Threshold { metric, op, value, hold })
        }
        _ => Err(SHAPES.into()),
    }
}

/// Parses a rules file; an error names the line: `line 3: unknown metric 'temp' …`.
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, String> {
    let mut rules: Vec<Rule> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |e: String| format!("line {}: {e}", i + 1);
        let words: Vec<&str> = line.split_whitespace().collect();
        let [name, severity, condition @ ..] = words.as_slice() else {
            return Err(at(format!("expected NAME SEVERITY CONDITION, found '{line}'")));
        };
        if condition.is_empty() {
            return Err(at(format!("expected NAME SEVERITY CONDITION, found '{line}'")));
        }
        let severity = match *severity {
            "info" => Severity::Info,
            "warning" => Severity::Warning,
            "critical" => Severity::Critical,
            other => {
                return Err(at(format!("unknown severity '{other}' (expected info, warning or critical)")));
            }
        };
        if rules.iter().any(|r| r.name == *name) {
            return Err(at(format!("rule '{name}' is defined twice")));
        }
        let condition = parse_condition(condition).map_err(at)?;
        rules.push(Rule { name: (*name).into(), severity, condition });
    }
    if rules.is_empty() {
        return Err("no rules".into());
    }
    Ok(rules)
}

/// What a rule sees of one reading: its metrics and its status.
pub type Observation = ([i64; 5], Status);

/// An episode starting or resolving.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Edge {
    /// The episode starts.
    Start,
    /// The episode resolves.
    End,
}

/// One alert row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// When the episode started or resolved (event time).
    pub time: Millis,
    /// The rule's name.
    pub rule: CompactString,
    /// The rule's severity.
    pub severity: Severity,
    /// The sensor.
    pub sensor: CompactString,
    /// Start or end.
    pub edge: Edge,
}

impl Ord for Alert {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.time, &self.sensor, &self.rule, self.edge).cmp(&(o.time, &o.sensor, &o.rule, o.edge))
    }
}

impl PartialOrd for Alert {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Tabular for Alert {
    fn columns() -> Vec<&'static str> {
        vec!["time", "sensor", "rule", "severity", "event"]
    }
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend([
            Cell::Time(self.time),
            Cell::Text(&self.sensor),
            Cell::Text(&self.rule),
            Cell::Text(self.severity.name()),
            Cell::Text(match self.edge {
                Edge::Start => "start",
                Edge::End => "end",
            }),
        ]);
    }
}

/// One rule's state for one sensor: a [`KeyLogic`] over its observations.
#[derive(Serialize, Deserialize)]
pub struct Episodes {
    rule: Rule,
    sensor: CompactString,
    active: bool,
    /// Threshold: the current run's first time and length. Rate: the previous reading.
    /// Share: the open window's end, its readings and alerts. Silent: the last reading.
    run: Option<(Millis, u64)>,
    previous: Option<(Millis, i64)>,
    window: Option<(Millis, u64, u64)>,
    last: Option<Millis>,
}

impl Episodes {
    /// No episode yet for `rule` on `sensor`.
    pub fn new(rule: Rule, sensor: CompactString) -> Self {
        Episodes { rule, sensor, active: false, run: None, previous: None, window: None, last: None }
    }

    fn edge(&mut self, time: Millis, start: bool, out: &mut Vec<(Millis, Alert)>) {
        if start != self.active {
            self.active = start;
            let edge = if start { Edge::Start } else { Edge::End };
            let alert = Alert {
                time,
                rule: self.rule.name.clone(),
                severity: self.rule.severity,
                sensor: self.sensor.clone(),
                edge,
            };
            out.push((time, alert));
        }
    }

    /// Closes the share window ending at `end`.
    fn close_window(&mut self, percent: u64, out: &mut Vec<(Millis, Alert)>) {
        if let Some((end, count, alerts)) = self.window.take()
            && count > 0
        {
            self.edge(end, 100 * alerts > percent * count, out);
        }
    }
}

impl KeyLogic<Observation> for Episodes {
    type Out = Alert;

    fn advance(
        &mut self,
        events: &mut Vec<(Millis, Observation)>,
        frontier: Millis,
        out: &mut Vec<(Millis, Alert)>,
    ) -> Option<Millis> {
        match self.rule.condition {
            Condition::Threshold { metric, op, value, hold } => {
                for (t, (values, _)) in events.drain(..) {
                    if op.holds(values[metric], value) {
                        let (first, n) = self.run.map_or((t, 1), |(f, n)| (f, n + 1));
                        self.run = Some((first, n));
                        let held = match hold {
                            Hold::For(d) => t - first >= d.millis(),
                            Hold::Readings(k) => n >= k,
                        };
                        if held {
                            self.edge(t, true, out);
                        }
                    } else {
                        self.run = None;
                        self.edge(t, false, out);
                    }
                }
                None
            }
            Condition::Rate { metric, op, value, per } => {
                for (t, (values, _)) in events.drain(..) {
                    let x = values[metric];
                    match self.previous {
                        Some((pt, _)) if pt == t => {}
                        Some((pt, px)) => {
                            let change = (x as i128 - px as i128) * per.millis() as i128;
                            let limit = value as i128 * (t - pt) as i128;
                            self.edge(t, op.holds(change, limit), out);
                            self.previous = Some((t, x));
                        }
                        None => self.previous = Some((t, x)),
                    }
                }
                None
            }
            Condition::AlertShare { percent, window } => {
                let size = window.millis();
                for (t, (_, status)) in events.drain(..) {
                    let end = (t - t % size).saturating_add(size);
                    if self.window.is_some_and(|(e, _, _)| e != end) {
                        self.close_window(percent, out);
                    }
                    let w = self.window.get_or_insert((end, 0, 0));
                    w.1 += 1;
                    w.2 += (status == Status::Alert) as u64;
                }
                if self.window.is_some_and(|(e, _, _)| e <= frontier) {
                    self.close_window(percent, out);
                }
                self.window.map(|(e, _, _)| e)
            }
            Condition::Silent { after } => {
                let after = after.millis();
                for (t, _) in events.drain(..) {
                    if let Some(last) = self.last
                        && t - last > after
                    {
                        // Silent from last + after until now: the start was due already.
                        self.edge(last + after, true, out);
                    }
                    self.edge(t, false, out);
                    self.last = Some(t);
                }
                let last = self.last?;
                let due = last.saturating_add(after);
                if due < frontier {
                    self.edge(due, true, out);
                }
                // Woken when the watermark reaches `due`, decided once it passes it.
                if self.active { None } else { Some(due) }
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self.rule.condition {
            // A silent sensor must be remembered to be noticed.
            Condition::Silent { .. } => self.last.is_none(),
            _ => !self.active && self.run.is_none() && self.previous.is_none() && self.window.is_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> Rule {
        parse_rules(&format!("r warning {text}")).unwrap().remove(0)
    }

    /// Feeds `events` (sorted) to a fresh logic in chunks of `chunk`, the frontier just
    /// past each chunk, then at `end`; returns the (time, start?) edges.
    fn run(rule: &Rule, events: &[(Millis, Observation)], chunk: usize, end: Millis) -> Vec<(Millis, bool)> {
        let mut logic = Episodes::new(rule.clone(), "S".into());
        let mut out = Vec::new();
        let mut wake: Option<Millis> = None;
        let mut frontiers: Vec<(usize, Millis)> = Vec::new();
        for (k, c) in events.chunks(chunk.max(1)).enumerate() {
            frontiers.push((k * chunk + c.len(), c.last().unwrap().0 + 1));
        }
        frontiers.push((events.len(), end));
        let mut taken = 0;
        for (upto, frontier) in frontiers {
            // Times are distinct, so a chunk's events are all before its frontier.
            let mut batch: Vec<_> = events[taken..upto].to_vec();
            if !batch.is_empty() || wake.is_some_and(|w| w <= frontier) {
                wake = logic.advance(&mut batch, frontier, &mut out);
            }
            taken = upto;
        }
        out.into_iter().map(|(t, a)| (t, a.edge == Edge::Start)).collect()
    }

    fn obs(t: Millis, temperature: i64, status: Status) -> (Millis, Observation) {
        (t, ([temperature, 0, 0, 0, 0], status))
    }

    /// Start/end edges of a boolean per reading, brute force.
    fn edges(times: &[Millis], active: &[bool]) -> Vec<(Millis, bool)> {
        let mut out = Vec::new();
        let mut was = false;
        for (t, a) in times.iter().zip(active) {
            if *a != was {
                out.push((*t, *a));
                was = *a;
            }
        }
        out
    }

    /// Readings of a crafted sequence: temperatures around the 45.00 limit, exactly at it,
    /// with gaps that cross minute boundaries.
    fn sequence(seed: u64) -> Vec<(Millis, Observation)> {
        let mut state = seed;
        let mut t = 59_000;
        (0..400)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let r = state >> 33;
                t += [1, 1_000, 5_000, 20_000][(r % 4) as usize];
                let temp = [4499, 4500, 4501, 4600, 3000][((r >> 4) % 5) as usize];
                let status = if (r >> 8).is_multiple_of(3) { Status::Alert } else { Status::Normal };
                obs(t, temp, status)
            })
            .collect()
    }

    #[test]
    fn thresholds_held_for_a_duration_or_count_match_brute_force() {
        for (text, op) in [("temperature > 45 for 30s", Op::Gt), ("temperature >= 45.00 for 0s", Op::Ge)] {
            let r = rule(text);
            let Condition::Threshold { hold: Hold::For(d), .. } = r.condition else { panic!() };
            for seed in 0..5 {
                let events = sequence(seed);
                let times: Vec<Millis> = events.iter().map(|e| e.0).collect();
                let ok: Vec<bool> = events.iter().map(|e| op.holds(e.1.0[0], 4500)).collect();
                // Active at i: some j ≤ i with every reading j..=i satisfying and t_i − t_j ≥ d.
                let active: Vec<bool> = (0..events.len())
                    .map(|i| {
                        (0..=i).any(|j| ok[j..=i].iter().all(|x| *x) && times[i] - times[j] >= d.millis())
                    })
                    .collect();
                let expected = edges(&times, &active);
                assert!(!expected.is_empty());
                for chunk in [1, 7, 400] {
                    assert_eq!(
                        run(&r, &events, chunk, Millis::MAX),
                        expected,
                        "{text}, seed {seed}, chunk {chunk}"
                    );
                }
            }
        }
        let r = rule("temperature > 45 for 3 readings");
        let events = sequence(9);
        let times: Vec<Millis> = events.iter().map(|e| e.0).collect();
        let ok: Vec<bool> = events.iter().map(|e| e.1.0[0] > 4500).collect();
        let active: Vec<bool> =
            (0..events.len()).map(|i| i >= 2 && ok[i - 2..=i].iter().all(|x| *x)).collect();
        assert_eq!(run(&r, &events, 5, Millis::MAX), edges(&times, &active));
    }

    #[test]
    fn rates_and_alert_shares_match_brute_force() {
        let r = rule("temperature rate > 5 per 1m");
        let events = sequence(3);
        let times: Vec<Millis> = events.iter().map(|e| e.0).collect();
        let active: Vec<bool> = (0..events.len())
            .map(|i| {
                i > 0 && {
                    let dt = (times[i] - times[i - 1]) as i128;
                    let dx = (events[i].1.0[0] - events[i - 1].1.0[0]) as i128;
                    dx * 60_000 > 500 * dt
                }
            })
            .collect();
        assert_eq!(run(&r, &events, 3, Millis::MAX), edges(&times, &active));

        let r = rule("alert share > 30% over 1m");
        for seed in 0..4 {
            let events = sequence(seed);
            // Per minute with readings: count and alerts, then edges at the minute's end.
            let mut minutes: std::collections::BTreeMap<Millis, (u64, u64)> = Default::default();
            for (t, (_, s)) in &events {
                let m = minutes.entry(t - t % 60_000 + 60_000).or_default();
                m.0 += 1;
                m.1 += (*s == Status::Alert) as u64;
            }
            let ends: Vec<Millis> = minutes.keys().copied().collect();
            let active: Vec<bool> = minutes.values().map(|(n, a)| 100 * a > 30 * n).collect();
            for chunk in [1, 11, 400] {
                assert_eq!(
                    run(&r, &events, chunk, Millis::MAX),
                    edges(&ends, &active),
                    "seed {seed}, chunk {chunk}"
                );
            }
        }
    }

    #[test]
    fn silence_is_decided_by_the_watermark_whenever_it_is_observed() {
        let r = rule("silent for 10s");
        let events: Vec<_> = [0u64, 5_000, 15_000, 25_001, 26_000, 60_000]
            .iter()
            .map(|t| obs(1_000_000 + t, 0, Status::Normal))
            .collect();
        // Gaps longer than 10 s: 15_000 → 25_001 and 26_000 → 60_000.
        let expected = vec![(1_025_000, true), (1_025_001, false), (1_036_000, true), (1_060_000, false)];
        // Silent at the end: once the watermark is past the last reading + 10 s (or the
        // input ends), it starts; exactly at last + 10 s it is not yet silent.
        let mut silent_end = expected.clone();
        silent_end.push((1_070_000, true));
        for chunk in [1, 2, 6] {
            assert_eq!(run(&r, &events, chunk, Millis::MAX), silent_end, "chunk {chunk}");
        }
        assert_eq!(run(&r, &events, 1, 1_080_000), silent_end);
        assert_eq!(run(&r, &events, 1, 1_070_000), expected, "exactly at last + 10 s is not yet silent");
    }

    #[test]
    fn bad_rules_name_their_line() {
        let text = "# rules\nhot critical temperature > 45 for 30s\n\nx warning temp > 45 for 1s\n";
        assert_eq!(
            parse_rules(text).unwrap_err(),
            "line 4: unknown metric 'temp' (expected temperature, humidity, pressure, vibration, power_consumption)"
        );
        for (line, message) in [
            ("a loud temperature > 1 for 1s", "unknown severity 'loud'"),
            ("a info temperature > 1.001 for 1s", "more than 2 decimals"),
            ("a info temperature => 1 for 1s", "'=>' is not a comparison"),
            ("a info alert share > 15 over 5m", "'15' is not a whole percentage"),
            ("a info silent for 0s", "silent for 0"),
            ("a info temperature is hot", "expected METRIC OP VALUE"),
            ("a info", "expected NAME SEVERITY CONDITION"),
        ] {
            let err = parse_rules(line).unwrap_err();
            assert!(err.starts_with("line 1: ") && err.contains(message), "{line}: {err}");
        }
        assert!(
            parse_rules("a info silent for 1m\na info silent for 2m").unwrap_err().contains("defined twice")
        );
        let all = parse_rules(
            "a info temperature > 45 for 30s\nb warning vibration >= 3.000 for 5 readings\nc warning alert share > 15% over 5m\nd critical silent for 2m\ne info temperature rate > 5 per 1m\n",
        )
        .unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(
            all[1].condition,
            Condition::Threshold { metric: 3, op: Op::Ge, value: 3000, hold: Hold::Readings(5) }
        );
    }
}
