//! Renders benchmark results (`bench/results.csv`, as `scripts/bench.sh` writes them) as
//! one self-contained HTML page: a section per suite and figure, its configurations as
//! bars beside the table.
//!
//! ```text
//! results.csv ─► rows (suite, metric, config, value, unit, commit, date) ─► --format html
//! ```
//!
//! `bench_report [--input bench/results.csv] [--output bench/results.html]`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use kappa::exit::{EXIT_FAILURE, EXIT_USAGE, io_reason, program_name};
use kappa::sink::{Cell, Format, Layout, RowWriter, Tabular};

/// Benchmark results as an HTML page.
#[derive(Parser, Debug)]
#[command(name = "bench_report")]
struct Args {
    /// The results CSV: `date,commit,cores,cpu,load1,suite,config,metric,value,unit`.
    #[arg(long, default_value = "bench/results.csv")]
    input: PathBuf,
    /// Where the page goes; `-` is stdout.
    #[arg(long, default_value = "bench/results.html")]
    output: PathBuf,
}

/// One figure of one benchmark run.
#[derive(Debug, PartialEq, PartialOrd)]
struct Figure {
    suite: String,
    metric: String,
    unit: String,
    config: String,
    value: f64,
    commit: String,
    date: String,
}

impl Tabular for Figure {
    fn columns() -> Vec<&'static str> {
        vec!["suite", "metric", "config", "value", "unit", "commit", "date"]
    }
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend([
            Cell::Text(&self.suite),
            Cell::Text(&self.metric),
            Cell::Text(&self.config),
            Cell::Real(self.value),
            Cell::Text(&self.unit),
            Cell::Text(&self.commit),
            Cell::Text(&self.date),
        ]);
    }
    /// A table per suite and figure: the configurations compared.
    fn layout(&self, _changes: bool) -> Option<Layout> {
        let title = format!("{}: {} ({})", self.suite, self.metric, self.unit);
        let columns =
            vec![("config", "configuration"), ("value", "value"), ("commit", "commit"), ("date", "date")];
        Some(Layout { title, columns })
    }
}

/// The figures of `text`, sorted so that each suite and figure is one run of rows.
fn figures(text: &str) -> Result<Vec<Figure>, String> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let [date, commit, _, _, _, suite, config, metric, value, unit] = f[..] else {
            return Err(format!("line {}: expected 10 fields, found {}", n + 1, f.len()));
        };
        let value = value.parse().map_err(|_| format!("line {}: value '{value}' is not a number", n + 1))?;
        let owned = |s: &str| s.to_owned();
        rows.push(Figure {
            suite: owned(suite),
            metric: owned(metric),
            unit: owned(unit),
            config: owned(config),
            value,
            commit: owned(commit),
            date: owned(date),
        });
    }
    rows.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    Ok(rows)
}

fn main() -> ExitCode {
    let args = kappa::cli::parse_or_exit::<Args>();
    let name = program_name();
    let text = match std::fs::read_to_string(&args.input) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{name}: error: {}: {}", args.input.display(), io_reason(&e));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let rows = match figures(&text) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: error: {}: {e}", args.input.display());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let out = match kappa::sink::create(&args.output, "output") {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{name}: error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut writer = RowWriter::new(out, Format::Html, Figure::columns());
    if let Err(e) = writer.write_group(&rows).and_then(|()| writer.finish()) {
        eprintln!("{name}: error: writing {}: {}", args.output.display(), io_reason(&e));
        return ExitCode::from(EXIT_FAILURE);
    }
    ExitCode::SUCCESS
}
