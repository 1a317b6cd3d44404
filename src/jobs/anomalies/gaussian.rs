//! Windowed Gaussian, the `gaussian` detector: NAB's baseline, kept as a reference.
//!
//! The method of NAB's `windowedGaussian` detector: a value's score is one minus its
//! two-sided tail probability under a normal distribution fitted (mean and population
//! standard deviation) to a sliding window of earlier values. The window fills to 6,400
//! values, refitting after each; then it slides in steps of 100, refitting after each
//! step. A standard deviation of 0 is taken as 10^-6. The first value scores 0.
//!
//! Scores are `1 - Q(|z|)` with `Q` the normal tail, so they lie in `[0.5, 1)` after the
//! first value. The range convention does not apply: the detector never uses a range.
//!
//! **State and cost.** Per key: at most 6,400 + 100 values (52 KB). Per value: O(1),
//! plus a refit of O(6,400) per value while the window fills and per 100 values after.

/// Values in the fitted window.
pub const WINDOW: usize = 6_400;
/// Values the window slides by.
pub const STEP: usize = 100;

/// One key's windowed-Gaussian state.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct WindowedGaussian {
    window: std::collections::VecDeque<f64>,
    step: Vec<f64>,
    mean: f64,
    std: f64,
}

unsafe extern "C" {
    /// The C library's complementary error function (the platform's libm).
    safe fn erfc(x: f64) -> f64;
}

/// The probability that a normal variable with this mean and standard deviation lies
/// farther from the mean than `x` on `x`'s side.
pub fn tail(x: f64, mean: f64, std: f64) -> f64 {
    let z = (x - mean).abs() / std;
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

impl WindowedGaussian {
    /// An empty detector.
    pub fn new() -> Self {
        WindowedGaussian { mean: 0.0, std: 1.0, ..Default::default() }
    }

    /// Scores the next value.
    pub fn score(&mut self, value: f64) -> f64 {
        let score = if self.window.is_empty() { 0.0 } else { 1.0 - tail(value, self.mean, self.std) };
        if self.window.len() < WINDOW {
            self.window.push_back(value);
            self.refit();
        } else {
            self.step.push(value);
            if self.step.len() == STEP {
                self.window.drain(..STEP);
                self.window.extend(self.step.drain(..));
                self.refit();
            }
        }
        score
    }

    fn refit(&mut self) {
        let n = self.window.len() as f64;
        self.mean = self.window.iter().sum::<f64>() / n;
        let var = self.window.iter().map(|v| (v - self.mean) * (v - self.mean)).sum::<f64>() / n;
        self.std = var.sqrt();
        if self.std == 0.0 {
            self.std = 0.000_001;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_is_the_normal_tail() {
        assert!((tail(0.0, 0.0, 1.0) - 0.5).abs() < 1e-15);
        assert!((tail(1.96, 0.0, 1.0) - 0.024_997_895).abs() < 1e-8);
        assert_eq!(tail(-1.96, 0.0, 1.0), tail(1.96, 0.0, 1.0));
    }

    #[test]
    fn outliers_score_near_one() {
        let mut d = WindowedGaussian::new();
        assert_eq!(d.score(1.0), 0.0);
        for i in 0..1000 {
            d.score((i % 10) as f64);
        }
        assert!(d.score(4.5) < 0.6);
        assert!(d.score(100.0) > 0.999_999);
    }
}
