//! The Numenta Anomaly Benchmark's scoring method, reimplemented.
//!
//! This follows NAB v1.1 (`nab/sweeper.py`, `nab/optimizer.py`, `nab/runner.py`), read
//! for the method only; the code here is written from that description.
//!
//! **Per file.** Each row `i` of a file of `n` rows gets a *sweep score*, the value a
//! detection at that row would earn:
//!
//! * inside a labelled window (from its first row to its last, both inclusive), a true
//!   positive worth `tp_weight * σ(p) / σ(-1)`, where `p = -(right - i + 1) / width` is
//!   the relative position (`-1` at the window's first row, `-1/width` at its last)
//!   and `σ(x) = 2 / (1 + e^(5x)) - 1` is NAB's scaled sigmoid (`-1` for `x > 3`);
//! * outside, a false positive worth `fp_weight * σ(|i - right_prev| / (width_prev - 1))`
//!   after a window (a detection just after a window costs little), and `-fp_weight`
//!   before the first window.
//!
//! The first `min(⌊0.15 n⌋, 750)` rows are the probationary period: they are not scored
//! at all, and a window none of whose rows is past it does not count as missed.
//!
//! **Per threshold.** A row whose anomaly score is at or above the threshold is a
//! detection. A window is worth `-fn_weight` if it has no detection, else the sweep
//! score of its best (earliest) detection: only the first detection in a window counts.
//! Every detection outside windows adds its (negative) sweep score. A corpus's raw score
//! is the sum over its files and windows.
//!
//! **Threshold sweep.** One threshold for the whole corpus: every distinct anomaly
//! score is tried (and 1.1, no detection), and the best raw score is kept (the highest
//! threshold among equals).
//!
//! **Normalisation.** `100 * (raw - null) / (perfect - null)`, where `null` is the raw
//! score of the null detector (every row scores 0.5, swept the same way) and `perfect`
//! is `tp_weight` times the number of labelled windows.

use std::collections::BTreeMap;
use std::path::Path;

use crate::record::LineFormat;
use crate::record::series::SeriesCsv;

use crate::time::{Millis, parse_iso8601};

/// A NAB application profile: the weights of true positives, false positives and
/// false negatives.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// The profile's name, such as `standard`.
    pub name: String,
    /// Weight of a detected window (its earliest detection at the left edge).
    pub tp_weight: f64,
    /// Weight of a false positive far from any window.
    pub fp_weight: f64,
    /// Cost of a window without a detection.
    pub fn_weight: f64,
}

