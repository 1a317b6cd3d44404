//! Sinks: results and diagnostics gathered to worker 0 and written in a deterministic order.
//!
//! Every sink routes its stream to worker 0 and holds rows until their timestamp is
//! complete. A complete timestamp's rows are sorted and written as one group, so the
//! bytes written depend only on the results, not on how many workers or processes
//! produced them, nor on the order in which they arrived.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use timely::ExchangeData;
use timely::dataflow::Stream;

pub mod format;
pub mod gather;

pub use format::{Cell, RowWriter, Tabular};
pub use gather::{GatherSorted, Gathered};

use crate::job::Job;
use crate::operators::ingest::{Counts, Diag, Late, Rejected, fail};
use crate::time::Millis;

fn write_failed(what: &str, e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        // Like other Unix tools, stop quietly when the reader goes away.
        std::process::exit(0);
    }
    fail(&format!("writing {what}: {}", crate::source::io_reason(e)))
}

/// Writes a stream of result rows to the job's output.
pub trait WriteRows<'scope, R> {
    /// Gathers rows to worker 0 and writes each complete timestamp's rows, sorted.
    fn write_rows(self, job: &Arc<Job>);
    /// The same, to a side file such as alerts (`out` matters on worker 0 only); these
    /// rows are not counted in the summary.
    fn write_rows_to(self, job: &Arc<Job>, out: Option<Box<dyn Write + Send>>);
}

impl<'scope, R> WriteRows<'scope, R> for Stream<'scope, Millis, Vec<R>>
where
    R: Tabular + Ord + ExchangeData,
{
    fn write_rows(self, job: &Arc<Job>) {
        let out = job.take_output(self.scope().index());
        write_rows_counted(self, job, out, true)
    }

    fn write_rows_to(self, job: &Arc<Job>, out: Option<Box<dyn Write + Send>>) {
        write_rows_counted(self, job, out, false)
    }
}

fn write_rows_counted<R>(
    stream: Stream<'_, Millis, Vec<R>>,
    job: &Arc<Job>,
    out: Option<Box<dyn Write + Send>>,
    main: bool,
) where
    R: Tabular + Ord + ExchangeData,
{
    // Rows are gathered to worker 0, so only worker 0 may hold a writer.
    let mut writer = out
        .filter(|_| stream.scope().index() == 0)
        .map(|out| RowWriter::new(out, job.common.format, R::columns()));
    if let Some(Err(e)) = writer.as_mut().map(RowWriter::start) {
        write_failed("output", &e);
    }
    let job = Arc::clone(job);
    // Live results are flushed as they complete, so readers see them at once.
    let live = job.ingest.input.is_live();
    stream.gather_sorted("WriteRows", move |gathered| {
        let result = match gathered {
            Gathered::Frontier(f) if main => {
                job.meters().output_frontier_is(f);
                Ok(())
            }
            Gathered::Frontier(_) => Ok(()),
            Gathered::Complete(rows) => {
                if main {
                    job.meters().rows_out.fetch_add(rows.len() as u64, Ordering::Relaxed);
                }
                writer.as_mut().map_or(Ok(()), |w| {
                    w.write_group(&rows).and_then(|()| if live { w.flush() } else { Ok(()) })
                })
            }
            Gathered::Closed => writer.take().map_or(Ok(()), |mut w| w.flush()),
        };
        if let Err(e) = result {
            write_failed("output", &e);
        }
    });
}

/// Writes rejects and late records to their files and adds up the workers' counts.
pub trait ReportDiags<'scope> {
    /// Gathers diagnostics to worker 0; writes each complete timestamp's rejects and late
    /// records sorted by input and line, and adds final counts to the job's summary.
    fn report(self, job: &Arc<Job>);
}

impl<'scope> ReportDiags<'scope> for Stream<'scope, Millis, Vec<Diag>> {
    fn report(self, job: &Arc<Job>) {
        let worker = self.scope().index();
        let mut rejects_out = job.take_rejects(worker);
        let mut late_out = job.take_late(worker);
        let job = Arc::clone(job);
        self.gather_sorted("ReportDiags", move |gathered| {
            let result = match gathered {
                Gathered::Frontier(_) => Ok(()),
                Gathered::Complete(diags) => {
                    let mut counts = Counts::default();
                    let mut result = Ok(());
                    for diag in &diags {
                        result = result.and_then(|()| match diag {
                            Diag::Counts(c) => {
                                counts += *c;
                                Ok(())
                            }
                            Diag::Reject(r) => rejects_out.as_mut().map_or(Ok(()), |w| write_reject(w, r)),
                            Diag::Late(l) => late_out.as_mut().map_or(Ok(()), |w| write_late(w, l)),
                        });
                    }
                    *job.summary.lock().expect("summary lock") += counts;
                    result
                }
                Gathered::Closed => [rejects_out.as_mut(), late_out.as_mut()]
                    .into_iter()
                    .flatten()
                    .try_for_each(|w| w.flush()),
            };
            if let Err(e) = result {
                write_failed("diagnostics", &e);
            }
        });
    }
}

/// `SOURCE:LINE: REASON: TEXT`, the way compilers and grep name a place in a file.
fn write_reject(out: &mut impl Write, r: &Rejected) -> io::Result<()> {
    writeln!(out, "{}:{}: {}: {}", r.origin, r.line, r.reason, r.text)
}

fn write_late(out: &mut impl Write, l: &Late) -> io::Result<()> {
    let mut line = Vec::with_capacity(160);
    write!(line, "{}:{}: late by {} ms: event time ", l.origin, l.line, l.watermark - l.event_time)?;
    crate::time::write_iso8601(&mut line, l.event_time);
    line.extend_from_slice(b" is behind watermark ");
    crate::time::write_iso8601(&mut line, l.watermark);
    writeln!(line, ": {}", l.text)?;
    out.write_all(&line)
}
