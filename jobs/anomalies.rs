//! Streaming anomaly detection per key, scored in event-time order.
//!
//! ```text
//! series ─► ingest ─► by key ─► detector per key, in event-time order ─┬─► scores (results)
//!                                                                       ├─► episodes ─► --alerts
//!                                                                       └─► counts per key ─► summary
//! ```
//!
//! Each key's detector sees its values in event-time order whatever the delivery, so
//! scores, alerts and the summary are the same for any `-w`, `-n`, `--epoch` or input
//! order. See `kappa::jobs::anomalies` for the rows and episodes, and its detector
//! modules for the methods; `docs/anomalies.md` for NAB scores.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use compact_str::CompactString;
use timely::dataflow::operators::vec::Map;

use kappa::cli::{CommonArgs, Mode, parse_or_exit};
use kappa::exit::{program_name, usage_error};
use kappa::job::{self, JobSpec};
use kappa::jobs::anomalies::{Detector, KeyCounts, Labels, Output, Range, Scoring, nab};
use kappa::operators::keyed::key_hash;
use kappa::operators::{FoldAtEnd, Ingest, KeyedOrdered};
use kappa::record::series::{Reading, SeriesCsv};
use kappa::sink::{ReportDiags, WriteRows};
use kappa::source::InputSpec;

/// Anomaly scores per time series (`timestamp,value[,key]`, NAB's CSV), with alerts per
/// anomalous episode.
///
/// With no arguments it runs over 100,000 seeded readings of 100 series generated in memory.
#[derive(Parser, Debug)]
#[command(version, disable_help_flag = true)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// The detector: entropy (relative entropy, the default), cad (contextual anomaly
    /// detector, the accurate one) or gaussian (windowed Gaussian).
    #[arg(long, value_name = "NAME", default_value = "entropy")]
    detector: String,
    /// A value whose score is at or above this is anomalous (default: the detector's,
    /// 0.5 for entropy, 0.75 for cad, 0.999 for gaussian).
    #[arg(long, value_name = "SCORE")]
    threshold: Option<f64>,
    /// cad: after a score of 0.75 or more, this many values score 0 (default 150; NAB
    /// gives a fifth of its probationary period, min(0.15 n, 750) / 5 for n rows).
    #[arg(long, value_name = "VALUES")]
    rest: Option<usize>,
    /// The values' range, given in advance as NAB does (per file); by default each
    /// key's detector learns it from the values so far.
    #[arg(long, value_name = "MIN:MAX", value_parser = Range::parse)]
    range: Option<Range>,
    /// The key of rows without a key column (default: the input file's name).
    #[arg(long, value_name = "NAME")]
    key: Option<String>,
    /// Write one row per anomalous episode here: key, start, end, points, peak score.
    #[arg(long, value_name = "PATH")]
    alerts: Option<PathBuf>,
    /// NAB's labelled windows (`combined_windows.json`): the summary adds precision,
    /// recall and F1 per labelled key and overall.
    #[arg(long, value_name = "PATH")]
    labels: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args: Args = parse_or_exit();
    if args.common.mode == Mode::Incremental {
        usage_error("--mode incremental does not apply: each value is scored once, in event-time order");
    }
    let range = args.range.unwrap_or(Range::Learned);
    let detector = args.detector.clone();
    let rest = args.rest;
    if let Err(e) = Detector::with_rest(&detector, range, rest) {
        usage_error(&e);
    }
    let threshold = args.threshold.unwrap_or_else(|| Detector::default_threshold(&detector));
    if !(0.0..=1.0).contains(&threshold) {
        usage_error(&format!("--threshold {threshold}: must lie in [0, 1]"));
    }
    let labels = args.labels.as_ref().map(|path| {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| usage_error(&format!("--labels {}: {e}", path.display())));
        Labels::new(
            &nab::parse_windows(&text)
                .unwrap_or_else(|e| usage_error(&format!("--labels {}: {e}", path.display()))),
        )
    });
    let labels = Arc::new(labels);
    let default_key = CompactString::from(args.key.clone().unwrap_or_else(|| match &args.common.input {
        Some(InputSpec::File(path)) => {
            path.file_name().map_or("series".into(), |f| f.to_string_lossy().into_owned())
        }
        _ => "series".into(),
    }));
    let quiet = args.common.quiet;
    let spec = JobSpec::new("gen:series?count=100000&seed=42&keys=100")
        .snapshots(true)
        .side("alerts", args.alerts.as_deref());
    job::run(args.common, spec, move |df, job| {
        let key = default_key.clone();
        let (points, diags) = df.inner.ingest::<SeriesCsv, _, _>(job.ingest(), move |p| {
            let k = p.key.as_deref().map_or_else(|| key.clone(), CompactString::from);
            (k, Reading(p.value))
        });
        let detector = detector.clone();
        let out = points.keyed_ordered("Detect", move |k: &CompactString| {
            let d = Detector::with_rest(&detector, range, rest).expect("checked before the workers start");
            Scoring::new(k.clone(), d, threshold)
        });
        let scores = out.clone().flat_map(|o| match o {
            Output::Score(s) => Some(s),
            Output::Alert(_) => None,
        });
        let alerts = out.flat_map(|o| match o {
            Output::Alert(a) => Some(a),
            Output::Score(_) => None,
        });
        let labels = labels.clone();
        scores
            .clone()
            .fold_at_end_by(
                "CountPerKey",
                |row| key_hash(&row.key),
                std::collections::BTreeMap::<CompactString, KeyCounts>::new(),
                move |counts, row| {
                    let windows = labels.as_ref().as_ref().and_then(|l| l.windows(&row.key));
                    counts
                        .entry(row.key.clone())
                        .or_insert_with(|| KeyCounts { key: row.key.clone(), ..Default::default() })
                        .add(&row, windows);
                },
                |counts| counts.into_values().collect::<Vec<_>>(),
            )
            .fold_at_end(
                "Summary",
                Vec::new(),
                |all, c| all.push(c),
                move |mut all: Vec<KeyCounts>| {
                    if !quiet {
                        print_summary(&mut all);
                    }
                    Vec::<()>::new()
                },
            );
        diags.report(&job.out);
        alerts.write_side(&job.out, "alerts");
        scores.write_rows(&job.out);
    })
}

/// Prints the anomaly counts, and with labels the evaluation per key and overall.
fn print_summary(all: &mut [KeyCounts]) {
    all.sort();
    let mut total = KeyCounts::default();
    for c in all.iter() {
        total.merge(c);
    }
    let name = program_name();
    eprintln!("{name}: {} of {} values anomalous over {} keys", total.anomalies, total.values, all.len());
    if total.labelled {
        for c in all.iter().filter(|c| c.labelled) {
            eprintln!("{name}: {}: {}", c.key, c.evaluation());
        }
        eprintln!("{name}: overall: {}", total.evaluation());
    }
}
