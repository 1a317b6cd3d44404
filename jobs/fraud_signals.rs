//! The real-time fraud pipeline over transactions: amount rules and a velocity rule.
//!
//! ```text
//! transactions ─► ingest ─┬─ amount > thresholds ──► stamp at event time ─┬─► fraud alerts (+ high_value
//!                         ├─ by customer ─► velocity (sliding, watermark) ─┤   with --informational)
//!                         └─ counts ───────────────────────────────────────┴─► tally on stderr
//! ```
//!
//! Alerts come out in event-time order, each once, the same for any worker count,
//! process count or delivery. See `kappa::jobs::fraud_signals` for the rules and
//! `kappa::jobs::fraud_signals::velocity` for the exact velocity definition.

use std::process::ExitCode;

use clap::Parser;
use compact_str::CompactString;
use timely::dataflow::operators::Concat;
use timely::dataflow::operators::vec::{Filter, Map};

use kappa::cli::{CommonArgs, Mode, parse_or_exit};
use kappa::diag::Diag;
use kappa::exit::usage_error;
use kappa::job::{self, JobSpec};
use kappa::jobs::fraud_signals::velocity::Velocity;
use kappa::jobs::fraud_signals::{FraudAlert, PrintTally, Rule, Tally};
use kappa::money::Cents;
use kappa::operators::Ingest;
use kappa::record::transaction::TransactionCsv;
use kappa::sink::{ReportDiags, WriteRows};
use kappa::time::{Duration, positive_duration};

/// Fraud alerts over transactions: high amounts, high values and velocity bursts.
///
/// With no arguments it runs over 100,000 seeded transactions generated in memory.
#[derive(Parser, Debug)]
#[command(version, disable_help_flag = true)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Alert (as fraud) on a transaction whose amount is above this.
    #[arg(long, value_name = "MONEY", default_value = "1000.00", value_parser = parse_money)]
    high_amount: Cents,
    /// Count (informational) a transaction whose amount is above this.
    #[arg(long, value_name = "MONEY", default_value = "500.00", value_parser = parse_money)]
    high_value: Cents,
    /// Also write the informational high_value alerts (always counted in the tally).
    #[arg(long)]
    informational: bool,
    /// Alert (as fraud) on a customer with at least N transactions within --velocity-window.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    velocity: u32,
    /// The sliding span of event time for --velocity.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = positive_duration)]
    velocity_window: Duration,
}

fn parse_money(text: &str) -> Result<Cents, String> {
    Cents::parse(text.trim().as_bytes()).map_err(|e| format!("'{text}': {e}"))
}

/// What the dataflow keeps of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
struct Txn {
    id: CompactString,
    customer: CompactString,
    amount: Cents,
}

fn main() -> ExitCode {
    let args: Args = parse_or_exit();
    if args.common.mode == Mode::Incremental {
        // Alerts are only ever added, so a change stream would repeat them with diff 1.
        usage_error(
            "--mode incremental does not apply: alerts are reported once each, as the watermark passes them",
        );
    }
    let (high_amount, high_value, informational) = (args.high_amount, args.high_value, args.informational);
    let (n, span) = (args.velocity as usize, args.velocity_window);
    let spec = JobSpec::new("gen:transactions?count=100000&seed=42").snapshots(true);
    job::run(args.common, spec, move |df, job| {
        let (txns, diags) = df.inner.ingest::<TransactionCsv, _, _>(job.ingest(), |t| Txn {
            id: CompactString::from(&*t.transaction_id),
            customer: CompactString::from(&*t.customer_id),
            amount: t.total_amount,
        });

        let amount_alerts = txns.clone().flat_map(move |(t, time)| {
            let rules = [(Rule::HighAmount, high_amount), (Rule::HighValue, high_value)];
            rules
                .into_iter()
                .filter(move |(_, limit)| t.amount > *limit)
                .map(move |(rule, _)| single(rule, &t, time, high_amount))
                .collect::<Vec<_>>()
        });

        let velocity_alerts = txns
            .map(|(t, time)| ((t.customer.clone(), (t.id, t.amount)), time))
            .velocity(n, span)
            .map(move |burst| {
                let newly_flagged =
                    burst.events.iter().filter(|(_, (_, a))| *a <= high_amount).count() as u64;
                let ids: Vec<&str> = burst.events.iter().map(|(_, (id, _))| id.as_str()).collect();
                FraudAlert {
                    time: burst.last() + span.millis(),
                    rule: Rule::Velocity,
                    first: burst.first(),
                    last: burst.last(),
                    amount: Cents(burst.events.iter().map(|(_, (_, a))| a.0).sum()),
                    transactions: burst.events.len() as u64,
                    transaction_ids: ids.join(" "),
                    newly_flagged,
                    customer: burst.key,
                }
            });

        let alerts = amount_alerts.concat(velocity_alerts);
        let accepted = diags.clone().flat_map(|d| match d {
            Diag::Counts(c) => Some(Tally { transactions: c.accepted, ..Tally::default() }),
            _ => None,
        });
        alerts
            .clone()
            .map(|a| {
                let mut t = Tally::default();
                t.add(&a);
                t
            })
            .concat(accepted)
            .print_tally(job.common.quiet);
        diags.report(&job.out);
        // Most transactions pass the informational rule: its rows only when asked for.
        alerts.filter(move |a| informational || a.rule.is_fraud()).write_rows(&job.out);
    })
}

/// An amount rule's alert on one transaction.
fn single(rule: Rule, t: &Txn, time: u64, high_amount: Cents) -> FraudAlert {
    FraudAlert {
        time,
        rule,
        customer: t.customer.clone(),
        first: time,
        last: time,
        amount: t.amount,
        transactions: 1,
        transaction_ids: t.id.to_string(),
        // An amount above the high-amount limit is flagged by that rule's alert.
        newly_flagged: u64::from(rule == Rule::HighAmount && t.amount > high_amount),
    }
}
