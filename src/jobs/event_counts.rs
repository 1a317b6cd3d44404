//! Clickstream statistics, the rows of the `event_counts` job: events and revenue per
//! event type, adding up exactly.
//!
//! [`EventStats`] is both the batch fold's value and differential's difference type, so
//! the two modes sum the same integers and a consolidated incremental output equals the
//! batch output by construction (as with [`super::sales::Totals`]). Batch rows are
//! [`EventRow`]s; incremental rows are changes to them.

use differential_dataflow::difference::{IsZero, Monoid, Semigroup};
use serde::{Deserialize, Serialize};

use crate::money::Cents;
use crate::record::click::{Click, EventType};
use crate::sink::{Cell, Tabular};
use crate::time::Millis;

/// Number of events and the revenue they brought.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventStats {
    /// Number of events.
    pub count: i64,
    /// Revenue in cents: the amounts of purchases, wide enough that no sum wraps
    /// (see [`crate::money`]).
    pub revenue: i128,
}

impl EventStats {
    /// The statistics of one event.
    #[inline]
    pub fn one(click: &Click<'_>) -> Self {
        EventStats { count: 1, revenue: click.revenue().0 }
    }
}

impl IsZero for EventStats {
    fn is_zero(&self) -> bool {
        self.count == 0 && self.revenue == 0
    }
}

impl Semigroup for EventStats {
    #[inline]
    fn plus_equals(&mut self, rhs: &Self) {
        self.count += rhs.count;
        self.revenue += rhs.revenue;
    }
}

impl Monoid for EventStats {
    fn zero() -> Self {
        EventStats::default()
    }
}

/// An event type's statistics at a time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventRow {
    /// Batch: upper bound (exclusive) of the event times covered. Incremental: the
    /// time of the change.
    pub time: Millis,
    /// The event type.
    pub event_type: EventType,
    /// Its statistics.
    pub stats: EventStats,
}

impl Tabular for EventRow {
    fn current_key() -> &'static [&'static str] {
        &["event_type"]
    }

    fn columns() -> Vec<&'static str> {
        vec!["time", "event_type", "count", "revenue"]
    }
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend([
            Cell::Time(self.time),
            Cell::Text(self.event_type.name()),
            Cell::Int(self.stats.count),
            Cell::Money(Cents(self.stats.revenue)),
        ]);
    }
}
