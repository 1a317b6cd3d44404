//! State snapshots: every stateful operator's state at a checkpoint round, so that a
//! restart resumes from the last complete round instead of from the input's start.
//!
//! **Rounds.** Ingest cuts its input every `--checkpoint-every`: it saves where it is
//! (file offset, line number, watermark, counts) as its part of round `n` and moves its
//! capabilities to round `n` (the inner coordinate of [`crate::time::Time`]). Every
//! record read later carries round `n` or more. An operator whose input frontier has
//! reached round `n` has received every record of the rounds before, and none of round
//! `n` has been applied yet (it holds them back until then), so its state *is* the state
//! of the cut: it saves it as its part of round `n`, then moves its own capabilities on.
//! This is Chandy and Lamport's consistent cut, with timely's progress tracking as the
//! marker: no marker messages, and no operator stops.
//!
//! **Parts and completeness.** Each participant (an operator on one worker) is named by
//! its worker, its place in the order the worker built its dataflow, and its kind:
//! `snap-N/w0.3.WindowFold`. Builds are deterministic, so a restarted job finds the same
//! names. A round is complete when every participant of every worker has written its
//! part; then a `complete` record is written (temporary file, rename) and older rounds
//! are deleted. A restart takes the latest complete round, if it was written by as many
//! workers; otherwise the job replays its input from the start as without snapshots.
//!
//! **Sinks** in the rounds commit their file at each round before saving the rows not
//! complete yet, so a snapshot and the output agree: what the snapshot does not hold is
//! in the file. Sinks after differential (outside the rounds) are rebuilt from the
//! updates replayed into it; history may be compacted at or before the time they have
//! all committed ([`Snapshots::floor`]), since a restarted sink skips those times.
//!
//! **Scope.** The store is process-wide ([`active`]), set once by the job runner when the
//! job, its input and its cluster allow snapshots; operators find it there, so their
//! signatures do not change. Without it every operator behaves as before.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::crash_point;
use crate::exit::{fail, io_reason};
use crate::time::Millis;

/// One process's snapshots.
#[derive(Debug)]
pub struct Snapshots {
    dir: PathBuf,
    fsync: bool,
    workers: usize,
    every: std::time::Duration,
    /// The round restored from, if any.
    restored: Option<u64>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The next participant number of each worker.
    next: Vec<usize>,
    /// Workers whose dataflow is built: their participants are all registered.
    built: usize,
    /// Every participant registered.
    all: BTreeSet<String>,
    /// Participants whose input has ended: their final state stands for every later round.
    finished: BTreeSet<String>,
    /// Parts written per round not yet complete.
    written: BTreeMap<u64, BTreeSet<String>>,
    /// Committed time of each output outside the rounds (`None`: nothing yet).
    floors: BTreeMap<String, Option<Millis>>,
    /// Time spent saving parts, per round not yet complete.
    cost: BTreeMap<u64, std::time::Duration>,
    /// Time all participants spent saving the latest complete round.
    last_cost: std::time::Duration,
    /// The latest complete round, restored or written.
    latest: Option<u64>,
}

impl State {
    /// Rounds that every participant has written or finished before, not yet marked.
    fn complete(&mut self, workers: usize) -> Vec<u64> {
        if self.built < workers {
            return Vec::new();
        }
        let done: Vec<u64> = self
            .written
            .iter()
            .filter(|(_, parts)| self.all.iter().all(|p| parts.contains(p) || self.finished.contains(p)))
            .map(|(&r, _)| r)
            .collect();
        for r in &done {
            self.written.remove(r);
            self.last_cost = self.cost.remove(r).unwrap_or_default();
        }
        done
    }
}

static ACTIVE: OnceLock<Arc<Snapshots>> = OnceLock::new();

/// The pause between cuts is at least this many times what a round cost per worker.
const COST_SHARE: u32 = 10;

/// The process's snapshots, if the job takes them.
pub fn active() -> Option<&'static Arc<Snapshots>> {
    ACTIVE.get()
}

