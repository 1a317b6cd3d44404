//! Streaming anomaly detection per key, the `anomalies` job: detectors, rows, alert
//! episodes and the NAB scorer.
//!
//! Each key's values go to its own detector in event-time order (ties by value) through
//! [`KeyedOrdered`](crate::operators::KeyedOrdered), so the scores depend only on the
//! data: the same for any worker count, process count, epoch or delivery.
//!
//! * A value's **score** is the detector's, in `[0, 1]`; it is **anomalous** when the
//!   score is at or above the threshold.
//! * A **duplicate** is a record with the same key, time and value as another: a
//!   delivery repeated. The one on the lowest line is scored; the others are rejected,
//!   naming their line and the line they repeat, and change nothing else (so the scores
//!   are the same whichever copy arrives first).
//! * An **episode** is a maximal run of a key's consecutive anomalous values. It is
//!   reported once, as an [`Alert`] with its first and last time and its peak score,
//!   when the key's next value is not anomalous or when the input ends.
//!
//! Detectors, each in its own module: [`relative_entropy`] (`entropy`, the fast default),
//! [`contextual`] (`cad`, the accurate one) and [`gaussian`] (`gaussian`, NAB's
//! windowed-Gaussian baseline). [`nab`] scores results
//! the way the Numenta Anomaly Benchmark does.

pub mod chi2;
pub mod contextual;
pub mod distance;
pub mod gaussian;
pub mod nab;
pub mod range;
pub mod relative_entropy;
pub mod report;
pub mod vector;

pub use range::Range;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::operators::keyed::KeyLogic;
use crate::record::series::Reading;
use crate::sink::{Cell, Tabular};
use crate::time::Millis;
use contextual::Contextual;
use gaussian::WindowedGaussian;
use relative_entropy::RelativeEntropy;

/// The detectors, by name, with one line each.
pub const DETECTORS: [(&str, &str); 4] = [
    ("entropy", "relative entropy with multiple hypotheses (Wang et al. 2011), the fast default"),
    ("cad", "contextual anomaly detector (CAD OSE, Smirnov 2016), the accurate one"),
    ("gaussian", "windowed Gaussian tail probability, NAB's baseline"),
    (
        "distance",
        "robust Mahalanobis distance with sliding-window refits and drift detection, for feature vectors",
    ),
];

/// The detector that scores feature vectors rather than series values.
pub const MULTIVARIATE: &str = "distance";

/// One key's detector.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Detector {
    /// [`relative_entropy`].
    Entropy(Box<RelativeEntropy>),
    /// [`contextual`].
    Cad(Box<Contextual>),
    /// [`gaussian`].
    Gaussian(Box<WindowedGaussian>),
}

impl Detector {
    /// The detector named `name` (one of [`DETECTORS`]).
    pub fn new(name: &str, range: Range) -> Result<Detector, String> {
        Self::with_rest(name, range, None)
    }

    /// The detector named `name`, with `cad`'s rest period (values scored 0 after a high
    /// score) set to `rest` values; other detectors have none. Errors name the flag.
    pub fn with_rest(name: &str, range: Range, rest: Option<usize>) -> Result<Detector, String> {
        match (name, rest) {
            ("cad", Some(0)) => Err("--rest must be at least 1".into()),
            ("cad", rest) => {
                Ok(Detector::Cad(Box::new(Contextual::with_rest(range, rest.unwrap_or(contextual::REST)))))
            }
            (_, Some(_)) if DETECTORS.iter().any(|d| d.0 == name) => {
                Err(format!("--rest applies to the cad detector, not to {name}"))
            }
            ("entropy", _) => Ok(Detector::Entropy(Box::new(RelativeEntropy::new(range)))),
            ("gaussian", _) => Ok(Detector::Gaussian(Box::new(WindowedGaussian::new()))),
            (MULTIVARIATE, _) => {
                Err(format!("--detector {MULTIVARIATE} scores feature vectors, not series values"))
            }
            (other, _) => {
                let names: Vec<&str> = DETECTORS.iter().map(|d| d.0).collect();
                Err(format!("--detector {other}: unknown detector (available: {})", names.join(", ")))
            }
        }
    }

