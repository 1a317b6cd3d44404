//! Writes seeded, deterministic data sets: `gen transactions --rows N --seed S`,
//! `gen clicks --rows N --seed S`, `gen access-log --rows N --seed S`.
//!
//! Row `i` depends only on the seed and `i`, so the same command writes the same bytes
//! on any machine, and the file is written as a stream in constant memory.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use kappa::cli::{parse_or_exit, program_name};
use kappa::record::transaction::{BurstArgs, TransactionGen};
use kappa::record::{RowGenerator, Timeline, generator};
use kappa::time::{DAY_MS, Duration, parse_iso8601};

/// Generate seeded data sets in the notebooks' shapes.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    kind: Kind,
}

#[derive(Subcommand, Debug)]
enum Kind {
    /// E-commerce transactions as CSV with a header.
    Transactions {
        #[command(flatten)]
        options: Options,
        #[command(flatten)]
        bursts: BurstArgs,
    },
    /// Clickstream events as JSON lines (the notebook's Kafka demo).
    Clicks(Options),
    /// Apache access-log lines (combined format, some common), with heavy hitters and
    /// 4xx/5xx responses; no header.
    AccessLog(Options),
}

/// Options every kind of data set takes.
#[derive(clap::Args, Debug)]
struct Options {
    /// Number of rows.
    #[arg(long, default_value_t = 100_000)]
    rows: u64,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// First timestamp (ISO 8601).
    #[arg(long, default_value = "2026-10-01T00:00:00Z", value_parser = parse_time)]
    start: u64,
    /// Days the timestamps span.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=36_500))]
    days: u64,
    /// Write rows in time order, like a live feed, instead of shuffled history.
    #[arg(long)]
    ordered: bool,
    /// With --ordered, delay each row by up to this much behind its place in time.
    #[arg(long, value_name = "DURATION", default_value = "0ms", requires = "ordered")]
    jitter: Duration,
    /// Write here instead of stdout.
    #[arg(long, short = 'o', value_name = "PATH")]
    output: Option<PathBuf>,
}

fn parse_time(text: &str) -> Result<u64, String> {
    parse_iso8601(text)
        .ok_or_else(|| format!("'{text}' is not an ISO 8601 time such as 2026-10-01T00:00:00Z"))
}

fn write_rows(out: &mut dyn Write, rows: u64, generator: &dyn RowGenerator) -> io::Result<()> {
    let mut buf = Vec::with_capacity(1 << 20);
    if let Some(header) = generator.header() {
        buf.extend_from_slice(header.as_bytes());
        buf.push(b'\n');
    }
    for i in 0..rows {
        generator.write_row(i, &mut buf);
        buf.push(b'\n');
        if buf.len() > (1 << 20) - 256 {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    out.flush()
}

fn main() -> ExitCode {
    let args: Args = parse_or_exit();
    let (kind, options, bursts) = match args.kind {
        Kind::Transactions { options, bursts } => ("transactions", options, bursts.bursts()),
        Kind::Clicks(options) => ("clicks", options, None),
        Kind::AccessLog(options) => ("access-log", options, None),
    };
    let Options { rows, seed, start, days, ordered, jitter, output } = options;
    let span = days * DAY_MS;
    let timeline = if ordered {
        let step_nanos = if rows == 0 { 0 } else { (span as u128 * 1_000_000 / rows as u128) as u64 };
        Timeline::Ordered { start, step_nanos, jitter: jitter.millis() }
    } else {
        Timeline::Shuffled { start, span }
    };
    let generator: Box<dyn RowGenerator> = match bursts {
        Some(b) => Box::new(TransactionGen::new(seed, timeline).with_bursts(b)),
        None => generator(kind, seed, timeline).expect("known kind"),
    };
    let mut out: Box<dyn Write> = match &output {
        None => Box::new(io::stdout().lock()),
        Some(path) => match File::create(path) {
            Ok(f) => Box::new(BufWriter::new(f)),
            Err(e) => {
                eprintln!(
                    "{}: error: cannot create {}: {}",
                    program_name(),
                    path.display(),
                    kappa::source::io_reason(&e)
                );
                return ExitCode::from(2);
            }
        },
    };
    match write_rows(&mut out, rows, generator.as_ref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: error: writing: {}", program_name(), kappa::source::io_reason(&e));
            ExitCode::from(1)
        }
    }
}
