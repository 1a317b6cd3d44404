//! One reading of every figure a watched process shows: the source of `/metrics`,
//! `/api/status` and the dashboard's samples.
//!
//! Contract: counters (`read`, `rejected`, `late`, `rows_written`) are this process's
//! own totals since it started and never decrease. Event times are milliseconds since
//! the Unix epoch. A lag is `None` while it is undefined: before the output frontier
//! first moves, and after it has closed (the input ended). Reading takes the latency
//! lock briefly (live inputs only) and reads `/proc/self/statm`; workers are not
//! otherwise disturbed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::Serialize;

use crate::metrics::{Meters, resident_bytes};
use crate::source::live::{CHANNEL_BATCHES, Feed};
use crate::time::{Millis, now_millis};

/// What is watched: one process of a job.
pub struct Watched {
    /// The job's name (its binary), the `job` label.
    pub job: String,
    /// This process's index, the `process` label.
    pub process: u32,
    /// The cluster's `-n`.
    pub processes: u32,
    /// Every process's dashboard URL, by process, when known ([`super::dashboards`]).
    pub dashboards: Vec<String>,
    /// The process-wide meters the workers update.
    pub meters: Arc<Meters>,
    /// The live input's channel, if the input is live.
    pub intake: Option<Feed>,
    /// When the job started, for uptime.
    pub started: Instant,
    /// When the job started, in milliseconds since the Unix epoch.
    pub started_unix_ms: Millis,
}

/// Output-latency quantiles, in seconds.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest wait.
    pub max: f64,
    /// Records measured.
    pub count: u64,
    /// Sum of the waits (from the histogram's mean, so within its 3 significant digits).
    pub sum: f64,
}

/// Every figure at one moment.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Figures {
    /// When the figures were read, in milliseconds since the Unix epoch.
    pub unix_ms: Millis,
    /// Seconds since the job started.
    pub uptime_seconds: f64,
    /// Data lines read.
    pub read: u64,
    /// Lines rejected as malformed.
    pub rejected: u64,
    /// Records behind the watermark.
    pub late: u64,
    /// Result rows written.
    pub rows_written: u64,
    /// The output frontier (results before it are out), once it has moved.
    pub output_frontier_ms: Option<Millis>,
    /// Whether the output frontier has closed: the input ended and every result is out.
    pub closed: bool,
    /// The largest event time seen.
    pub max_event_ms: Option<Millis>,
    /// How far the output frontier trails the wall clock, in seconds (freshness).
    pub lag_wall_seconds: Option<f64>,
    /// How far the output frontier trails the largest event time, in seconds.
    pub lag_event_seconds: Option<f64>,
    /// Output latency, for live inputs.
    pub latency: Option<Quantiles>,
    /// Batches waiting in the live input's channel, for live inputs.
    pub intake_queued: Option<u64>,
    /// The channel's capacity in batches, for live inputs.
    pub intake_capacity: Option<u64>,
    /// Resident memory in bytes.
    pub resident_bytes: u64,
    /// Output commits, with `--checkpoint`.
    pub commits: Option<CommitFigures>,
}

/// Output commits to the checkpoint folder.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct CommitFigures {
    /// Commits made.
    pub count: u64,
    /// Seconds spent committing.
    pub seconds: f64,
    /// When the last commit finished (ms since the Unix epoch), once there is one.
    pub last_unix_ms: Option<Millis>,
}

impl Figures {
    /// Reads every figure of `watched` now.
    pub fn read(watched: &Watched) -> Figures {
        let m = &watched.meters;
        let now = now_millis();
        let frontier = m.output_frontier.load(Ordering::Relaxed);
        let closed = frontier == Millis::MAX;
        let open_frontier = (frontier > 0 && !closed).then_some(frontier);
        let max_event = m.max_event.load(Ordering::Relaxed).checked_sub(1);
        let lag = |ahead: Millis| open_frontier.map(|f| ahead.saturating_sub(f) as f64 / 1000.0);
        let latency = m.latency.as_ref().map(|l| {
            let h = &l.lock().expect("latency lock").histogram;
            let s = |micros: u64| micros as f64 / 1e6;
            Quantiles {
                p50: s(h.value_at_quantile(0.5)),
                p90: s(h.value_at_quantile(0.9)),
                p99: s(h.value_at_quantile(0.99)),
                p999: s(h.value_at_quantile(0.999)),
                max: s(h.max()),
                count: h.len(),
                sum: h.mean() * h.len() as f64 / 1e6,
            }
        });
        Figures {
            unix_ms: now,
            uptime_seconds: watched.started.elapsed().as_secs_f64(),
            read: m.read.load(Ordering::Relaxed),
            rejected: m.rejected.load(Ordering::Relaxed),
            late: m.late.load(Ordering::Relaxed),
            rows_written: m.rows_out.load(Ordering::Relaxed),
            output_frontier_ms: open_frontier,
            closed,
            max_event_ms: max_event,
            lag_wall_seconds: lag(now),
            lag_event_seconds: max_event.and_then(lag),
            latency,
            intake_queued: watched.intake.as_ref().map(|f| f.queued() as u64),
            intake_capacity: watched.intake.as_ref().map(|_| CHANNEL_BATCHES as u64),
            resident_bytes: resident_bytes(),
            commits: m.commits.as_ref().map(|c| CommitFigures {
                count: c.count.load(Ordering::Relaxed),
                seconds: c.nanos.load(Ordering::Relaxed) as f64 / 1e9,
                last_unix_ms: Some(c.last_unix_ms.load(Ordering::Relaxed)).filter(|&ms| ms > 0),
            }),
        }
    }
}