    /// The detector's default threshold: the score at or above which a value is anomalous.
    pub fn default_threshold(name: &str) -> f64 {
        match name {
            "gaussian" => 0.999,
            "cad" => contextual::BASE_THRESHOLD,
            MULTIVARIATE => vector::THRESHOLD,
            _ => 0.5,
        }
    }

    /// Scores the key's next value, in `[0, 1]`.
    #[inline]
    pub fn score(&mut self, value: f64) -> f64 {
        match self {
            Detector::Entropy(d) => d.score(value),
            Detector::Cad(d) => d.score(value),
            Detector::Gaussian(d) => d.score(value),
        }
    }
}

/// One scored value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ScoreRow {
    /// The value's event time.
    pub time: Millis,
    /// Its series.
    pub key: CompactString,
    /// The value.
    pub value: Reading,
    /// The detector's score.
    pub score: Reading,
    /// Whether the score is at or above the threshold.
    pub anomaly: bool,
}

impl Tabular for ScoreRow {
    fn current_key() -> &'static [&'static str] {
        &["key"]
    }

    fn columns() -> Vec<&'static str> {
        vec!["time", "key", "value", "score", "anomaly"]
    }

    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend([
            Cell::Time(self.time),
            Cell::Text(&self.key),
            Cell::Real(self.value.0),
            Cell::Real(self.score.0),
            Cell::Int(self.anomaly as i64),
        ]);
    }

    fn group_time(&self) -> Option<Millis> {
        Some(self.time)
    }
}

/// One anomalous episode of a key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Alert {
    /// When the episode became certain to be over: the time of the key's next value, or
    /// one millisecond past `end` when the input ended.
    pub time: Millis,
    /// The series.
    pub key: CompactString,
    /// Time of the episode's first anomalous value.
    pub start: Millis,
    /// Time of its last anomalous value.
    pub end: Millis,
    /// Its anomalous values.
    pub points: u64,
    /// The highest score in it.
    pub peak: Reading,
}

impl Tabular for Alert {
    fn columns() -> Vec<&'static str> {
        vec!["time", "key", "start", "end", "points", "peak"]
    }

    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend([
            Cell::Time(self.time),
            Cell::Text(&self.key),
            Cell::Time(self.start),
            Cell::Time(self.end),
            Cell::Int(self.points as i64),
            Cell::Real(self.peak.0),
        ]);
    }

    fn group_time(&self) -> Option<Millis> {
        Some(self.time)
    }
}

/// A record rejected as a repeat of another with the same key, time and value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Duplicate {
    /// Its time.
    pub time: Millis,
    /// Its key.
    pub key: CompactString,
    /// Its line (or a live feed's own number).
    pub line: u64,
    /// The line of the copy that was scored.
    pub first: u64,
}

impl Duplicate {
    /// The rejects entry, with the input's name as its origin.
    pub fn reject(&self, origin: &str) -> crate::diag::Rejected {
        crate::diag::Rejected {
            origin: origin.to_owned(),
            line: self.line,
            reason: format!("duplicate of line {}: same key, time and value", self.first),
            text: format!("key {} at {}", self.key, self.time),
        }
    }
}

/// Splits a key's released events, sorted by `(time, value, line)`, into the first copy
/// of each `(time, value)` and the duplicates of it.
pub fn first_copies<V: PartialEq>(
    key: &CompactString,
    events: &mut Vec<(Millis, (V, u64))>,
    duplicates: &mut Vec<Duplicate>,
) {
    // A copy's time is released with all others of its time, so they are all here.
    events.dedup_by(|later, kept| {
        let repeat = later.0 == kept.0 && later.1.0 == kept.1.0;
        if repeat {
            duplicates.push(Duplicate { time: later.0, key: key.clone(), line: later.1.1, first: kept.1.1 });
        }
        repeat
    });
}

/// What a key's [`Scoring`] emits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Output {
    /// A scored value.
    Score(ScoreRow),
    /// A finished episode.
    Alert(Alert),
    /// A rejected duplicate.
    Duplicate(Duplicate),
}

impl Output {
    /// The scored value, if it is one.
    pub fn score(self) -> Option<ScoreRow> {
        if let Output::Score(s) = self { Some(s) } else { None }
    }

