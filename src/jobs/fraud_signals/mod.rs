//! Fraud signals over transactions, the `fraud_signals` job: the rules, the alert row
//! and the run's tally.
//!
//! Three rules, judged independently (a transaction can raise several alerts):
//!
//! * `high_amount`: amount strictly above `--high-amount` (1000.00); a fraud rule.
//! * `high_value`: amount strictly above `--high-value` (500.00); informational, as in
//!   the notebook, and not counted as fraud.
//! * `velocity`: a customer with at least `--velocity` transactions within any sliding
//!   `--velocity-window` of event time ([`velocity`]); a fraud rule,
//!   one alert per maximal burst.
//!
//! The fraud rate is the share of accepted transactions flagged by a fraud rule
//! (`high_amount` or a velocity burst), each transaction counted once.

pub mod velocity;

use std::fmt;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use timely::dataflow::Stream;

use crate::money::Cents;
use crate::operators::FoldAtEnd;
use crate::sink::{Cell, Tabular};
use crate::time::{EventTime, Millis};

/// The rule that raised an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Rule {
    /// Amount above the high-amount threshold.
    HighAmount,
    /// Amount above the high-value threshold.
    HighValue,
    /// Too many transactions of one customer in a short span.
    Velocity,
}

impl Rule {
    /// All rules, in output order.
    pub const ALL: [Rule; 3] = [Rule::HighAmount, Rule::HighValue, Rule::Velocity];

    /// The rule's name in output.
    pub fn name(self) -> &'static str {
        match self {
            Rule::HighAmount => "high_amount",
            Rule::HighValue => "high_value",
            Rule::Velocity => "velocity",
        }
    }

    /// Whether the rule marks its transactions as fraud.
    pub fn is_fraud(self) -> bool {
        self != Rule::HighValue
    }
}

/// One alert: a rule, a customer and the transactions involved.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FraudAlert {
    /// The event time at which the alert became certain: the transaction's time for
    /// amount rules, and the last transaction's time plus the window for velocity.
    pub time: Millis,
    /// The rule.
    pub rule: Rule,
    /// The customer.
    pub customer: CompactString,
    /// Event time of the first transaction involved.
    pub first: Millis,
    /// Event time of the last transaction involved.
    pub last: Millis,
    /// Sum of the amounts involved.
    pub amount: Cents,
    /// How many transactions are involved.
    pub transactions: u64,
    /// The transaction ids involved, space-separated, in event-time order (ties by id).
    pub transaction_ids: String,
    /// How many of them no other fraud alert flags (for the fraud rate; not printed).
    pub newly_flagged: u64,
}

impl Tabular for FraudAlert {
    fn columns() -> Vec<&'static str> {
        vec!["time", "rule", "customer_id", "first", "last", "transactions", "amount", "transaction_ids"]
    }

    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend([
            Cell::Time(self.time),
            Cell::Text(self.rule.name()),
            Cell::Text(&self.customer),
            Cell::Time(self.first),
            Cell::Time(self.last),
            Cell::Int(self.transactions as i64),
            Cell::Money(self.amount),
            Cell::Text(&self.transaction_ids),
        ]);
    }

    fn group_time(&self) -> Option<Millis> {
        Some(self.time)
    }
}

/// Counts behind the summary line: alerts per rule and flagged transactions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Accepted transactions.
    pub transactions: u64,
    /// Alerts per rule, in [`Rule::ALL`] order.
    pub alerts: [u64; 3],
    /// Transactions in velocity bursts.
    pub velocity_transactions: u64,
    /// Distinct transactions flagged by a fraud rule.
    pub flagged: u64,
}

impl Tally {
    /// Adds one alert.
    pub fn add(&mut self, alert: &FraudAlert) {
        self.alerts[alert.rule as usize] += 1;
        if alert.rule == Rule::Velocity {
            self.velocity_transactions += alert.transactions;
        }
        self.flagged += alert.newly_flagged;
    }

    /// Adds another tally.
    pub fn merge(&mut self, other: &Tally) {
        self.transactions += other.transactions;
        for (a, b) in self.alerts.iter_mut().zip(other.alerts) {
            *a += b;
        }
        self.velocity_transactions += other.velocity_transactions;
        self.flagged += other.flagged;
    }

    /// Flagged transactions per accepted transaction, in percent.
    pub fn fraud_rate(&self) -> f64 {
        if self.transactions == 0 { 0.0 } else { self.flagged as f64 * 100.0 / self.transactions as f64 }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "alerts:")?;
        for rule in Rule::ALL {
            write!(f, " {} {}", rule.name(), self.alerts[rule as usize])?;
            if rule == Rule::Velocity {
                write!(f, " ({} transactions)", self.velocity_transactions)?;
            }
            if rule != Rule::Velocity {
                write!(f, ",")?;
            }
        }
        write!(
            f,
            "; fraud rate {:.2}% ({} of {} transactions flagged)",
            self.fraud_rate(),
            self.flagged,
            self.transactions
        )
    }
}

/// Prints the run's [`Tally`] on stderr when the input ends.
pub trait PrintTally<'scope> {
    /// Adds up the tallies on worker 0 and prints them there, unless `quiet`.
    fn print_tally(self, quiet: bool);
}

impl<'scope, T: EventTime> PrintTally<'scope> for Stream<'scope, T, Vec<Tally>> {
    fn print_tally(self, quiet: bool) {
        self.fold_at_end(
            "PrintTally",
            Tally::default(),
            |total, t| total.merge(&t),
            move |total| {
                if !quiet {
                    eprintln!("{}: {total}", crate::exit::program_name());
                }
                Vec::<()>::new()
            },
        );
    }
}
