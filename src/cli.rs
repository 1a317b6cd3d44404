//! Options shared by every job, and timely's cluster flags turned into a `timely::Config`.
//!
//! Cluster flags keep timely's own meaning: `-w/--threads` worker threads per process,
//! `-n/--processes` processes, `-p/--process` this process's index and `-h/--hostfile`
//! one `host:port` a line. So `-h` is not help: help is `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, ValueEnum};

use crate::exit::usage_error;
use crate::operators::Windowing;
use crate::sink::Format;
use crate::source::InputSpec;
use crate::time::{Duration, positive_duration};

/// Timely's cluster flags.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Cluster (timely's flags)")]
pub struct ClusterArgs {
    /// Worker threads per process.
    #[arg(short = 'w', long = "threads", value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: u32,
    /// Number of processes.
    #[arg(short = 'n', long = "processes", value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub processes: u32,
    /// Index of this process, from 0.
    #[arg(short = 'p', long = "process", value_name = "I", default_value_t = 0)]
    pub process: u32,
    /// File of process addresses, one `host:port` a line; blank lines and `#` comments are ignored.
    #[arg(short = 'h', long = "hostfile", value_name = "PATH")]
    pub hostfile: Option<PathBuf>,
    /// First port on localhost when no hostfile is given: process `i` uses `port-base + i`.
    #[arg(long = "port-base", value_name = "PORT", default_value_t = 2101)]
    pub port_base: u16,
    /// Give up when the other processes are not all connected within this time.
    #[arg(long = "connect-timeout", value_name = "DURATION", default_value = "30s", value_parser = positive_duration)]
    pub connect_timeout: Duration,
}

impl ClusterArgs {
    /// The process addresses, from the hostfile or from `localhost:port-base+i`.
    pub fn addresses(&self) -> Result<Vec<String>, String> {
        let n = self.processes as usize;
        match &self.hostfile {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("hostfile {}: {}", path.display(), crate::exit::io_reason(&e)))?;
                let hosts: Vec<String> = text
                    .lines()
                    .map(|l| l.split('#').next().unwrap_or("").trim())
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect();
                if hosts.len() < n {
                    return Err(format!(
                        "hostfile {} lists {} address(es) but -n is {n}",
                        path.display(),
                        hosts.len()
                    ));
                }
                if let Some(bad) = hosts.iter().take(n).find(|h| !h.contains(':')) {
                    return Err(format!("hostfile {}: '{bad}' is not host:port", path.display()));
                }
                Ok(hosts.into_iter().take(n).collect())
            }
            None => (0..n)
                .map(|i| {
                    let port = self.port_base as usize + i;
                    u16::try_from(port)
                        .map(|p| format!("localhost:{p}"))
                        .map_err(|_| format!("--port-base {} + {i} is not a valid port", self.port_base))
                })
                .collect(),
        }
    }

    /// The timely configuration these flags describe.
    pub fn timely_config(&self) -> Result<timely::Config, String> {
        if self.process >= self.processes {
            return Err(format!(
                "-p {} is out of range: with -n {} it must be 0..={}",
                self.process,
                self.processes,
                self.processes - 1
            ));
        }
        let threads = self.threads as usize;
        let communication = if self.processes > 1 {
            timely::CommunicationConfig::Cluster {
                threads,
                process: self.process as usize,
                addresses: self.addresses()?,
                report: false,
                zerocopy: false,
            }
        } else if threads > 1 {
            timely::CommunicationConfig::Process(threads)
        } else {
            timely::CommunicationConfig::Thread
        };
        Ok(timely::Config { communication, worker: timely::WorkerConfig::default() })
    }
}

/// How a job computes: once per complete time, or as a stream of changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Plain timely aggregation; each result is reported once, when its time is complete.
    Batch,
    /// Differential collections; results are reported as changes `…,diff`.
    Incremental,
}

/// Options every job accepts.
#[derive(Args, Clone, Debug)]
pub struct CommonArgs {
    /// Input: a file path, `-` (stdin), `tcp://HOST:PORT`, `tail:PATH`,
    /// `mqtt://HOST:PORT/FILTER`, `kafka://HOST:PORT/TOPIC?group=G[&until=end]` or
    /// `gen:KIND?rate=R&count=N&seed=S`. Defaults to the job's built-in data.
    #[arg(long, value_name = "SPEC")]
    pub input: Option<InputSpec>,
    /// Where results go; `-` is stdout, `kafka://HOST:PORT/TOPIC` a Kafka topic.
    #[arg(long, value_name = "PATH", default_value = "-")]
    pub output: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
    /// Batch or incremental execution.
    #[arg(long, value_enum, default_value_t = Mode::Batch)]
    pub mode: Mode,
    /// Write rejected lines here, one `SOURCE:LINE: REASON: TEXT` each.
    #[arg(long, value_name = "PATH")]
    pub rejects: Option<PathBuf>,
    /// Exit non-zero at the first malformed line instead of rejecting it.
    #[arg(long)]
    pub strict: bool,
    /// Event-time granularity of timely timestamps.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = positive_duration)]
    pub epoch: Duration,
    /// Lines longer than this many bytes are rejected (at most 1 GiB, MAX_LINE_BYTES).
    #[arg(long, value_name = "BYTES", default_value_t = 65_536, value_parser = max_line_bytes)]
    pub max_line_bytes: usize,
    /// Do not print the summary or progress lines on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    /// Event time and live input.
    pub live: LiveArgs,
    #[command(flatten)]
    /// Timely's cluster flags.
    pub cluster: ClusterArgs,
    #[command(flatten)]
    /// The `--http` endpoint.
    pub watch: WatchArgs,
    #[command(flatten)]
    /// Checkpoints and restart.
    pub recovery: RecoveryArgs,
    /// Print help (`-h` is timely's hostfile).
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
}