    /// The episode, if it is one.
    pub fn alert(self) -> Option<Alert> {
        if let Output::Alert(a) = self { Some(a) } else { None }
    }

    /// The duplicate, if it is one.
    pub fn duplicate(self) -> Option<Duplicate> {
        if let Output::Duplicate(d) = self { Some(d) } else { None }
    }
}

/// An episode still open.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Episode {
    start: Millis,
    end: Millis,
    points: u64,
    peak: f64,
}

/// A key's open episode, if any: the episode rules shared by every kind of scoring.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Episodes {
    open: Option<Episode>,
}

impl Episodes {
    /// Takes one scored value at `time`: extends the open episode if it is anomalous,
    /// and otherwise returns the episode it closes, as an alert at `time`.
    pub fn observe(&mut self, key: &CompactString, time: Millis, score: f64, anomaly: bool) -> Option<Alert> {
        if anomaly {
            let e = self.open.get_or_insert(Episode { start: time, end: time, points: 0, peak: score });
            e.end = time;
            e.points += 1;
            e.peak = e.peak.max(score);
            None
        } else {
            self.close(key, time)
        }
    }

    /// The open episode, closed as an alert at `at`.
    pub fn close(&mut self, key: &CompactString, at: Millis) -> Option<Alert> {
        self.open.take().map(|e| Alert {
            time: at,
            key: key.clone(),
            start: e.start,
            end: e.end,
            points: e.points,
            peak: Reading(e.peak),
        })
    }

    /// When the open episode may close without new values (at the input's end): one
    /// millisecond past its last value.
    pub fn wake(&self) -> Option<Millis> {
        self.open.map(|e| e.end + 1)
    }
}

/// A key's [`KeyLogic`]: its detector, the threshold and its open episode.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Scoring {
    key: CompactString,
    detector: Detector,
    threshold: f64,
    episodes: Episodes,
    /// Score duplicates as values of their own instead of rejecting them.
    keep_duplicates: bool,
}

impl Scoring {
    /// A key's scoring with a fresh detector.
    pub fn new(key: CompactString, detector: Detector, threshold: f64) -> Self {
        Scoring { key, detector, threshold, episodes: Episodes::default(), keep_duplicates: false }
    }

    /// Scores duplicates (same key, time and value) as values of their own, as NAB does
    /// with the rows its files repeat, instead of rejecting them.
    pub fn keep_duplicates(mut self, keep: bool) -> Self {
        self.keep_duplicates = keep;
        self
    }
}

impl KeyLogic<(Reading, u64)> for Scoring {
    type Out = Output;

    fn advance(
        &mut self,
        events: &mut Vec<(Millis, (Reading, u64))>,
        frontier: Millis,
        out: &mut Vec<(Millis, Output)>,
    ) -> Option<Millis> {
        // Rows name their own time (`group_time`), so all of this call's rows travel in
        // one message stamped with its earliest event: one message per key and frontier
        // step rather than one per distinct time (which cost a buffer each).
        let stamp = events.first().map(|e| e.0);
        let mut duplicates = Vec::new();
        if !self.keep_duplicates {
            first_copies(&self.key, events, &mut duplicates);
        }
        out.extend(duplicates.into_iter().map(|d| (stamp.unwrap_or(d.time), Output::Duplicate(d))));
        for (time, (value, _)) in events.drain(..) {
            let score = self.detector.score(value.0).clamp(0.0, 1.0);
            let anomaly = score >= self.threshold;
            if let Some(alert) = self.episodes.observe(&self.key, time, score, anomaly) {
                out.push((stamp.unwrap_or(time), Output::Alert(alert)));
            }
            let row = ScoreRow { time, key: self.key.clone(), value, score: Reading(score), anomaly };
            out.push((stamp.unwrap_or(time), Output::Score(row)));
        }
        close_at_end(&mut self.episodes, &self.key, frontier, stamp, out, Output::Alert)
    }

    fn is_empty(&self) -> bool {
        // A detector's state is its history: a key is never forgotten.
        false
    }
}

