//! Streaming anomaly detection per key, scored in event-time order.
//!
//! ```text
//! series   ─► ingest ─► by key ─► detector per key, in event-time order ─┬─► scores (results)
//!  or features (--detector distance)                                      ├─► episodes ─► --alerts
//!                                                                         ├─► drifts ─► --drifts
//!                                                                         └─► counts per key ─► summary
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
use timely::dataflow::operators::Concat;
use timely::dataflow::operators::vec::Map;

use kappa::cli::{CommonArgs, Mode, parse_or_exit};
use kappa::exit::usage_error;
use kappa::job::{self, JobSpec};
use kappa::jobs::anomalies::report::{IntoRejects, Summarize};
use kappa::jobs::anomalies::vector::{Vector, VectorOutput, VectorScoring};
use kappa::jobs::anomalies::{Detector, Labels, MULTIVARIATE, Output, Range, Scoring, nab};
use kappa::operators::{Ingest, KeyedOrdered};
use kappa::record::ParseError;
use kappa::record::features::{FeaturesCsv, Label, MAX_FEATURES};
use kappa::record::sensor::{DECIMALS, SensorFormat};
use kappa::record::series::{Reading, SeriesCsv};
use kappa::sink::{ReportDiags, WriteRows};
use kappa::source::InputSpec;

/// Anomaly scores per time series (`timestamp,value[,key]`, NAB's CSV), or per feature
/// vector (`timestamp,key,x1,…,xN[,label]`) with `--detector distance`, with alerts per
/// anomalous episode.
///
/// With no arguments it runs over 100,000 seeded readings of 100 series generated in
/// memory (with `--detector distance`, 100,000 labelled 5-feature samples of 10 keys).
#[derive(Parser, Debug)]
#[command(version, disable_help_flag = true)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// The detector: entropy (relative entropy, the default), cad (contextual anomaly
    /// detector, the accurate one), gaussian (windowed Gaussian) or distance (robust
    /// Mahalanobis distance over feature vectors, with drift detection).
    #[arg(long, value_name = "NAME", default_value = "entropy")]
    detector: String,
    /// A value whose score is at or above this is anomalous (default: the detector's,
    /// 0.5 for entropy, 0.75 for cad, 0.999 for gaussian and distance).
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
    /// recall and F1 per labelled key and overall. (Feature vectors carry their labels.)
    #[arg(long, value_name = "PATH")]
    labels: Option<PathBuf>,
    /// distance: what the records are: features (`timestamp,key,x1,…,xN[,label]`) or
    /// sensors (IoT readings: each sensor's five metrics, labelled by its anomaly column).
    #[arg(long, value_name = "KIND", value_enum, default_value_t = Record::Features)]
    record: Record,
    /// distance with --record features: features per sample; a line with another count
    /// is rejected.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=MAX_FEATURES as u64))]
    features: u64,
    /// Score records that repeat another's key, time and value(s) as values of their own
    /// (NAB scores the rows its files repeat) instead of rejecting them as duplicates.
    #[arg(long)]
    keep_duplicates: bool,
    /// distance: write one row per detected drift here: key, change point, test, statistic.
    #[arg(long, value_name = "PATH")]
    drifts: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args: Args = parse_or_exit();
    if args.common.mode == Mode::Incremental {
        usage_error("--mode incremental does not apply: each value is scored once, in event-time order");
    }
    let threshold = args.threshold.unwrap_or_else(|| Detector::default_threshold(&args.detector));
    if !(0.0..=1.0).contains(&threshold) {
        usage_error(&format!("--threshold {threshold}: must lie in [0, 1]"));
    }
    if args.detector == MULTIVARIATE {
        return vectors(args, threshold);
    }
    if args.drifts.is_some() {
        usage_error(&format!("--drifts applies to the {MULTIVARIATE} detector"));
    }
    let range = args.range.unwrap_or(Range::Learned);
    let detector = args.detector.clone();
    let rest = args.rest;
    if let Err(e) = Detector::with_rest(&detector, range, rest) {
        usage_error(&e);
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
    let keep_duplicates = args.keep_duplicates;
    let spec = JobSpec::new("gen:series?count=100000&seed=42&keys=100")
        .snapshots(true)
        .side("alerts", args.alerts.as_deref());
    job::run(args.common, spec, move |df, job| {
        let key = default_key.clone();
        let (points, diags) = df.inner.ingest_numbered::<SeriesCsv, _, _>(
            job.ingest(),
            move |p| {
                let k = p.key.as_deref().map_or_else(|| key.clone(), CompactString::from);
                Ok((k, (Reading(p.value), 0)))
            },
            |record, line| record.1.1 = line,
        );
        let detector = detector.clone();
        let out = points.keyed_ordered("Detect", move |k: &CompactString| {
            let d = Detector::with_rest(&detector, range, rest).expect("checked before the workers start");
            Scoring::new(k.clone(), d, threshold).keep_duplicates(keep_duplicates)
        });
        let scores = out.clone().flat_map(Output::score);
        let alerts = out.clone().flat_map(Output::alert);
        let duplicates = out.flat_map(Output::duplicate);
        let labels = labels.clone();
        scores
            .clone()
            .map(move |row| {
                let windows = labels.as_ref().as_ref().and_then(|l| l.windows(&row.key));
                let positive = windows.map(|w| w.iter().any(|&(s, e)| s <= row.time && row.time <= e));
                (row.key, row.anomaly, positive)
            })
            .summarize(quiet);
        diags.concat(duplicates.into_rejects(job.ingest())).report(&job.out);
        alerts.write_side(&job.out, "alerts");
        scores.write_rows(&job.out);
    })
}

