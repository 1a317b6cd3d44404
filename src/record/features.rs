//! Feature vectors: `timestamp,key,x1,…,xN[,label]` CSV, its parser and the seeded
//! generator of the anomaly-detection notebook's stream (`gen anomalies`).
//!
//! ```text
//! timestamp,key,x1,x2,x3,x4,x5,label
//! 2026-10-01T00:00:00Z,k0000,0.4967,-0.1383,0.6477,1.5230,-0.2342,normal
//! 2026-10-01T00:00:01Z,k0000,4.1202,-3.0671,2.2316,4.8310,0.9075,shift
//! ```
//!
//! # What a valid line is
//!
//! * `timestamp` is ISO 8601 in 1970-01-01..9999-12-31 UTC; `key` is not empty.
//! * Then 1 to [`MAX_FEATURES`] finite decimal numbers.
//! * Then, optionally, a label: `normal`, or the kind of anomaly (`shift`, `scale`,
//!   `outlier`, or `anomaly` when the kind is not known). A label is a word, so it is
//!   never mistaken for a feature; any other word is rejected.
//!
//! How many features a job expects is the job's to check (`anomalies --features N`);
//! the parser accepts any count in range. A header line starts with `timestamp,key,`.
//!
//! # The generator
//!
//! The notebook's `StreamingDataGenerator`, made a function of `(seed, row)`: row `i` is
//! key `i mod keys`'s sample number `j = i / keys`, at one sample a second. A key's
//! samples come in batches of 100 in which 5, at positions drawn per batch, are
//! anomalies of one kind drawn per batch, as the notebook's `generate_batch` does:
//! *shift* (N(μ, I) with μ uniform in [-5, 5] per feature, one μ per batch), *scale*
//! (N(0, s I) with s uniform in [3, 8] per batch) or *outlier* (uniform in [-10, 10] per
//! feature). Normal samples are N(0, I). With `--drift-every R`, every R samples a key
//! enters a new regime: its samples (normal and anomalous alike) become `m + σ x` with
//! `m` uniform in [-3, 3] per feature and `σ` uniform in [0.5, 2]; regime 0 is `m = 0,
//! σ = 1`. Drift is a change of what is normal, so its samples are labelled `normal`.

use std::borrow::Cow;

use rand::Rng;

use super::{LineFormat, ParseError, RowGenerator, Timeline, event_time_in_range, normal, row_rng};
use crate::diag::excerpt;
use crate::time::{Millis, parse_iso8601_signed, write_iso8601};

/// The most features a line may carry.
pub const MAX_FEATURES: usize = 64;

/// Samples per batch, as the notebook's stream sends them.
pub const BATCH: u64 = 100;

/// Anomalies per batch (the notebook's 5 % anomaly rate).
pub const ANOMALIES_PER_BATCH: usize = 5;

/// What a labelled sample is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Label {
    /// Not an anomaly.
    Normal,
    /// A mean-shift anomaly.
    Shift,
    /// A variance-scale anomaly.
    Scale,
    /// A uniform outlier.
    Outlier,
    /// An anomaly of unstated kind.
    Anomaly,
}

impl Label {
    /// The label's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Normal => "normal",
            Label::Shift => "shift",
            Label::Scale => "scale",
            Label::Outlier => "outlier",
            Label::Anomaly => "anomaly",
        }
    }

    fn parse(word: &str) -> Option<Label> {
        [Label::Normal, Label::Shift, Label::Scale, Label::Outlier, Label::Anomaly]
            .into_iter()
            .find(|l| l.as_str() == word)
    }

    /// Whether the sample is an anomaly.
    pub fn is_anomaly(self) -> bool {
        self != Label::Normal
    }
}

/// One parsed line, borrowing its key from the line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample<'a> {
    /// Event time.
    pub timestamp: Millis,
    /// The key (a device, a stream).
    pub key: Cow<'a, str>,
    /// The features, in column order.
    pub values: Vec<f64>,
    /// The label, if the line has one.
    pub label: Option<Label>,
}

/// The feature-vector CSV format.
pub struct FeaturesCsv;

impl LineFormat for FeaturesCsv {
    type Parsed<'a> = Sample<'a>;
    const NAME: &'static str = "features";

    fn is_header(line: &str) -> bool {
        line.trim_start_matches('\u{feff}').starts_with("timestamp,key,")
    }

