//! Live inputs: intake threads feed a bounded channel that workers drain without blocking.
//!
//! Each live input (stdin, tcp, tail) has intake threads that do the blocking reads, cut
//! lines and send them in batches through one bounded channel per process. After each
//! batch they wake the workers' ingest operators with `SyncActivator`s, so a worker never
//! blocks on I/O and parks when there is nothing to do. When the channel is full the
//! intake thread blocks on `send`, stops reading, and the kernel's socket buffer fills:
//! TCP backpressure reaches the sender, and memory stays bounded by the channel capacity.
//!
//! A stop (SIGINT, SIGTERM) loses nothing that was read. Intake threads never block on
//! a read for longer than [`WAIT`], so each notices the stop within that time, reads no
//! more, hands out an unterminated line it holds as truncated, sends what it has and
//! finishes. The workers go on draining the channel until the last intake thread has
//! finished and the channel is empty: every line taken from stdin or a socket is
//! counted, as read and then accepted, rejected or late.
//!
//! With `--checkpoint` the intake is journaled ([`Intake::journaled`]): every batch is
//! appended to the checkpoint's journal before it enters the channel, under one lock so
//! the journal's order is the channel's. A restarted job first feeds the journal's
//! batches again, then lets new ones in. Lost on a kill: what an intake thread has
//! read but not yet sent (at most one batch per connection); a tcp client learns of
//! the kill only as a broken connection.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use timely::scheduling::SyncActivator;

use super::lines::{Flaw, LastLine, Line, LineSplitter};
use crate::checkpoint::Journal;
use crate::exit::write_failed;

/// Batches the channel holds per process: with [`BATCH_BYTES`] this bounds intake memory.
pub const CHANNEL_BATCHES: usize = 64;
/// Bytes of lines per batch, at most (a single line may exceed it).
pub const BATCH_BYTES: usize = 256 << 10;
/// Lines per batch, at most.
pub const BATCH_LINES: usize = 4096;
/// Bytes an intake thread reads at once from stdin or a tcp connection.
pub const PUMP_BLOCK: usize = 64 << 10;
/// The longest an intake thread waits for data before it looks at the stop flag again.
pub const WAIT: Duration = Duration::from_millis(50);

/// A descriptor read with waits of at most [`WAIT`]: a read that finds no data in that
/// time fails with `WouldBlock`, which the line splitter takes for "nothing yet".
pub struct Waiting<R>(pub R);

impl<R: Read + AsRawFd> Read for Waiting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut fd = libc::pollfd { fd: self.0.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: `fd` is one valid pollfd that outlives the call.
        let ready = unsafe { libc::poll(&mut fd, 1, WAIT.as_millis() as libc::c_int) };
        match ready {
            0 => Err(io::ErrorKind::WouldBlock.into()),
            // EINTR comes back as `Interrupted`, which the splitter retries.
            n if n < 0 => Err(io::Error::last_os_error()),
            // Readable, at end of file, or an error that the read will report.
            _ => self.0.read(buf),
        }
    }
}

/// Standard input as a file of its own (a duplicated descriptor), read around std's
/// buffer: bytes in that buffer would be invisible to `poll`.
pub fn stdin() -> io::Result<File> {
    Ok(File::from(io::stdin().as_fd().try_clone_to_owned()?))
}

/// Lines from one origin, in order.
#[derive(Debug, Default)]
pub struct Batch {
    /// Where the lines came from, e.g. `tcp:127.0.0.1:53122`.
    pub origin: Arc<str>,
    /// The 1-based line number of the first line within its origin.
    pub first_line: u64,
    /// The lines' bytes, back to back.
    pub data: Vec<u8>,
    /// Each line's end in `data` and its flaw, if it has one.
    pub ends: Vec<(usize, Option<Flaw>)>,
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
    journal: Option<Arc<Journaled>>,
}

/// The journal of a live input, and whether its earlier entries have been fed again.
struct Journaled {
    state: Mutex<(Journal, bool)>,
    replayed: Condvar,
}

/// A journal entry's first byte: a batch of lines.
const ENTRY_BATCH: u8 = 0;
/// A journal entry's first byte: a tcp connection was accepted.
const ENTRY_ACCEPTED: u8 = 1;

impl Intake {
    /// Whether the job is stopping; intake threads should finish.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sends a batch, blocking while the channel is full. `false` once nobody listens.
    pub fn send(&self, batch: Batch) -> bool {
        let ok = match &self.journal {
            Some(j) => {
                let mut entry = vec![ENTRY_BATCH];
                encode(&batch, &mut entry);
                let mut state = j.wait_replayed();
                if let Err(e) = state.0.append(&entry) {
                    write_failed("the checkpoint's journal", &e);
                }
                // Still locked: the channel takes batches in the journal's order.
                self.tx.as_ref().is_some_and(|tx| tx.send(batch).is_ok())
            }
            None => self.tx.as_ref().is_some_and(|tx| tx.send(batch).is_ok()),
        };
        self.wakers.wake_all();
        ok
    }

    /// Notes in the journal (if any) that a tcp connection was accepted, so a restarted
    /// job counts it towards `?clients=N` and `--until-eof`.
    pub fn accepted(&self) {
        if let Some(j) = &self.journal
            && let Err(e) = j.wait_replayed().0.append(&[ENTRY_ACCEPTED])
        {
            write_failed("the checkpoint's journal", &e);
        }
    }

