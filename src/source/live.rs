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
//! With `--checkpoint` the intake is journaled ([`Intake::journaled`]): a journal thread
//! takes every batch, appends it to the checkpoint's journal and only then puts it in the
//! channel, so the journal's order is the channel's and reading lines overlaps writing
//! the journal. A restarted job first feeds the journal's batches again, then new ones.
//! Lost on a kill: what an intake thread has read but not yet sent (at most one batch
//! per connection); a tcp client learns of the kill only as a broken connection.
//!
//! With snapshots too, batches carry the checkpoint round they were read in, and
//! workers cut between rounds as [`LiveReader`] says; the journal keeps only the rounds
//! from the latest complete snapshot on.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use timely::scheduling::SyncActivator;

use super::lines::{Flaw, LastLine, Line, LineSplitter};
use crate::checkpoint::journal::{Journal, Segment};
use crate::checkpoint::snapshot::Snapshots;
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
    /// When each line was published, in ms since the Unix epoch (a Kafka record's
    /// timestamp), one per line; empty for an origin that does not say. Latency is
    /// measured from then. Not journaled: a replayed batch has none.
    pub stamps: Vec<u64>,
    /// The checkpoint round it was read in (0 without snapshots); set by the journal.
    pub round: u64,
    /// The broker's delivery id of each line, for a source whose broker redelivers what
    /// was not acknowledged (MQTT packet ids); empty otherwise. Journaled, so that a
    /// restart can tell a redelivery of a journaled line ([`Replayed::delivered`]).
    pub ids: Vec<u16>,
    /// For a followed file (`tail:`): where its reader resumes after this batch.
    pub after: Option<FilePoint>,
}

/// A place in a followed file: where a restarted `tail:` reads on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilePoint {
    /// The file's device and inode, which a rename keeps.
    pub file: (u64, u64),
    /// The byte offset where its next line starts.
    pub offset: u64,
    /// That line's number.
    pub line: u64,
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
    /// Always `Some` until dropped (unless journaled); taken first in `drop` so the
    /// wake-up below sees the channel already disconnected.
    tx: Option<Sender<Batch>>,
    wakers: Wakers,
    stop: Arc<AtomicBool>,
    /// When journaled: batches go to the journal thread, which owns the feed's sender.
    journal: Option<Sender<Entry>>,
    /// The feed's [`Feed::round`].
    round: Arc<AtomicU64>,
    /// When journaled: how many batches the journal has written.
    written: Arc<Written>,
}

/// What a checkpoint's journal held when the job restarted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// How many tcp connections were accepted.
    pub accepted: usize,
    /// Each origin's next line number after its last journaled line: where a source
    /// that can seek (a Kafka partition, numbered by offset) resumes.
    pub next_line: BTreeMap<Arc<str>, u64>,
    /// Each origin's last journaled lines that carry a delivery id ([`Batch::ids`]),
    /// oldest first, at most [`DELIVERED_TAIL`]: a broker redelivers only what was not
    /// acknowledged, and a source acknowledges only what is journaled, so a redelivery
    /// of a journaled line is among these. Not kept in segment headers.
    pub delivered: BTreeMap<Arc<str>, VecDeque<(u16, Vec<u8>)>>,
    /// Each followed file's place after its last batch ([`Batch::after`]): where a
    /// `tail:` input resumes.
    pub followed: BTreeMap<Arc<str>, FilePoint>,
}

/// A count of batches written to the journal, which a source can wait on.
#[derive(Default)]
struct Written {
    count: Mutex<u64>,
    grew: Condvar,
}

impl Written {
    fn add(&self) {
        *self.count.lock().expect("journal count lock") += 1;
        self.grew.notify_all();
    }
}

/// How many of an origin's last journaled lines with delivery ids a restart knows: far
/// more than a broker leaves unacknowledged (Mosquitto: 20), far fewer than the 65,535
/// ids after which a broker reuses one.
pub const DELIVERED_TAIL: usize = 1024;

impl Replayed {
    /// Notes a batch read.
    fn saw(&mut self, batch: &Batch) {
        let next = batch.first_line + batch.ends.len() as u64;
        let at = self.next_line.entry(Arc::clone(&batch.origin)).or_default();
        *at = (*at).max(next);
        if let Some(point) = batch.after {
            self.followed.insert(Arc::clone(&batch.origin), point);
        }
    }

