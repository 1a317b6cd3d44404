//! Writes seeded, deterministic data sets, one subcommand per record kind:
//! `gen transactions --rows N --seed S`, `gen clicks …`, `gen access-log …`.
//!
//! The kinds and their own options come from the record registry
//! (`kappa::record::registry::KINDS`). Row `i` depends only on the seed and `i`, so the same
//! command writes the same bytes on any machine, and the file is written as a stream
//! in constant memory.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Command, FromArgMatches};

use kappa::cli::parse_command_or_exit;
use kappa::exit::{EXIT_FAILURE, EXIT_USAGE, io_reason, program_name};
use kappa::record::registry::{KINDS, kind};
use kappa::record::{RowGenerator, Timeline};
use kappa::sink::kafka::{self, TopicProducer, TopicUrl};
use kappa::source::mqtt::{MqttSpec, publish};
use kappa::time::{DAY_MS, Duration, parse_iso8601};

/// Options every kind of data set takes.
#[derive(Args, Debug)]
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
    #[arg(long, short = 'o', value_name = "PATH", conflicts_with = "publish")]
    output: Option<PathBuf>,
    /// Publish each row (without the header) as one message to mqtt://HOST:PORT/TOPIC
    /// at QoS 1, or to kafka://HOST:PORT/TOPIC (row i to partition i mod --partitions,
    /// idempotent producer), instead of writing a file.
    #[arg(long, value_name = "URL")]
    publish: Option<String>,
    /// With --publish kafka://…: create the topic with this many partitions.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "publish", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    partitions: u32,
    /// With --publish, at most this many messages a second (default: as fast as the
    /// broker acknowledges them).
    #[arg(long, value_name = "N", requires = "publish", value_parser = clap::value_parser!(u64).range(1..))]
    rate: Option<u64>,
}

fn parse_time(text: &str) -> Result<u64, String> {
    parse_iso8601(text)
        .ok_or_else(|| format!("'{text}' is not an ISO 8601 time such as 2026-10-01T00:00:00Z"))
}

/// `gen` with one subcommand per registered kind.
fn command() -> Command {
    let gen_cmd = Command::new("gen")
        .about("Generate seeded data sets in the notebooks' shapes.")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true);
    KINDS.iter().fold(gen_cmd, |c, k| {
        c.subcommand((k.args)(Options::augment_args(Command::new(k.name))).about(k.about))
    })
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

/// Publishes rows `0..rows` to the MQTT or Kafka topic `url` names, one message each.
fn publish_rows(
    url: &str,
    rows: u64,
    rate: Option<u64>,
    partitions: u32,
    generator: Box<dyn RowGenerator>,
) -> ExitCode {
    let each = move |i: u64, line: &mut Vec<u8>| {
        if i >= rows {
            return false;
        }
        generator.write_row(i, line);
        true
    };
    if let Some(topic) = TopicUrl::parse(url) {
        // A bad URL or an unreachable broker is found before anything is sent: exit 2.
        let producer = match topic.and_then(|t| TopicProducer::open(&t, partitions)) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{}: error: --publish: {e}", program_name());
                return ExitCode::from(EXIT_USAGE);
            }
        };
        return match kafka::publish(&producer, partitions, rate, each) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{}: error: {e}", program_name());
                ExitCode::from(EXIT_FAILURE)
            }
        };
    }
    let spec = match url.strip_prefix("mqtt://").map(MqttSpec::parse) {
        Some(Ok(spec)) => spec,
        Some(Err(e)) => {
            eprintln!("{}: error: --publish: {e}", program_name());
            return ExitCode::from(EXIT_USAGE);
        }
        None => {
            eprintln!(
                "{}: error: --publish: expected mqtt://HOST:PORT/TOPIC or kafka://HOST:PORT/TOPIC, found '{url}'",
                program_name()
            );
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match publish(&spec.host, spec.port, &spec.filter, rate, each) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: error: {e}", program_name());
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn main() -> ExitCode {
    let matches = parse_command_or_exit(command());
    let (name, sub) = matches.subcommand().expect("a subcommand is required");
    let kind = kind(name).expect("subcommands come from the registry");
    let Options { rows, seed, start, days, ordered, jitter, output, publish, partitions, rate } =
        Options::from_arg_matches(sub).expect("clap checked the options");
    let span = days * DAY_MS;
    let timeline = if ordered {
        let step_nanos = if rows == 0 { 0 } else { (span as u128 * 1_000_000 / rows as u128) as u64 };
        Timeline::Ordered { start, step_nanos, jitter: jitter.millis() }
    } else {
        Timeline::Shuffled { start, span }
    };
    let generator = match (kind.make)(seed, timeline, sub) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{}: error: {e}", program_name());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Some(url) = publish {
        return publish_rows(&url, rows, rate, partitions, generator);
    }
    let mut out: Box<dyn Write> = match &output {
        None => Box::new(io::stdout().lock()),
        Some(path) => match File::create(path) {
            Ok(f) => Box::new(BufWriter::new(f)),
            Err(e) => {
                eprintln!("{}: error: cannot create {}: {}", program_name(), path.display(), io_reason(&e));
                return ExitCode::from(EXIT_USAGE);
            }
        },
    };
    match write_rows(&mut out, rows, generator.as_ref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: error: writing: {}", program_name(), io_reason(&e));
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