impl Snapshots {
    /// Snapshots in the checkpoint folder `dir` (a process's own) for `workers` workers:
    /// finds the latest complete round written by as many workers and deletes every other
    /// round's folder (partial ones of a run that died, or of another `-w`). A live
    /// input's journal that keeps only what was read from round `kept_from` on needs a
    /// round at least that: without one the job cannot resume, which is an error naming
    /// the `-w` that can (and nothing is deleted).
    pub fn open(
        dir: &Path,
        workers: usize,
        fsync: bool,
        every: std::time::Duration,
        kept_from: u64,
    ) -> Result<Snapshots, String> {
        let named = |e: io::Error| format!("checkpoint {}: {}", dir.display(), io_reason(&e));
        let mut rounds = Vec::new();
        for entry in fs::read_dir(dir).map_err(named)? {
            let entry = entry.map_err(named)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(round) = name.strip_prefix("snap-").and_then(|r| r.parse::<u64>().ok()) {
                rounds.push(round);
            }
        }
        rounds.sort_unstable();
        // The worker count a round's `complete` record names, if the round is complete.
        let written_by = |r: u64| {
            let complete = fs::read_to_string(dir.join(format!("snap-{r}")).join("complete")).ok()?;
            complete.trim().strip_prefix("workers ").and_then(|w| w.parse::<usize>().ok())
        };
        let restored = rounds.iter().rev().copied().find(|&r| written_by(r) == Some(workers));
        if kept_from > 0 && restored.is_none_or(|r| r < kept_from) {
            let other = rounds.iter().rev().find_map(|&r| written_by(r));
            let hint = other.map_or(String::new(), |w| format!(": resume it with -w {w}"));
            return Err(format!(
                "checkpoint {}: its journal keeps only the input read since round {kept_from}, so only \
                 a snapshot of that round or later, with as many workers, can resume it{hint}",
                dir.display()
            ));
        }
        for &r in rounds.iter().filter(|&&r| Some(r) != restored) {
            fs::remove_dir_all(dir.join(format!("snap-{r}"))).map_err(named)?;
        }
        if restored.is_none() && dir.join("finished").exists() {
            fs::remove_dir_all(dir.join("finished")).map_err(named)?;
        }
        let state = State { next: vec![0; workers], latest: restored, ..State::default() };
        Ok(Snapshots { dir: dir.to_path_buf(), fsync, workers, every, restored, state: Mutex::new(state) })
    }

    /// Makes these the process's snapshots. Once per process.
    pub fn activate(self) -> Arc<Snapshots> {
        let me = Arc::new(self);
        ACTIVE.set(Arc::clone(&me)).expect("snapshots activated once per process");
        me
    }

    /// How long a source waits from one cut to the next (wall clock): `--checkpoint-every`,
    /// or longer when saving the last complete round took more than a tenth of that, so
    /// that saving takes at most about a tenth of the workers' time whatever the size of
    /// the state. Flink's minimum pause between checkpoints, derived from the cost.
    pub fn pause(&self) -> std::time::Duration {
        let cost = self.state.lock().expect("snapshots lock").last_cost;
        self.every.max(cost * COST_SHARE / self.workers.max(1) as u32)
    }

    /// The round the job resumes from, if any.
    pub fn restored(&self) -> Option<u64> {
        self.restored
    }

    /// The latest complete round, restored or written since: a restart resumes from it
    /// or a later one, so input read before it need not be kept.
    pub fn latest(&self) -> Option<u64> {
        self.state.lock().expect("snapshots lock").latest
    }

    /// Worker `worker` has built its dataflow: every participant it has is registered.
    pub fn built(&self, _worker: usize) {
        let complete = {
            let mut state = self.state.lock().expect("snapshots lock");
            state.built += 1;
            state.complete(self.workers)
        };
        if let Err(e) = self.mark(complete) {
            fail(&format!("checkpoint {}: snapshot: {}", self.dir.display(), io_reason(&e)));
        }
    }

    /// Notes that output `name`, outside the rounds (after differential), holds every
    /// row at or before `time`.
    pub fn committed(&self, name: &str, time: Option<Millis>) {
        self.state.lock().expect("snapshots lock").floors.insert(name.to_owned(), time);
    }

    /// The latest time every output outside the rounds has committed, if each has
    /// committed some: history at or before it may be compacted, since a restarted sink
    /// skips those times.
    pub fn floor(&self) -> Option<Millis> {
        let state = self.state.lock().expect("snapshots lock");
        state.floors.values().try_fold(Millis::MAX, |low, t| t.map(|t| low.min(t)))
    }

    fn part_path(&self, round: u64, part: &str) -> PathBuf {
        self.dir.join(format!("snap-{round}")).join(part)
    }

