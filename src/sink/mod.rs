//! Sinks: results and diagnostics gathered to worker 0 and written in a deterministic order.
//!
//! Every sink routes its stream to worker 0 and holds rows until their timestamp is
//! complete. A complete timestamp's rows are sorted and written as one group, so the
//! bytes written depend only on the results, not on how many workers or processes
//! produced them, nor on the order in which they arrived.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use timely::ExchangeData;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

pub mod format;

pub use format::{Cell, RowWriter, Tabular};

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
}

impl<'scope, R> WriteRows<'scope, R> for Stream<'scope, Millis, Vec<R>>
where
    R: Tabular + Ord + ExchangeData,
{
    fn write_rows(self, job: &Arc<Job>) {
        let mut writer = job
            .take_output(self.scope().index())
            .map(|out| RowWriter::new(out, job.common.format, R::columns()));
        let job = Arc::clone(job);
        if let Some(Err(e)) = writer.as_mut().map(RowWriter::start) {
            write_failed("output", &e);
        }
        let mut pending: BTreeMap<Millis, Vec<R>> = BTreeMap::new();
        self.sink(
            Exchange::new(|_: &R| 0),
            "WriteRows",
            move |(input, frontier)| {
                input.for_each_time(|time, data| {
                    let rows = pending.entry(*time.time()).or_default();
                    for batch in data {
                        rows.append(batch);
                    }
                });
                while let Some(entry) = pending.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let mut rows = entry.remove();
                    rows.sort();
                    job.rows_out.fetch_add(rows.len() as u64, Ordering::Relaxed);
                    if let Some(Err(e)) = writer.as_mut().map(|w| w.write_group(&rows)) {
                        write_failed("output", &e);
                    }
                }
                if frontier.is_empty()
                    && let Some(Err(e)) = writer.take().map(|mut w| w.flush())
                {
                    write_failed("output", &e);
                }
            },
        );
    }
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
        let mut pending: BTreeMap<Millis, Vec<Diag>> = BTreeMap::new();
        self.sink(
            Exchange::new(|_: &Diag| 0),
            "ReportDiags",
            move |(input, frontier)| {
                input.for_each_time(|time, data| {
                    let diags = pending.entry(*time.time()).or_default();
                    for batch in data {
                        diags.append(batch);
                    }
                });
                while let Some(entry) = pending.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let mut diags = entry.remove();
                    diags.sort();
                    let mut counts = Counts::default();
                    for diag in &diags {
                        let result = match diag {
                            Diag::Counts(c) => {
                                counts += *c;
                                Ok(())
                            }
                            Diag::Reject(r) => {
                                rejects_out.as_mut().map_or(Ok(()), |w| write_reject(w, r))
                            }
                            Diag::Late(l) => late_out.as_mut().map_or(Ok(()), |w| write_late(w, l)),
                        };
                        if let Err(e) = result {
                            write_failed("diagnostics", &e);
                        }
                    }
                    *job.summary.lock().expect("summary lock") += counts;
                }
                if frontier.is_empty() {
                    for w in [rejects_out.as_mut(), late_out.as_mut()]
                        .into_iter()
                        .flatten()
                    {
                        if let Err(e) = w.flush() {
                            write_failed("diagnostics", &e);
                        }
                    }
                }
            },
        );
    }
}

/// `SOURCE:LINE: REASON: TEXT`, the way compilers and grep name a place in a file.
fn write_reject(out: &mut impl Write, r: &Rejected) -> io::Result<()> {
    writeln!(out, "{}:{}: {}: {}", r.origin, r.line, r.reason, r.text)
}

fn write_late(out: &mut impl Write, l: &Late) -> io::Result<()> {
    let mut line = Vec::with_capacity(160);
    write!(
        line,
        "{}:{}: late by {} ms: event time ",
        l.origin,
        l.line,
        l.watermark - l.event_time
    )?;
    crate::time::write_iso8601(&mut line, l.event_time);
    line.extend_from_slice(b" is behind watermark ");
    crate::time::write_iso8601(&mut line, l.watermark);
    writeln!(line, ": {}", l.text)?;
    out.write_all(&line)
}
