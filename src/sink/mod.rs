//! Sinks: results and diagnostics gathered to worker 0 and written in a deterministic order.
//!
//! Every sink routes its stream to worker 0 and holds rows until their timestamp is
//! complete ([`gather`]). A complete timestamp's rows are sorted and written as one
//! group, so the bytes written depend only on the results, not on how many workers or
//! processes produced them, nor on the order in which they arrived.
//!
//! A job's destinations are its [`Outputs`]: the result output, the rejects and late
//! files, and named side outputs such as alerts. They are created before any worker
//! starts, so a path that cannot be written is a usage error, and only worker 0 of
//! process 0 writes them.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use timely::ExchangeData;
use timely::dataflow::Stream;

pub mod change;
pub mod commit;
pub mod current;
pub mod format;
pub mod gather;
pub mod html;
pub mod kafka;
pub mod partitioned;
pub mod postgres;
pub mod route;
pub mod tabular;

pub use change::Change;
pub use commit::Committer;
pub use current::Watch;
pub use format::{Format, RowWriter};
pub use gather::{GatherSorted, Gathered};
pub use tabular::{Cell, Layout, Tabular};

use crate::checkpoint::Checkpoint;
use crate::diag::{Counts, Diag, Late, Rejected};
use crate::exit::{io_reason, write_failed};
use crate::metrics::Meters;
use crate::operators::round::{RoundGate, Step};
use crate::time::{EventTime, Millis};

/// A destination for rows.
pub type Output = Box<dyn Write + Send>;

/// The name of the result output among a job's [`Outputs`].
pub const RESULTS: &str = "output";
/// The name of the rejects file.
pub const REJECTS: &str = "rejects";
/// The name of the late-records file.
pub const LATE: &str = "late";

/// Where one process's sinks write, and what they tell the rest of the job.
pub struct Outputs {
    /// How rows are rendered.
    pub format: Format,
    /// Flush each completed time at once (live inputs), so readers see results as they come.
    pub live: bool,
    /// Process-wide meters: rows written and the output frontier.
    pub meters: Arc<Meters>,
    /// Counts gathered from all workers by the diagnostics sink.
    pub summary: Mutex<Counts>,
    files: Mutex<BTreeMap<&'static str, Output>>,
    /// What each destination is and where, for messages: `alerts file /tmp/a.csv`.
    labels: Mutex<BTreeMap<&'static str, String>>,
    /// With `--checkpoint`: the folder, for sinks that commit files of their own.
    pub checkpoint: Mutex<Option<Arc<Checkpoint>>>,
    /// With `--checkpoint`: each file's commits, for its sink to take.
    committers: Mutex<BTreeMap<&'static str, Committer>>,
}

/// One destination to open: its name among the outputs, its path (`-` is stdout) and
/// what it is called in messages.
pub struct Destination {
    /// The name sinks ask for, such as [`RESULTS`] or `"alerts"`.
    pub name: &'static str,
    /// The path; `-` is stdout.
    pub path: PathBuf,
    /// What the file is, for messages: `output`, `rejects file`, …
    pub what: String,
}

impl Outputs {
    /// Outputs with no destinations yet.
    pub fn new(format: Format, live: bool, meters: Arc<Meters>) -> Outputs {
        Outputs {
            format,
            live,
            meters,
            summary: Mutex::new(Counts::default()),
            files: Mutex::new(BTreeMap::new()),
            labels: Mutex::new(BTreeMap::new()),
            checkpoint: Mutex::new(None),
            committers: Mutex::new(BTreeMap::new()),
        }
    }