/// Reads NAB's `config/profiles.json`: profiles in the file's order of names (sorted).
pub fn parse_profiles(json: &str) -> Result<Vec<Profile>, String> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("profiles: {e}"))?;
    let object = value.as_object().ok_or("profiles: not a JSON object")?;
    let mut out = Vec::new();
    for (name, profile) in object {
        let weight = |w: &str| {
            profile["CostMatrix"][w].as_f64().ok_or_else(|| format!("profiles: {name}: no CostMatrix.{w}"))
        };
        out.push(Profile {
            name: name.clone(),
            tp_weight: weight("tpWeight")?,
            fp_weight: weight("fpWeight")?,
            fn_weight: weight("fnWeight")?,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The labelled anomaly windows of each file, as first and last event time (inclusive).
pub type Windows = BTreeMap<String, Vec<(Millis, Millis)>>;

/// Reads NAB's `labels/combined_windows.json`: `{"dir/file.csv": [["start", "end"], …]}`.
pub fn parse_windows(json: &str) -> Result<Windows, String> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("windows: {e}"))?;
    let object = value.as_object().ok_or("windows: not a JSON object")?;
    let mut out = Windows::new();
    for (file, windows) in object {
        let list = windows.as_array().ok_or_else(|| format!("windows: {file}: not a list"))?;
        let mut limits = Vec::with_capacity(list.len());
        for w in list {
            let time = |i: usize| {
                w[i].as_str()
                    .and_then(parse_iso8601)
                    .ok_or_else(|| format!("windows: {file}: bad window {w}"))
            };
            limits.push((time(0)?, time(1)?));
        }
        out.insert(file.clone(), limits);
    }
    Ok(out)
}

/// The number of probationary rows of a file of `rows` rows: `min(⌊0.15 rows⌋, 750)`.
pub fn probationary_rows(rows: usize) -> usize {
    ((0.15 * rows as f64).floor() as usize).min(750)
}

/// NAB's scaled sigmoid of a relative position.
pub fn scaled_sigmoid(x: f64) -> f64 {
    if x > 3.0 { -1.0 } else { 2.0 / (1.0 + (5.0 * x).exp()) - 1.0 }
}

/// One file's rows, in file order, with a detector's anomaly scores in `[0, 1]`.
#[derive(Clone, Debug, Default)]
pub struct Scored {
    /// The file's name as the labels know it, such as `realKnownCause/nyc_taxi.csv`.
    pub name: String,
    /// Each row's event time.
    pub times: Vec<Millis>,
    /// Each row's anomaly score.
    pub scores: Vec<f64>,
}

/// A scorable row: its anomaly score, what a detection there is worth, and its window
/// (an index into the corpus's windows) if it lies in one.
#[derive(Clone, Copy, Debug)]
struct Point {
    score: f64,
    sweep: f64,
    window: Option<usize>,
}

/// Sweep scores of one file's rows past the probationary period; windows are numbered
/// from `first_window`. Returns the points and the number of windows the file has.
fn sweep_points(
    file: &Scored,
    windows: &[(Millis, Millis)],
    profile: &Profile,
    first_window: usize,
) -> Vec<Point> {
    let times = &file.times;
    let probation = probationary_rows(times.len());
    let max_tp = scaled_sigmoid(-1.0);
    let index_of = |t: Millis| times.iter().position(|&x| x == t);
    let mut pending = windows.iter().enumerate().peekable();
    // (window number, right index, width, last time) of the window we are in, and
    // (right index, width) of the last one left.
    let mut current: Option<(usize, usize, f64, Millis)> = None;
    let mut previous: Option<(usize, f64)> = None;
    let mut out = Vec::with_capacity(times.len().saturating_sub(probation));
    for (i, (&t, &score)) in times.iter().zip(&file.scores).enumerate() {
        if let Some(&(n, &(start, end))) = pending.peek()
            && t == start
        {
            pending.next();
            // NAB looks the window's edges up among the file's timestamps.
            let right = index_of(end).unwrap_or(times.len());
            let left = index_of(start).unwrap_or(i);
            current = Some((first_window + n, right, (right as f64 - left as f64) + 1.0, end));
        }
        let (sweep, window) = match current {
            Some((n, right, width, _)) => {
                let position = -((right as f64 - i as f64) + 1.0) / width;
                (scaled_sigmoid(position) * profile.tp_weight / max_tp, Some(n))
            }
            None => {
                let unweighted = match previous {
                    None => -1.0,
                    Some((right, width)) => scaled_sigmoid((i as f64 - right as f64).abs() / (width - 1.0)),
                };
                (unweighted * profile.fp_weight, None)
            }
        };
        if i >= probation {
            out.push(Point { score, sweep, window });
        }
        if let Some((_, _, width, end)) = current
            && end == t
        {
            previous = Some((i, width));
            current = None;
        }
    }
    out
}

/// The raw score and counts of a corpus at one threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AtThreshold {
    /// Rows scoring at or above this are detections.
    pub threshold: f64,
    /// The raw (unnormalised) score.
    pub raw: f64,
    /// Scored rows in windows that are detections.
    pub tp: u64,
    /// Scored rows outside windows that are not detections.
    pub tn: u64,
    /// Scored rows outside windows that are detections.
    pub fp: u64,
    /// Scored rows in windows that are not detections.
    pub fn_: u64,
}

/// A corpus's NAB result for one profile.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileScore {
    /// The profile.
    pub profile: Profile,
    /// The best threshold and its raw score and counts.
    pub best: AtThreshold,
    /// The null detector's best raw score.
    pub null: f64,
    /// The perfect detector's raw score.
    pub perfect: f64,
    /// `100 * (raw - null) / (perfect - null)`.
    pub normalized: f64,
}

