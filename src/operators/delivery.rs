//! The delivery check: every record read is either processed or accounted for.
//!
//! The notebook's Kafka demo ends by comparing messages sent with messages processed.
//! Here both sides come from the dataflow itself: ingest's final [`Counts`] travel on
//! the diagnostics stream, and the job reports how many records its results account
//! for (for example the sum of the `count` column). Both are gathered on worker 0;
//! when both streams have ended, the [`Delivery`] they describe is left in a
//! [`DeliveryCheck`] for the job to [`Delivery::check`] once its workers have stopped.
//!
//! The check is `read = processed + rejected + late`. Ingest counts each data line
//! once, as accepted, rejected or late, so the check fails exactly when records that
//! ingest accepted did not all arrive in the results, or arrived more than once.

use std::sync::{Arc, Mutex};

use timely::dataflow::Stream;
use timely::dataflow::operators::Concat;
use timely::dataflow::operators::vec::Map;

use super::fold::FoldAtEnd;
use super::window::Windowing;
use crate::diag::{Counts, Diag};
use crate::time::EventTime;

/// What went into a job and what came out of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    /// Ingest's counts, summed over all workers.
    pub counts: Counts,
    /// Records counted in the results, each as many times as `copies`.
    pub counted: i64,
    /// How many results count each record: one, or the number of sliding windows
    /// that contain it.
    pub copies: u64,
}

impl Delivery {
    /// Records the results account for.
    pub fn processed(&self) -> i64 {
        self.counted / self.copies.max(1) as i64
    }

    /// Checks `read = processed + rejected + late`, returning the processed count, or a
    /// message saying what does not add up.
    pub fn check(&self) -> Result<u64, String> {
        let c = &self.counts;
        let copies = self.copies.max(1) as i64;
        let processed = self.processed();
        let accounted = processed as i128 + c.rejected as i128 + c.late as i128;
        if self.counted < 0 || self.counted % copies != 0 || accounted != c.read as i128 {
            let difference = c.read as i128 - accounted;
            let what = if difference > 0 {
                format!("{difference} record(s) lost")
            } else {
                format!("{} record(s) counted twice", -difference)
            };
            let per = if copies > 1 {
                format!(" ({} window counts / {copies} windows per record)", self.counted)
            } else {
                String::new()
            };
            return Err(format!(
                "DELIVERY CHECK FAILED: {} records in, but processed {processed}{per} + rejected {} + late {} = {accounted}: {what}",
                c.read, c.rejected, c.late
            ));
        }
        Ok(processed as u64)
    }

    /// [`Delivery::check`], and that ingest read exactly the `produced` records the
    /// producer sent (say to a Kafka topic): a message lost before ingest, or delivered
    /// to it twice, fails here.
    pub fn check_produced(&self, produced: u64) -> Result<u64, String> {
        let processed = self.check()?;
        let read = self.counts.read;
        if read != produced {
            let what = if read < produced {
                format!("{} record(s) lost", produced - read)
            } else {
                format!("{} record(s) delivered twice", read - produced)
            };
            return Err(format!(
                "DELIVERY CHECK FAILED: {produced} records produced, but {read} in = {processed} processed + {} rejected + {} late: {what}",
                self.counts.rejected, self.counts.late
            ));
        }
        Ok(processed)
    }
}

/// Where worker 0 leaves the [`Delivery`] when both streams have ended.
#[derive(Clone, Debug, Default)]
pub struct DeliveryCheck(Arc<Mutex<Option<Delivery>>>);

impl DeliveryCheck {
    /// An empty slot.
    pub fn new() -> Self {
        DeliveryCheck::default()
    }

    /// The delivery, once the dataflow has completed on this process's worker 0;
    /// `None` on other processes.
    pub fn delivery(&self) -> Option<Delivery> {
        *self.0.lock().expect("delivery lock")
    }
}

/// How many windows of `windowing` contain each record.
pub fn copies_per_record(windowing: Windowing) -> u64 {
    match windowing {
        Windowing::Global | Windowing::Tumbling { .. } => 1,
        Windowing::Sliding { size, slide } => size.millis() / slide.millis(),
    }
}

/// Compares the records a job's results account for with what ingest read.
pub trait TrackDelivery<'scope, T: EventTime> {
    /// `self` carries, for each result, the number of records it accounts for (negative
    /// for a retraction). `copies` is how many results count each record.
    fn track_delivery(self, diags: Stream<'scope, T, Vec<Diag>>, copies: u64, check: &DeliveryCheck);
}

impl<'scope, T: EventTime> TrackDelivery<'scope, T> for Stream<'scope, T, Vec<i64>> {
    fn track_delivery(self, diags: Stream<'scope, T, Vec<Diag>>, copies: u64, check: &DeliveryCheck) {
        let slot = Arc::clone(&check.0);
        let counts = diags.flat_map(|diag| match diag {
            Diag::Counts(c) => Some(Err(c)),
            _ => None,
        });
        self.map(Ok).concat(counts).fold_at_end(
            "TrackDelivery",
            Delivery { copies, ..Delivery::default() },
            |delivery, item: Result<i64, Counts>| match item {
                Ok(counted) => delivery.counted += counted,
                Err(counts) => delivery.counts += counts,
            },
            move |delivery| {
                *slot.lock().expect("delivery lock") = Some(delivery);
                Vec::<()>::new()
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    fn delivery(read: u64, rejected: u64, late: u64, counted: i64, copies: u64) -> Delivery {
        Delivery {
            counts: Counts { read, accepted: read - rejected - late, rejected, late, bytes: 0 },
            counted,
            copies,
        }
    }

    #[test]
    fn balanced_books_pass() {
        assert_eq!(delivery(100, 3, 2, 95, 1).check(), Ok(95));
        assert_eq!(delivery(100, 0, 0, 1000, 10).check(), Ok(100));
        assert_eq!(delivery(0, 0, 0, 0, 1).check(), Ok(0));
    }

    #[test]
    fn lost_or_doubled_records_fail_loudly() {
        let lost = delivery(100, 3, 0, 96, 1).check().unwrap_err();
        assert!(lost.starts_with("DELIVERY CHECK FAILED: 100 records in"), "{lost}");
        assert!(lost.contains("processed 96 + rejected 3 + late 0 = 99: 1 record(s) lost"), "{lost}");
        let doubled = delivery(100, 0, 0, 101, 1).check().unwrap_err();
        assert!(doubled.contains("1 record(s) counted twice"), "{doubled}");
        // With sliding windows every record is counted once per window.
        let partial = delivery(10, 0, 0, 99, 10).check().unwrap_err();
        assert!(partial.contains("(99 window counts / 10 windows per record)"), "{partial}");
        assert!(delivery(10, 0, 0, -10, 1).check().is_err());
    }

    #[test]
    fn sliding_windows_count_each_record_several_times() {
        let w = |size, slide| Windowing::Sliding { size: Duration(size), slide: Duration(slide) };
        assert_eq!(copies_per_record(w(600_000, 60_000)), 10);
        assert_eq!(copies_per_record(Windowing::Global), 1);
        assert_eq!(copies_per_record(Windowing::Tumbling { size: Duration(1000) }), 1);
    }
}