    /// Opens every destination, or says which one cannot be created. Only the process
    /// that writes (`writes`: process 0) opens files; the others get none. With a
    /// `checkpoint`, files are resumed, not created: each is cut back to its committed
    /// length (see [`commit`]).
    pub fn open(
        destinations: Vec<Destination>,
        writes: bool,
        format: Format,
        live: bool,
        meters: Arc<Meters>,
        checkpoint: Option<&Arc<Checkpoint>>,
    ) -> Result<Outputs, String> {
        let outputs = Outputs::new(format, live, meters);
        *outputs.checkpoint.lock().expect("outputs lock") = checkpoint.cloned();
        if writes {
            for d in destinations {
                if let Some(url) = kafka::TopicUrl::parse(d.path.to_str().unwrap_or_default()) {
                    let url = url?;
                    if matches!(format, Format::Table | Format::Html) && d.name == RESULTS {
                        return Err(format!("the {} {url} takes --format csv or json", d.what));
                    }
                    let progress = kafka::TopicProgress::open(&url, checkpoint.is_some())?;
                    let every = checkpoint.map_or(std::time::Duration::from_secs(1), |c| c.every());
                    let committer =
                        Committer::topic(d.name, Arc::clone(&progress), every, Arc::clone(&outputs.meters));
                    outputs.committers.lock().expect("outputs lock").insert(d.name, committer);
                    outputs.add(d.name, Box::new(kafka::TopicWriter::new(progress)));
                    outputs.labels.lock().expect("outputs lock").insert(d.name, format!("{} {url}", d.what));
                    continue;
                }
                let out = match checkpoint {
                    Some(c) => {
                        let (out, committer) = resume(&d, c, &outputs.meters)?;
                        outputs.committers.lock().expect("outputs lock").insert(d.name, committer);
                        out
                    }
                    None => create(&d.path, &d.what)?,
                };
                outputs.add(d.name, out);
                let label = match d.path.to_str() {
                    Some("-") => format!("{} (stdout)", d.what),
                    _ => format!("{} {}", d.what, d.path.display()),
                };
                outputs.labels.lock().expect("outputs lock").insert(d.name, label);
            }
        }
        Ok(outputs)
    }

    /// Adds the destination `name`.
    pub fn add(&self, name: &'static str, out: Output) {
        self.files.lock().expect("outputs lock").insert(name, out);
    }

    /// What the destination `name` is and where, for messages (its name if unknown).
    pub fn label(&self, name: &str) -> String {
        self.labels.lock().expect("outputs lock").get(name).cloned().unwrap_or_else(|| name.to_owned())
    }

    /// The writer named `name`, for worker 0 (where sinks gather); `None` elsewhere,
    /// when it was not asked for, or when it has been taken already.
    pub fn take(&self, name: &str, worker: usize) -> Option<Output> {
        (worker == 0).then(|| self.files.lock().expect("outputs lock").remove(name)).flatten()
    }

    /// The commits of output `name` (with `--checkpoint`), for the sink that takes it.
    pub fn committer(&self, name: &str, worker: usize) -> Option<Committer> {
        (worker == 0).then(|| self.committers.lock().expect("outputs lock").remove(name)).flatten()
    }
}

/// Opens a destination to resume it: cut back to its committed length (nothing if it
/// has no commit yet), positioned at the end.
fn resume(
    d: &Destination,
    checkpoint: &Arc<Checkpoint>,
    meters: &Arc<Meters>,
) -> Result<(Output, Committer), String> {
    if d.path == Path::new("-") {
        return Err(format!(
            "with --checkpoint, the {} must be a file: stdout cannot be cut back on restart (use --output FILE)",
            d.what
        ));
    }
    let committed = checkpoint.commit_of(d.name)?.unwrap_or_default();
    let named = |e: io::Error| format!("cannot open {} {}: {}", d.what, d.path.display(), io_reason(&e));
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(&d.path).map_err(named)?;
    let len = file.metadata().map_err(named)?.len();
    if len < committed.bytes {
        return Err(format!(
            "{} {} has {len} bytes but its checkpoint committed {}: it was changed outside the job",
            d.what,
            d.path.display(),
            committed.bytes
        ));
    }
    file.set_len(committed.bytes).map_err(named)?;
    io::Seek::seek(&mut file, io::SeekFrom::End(0)).map_err(named)?;
    let own = file.try_clone().map_err(named)?;
    let committer = Committer::new(d.name, Arc::clone(checkpoint), own, committed, Arc::clone(meters));
    Ok((Box::new(BufWriter::with_capacity(1 << 20, file)), committer))
}

