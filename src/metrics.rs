//! Throughput and the end-of-job summary.

use std::fmt;
use std::time::Duration;

use crate::operators::ingest::Counts;

/// What a finished job reports on stderr.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    /// Ingest counts over all workers and processes.
    pub counts: Counts,
    /// Result rows written.
    pub rows_out: u64,
    /// Wall-clock time from start to finish.
    pub elapsed: Duration,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.counts.read as f64 / secs
        } else {
            0.0
        };
        write!(
            f,
            "summary: read {} records, rejected {}, late {}, wrote {} rows in {:.3}s ({:.0} records/s)",
            self.counts.read, self.counts.rejected, self.counts.late, self.rows_out, secs, rate
        )
    }
}
