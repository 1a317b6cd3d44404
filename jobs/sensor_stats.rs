//! IoT sensor statistics: several window sizes in one dataflow, per sensor, type, site
//! and overall.
//!
//! ```text
//! readings ─► ingest (metadata as of each reading's time; unknown sensors rejected)
//!          ─► fold per sensor and placement over the finest grid
//!          ─► per type / site / all / sensor ─┬─ windows 1m ─┐
//!                                             ├─ windows 5m ─┼─► table (rows carry the size)
//!                                             └─ …          ─┘
//!          ─► one event per (rule, sensor) ─► keyed ordered episodes ─► --alerts (start/end rows)
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use compact_str::CompactString;
use timely::dataflow::operators::vec::Map;

use kappa::cli::{CommonArgs, Mode, parse_or_exit};
use kappa::exit::usage_error;
use kappa::job::{self, JobSpec};
use kappa::jobs::sensor_stats::rules::{Episodes, parse_rules};
use kappa::jobs::sensor_stats::{Sensors, Ship, WindowSet, sensor_stats};
use kappa::operators::{Ingest, KeyedOrdered};
use kappa::record::sensor::{SensorFormat, parse_metadata};
use kappa::sink::{ReportDiags, WriteRows};
use kappa::time::Duration;

/// Statistics of IoT sensor readings (CSV or JSON lines) over several event-time window
/// sizes at once: count, mean, standard deviation, minimum and maximum of each metric and
/// the status distribution, per sensor, per type, per site and overall.
///
/// With no arguments it runs over 100,000 seeded readings of 100 sensors generated in memory.
#[derive(Parser, Debug)]
#[command(version, disable_help_flag = true)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Window sizes, all computed in one pass: tumbling, or sliding with --slide.
    #[arg(long, value_name = "SIZES", default_value = "1m,5m,15m,1h", help_heading = "Sensors")]
    windows: String,
    /// Start a window of each size every DURATION (sliding windows).
    #[arg(long, value_name = "DURATION", value_parser = kappa::time::positive_duration, help_heading = "Sensors")]
    slide: Option<Duration>,
    /// Sensor metadata (sensor_id,sensor_type,site[,latitude,longitude][,since]): adds
    /// per-type and per-site rows; a sensor listed again with a later `since` moves from
    /// that time on; readings of sensors not listed at their time are rejected.
    #[arg(long, value_name = "FILE", help_heading = "Sensors")]
    sensors: Option<std::path::PathBuf>,
    /// Alert rules, one per line: `NAME SEVERITY CONDITION` (see docs/sensor_stats.md).
    #[arg(long, value_name = "FILE", help_heading = "Sensors")]
    rules: Option<std::path::PathBuf>,
    /// Write alert episodes here: one row when an episode starts, one when it resolves.
    #[arg(long, value_name = "PATH", help_heading = "Sensors")]
    alerts: Option<std::path::PathBuf>,
    /// What each worker sends to the centre: its partial aggregates (edge
    /// pre-aggregation), or every reading (to measure what pre-aggregation saves).
    #[arg(long, value_enum, value_name = "WHAT", default_value = "partials", help_heading = "Sensors")]
    ship: Ship,
}

fn main() -> ExitCode {
    let args: Args = parse_or_exit();
    if args.common.mode == Mode::Incremental {
        usage_error("sensor_stats has no incremental mode: its windows are reported once, when they close");
    }
    // Checked here rather than by clap, whose one-line error would not name the flag.
    match (&args.rules, &args.alerts) {
        (Some(_), None) => usage_error("--rules needs --alerts PATH for the episodes it finds"),
        (None, Some(_)) => usage_error("--alerts needs --rules FILE"),
        _ => {}
    }
    let windows = WindowSet::parse(&args.windows, args.slide).unwrap_or_else(|e| usage_error(&e));
    let sensors = args.sensors.as_ref().map(|path| {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            usage_error(&format!("cannot read --sensors {}: {}", path.display(), kappa::exit::io_reason(&e)))
        });
        let metadata =
            parse_metadata(&text).unwrap_or_else(|e| usage_error(&format!("{}: {e}", path.display())));
        Arc::new(Sensors::new(&metadata))
    });
    let rules = args.rules.as_ref().map(|path| {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            usage_error(&format!("cannot read --rules {}: {}", path.display(), kappa::exit::io_reason(&e)))
        });
        Arc::new(parse_rules(&text).unwrap_or_else(|e| usage_error(&format!("{}: {e}", path.display()))))
    });
    let spec = JobSpec::new("gen:sensors?count=100000&seed=42")
        .snapshots(true)
        .side("alerts", args.alerts.as_deref());
    job::run(args.common, spec, move |df, job| {
        let known = sensors.clone();
        let (samples, diags) = df.inner.ingest_checked::<SensorFormat, _, _>(job.ingest(), move |r| {
            Sensors::sample(known.as_deref(), r)
        });
        if let Some(rules) = rules.clone() {
            let count = rules.len() as u32;
            samples
                .clone()
                .flat_map(move |(((sensor, _), values, status), time)| {
                    (0..count).map(move |i| (((i, sensor.clone()), (values, status)), time))
                })
                .keyed_ordered("SensorRules", move |(i, sensor): &(u32, CompactString)| {
                    Episodes::new(rules[*i as usize].clone(), sensor.clone())
                })
                .write_side(&job.out, "alerts");
        }
        sensor_stats(samples, &windows, sensors.clone(), args.ship).write_rows(&job.out);
        diags.report(&job.out);
    })
}