/// Creates `path` for writing (`-` is stdout), or says why it cannot be.
pub fn create(path: &Path, what: &str) -> Result<Output, String> {
    if path == Path::new("-") {
        return Ok(Box::new(BufWriter::with_capacity(1 << 16, std::io::stdout())));
    }
    File::create(path)
        .map(|f| Box::new(BufWriter::with_capacity(1 << 20, f)) as Output)
        .map_err(|e| format!("cannot create {what} {}: {}", path.display(), io_reason(&e)))
}

/// Writes a stream of result rows.
pub trait WriteRows<'scope, R> {
    /// Gathers rows to worker 0 and writes each complete timestamp's rows, sorted, to
    /// the result output; they count as the job's rows written.
    fn write_rows(self, outputs: &Arc<Outputs>);
    /// The same, to the side output `name` (such as alerts); these rows are not
    /// counted in the summary.
    fn write_side(self, outputs: &Arc<Outputs>, name: &'static str);
    /// The same, to the destination `name`, counted in the summary like results.
    fn write_counted(self, outputs: &Arc<Outputs>, name: &'static str);
}

impl<'scope, T, R> WriteRows<'scope, R> for Stream<'scope, T, Vec<R>>
where
    T: EventTime,
    R: Tabular + Ord + Clone + ExchangeData,
{
    fn write_rows(self, outputs: &Arc<Outputs>) {
        write(self, outputs, RESULTS, true)
    }

    fn write_side(self, outputs: &Arc<Outputs>, name: &'static str) {
        write(self, outputs, name, false)
    }

    fn write_counted(self, outputs: &Arc<Outputs>, name: &'static str) {
        write(self, outputs, name, true)
    }
}

fn write<T, R>(stream: Stream<'_, T, Vec<R>>, outputs: &Arc<Outputs>, name: &'static str, main: bool)
where
    T: EventTime,
    R: Tabular + Ord + Clone + ExchangeData,
{
    let what = outputs.label(name);
    let worker = stream.scope().index();
    let mut committer = outputs.committer(name, worker);
    // After differential, outside the rounds: a snapshot compacts history only up to
    // what this output has committed.
    if !T::ROUNDS
        && let (Some(c), Some(snapshots)) = (committer.as_mut(), crate::checkpoint::snapshot::active())
    {
        c.report_to(snapshots);
    }
    let resumed = committer.as_ref().is_some_and(Committer::resumed);
    let keyed = committer.as_ref().is_some_and(Committer::keyed);
    let mut writer = outputs.take(name, worker).map(|out| {
        let w = RowWriter::new(out, outputs.format, R::columns());
        let w = if keyed { w.keyed() } else { w };
        // A resumed file has its header already.
        if resumed { w.started() } else { w }
    });
    if let Some(Err(e)) = writer.as_mut().map(RowWriter::start) {
        write_failed(&what, &e);
    }
    if main && let Some(c) = &committer {
        outputs.meters.rows_out.fetch_add(c.committed_rows(), Ordering::Relaxed);
    }
    let outputs = Arc::clone(outputs);
    // Live results and tables are flushed as they complete, so readers see them at once.
    let flush = outputs.live || outputs.format == Format::Table;
    stream.gather_sorted("WriteRows", R::group_time, move |gathered| {
        let result = match gathered {
            Gathered::Frontier(f) => {
                if main {
                    outputs.meters.output_frontier_is(f);
                }
                match (writer.as_mut(), committer.as_mut()) {
                    (Some(w), Some(c)) => {
                        c.reached(f);
                        c.tick(|| w.flush())
                    }
                    _ => Ok(()),
                }
            }
            Gathered::Complete(time, rows) => {
                // Rows an earlier run committed are counted from its commit, not again;
                // a topic keeps no count, so its rows all count again.
                let skipped = writer.is_some() && committer.as_ref().is_some_and(|c| c.skips(time));
                if main && (!skipped || keyed) {
                    outputs.meters.rows_out.fetch_add(rows.len() as u64, Ordering::Relaxed);
                }
                if !skipped && let Some(c) = committer.as_mut() {
                    c.add_rows(rows.len());
                }
                if let Some(latest) = &outputs.meters.latest {
                    latest.update(name, || Watch::<R>::new(latest.capacity()), |w| w.wrote(&rows));
                }
                match (writer.as_mut(), committer.as_mut()) {
                    (Some(_), Some(c)) if c.skips(time) => Ok(()),
                    (Some(w), c) => w
                        .write_group(&rows)
                        .and_then(|()| if flush { w.flush() } else { Ok(()) })
                        .and_then(|()| c.map_or(Ok(()), |c| c.wrote(time, || w.flush()))),
                    (None, _) => Ok(()),
                }
            }
            Gathered::Closed => writer.take().map_or(Ok(()), |mut w| {
                w.finish()?;
                committer.as_mut().map_or(Ok(()), |c| c.commit(|| w.flush()))
            }),
            Gathered::Cut => match (writer.as_mut(), committer.as_mut()) {
                (Some(w), Some(c)) => c.commit(|| w.flush()),
                _ => Ok(()),
            },
        };
        if let Err(e) = result {
            write_failed(&what, &e);
        }
    });
}

/// Writes rejects and late records to their files and adds up the workers' counts.
pub trait ReportDiags<'scope> {
    /// Gathers diagnostics to worker 0; writes each complete timestamp's rejects and late
    /// records sorted by input and line, and adds final counts to the summary.
    fn report(self, outputs: &Arc<Outputs>);
}

