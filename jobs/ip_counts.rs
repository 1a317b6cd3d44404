//! Access-log monitoring: requests per client host, alerts and the notebook's report.
//!
//! ```text
//! access log ─► ingest ─► hits ─┬─ (ip, 1) ─┬─ batch:       fold per window ─► [top K] ─► table
//!                               │           └─ incremental: updates ─► count_total ─► [top K] ─► changes
//!                               ├─ (ip, 1) per window, > N ─┐
//!                               ├─ 5xx at event time ───────┴─► --alerts
//!                               └─ facets ─► fold over all time ─► + parse errors ─► --report
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Parser;
use differential_dataflow::operators::CountTotal;
use timely::dataflow::operators::Concat;
use timely::dataflow::operators::vec::{Filter, Map};

use kappa::access::{Alert, Facet, Hit, IpCount, IpCountChange, Report};
use kappa::cli::{CommonArgs, Mode, WindowArgs, parse_or_exit, usage_error};
use kappa::job::{self, JobSpec};
use kappa::operators::ingest::Diag;
use kappa::operators::top::{TopK, TopPerTime};
use kappa::operators::window::GLOBAL_END;
use kappa::operators::{Ingest, StampBy, ToUpdates, WindowAggregate, Windowing};
use kappa::record::access_log::AccessLogFormat;
use kappa::sink::{ReportDiags, WriteRows};
use kappa::time::epoch_of;

/// Requests per client host in Apache access logs (common or combined format), with
/// suspicious-host and server-error alerts and the notebook's batch report.
///
/// With no arguments it runs over 100,000 seeded log lines generated in memory.
#[derive(Parser, Debug)]
#[command(version, disable_help_flag = true)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    window: WindowArgs,
    /// Only the K hosts with the most requests per window (ties by host); 0 for all.
    #[arg(long, value_name = "K", default_value_t = 0, help_heading = "Monitoring")]
    top: usize,
    /// Write alerts here: hosts with more than --suspicious requests in a window, and
    /// every 5xx response.
    #[arg(long, value_name = "PATH", help_heading = "Monitoring")]
    alerts: Option<PathBuf>,
    /// A host with more than N requests in one window is suspicious.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(i64).range(0..), help_heading = "Monitoring")]
    suspicious: i64,
    /// Write the notebook's batch analytics over the whole input here.
    #[arg(long, value_name = "PATH", help_heading = "Monitoring")]
    report: Option<PathBuf>,
}

type Output = Box<dyn Write + Send>;

/// A side output, created by process 0 only; its worker 0 takes it, as sinks gather there.
fn side_output(path: &Option<PathBuf>, process: u32, what: &str) -> Arc<Mutex<Option<Output>>> {
    let out = match path {
        Some(p) if process == 0 => match File::create(p) {
            Ok(f) => Some(Box::new(BufWriter::with_capacity(1 << 20, f)) as Output),
            Err(e) => usage_error(&format!(
                "cannot create {what} {}: {}",
                p.display(),
                kappa::source::io_reason(&e)
            )),
        },
        _ => None,
    };
    Arc::new(Mutex::new(out))
}

fn main() -> ExitCode {
    let args: Args = parse_or_exit();
    let windowing = args.window.windowing();
    let process = args.common.cluster.process;
    let alerts_out = side_output(&args.alerts, process, "alerts file");
    let report_out = side_output(&args.report, process, "report file");
    let (want_alerts, want_report) = (args.alerts.is_some(), args.report.is_some());
    let (top, suspicious) = (args.top, args.suspicious);
    let spec = JobSpec { default_input: "gen:access-log?count=100000&seed=42" };
    job::run(args.common, spec, move |scope, job| {
        let first = scope.index() == 0;
        let epoch = job.common.epoch;
        let (hits, diags) =
            scope.ingest::<AccessLogFormat, _, _>(job.ingest(), move |log| Hit::of(log, want_report));
        let per_ip = hits.clone().map(|(hit, time)| ((hit.ip, 1i64), time));

        // Requests per host and window: the main output.
        let windowed = match job.common.mode {
            Mode::Batch => {
                let counts = per_ip.clone().window_aggregate(windowing);
                let table = if top > 0 {
                    counts
                        .clone()
                        .map(|(time, ip, requests)| IpCount { time, ip, requests })
                        .top_per_time(top, IpCount::rank)
                } else {
                    counts.clone().map(|(time, ip, requests)| IpCount { time, ip, requests })
                };
                table.write_rows(job);
                Some(counts)
            }
            Mode::Incremental => {
                let counts = per_ip
                    .clone()
                    .to_updates(job.common.epoch, windowing)
                    .count_total()
                    .map(|((window, ip), requests)| (window, (-requests, ip)));
                let counts = if top > 0 { counts.top_k(top) } else { counts };
                counts
                    .inner
                    .stamp_by(|(_, time, _)| *time)
                    .map(|((window, (neg, ip)), time, diff)| IpCountChange {
                        // A window's count is reported with the window's end, like batch rows.
                        time: if window == GLOBAL_END { time } else { window },
                        ip,
                        requests: -neg,
                        diff: diff as i64,
                    })
                    .write_rows(job);
                None
            }
        };

        // Alerts: suspicious hosts per window, and every server error at its event time.
        if want_alerts {
            let counts = windowed.unwrap_or_else(|| per_ip.window_aggregate(windowing));
            let suspicious_hosts =
                counts.filter(move |(_, _, requests)| *requests > suspicious).map(Alert::suspicious);
            let server_errors = hits
                .clone()
                .filter(|(hit, _)| hit.status >= 500)
                // Each alert is written at its own epoch, whatever the delivery.
                .stamp_by(move |(_, time)| epoch_of(*time, epoch))
                .map(|(hit, time)| Alert::server_error(hit, time));
            let out = if first { alerts_out.lock().expect("alerts lock").take() } else { None };
            suspicious_hosts.concat(server_errors).write_rows_to(job, out);
        }

        // The notebook's report over the whole input, with the count of rejected lines.
        if want_report {
            let rejected = diags.clone().flat_map(|diag| match diag {
                Diag::Counts(counts) => Some(counts.rejected),
                _ => None,
            });
            let out = if first { report_out.lock().expect("report lock").take() } else { None };
            hits.flat_map(|(hit, time)| {
                let mut facets: Vec<((Facet, i64), u64)> = Vec::with_capacity(9);
                Facet::of(hit, |facet, n| facets.push(((facet, n), time)));
                facets
            })
            .window_aggregate(Windowing::Global)
            .report(rejected)
            .write_rows_to(job, out);
        }
        diags.report(job);
    })
}