    /// Writes `bytes` as `part` of `round`, whose saving began at `began`, then marks
    /// every round now complete.
    fn write(&self, round: u64, part: &str, bytes: &[u8], began: std::time::Instant) -> io::Result<()> {
        self.record(&format!("snap-{round}"), part, bytes, |state| {
            crash_point("snapshot");
            state.written.entry(round).or_default().insert(part.to_owned());
            *state.cost.entry(round).or_default() += began.elapsed();
        })
    }

    /// Writes `bytes` as `part`'s final state, standing for every later round.
    fn finish(&self, part: &str, bytes: &[u8]) -> io::Result<()> {
        self.record("finished", part, bytes, |state| {
            state.finished.insert(part.to_owned());
        })
    }

    /// Writes `bytes` as `part` in `folder`, notes it in the state, and marks every round
    /// now complete.
    fn record(
        &self,
        folder: &str,
        part: &str,
        bytes: &[u8],
        note: impl FnOnce(&mut State),
    ) -> io::Result<()> {
        let folder = self.dir.join(folder);
        fs::create_dir_all(&folder)?;
        self.replace(&folder, part, bytes)?;
        let complete = {
            let mut state = self.state.lock().expect("snapshots lock");
            note(&mut state);
            state.complete(self.workers)
        };
        self.mark(complete)
    }

    /// Writes the `complete` record of each round in `rounds` and deletes older rounds.
    fn mark(&self, rounds: Vec<u64>) -> io::Result<()> {
        let Some(&latest) = rounds.iter().max() else { return Ok(()) };
        for round in rounds {
            let folder = self.dir.join(format!("snap-{round}"));
            self.replace(&folder, "complete", format!("workers {}\n", self.workers).as_bytes())?;
            crash_point("snapshotted");
        }
        let mut state = self.state.lock().expect("snapshots lock");
        state.latest = state.latest.max(Some(latest));
        drop(state);
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(r) = name.strip_prefix("snap-").and_then(|r| r.parse::<u64>().ok())
                && r < latest
            {
                fs::remove_dir_all(self.dir.join(&name))?;
            }
        }
        Ok(())
    }

    /// Temporary file, sync with `--fsync`, rename.
    fn replace(&self, folder: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
        let temp = folder.join(format!(".{name}.tmp"));
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        if self.fsync {
            file.sync_all()?;
        }
        drop(file);
        fs::rename(&temp, folder.join(name))?;
        if self.fsync {
            File::open(folder)?.sync_all()?;
        }
        Ok(())
    }
}

/// An operator instance that takes part in snapshots.
#[derive(Debug)]
pub struct Participant {
    snapshots: Arc<Snapshots>,
    part: String,
}

impl Participant {
    /// Registers the next participant of `worker`, of kind `name`, if the process takes
    /// snapshots.
    pub fn register(worker: usize, name: &str) -> Option<Participant> {
        let snapshots = active()?;
        let mut state = snapshots.state.lock().expect("snapshots lock");
        let n = state.next[worker];
        state.next[worker] += 1;
        let part = format!("w{worker}.{n}.{name}");
        state.all.insert(part.clone());
        Some(Participant { snapshots: Arc::clone(snapshots), part })
    }

    /// The round this participant starts in: the restored one, or 0.
    pub fn round(&self) -> u64 {
        self.snapshots.restored.unwrap_or(0)
    }

    /// The process's snapshots.
    pub fn snapshots(&self) -> &Snapshots {
        &self.snapshots
    }

    /// This participant's state in the restored round, if the job resumes from one: its
    /// part of the round, or else its final state from before the round. A part that is
    /// missing or unreadable fails the job: the round was complete.
    pub fn restore<S: DeserializeOwned>(&self) -> Option<S> {
        let round = self.snapshots.restored?;
        let mut path = self.snapshots.part_path(round, &self.part);
        if !path.exists() {
            path = self.snapshots.dir.join("finished").join(&self.part);
        }
        let bytes =
            fs::read(&path).unwrap_or_else(|e| fail(&format!("{}: {}", path.display(), io_reason(&e))));
        match bincode::deserialize(&bytes) {
            Ok(state) => Some(state),
            Err(e) => fail(&format!("{}: not a snapshot part of this job: {e}", path.display())),
        }
    }

