//! Relative entropy with multiple hypotheses, the `entropy` detector (the fast default).
//!
//! The method of Figure 1 of C. Wang, K. Viswanathan, L. Choudur, V. Talwar,
//! W. Satterfield and K. Schwan, "Statistical Techniques for Online Anomaly Detection in
//! Data Centers", IFIP/IEEE IM 2011, with the parameters NAB tuned for it (`W = 52`,
//! 5 bins, a 0.99 chi-squared threshold, `c_th = 1`).
//!
//! * The value range `[min, max]` is cut into 5 bins of width `(max - min) / 5`; a value
//!   `v` goes to bin `min(⌈(v - min) / step⌉, 4)` (NAB's quantisation).
//! * Once `W` values have been seen, each new value's window (the last `W` values) is a
//!   histogram `P̂`. The first window becomes hypothesis 1. Each later window is tested
//!   against every hypothesis `P` with the statistic `2 W D(P̂ ‖ P)`, which under `P` is
//!   asymptotically chi-squared with 4 degrees of freedom; it agrees with `P` when the
//!   statistic is below the 0.99 quantile, 13.2767. The agreeing hypothesis with the
//!   smallest statistic gains one window; if it had at most `c_th` windows before, the
//!   value is anomalous. If none agrees, the value is anomalous and its window becomes a
//!   new hypothesis.
//! * Scores are 1 (anomalous) or 0.
//!
//! **Range.** With `--range MIN:MAX` the bins are fixed (NAB gives every detector each
//! file's min and max in advance; values outside are counted in the end bins). Without,
//! the range is learned causally: the min and max of the values seen so far. Each
//! hypothesis then keeps its window of values, and when the range widens, the current
//! window and every hypothesis are binned again with the new range, so windows are
//! always compared under one binning (this matters: keeping each hypothesis's old bins
//! scores 38.6 on NAB's standard profile, binning again 51.1; see docs/anomalies.md).
//!
//! **State and cost.** Per key: the last 52 values, their bins and histogram, and at most
//! [`MAX_HYPOTHESES`] hypotheses of 5 counts each (plus, with a learned range, their 52
//! values): at most 2 KB with a given range, 29 KB with a learned one. At the cap, a
//! new hypothesis replaces the one with the fewest windows (the oldest among equals).
//! Per value: O(1) to update the histogram, and one 5-term statistic per hypothesis,
//! from a table of logarithms; when the learned range widens, O(52) per hypothesis.

use super::range::Range;

/// Values per window.
pub const WINDOW: usize = 52;
/// Bins of the histogram.
pub const BINS: usize = 5;
/// The 0.99 quantile of the chi-squared distribution with `BINS - 1` degrees of freedom.
pub const THRESHOLD: f64 = 13.276_704_135_987_622;
/// A hypothesis seen in at most this many windows is still anomalous.
pub const C_TH: u32 = 1;
/// Most hypotheses kept per key.
pub const MAX_HYPOTHESES: usize = 64;

/// One key's relative-entropy state.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(into = "Saved", try_from = "Saved")]
pub struct RelativeEntropy {
    given: Option<(f64, f64)>,
    min: f64,
    max: f64,
    /// The range the bins in `bins` were computed with.
    binned_for: (f64, f64),
    values: [f64; WINDOW],
    bins: [u8; WINDOW],
    /// Values seen.
    seen: u64,
    counts: [u8; BINS],
    hypotheses: Vec<([u8; BINS], u32)>,
    /// With a learned range, each hypothesis's window of values, to bin it again when
    /// the range widens.
    windows: Vec<[f64; WINDOW]>,
    ln: [f64; WINDOW + 1],
}

/// A detector as a snapshot holds it: windows as vectors (serde derives arrays of at
/// most 32), and no logarithm table, which is rebuilt.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    given: Option<(f64, f64)>,
    min: f64,
    max: f64,
    binned_for: (f64, f64),
    values: Vec<f64>,
    bins: Vec<u8>,
    seen: u64,
    counts: [u8; BINS],
    hypotheses: Vec<([u8; BINS], u32)>,
    windows: Vec<Vec<f64>>,
}

