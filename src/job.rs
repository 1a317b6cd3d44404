//! Running a job: checks before start, the timely workers, and the summary after.
//!
//! A job binary parses its options, then hands [`run`] a function that builds its
//! dataflow on one worker. `run` checks everything that can be checked up front (the
//! input exists, the output can be created, the cluster flags make sense) so that a
//! mistake is one line on stderr and exit code 2, never a panic in a worker.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use timely::dataflow::Scope;

use crate::cli::{CommonArgs, EXIT_USAGE, program_name};
use crate::metrics::Summary;
use crate::operators::ingest::{Counts, IngestConfig, LiveCounters};
use crate::source::{InputSpec, io_reason};
use crate::time::Millis;

type Output = Box<dyn Write + Send>;

/// What one process knows about the running job; shared by its workers.
pub struct Job {
    /// The job's common options.
    pub common: CommonArgs,
    /// How ingest reads the input.
    pub ingest: IngestConfig,
    /// Counts gathered from all workers by the diagnostics sink.
    pub summary: Mutex<Counts>,
    /// Result rows written.
    pub rows_out: AtomicU64,
    /// When the job started.
    pub started: Instant,
    output: Mutex<Option<Output>>,
    rejects: Mutex<Option<Output>>,
    late: Mutex<Option<Output>>,
}

impl Job {
    /// The result writer, for worker 0 of process 0 (where sinks gather); `None` elsewhere.
    pub fn take_output(&self, worker: usize) -> Option<Output> {
        (worker == 0)
            .then(|| self.output.lock().expect("output lock").take())
            .flatten()
    }

    /// The rejects writer, if `--rejects` was given, for worker 0.
    pub fn take_rejects(&self, worker: usize) -> Option<Output> {
        (worker == 0)
            .then(|| self.rejects.lock().expect("rejects lock").take())
            .flatten()
    }

    /// The late-records writer, if `--late` was given, for worker 0.
    pub fn take_late(&self, worker: usize) -> Option<Output> {
        (worker == 0)
            .then(|| self.late.lock().expect("late lock").take())
            .flatten()
    }

    /// The ingest configuration.
    pub fn ingest(&self) -> &IngestConfig {
        &self.ingest
    }
}

fn create(path: &Path, what: &str) -> Result<Output, String> {
    if path == Path::new("-") {
        return Ok(Box::new(BufWriter::with_capacity(
            1 << 16,
            std::io::stdout(),
        )));
    }
    File::create(path)
        .map(|f| Box::new(BufWriter::with_capacity(1 << 20, f)) as Output)
        .map_err(|e| format!("cannot create {what} {}: {}", path.display(), io_reason(&e)))
}

/// Settings a job gives [`run`] besides the user's options.
pub struct JobSpec {
    /// The input used when `--input` is not given.
    pub default_input: &'static str,
}

/// Runs a job to completion on every worker of this process and prints the summary.
///
/// `build` constructs the dataflow on one worker. It is called once per worker thread.
pub fn run<B>(common: CommonArgs, spec: JobSpec, build: B) -> ExitCode
where
    B: Fn(Scope<'_, Millis>, &Arc<Job>) + Send + Sync + 'static,
{
    match prepare(common, &spec) {
        Ok((config, job)) => execute(config, job, build),
        Err(message) => {
            eprintln!("{}: error: {message}", program_name());
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn prepare(common: CommonArgs, spec: &JobSpec) -> Result<(timely::Config, Arc<Job>), String> {
    let config = common.cluster.timely_config()?;
    let input = match &common.input {
        Some(input) => input.clone(),
        None => spec.default_input.parse::<InputSpec>()?,
    };
    input.validate()?;
    let first = common.cluster.process == 0;
    let open = |path: Option<&Path>, what: &str| -> Result<Option<Output>, String> {
        match path {
            Some(p) if first => create(p, what).map(Some),
            _ => Ok(None),
        }
    };
    let output = open(Some(&common.output), "output")?;
    let rejects = open(common.rejects.as_deref(), "rejects file")?;
    let ingest = IngestConfig {
        input,
        epoch: common.epoch,
        lateness: None,
        strict: common.strict,
        max_line: common.max_line_bytes,
        counters: Arc::new(LiveCounters::default()),
    };
    let job = Job {
        common,
        ingest,
        summary: Mutex::new(Counts::default()),
        rows_out: AtomicU64::new(0),
        started: Instant::now(),
        output: Mutex::new(output),
        rejects: Mutex::new(rejects),
        late: Mutex::new(None),
    };
    Ok((config, Arc::new(job)))
}

fn execute<B>(config: timely::Config, job: Arc<Job>, build: B) -> ExitCode
where
    B: Fn(Scope<'_, Millis>, &Arc<Job>) + Send + Sync + 'static,
{
    let shared = Arc::clone(&job);
    let guards = timely::execute(config, move |worker| {
        let job = Arc::clone(&shared);
        worker.dataflow::<Millis, _, _>(|scope| build(scope, &job));
        // Park when idle: busy stepping starves other processes on shared cores.
        while worker.step_or_park(None) {}
    });
    let guards = match guards {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{}: error: cannot start workers: {e}", program_name());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let failed: Vec<String> = guards.join().into_iter().filter_map(Result::err).collect();
    if let Some(first) = failed.first() {
        eprintln!("{}: error: a worker failed: {first}", program_name());
        return ExitCode::from(crate::cli::EXIT_FAILURE);
    }
    if job.common.cluster.process == 0 && !job.common.quiet {
        let counts = *job.summary.lock().expect("summary lock");
        let summary = Summary {
            counts,
            rows_out: job.rows_out.load(Ordering::Relaxed),
            elapsed: job.started.elapsed(),
        };
        eprintln!("{summary}");
    }
    ExitCode::SUCCESS
}