    /// Notes a journaled batch's delivery ids, as a restart reads them.
    fn delivered(&mut self, batch: &Batch) {
        if batch.ids.is_empty() {
            return;
        }
        let tail = self.delivered.entry(Arc::clone(&batch.origin)).or_default();
        let mut start = 0;
        for (&id, &(end, _)) in batch.ids.iter().zip(&batch.ends) {
            if tail.len() == DELIVERED_TAIL {
                tail.pop_front();
            }
            tail.push_back((id, batch.data[start..end].to_vec()));
            start = end;
        }
    }

    /// Appends this to `out`, for a segment's header: connections, each origin and its
    /// next line, then each followed file's place (absent in headers written before).
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.accepted as u64).to_le_bytes());
        out.extend_from_slice(&(self.next_line.len() as u32).to_le_bytes());
        for (origin, next) in &self.next_line {
            put_origin(origin, out);
            out.extend_from_slice(&next.to_le_bytes());
        }
        if self.followed.is_empty() {
            return;
        }
        out.extend_from_slice(&(self.followed.len() as u32).to_le_bytes());
        for (origin, point) in &self.followed {
            put_origin(origin, out);
            for n in [point.file.0, point.file.1, point.offset, point.line] {
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
    }

    /// What [`Replayed::encode`] wrote, or `None` if the bytes are not one.
    fn decode(mut bytes: &[u8]) -> Option<Replayed> {
        let accepted = usize::try_from(u64_at(&mut bytes)?).ok()?;
        let mut replayed = Replayed { accepted, ..Replayed::default() };
        for _ in 0..u32_at(&mut bytes)? {
            let origin = origin_at(&mut bytes)?;
            replayed.next_line.insert(origin, u64_at(&mut bytes)?);
        }
        if bytes.is_empty() {
            return Some(replayed);
        }
        for _ in 0..u32_at(&mut bytes)? {
            let origin = origin_at(&mut bytes)?;
            let mut n = [0; 4];
            for n in &mut n {
                *n = u64_at(&mut bytes)?;
            }
            replayed.followed.insert(origin, FilePoint { file: (n[0], n[1]), offset: n[2], line: n[3] });
        }
        bytes.is_empty().then_some(replayed)
    }
}

/// What intake threads hand the journal thread.
enum Entry {
    /// Lines to journal, then feed.
    Batch(Batch),
    /// A tcp connection was accepted.
    Accepted,
}

/// Entries the journal thread holds waiting, at most: enough to overlap reading lines
/// with writing the journal, few enough to keep the intake's memory bound.
const JOURNAL_QUEUE: usize = 4;

/// A journal entry's first byte: a batch of lines.
const ENTRY_BATCH: u8 = 0;
/// A journal entry's first byte: a tcp connection was accepted.
const ENTRY_ACCEPTED: u8 = 1;
/// A journal entry's first byte: a segment's header, what the segments before it held.
const ENTRY_HEADER: u8 = 2;
/// A journal entry's first byte: a batch of lines with their delivery ids.
const ENTRY_BATCH_IDS: u8 = 3;

impl Intake {
    /// Whether the job is stopping; intake threads should finish.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// How many batches sent so far are safe: journaled, or all of them without a
    /// journal. A source whose broker redelivers acknowledges a batch only once it is.
    pub fn safe_batches(&self) -> u64 {
        self.wait_safe(0, Duration::ZERO)
    }

    /// Waits until `batches` are safe ([`Intake::safe_batches`]), at most `limit`, and
    /// returns how many are.
    pub fn wait_safe(&self, batches: u64, limit: Duration) -> u64 {
        if self.journal.is_none() {
            return u64::MAX;
        }
        let count = self.written.count.lock().expect("journal count lock");
        let (count, _) =
            self.written.grew.wait_timeout_while(count, limit, |n| *n < batches).expect("journal count lock");
        *count
    }

    /// Sends a batch, blocking while the channel is full. `false` once nobody listens.
    pub fn send(&self, batch: Batch) -> bool {
        if let Some(journal) = &self.journal {
            return journal.send(Entry::Batch(batch)).is_ok();
        }
        let ok = self.tx.as_ref().is_some_and(|tx| tx.send(batch).is_ok());
        self.wakers.wake_all();
        ok
    }