impl From<RelativeEntropy> for Saved {
    fn from(d: RelativeEntropy) -> Saved {
        Saved {
            given: d.given,
            min: d.min,
            max: d.max,
            binned_for: d.binned_for,
            values: d.values.to_vec(),
            bins: d.bins.to_vec(),
            seen: d.seen,
            counts: d.counts,
            hypotheses: d.hypotheses,
            windows: d.windows.iter().map(|w| w.to_vec()).collect(),
        }
    }
}

impl TryFrom<Saved> for RelativeEntropy {
    type Error = String;

    fn try_from(s: Saved) -> Result<RelativeEntropy, String> {
        let window =
            |v: &[f64]| <[f64; WINDOW]>::try_from(v).map_err(|_| format!("a window of {} values", v.len()));
        let mut d = RelativeEntropy::new(s.given.map_or(Range::Learned, |(lo, hi)| Range::Given(lo, hi)));
        d.values = window(&s.values)?;
        d.bins = <[u8; WINDOW]>::try_from(&s.bins[..]).map_err(|_| format!("{} bins", s.bins.len()))?;
        d.windows = s.windows.iter().map(|w| window(w)).collect::<Result<_, _>>()?;
        (d.min, d.max, d.binned_for, d.seen, d.counts, d.hypotheses) =
            (s.min, s.max, s.binned_for, s.seen, s.counts, s.hypotheses);
        Ok(d)
    }
}

impl RelativeEntropy {
    /// A detector with the given range, or one learned causally.
    pub fn new(range: Range) -> Self {
        let given = match range {
            Range::Given(lo, hi) => Some((lo, hi)),
            Range::Learned => None,
        };
        let mut ln = [0.0; WINDOW + 1];
        for (k, l) in ln.iter_mut().enumerate() {
            *l = (k as f64).ln();
        }
        RelativeEntropy {
            given,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            binned_for: (f64::NAN, f64::NAN),
            values: [0.0; WINDOW],
            bins: [0; WINDOW],
            seen: 0,
            counts: [0; BINS],
            hypotheses: Vec::new(),
            windows: Vec::new(),
            ln,
        }
    }

    /// How many hypotheses the key holds.
    pub fn hypotheses(&self) -> usize {
        self.hypotheses.len()
    }

    /// `min(⌈(value - min) / step⌉, 4)`, 0 below the range. The ceiling is taken by hand
    /// (exact for the small quotients that matter): `f64::ceil` is a libm call on
    /// baseline x86-64, and this is the detector's inner loop.
    #[inline]
    fn bin(value: f64, min: f64, step: f64) -> u8 {
        let q = (value - min) / step;
        if q.is_nan() || q <= 0.0 {
            return 0;
        }
        if q >= (BINS - 1) as f64 {
            return (BINS - 1) as u8;
        }
        let whole = q as u8;
        if (whole as f64) < q { whole + 1 } else { whole }
    }

    /// Scores the next value: 1.0 if anomalous, else 0.0.
    pub fn score(&mut self, value: f64) -> f64 {
        let (min, max) = super::range::bounds(self.given, (&mut self.min, &mut self.max), value);
        let step = (max - min) / BINS as f64;
        let slot = (self.seen % WINDOW as u64) as usize;
        let full = self.seen >= WINDOW as u64;
        if step == 0.0 {
            // Every value so far is the same: nothing is anomalous (as NAB for flat files).
            self.values[slot] = value;
            self.seen += 1;
            self.binned_for = (f64::NAN, f64::NAN);
            return 0.0;
        }
        let bin = Self::bin(value, min, step);
        if self.binned_for == (min, max) {
            if full {
                self.counts[self.bins[slot] as usize] -= 1;
            }
            self.values[slot] = value;
            self.bins[slot] = bin;
            self.counts[bin as usize] += 1;
        } else {
            self.values[slot] = value;
            self.counts = [0; BINS];
            let live = (self.seen as usize + 1).min(WINDOW);
            for i in 0..live {
                let b = Self::bin(self.values[i], min, step);
                self.bins[i] = b;
                self.counts[b as usize] += 1;
            }
            self.binned_for = (min, max);
            for (window, (counts, _)) in self.windows.iter().zip(&mut self.hypotheses) {
                *counts = [0; BINS];
                for &v in window.iter() {
                    counts[Self::bin(v, min, step) as usize] += 1;
                }
            }
        }
        self.seen += 1;
        if self.seen < WINDOW as u64 {
            return 0.0;
        }
        if self.hypotheses.is_empty() {
            self.add_hypothesis();
            return 0.0;
        }
        let mut best: Option<(usize, f64)> = None;
        for (i, (p, _)) in self.hypotheses.iter().enumerate() {
            let stat = self.statistic(p);
            if stat < THRESHOLD && best.is_none_or(|(_, b)| stat < b) {
                best = Some((i, stat));
            }
        }
        match best {
            Some((i, _)) => {
                self.hypotheses[i].1 += 1;
                if self.hypotheses[i].1 <= C_TH { 1.0 } else { 0.0 }
            }
            None => {
                self.add_hypothesis();
                1.0
            }
        }
    }

