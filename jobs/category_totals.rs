//! Per-category sales totals (amount, count, quantity, mean) over transactions.
//!
//! ```text
//! transactions ─► ingest ─► (category, totals) ─┬─ batch:       fold per window ─► table
//!                                               └─ incremental: updates ─► sum_total ─► changes
//! ```

use std::process::ExitCode;

use clap::Parser;
use compact_str::CompactString;
use timely::dataflow::operators::vec::Map;

use kappa::cli::{CommonArgs, Mode, WindowArgs, parse_or_exit};
use kappa::job::{self, JobSpec};
use kappa::jobs::category_totals::{CategoryRow, CategoryTotals};
use kappa::jobs::sales::Totals;
use kappa::operators::{Changes, Ingest, SumTotal, ToUpdates, WindowAggregate};
use kappa::record::transaction::TransactionCsv;
use kappa::sink::{Change, ReportDiags, WriteRows};

/// Per-category sales totals (amount, count, quantity, mean) over transactions.
///
/// With no arguments it runs over 100,000 seeded transactions generated in memory.
#[derive(Parser, Debug)]
#[command(version, disable_help_flag = true)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    window: WindowArgs,
}

fn main() -> ExitCode {
    let args: Args = parse_or_exit();
    let windowing = args.window.windowing();
    let spec = JobSpec::new("gen:transactions?count=100000&seed=42").snapshots(true);
    job::run(args.common, spec, move |df, job| {
        let (sales, diags) = df.inner.ingest::<TransactionCsv, _, _>(&job.ingest_windowed(windowing), |t| {
            (CompactString::from(&*t.product_category), Totals::one(t.total_amount, t.quantity))
        });
        diags.report(&job.out);
        match job.common.mode {
            Mode::Batch => sales
                .window_aggregate(windowing)
                .map(|(time, key, totals)| CategoryRow(CategoryTotals { time, key, totals }))
                .write_rows(&job.out),
            Mode::Incremental => df
                .collection(sales.to_updates(job.common.epoch, windowing))
                .sum_total()
                .changes()
                .map(|d| {
                    Change::new(
                        CategoryTotals { time: d.time, key: d.key, totals: d.value },
                        d.diff as i64,
                        d.at,
                    )
                })
                .write_rows(&job.out),
        }
    })
}