impl<'scope, T: EventTime> ReportDiags<'scope> for Stream<'scope, T, Vec<Diag>> {
    fn report(self, outputs: &Arc<Outputs>) {
        use timely::dataflow::channels::pact::Exchange;
        use timely::dataflow::operators::generic::Operator;

        let worker = self.scope().index();
        let mut rejects = DiagFile::take(outputs, REJECTS, worker);
        let mut late = DiagFile::take(outputs, LATE, worker);
        let outputs = Arc::clone(outputs);
        let mut gate: RoundGate<Millis, Diag> = RoundGate::new::<T>(worker, "ReportDiags");
        // Rejects grow with the input and a bounded input's complete only at its end:
        // each time's diagnostics are sorted in bounded memory, spilling to disk.
        let mut pending: BTreeMap<Millis, crate::spill::SortedRuns<Diag>> = BTreeMap::new();
        // Counts added to the summary so far: a snapshot holds them too.
        let mut counted = Counts::default();
        if let Some((saved, restored)) = gate.restore::<(Vec<(Millis, Vec<Diag>)>, Counts)>() {
            for (time, diags) in saved {
                push_diags(pending.entry(time).or_default(), diags);
            }
            counted = restored;
            *outputs.summary.lock().expect("summary lock") += counted;
        }
        let mut closed = false;
        self.sink(Exchange::new(|_: &Diag| 0), "ReportDiags", move |(input, frontier)| {
            let watermark = crate::time::event_frontier(&frontier.frontier());
            rejects.iter_mut().chain(late.iter_mut()).for_each(DiagFile::tick);
            input.for_each_time(|time, mut data| {
                let (at, round) = (time.time().event(), time.time().round());
                if !gate.hold_if_ahead(round, at, || at, &mut data) {
                    push_diags(pending.entry(at).or_default(), data.flat_map(std::mem::take));
                }
            });
            gate.advance(crate::time::round_frontier(&frontier.frontier()), |step| match step {
                Step::Snapshot(snap) => {
                    rejects.iter_mut().chain(late.iter_mut()).for_each(DiagFile::commit);
                    let mut saved = Vec::new();
                    for (&time, runs) in pending.iter_mut() {
                        let mut diags = Vec::new();
                        let read = runs.drain(|d| {
                            diags.push(d);
                            Ok(())
                        });
                        if let Err(e) = read {
                            write_failed("diagnostics (reading back from the temporary directory)", &e);
                        }
                        push_diags(runs, diags.iter().cloned());
                        saved.push((time, diags));
                    }
                    snap.save(&(saved, counted));
                }
                Step::Release(at, diags) => push_diags(pending.entry(at).or_default(), diags),
            });
            let watermark = gate.watermark(watermark);
            while let Some(entry) = pending.first_entry() {
                if *entry.key() >= watermark {
                    break;
                }
                let time = *entry.key();
                let mut counts = Counts::default();
                // What failed: the file written last, or reading back a spilled run.
                let mut failed = "diagnostics (reading back from the temporary directory)";
                let mut rejects_out = rejects.as_mut().and_then(|f| f.at(time));
                let mut late_out = late.as_mut().and_then(|f| f.at(time));
                let step = entry.remove().drain(|diag| match (diag, &mut rejects_out, &mut late_out) {
                    (Diag::Counts(c), _, _) => {
                        counts += c;
                        Ok(())
                    }
                    (Diag::Reject(x), Some((w, label)), _) => {
                        failed = label;
                        write_reject(w, &x)
                    }
                    (Diag::Late(x), _, Some((w, label))) => {
                        failed = label;
                        write_late(w, &x)
                    }
                    // Not asked for, or committed by an earlier run.
                    (Diag::Reject(_) | Diag::Late(_), _, _) => Ok(()),
                });
                counted += counts;
                *outputs.summary.lock().expect("summary lock") += counts;
                if let Err(e) = step {
                    write_failed(failed, &e);
                }
                rejects.iter_mut().chain(late.iter_mut()).for_each(|f| f.wrote(time));
            }
            if frontier.is_empty() && !closed {
                closed = true;
                rejects.iter_mut().chain(late.iter_mut()).for_each(DiagFile::close);
            }
        });
    }
}

