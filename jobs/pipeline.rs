//! The Keystone pipeline: playback events cleansed, transformed, aggregated, checked for
//! spikes and routed, each result stream to the sinks a routing file names.
//!
//! ```text
//! playback ─► ingest ─► dedup ─┬─► events ─────────────────────────────┐
//!    │                         ├─► viewers per title per 10 s ─────────┤
//!    │                         ├─► devices per minute ─► alerts ───────┤   routes (TOML):
//!    │                         ├─► sessions ─► buffering per hour ─────┼─► output, file:, dir:,
//!    │                         └─► plays per hour ⋈ titles ─► top ─────┤   postgres://, kafka://
//!    └─ rejects + duplicates ─────────────────────────────────────► dead_letters
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use kappa::cli::{CommonArgs, parse_or_exit};
use kappa::exit::{io_reason, usage_error};
use kappa::job::{self, JobSpec};
use kappa::jobs::pipeline::{Titles, cleanse, pipeline};
use kappa::operators::Ingest;
use kappa::record::playback::PlaybackJson;
use kappa::sink::ReportDiags;
use kappa::sink::route::{Route, Routes, Sink};

/// The result streams a routing file may name.
const STREAMS: [&str; 7] =
    ["events", "dead_letters", "viewers", "devices", "buffering", "alerts", "top_titles"];

/// Playback events through cleansing, enrichment, aggregation and spike detection, each
/// result stream routed to files, hour-partitioned folders, PostgreSQL tables, Kafka topics or --output.
///
/// With no arguments it runs over 100,000 seeded events generated in memory and writes
/// the per-device minutes to --output. Example routing file (docs/pipeline.md):
/// `viewers = ["dir:out/viewers", "postgres://postgres@127.0.0.1:5432/test?schema=keystone"]`
#[derive(Parser, Debug)]
#[command(version, disable_help_flag = true)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// The routing file (TOML): `STREAM = ["SINK", …]` for the streams events,
    /// dead_letters, viewers, devices, buffering, alerts, top_titles.
    #[arg(long, value_name = "FILE", help_heading = "Pipeline")]
    routes: Option<std::path::PathBuf>,
    /// The titles dimension (`title_id,name,genre` with a header); default: the
    /// generator's 200 titles.
    #[arg(long, value_name = "FILE", help_heading = "Pipeline")]
    titles: Option<std::path::PathBuf>,
}

fn read(path: &std::path::Path, what: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| usage_error(&format!("cannot read {what} {}: {}", path.display(), io_reason(&e))))
}

fn main() -> ExitCode {
    let args: Args = parse_or_exit();
    let mut routes = match &args.routes {
        Some(path) => Routes::parse(&read(path, "--routes"), &STREAMS)
            .unwrap_or_else(|e| usage_error(&format!("{}: {e}", path.display()))),
        None => Routes::parse("devices = [\"output\"]", &STREAMS).expect("the default route parses"),
    };
    routes.writes = args.common.cluster.process == 0;
    let titles = Arc::new(match &args.titles {
        Some(path) => Titles::parse(&read(path, "--titles"))
            .unwrap_or_else(|e| usage_error(&format!("{}: {e}", path.display()))),
        None => Titles::generated(),
    });
    // Databases are checked before any worker starts: a bad URL or a database that is
    // down is one line and exit code 2.
    if routes.writes {
        for db in routes.databases() {
            db.check().unwrap_or_else(|e| usage_error(&e));
        }
    }
    // After a restart from a snapshot the join gets again the plays its top titles' files
    // have not committed; other sinks do not say what they have committed, so a job that
    // routes top_titles to them reads its input again from the start instead.
    let output_is_file = kappa::sink::kafka::TopicUrl::parse(&args.common.output.to_string_lossy()).is_none();
    let snapshots = routes.streams.get("top_titles").into_iter().flatten().all(|sink| match sink {
        Sink::Output => output_is_file,
        Sink::File { .. } => true,
        Sink::Dir(_) | Sink::Postgres(_) | Sink::Topic { .. } => false,
    });
    let spec = JobSpec::new("gen:playback?count=100000&seed=42")
        .sides(routes.files())
        .results(routes.uses_output())
        .snapshots(snapshots);
    let routes = Arc::new(routes);
    job::run(args.common, spec, move |df, job| {
        let mut ingest = job.ingest().clone();
        // Rejected lines are dead letters: keep their text even without --rejects.
        ingest.keep_rejects = true;
        let known = Arc::clone(&titles);
        let (events, diags) =
            df.inner.ingest_checked::<PlaybackJson, _, _>(&ingest, move |p| cleanse(&known, p));
        diags.clone().report(&job.out);
        let s = pipeline(&df, events, diags, &titles);
        s.events.route(&job.out, &routes, "events");
        s.dead_letters.route(&job.out, &routes, "dead_letters");
        s.viewers.route(&job.out, &routes, "viewers");
        s.devices.route(&job.out, &routes, "devices");
        s.buffering.route(&job.out, &routes, "buffering");
        s.alerts.route(&job.out, &routes, "alerts");
        s.top_titles.route(&job.out, &routes, "top_titles");
    })
}