    fn parse(line: &str) -> Result<Sample<'_>, ParseError> {
        if line.contains('"') {
            return Err(ParseError::fixed("quotes are not allowed in a feature line"));
        }
        let mut fields = line.split(',');
        let timestamp = fields.next().unwrap_or("");
        let key = fields.next().ok_or_else(|| ParseError::fixed("wrong field count: no key"))?;
        if key.trim().is_empty() {
            return Err(ParseError::fixed("empty key"));
        }
        let timestamp = parse_iso8601_signed(timestamp.trim())
            .ok_or_else(|| {
                ParseError::from(format!(
                    "bad timestamp '{}': not ISO 8601",
                    excerpt(timestamp.as_bytes(), 40)
                ))
            })
            .and_then(|t| event_time_in_range(t as i128, timestamp))?;
        let mut values = Vec::with_capacity(8);
        let mut label = None;
        for (column, field) in fields.enumerate() {
            if label.is_some() {
                return Err(ParseError::fixed("a label must be the last field"));
            }
            let field = field.trim();
            match field.parse::<f64>() {
                Ok(v) if v.is_finite() => values.push(v),
                _ => match Label::parse(field) {
                    Some(l) if column > 0 => label = Some(l),
                    _ => {
                        return Err(ParseError::from(format!(
                            "bad feature {} '{}': not a finite number{}",
                            column + 1,
                            excerpt(field.as_bytes(), 40),
                            if column > 0 {
                                " or a label (normal, shift, scale, outlier, anomaly)"
                            } else {
                                ""
                            }
                        )));
                    }
                },
            }
            if values.len() > MAX_FEATURES {
                return Err(ParseError::from(format!("more than {MAX_FEATURES} features")));
            }
        }
        if values.is_empty() {
            return Err(ParseError::fixed("wrong field count: no features"));
        }
        Ok(Sample { timestamp, key: Cow::Borrowed(key), values, label })
    }

    #[inline]
    fn event_time(parsed: &Sample<'_>) -> Millis {
        parsed.timestamp
    }
}

/// The `gen anomalies` options.
#[derive(clap::Args, Clone, Debug)]
pub struct FeaturesArgs {
    /// Number of keys (`k0000`, `k0001`, …); row i belongs to key i mod N.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub keys: u64,
    /// Features per sample.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=MAX_FEATURES as u64))]
    pub features: u64,
    /// Every this many samples of a key, move its normal mean and scale (concept drift).
    #[arg(long, value_name = "SAMPLES", value_parser = clap::value_parser!(u64).range(1..))]
    pub drift_every: Option<u64>,
}

/// The notebook's anomaly stream, row `i` a function of `(seed, i)`: see the module doc.
#[derive(Clone, Debug)]
pub struct FeaturesGen {
    seed: u64,
    start: Millis,
    keys: u64,
    features: usize,
    drift_every: Option<u64>,
}

/// A batch's anomaly kind and its parameters.
enum Kind {
    Shift(Vec<f64>),
    Scale(f64),
    Outlier,
}

impl FeaturesGen {
    /// The generator for `seed` with the given options, starting at the timeline's start.
    pub fn new(seed: u64, timeline: Timeline, args: &FeaturesArgs) -> Self {
        let start = match timeline {
            Timeline::Shuffled { start, .. } | Timeline::Ordered { start, .. } => start,
        };
        FeaturesGen {
            seed,
            start,
            keys: args.keys.max(1),
            features: args.features.clamp(1, MAX_FEATURES as u64) as usize,
            drift_every: args.drift_every,
        }
    }

    /// Sample `index`'s key, time, values and label.
    pub fn sample(&self, index: u64) -> (u64, Millis, Vec<f64>, Label) {
        let (key, j) = (index % self.keys, index / self.keys);
        let key_seed = self.seed ^ key.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
        // The batch's kind and anomaly positions from (seed, key, batch) alone.
        let mut batch = row_rng(key_seed, j / BATCH);
        let kind = match batch.random_range(0..3) {
            0 => Kind::Shift((0..self.features).map(|_| batch.random_range(-5.0..5.0)).collect()),
            1 => Kind::Scale(batch.random_range(3.0..8.0)),
            _ => Kind::Outlier,
        };
        // The first 5 of a Fisher–Yates shuffle of 0..BATCH, tracking only the swapped
        // places: a place p is not read again once its value is chosen.
        let mut chosen = [0u64; ANOMALIES_PER_BATCH];
        let mut moved = [(u64::MAX, 0u64); ANOMALIES_PER_BATCH];
        let at = |moved: &[(u64, u64)], i: u64| moved.iter().find(|m| m.0 == i).map_or(i, |m| m.1);
        for p in 0..ANOMALIES_PER_BATCH {
            let q = batch.random_range(p..BATCH as usize) as u64;
            let (vp, vq) = (at(&moved, p as u64), at(&moved, q));
            chosen[p] = vq;
            match moved.iter_mut().find(|m| m.0 == q) {
                Some(m) => m.1 = vp,
                None => moved[p] = (q, vp),
            }
        }
        let anomalous = chosen.contains(&(j % BATCH));
        let mut rng = row_rng(self.seed, index);
        let mut values: Vec<f64> = (0..self.features).map(|_| normal(&mut rng)).collect();
        let label = if !anomalous {
            Label::Normal
        } else {
            match &kind {
                Kind::Shift(mu) => {
                    values.iter_mut().zip(mu).for_each(|(v, m)| *v += m);
                    Label::Shift
                }
                Kind::Scale(s) => {
                    values.iter_mut().for_each(|v| *v *= s.sqrt());
                    Label::Scale
                }
                Kind::Outlier => {
                    values.iter_mut().for_each(|v| *v = rng.random_range(-10.0..10.0));
                    Label::Outlier
                }
            }
        };
        if let Some(every) = self.drift_every {
            let regime = j / every;
            if regime > 0 {
                let mut r = row_rng(!key_seed, regime);
                let mean: Vec<f64> = (0..self.features).map(|_| r.random_range(-3.0..3.0)).collect();
                let sigma = r.random_range(0.5..2.0);
                values.iter_mut().zip(&mean).for_each(|(v, m)| *v = m + sigma * *v);
            }
        }
        (key, self.start + j * 1000, values, label)
    }
}