    /// Saves `state` as this participant's part of `round`.
    pub fn save<S: Serialize>(&self, round: u64, state: &S) {
        let began = std::time::Instant::now();
        let bytes =
            bincode::serialize(state).unwrap_or_else(|e| fail(&format!("snapshot {}: {e}", self.part)));
        if let Err(e) = self.snapshots.write(round, &self.part, &bytes, began) {
            fail(&format!("checkpoint {}: snapshot: {}", self.snapshots.dir.display(), io_reason(&e)));
        }
    }

    /// Saves `state` as this participant's final state: it takes part in no later round
    /// (a source whose input has ended).
    pub fn finish<S: Serialize>(&self, state: &S) {
        let bytes =
            bincode::serialize(state).unwrap_or_else(|e| fail(&format!("snapshot {}: {e}", self.part)));
        if let Err(e) = self.snapshots.finish(&self.part, &bytes) {
            fail(&format!("checkpoint {}: snapshot: {}", self.snapshots.dir.display(), io_reason(&e)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: std::time::Duration = std::time::Duration::from_secs(1);

    #[test]
    fn a_round_is_restored_only_once_every_part_is_written_by_as_many_workers() {
        let dir = std::env::temp_dir().join(format!("kappa-snapshots-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let snapshots = Arc::new(Snapshots::open(&dir, 2, false, ONE, 0).unwrap());
        let part = |worker: usize, name: &str| {
            let mut state = snapshots.state.lock().unwrap();
            let n = state.next[worker];
            state.next[worker] += 1;
            let part = format!("w{worker}.{n}.{name}");
            state.all.insert(part.clone());
            Participant { snapshots: Arc::clone(&snapshots), part }
        };
        let (a, b) = (part(0, "A"), part(1, "A"));
        snapshots.built(0);
        snapshots.built(1);
        a.save(1, &7u32);
        b.save(1, &8u32);
        a.save(2, &9u32);
        // Round 2 lacks worker 1's part: round 1 is the one to resume from.
        let again = Snapshots::open(&dir, 2, false, ONE, 0).unwrap();
        assert_eq!(again.restored(), Some(1));
        assert!(!dir.join("snap-2").exists(), "the partial round is deleted");
        let p = Participant { snapshots: Arc::new(again), part: "w1.0.A".into() };
        assert_eq!(p.restore::<u32>(), Some(8));
        // Another worker count does not resume from it.
        assert_eq!(Snapshots::open(&dir, 3, false, ONE, 0).unwrap().restored(), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cuts_are_spaced_so_that_saving_takes_at_most_a_tenth_of_the_workers_time() {
        let dir = std::env::temp_dir().join(format!("kappa-pause-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let s = Snapshots::open(&dir, 2, false, ONE, 0).unwrap();
        assert_eq!(s.pause(), ONE, "nothing saved yet: the interval asked for");
        let ms = std::time::Duration::from_millis;
        {
            let mut state = s.state.lock().unwrap();
            state.built = 2;
            state.all.extend(["w0.0.A".to_owned(), "w1.0.A".to_owned()]);
            state.written.insert(1, ["w0.0.A".to_owned(), "w1.0.A".to_owned()].into());
            state.cost.insert(1, ms(60));
            state.complete(2);
        }
        assert_eq!(s.pause(), ONE, "a cheap round changes nothing");
        {
            let mut state = s.state.lock().unwrap();
            state.written.insert(2, ["w0.0.A".to_owned(), "w1.0.A".to_owned()].into());
            state.cost.insert(2, ms(500));
            // A round not complete yet does not count.
            state.cost.insert(3, ms(9_000));
            state.complete(2);
        }
        assert_eq!(s.pause(), ms(2_500), "500 ms over 2 workers, ten times");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_floor_is_the_least_committed_time_and_none_until_every_output_committed() {
        let dir = std::env::temp_dir().join(format!("kappa-floor-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let s = Snapshots::open(&dir, 1, false, ONE, 0).unwrap();
        assert_eq!(s.floor(), Some(Millis::MAX), "no outputs: nothing to wait for");
        s.committed("results", None);
        s.committed("alerts", Some(5));
        assert_eq!(s.floor(), None);
        s.committed("results", Some(9));
        assert_eq!(s.floor(), Some(5));
        fs::remove_dir_all(&dir).unwrap();
    }
}