/// An open episode closes with the key's next value, or when the input ends: returns
/// the wake time to ask for, after closing the episode if the input has ended.
pub fn close_at_end<O>(
    episodes: &mut Episodes,
    key: &CompactString,
    frontier: Millis,
    stamp: Option<Millis>,
    out: &mut Vec<(Millis, O)>,
    wrap: impl Fn(Alert) -> O,
) -> Option<Millis> {
    let wake = episodes.wake();
    if frontier == Millis::MAX
        && let Some(w) = wake
    {
        if let Some(alert) = episodes.close(key, w) {
            out.push((stamp.unwrap_or(w).min(w), wrap(alert)));
        }
        return None;
    }
    wake
}

/// Labelled anomaly windows by series, to evaluate a run: NAB's windows, matched to keys
/// by the labels' name (`realKnownCause/nyc_taxi.csv`), its file name (`nyc_taxi.csv`)
/// or its stem (`nyc_taxi`).
#[derive(Clone, Debug, Default)]
pub struct Labels {
    by_key: std::collections::HashMap<String, Vec<(Millis, Millis)>>,
}

impl Labels {
    /// Labels from NAB's windows; a name that two files share as a file name or stem
    /// matches neither of them by it.
    pub fn new(windows: &nab::Windows) -> Self {
        let mut by_key: std::collections::HashMap<String, Option<Vec<(Millis, Millis)>>> = Default::default();
        for (name, w) in windows {
            by_key.insert(name.clone(), Some(w.clone()));
        }
        for (name, w) in windows {
            let file = name.rsplit('/').next().unwrap_or(name);
            let stem = file.strip_suffix(".csv").unwrap_or(file);
            for alias in [file, stem] {
                if alias != name {
                    by_key
                        .entry(alias.to_owned())
                        .and_modify(|e| *e = None)
                        .or_insert_with(|| Some(w.clone()));
                }
            }
        }
        Labels { by_key: by_key.into_iter().filter_map(|(k, v)| Some((k, v?))).collect() }
    }

    /// The windows of `key`, if it is labelled.
    pub fn windows(&self, key: &str) -> Option<&[(Millis, Millis)]> {
        self.by_key.get(key).map(Vec::as_slice)
    }
}

/// Counts of one key's values: how many were anomalous and, if the key is labelled,
/// how they agree with the labels (a value is a positive when a window holds its time).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyCounts {
    /// The series.
    pub key: CompactString,
    /// Whether the key has labels.
    pub labelled: bool,
    /// Values scored.
    pub values: u64,
    /// Anomalous values.
    pub anomalies: u64,
    /// Anomalous values in a window.
    pub tp: u64,
    /// Anomalous values outside every window.
    pub fp: u64,
    /// Values in a window that are not anomalous.
    pub fn_: u64,
}

impl KeyCounts {
    /// Adds one scored row, with the key's windows if it has labels.
    pub fn add(&mut self, row: &ScoreRow, windows: Option<&[(Millis, Millis)]>) {
        let positive = windows.map(|w| w.iter().any(|&(s, e)| s <= row.time && row.time <= e));
        self.tally(row.anomaly, positive);
    }

    /// Adds one value: whether it was found anomalous and, if labelled, whether it is.
    pub fn tally(&mut self, anomaly: bool, positive: Option<bool>) {
        self.values += 1;
        self.anomalies += anomaly as u64;
        if let Some(positive) = positive {
            self.labelled = true;
            match (positive, anomaly) {
                (true, true) => self.tp += 1,
                (false, true) => self.fp += 1,
                (true, false) => self.fn_ += 1,
                (false, false) => {}
            }
        }
    }

    /// Adds another key's counts.
    pub fn merge(&mut self, other: &KeyCounts) {
        self.labelled |= other.labelled;
        self.values += other.values;
        self.anomalies += other.anomalies;
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
    }

    /// Precision, recall and F1 (0 where undefined).
    pub fn precision_recall_f1(&self) -> (f64, f64, f64) {
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let (p, r) = (ratio(self.tp, self.tp + self.fp), ratio(self.tp, self.tp + self.fn_));
        (p, r, if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) })
    }

    /// `precision P recall R F1 F (tp A fp B fn C)`.
    pub fn evaluation(&self) -> String {
        let (p, r, f) = self.precision_recall_f1();
        format!("precision {p:.4} recall {r:.4} F1 {f:.4} (tp {} fp {} fn {})", self.tp, self.fp, self.fn_)
    }
}