/// Adds `diags` to a time's sorted runs.
fn push_diags(runs: &mut crate::spill::SortedRuns<Diag>, diags: impl IntoIterator<Item = Diag>) {
    for diag in diags {
        if let Err(e) = runs.push(diag) {
            write_failed("diagnostics (spilling to the temporary directory)", &e);
        }
    }
}

/// A rejects or late file: its writer, its commits (with `--checkpoint`) and its label.
struct DiagFile {
    out: Output,
    commits: Option<Committer>,
    label: String,
}

impl DiagFile {
    /// Destination `name`, on the worker that writes it.
    fn take(outputs: &Outputs, name: &'static str, worker: usize) -> Option<DiagFile> {
        let out = outputs.take(name, worker)?;
        Some(DiagFile { out, commits: outputs.committer(name, worker), label: outputs.label(name) })
    }

    /// The writer for `time`'s records and the file's label, or `None` if an earlier
    /// run committed them.
    fn at(&mut self, time: crate::time::Millis) -> Option<(&mut Output, &str)> {
        match &self.commits {
            Some(c) if c.skips(time) => None,
            _ => Some((&mut self.out, &self.label)),
        }
    }

    /// Every record of `time` is written.
    fn wrote(&mut self, time: crate::time::Millis) {
        if let Some(c) = &mut self.commits
            && let Err(e) = c.wrote(time, || self.out.flush())
        {
            write_failed(&self.label, &e);
        }
    }

    /// Commits what is due (see [`Committer::tick`]).
    fn tick(&mut self) {
        if let Some(c) = &mut self.commits
            && let Err(e) = c.tick(|| self.out.flush())
        {
            write_failed(&self.label, &e);
        }
    }

