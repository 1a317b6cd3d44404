//! # kappa: one dataflow program for history and live data
//!
//! A kappa job is a timely dataflow program. The same code reads a bounded file of
//! history or an unbounded live input, on any number of worker threads, processes and
//! hosts, and produces the same results for the same records.
//!
//! ```text
//!  source ──► ingest ──────────────► job dataflow ─────────────► sinks
//!  (file,     (parse, reject,        (timely operators,          (CSV, table,
//!   gen)       event time → timely    differential collections)   JSON lines;
//!              time, watermark =                                  rejects file)
//!              frontier)
//! ```
//!
//! * **Time.** Every record carries its event time in milliseconds ([`time`]). Ingest
//!   sends records at a capability that trails the largest event time seen, so the
//!   frontier is the watermark. Windows ([`operators::window`]) close when the frontier
//!   passes their end and are reported exactly once.
//! * **Batch and incremental.** Batch mode folds with plain timely operators
//!   ([`operators::aggregate`]); incremental mode turns records into differential
//!   updates at their event-time epoch ([`operators::updates`]) and reports changes.
//! * **Money** is exact integer cents ([`money`]).
//! * **Determinism.** Sinks ([`sink`]) gather to worker 0 and write each complete
//!   timestamp sorted, so output bytes do not depend on `-w`, `-n` or delivery.

pub mod access;
pub mod cli;
pub mod clicks;
pub mod cluster;
pub mod fraud;
pub mod job;
pub mod metrics;
pub mod money;
pub mod operators;
pub mod record;
pub mod report;
pub mod sink;
pub mod source;
pub mod time;
pub mod totals;