/// The records `--detector distance` reads.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Record {
    /// `timestamp,key,x1,…,xN[,label]`.
    Features,
    /// IoT sensor readings, keyed by sensor.
    Sensors,
}

/// `--detector distance`: feature vectors, scored with drift detection.
fn vectors(args: Args, threshold: f64) -> ExitCode {
    if args.range.is_some() || args.rest.is_some() || args.labels.is_some() || args.key.is_some() {
        usage_error(&format!(
            "--range, --rest, --labels and --key apply to series; feature vectors name their keys and carry their labels (--detector {MULTIVARIATE})"
        ));
    }
    let record = args.record;
    if record == Record::Sensors && args.features != 5 {
        usage_error("--features does not apply to --record sensors: a reading has five metrics");
    }
    let features = args.features as usize;
    let quiet = args.common.quiet;
    let keep_duplicates = args.keep_duplicates;
    let default_input = match record {
        Record::Features => "gen:anomalies?count=100000&seed=42&keys=10",
        Record::Sensors => "gen:sensors?count=100000&seed=42&labels=true",
    };
    let spec = JobSpec::new(default_input)
        .snapshots(true)
        .side("alerts", args.alerts.as_deref())
        .side("drifts", args.drifts.as_deref());
    job::run(args.common, spec, move |df, job| {
        let (samples, diags) = match record {
            Record::Features => df.inner.ingest_numbered::<FeaturesCsv, _, _>(
                job.ingest(),
                move |s| {
                    if s.values.len() != features {
                        return Err(ParseError::from(format!(
                            "wrong feature count: expected {features} (--features), found {}",
                            s.values.len()
                        )));
                    }
                    let values = s.values.iter().map(|&v| Reading(v)).collect();
                    Ok((CompactString::from(s.key.as_ref()), (Vector { values, label: s.label }, 0)))
                },
                |record, line| record.1.1 = line,
            ),
            Record::Sensors => df.inner.ingest_numbered::<SensorFormat, _, _>(
                job.ingest(),
                |r| {
                    let values = r
                        .values
                        .iter()
                        .zip(DECIMALS)
                        .map(|(&v, d)| Reading(v as f64 / 10f64.powi(d as i32)))
                        .collect();
                    let label = r.anomaly.map(|a| if a { Label::Anomaly } else { Label::Normal });
                    Ok((CompactString::from(r.sensor_id.as_ref()), (Vector { values, label }, 0)))
                },
                |record, line| record.1.1 = line,
            ),
        };
        let out = samples.keyed_ordered("Detect", move |k: &CompactString| {
            VectorScoring::new(k.clone(), threshold).keep_duplicates(keep_duplicates)
        });
        let scores = out.clone().flat_map(VectorOutput::score);
        let alerts = out.clone().flat_map(VectorOutput::alert);
        let drifts = out.clone().flat_map(VectorOutput::drift);
        let duplicates = out.flat_map(VectorOutput::duplicate);
        scores.clone().map(|row| (row.key, row.anomaly, row.label.map(|l| l.is_anomaly()))).summarize(quiet);
        diags.concat(duplicates.into_rejects(job.ingest())).report(&job.out);
        alerts.write_side(&job.out, "alerts");
        drifts.write_side(&job.out, "drifts");
        scores.write_rows(&job.out);
    })
}