    /// Notes in the journal (if any) that a tcp connection was accepted, so a restarted
    /// job counts it towards `?clients=N` and `--until-eof`.
    pub fn accepted(&self) {
        if let Some(journal) = &self.journal {
            let _ = journal.send(Entry::Accepted);
        }
    }

    /// This intake, journaled. A thread of its own takes over the feed: it feeds what
    /// the journal's `segments` hold again first, then appends each new batch to
    /// `journal` before it feeds it, so the journal's order is ingest's and every line
    /// ingest sees is in the journal. Returns the intake and what the journal held.
    ///
    /// With `snapshots`, each batch carries the checkpoint round it was read in: the
    /// thread starts a new round (and segment) with the first batch after each pause
    /// ([`Snapshots::pause`]), and drops the segments before the latest complete round.
    /// A restart from round `R` feeds only segments `R` and later: the snapshot holds
    /// what came before.
    ///
    /// Without `records` (with snapshots, for a source that can be read again from its
    /// positions: Kafka), batches are not written, only each segment's header: a restart
    /// from round `R` returns the positions at `R`'s start, where the source reads on.
    pub fn journaled(
        mut self,
        mut journal: Journal,
        segments: Vec<Segment>,
        snapshots: Option<Arc<Snapshots>>,
        records: bool,
    ) -> io::Result<(Intake, Replayed)> {
        let damaged = || io::Error::new(io::ErrorKind::InvalidData, "the checkpoint's journal is damaged");
        let from = snapshots.as_ref().and_then(|s| s.restored()).unwrap_or(0);
        let records = records || snapshots.is_none();
        let mut batches = Vec::new();
        let mut replayed = Replayed::default();
        for segment in &segments {
            if !records && segment.round > from {
                break;
            }
            for entry in &segment.entries {
                match entry.split_first() {
                    Some((&kind @ (ENTRY_BATCH | ENTRY_BATCH_IDS), rest)) => {
                        let mut batch = decode(rest, kind == ENTRY_BATCH_IDS).ok_or_else(damaged)?;
                        replayed.saw(&batch);
                        replayed.delivered(&batch);
                        if segment.round >= from {
                            batch.round = segment.round;
                            batches.push(batch);
                        }
                    }
                    Some((&ENTRY_ACCEPTED, _)) => replayed.accepted += 1,
                    Some((&ENTRY_HEADER, rest)) => {
                        let delivered = std::mem::take(&mut replayed.delivered);
                        replayed = Replayed::decode(rest).ok_or_else(damaged)?;
                        replayed.delivered = delivered;
                    }
                    _ => return Err(damaged()),
                }
            }
        }
        let tx = self.tx.take().expect("a new intake has its sender");
        let wakers = self.wakers.clone();
        let round = Arc::clone(&self.round);
        round.store(from, Ordering::Release);
        let written = Arc::clone(&self.written);
        let mut state = replayed.clone();
        let (journal_tx, journal_rx) = crossbeam_channel::bounded::<Entry>(JOURNAL_QUEUE);
        std::thread::Builder::new().name("kappa-journal".into()).spawn(move || {
            let send = |batch: Batch| {
                let r = batch.round;
                let sent = tx.send(batch).is_ok();
                // After the send: a worker that reads `r` finds every batch before it sent.
                round.fetch_max(r, Ordering::Release);
                wakers.wake_all();
                sent
            };
            for batch in batches {
                if !send(batch) {
                    return;
                }
            }
            let failed = |e: io::Error| write_failed("the checkpoint's journal", &e);
            let mut due = snapshots.as_ref().map(|s| std::time::Instant::now() + s.pause());
            let mut entry = Vec::with_capacity(BATCH_BYTES + 4096);
            // Ends when every intake is dropped; dropping `tx` then ends the feed.
            for received in journal_rx {
                if let (Some(s), Some(at)) = (&snapshots, due)
                    && matches!(received, Entry::Batch(_))
                    && std::time::Instant::now() >= at
                {
                    // A new round: its segment starts with what the ones before held.
                    entry.clear();
                    entry.push(ENTRY_HEADER);
                    state.encode(&mut entry);
                    journal.begin(journal.round() + 1, &entry).unwrap_or_else(failed);
                    if let Some(complete) = s.latest() {
                        journal.drop_before(complete).unwrap_or_else(failed);
                    }
                    due = Some(std::time::Instant::now() + s.pause());
                }
                entry.clear();
                let batch = match received {
                    Entry::Accepted => {
                        state.accepted += 1;
                        entry.push(ENTRY_ACCEPTED);
                        None
                    }
                    Entry::Batch(mut batch) => {
                        state.saw(&batch);
                        batch.round = journal.round();
                        if records {
                            entry.push(if batch.ids.is_empty() { ENTRY_BATCH } else { ENTRY_BATCH_IDS });
                            encode(&batch, &mut entry);
                        }
                        Some(batch)
                    }
                };
                if !entry.is_empty() {
                    journal.append(&entry).unwrap_or_else(failed);
                }
                if batch.is_some() {
                    written.add();
                }
                if let Some(batch) = batch
                    && !send(batch)
                {
                    break;
                }
            }
            drop(tx);
            wakers.wake_all();
        })?;
        self.journal = Some(journal_tx);
        Ok((self, replayed))
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

/// Appends `batch` to `out`: origin, first line, each line's end and flaw, the bytes.
fn encode(batch: &Batch, out: &mut Vec<u8>) {
    if !batch.ids.is_empty() {
        out.extend_from_slice(&(batch.ids.len() as u32).to_le_bytes());
        out.extend(batch.ids.iter().flat_map(|id| id.to_le_bytes()));
    }
    put_origin(&batch.origin, out);
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

/// Appends an origin's name to `out`: its length, then its bytes.
fn put_origin(origin: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(origin.len() as u32).to_le_bytes());
    out.extend_from_slice(origin.as_bytes());
}

/// What [`put_origin`] wrote, taken off the front of `bytes`.
fn origin_at(bytes: &mut &[u8]) -> Option<Arc<str>> {
    let len = u32_at(bytes)?;
    Some(Arc::from(std::str::from_utf8(take(bytes, len)?).ok()?))
}

/// The first `n` bytes of `bytes`, which moves past them.
fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, rest) = (bytes.get(..n)?, bytes.get(n..)?);
    *bytes = rest;
    Some(head)
}