/// Event time and live-input options.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Event time and live input")]
pub struct LiveArgs {
    /// How far the watermark trails the largest event time seen. Default: until the end
    /// for a file, 5s for live input, 0 for a paced generator.
    #[arg(long, value_name = "DURATION")]
    pub lateness: Option<Duration>,
    /// Write records that arrive behind the watermark here, with the reason.
    #[arg(long, value_name = "PATH")]
    pub late: Option<PathBuf>,
    /// After this long without input, let the watermark follow the wall clock.
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    pub idle_timeout: Option<Duration>,
    /// For tcp input: end when every client so far has disconnected.
    #[arg(long)]
    pub until_eof: bool,
    /// Print a progress line on stderr this often.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = positive_duration)]
    pub progress_every: Duration,
    /// Write the output-latency histogram here (HdrHistogram percentile text, microseconds).
    #[arg(long, value_name = "PATH")]
    pub latency_out: Option<PathBuf>,
}

/// Watching a running job over HTTP.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Watching")]
pub struct WatchArgs {
    /// Serve /metrics (Prometheus), /api/status (JSON) and a live dashboard at / on
    /// HOST:PORT or PORT (loopback). Port 0 picks a free port; the URL is printed on
    /// stderr. Process p of a cluster adds p to the port.
    #[arg(long = "http", value_name = "ADDR", value_parser = crate::http::parse_addr)]
    pub http: Option<std::net::SocketAddr>,
    /// Keep serving this long after the job has finished, so a scraper sees the final figures.
    #[arg(long = "http-linger", value_name = "DURATION", requires = "http")]
    pub http_linger: Option<Duration>,
    /// A health rule such as `lag>30s for 1m`, `rejected_share>1%` or `input_rate<1 for 5m`;
    /// repeatable. A breach is a line on stderr and a metric, once per episode.
    #[arg(long = "health", value_name = "RULE")]
    pub health: Vec<crate::http::health::Rule>,
}

/// Checkpoints and restart.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Recovery")]
pub struct RecoveryArgs {
    /// Make output exactly-once across crashes: commit output files and journal live
    /// input in this folder; a job started again with the same folder and options
    /// resumes, and its files end byte-identical to a run that never failed. Needs
    /// `--output FILE`.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// How often output is committed (wall clock), at most.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = positive_duration, requires = "checkpoint")]
    pub checkpoint_every: Duration,
    /// Sync commits and the journal to disk, so they survive power loss, not only a
    /// killed process (slower: a disk flush per commit and per journal entry).
    #[arg(long, requires = "checkpoint")]
    pub fsync: bool,
}

/// Event-time window options, for jobs that aggregate over windows.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Windows")]
pub struct WindowArgs {
    /// Aggregate over event-time windows of this length instead of over all time.
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    pub window: Option<Duration>,
    /// Start a window every DURATION (sliding windows); defaults to --window (tumbling).
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    pub slide: Option<Duration>,
}

/// The largest `--max-line-bytes`: 1 GiB. A line buffer is allocated up to it, so a
/// larger value would abort on allocation instead of rejecting long lines.
pub const MAX_LINE_BYTES: usize = 1 << 30;

/// The most windows one record may fall in (`--window` / `--slide`): each is state.
pub const MAX_WINDOWS_PER_RECORD: u64 = 10_000;

/// The longest `--window` or `--slide`: 100 years, beyond any event-time range a job
/// reads (event times are 1970..9999), so a larger one is a mistake, not a request.
pub const MAX_WINDOW: Duration = Duration::from_millis(100 * 366 * crate::time::DAY_MS);

fn max_line_bytes(text: &str) -> Result<usize, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if (1..=MAX_LINE_BYTES as u64).contains(&n) => Ok(n as usize),
        Ok(_) => Err(format!("must be 1..={MAX_LINE_BYTES} (1 GiB)")),
        Err(_) => Err("not a whole number of bytes".into()),
    }
}

