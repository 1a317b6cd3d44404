//! A harness for unit tests: run an operator on a few workers and collect its output.
//!
//! Worker 0 feeds batches of records, each at a time the input first advances to
//! (a watermark that moves as it goes). Before each batch is sent the workers run until
//! the output has caught up with the new time, so operators see every frontier between
//! batches, as they would in a job.

use std::sync::{Arc, Mutex};

use timely::ExchangeData;
use timely::dataflow::operators::{Input, Inspect, Probe};
use timely::dataflow::{InputHandleVec, Stream};

use crate::time::Millis;

/// Runs `build` over `input` on `workers` threads and returns every `(time, row)` it
/// emitted, sorted. Each batch `(time, records)` is sent at `time`, which must not
/// decrease from one batch to the next.
pub fn collect<D, R, F>(workers: usize, input: Vec<(Millis, Vec<D>)>, build: F) -> Vec<(Millis, R)>
where
    D: ExchangeData + Clone + Sync,
    R: ExchangeData + Clone + Ord,
    F: for<'s> Fn(Stream<'s, Millis, Vec<D>>) -> Stream<'s, Millis, Vec<R>> + Send + Sync + 'static,
{
    let seen: Arc<Mutex<Vec<(Millis, R)>>> = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    timely::execute(timely::Config::process(workers), move |worker| {
        let mut handle: InputHandleVec<Millis, D> = InputHandleVec::new();
        let sink = Arc::clone(&sink);
        let probe = worker.dataflow::<Millis, _, _>(|scope| {
            let (probe, _) = build(scope.input_from(&mut handle))
                .inspect_time(move |at, row: &R| sink.lock().expect("harness lock").push((*at, row.clone())))
                .probe();
            probe
        });
        if worker.index() == 0 {
            for (time, records) in input.iter() {
                if *time > *handle.time() {
                    handle.advance_to(*time);
                }
                // Let the operators see the new frontier before the batch arrives: until
                // the output catches up, or for a while if an operator holds it back on
                // purpose (a fold waits for the end of its input).
                for _ in 0..10_000 {
                    if !probe.less_than(handle.time()) {
                        break;
                    }
                    worker.step();
                }
                for r in records {
                    handle.send(r.clone());
                }
                handle.flush();
                worker.step();
            }
        }
        handle.close();
        while worker.step() {}
    })
    .expect("timely runs");
    let mut out = seen.lock().expect("harness lock").clone();
    out.sort();
    out
}
