//! Robust Mahalanobis distance with sliding-window refits and drift detection, the
//! `distance` detector (the multivariate one), for feature vectors.
//!
//! The notebook retrains an Isolation Forest every batch on a sliding window of recent
//! samples and checks for drift by comparing window means. This detector keeps the
//! same shape, a sliding window refitted every [`REFIT_EVERY`] samples, with a model
//! whose scores are calibrated: for Gaussian normal data, the squared distance `d²` of
//! a normal sample is chi-squared with `N` degrees of freedom, so the score
//! `P(χ²_N ≤ d²)` is uniform on normal data and near 1 for anything far from it.
//!
//! * **Model.** The mean and covariance of the last [`WINDOW`] samples, fitted robustly:
//!   a start from each feature's median and median absolute deviation, then twice the
//!   mean and covariance of the samples within the previous model's 0.975 chi-squared
//!   quantile, scaled back by the truncated chi-squared's variance (the reweighting step
//!   of the MCD estimator, Rousseeuw & Van Driessen 1999), so that anomalies in the
//!   window, even many, do not widen it. The covariance is shrunk
//!   toward its diagonal by `N / (n + N)` for `n` samples, so a young window is not
//!   singular. A key's first [`MIN_FIT`] samples (or `4 N`, if more) score 0; refits come
//!   after 20, 40, 80 … samples, then every [`REFIT_EVERY`].
//! * **Score.** `P(χ²_N ≤ d²)` with `d² = (x − μ)ᵀ Σ⁻¹ (x − μ)`, through the Cholesky
//!   factor of `Σ`.
//! * **Drift.** Over the last [`SCAN`] samples, two generalized likelihood-ratio tests
//!   look for a change point, the suffix where the data stopped fitting the model: the
//!   rate of samples above the 0.99 quantile rising from 10 % or less (log-likelihood
//!   ratio above [`RATE_LLR`]), and the mean of the whitened, unflagged samples (each
//!   coordinate clipped to ±3) moving (`m |z̄|²` with a chi-squared tail below
//!   [`MEAN_ALPHA`]), each over suffixes of [`MIN_SEGMENT`] samples or more. On a drift,
//!   the window keeps only the suffix and is refitted at once: the model follows the new
//!   regime within tens of samples instead of a window's length. The change is reported.
//!
//! **State and cost.** Per key: at most [`WINDOW`] samples of `N` values, the model
//! (`N + N²` values) and the scan's last [`SCAN`] flags and whitened samples, about
//! 26 KB for `N = 5`; at the cap the oldest sample leaves the window. Per sample: `O(N²)`
//! to score, `O(SCAN · N)` for the drift scan, and `O(WINDOW · N²)` every refit.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::chi2;
use crate::record::features::MAX_FEATURES;

/// Samples in the sliding window (the notebook's 500).
pub const WINDOW: usize = 500;
/// Samples between refits once the window has grown (the notebook's batch of 100).
pub const REFIT_EVERY: usize = 100;
/// Samples before the first fit, for few features (the notebook waits for 100).
pub const MIN_FIT: usize = 20;
/// Samples the drift scan looks back over.
pub const SCAN: usize = 100;
/// The shortest suffix a drift test accepts.
pub const MIN_SEGMENT: usize = 20;
/// The flag rate the model allows before the rate test counts evidence: 1 % of normal
/// samples and a 5 % anomaly rate, with room.
pub const BASE_RATE: f64 = 0.1;
/// The log-likelihood ratio at which a rising flag rate is a drift.
pub const RATE_LLR: f64 = 12.0;
/// The chi-squared tail at which a moved mean is a drift.
pub const MEAN_ALPHA: f64 = 1e-9;
/// The score above which a sample is flagged for the drift scan.
const FLAG: f64 = 0.99;
/// The quantile the robust refit keeps.
const TRIM: f64 = 0.975;
/// Whitened coordinates are clipped to this for the mean test, so that an outlier
/// that escaped flagging weighs no more than a few normal samples.
const CLIP: f64 = 3.0;

