//! Live inputs: intake threads feed a bounded channel that workers drain without blocking.
//!
//! Each live input (stdin, tcp, tail) has intake threads that do the blocking reads, cut
//! lines and send them in batches through one bounded channel per process. After each
//! batch they wake the workers' ingest operators with `SyncActivator`s, so a worker never
//! blocks on I/O and parks when there is nothing to do. When the channel is full the
//! intake thread blocks on `send`, stops reading, and the kernel's socket buffer fills:
//! TCP backpressure reaches the sender, and memory stays bounded by the channel capacity.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use timely::scheduling::SyncActivator;

use super::lines::{Line, LineSplitter};

/// Batches the channel holds per process: with [`BATCH_BYTES`] this bounds intake memory.
pub const CHANNEL_BATCHES: usize = 64;
/// Bytes of lines per batch, at most (a single line may exceed it).
pub const BATCH_BYTES: usize = 256 << 10;
/// Lines per batch, at most.
pub const BATCH_LINES: usize = 4096;

/// Lines from one origin, in order.
#[derive(Debug, Default)]
pub struct Batch {
    /// Where the lines came from, e.g. `tcp:127.0.0.1:53122`.
    pub origin: Arc<str>,
    /// The 1-based line number of the first line within its origin.
    pub first_line: u64,
    /// The lines' bytes, back to back.
    pub data: Vec<u8>,
    /// Each line's end in `data` and, for an over-long line, its full length.
    pub ends: Vec<(usize, Option<u64>)>,
}

/// Workers to wake when a batch arrives or the input ends.
#[derive(Clone, Default)]
pub struct Wakers(Arc<Mutex<Vec<SyncActivator>>>);

impl Wakers {
    /// Adds a worker's ingest operator.
    pub fn register(&self, activator: SyncActivator) {
        self.0.lock().expect("wakers lock").push(activator);
    }

    /// Wakes every registered operator.
    pub fn wake_all(&self) {
        for a in self.0.lock().expect("wakers lock").iter() {
            let _ = a.activate();
        }
    }
}

/// The sending side of a process's live feed, cloned into every intake thread.
#[derive(Clone)]
pub struct Intake {
    /// Always `Some` until dropped; taken first in `drop` so the wake-up below sees the
    /// channel already disconnected.
    tx: Option<Sender<Batch>>,
    wakers: Wakers,
    stop: Arc<AtomicBool>,
}

impl Intake {
    /// Whether the job is stopping; intake threads should finish.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sends a batch, blocking while the channel is full. `false` once nobody listens.
    pub fn send(&self, batch: Batch) -> bool {
        let ok = self.tx.as_ref().is_some_and(|tx| tx.send(batch).is_ok());
        self.wakers.wake_all();
        ok
    }

    /// Reads `reader` to its end as lines from `origin`, in batches.
    pub fn pump(&self, origin: Arc<str>, reader: impl Read, max_line: usize) -> io::Result<()> {
        let mut splitter = LineSplitter::new(reader, 64 << 10, max_line);
        let mut batcher = Batcher::new(origin);
        loop {
            let more = splitter.next_block(|line| batcher.push(&line, self))?;
            batcher.flush(self);
            if !more || self.stopping() {
                return Ok(());
            }
        }
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        // The last intake to finish ends the feed: wake the workers so they see it.
        drop(self.tx.take());
        self.wakers.wake_all();
    }
}

/// Collects lines into batches and sends full ones.
pub struct Batcher {
    batch: Batch,
    next_line: u64,
}

impl Batcher {
    /// A batcher for lines from `origin`, numbered from 1.
    pub fn new(origin: Arc<str>) -> Self {
        Batcher { batch: Batch { origin, first_line: 1, ..Batch::default() }, next_line: 1 }
    }

    /// Restarts line numbering, e.g. after a rotated file is reopened.
    pub fn restart_numbering(&mut self, intake: &Intake) {
        self.flush(intake);
        self.next_line = 1;
        self.batch.first_line = 1;
    }

    /// Adds a line, sending the batch when it is full.
    pub fn push(&mut self, line: &Line<'_>, intake: &Intake) {
        self.batch.data.extend_from_slice(line.bytes);
        self.batch.ends.push((self.batch.data.len(), line.overlong));
        self.next_line += 1;
        if self.batch.data.len() >= BATCH_BYTES || self.batch.ends.len() >= BATCH_LINES {
            self.flush(intake);
        }
    }

    /// Sends what has been collected.
    pub fn flush(&mut self, intake: &Intake) {
        if self.batch.ends.is_empty() {
            return;
        }
        let origin = Arc::clone(&self.batch.origin);
        let full = std::mem::replace(
            &mut self.batch,
            Batch {
                origin,
                first_line: self.next_line,
                data: Vec::with_capacity(BATCH_BYTES / 4),
                ends: Vec::with_capacity(256),
            },
        );
        intake.send(full);
    }
}

/// The receiving side of a process's live feed, shared by its workers.
#[derive(Clone)]
pub struct Feed {
    rx: Receiver<Batch>,
    /// Workers to wake.
    pub wakers: Wakers,
}

impl Feed {
    /// Batches waiting in the channel now, of [`CHANNEL_BATCHES`]: how full the intake
    /// is. A channel that stays full means the dataflow is slower than the producer.
    pub fn queued(&self) -> usize {
        self.rx.len()
    }
}

/// A new feed and the intake handle that fills it.
pub fn feed(stop: Arc<AtomicBool>) -> (Feed, Intake) {
    let (tx, rx) = crossbeam_channel::bounded(CHANNEL_BATCHES);
    let wakers = Wakers::default();
    (Feed { rx, wakers: wakers.clone() }, Intake { tx: Some(tx), wakers, stop })
}

/// What a worker got from the feed.
pub enum Received {
    /// A batch was handed out.
    Batch,
    /// Nothing now; the worker will be woken.
    Empty,
    /// All intake threads have finished.
    Ended,
}

/// One worker's reader of the feed.
pub struct LiveReader {
    feed: Feed,
    origin: Arc<str>,
}

impl LiveReader {
    /// A reader of `feed`.
    pub fn new(feed: Feed) -> Self {
        LiveReader { feed, origin: Arc::from("") }
    }

    /// The feed's wakers, so the worker can register itself.
    pub fn wakers(&self) -> &Wakers {
        &self.feed.wakers
    }

    /// Hands out the lines of one batch, if one is waiting.
    pub fn next_block(&mut self, mut each: impl FnMut(Line<'_>)) -> Received {
        match self.feed.rx.try_recv() {
            Ok(batch) => {
                let mut start = 0;
                for (k, &(end, overlong)) in batch.ends.iter().enumerate() {
                    each(Line {
                        index: batch.first_line - 1 + k as u64,
                        bytes: &batch.data[start..end],
                        overlong,
                    });
                    start = end;
                }
                self.origin = batch.origin;
                Received::Batch
            }
            Err(TryRecvError::Empty) => Received::Empty,
            Err(TryRecvError::Disconnected) => Received::Ended,
        }
    }

    /// The origin of the last batch handed out.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}
