//! The notebook's batch analytics over transactions, as one report kept up to date.
//!
//! ```text
//! transactions ─► ingest ─► sale ─┬─ batch:       fold per customer ─► merge on worker 0 ─► report
//!                                 └─ incremental: ((group, customer), totals) updates
//!                                                   ├─ count_total per group ─────────────┐
//!                                                   ├─ distinct customers ─► count_total ─┴─ join ─┐
//!                                                   └─ customer totals ─► top N (2 levels) ────────┴─► changes
//! ```
//!
//! Sections: sales by category, daily sales, top customers, payment methods, age
//! groups and overall totals (see `kappa::report` for the schema).

use std::cmp::Reverse;
use std::process::ExitCode;

use clap::Parser;
use compact_str::CompactString;
use differential_dataflow::operators::{CountTotal, ThresholdTotal};
use timely::dataflow::operators::vec::Map;

use kappa::cli::{CommonArgs, Mode, parse_or_exit};
use kappa::job::{self, JobSpec};
use kappa::operators::{Ingest, StampBy, ToUpdates, Windowing};
use kappa::record::transaction::TransactionCsv;
use kappa::report::{BatchReport, ReportChange, ReportRow, Sale, Section, WriteReport};
use kappa::sink::ReportDiags;
use kappa::time::Duration;
use kappa::totals::Totals;

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
    #[arg(long, value_name = "DURATION", value_parser = parse_positive)]
    emit_every: Option<Duration>,
}

fn parse_positive(text: &str) -> Result<Duration, String> {
    match text.parse::<Duration>()? {
        d if d.millis() == 0 => Err("must be greater than zero".into()),
        d => Ok(d),
    }
}

/// Customers are ranked in this many buckets first, so no step ranks them all at once.
const TOP_BUCKETS: u64 = 64;

fn main() -> ExitCode {
    let args: Args = parse_or_exit();
    let (top, all_customers) = (args.top, args.all_customers);
    let every = args.emit_every.unwrap_or(args.common.epoch);
    let spec = JobSpec { default_input: "gen:transactions?count=100000&seed=42" };
    job::run(args.common, spec, move |scope, job| {
        let (sales, diags) = scope.ingest::<TransactionCsv, _, _>(job.ingest(), |t| Sale {
            customer: CompactString::from(&*t.customer_id),
            category: CompactString::from(&*t.product_category),
            payment: CompactString::from(&*t.payment_method),
            age: t.customer_age,
            totals: Totals::one(t.total_amount, t.quantity),
        });
        diags.report(job);
        match job.common.mode {
            Mode::Batch => sales.batch_report(top, all_customers).write_report(job),
            Mode::Incremental => {
                // One update per (group, customer): its value is the difference.
                let by_customer = sales
                    .flat_map(|(sale, time)| {
                        let mut parts = Vec::with_capacity(6);
                        sale.for_each_group(time, |g| {
                            parts.push((((g, sale.customer.clone()), sale.totals), time));
                        });
                        parts
                    })
                    .to_updates(every, Windowing::Global)
                    .map(|(_window, group_customer)| group_customer);

                let totals = by_customer.clone().map(|(g, _)| g).count_total();
                let customers = by_customer.clone().distinct_total().map(|(g, _)| g).count_total();
                let groups = totals
                    .clone()
                    .join(customers)
                    .filter(move |(g, _)| g.section != Section::Customer || all_customers)
                    .map(|(g, (t, c))| row(g.section, 0, g.key, t, c as i64));

                let ranked = totals
                    .filter(|(g, _)| g.section == Section::Customer)
                    .map(|(g, t)| (bucket(&g.key), (Reverse(t.total), g.key, t)))
                    .reduce(move |_bucket, input, output| {
                        for (candidate, _) in input.iter().take(top) {
                            output.push(((*candidate).clone(), 1isize));
                        }
                    })
                    .map(|(_bucket, candidate)| ((), candidate))
                    .reduce(move |_, input, output| {
                        for (rank, (candidate, _)) in input.iter().take(top).enumerate() {
                            output.push(((rank as u32 + 1, (*candidate).clone()), 1isize));
                        }
                    })
                    .map(|((), (rank, (_, customer, t)))| row(Section::TopCustomers, rank, customer, t, 1));

                // The join sees its two inputs' changes at one time in separate
                // batches; consolidating drops the pairs that cancel in between.
                groups
                    .concat(ranked)
                    .consolidate()
                    .inner
                    .map(|(row, time, diff)| ReportChange {
                        row: ReportRow { time, ..row },
                        diff: diff as i64,
                    })
                    // Differential may send a change in a message stamped before its time.
                    .stamp_by(|change| change.row.time)
                    .write_report(job)
            }
        }
    })
}

/// A report row at time 0; incremental rows take the time of their change.
fn row(section: Section, rank: u32, key: CompactString, totals: Totals, customers: i64) -> ReportRow {
    ReportRow { time: 0, section, rank, key, totals, customers }
}

fn bucket(customer: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    customer.hash(&mut h);
    h.finish() % TOP_BUCKETS
}