    /// Commits everything written (a snapshot is taken).
    fn commit(&mut self) {
        if let Some(c) = &mut self.commits
            && let Err(e) = c.commit(|| self.out.flush())
        {
            write_failed(&self.label, &e);
        }
    }

    /// The input has ended: flush and commit.
    fn close(&mut self) {
        let done = self.out.flush().and_then(|()| match &mut self.commits {
            Some(c) => c.commit(|| self.out.flush()),
            None => Ok(()),
        });
        if let Err(e) = done {
            write_failed(&self.label, &e);
        }
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

#[cfg(test)]
mod tests {
    use timely::dataflow::operators::vec::Filter;

    use super::*;
    use crate::operators::testing::collect;

    /// A writer whose bytes the test can read afterwards.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
    struct Row(u64, String);

    impl Tabular for Row {
        fn columns() -> Vec<&'static str> {
            vec!["time", "name"]
        }
        fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
            out.extend([Cell::Time(self.0), Cell::Text(&self.1)]);
        }
    }

    use serde::{Deserialize, Serialize};

    #[test]
    fn rows_are_written_per_complete_time_sorted_and_counted() {
        for workers in [1, 3] {
            let meters = Arc::new(Meters::new(false));
            let outputs = Arc::new(Outputs::new(Format::Csv, false, Arc::clone(&meters)));
            let (results, alerts) = (Shared::default(), Shared::default());
            outputs.add(RESULTS, Box::new(results.clone()));
            outputs.add("alerts", Box::new(alerts.clone()));
            let row = |t, n: &str| Row(t, n.into());
            let input = vec![(0, vec![row(9, "b"), row(0, "z"), row(9, "a")]), (5, vec![row(5, "c")])];
            let sink = Arc::clone(&outputs);
            collect(workers, input, move |s| {
                s.clone().write_rows(&sink);
                s.clone().write_side(&sink, "alerts");
                s.filter(|_| false)
            });
            let text = String::from_utf8(results.0.lock().unwrap().clone()).unwrap();
            assert_eq!(text, "time,name\n0,z\n9,a\n9,b\n5,c\n", "-w {workers}");
            assert_eq!(*alerts.0.lock().unwrap(), *results.0.lock().unwrap());
            assert_eq!(meters.rows_out.load(Ordering::Relaxed), 4, "side rows are not counted");
        }
    }

    #[test]
    fn rejects_and_late_records_name_their_place() {
        let meters = Arc::new(Meters::new(false));
        let outputs = Arc::new(Outputs::new(Format::Csv, false, meters));
        let (rejects, late) = (Shared::default(), Shared::default());
        outputs.add(REJECTS, Box::new(rejects.clone()));
        outputs.add(LATE, Box::new(late.clone()));
        let counts = Counts { read: 3, accepted: 1, rejected: 1, late: 1, bytes: 10 };
        let diags = vec![
            Diag::Late(Late {
                origin: "f".into(),
                line: 3,
                event_time: 1_000,
                watermark: 1_500,
                text: "x".into(),
            }),
            Diag::Reject(Rejected { origin: "f".into(), line: 2, reason: "bad".into(), text: "y".into() }),
            Diag::Counts(counts),
        ];
        let sink = Arc::clone(&outputs);
        collect(2, vec![(0, diags)], move |s| {
            s.clone().report(&sink);
            s.filter(|_| false)
        });
        assert_eq!(String::from_utf8(rejects.0.lock().unwrap().clone()).unwrap(), "f:2: bad: y\n");
        assert_eq!(
            String::from_utf8(late.0.lock().unwrap().clone()).unwrap(),
            "f:3: late by 500 ms: event time 1970-01-01T00:00:01Z is behind watermark 1970-01-01T00:00:01.500Z: x\n"
        );
        assert_eq!(*outputs.summary.lock().unwrap(), counts);
    }
}
