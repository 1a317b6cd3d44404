//! The notebook's batch analytics over transactions, as one report kept up to date.
//!
//! ```text
//! transactions ─► ingest ─► sale ─┬─ batch:       fold per customer ─► merge on worker 0 ─► report
//!                                 └─ incremental: ((group, customer), totals) updates
//!                                                   └─ sum + distinct customers per group ─┬─────────────────────────┬─► changes
//!                                                                                          └─ customers ─► top N ─► ranks ─┘
//! ```
//!
//! Sections: sales by category, daily sales, top customers, payment methods, age
//! groups and overall totals (see `kappa::jobs::ecommerce_report` for the schema).

use std::process::ExitCode;

use clap::Parser;
use compact_str::CompactString;

use kappa::cli::{CommonArgs, Mode, parse_or_exit};
use kappa::job::{self, JobSpec};
use kappa::jobs::ecommerce_report::Sale;
use kappa::jobs::ecommerce_report::batch::BatchReport;
use kappa::jobs::ecommerce_report::incremental::IncrementalReport;
use kappa::jobs::sales::Totals;
use kappa::operators::Ingest;
use kappa::record::transaction::TransactionCsv;
use kappa::sink::{ReportDiags, WriteRows};
use kappa::time::{Duration, positive_duration};

/// E-commerce report: category, daily, top-customer, payment, age-group and overall sales.
///
/// With no arguments it runs over 100,000 seeded transactions generated in memory.
#[derive(Parser, Debug)]
#[command(version, disable_help_flag = true)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// How many customers `top_customers` ranks.
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,
    /// Also print every customer's spent and count (section `customer`).
    #[arg(long)]
    all_customers: bool,
    /// Incremental mode: report changes per this much event time (defaults to --epoch).
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    emit_every: Option<Duration>,
}

fn main() -> ExitCode {
    let args: Args = parse_or_exit();
    let (top, all_customers) = (args.top, args.all_customers);
    let every = args.emit_every.unwrap_or(args.common.epoch);
    let spec = JobSpec::new("gen:transactions?count=100000&seed=42").snapshots(true);
    job::run(args.common, spec, move |df, job| {
        let (sales, diags) = df.inner.ingest::<TransactionCsv, _, _>(job.ingest(), |t| Sale {
            customer: CompactString::from(&*t.customer_id),
            category: CompactString::from(&*t.product_category),
            payment: CompactString::from(&*t.payment_method),
            age: t.customer_age,
            totals: Totals::one(t.total_amount, t.quantity),
        });
        diags.report(&job.out);
        match job.common.mode {
            Mode::Batch => sales.batch_report(top, all_customers).write_rows(&job.out),
            Mode::Incremental => {
                sales.incremental_report(df.outer, every, top, all_customers).write_rows(&job.out)
            }
        }
    })
}