fn u32_at(bytes: &mut &[u8]) -> Option<usize> {
    take(bytes, 4).map(|x| u32::from_le_bytes(x.try_into().expect("4")) as usize)
}

fn u64_at(bytes: &mut &[u8]) -> Option<u64> {
    take(bytes, 8).map(|x| u64::from_le_bytes(x.try_into().expect("8")))
}

/// What [`encode`] wrote, or `None` if the bytes are not one; `with_ids` for an
/// [`ENTRY_BATCH_IDS`] entry, which starts with its ids, one per line.
fn decode(mut bytes: &[u8], with_ids: bool) -> Option<Batch> {
    let mut ids = Vec::new();
    if with_ids {
        let lines = u32_at(&mut bytes)?;
        let raw = take(&mut bytes, 2 * lines)?;
        ids = raw.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    }
    let origin = origin_at(&mut bytes)?;
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
    let fits = ends.iter().all(|&(end, _)| end <= data.len());
    let whole = ids.is_empty() || ids.len() == ends.len();
    (fits && whole).then_some(Batch { origin, first_line, data, ends, ids, ..Batch::default() })
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
    sent: u64,
    /// Send only on a flush, never because the batch is full ([`Batcher::by_block`]).
    by_block: bool,
}

impl Batcher {
    /// A batcher for lines from `origin`, numbered from 1.
    pub fn new(origin: Arc<str>) -> Self {
        Batcher::numbered(origin, 1)
    }

    /// A batcher for lines from `origin`, numbered from `first` (a Kafka partition's
    /// lines are numbered by their offsets).
    pub fn numbered(origin: Arc<str>, first: u64) -> Self {
        let batch = Batch { origin, first_line: first, ..Batch::default() };
        Batcher { batch, next_line: first, sent: 0, by_block: false }
    }

    /// This batcher, sending only when flushed: a reader that flushes after each block it
    /// reads ends every batch where it can say it is ([`Batcher::flush_at`]). A block
    /// bounds the batch instead of [`BATCH_BYTES`] and [`BATCH_LINES`].
    pub fn by_block(mut self) -> Self {
        self.by_block = true;
        self
    }

    /// Restarts line numbering, e.g. after a rotated file is reopened.
    pub fn restart_numbering(&mut self, intake: &Intake) {
        self.renumber(intake, 1);
    }