impl WindowArgs {
    /// The windowing these flags describe, or a usage error.
    pub fn windowing(&self) -> Windowing {
        self.check().unwrap_or_else(|e| usage_error(&e));
        Windowing::from_flags(self.window, self.slide).unwrap_or_else(|e| usage_error(&e))
    }

    /// Checks the ranges: windows and slides of at most [`MAX_WINDOW`], and at most
    /// [`MAX_WINDOWS_PER_RECORD`] windows per record.
    pub fn check(&self) -> Result<(), String> {
        for (flag, d) in [("--window", self.window), ("--slide", self.slide)] {
            if let Some(d) = d.filter(|d| *d > MAX_WINDOW) {
                return Err(format!("{flag} {d} is longer than 100 years"));
            }
        }
        if let (Some(w), Some(s)) = (self.window, self.slide)
            && w.millis().div_ceil(s.millis().max(1)) > MAX_WINDOWS_PER_RECORD
        {
            return Err(format!(
                "--window {w} / --slide {s} puts each record in more than {MAX_WINDOWS_PER_RECORD} windows"
            ));
        }
        Ok(())
    }
}

/// Parses the command line like clap, but reports a bad flag or value in one line with exit code 2.
pub fn parse_or_exit<T: Parser>() -> T {
    T::try_parse().unwrap_or_else(|err| exit_on(err))
}

/// Like [`parse_or_exit`], for a command built at run time (such as `gen`'s, whose
/// subcommands come from the record registry).
pub fn parse_command_or_exit(command: clap::Command) -> clap::ArgMatches {
    match command.try_get_matches() {
        Ok(matches) => matches,
        Err(err) => exit_on(err),
    }
}

fn exit_on(err: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        err.exit();
    }
    // The first line, with the indented lines that complete it (the missing arguments
    // of "the following required arguments were not provided:").
    let text = err.to_string();
    let mut lines = text.lines();
    let mut message = lines.next().unwrap_or("invalid arguments").trim().to_owned();
    for more in lines.take_while(|l| l.starts_with("  ")) {
        message.push(' ');
        message.push_str(more.trim());
    }
    usage_error(message.strip_prefix("error: ").unwrap_or(&message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Parser, Debug)]
    #[command(disable_help_flag = true)]
    struct Test {
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn timely_flags_keep_timely_meaning() {
        let t = Test::try_parse_from(["x", "-w", "3", "-n", "2", "-p", "1", "--port-base", "9000"]).unwrap();
        let c = &t.common.cluster;
        assert_eq!((c.threads, c.processes, c.process), (3, 2, 1));
        assert_eq!(c.addresses().unwrap(), vec!["localhost:9000", "localhost:9001"]);
        assert!(Test::try_parse_from(["x", "-w", "0"]).is_err());
        let t = Test::try_parse_from(["x", "-n", "2", "-p", "2"]).unwrap();
        assert!(t.common.cluster.timely_config().unwrap_err().contains("out of range"));
    }

    #[test]
    fn extreme_line_limits_and_windows_are_usage_errors() {
        #[derive(Parser, Debug)]
        #[command(disable_help_flag = true)]
        struct Windowed {
            #[command(flatten)]
            common: CommonArgs,
            #[command(flatten)]
            window: WindowArgs,
        }
        let parse = |args: &[&str]| Windowed::try_parse_from([&["x"], args].concat());
        assert!(parse(&["--max-line-bytes", "100000000000"]).is_err());
        assert!(parse(&["--max-line-bytes", "0"]).is_err());
        assert_eq!(parse(&["--max-line-bytes", "1073741824"]).unwrap().common.max_line_bytes, 1 << 30);
        let check = |args: &[&str]| parse(args).unwrap().window.check();
        assert!(
            check(&["--window", "1d", "--slide", "1ms"]).unwrap_err().contains("more than 10000 windows")
        );
        assert!(check(&["--window", "100000d"]).unwrap_err().contains("longer than 100 years"));
        assert!(check(&["--window", "1h", "--slide", "100000d"]).is_err());
        assert!(check(&["--window", "10000s", "--slide", "1s"]).is_ok());
        assert!(check(&["--window", "36500d"]).is_ok());
    }

    #[test]
    fn hostfile_skips_comments_and_counts_lines() {
        let path = std::env::temp_dir().join(format!("kappa-hosts-{}", std::process::id()));
        std::fs::write(&path, "# cluster\nhost-a:2101\n\n  host-b:2101  # second\n").unwrap();
        let mut c = Test::try_parse_from(["x", "-n", "2"]).unwrap().common.cluster;
        c.hostfile = Some(path.clone());
        assert_eq!(c.addresses().unwrap(), vec!["host-a:2101", "host-b:2101"]);
        c.processes = 3;
        assert!(c.addresses().unwrap_err().contains("lists 2 address(es) but -n is 3"));
        std::fs::remove_file(path).unwrap();
    }
}
