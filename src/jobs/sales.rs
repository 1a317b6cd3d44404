//! Sales totals, shared by the transaction jobs: an amount, a count and a quantity
//! that add up exactly.
//!
//! [`Totals`] is both the batch fold's value and differential's difference type, so the
//! two modes sum the same integers and a consolidated incremental output equals the
//! batch output by construction.

use differential_dataflow::difference::{IsZero, Monoid, Semigroup};
use serde::{Deserialize, Serialize};

use crate::money::Cents;

/// Amount, count and quantity of a group of transactions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Totals {
    /// Sum of amounts in cents: wide enough that no sum of parsed amounts wraps
    /// (see [`crate::money`]).
    pub total: i128,
    /// Number of transactions.
    pub count: i64,
    /// Sum of quantities.
    pub quantity: i64,
}

impl Totals {
    /// The totals of one transaction.
    pub fn one(amount: Cents, quantity: u32) -> Self {
        Totals { total: amount.0, count: 1, quantity: quantity as i64 }
    }
}

impl IsZero for Totals {
    fn is_zero(&self) -> bool {
        self.total == 0 && self.count == 0 && self.quantity == 0
    }
}

impl Semigroup for Totals {
    #[inline]
    fn plus_equals(&mut self, rhs: &Self) {
        self.total += rhs.total;
        self.count += rhs.count;
        self.quantity += rhs.quantity;
    }
}

impl Monoid for Totals {
    fn zero() -> Self {
        Totals::default()
    }
}