/// Sweeps all thresholds over the scorable rows of `files` and returns the best.
fn best_threshold(files: &[Scored], windows: &Windows, profile: &Profile) -> AtThreshold {
    let mut points = Vec::new();
    let mut first_window = 0;
    for file in files {
        let limits = windows.get(&file.name).map_or(&[][..], Vec::as_slice);
        points.extend(sweep_points(file, limits, profile, first_window));
        first_window += limits.len();
    }
    // Each window that has scorable rows starts as missed.
    let mut parts = vec![None::<f64>; first_window];
    for p in &points {
        if let Some(w) = p.window {
            parts[w] = Some(-profile.fn_weight);
        }
    }
    let mut window_sum: f64 = parts.iter().flatten().sum();
    let mut fp_sum = 0.0;
    points.sort_by(|a, b| b.score.total_cmp(&a.score));
    let in_windows = points.iter().filter(|p| p.window.is_some()).count() as u64;
    let mut at = AtThreshold {
        threshold: 1.1,
        raw: window_sum,
        tp: 0,
        tn: points.len() as u64 - in_windows,
        fp: 0,
        fn_: in_windows,
    };
    let mut best = at;
    for p in &points {
        if p.score != at.threshold {
            at.raw = window_sum + fp_sum;
            if at.raw > best.raw {
                best = at;
            }
            at.threshold = p.score;
        }
        match p.window {
            Some(w) => {
                at.tp += 1;
                at.fn_ -= 1;
                let part = parts[w].as_mut().expect("windows with points have a part");
                if p.sweep > *part {
                    window_sum += p.sweep - *part;
                    *part = p.sweep;
                }
            }
            None => {
                at.fp += 1;
                at.tn -= 1;
                fp_sum += p.sweep;
            }
        }
    }
    at.raw = window_sum + fp_sum;
    if at.raw > best.raw {
        best = at;
    }
    best
}

/// Scores a corpus under one profile: best threshold, null and perfect baselines and
/// the normalised score. Files absent from `windows` have no windows.
pub fn score(files: &[Scored], windows: &Windows, profile: &Profile) -> ProfileScore {
    let best = best_threshold(files, windows, profile);
    let null_files: Vec<Scored> =
        files.iter().map(|f| Scored { scores: vec![0.5; f.times.len()], ..f.clone() }).collect();
    let null = best_threshold(&null_files, windows, profile).raw;
    let labelled: usize = files.iter().map(|f| windows.get(&f.name).map_or(0, Vec::len)).sum();
    let perfect = labelled as f64 * profile.tp_weight;
    let normalized = 100.0 * (best.raw - null) / (perfect - null);
    ProfileScore { profile: profile.clone(), best, null, perfect, normalized }
}

/// Reads a NAB data file (`timestamp,value` with a header): its times and values, in
/// file order.
pub fn read_series(text: &str) -> Result<(Vec<Millis>, Vec<f64>), String> {
    let (mut times, mut values) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() || SeriesCsv::is_header(line) {
            continue;
        }
        let p = SeriesCsv::parse(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        times.push(p.timestamp);
        values.push(p.value);
    }
    Ok((times, values))
}

