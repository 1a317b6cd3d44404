//! Incremental update latency: how long differential takes to absorb a batch of new
//! records into totals over a large history and report the changed totals.
//!
//! ```text
//! cargo bench --bench incremental -- --key category --history 1000000 --batch 1000 --epochs 200
//! ```
//!
//! The dataflow is the one `category_totals --mode incremental` (and `ip_counts`) run
//! after ingest: keys with [`Totals`] as the difference, `count_total`, changes out.
//!
//! 1. **Initial load.** `--history` generated records (the same rows as
//!    `gen transactions --rows H` / `gen access-log --rows H`) are generated, parsed with
//!    the crate's parser and inserted at time 0; the load ends when the probe passes 0.
//!    This is timed separately and includes generating and parsing.
//! 2. **Epochs.** For each epoch the next `--batch` rows are generated and parsed
//!    *before* the clock starts; the clock covers inserting them, advancing the input and
//!    stepping until the probe passes the epoch, by which time `count_total` has emitted
//!    every changed total (counted by an `inspect`). The first `--warmup` epochs are not
//!    recorded.
//!
//! Prints one `RESULT key=value,...` line on worker 0 (times in microseconds).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use compact_str::CompactString;
use differential_dataflow::input::Input;
use differential_dataflow::operators::CountTotal;
use hdrhistogram::Histogram;

use kappa::jobs::sales::Totals;
use kappa::record::access_log::AccessLogFormat;
use kappa::record::registry::generator;
use kappa::record::transaction::TransactionCsv;
use kappa::record::{LineFormat, Timeline};

/// What to count.
#[derive(Clone, Copy, PartialEq)]
enum Key {
    /// Sales totals per product category (a handful of keys).
    Category,
    /// Requests per client host (tens of thousands of keys).
    Ip,
}

struct Args {
    key: Key,
    history: u64,
    batch: u64,
    epochs: u64,
    warmup: u64,
    workers: usize,
    seed: u64,
}