/// A detected change of regime.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Drift {
    /// Which test fired: `rate` or `mean`.
    pub test: &'static str,
    /// Its statistic: the log-likelihood ratio, or `m |z̄|²`.
    pub statistic: f64,
    /// How many samples back, counting this one, the new regime began.
    pub since: usize,
}

/// A fitted model: mean and lower Cholesky factor of the covariance.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Model {
    mean: Vec<f64>,
    chol: Vec<f64>,
    /// Samples it was fitted on.
    samples: usize,
}

impl Model {
    /// Fills `z` with `L⁻¹ (x − μ)`, returning `|z|² = d²`.
    fn whiten(&self, x: &[f64], z: &mut [f64]) -> f64 {
        let n = self.mean.len();
        let mut d2 = 0.0;
        for i in 0..n {
            let row = &self.chol[i * n..i * n + i];
            let s = x[i] - self.mean[i] - row.iter().zip(&z[..i]).map(|(l, z)| l * z).sum::<f64>();
            z[i] = s / self.chol[i * n + i];
            d2 += z[i] * z[i];
        }
        d2
    }
}

/// One key's detector.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RobustDistance {
    dim: usize,
    /// Trim cut-off and consistency factor of the robust refit, for `dim`.
    trim: (f64, f64),
    /// The window's samples, `dim` values each, oldest first.
    window: VecDeque<f64>,
    model: Option<Model>,
    since_fit: usize,
    /// The flags of the samples scored since the last drift, at most [`WINDOW`], and how
    /// many are set: the long-run flag rate.
    history: VecDeque<bool>,
    flagged: usize,
    /// The scan: the clipped whitened values of the last [`SCAN`] samples since the last
    /// drift (their flags are the newest of `history`).
    whitened: VecDeque<f64>,
    z: Vec<f64>,
}

impl RobustDistance {
    /// A detector whose dimension is set by its first sample.
    pub fn new() -> Self {
        Self::default()
    }

    /// Samples held in the window.
    pub fn window_len(&self) -> usize {
        self.window.len() / self.dim.max(1)
    }

    /// Scores the key's next sample, in `[0, 1]`, and reports a drift if this sample
    /// completes one. Every sample of a key must have the same number of values.
    pub fn score(&mut self, x: &[f64]) -> (f64, Option<Drift>) {
        if self.dim == 0 {
            self.dim = x.len();
            let cut = chi2::quantile(self.dim, TRIM);
            self.trim = (cut, TRIM / chi2::cdf(self.dim + 2, cut));
            self.z = vec![0.0; self.dim];
        }
        debug_assert_eq!(x.len(), self.dim);
        let mut score = 0.0;
        let mut drift = None;
        self.window.extend(x.iter().copied().take(self.dim));
        if self.window.len() > WINDOW * self.dim {
            self.window.drain(..self.dim);
        }
        if let Some(model) = &self.model {
            let d2 = model.whiten(x, &mut self.z);
            score = chi2::cdf(self.dim, d2);
            let flag = score >= FLAG;
            self.history.push_back(flag);
            self.flagged += flag as usize;
            if self.history.len() > WINDOW {
                self.flagged -= self.history.pop_front().unwrap_or(false) as usize;
            }
            self.whitened.extend(self.z.iter().map(|v| v.clamp(-CLIP, CLIP)));
            if self.whitened.len() > SCAN * self.dim {
                self.whitened.drain(..self.dim);
            }
            drift = self.scan();
            if let Some(d) = drift {
                let keep = d.since.min(self.window_len());
                self.window.drain(..self.window.len() - keep * self.dim);
                self.whitened.clear();
                self.history.clear();
                self.flagged = 0;
                self.refit();
                return (score, drift);
            }
        }
        self.since_fit += 1;
        let due = match &self.model {
            None => self.window_len() >= MIN_FIT.max(4 * self.dim),
            Some(m) => self.since_fit >= REFIT_EVERY.min(m.samples),
        };
        if due {
            self.refit();
        }
        (score, drift)
    }