/// The data files of a NAB corpus directory (`data/*/*.csv`), as the labels name them
/// (`dir/file.csv`), sorted.
pub fn corpus_files(root: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for dir in std::fs::read_dir(root.join("data"))? {
        let dir = dir?;
        if !dir.file_type()?.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(dir.path())? {
            let name = file?.file_name().to_string_lossy().into_owned();
            if name.ends_with(".csv") {
                names.push(format!("{}/{name}", dir.file_name().to_string_lossy()));
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Puts a stream job's scores back in file order. The job scores a key's rows in
/// `(time, value)` order; a file may repeat or reorder timestamps (NAB's
/// `machine_temperature_system_failure.csv` does), so rows are matched by `(time, value)`
/// rank. `results` are `(time, value, score)`; the answer is one score per file row.
pub fn align(
    times: &[Millis],
    values: &[f64],
    mut results: Vec<(Millis, f64, f64)>,
) -> Result<Vec<f64>, String> {
    if results.len() != times.len() {
        return Err(format!("{} result rows for {} data rows", results.len(), times.len()));
    }
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by(|&a, &b| times[a].cmp(&times[b]).then(values[a].total_cmp(&values[b])));
    results.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut scores = vec![0.0; times.len()];
    for (&i, &(t, v, score)) in order.iter().zip(&results) {
        if (t, v.to_bits()) != (times[i], values[i].to_bits()) {
            return Err(format!("no result for the row at time {} with value {}", times[i], values[i]));
        }
        scores[i] = score;
    }
    Ok(scores)
}

/// The labels' name for a result key: the name itself (`realKnownCause/nyc_taxi.csv`),
/// or a file name (`nyc_taxi.csv`) or stem (`nyc_taxi`) that exactly one name has.
pub fn resolve<'a>(key: &str, names: impl IntoIterator<Item = &'a String>) -> Option<&'a String> {
    let mut found = None;
    for name in names {
        let file = name.rsplit('/').next().unwrap_or(name);
        if name == key {
            return Some(name);
        }
        if file == key || file.strip_suffix(".csv") == Some(key) {
            if found.is_some() {
                return None;
            }
            found = Some(name);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standard() -> Profile {
        Profile { name: "standard".into(), tp_weight: 1.0, fp_weight: 0.11, fn_weight: 1.0 }
    }

    fn file(scores: &[f64]) -> Scored {
        Scored { name: "f".into(), times: (0..scores.len() as u64).collect(), scores: scores.to_vec() }
    }

    #[test]
    fn results_align_to_file_order_by_time_and_value() {
        let (times, values) = ([3, 1, 1, 2], [5.0, 7.0, 6.0, 1.0]);
        let results = vec![(1, 6.0, 0.1), (1, 7.0, 0.2), (2, 1.0, 0.3), (3, 5.0, 0.4)];
        assert_eq!(align(&times, &values, results).unwrap(), [0.4, 0.2, 0.1, 0.3]);
        assert!(align(&times, &values, vec![(1, 6.0, 0.1)]).is_err());
        let wrong = vec![(1, 6.0, 0.1), (1, 7.0, 0.2), (2, 1.5, 0.3), (3, 5.0, 0.4)];
        assert!(align(&times, &values, wrong).is_err());
    }

    #[test]
    fn keys_resolve_to_label_names() {
        let names = ["a/x.csv".to_owned(), "b/y.csv".to_owned(), "c/y.csv".to_owned()];
        assert_eq!(resolve("a/x.csv", &names), Some(&names[0]));
        assert_eq!(resolve("x.csv", &names), Some(&names[0]));
        assert_eq!(resolve("x", &names), Some(&names[0]));
        assert_eq!(resolve("y", &names), None, "ambiguous");
        assert_eq!(resolve("z", &names), None);
    }

    #[test]
    fn scaled_sigmoid_matches_nab_reference_points() {
        assert!((scaled_sigmoid(-1.0) - 0.98661).abs() < 1e-5);
        assert!((scaled_sigmoid(-0.5) - 0.84828).abs() < 1e-5);
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert_eq!(scaled_sigmoid(3.5), -1.0);
    }

    #[test]
    fn probation_is_fifteen_percent_capped_at_750() {
        assert_eq!(probationary_rows(100), 15);
        assert_eq!(probationary_rows(4032), 604);
        assert_eq!(probationary_rows(22695), 750);
    }

    #[test]
    fn earliest_detection_in_a_window_scores_the_full_weight_and_later_ones_add_nothing() {
        // 100 rows, probation 15, one window over rows 40..=49.
        let windows = Windows::from([("f".to_owned(), vec![(40, 49)])]);
        let mut scores = vec![0.0; 100];
        scores[40] = 1.0;
        scores[45] = 1.0;
        let s = score(&[file(&scores)], &windows, &standard());
        assert_eq!(s.best.threshold, 1.0);
        assert!((s.best.raw - 1.0).abs() < 1e-12, "{s:?}");
        assert_eq!((s.best.tp, s.best.fp, s.best.fn_), (2, 0, 8));
        assert!((s.normalized - 100.0).abs() < 1e-9);
        // A detection far before the window costs the whole FP weight, and with the
        // window missed the best is to detect nothing: -1.
        let mut scores = vec![0.0; 100];
        scores[20] = 1.0;
        let s = score(&[file(&scores)], &windows, &standard());
        assert_eq!(s.best.raw, -1.0);
        // A detection in the probationary period is not scored at all.
        let mut scores = vec![0.0; 100];
        scores[3] = 0.9;
        scores[49] = 0.9;
        let s = score(&[file(&scores)], &windows, &standard());
        // The window's last row is at relative position -1/10: worth little.
        let expected = scaled_sigmoid(-0.1) / scaled_sigmoid(-1.0);
        assert!((s.best.raw - expected).abs() < 1e-12, "{} vs {expected}", s.best.raw);
        assert_eq!(s.best.fp, 0, "the probationary detection is not counted");
    }

    #[test]
    fn false_positive_just_after_a_window_costs_little() {
        let windows = Windows::from([("f".to_owned(), vec![(40, 49)])]);
        let mut scores = vec![0.0; 100];
        scores[40] = 1.0;
        scores[50] = 1.0;
        let s = score(&[file(&scores)], &windows, &standard());
        let expected = 1.0 + 0.11 * scaled_sigmoid(1.0 / 9.0);
        assert!((s.best.raw - expected).abs() < 1e-12, "{} vs {expected}", s.best.raw);
    }
}