    /// Sends what has been collected and numbers the lines that follow from `next`.
    pub fn renumber(&mut self, intake: &Intake, next: u64) {
        self.flush(intake);
        self.next_line = next;
        self.batch.first_line = next;
    }

    /// Adds a line published at `stamp` (ms since the Unix epoch), sending the batch
    /// when it is full. A batcher's lines are either all stamped or none.
    pub fn push_stamped(&mut self, line: &Line<'_>, stamp: u64, intake: &Intake) {
        self.batch.stamps.push(stamp);
        self.push(line, intake);
    }

    /// Adds a line with the broker's delivery id ([`Batch::ids`]), sending the batch when
    /// it is full. A batcher's lines either all have ids or none.
    pub fn push_delivered(&mut self, line: &Line<'_>, id: u16, intake: &Intake) {
        self.batch.ids.push(id);
        self.push(line, intake);
    }

    /// The number the next line pushed gets.
    pub fn next_line(&self) -> u64 {
        self.next_line
    }

    /// How many batches this batcher has sent.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Adds a line, sending the batch when it is full.
    pub fn push(&mut self, line: &Line<'_>, intake: &Intake) {
        self.batch.data.extend_from_slice(line.bytes);
        self.batch.ends.push((self.batch.data.len(), line.flaw));
        self.next_line += 1;
        if !self.by_block && (self.batch.data.len() >= BATCH_BYTES || self.batch.ends.len() >= BATCH_LINES) {
            self.flush(intake);
        }
    }

    /// Sends what has been collected, noting that its reader resumes at `after`.
    pub fn flush_at(&mut self, intake: &Intake, after: FilePoint) {
        self.batch.after = Some(after);
        self.flush(intake);
    }

    /// Sends what has been collected.
    pub fn flush(&mut self, intake: &Intake) {
        if self.batch.ends.is_empty() {
            self.batch.after = None;
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
                ..Batch::default()
            },
        );
        intake.send(full);
        self.sent += 1;
    }
}

/// The receiving side of a process's live feed, shared by its workers.
#[derive(Clone)]
pub struct Feed {
    rx: Receiver<Batch>,
    /// Workers to wake.
    pub wakers: Wakers,
    /// For a partitioned input (Kafka): each partition's event-time progress.
    pub origins: Arc<Origins>,
    /// The checkpoint round of the latest batch sent (0 without snapshots): every batch
    /// of an earlier round was sent before it.
    round: Arc<AtomicU64>,
}

/// The event-time progress of each origin of a partitioned feed (each Kafka partition a
/// process reads), shared by the process's workers: the watermark is the minimum over
/// the origins, so a partition that lags does not see its records judged late against
/// the others. An origin is registered by its intake before anything is read, so one
/// that has sent nothing holds the watermark too, until it has been quiet for
/// `--idle-timeout`.
#[derive(Debug, Default)]
pub struct Origins(Mutex<BTreeMap<Arc<str>, Clock>>);

/// One origin's progress.
#[derive(Debug)]
struct Clock {
    /// The largest event time seen from it.
    max: Option<u64>,
    /// When it last sent a record.
    last: std::time::Instant,
}

impl Origins {
    /// Adds an origin that has sent nothing yet.
    pub fn register(&self, origin: Arc<str>) {
        let clock = Clock { max: None, last: std::time::Instant::now() };
        self.0.lock().expect("origins lock").insert(origin, clock);
    }

    /// Whether any origin is registered: the feed is partitioned.
    pub fn partitioned(&self) -> bool {
        !self.0.lock().expect("origins lock").is_empty()
    }

    /// Notes that `origin` sent records up to event time `max` at `now`.
    pub fn seen(&self, origin: &str, max: u64, now: std::time::Instant) {
        if let Some(c) = self.0.lock().expect("origins lock").get_mut(origin) {
            c.max = Some(c.max.map_or(max, |m| m.max(max)));
            c.last = now;
        }
    }