    /// The drift tests over the scan's suffixes; the stronger evidence wins.
    fn scan(&self) -> Option<Drift> {
        let n = self.dim;
        let mut sum = [0.0; MAX_FEATURES];
        let sum = &mut sum[..n];
        let scanned = self.whitened.len() / n;
        let (mut flagged, mut unflagged) = (0usize, 0usize);
        let (mut best_rate, mut best_mean) = ((0.0, 0), (0.0, 0));
        // Evidence counts against twice the long-run rate, so a stream whose anomalies
        // are common is not a drift at every burst.
        let base = BASE_RATE.max(2.0 * self.flagged as f64 / self.history.len().max(1) as f64);
        for (back, &flag) in self.history.iter().rev().take(scanned).enumerate() {
            let m = back + 1;
            if flag {
                flagged += 1;
            } else {
                unflagged += 1;
                let at = (scanned - m) * n;
                for (s, z) in sum.iter_mut().zip(self.whitened.range(at..at + n)) {
                    *s += z;
                }
            }
            if m >= MIN_SEGMENT {
                let p = flagged as f64 / m as f64;
                if p > base && base < 1.0 {
                    let llr = m as f64 * (xlogy(p, p / base) + xlogy(1.0 - p, (1.0 - p) / (1.0 - base)));
                    if llr > best_rate.0 {
                        best_rate = (llr, m);
                    }
                }
            }
            if unflagged >= MIN_SEGMENT {
                let stat = sum.iter().map(|s| s * s).sum::<f64>() / unflagged as f64;
                if stat > best_mean.0 {
                    best_mean = (stat, m);
                }
            }
        }
        if best_rate.0 > RATE_LLR {
            return Some(Drift { test: "rate", statistic: best_rate.0, since: best_rate.1 });
        }
        if best_mean.1 > 0 && chi2::sf(n, best_mean.0) < MEAN_ALPHA {
            return Some(Drift { test: "mean", statistic: best_mean.0, since: best_mean.1 });
        }
        None
    }

    /// Fits the model to the window (robustly) and whitens the scan again under it.
    fn refit(&mut self) {
        self.since_fit = 0;
        let n = self.dim;
        let all: Vec<&[f64]> = self.window.make_contiguous().chunks_exact(n).collect();
        let Some(mut model) = start(&all, n) else { return };
        let mut z = vec![0.0; n];
        // Two reweighting steps: the second's cut is made under a full covariance.
        for _ in 0..2 {
            let kept: Vec<&[f64]> =
                all.iter().copied().filter(|x| model.whiten(x, &mut z) <= self.trim.0).collect();
            model = match fit(&kept, n, self.trim.1) {
                Some(m) if kept.len() > n => m,
                _ => fit(&all, n, 1.0).unwrap_or(model),
            };
        }
        // The scan's samples are the window's newest.
        let recent = self.whitened.len() / n;
        for (i, x) in all[all.len() - recent..].iter().enumerate() {
            model.whiten(x, &mut z);
            for (w, v) in self.whitened.range_mut(i * n..(i + 1) * n).zip(&z) {
                *w = v.clamp(-CLIP, CLIP);
            }
        }
        self.model = Some(model);
    }
}

/// `a ln b`, 0 when `a` is 0.
fn xlogy(a: f64, b: f64) -> f64 {
    if a == 0.0 { 0.0 } else { a * b.ln() }
}

/// The robust start: each feature's median and scaled median absolute deviation, a
/// diagonal model that up to half of the samples in any one feature cannot move.
fn start(xs: &[&[f64]], n: usize) -> Option<Model> {
    if xs.len() < 2 {
        return None;
    }
    let mut column = Vec::with_capacity(xs.len());
    let median = |column: &mut Vec<f64>| {
        let mid = column.len() / 2;
        *column.select_nth_unstable_by(mid, f64::total_cmp).1
    };
    let (mut mean, mut chol) = (vec![0.0; n], vec![0.0; n * n]);
    for i in 0..n {
        column.clear();
        column.extend(xs.iter().map(|x| x[i]));
        let m = median(&mut column);
        column.iter_mut().for_each(|v| *v = (*v - m).abs());
        // 1.4826 MAD estimates a normal's standard deviation.
        let spread = 1.4826 * median(&mut column);
        mean[i] = m;
        chol[i * n + i] = spread.max(1e-6 * m.abs()).max(1e-12);
    }
    Some(Model { mean, chol, samples: xs.len() })
}

