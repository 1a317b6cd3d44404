//! Running a job: checks before start, the timely workers, and the summary after.
//!
//! A job binary parses its options, then hands [`run`] a function that builds its
//! dataflow on one worker. `run` checks everything that can be checked up front (the
//! input exists, the output can be created, the cluster flags make sense, a tcp port is
//! free) so that a mistake is one line on stderr and exit code 2, never a panic in a
//! worker. While the job runs it prints progress lines; SIGINT or SIGTERM stop the
//! input (a live input first drains the lines it has read), the frontier closes, every
//! window is reported and the job exits 0. With `--checkpoint` a signal ends the job
//! at once instead (exit 128 + the signal): the same command resumes it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration as StdDuration, Instant};

use differential_dataflow::difference::Semigroup;
use differential_dataflow::{AsCollection, VecCollection};
use timely::dataflow::operators::Leave;
use timely::dataflow::{Scope, Stream};

use crate::checkpoint::Checkpoint;
use crate::checkpoint::journal::Journal;
use crate::checkpoint::snapshot::Snapshots;
use crate::cli::CommonArgs;
use crate::exit::{EXIT_FAILURE, EXIT_USAGE, io_reason, program_name};
use crate::metrics::{Meters, Summary};
use crate::operators::Windowing;
use crate::operators::ingest::IngestConfig;
use crate::sink::{Destination, LATE, Outputs, REJECTS, RESULTS};
use crate::source::live::{self, Wakers};
use crate::source::{InputSpec, LastLine, kafka, mqtt, tail, tcp};
use crate::time::{Duration, Millis, Time};

/// Default lateness of live inputs.
pub const LIVE_LATENESS: Duration = Duration::from_secs(5);

/// What one process knows about the running job; shared by its workers.
pub struct Job {
    /// The job's common options.
    pub common: CommonArgs,
    /// How ingest reads the input.
    pub ingest: IngestConfig,
    /// Where the sinks write.
    pub out: Arc<Outputs>,
    /// When the job started.
    pub started: Instant,
    /// Set once every worker has finished: the results are all out.
    pub finished: AtomicBool,
}

impl Job {
    /// The ingest configuration.
    pub fn ingest(&self) -> &IngestConfig {
        &self.ingest
    }

    /// The ingest configuration for a job whose results close with `windowing`'s windows
    /// (this only sharpens the latency measurement).
    pub fn ingest_windowed(&self, windowing: Windowing) -> IngestConfig {
        self.ingest.closing(windowing)
    }

    /// Process-wide meters.
    pub fn meters(&self) -> &Meters {
        &self.ingest.meters
    }
}

/// Where a job builds its dataflow: two nested scopes.
///
/// The checkpointed region (`inner`, timestamps [`Time`]: event time and checkpoint
/// round) holds ingest and every stateful timely operator, so a checkpoint can cut it
/// consistently. Differential collections live in the outer scope, in plain event
/// time, where their operators can rely on a total order; their state is rebuilt from
/// the updates that enter them ([`Dataflow::collection`]).
pub struct Dataflow<'outer, 'inner> {
    /// Plain event time: differential collections and the sinks after them.
    pub outer: Scope<'outer, Millis>,
    /// The checkpointed region: ingest and every stateful timely operator.
    pub inner: Scope<'inner, Time>,
}

impl<'outer, 'inner> Dataflow<'outer, 'inner> {
    /// Updates `(data, time, diff)` from the checkpointed region, as a differential
    /// collection in plain event time.
    pub fn collection<D, R>(
        &self,
        updates: Stream<'inner, Time, Vec<(D, Millis, R)>>,
    ) -> VecCollection<'outer, Millis, D, R>
    where
        D: timely::ExchangeData,
        R: Semigroup + 'static,
    {
        updates.leave(self.outer).as_collection()
    }
}

/// Settings a job gives [`run`] besides the user's options.
pub struct JobSpec {
    /// The input used when `--input` is not given.
    pub default_input: &'static str,
    /// Side outputs the job writes besides its results, such as alerts: each name (as
    /// sinks ask for it) and path. They are created before the job starts.
    pub sides: Vec<(&'static str, PathBuf)>,
    /// Whether the job writes `--output` (a job whose routes leave it unused does not
    /// create it, so `--checkpoint` needs no `--output FILE`).
    pub results: bool,
    /// Whether every stateful operator of the job takes part in snapshots, so that with
    /// `--checkpoint` a restart resumes from the last complete round instead of from the
    /// input's start ([`crate::checkpoint::snapshot`]).
    pub snapshots: bool,
}

impl JobSpec {
    /// A job reading `default_input` when none is given, with no side outputs.
    pub fn new(default_input: &'static str) -> Self {
        JobSpec { default_input, sides: Vec::new(), results: true, snapshots: false }
    }