    /// The smallest largest event time over the origins that have sent something within
    /// `idle` (all, without it); `None` while one of them has sent nothing, or when all
    /// are idle (the input's own idle rule applies then).
    pub fn low(&self, now: std::time::Instant, idle: Option<Duration>) -> Option<u64> {
        let clocks = self.0.lock().expect("origins lock");
        let active =
            clocks.values().filter(|c| idle.is_none_or(|i| now.saturating_duration_since(c.last) < i));
        let mut low: Option<u64> = None;
        for c in active {
            let max = c.max?;
            low = Some(low.map_or(max, |l| l.min(max)));
        }
        low
    }
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
    let round = Arc::new(AtomicU64::new(0));
    let feed = Feed { rx, wakers: wakers.clone(), origins: Arc::default(), round: Arc::clone(&round) };
    (feed, Intake { tx: Some(tx), wakers, stop, journal: None, round, written: Arc::default() })
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
///
/// With snapshots, batches carry the round they were read in, and a worker must cut
/// (save its state for a round) before it applies a batch of a later round.
/// [`LiveReader::reached`] says which round the worker may move to: the round of the
/// batch it will hand out next, which it takes from the channel and keeps; or, when the
/// channel is empty, the feed's latest round, since every batch of an earlier round has
/// then been taken by some worker. [`LiveReader::next_block`] then hands out only the
/// batch kept, so no batch of a later round slips in after the cut.
pub struct LiveReader {
    feed: Feed,
    origin: Arc<str>,
    /// The last batch's first line number and stamps.
    first_line: u64,
    stamps: Vec<u64>,
    /// The batch taken by [`LiveReader::reached`], to hand out next.
    kept: Option<Batch>,
    /// Whether [`LiveReader::reached`] is in use: hand out only kept batches.
    rounds: bool,
    /// The channel was found disconnected and empty.
    ended: bool,
}

impl LiveReader {
    /// A reader of `feed`.
    pub fn new(feed: Feed) -> Self {
        LiveReader {
            feed,
            origin: Arc::from(""),
            first_line: 0,
            stamps: Vec::new(),
            kept: None,
            rounds: false,
            ended: false,
        }
    }

    /// The feed's wakers, so the worker can register itself.
    pub fn wakers(&self) -> &Wakers {
        &self.feed.wakers
    }

    /// The latest round whose batches before it this worker has all been handed or
    /// will not be: it may cut every round up to it before calling
    /// [`LiveReader::next_block`].
    pub fn reached(&mut self) -> u64 {
        self.rounds = true;
        // Read before looking at the channel: batches of earlier rounds were sent first.
        let latest = self.feed.round.load(Ordering::Acquire);
        if self.kept.is_none() && !self.ended {
            match self.feed.rx.try_recv() {
                Ok(batch) => self.kept = Some(batch),
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => self.ended = true,
            }
        }
        self.kept.as_ref().map_or(latest, |b| b.round)
    }

