//! The dashboard's recent past: a bounded ring of one-second samples.
//!
//! Contract: [`History::record`] is called about once a second with a fresh
//! [`Figures`]; the ring keeps the last `capacity` samples (300: five minutes), oldest
//! first, so memory is the same after a week as after five minutes. Rates are per
//! second over the time since the previous sample, never negative, and undefined for
//! the first sample.

use std::collections::VecDeque;

use serde::Serialize;

use super::figures::Figures;

/// Samples kept: five minutes at one a second.
pub const SAMPLES: usize = 300;

/// One second of a job, as the dashboard charts it.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Sample {
    /// Wall-clock time, seconds since the Unix epoch.
    pub t: f64,
    /// Records read per second (undefined for the first sample).
    pub in_rate: Option<f64>,
    /// Result rows written per second (undefined for the first sample).
    pub out_rate: Option<f64>,
    /// Output frontier behind the wall clock, seconds.
    pub lag_wall: Option<f64>,
    /// Output frontier behind the largest event time, seconds.
    pub lag_event: Option<f64>,
    /// Output latency p50, p99 and p99.9 so far, seconds.
    pub p50: Option<f64>,
    /// See `p50`.
    pub p99: Option<f64>,
    /// See `p50`.
    pub p999: Option<f64>,
    /// Late records so far.
    pub late: u64,
    /// Rejected lines so far.
    pub rejected: u64,
    /// Intake channel fill, 0 to 1.
    pub intake_fill: Option<f64>,
    /// Resident memory, bytes.
    pub resident_bytes: u64,
}

/// The last [`SAMPLES`] samples.
#[derive(Debug)]
pub struct History {
    capacity: usize,
    samples: VecDeque<Sample>,
    last: Option<Figures>,
}

impl Default for History {
    fn default() -> Self {
        History::new(SAMPLES)
    }
}

impl History {
    /// A ring of `capacity` samples.
    pub fn new(capacity: usize) -> Self {
        History { capacity, samples: VecDeque::with_capacity(capacity), last: None }
    }

    /// Adds the sample that `now` makes after the previous figures.
    pub fn record(&mut self, now: Figures) {
        let rate = |current: u64, before: Option<u64>, secs: f64| {
            before.map(|b| current.saturating_sub(b) as f64 / secs)
        };
        let secs = self
            .last
            .as_ref()
            .map_or(1.0, |l| (now.unix_ms.saturating_sub(l.unix_ms) as f64 / 1000.0).max(1e-3));
        let sample = Sample {
            t: now.unix_ms as f64 / 1000.0,
            in_rate: rate(now.read, self.last.as_ref().map(|l| l.read), secs),
            out_rate: rate(now.rows_written, self.last.as_ref().map(|l| l.rows_written), secs),
            lag_wall: now.lag_wall_seconds,
            lag_event: now.lag_event_seconds,
            p50: now.latency.map(|l| l.p50),
            p99: now.latency.map(|l| l.p99),
            p999: now.latency.map(|l| l.p999),
            late: now.late,
            rejected: now.rejected,
            intake_fill: now.intake_queued.zip(now.intake_capacity).map(|(q, c)| q as f64 / c.max(1) as f64),
            resident_bytes: now.resident_bytes,
        };
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
        self.last = Some(now);
    }

    /// The newest sample.
    pub fn latest(&self) -> Option<&Sample> {
        self.samples.back()
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> &VecDeque<Sample> {
        &self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl History {
        fn tap(mut self, f: Figures) -> Self {
            self.record(f);
            self
        }
    }

    #[test]
    fn keeps_the_last_samples_with_rates_per_second() {
        let mut h = History::new(3);
        for i in 0..10u64 {
            h.record(Figures {
                unix_ms: 1_000 + i * 2_000,
                read: i * 100,
                rows_written: i,
                ..Figures::default()
            });
        }
        let s = h.samples();
        assert_eq!(s.len(), 3);
        assert_eq!(s.iter().map(|s| s.t).collect::<Vec<_>>(), vec![15.0, 17.0, 19.0]);
        assert!(s.iter().all(|s| s.in_rate == Some(50.0) && s.out_rate == Some(0.5)), "{s:?}");
        assert_eq!(
            History::new(1).tap(Figures::default()).samples()[0].in_rate,
            None,
            "no rate without a past"
        );
    }
}