impl RowGenerator for FeaturesGen {
    fn header(&self) -> Option<Cow<'static, str>> {
        let columns: String = (1..=self.features).map(|f| format!(",x{f}")).collect();
        Some(format!("timestamp,key{columns},label").into())
    }

    fn write_row(&self, index: u64, out: &mut Vec<u8>) {
        use std::io::Write;
        let (key, time, values, label) = self.sample(index);
        write_iso8601(out, time);
        let _ = write!(out, ",k{key:04}");
        for v in values {
            let _ = write!(out, ",{v:.4}");
        }
        out.push(b',');
        out.extend_from_slice(label.as_str().as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(keys: u64, drift_every: Option<u64>) -> FeaturesGen {
        FeaturesGen::new(7, Timeline::default_history(), &FeaturesArgs { keys, features: 5, drift_every })
    }

    #[test]
    fn parses_features_with_and_without_labels() {
        let s = FeaturesCsv::parse("2026-10-01T00:00:01Z,k1,0.5,-1e-3,2,outlier").unwrap();
        assert_eq!(s.timestamp, 1_790_812_801_000);
        assert_eq!(s.key, "k1");
        assert_eq!(s.values, vec![0.5, -0.001, 2.0]);
        assert_eq!(s.label, Some(Label::Outlier));
        let s = FeaturesCsv::parse("2026-10-01 00:00:01,k1,0.5").unwrap();
        assert_eq!((s.values.len(), s.label), (1, None));
        assert!(FeaturesCsv::is_header("timestamp,key,x1,x2,label"));
        assert!(FeaturesCsv::is_header(&generator(1, None).header().unwrap()));
    }

    #[test]
    fn rejects_name_the_problem() {
        let cases = [
            ("2026-10-01T00:00:01Z,k1,0.5,abc", "bad feature 2 'abc'"),
            ("2026-10-01T00:00:01Z,k1,normal", "bad feature 1"),
            ("2026-10-01T00:00:01Z,k1,NaN,1", "bad feature 1"),
            ("2026-10-01T00:00:01Z,k1,1,normal,2", "a label must be the last"),
            ("2026-10-01T00:00:01Z,k1", "wrong field count: no features"),
            ("2026-10-01T00:00:01Z", "wrong field count: no key"),
            ("2026-10-01T00:00:01Z,,1", "empty key"),
            ("soon,k1,1", "bad timestamp"),
            ("2026-10-01T00:00:01Z,\"k\",1", "quotes"),
        ];
        for (line, reason) in cases {
            let err = FeaturesCsv::parse(line).unwrap_err();
            assert!(err.0.starts_with(reason), "{line}: {err}");
        }
        let wide = format!("2026-10-01T00:00:01Z,k{}", ",1".repeat(MAX_FEATURES + 1));
        assert!(FeaturesCsv::parse(&wide).unwrap_err().0.starts_with("more than"));
    }

    #[test]
    fn generated_rows_parse_back_with_five_percent_anomalies_per_batch() {
        let g = generator(3, None);
        let mut out = Vec::new();
        let mut anomalies = [0usize; 3];
        for i in 0..3 * BATCH {
            out.clear();
            g.write_row(i, &mut out);
            let line = std::str::from_utf8(&out).unwrap();
            let s = FeaturesCsv::parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(s.key, format!("k{:04}", i % 3));
            assert_eq!(s.values.len(), 5);
            anomalies[(i % 3) as usize] += s.label.unwrap().is_anomaly() as usize;
        }
        assert_eq!(anomalies, [ANOMALIES_PER_BATCH; 3]);
        let mut again = Vec::new();
        generator(3, None).write_row(3 * BATCH - 1, &mut again);
        assert_eq!(out, again);
    }

    #[test]
    fn drift_moves_the_normal_mean_from_the_second_regime() {
        let (plain, drifting) = (generator(1, None), generator(1, Some(1000)));
        let mean = |g: &FeaturesGen, from: u64| {
            (from..from + 1000)
                .map(|i| g.sample(i))
                .filter(|s| s.3 == Label::Normal)
                .map(|s| s.2[0])
                .sum::<f64>()
                / 950.0
        };
        assert_eq!(plain.sample(10).2, drifting.sample(10).2, "regime 0 is undrifted");
        assert!(mean(&plain, 1000).abs() < 0.15);
        let moved = (1..6).map(|r| (mean(&drifting, r * 1000) - mean(&plain, r * 1000)).abs());
        assert!(moved.fold(0.0, f64::max) > 0.5, "some regime moves feature 1 by more than 0.5");
    }
}
