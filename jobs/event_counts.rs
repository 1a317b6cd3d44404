//! Clickstream event counts, the notebook's Kafka consumer: events per type, revenue
//! from purchases, and a delivery check that every event read was either processed or
//! rejected.
//!
//! ```text
//! click events ─► ingest ─► (event_type, stats) ─┬─ batch:       fold per window ──────────┬─► rows
//!                   │                            └─ incremental: updates ─► sum_total ────┤
//!                   └─ ingest counts ─────────────► delivery check ◄─ events in the rows ─┘
//! ```

use std::process::ExitCode;

use clap::Parser;
use timely::dataflow::operators::Leave;
use timely::dataflow::operators::vec::Map;

use kappa::cli::{CommonArgs, Mode, WindowArgs, parse_or_exit};
use kappa::exit::{EXIT_FAILURE, program_name};
use kappa::job::{self, JobSpec};
use kappa::jobs::event_counts::{EventRow, EventStats};
use kappa::operators::delivery::{DeliveryCheck, copies_per_record};
use kappa::operators::{Changes, Ingest, SumTotal, ToUpdates, TrackDelivery, WindowAggregate};
use kappa::record::click::ClickJson;
use kappa::sink::{Change, ReportDiags, WriteRows};

/// Events per type and revenue from purchases over JSON-lines click events, checking
/// that every event read was processed or rejected.
///
/// With no arguments it runs over 100,000 seeded events generated in memory.
#[derive(Parser, Debug)]
#[command(version, disable_help_flag = true)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    window: WindowArgs,
    /// The delivery check also demands that exactly N records were read: the number a
    /// producer sent (`gen clicks --publish kafka://… --rows N`), so a message lost or
    /// delivered twice on the way fails it.
    #[arg(long, value_name = "N")]
    produced: Option<u64>,
}

fn main() -> ExitCode {
    let args: Args = parse_or_exit();
    let windowing = args.window.windowing();
    let (first, quiet, produced) = (args.common.cluster.process == 0, args.common.quiet, args.produced);
    let spec = JobSpec::new("gen:clicks?count=100000&seed=42");
    let check = DeliveryCheck::new();
    let delivery = check.clone();
    let code = job::run(args.common, spec, move |df, job| {
        let (events, diags) = df
            .inner
            .ingest::<ClickJson, _, _>(job.ingest(), |click| (click.event_type, EventStats::one(click)));
        diags.clone().report(&job.out);
        // How many events each result row accounts for, for the delivery check.
        let counted = match job.common.mode {
            Mode::Batch => {
                let rows = events.window_aggregate(windowing).map(|(time, event_type, stats)| EventRow {
                    time,
                    event_type,
                    stats,
                });
                let counted = rows.clone().map(|row| row.stats.count);
                rows.write_rows(&job.out);
                counted.leave(df.outer)
            }
            Mode::Incremental => {
                let changes =
                    df.collection(events.to_updates(job.common.epoch, windowing)).sum_total().changes().map(
                        |d| {
                            Change::new(
                                EventRow { time: d.time, event_type: d.key, stats: d.value },
                                d.diff as i64,
                                d.at,
                            )
                        },
                    );
                let counted = changes.clone().map(|change| change.diff * change.row.stats.count);
                changes.write_rows(&job.out);
                counted
            }
        };
        counted.track_delivery(diags.leave(df.outer), copies_per_record(windowing), &delivery);
    });
    if code != ExitCode::SUCCESS || !first {
        return code;
    }
    let checked = |d: kappa::operators::delivery::Delivery| match produced {
        Some(n) => d.check_produced(n),
        None => d.check(),
    };
    match check.delivery().map(|d| (d, checked(d))) {
        Some((d, Ok(processed))) => {
            if !quiet {
                eprintln!(
                    "delivery: {} records in = {processed} processed + {} rejected + {} late: ok",
                    d.counts.read, d.counts.rejected, d.counts.late
                );
            }
            ExitCode::SUCCESS
        }
        Some((_, Err(message))) => {
            eprintln!("{}: error: {message}", program_name());
            ExitCode::from(EXIT_FAILURE)
        }
        None => {
            eprintln!("{}: error: DELIVERY CHECK FAILED: the results never completed", program_name());
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