    /// Adds the side outputs `files`.
    pub fn sides(mut self, files: Vec<(&'static str, PathBuf)>) -> Self {
        self.sides.extend(files);
        self
    }

    /// Whether the job writes `--output`.
    pub fn results(mut self, results: bool) -> Self {
        self.results = results;
        self
    }

    /// Whether the job's dataflow takes part in snapshots: each of its stateful operators
    /// holds back records of rounds it has not reached and saves its state per round.
    pub fn snapshots(mut self, snapshots: bool) -> Self {
        self.snapshots = snapshots;
        self
    }

    /// Adds the side output `name` when `path` is given.
    pub fn side(mut self, name: &'static str, path: Option<&Path>) -> Self {
        if let Some(p) = path {
            self.sides.push((name, p.to_path_buf()));
        }
        self
    }
}

/// Runs a job to completion on every worker of this process and prints the summary.
///
/// `build` constructs the dataflow on one worker. It is called once per worker thread.
pub fn run<B>(common: CommonArgs, spec: JobSpec, build: B) -> ExitCode
where
    B: Fn(Dataflow<'_, '_>, &Arc<Job>) + Send + Sync + 'static,
{
    match prepare(common, &spec) {
        Ok(job) => {
            let code = execute(Arc::clone(&job), build);
            linger(&job);
            code
        }
        Err(message) => {
            eprintln!("{}: error: {message}", program_name());
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn prepare(common: CommonArgs, spec: &JobSpec) -> Result<Arc<Job>, String> {
    // Checks the cluster flags before anything is created.
    common.cluster.timely_config()?;
    let input = match &common.input {
        Some(input) => input.clone(),
        None => spec.default_input.parse::<InputSpec>()?,
    };
    let cluster = &common.cluster;
    let mut input = input.for_process(cluster.process as usize, cluster.processes as usize)?;
    input.validate()?;
    let checkpoint = match &common.recovery.checkpoint {
        Some(dir) => {
            let fingerprint = crate::checkpoint::fingerprint(&program_name(), std::env::args().skip(1));
            let r = &common.recovery;
            let every = r.checkpoint_every.to_std();
            Some(Arc::new(Checkpoint::open(dir, cluster.process, &fingerprint, r.fsync, every)?))
        }
        None => None,
    };
    if let InputSpec::Gen(spec) = &mut input {
        // Every worker's paced schedule starts at the same instant: the job's first start.
        spec.start = Some(checkpoint.as_ref().map_or_else(crate::time::now_millis, |c| c.anchor()));
    }
    let mut written: Vec<(&str, &Path)> = vec![("--output", &common.output)];
    written.extend(common.rejects.as_deref().map(|p| ("--rejects", p)));
    written.extend(common.live.late.as_deref().map(|p| ("--late", p)));
    written.extend(common.live.latency_out.as_deref().map(|p| ("--latency-out", p)));
    written.extend(spec.sides.iter().map(|(name, p)| (*name, p.as_path())));
    refuse_to_overwrite_input(&input, &written)?;
    if let Some(path) = &common.live.latency_out {
        crate::sink::create(path, "latency file")?;
    }
    let destination =
        |name, path: &PathBuf, what: &str| Destination { name, path: path.clone(), what: what.into() };
    let mut destinations = Vec::new();
    if spec.results {
        destinations.push(destination(RESULTS, &common.output, "output"));
    }
    if let Some(path) = &common.rejects {
        destinations.push(destination(REJECTS, path, "rejects file"));
    }
    if let Some(path) = &common.live.late {
        destinations.push(destination(LATE, path, "late file"));
    }
    for (name, path) in &spec.sides {
        destinations.push(destination(name, path, &format!("{name} file")));
    }
    let live = input.is_live();
    let lateness = match common.live.lateness {
        Some(l) => Some(l),
        None if input.is_ordered() => Some(Duration::from_millis(0)),
        None if live => Some(LIVE_LATENESS),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let meters = match common.watch.http {
        Some(_) => Meters::new(live).watched(crate::http::LATEST_ROWS),
        None => Meters::new(live),
    };
    let meters = if checkpoint.is_some() { meters.checkpointed() } else { meters };
    let meters = Arc::new(meters);
    // Snapshots need an input that resumes from a position or from its journal; several
    // processes would need their rounds agreed on, which they are not yet: those replay
    // their input. Opened before the feed: a journal replays from the restored round.
    let snapshots = match &checkpoint {
        Some(c) if spec.snapshots && (input.resumable() || input.journaled()) && cluster.processes == 1 => {
            let named = |e: std::io::Error| format!("checkpoint journal: {}", io_reason(&e));
            let kept_from = crate::checkpoint::journal::first_round(c.dir()).map_err(named)?;
            let threads = cluster.threads as usize;
            Some(Snapshots::open(c.dir(), threads, c.fsync(), c.every(), kept_from)?.activate())
        }
        _ => None,
    };
    let (feed, wakers) = match &input {
        InputSpec::Stdin
        | InputSpec::Tcp(_)
        | InputSpec::Tail(_)
        | InputSpec::Mqtt(_)
        | InputSpec::Kafka(_) => {
            let (feed, intake) = live::feed(Arc::clone(&stop));
            let (intake, replayed) = match &checkpoint {
                // stdin, tcp and mqtt cannot be read again (the broker forgets what it saw
                // acknowledged): their lines are journaled. A Kafka partition resumes
                // after the last offset journaled. A growing file is read again from its
                // start, or with snapshots from the restored round's place in it.
                Some(c)
                    if input.journaled() && (snapshots.is_some() || !matches!(input, InputSpec::Tail(_))) =>
                {
                    let named = |e: std::io::Error| format!("checkpoint journal: {}", io_reason(&e));
                    let rounds = snapshots.clone();
                    // With snapshots the journal of an input read again keeps where each
                    // round began only, and a restart reads on from the restored round's,
                    // so the segments after it no longer hold.
                    let records = !input.rereadable();
                    if let Some(s) = rounds.as_ref().filter(|_| !records) {
                        let from = s.restored().unwrap_or(0);
                        crate::checkpoint::journal::drop_after(c.dir(), from).map_err(named)?;
                    }
                    let (journal, segments) = Journal::open(c.dir(), c.fsync()).map_err(named)?;
                    intake.journaled(journal, segments, rounds, records).map_err(named)?
                }
                _ => (intake, live::Replayed::default()),
            };
            let max_line = common.max_line_bytes;
            match &input {
                InputSpec::Tcp(spec) => {
                    let listener = spec.bind(common.cluster.process as usize)?;
                    let until_eof = common.live.until_eof;
                    let meters = Arc::clone(&meters);
                    tcp::listen(listener, intake, spec, until_eof, max_line, meters, replayed.accepted)?;
                }
                InputSpec::Tail(spec) => {
                    let resume = replayed.followed.get(input.to_string().as_str()).copied();
                    tail::watch(spec.clone(), intake, max_line, resume)
                }
                InputSpec::Mqtt(spec) => {
                    mqtt::subscribe(spec, common.cluster.process as usize, intake, max_line, &replayed)?
                }
                InputSpec::Kafka(spec) => {
                    let c = &common.cluster;
                    let place = (c.process as usize, c.processes as usize, c.threads as usize);
                    kafka::subscribe(spec, place, intake, &feed.origins, max_line, &replayed.next_line)?
                }
                _ => {
                    let stdin = live::stdin().map_err(|e| format!("stdin: {}", io_reason(&e)))?;
                    std::thread::Builder::new()
                        .name("kappa-stdin".into())
                        .spawn(move || {
                            if let Err(e) = intake.pump(Arc::from("stdin"), stdin, max_line, LastLine::Whole)
                            {
                                eprintln!("{}: warning: stdin: {}", program_name(), io_reason(&e));
                            }
                        })
                        .map_err(|e| e.to_string())?;
                }
            }
            let wakers = feed.wakers.clone();
            (Some(feed), wakers)
        }
        _ => (None, Wakers::default()),
    };
    if common.watch.http.is_some() || !common.watch.health.is_empty() {
        let addr = common.watch.http.map(|a| crate::http::for_process(a, cluster.process)).transpose()?;
        let watched = crate::http::Watched {
            job: program_name(),
            process: cluster.process,
            processes: cluster.processes,
            dashboards: match common.watch.http {
                Some(a) if cluster.processes > 1 => crate::http::dashboards(a, &cluster.addresses()?),
                Some(a) => crate::http::dashboards(a, &[]),
                None => Vec::new(),
            },
            meters: Arc::clone(&meters),
            intake: feed.clone(),
            started: Instant::now(),
            started_unix_ms: crate::time::now_millis(),
        };
        let bound = crate::http::watch(addr, watched, common.watch.health.clone())?;
        if let Some(bound) = bound {
            // Always printed, even with -q: with port 0 it is the only way to find the page.
            eprintln!("{}: serving http://{bound}/ (/metrics, /api/status)", program_name());
        }
    }
    let writes = common.cluster.process == 0;
    let out =
        Outputs::open(destinations, writes, common.format, live, Arc::clone(&meters), checkpoint.as_ref())?;
    if let Some(c) = &checkpoint {
        c.begin()?;
        if let Some(round) = snapshots.as_ref().and_then(|s| s.restored())
            && !common.quiet
        {
            eprintln!("{}: resuming from the checkpoint's round {round}", program_name());
        }
    }
    let ingest = IngestConfig {
        input,
        epoch: common.epoch,
        lateness,
        idle_timeout: common.live.idle_timeout,
        strict: common.strict,
        keep_rejects: common.rejects.is_some(),
        keep_late: common.live.late.is_some(),
        max_line: common.max_line_bytes,
        feed,
        wakers,
        stop,
        shared_watermark: Arc::new(AtomicU64::new(0)),
        meters,
        closing: Windowing::Global,
    };
    let job =
        Job { common, ingest, out: Arc::new(out), started: Instant::now(), finished: AtomicBool::new(false) };
    Ok(Arc::new(job))
}

/// Refuses an output that is one of the input's files: creating it would truncate the
/// input before it is read. Paths are compared canonically (symlinks, `..`), so any
/// spelling of the same file is caught; an output that does not exist yet cannot be it.
fn refuse_to_overwrite_input(input: &InputSpec, outputs: &[(&str, &Path)]) -> Result<(), String> {
    let inputs: Vec<PathBuf> = input.files().iter().filter_map(|p| std::fs::canonicalize(p).ok()).collect();
    for (flag, path) in outputs {
        if *path == Path::new("-") {
            continue;
        }
        if let Ok(canonical) = std::fs::canonicalize(path)
            && inputs.contains(&canonical)
        {
            let flag = if flag.starts_with("--") { flag.to_string() } else { format!("--{flag}") };
            return Err(format!("{flag} {} is the input file; refusing to overwrite it", path.display()));
        }
    }
    Ok(())
}

/// On SIGINT or SIGTERM: stop every input and wake the workers so they notice.
fn watch_signals(job: &Arc<Job>) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else { return };
    let job = Arc::clone(job);
    let _ = std::thread::Builder::new().name("kappa-signals".into()).spawn(move || {
        for signal in signals.forever() {
            if let Some(dir) = &job.common.recovery.checkpoint
                && !job.finished.load(Ordering::SeqCst)
            {
                // A drained stop would close every window early and commit partial rows:
                // stop at once instead; what is not committed is written again on resume.
                eprintln!(
                    "{}: stopped; run the same command to resume from the checkpoint in {}",
                    program_name(),
                    dir.display()
                );
                std::process::exit(128 + signal);
            }
            job.ingest.stop.store(true, Ordering::SeqCst);
            job.ingest.wakers.wake_all();
        }
    });
}

/// Prints a progress line every `--progress-every` until `done` fires.
fn report_progress(job: &Arc<Job>) -> Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)> {
    if job.common.quiet {
        return None;
    }
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let job = Arc::clone(job);
    let every = job.common.live.progress_every.to_std();
    let handle = std::thread::Builder::new()
        .name("kappa-progress".into())
        .spawn(move || {
            let mut last = (Instant::now(), 0, 0);
            while let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(every) {
                let line = job.meters().progress_line(&mut last, job.started);
                let process = job.common.cluster.process;
                if job.common.cluster.processes > 1 {
                    eprintln!("[process {process}] {line}");
                } else {
                    eprintln!("{line}");
                }
            }
        })
        .ok()?;
    Some((done_tx, handle))
}

fn execute<B>(job: Arc<Job>, build: B) -> ExitCode
where
    B: Fn(Dataflow<'_, '_>, &Arc<Job>) + Send + Sync + 'static,
{
    watch_signals(&job);
    let progress = report_progress(&job);
    let shared = Arc::clone(&job);
    let config = job.common.cluster.timely_config().expect("checked in prepare");
    let timeout = job.common.cluster.connect_timeout.to_std();
    let guards = crate::cluster::execute(config, timeout, &program_name(), move |worker| {
        let job = Arc::clone(&shared);
        worker.dataflow::<Millis, _, _>(|outer| {
            outer.iterative::<u64, _, _>(|inner| build(Dataflow { outer, inner }, &job))
        });
        if let Some(snapshots) = crate::checkpoint::snapshot::active() {
            snapshots.built(worker.index());
        }
        // Park when idle: busy stepping starves other processes on shared cores.
        while worker.step_or_park(None) {}
    });
    let guards = match guards {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{}: error: {e}", program_name());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let failed: Vec<String> = guards.join().into_iter().filter_map(Result::err).collect();
    job.finished.store(true, Ordering::SeqCst);
    if let Some((done, handle)) = progress {
        let _ = done.send(());
        let _ = handle.join();
    }
    if let Some(first) = failed.first() {
        eprintln!("{}: error: a worker failed: {first}", program_name());
        return ExitCode::from(EXIT_FAILURE);
    }
    let meters = job.meters();
    let latency = meters.latency.as_ref().map(|l| l.lock().expect("latency lock"));
    if let (Some(path), Some(latency)) = (&job.common.live.latency_out, &latency)
        && let Err(e) = write_histogram(path, &latency.histogram)
    {
        eprintln!("{}: error: writing {}: {e}", program_name(), path.display());
        return ExitCode::from(EXIT_FAILURE);
    }
    if job.common.quiet {
        return ExitCode::SUCCESS;
    }
    let (process, processes) = (job.common.cluster.process, job.common.cluster.processes);
    if process != 0 {
        // Other processes know only their own ingest; process 0 reports the totals.
        eprintln!("{}", crate::cluster::local_summary(process, processes, meters, job.started.elapsed()));
        return ExitCode::SUCCESS;
    }
    let counts = *job.out.summary.lock().expect("summary lock");
    let open_frontier = meters.last_open_frontier.load(Ordering::Relaxed);
    let frontier_lag = (job.ingest.input.is_live() && open_frontier > 0).then(|| {
        let max_event = meters.max_event.load(Ordering::Relaxed).saturating_sub(1);
        StdDuration::from_millis(max_event.saturating_sub(open_frontier))
    });
    let summary = Summary {
        counts,
        rows_out: meters.rows_out.load(Ordering::Relaxed),
        elapsed: job.started.elapsed(),
        latency: latency.as_ref().map(|l| l.describe()),
        frontier_lag,
        refused: meters.refused.load(Ordering::Relaxed),
    };
    eprintln!("{summary}");
    ExitCode::SUCCESS
}

/// With `--http-linger`, keeps the process (and so its endpoint) up a while after the
/// job has finished, so a scraper sees the final figures; a signal ends the wait.
fn linger(job: &Job) {
    let Some(linger) = job.common.watch.http_linger else { return };
    let until = Instant::now() + linger.to_std();
    while Instant::now() < until && !job.ingest.stop.load(Ordering::SeqCst) {
        std::thread::sleep(StdDuration::from_millis(50));
    }
}

fn write_histogram(path: &Path, histogram: &hdrhistogram::Histogram<u64>) -> std::io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    writeln!(out, "{:>12} {:>14} {:>10} {:>14}", "Value", "Percentile", "TotalCount", "1/(1-Percentile)")?;
    for v in histogram.iter_quantiles(1) {
        let q = v.quantile_iterated_to();
        let inverse = if q < 1.0 { 1.0 / (1.0 - q) } else { f64::INFINITY };
        writeln!(
            out,
            "{:>12.3} {:>14.12} {:>10} {:>14.2}",
            v.value_iterated_to() as f64,
            q,
            v.count_since_last_iteration(),
            inverse
        )?;
    }
    writeln!(
        out,
        "#[Mean = {:.3}, StdDeviation = {:.3}]\n#[Max = {}, Total count = {}]",
        histogram.mean(),
        histogram.stdev(),
        histogram.max(),
        histogram.len()
    )?;
    out.flush()
}
