//! Scores anomaly results on the Numenta Anomaly Benchmark, with NAB's method.
//!
//! ```text
//! results (time,key,value,score,…) ─► rows per key, matched to NAB's files ─► sweep per profile ─► table
//! ```
//!
//! Reads the `anomalies` job's output (any CSV whose header names `time`, `key`, `value`
//! and `score`), checks that every file of the corpus is there with all its rows
//! (matched to the file's rows by time and value), and prints
//! per profile the best threshold, the raw score, the null and perfect baselines and the
//! normalised NAB score. The method is `kappa::jobs::anomalies::nab`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use kappa::cli::parse_or_exit;
use kappa::exit::usage_error;
use kappa::jobs::anomalies::nab::{self, Scored};

/// Scores `anomalies` results on NAB: best threshold and normalised score per profile.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The NAB corpus: a directory with data/, labels/combined_windows.json and
    /// config/profiles.json.
    #[arg(long, value_name = "DIR")]
    nab: PathBuf,
    /// Result files (CSV with a header naming time, key, value and score).
    #[arg(required = true, value_name = "RESULTS")]
    results: Vec<PathBuf>,
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| usage_error(&format!("{}: {e}", path.display())))
}

fn main() -> ExitCode {
    let args: Args = parse_or_exit();
    let windows = nab::parse_windows(&read(&args.nab.join("labels/combined_windows.json")))
        .unwrap_or_else(|e| usage_error(&e));
    let profiles = nab::parse_profiles(&read(&args.nab.join("config/profiles.json")))
        .unwrap_or_else(|e| usage_error(&e));
    let files = nab::corpus_files(&args.nab)
        .unwrap_or_else(|e| usage_error(&format!("{}: {e}", args.nab.join("data").display())));
    let mut rows: BTreeMap<&String, Vec<(u64, f64, f64)>> = BTreeMap::new();
    for path in &args.results {
        let text = read(path);
        let mut lines = text.lines().enumerate();
        let header: Vec<&str> = lines.next().map(|(_, h)| h.split(',').collect()).unwrap_or_default();
        let column = |name: &str| {
            header.iter().position(|h| *h == name).unwrap_or_else(|| {
                usage_error(&format!("{}: no '{name}' column in the header", path.display()))
            })
        };
        let (time, key) = (column("time"), column("key"));
        let (value, score) = (column("value"), column("score"));
        for (i, line) in lines {
            let fields: Vec<&str> = line.split(',').collect();
            let bad = |what: &str| -> ! { usage_error(&format!("{}:{}: {what}", path.display(), i + 1)) };
            let Some(k) = fields.get(key) else { bad("no key") };
            let Some(name) = nab::resolve(k, &files) else { bad(&format!("key '{k}' names no NAB file")) };
            let Some(t) = fields.get(time).and_then(|t| t.parse::<u64>().ok()) else { bad("bad time") };
            let Some(v) = fields.get(value).and_then(|v| v.parse::<f64>().ok()) else { bad("bad value") };
            let Some(s) = fields.get(score).and_then(|s| s.parse::<f64>().ok()) else { bad("bad score") };
            if !(0.0..=1.0).contains(&s) {
                bad("score outside [0, 1]");
            }
            rows.entry(name).or_default().push((t, v, s));
        }
    }
    let mut scored = Vec::with_capacity(files.len());
    for name in &files {
        let (times, values) = nab::read_series(&read(&args.nab.join("data").join(name)))
            .unwrap_or_else(|e| usage_error(&format!("{name}: {e}")));
        let got = rows.remove(name).unwrap_or_else(|| usage_error(&format!("no results for {name}")));
        let scores =
            nab::align(&times, &values, got).unwrap_or_else(|e| usage_error(&format!("{name}: {e}")));
        scored.push(Scored { name: name.clone(), times, scores });
    }
    println!("profile,threshold,raw,null,perfect,tp,fp,fn,score");
    for profile in &profiles {
        let s = nab::score(&scored, &windows, profile);
        println!(
            "{},{},{:.4},{:.4},{:.4},{},{},{},{:.2}",
            profile.name,
            s.best.threshold,
            s.best.raw,
            s.null,
            s.perfect,
            s.best.tp,
            s.best.fp,
            s.best.fn_,
            s.normalized
        );
    }
    ExitCode::SUCCESS
}