    /// This intake, journaled: `entries` (what the journal held) are fed again first, on
    /// a thread of their own; new batches wait for them. Returns the intake and how many
    /// tcp connections the journal says were accepted.
    pub fn journaled(mut self, journal: Journal, entries: Vec<Vec<u8>>) -> io::Result<(Intake, usize)> {
        let journaled = Arc::new(Journaled { state: Mutex::new((journal, false)), replayed: Condvar::new() });
        let mut batches = Vec::new();
        let mut accepted = 0;
        for entry in &entries {
            match entry.split_first() {
                Some((&ENTRY_BATCH, rest)) => batches.push(decode(rest).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "the checkpoint's journal is damaged")
                })?),
                Some((&ENTRY_ACCEPTED, _)) => accepted += 1,
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the checkpoint's journal is damaged",
                    ));
                }
            }
        }
        let replayer = self.clone();
        let done = Arc::clone(&journaled);
        std::thread::Builder::new().name("kappa-journal".into()).spawn(move || {
            for batch in batches {
                if replayer.tx.as_ref().is_none_or(|tx| tx.send(batch).is_err()) {
                    break;
                }
                replayer.wakers.wake_all();
            }
            done.state.lock().expect("journal lock").1 = true;
            done.replayed.notify_all();
        })?;
        self.journal = Some(journaled);
        Ok((self, accepted))
    }

    /// Reads `reader` to its end, or until the job stops, as lines from `origin`, in
    /// batches; `last` says what an unterminated last line is at the end. On a stop, a
    /// line cut short is handed out as truncated, so what was read is all counted.
    pub fn pump(
        &self,
        origin: Arc<str>,
        reader: impl Read + AsRawFd,
        max_line: usize,
        last: LastLine,
    ) -> io::Result<()> {
        let mut splitter = LineSplitter::new(Waiting(reader), PUMP_BLOCK, max_line).last_line(last);
        let mut batcher = Batcher::new(origin);
        loop {
            let more = splitter.next_block(|line| batcher.push(&line, self))?;
            let stopping = self.stopping();
            if more && stopping {
                splitter.cut(|line| batcher.push(&line, self));
            }
            batcher.flush(self);
            if !more || stopping {
                return Ok(());
            }
        }
    }
}

impl Journaled {
    /// The journal, once its earlier entries have all been fed again.
    fn wait_replayed(&self) -> std::sync::MutexGuard<'_, (Journal, bool)> {
        let mut state = self.state.lock().expect("journal lock");
        while !state.1 {
            state = self.replayed.wait(state).expect("journal lock");
        }
        state
    }
}

/// Appends `batch` to `out`: origin, first line, each line's end and flaw, the bytes.
fn encode(batch: &Batch, out: &mut Vec<u8>) {
    out.extend_from_slice(&(batch.origin.len() as u32).to_le_bytes());
    out.extend_from_slice(batch.origin.as_bytes());
    out.extend_from_slice(&batch.first_line.to_le_bytes());
    out.extend_from_slice(&(batch.ends.len() as u32).to_le_bytes());
    for &(end, flaw) in &batch.ends {
        out.extend_from_slice(&(end as u64).to_le_bytes());
        match flaw {
            None => out.push(0),
            Some(Flaw::Truncated) => out.push(1),
            Some(Flaw::TooLong(n)) => {
                out.push(2);
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
    }
    out.extend_from_slice(&batch.data);
}

/// The batch [`encode`] wrote, or `None` if the bytes are not one.
fn decode(mut bytes: &[u8]) -> Option<Batch> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (bytes.get(..n)?, bytes.get(n..)?);
        *bytes = rest;
        Some(head)
    }
    let u32_at = |b: &mut &[u8]| take(b, 4).map(|x| u32::from_le_bytes(x.try_into().expect("4")) as usize);
    let u64_at = |b: &mut &[u8]| take(b, 8).map(|x| u64::from_le_bytes(x.try_into().expect("8")));
    let len = u32_at(&mut bytes)?;
    let origin: Arc<str> = Arc::from(std::str::from_utf8(take(&mut bytes, len)?).ok()?);
    let first_line = u64_at(&mut bytes)?;
    let lines = u32_at(&mut bytes)?;
    let mut ends = Vec::with_capacity(lines);
    for _ in 0..lines {
        let end = u64_at(&mut bytes)? as usize;
        let flaw = match take(&mut bytes, 1)?[0] {
            0 => None,
            1 => Some(Flaw::Truncated),
            2 => Some(Flaw::TooLong(u64_at(&mut bytes)?)),
            _ => return None,
        };
        ends.push((end, flaw));
    }
    let data = bytes.to_vec();
    ends.iter().all(|&(end, _)| end <= data.len()).then_some(Batch { origin, first_line, data, ends })
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
        self.batch.ends.push((self.batch.data.len(), line.flaw));
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
    (Feed { rx, wakers: wakers.clone() }, Intake { tx: Some(tx), wakers, stop, journal: None })
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
                for (k, &(end, flaw)) in batch.ends.iter().enumerate() {
                    each(Line {
                        index: batch.first_line - 1 + k as u64,
                        bytes: &batch.data[start..end],
                        flaw,
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
