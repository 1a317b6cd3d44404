//! One module per job: its rows and its composition of operators.
//!
//! Like differential's `algorithms/`, these modules compose the generic operators of
//! [`crate::operators`] into domain computations; the binaries in `jobs/` wire them to
//! ingest and sinks. A module is named after its job, so `jobs/ip_counts.rs` (the
//! binary) finds its logic in `kappa::jobs::ip_counts`.

pub mod anomalies;
pub mod category_totals;
pub mod ecommerce_report;
pub mod event_counts;
pub mod fraud_signals;
pub mod ip_counts;
pub mod pipeline;
pub mod sales;
pub mod sensor_stats;