    /// Hands out the lines of one batch, if one is waiting.
    pub fn next_block(&mut self, mut each: impl FnMut(Line<'_>)) -> Received {
        let batch = match self.kept.take() {
            Some(batch) => batch,
            None if self.ended => return Received::Ended,
            // Taking one now could take a later round's batch before the cut.
            None if self.rounds => return Received::Empty,
            None => match self.feed.rx.try_recv() {
                Ok(batch) => batch,
                Err(TryRecvError::Empty) => return Received::Empty,
                Err(TryRecvError::Disconnected) => return Received::Ended,
            },
        };
        let mut start = 0;
        for (k, &(end, flaw)) in batch.ends.iter().enumerate() {
            each(Line {
                // The line's own number: 1-based, or a Kafka offset (from 0).
                index: batch.first_line + k as u64,
                bytes: &batch.data[start..end],
                flaw,
            });
            start = end;
        }
        self.origin = batch.origin;
        self.first_line = batch.first_line;
        self.stamps = batch.stamps;
        Received::Batch
    }

    /// The origin of the last batch handed out.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// When line `index` of the last batch handed out was published (ms since the Unix
    /// epoch), if its origin says.
    pub fn published(&self, index: u64) -> Option<u64> {
        let k = index.checked_sub(self.first_line)?;
        self.stamps.get(usize::try_from(k).ok()?).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_lines_reach_the_reader_with_their_published_times() {
        let (feed, intake) = feed(Arc::new(AtomicBool::new(false)));
        let mut batcher = Batcher::numbered(Arc::from("kafka://h:1/t/0"), 7);
        for (k, text) in ["a", "b", "c"].iter().enumerate() {
            let line = Line { index: 7 + k as u64, bytes: text.as_bytes(), flaw: None };
            batcher.push_stamped(&line, 1_000 + k as u64, &intake);
        }
        batcher.flush(&intake);
        let mut reader = LiveReader::new(feed);
        let mut seen = Vec::new();
        assert!(matches!(reader.next_block(|l| seen.push(l.index)), Received::Batch));
        assert_eq!(seen, [7, 8, 9]);
        let published: Vec<_> = (6..11).map(|i| reader.published(i)).collect();
        assert_eq!(published, [None, Some(1_000), Some(1_001), Some(1_002), None]);
        // An unstamped batch (a tcp feed's, or one replayed from the journal) has none.
        let mut plain = Batcher::new(Arc::from("tcp:x"));
        plain.push(&Line { index: 0, bytes: b"d", flaw: None }, &intake);
        plain.flush(&intake);
        assert!(matches!(reader.next_block(|_| {}), Received::Batch));
        assert_eq!(reader.published(1), None);
    }

    #[test]
    fn a_segment_header_keeps_each_followed_file_place_and_one_without_them_still_reads() {
        let mut replayed = Replayed { accepted: 2, ..Replayed::default() };
        replayed.next_line.insert(Arc::from("tcp:127.0.0.1:1"), 7);
        let mut bytes = Vec::new();
        replayed.encode(&mut bytes);
        assert_eq!(Replayed::decode(&bytes).as_ref(), Some(&replayed), "a header of before");
        let point = FilePoint { file: (8, 9), offset: 300, line: 12 };
        replayed.followed.insert(Arc::from("tail:/var/log/a"), point);
        bytes.clear();
        replayed.encode(&mut bytes);
        assert_eq!(Replayed::decode(&bytes).as_ref(), Some(&replayed));
        bytes.pop();
        assert_eq!(Replayed::decode(&bytes), None, "a cut header is damaged");
    }

    #[test]
    fn delivery_ids_are_journaled_and_a_restart_knows_the_last_ones_of_each_origin() {
        let dir = std::env::temp_dir().join(format!("kappa-live-ids-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let texts: Vec<String> = (0..DELIVERED_TAIL + 5).map(|k| format!("line {k}")).collect();
        {
            let (feed, intake) = feed(Arc::new(AtomicBool::new(false)));
            let (journal, segments) = Journal::open(&dir, false).unwrap();
            let (intake, _) = intake.journaled(journal, segments, None, true).unwrap();
            assert_eq!(intake.safe_batches(), 0);
            let mut batcher = Batcher::new(Arc::from("mqtt://h:1/t"));
            for (k, text) in texts.iter().enumerate() {
                let line = Line { index: k as u64, bytes: text.as_bytes(), flaw: None };
                batcher.push_delivered(&line, (k % 65_536) as u16 + 1, &intake);
            }
            batcher.flush(&intake);
            let mut plain = Batcher::new(Arc::from("tcp:x"));
            plain.push(&Line { index: 0, bytes: b"no id", flaw: None }, &intake);
            plain.flush(&intake);
            let mut reader = LiveReader::new(feed);
            let mut lines = 0;
            while lines < texts.len() + 1 {
                if let Received::Batch = reader.next_block(|_| lines += 1) {}
            }
            let sent = batcher.sent() + plain.sent();
            assert!(intake.safe_batches() >= sent, "every batch handed out was journaled first");
        }
        let (feed, _intake) = feed(Arc::new(AtomicBool::new(false)));
        let (journal, segments) = Journal::open(&dir, false).unwrap();
        let (_intake, replayed) = _intake.journaled(journal, segments, None, true).unwrap();
        drop(feed);
        let tail = &replayed.delivered[&Arc::from("mqtt://h:1/t")];
        assert_eq!(tail.len(), DELIVERED_TAIL, "only the last lines are known");
        let expected =
            texts.iter().enumerate().skip(5).map(|(k, t)| ((k % 65_536) as u16 + 1, t.as_bytes().to_vec()));
        assert!(tail.iter().cloned().eq(expected), "each line with its id, oldest first");
        assert!(
            !replayed.delivered.contains_key(&Arc::from("tcp:x") as &Arc<str>),
            "lines without ids are not kept"
        );
        assert_eq!(replayed.next_line[&Arc::from("mqtt://h:1/t")], texts.len() as u64 + 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