fn usage(message: &str) -> ! {
    eprintln!("incremental: {message}");
    eprintln!(
        "usage: incremental [--key category|ip] [--history N] [--batch B] [--epochs E] [--warmup W] [-w WORKERS] [--seed S]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        key: Key::Category,
        history: 1_000_000,
        batch: 1000,
        epochs: 200,
        warmup: 20,
        workers: 1,
        seed: 42,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // `cargo bench` passes `--bench` to harness-less benches.
        if flag == "--bench" {
            continue;
        }
        let value = it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let number = || {
            value.replace('_', "").parse::<u64>().unwrap_or_else(|_| usage(&format!("bad {flag} {value}")))
        };
        match flag.as_str() {
            "--key" => {
                args.key = match value.as_str() {
                    "category" => Key::Category,
                    "ip" => Key::Ip,
                    _ => usage(&format!("unknown key {value}")),
                }
            }
            "--history" => args.history = number(),
            "--batch" => args.batch = number().max(1),
            "--epochs" => args.epochs = number().max(1),
            "--warmup" => args.warmup = number(),
            "-w" | "--workers" => args.workers = number().max(1) as usize,
            "--seed" => args.seed = number(),
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    args
}

/// Generates and parses rows `[from, to)` that belong to `worker` of `peers`, handing
/// each record's key and totals to `each`.
struct Rows {
    key: Key,
    generator: Box<dyn kappa::record::RowGenerator>,
    line: Vec<u8>,
}

impl Rows {
    fn new(key: Key, seed: u64) -> Self {
        let kind = if key == Key::Category { "transactions" } else { "access-log" };
        Rows {
            key,
            generator: generator(kind, seed, Timeline::default_history(), &[]).expect("kind"),
            line: Vec::new(),
        }
    }

    fn each(
        &mut self,
        from: u64,
        to: u64,
        worker: usize,
        peers: usize,
        mut each: impl FnMut(CompactString, Totals),
    ) {
        let first = from + (worker as u64 + peers as u64 - from % peers as u64) % peers as u64;
        for index in (first..to).step_by(peers) {
            self.line.clear();
            self.generator.write_row(index, &mut self.line);
            let text = std::str::from_utf8(&self.line).expect("generated rows are UTF-8");
            let text = text.trim_end_matches('\n');
            match self.key {
                Key::Category => {
                    let t = TransactionCsv::parse(text).expect("generated transactions parse");
                    each(CompactString::from(&*t.product_category), Totals::one(t.total_amount, t.quantity));
                }
                Key::Ip => {
                    // A line the parser rejects is skipped, as the job would.
                    if let Ok(hit) = AccessLogFormat::parse(text) {
                        each(CompactString::from(hit.host), Totals { total: 0, count: 1, quantity: 0 });
                    }
                }
            }
        }
    }
}

fn main() {
    let args = parse_args();
    let config = timely::Config::process(args.workers);
    // Changed totals emitted by all workers. Worker 0 reads it after its probe passes an
    // epoch and before it advances, when every worker has emitted that epoch's changes.
    let changes = Arc::new(AtomicU64::new(0));
    let guards = timely::execute(config, move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let seen = changes.clone();
        let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, records) = scope.new_collection::<CompactString, Totals>();
            let (probe, _) = records
                .count_total()
                .inspect(move |_| {
                    seen.fetch_add(1, Ordering::Relaxed);
                })
                .probe();
            (input, probe)
        });

        let mut rows = Rows::new(args.key, args.seed);
        let started = Instant::now();
        // Step now and then so the arrangement's batcher consolidates as the history arrives.
        const CHUNK: u64 = 1 << 16;
        let mut from = 0;
        while from < args.history {
            let to = (from + CHUNK).min(args.history);
            rows.each(from, to, index, peers, |k, t| input.update(k, t));
            input.flush();
            worker.step();
            from = to;
        }
        input.advance_to(1);
        input.flush();
        worker.step_while(|| probe.less_than(input.time()));
        let load = started.elapsed();
        let load_changes = changes.load(Ordering::Relaxed);
        let mut warm_changes = load_changes;

        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
        let mut batch = Vec::with_capacity((args.batch as usize).div_ceil(peers));
        let mut next = args.history;
        for epoch in 0..args.warmup + args.epochs {
            batch.clear();
            rows.each(next, next + args.batch, index, peers, |k, t| batch.push((k, t)));
            next += args.batch;
            let clock = Instant::now();
            for (k, t) in batch.drain(..) {
                input.update(k, t);
            }
            input.advance_to(epoch + 2);
            input.flush();
            worker.step_while(|| probe.less_than(input.time()));
            let took = clock.elapsed().as_micros().max(1) as u64;
            if epoch + 1 == args.warmup {
                warm_changes = changes.load(Ordering::Relaxed);
            }
            if epoch >= args.warmup {
                histogram.record(took.min(histogram.high())).expect("in bounds");
            }
        }

        if index == 0 {
            let key = if args.key == Key::Category { "category" } else { "ip" };
            println!(
                "RESULT key={key},history={},batch={},workers={peers},load_us={},load_changes={load_changes},epochs={},warmup={},p50_us={},p99_us={},max_us={},mean_us={:.0},changes_per_epoch={:.1}",
                args.history,
                args.batch,
                load.as_micros(),
                args.epochs,
                args.warmup,
                histogram.value_at_quantile(0.5),
                histogram.value_at_quantile(0.99),
                histogram.max(),
                histogram.mean(),
                (changes.load(Ordering::Relaxed) - warm_changes) as f64 / args.epochs as f64,
            );
        }
    });
    if let Err(e) = guards.and_then(|g| g.join().into_iter().collect::<Result<Vec<_>, _>>()) {
        eprintln!("incremental: {e}");
        std::process::exit(1);
    }
}