/// Mean and Cholesky factor of `scale` times the shrunk covariance of `xs`; `None` for
/// fewer than two samples.
fn fit(xs: &[&[f64]], n: usize, scale: f64) -> Option<Model> {
    let count = xs.len();
    if count < 2 {
        return None;
    }
    let mut mean = vec![0.0; n];
    for x in xs {
        mean.iter_mut().zip(*x).for_each(|(m, v)| *m += v);
    }
    mean.iter_mut().for_each(|m| *m /= count as f64);
    let mut cov = vec![0.0; n * n];
    for x in xs {
        for i in 0..n {
            let di = x[i] - mean[i];
            for j in 0..=i {
                cov[i * n + j] += di * (x[j] - mean[j]);
            }
        }
    }
    let shrink = n as f64 / (count + n) as f64;
    let mut ridge = 0.0;
    for i in 0..n {
        for j in 0..=i {
            let c = cov[i * n + j] / (count - 1) as f64 * scale;
            cov[i * n + j] = if i == j { c } else { c * (1.0 - shrink) };
        }
        ridge += cov[i * n + i];
    }
    // A constant feature must not make the covariance singular.
    let ridge = (ridge / n as f64 * 1e-9).max(1e-12);
    // Cholesky, in place in the lower triangle.
    let mut chol = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = cov[i * n + j] + if i == j { ridge } else { 0.0 };
            for k in 0..j {
                s -= chol[i * n + k] * chol[j * n + k];
            }
            chol[i * n + j] = if i == j { s.max(ridge).sqrt() } else { s / chol[j * n + j] };
        }
    }
    Some(Model { mean, chol, samples: count })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Timeline;
    use crate::record::features::{FeaturesArgs, FeaturesGen};

    fn stream(drift_every: Option<u64>, rows: u64) -> Vec<(Vec<f64>, bool)> {
        let g = FeaturesGen::new(
            3,
            Timeline::default_history(),
            &FeaturesArgs { keys: 1, features: 5, drift_every },
        );
        (0..rows).map(|i| g.sample(i)).map(|s| (s.2, s.3.is_anomaly())).collect()
    }

    #[test]
    fn scores_are_calibrated_on_normal_data_and_high_on_anomalies() {
        let mut d = RobustDistance::new();
        let (mut normal_above, mut normals, mut caught, mut anomalies) = (0, 0, 0, 0);
        for (i, (x, anomalous)) in stream(None, 20_000).into_iter().enumerate() {
            let (score, drift) = d.score(&x);
            assert!((0.0..=1.0).contains(&score));
            assert_eq!(drift, None, "sample {i}: no drift in a stationary stream");
            if i < 1000 {
                continue;
            }
            if anomalous {
                anomalies += 1;
                caught += (score >= 0.99) as usize;
            } else {
                normals += 1;
                normal_above += (score >= 0.99) as usize;
            }
        }
        let fpr = normal_above as f64 / normals as f64;
        assert!((0.004..0.02).contains(&fpr), "1 % of normal samples above 0.99, found {fpr}");
        assert!(caught as f64 / anomalies as f64 > 0.7, "caught {caught} of {anomalies}");
        assert!(d.window_len() <= WINDOW);
    }

    #[test]
    fn a_drift_is_found_soon_after_each_regime_change() {
        let mut d = RobustDistance::new();
        let mut found = Vec::new();
        for (i, (x, _)) in stream(Some(2000), 10_000).into_iter().enumerate() {
            if let (_, Some(drift)) = d.score(&x) {
                found.push((i, i + 1 - drift.since));
            }
        }
        // Regimes change at 2000, 4000, 6000, 8000: each found within 60 samples, and
        // its change point placed within 30 of the truth.
        for change in [2000, 4000, 6000, 8000] {
            assert!(
                found
                    .iter()
                    .any(|&(at, from)| at >= change && at < change + 60 && from.abs_diff(change) <= 30),
                "change at {change}: found {found:?}"
            );
        }
        assert!(found.len() <= 8, "few false drifts: {found:?}");
    }
}