    /// Makes the current window a hypothesis, replacing the weakest at the cap.
    fn add_hypothesis(&mut self) {
        if self.hypotheses.len() == MAX_HYPOTHESES {
            let weakest = (0..MAX_HYPOTHESES).min_by_key(|&i| self.hypotheses[i].1).unwrap_or(0);
            self.hypotheses.remove(weakest);
            if self.given.is_none() {
                self.windows.remove(weakest);
            }
        }
        self.hypotheses.push((self.counts, 1));
        if self.given.is_none() {
            self.windows.push(self.values);
        }
    }

    /// `2 W D(P̂ ‖ P)` for the current window's counts against a hypothesis's.
    fn statistic(&self, hypothesis: &[u8; BINS]) -> f64 {
        let mut sum = 0.0;
        for (&k, &q) in self.counts.iter().zip(hypothesis) {
            if k == 0 {
                continue;
            }
            if q == 0 {
                return f64::INFINITY;
            }
            sum += k as f64 * (self.ln[k as usize] - self.ln[q as usize]);
        }
        2.0 * sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_series_is_quiet_and_a_level_shift_is_flagged_once_per_new_shape() {
        let mut d = RelativeEntropy::new(Range::Given(0.0, 10.0));
        let steady: Vec<f64> = (0..500).map(|i| 5.0 + (i % 3) as f64 * 0.4).collect();
        let scores: Vec<f64> = steady.iter().map(|&v| d.score(v)).collect();
        assert!(scores.iter().all(|&s| s == 0.0));
        let shifted: Vec<f64> = (0..200).map(|_| 9.5).map(|v| d.score(v)).collect();
        assert!(shifted.contains(&1.0), "a shift makes new hypotheses");
        assert!(d.hypotheses() <= MAX_HYPOTHESES);
    }

    #[test]
    fn the_learned_range_widens_with_the_data() {
        let mut d = RelativeEntropy::new(Range::Learned);
        for i in 0..200 {
            d.score((i % 7) as f64);
        }
        assert_eq!((d.min, d.max), (0.0, 6.0));
        assert_eq!(d.counts.iter().map(|&c| c as usize).sum::<usize>(), WINDOW);
    }

    #[test]
    fn bins_are_nab_quantisation() {
        for (v, b) in
            [(-1.0, 0), (0.0, 0), (0.5, 1), (1.0, 1), (1.0001, 2), (3.9, 4), (4.0, 4), (5.0, 4), (9.0, 4)]
        {
            assert_eq!(RelativeEntropy::bin(v, 0.0, 1.0), b, "{v}");
            assert_eq!(RelativeEntropy::bin(v, 0.0, 1.0), v.max(0.0).ceil().min(4.0) as u8, "{v}");
        }
        assert_eq!(RelativeEntropy::bin(f64::NAN, 0.0, 1.0), 0);
    }

    #[test]
    fn hypotheses_are_capped() {
        let mut d = RelativeEntropy::new(Range::Given(0.0, 5.0));
        for i in 0..20_000u64 {
            // A pseudo-random walk over the bins makes many shapes.
            let v = ((i * 2_654_435_761) >> 7) % 6;
            d.score(v as f64 * (1.0 + (i / 997 % 5) as f64) / 5.0);
        }
        assert!(d.hypotheses() <= MAX_HYPOTHESES);
    }
}
