//! # kappa: one dataflow program for history and live data
//!
//! A kappa job is a timely dataflow program. The same code reads a bounded file of
//! history or an unbounded live input, on any number of worker threads, processes and
//! hosts, and produces the same results for the same records.
//!
//! ```text
//!  source ──► ingest ──────────────► job dataflow ─────────────► sinks
//!  (file,     (parse, reject,        (timely operators,          (CSV, table,
//!   tcp,       event time, watermark  differential collections,   JSON lines;
//!   tail,      = frontier, late data) keyed ordered state)        rejects, late)
//!   gen)
//! ```
//!
//! Modules form layers, and imports point down only (a test checks it):
//!
//! ```text
//! jobs          one module per job: its rows and its composition of operators
//! job, cli, cluster, http   running a job: options, processes, the summary, the endpoint
//! sink          formats and destinations, ordered and deterministic
//! operators     reusable timely/differential operators, one extension trait per file
//! metrics       what a running job tells about itself
//! source        one file per input kind
//! record        one file per record kind: the type, its parser and its generator
//! time, money, exit, diag, spill, checkpoint   leaves everyone may use
//! ```
//!
//! * **Time.** Every record carries its event time in milliseconds ([`time`]). Ingest
//!   sends records at a capability that trails the largest event time seen, so the
//!   frontier is the watermark ([`operators::watermark`]). Windows
//!   ([`operators::window`]) close when the frontier passes their end and are reported
//!   exactly once.
//! * **Batch and incremental.** Batch mode folds with plain timely operators
//!   ([`operators::aggregate`]); incremental mode turns records into differential
//!   updates at their event-time epoch ([`operators::updates`]) and reports changes
//!   ([`sink::Change`]).
//! * **Money** is exact integer cents ([`money`]).
//! * **Determinism.** Sinks ([`sink`]) gather to worker 0 and write each complete
//!   timestamp sorted, so output bytes do not depend on `-w`, `-n` or delivery.

pub mod checkpoint;
pub mod cli;
pub mod cluster;
pub mod diag;
pub mod exit;
pub mod http;
pub mod job;
pub mod jobs;
pub mod metrics;
pub mod money;
pub mod operators;
pub mod record;
pub mod sink;
pub mod source;
pub mod spill;
pub mod time;
