//! Access-log monitoring: requests per client host, alerts and the notebook's report.
//!
//! ```text
//! access log ─► ingest ─► hits ─┬─ (ip, 1) ─┬─ batch:       fold per window ─► [top K] ─► table
//!                               │           └─ incremental: updates ─► sum_total ─► [top K] ─► changes
//!                               ├─ (ip, 1) per window, > N ─┐
//!                               ├─ 5xx at event time ───────┴─► --alerts
//!                               ├─ unusual request lines at event time ─► --unusual
//!                               └─ facets ─► fold over all time ─► + parse errors ─► --report
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use timely::dataflow::operators::Concat;
use timely::dataflow::operators::vec::{Filter, Map};

use kappa::cli::{CommonArgs, Mode, WindowArgs, parse_or_exit};
use kappa::diag::Diag;
use kappa::job::{self, JobSpec};
use kappa::jobs::ip_counts::report::{Facet, LogReport};
use kappa::jobs::ip_counts::{Hit, IpAlert, IpCount, UnusualRequest};
use kappa::operators::window::GLOBAL_END;
use kappa::operators::{Ingest, StampBy, SumTotal, ToUpdates, TopK, TopPerTime, WindowAggregate, Windowing};
use kappa::record::access_log::AccessLogFormat;
use kappa::sink::{Change, ReportDiags, WriteRows};
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
    /// Write requests whose request line is not `METHOD URL PROTOCOL` (HTTP/0.9, `-`,
    /// probes) here. They count as requests everywhere; the report counts them too.
    #[arg(long, value_name = "PATH", help_heading = "Monitoring")]
    unusual: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args: Args = parse_or_exit();
    let windowing = args.window.windowing();
    let (want_alerts, want_report) = (args.alerts.is_some(), args.report.is_some());
    let want_unusual = args.unusual.is_some();
    let (top, suspicious) = (args.top, args.suspicious);
    let spec = JobSpec::new("gen:access-log?count=100000&seed=42")
        .snapshots(true)
        .side("alerts", args.alerts.as_deref())
        .side("report", args.report.as_deref())
        .side("unusual", args.unusual.as_deref());
    job::run(args.common, spec, move |df, job| {
        let epoch = job.common.epoch;
        let (hits, diags) =
            df.inner.ingest::<AccessLogFormat, _, _>(job.ingest(), move |log| Hit::of(log, want_report));
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
                table.write_rows(&job.out);
                Some(counts)
            }
            Mode::Incremental => {
                let counts = df
                    .collection(per_ip.clone().to_updates(job.common.epoch, windowing))
                    .sum_total()
                    .map(|((window, ip), requests)| (window, (-requests, ip)));
                let counts = if top > 0 { counts.top_k(top) } else { counts };
                counts
                    .inner
                    .map(|((window, (neg, ip)), at, diff)| {
                        // A window's count is reported with the window's end, like batch rows.
                        let time = if window == GLOBAL_END { at } else { window };
                        Change::new(IpCount { time, ip, requests: -neg }, diff as i64, at)
                    })
                    .write_rows(&job.out);
                None
            }
        };

        // Alerts: suspicious hosts per window, and every server error at its event time.
        if want_alerts {
            let counts = windowed.unwrap_or_else(|| per_ip.window_aggregate(windowing));
            let suspicious_hosts =
                counts.filter(move |(_, _, requests)| *requests > suspicious).map(IpAlert::suspicious);
            let server_errors = hits
                .clone()
                .filter(|(hit, _)| hit.status >= 500)
                // Each alert is written at its own epoch, whatever the delivery.
                .stamp_by(move |(_, time)| epoch_of(*time, epoch))
                .map(|(hit, time)| IpAlert::server_error(hit, time));
            suspicious_hosts.concat(server_errors).write_side(&job.out, "alerts");
        }

        // Requests with unusual request lines, each at its own epoch like server errors.
        if want_unusual {
            hits.clone()
                .filter(|(hit, _)| hit.unusual.is_some())
                .stamp_by(move |(_, time)| epoch_of(*time, epoch))
                .flat_map(|(hit, time)| UnusualRequest::of(hit, time))
                .write_side(&job.out, "unusual");
        }

        // The notebook's report over the whole input, with the count of rejected lines.
        if want_report {
            let rejected = diags.clone().flat_map(|diag| match diag {
                Diag::Counts(counts) => Some(counts.rejected),
                _ => None,
            });
            hits.flat_map(|(hit, time)| {
                let mut facets: Vec<((Facet, i128), u64)> = Vec::with_capacity(9);
                Facet::of(hit, |facet, n| facets.push(((facet, n), time)));
                facets
            })
            .window_aggregate(Windowing::Global)
            .log_report(rejected)
            .write_side(&job.out, "report");
        }
        diags.report(&job.out);
    })
}
