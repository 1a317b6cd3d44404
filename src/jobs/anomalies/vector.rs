//! Feature vectors through the [`distance`](super::distance) detector: the per-key logic,
//! its score rows and its drift rows.
//!
//! Each key's samples reach its detector in event-time order (ties by values), as a
//! series' values do, so scores, alerts and drifts are the same for any worker count,
//! process count, epoch or delivery. Episodes follow the same rules as a series'
//! ([`Episodes`]), and duplicates (same key, time and values) are rejected as a
//! series' are. A drift is reported as a [`DriftRow`] at the sample that completed
//! it, naming the time of the first sample of the new regime.

use std::collections::VecDeque;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::distance::{Drift, RobustDistance, SCAN};
use super::{Alert, Duplicate, Episodes, close_at_end, first_copies};
use crate::operators::keyed::KeyLogic;
use crate::record::features::Label;
use crate::record::series::Reading;
use crate::sink::{Cell, Tabular};
use crate::time::Millis;

/// The `distance` detector's default threshold: 1 in 1,000 normal samples is above it.
pub const THRESHOLD: f64 = 0.999;

/// One sample as the dataflow carries it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Vector {
    /// The features.
    pub values: Vec<Reading>,
    /// The label, if the input has one.
    pub label: Option<Label>,
}

/// One scored sample.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VectorRow {
    /// The sample's event time.
    pub time: Millis,
    /// Its key.
    pub key: CompactString,
    /// Its features, `;`-separated in the shortest form that reads back.
    pub values: CompactString,
    /// The detector's score.
    pub score: Reading,
    /// Whether the score is at or above the threshold.
    pub anomaly: bool,
    /// The input's label, if any.
    pub label: Option<Label>,
}

impl Tabular for VectorRow {
    fn current_key() -> &'static [&'static str] {
        &["key"]
    }

    fn columns() -> Vec<&'static str> {
        vec!["time", "key", "values", "score", "anomaly", "label"]
    }

    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend([
            Cell::Time(self.time),
            Cell::Text(&self.key),
            Cell::Text(&self.values),
            Cell::Real(self.score.0),
            Cell::Int(self.anomaly as i64),
            self.label.map_or(Cell::Null, |l| Cell::Text(l.as_str())),
        ]);
    }

    fn group_time(&self) -> Option<Millis> {
        Some(self.time)
    }
}

/// A change of regime found in a key's samples.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DriftRow {
    /// The time of the sample that completed the evidence.
    pub time: Millis,
    /// The key.
    pub key: CompactString,
    /// The time of the first sample of the new regime (the change point).
    pub since: Millis,
    /// Which test fired: `rate` (samples above the 0.99 quantile) or `mean`.
    pub test: CompactString,
    /// The test's statistic.
    pub statistic: Reading,
}

impl Tabular for DriftRow {
    fn columns() -> Vec<&'static str> {
        vec!["time", "key", "since", "test", "statistic"]
    }

    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend([
            Cell::Time(self.time),
            Cell::Text(&self.key),
            Cell::Time(self.since),
            Cell::Text(&self.test),
            Cell::Real(self.statistic.0),
        ]);
    }

    fn group_time(&self) -> Option<Millis> {
        Some(self.time)
    }
}

/// What a key's [`VectorScoring`] emits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum VectorOutput {
    /// A scored sample.
    Score(VectorRow),
    /// A finished episode.
    Alert(Alert),
    /// A drift.
    Drift(DriftRow),
    /// A rejected duplicate.
    Duplicate(Duplicate),
}

impl VectorOutput {
    /// The scored sample, if it is one.
    pub fn score(self) -> Option<VectorRow> {
        if let VectorOutput::Score(s) = self { Some(s) } else { None }
    }

    /// The episode, if it is one.
    pub fn alert(self) -> Option<Alert> {
        if let VectorOutput::Alert(a) = self { Some(a) } else { None }
    }

    /// The drift, if it is one.
    pub fn drift(self) -> Option<DriftRow> {
        if let VectorOutput::Drift(d) = self { Some(d) } else { None }
    }

    /// The duplicate, if it is one.
    pub fn duplicate(self) -> Option<Duplicate> {
        if let VectorOutput::Duplicate(d) = self { Some(d) } else { None }
    }
}

/// A key's [`KeyLogic`] over feature vectors.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VectorScoring {
    key: CompactString,
    detector: RobustDistance,
    threshold: f64,
    episodes: Episodes,
    /// The times of the last [`SCAN`] samples, to name a change point's time.
    times: VecDeque<Millis>,
    /// Score duplicates as samples of their own instead of rejecting them.
    keep_duplicates: bool,
}

impl VectorScoring {
    /// A key's scoring with a fresh detector.
    pub fn new(key: CompactString, threshold: f64) -> Self {
        VectorScoring {
            key,
            detector: RobustDistance::new(),
            threshold,
            episodes: Episodes::default(),
            times: VecDeque::new(),
            keep_duplicates: false,
        }
    }

    /// Scores duplicates (same key, time and values) as samples of their own instead of
    /// rejecting them.
    pub fn keep_duplicates(mut self, keep: bool) -> Self {
        self.keep_duplicates = keep;
        self
    }
}

impl KeyLogic<(Vector, u64)> for VectorScoring {
    type Out = VectorOutput;
    const ROWS_NAME_THEIR_TIME: bool = true;

    fn advance(
        &mut self,
        events: &mut Vec<(Millis, (Vector, u64))>,
        frontier: Millis,
        out: &mut Vec<(Millis, VectorOutput)>,
    ) -> Option<Millis> {
        let stamp = events.first().map(|e| e.0);
        let mut duplicates = Vec::new();
        if !self.keep_duplicates {
            first_copies(&self.key, events, &mut duplicates);
        }
        out.extend(duplicates.into_iter().map(|d| (stamp.unwrap_or(d.time), VectorOutput::Duplicate(d))));
        let mut x = Vec::new();
        for (time, (sample, _)) in events.drain(..) {
            x.clear();
            x.extend(sample.values.iter().map(|v| v.0));
            let (score, drift) = self.detector.score(&x);
            let score = score.clamp(0.0, 1.0);
            self.times.push_back(time);
            if self.times.len() > SCAN {
                self.times.pop_front();
            }
            if let Some(Drift { test, statistic, since }) = drift {
                let since = self.times[self.times.len() - since.min(self.times.len())];
                let row = DriftRow {
                    time,
                    key: self.key.clone(),
                    since,
                    test: test.into(),
                    statistic: Reading(statistic),
                };
                out.push((stamp.unwrap_or(time), VectorOutput::Drift(row)));
            }
            let anomaly = score >= self.threshold;
            if let Some(alert) = self.episodes.observe(&self.key, time, score, anomaly) {
                out.push((stamp.unwrap_or(time), VectorOutput::Alert(alert)));
            }
            let row = VectorRow {
                time,
                key: self.key.clone(),
                values: join(&sample.values),
                score: Reading(score),
                anomaly,
                label: sample.label,
            };
            out.push((stamp.unwrap_or(time), VectorOutput::Score(row)));
        }
        close_at_end(&mut self.episodes, &self.key, frontier, stamp, out, VectorOutput::Alert)
    }

    fn is_empty(&self) -> bool {
        false
    }
}

/// The values, `;`-separated, each in the shortest form that reads back.
fn join(values: &[Reading]) -> CompactString {
    use std::fmt::Write;
    let mut s = CompactString::default();
    for (i, v) in values.iter().enumerate() {
        let _ = write!(s, "{}{}", if i > 0 { ";" } else { "" }, v.0);
    }
    s
}
