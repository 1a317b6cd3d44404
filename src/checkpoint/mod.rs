//! The checkpoint folder: what a job needs to resume after `kill -9` with output
//! byte-identical to a run that never failed.
//!
//! **Fault model.** Any process may die at any instruction (SIGKILL, a crash, power
//! loss with `--fsync`). It is restarted with the same command line and the same
//! folder. Jobs are deterministic: the same input in the same order gives the same rows
//! at the same times (the sinks guarantee it, see `sink::gather`). So recovery needs
//! from this folder:
//!
//! * **Commit records**, one per output file (`commit-NAME`): the last completed time
//!   whose rows are all in the file, and the file's length then. On restart each file is
//!   cut back to its committed length, and rows at or before the committed time are
//!   recomputed but not written again. What was appended after the last commit is
//!   exactly what is written again, byte for byte.
//! * **A journal** ([`journal`]) of the lines a live input (stdin, tcp, mqtt, Kafka)
//!   handed to ingest, because their senders cannot replay them. It is appended before a
//!   line is handed over, so every line the dataflow saw is in it; on restart it is fed
//!   again first, in the same order and with the same origins and line numbers.
//! * **State snapshots** ([`snapshot`]) at consistent cuts, for the jobs and inputs that
//!   take them: a restart resumes from the latest complete one (and the journal from its
//!   round), so its time is bounded by the interval, not the history. Without them,
//!   files and generators are replayed from their start.
//!
//! **Crash safety.** Every record is written to a temporary file and renamed over the
//! old one, so a process killed at any moment leaves either the old record or the new
//! one. A journal entry killed half-way is cut off on restart. With `--fsync`, files and
//! the folder are synced before each rename, so commits survive power loss too.
//!
//! **Identity.** The `manifest` names the job and its command line (less the options
//! that do not change results, `-w` among them: a job may resume with more or fewer
//! threads). A folder written by another job, other options or another `-n` is refused
//! with a one-line error.
//!
//! **Testing crashes.** `KAPPA_CRASH_AT=POINT[:N]` kills the process with SIGKILL the
//! Nth time (default first) it passes `POINT`; see [`crash_point`].

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::exit::io_reason;

pub mod journal;
pub mod snapshot;

/// The manifest's first line; a folder without it is not a checkpoint.
const MAGIC: &str = "kappa checkpoint 1";

/// Flags left out of the fingerprint: they change how a job runs, not what it writes.
/// Each with whether it takes a value. Worker threads are among them: output does not
/// depend on them and a restart replays the input, so a job may resume with another
/// `-w` (the journal is per process, so `-n` must stay).
const NEUTRAL_FLAGS: &[(&str, bool)] = &[
    ("-w", true),
    ("--threads", true),
    ("--checkpoint", true),
    ("--checkpoint-every", true),
    ("--fsync", false),
    ("--progress-every", true),
    ("--quiet", false),
    ("-q", false),
    ("--http", true),
    ("--http-linger", true),
    ("--health", true),
    ("--connect-timeout", true),
    ("--latency-out", true),
];

/// One process's checkpoint folder.
#[derive(Debug)]
pub struct Checkpoint {
    dir: PathBuf,
    fsync: bool,
    every: Duration,
    anchor: u64,
    /// The manifest to write when the job starts, for a folder that has none yet.
    manifest: Option<String>,
}

/// What an output file holds for sure: everything up to and including `time`'s rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Commit {
    /// The last completed time whose rows are all written; `None` before any.
    pub time: Option<u64>,
    /// The file's length at that point.
    pub bytes: u64,
    /// The rows in it then, for the summary (0 in records written before it was kept).
    pub rows: u64,
}

impl Checkpoint {
    /// Opens (creating if needed) process `process`'s part of the folder `dir` for a job
    /// whose identity is `fingerprint`. A folder of another job or other options is an
    /// error naming both. A new folder gets its manifest from [`Checkpoint::begin`], once
    /// the job has passed every check, so a job that fails to start claims no folder.
    pub fn open(
        dir: &Path,
        process: u32,
        fingerprint: &str,
        fsync: bool,
        every: Duration,
    ) -> Result<Checkpoint, String> {
        let named = |e: io::Error| format!("checkpoint {}: {}", dir.display(), io_reason(&e));
        fs::create_dir_all(dir).map_err(named)?;
        let own = dir.join(format!("p{process}"));
        fs::create_dir_all(&own).map_err(named)?;
        let manifest = own.join("manifest");
        let now = crate::time::now_millis();
        let mut checkpoint = Checkpoint { dir: own, fsync, every, anchor: now, manifest: None };
        match fs::read_to_string(&manifest) {
            Ok(text) => {
                let mut lines = text.lines();
                if lines.next() != Some(MAGIC) {
                    return Err(format!("{} is not a kappa checkpoint manifest", manifest.display()));
                }
                let field = |name: &str| {
                    text.lines().find_map(|l| l.strip_prefix(name)).map(str::to_owned).unwrap_or_default()
                };
                let theirs = field("command: ");
                if theirs != fingerprint {
                    return Err(format!(
                        "checkpoint {} belongs to `{theirs}`, not `{fingerprint}`: use another folder, or delete it to start over",
                        dir.display()
                    ));
                }
                checkpoint.anchor = field("anchor: ").parse().unwrap_or(now);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                checkpoint.manifest = Some(format!("{MAGIC}\ncommand: {fingerprint}\nanchor: {now}\n"));
            }
            Err(e) => return Err(named(e)),
        }
        Ok(checkpoint)
    }

    /// Writes a new folder's manifest: the job has started in it.
    pub fn begin(&self) -> Result<(), String> {
        if let Some(text) = &self.manifest {
            self.replace("manifest", text.as_bytes())
                .map_err(|e| format!("checkpoint {}: {}", self.dir.display(), io_reason(&e)))?;
            crash_point("manifest");
        }
        Ok(())
    }

    /// This process's part of the folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether commits and journal appends are synced to disk.
    pub fn fsync(&self) -> bool {
        self.fsync
    }

    /// How often sinks commit, at most (wall clock).
    pub fn every(&self) -> Duration {
        self.every
    }

    /// The wall-clock time (ms) the job first started in this folder: a paced generator's
    /// schedule starts there, so a restarted one makes the same rows at the same times.
    pub fn anchor(&self) -> u64 {
        self.anchor
    }

    /// The commit record of output `name`, if it has one.
    pub fn commit_of(&self, name: &str) -> Result<Option<Commit>, String> {
        let path = self.dir.join(format!("commit-{name}"));
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {}", path.display(), io_reason(&e))),
        };
        let bad = || format!("{}: not a commit record", path.display());
        let mut fields = text.split_whitespace();
        let time = match fields.next().ok_or_else(bad)? {
            "-" => None,
            t => Some(t.parse().map_err(|_| bad())?),
        };
        let bytes = fields.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let rows = fields.next().map_or(Ok(0), str::parse).map_err(|_| bad())?;
        Ok(Some(Commit { time, bytes, rows }))
    }

    /// Records that output `name` holds `commit`, atomically.
    pub fn commit(&self, name: &str, commit: Commit) -> io::Result<()> {
        let time = commit.time.map_or_else(|| "-".to_owned(), |t| t.to_string());
        let text = format!("{time} {} {}\n", commit.bytes, commit.rows);
        self.replace(&format!("commit-{name}"), text.as_bytes())
    }

    /// Replaces the file `name` in the folder with `bytes`: temporary file, rename.
    fn replace(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let temp = self.dir.join(format!(".{name}.tmp"));
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        if self.fsync {
            file.sync_all()?;
        }
        drop(file);
        crash_point("rename");
        fs::rename(&temp, self.dir.join(name))?;
        if self.fsync {
            File::open(&self.dir)?.sync_all()?;
        }
        crash_point("renamed");
        Ok(())
    }
}

/// The identity of a job run: the program and its arguments, less [`NEUTRAL_FLAGS`].
pub fn fingerprint(program: &str, args: impl IntoIterator<Item = String>) -> String {
    let mut kept = vec![program.to_owned()];
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, _)) if f.starts_with("--") => (f.to_owned(), true),
            _ => (arg.clone(), false),
        };
        match NEUTRAL_FLAGS.iter().find(|(f, _)| *f == flag) {
            Some((_, takes_value)) => {
                if *takes_value && !inline {
                    args.next();
                }
            }
            None => kept.push(arg),
        }
    }
    kept.join(" ")
}

/// Kills this process with SIGKILL if `KAPPA_CRASH_AT` names `point` (as `POINT` or
/// `POINT:N`, the Nth pass, from 1) and this is that pass. Points: `manifest` (after
/// the manifest is written), `append` (after output rows are appended, before their
/// commit), `rename` (before a commit record's rename), `renamed` (after it), `journal`
/// (after a journal entry, before ingest sees its lines), `progress` (a Kafka sink:
/// after a time's rows are delivered, before its progress record), `snapshot` (after a
/// snapshot part is written, before its round is complete), `snapshotted` (after a
/// round's `complete` record), `mqtt-journaled` (an MQTT batch is journaled, its
/// messages not yet acknowledged).
pub fn crash_point(point: &str) {
    static PASSES: AtomicU64 = AtomicU64::new(0);
    if let Some((name, n)) = crash_target()
        && name == point
        && PASSES.fetch_add(1, Ordering::SeqCst) + 1 == *n
    {
        // SAFETY: kill(2) on our own pid; SIGKILL cannot be caught, nothing runs after.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Whether `KAPPA_CRASH_AT` names `point`: a caller may make the moment sharper first
/// (a Kafka sink waits for its rows to be delivered before its `progress` point).
pub fn crash_armed(point: &str) -> bool {
    crash_target().as_ref().is_some_and(|(name, _)| name == point)
}

/// `KAPPA_CRASH_AT` as (point, pass).
fn crash_target() -> &'static Option<(String, u64)> {
    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    TARGET.get_or_init(|| {
        let spec = std::env::var("KAPPA_CRASH_AT").ok()?;
        let (name, n) = spec.split_once(':').unwrap_or((&spec, "1"));
        Some((name.to_owned(), n.parse().unwrap_or(1)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kappa-checkpoint-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn fingerprint_ignores_flags_that_do_not_change_results() {
        let args = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        let a = fingerprint("job", args("--window 1h --checkpoint /x --checkpoint-every=1s -q -w 2 -n 2"));
        assert_eq!(a, "job --window 1h -n 2");
        assert_eq!(a, fingerprint("job", args("--window 1h --threads 3 -n 2")));
        assert_ne!(a, fingerprint("job", args("--window 1h -n 3")));
    }

    #[test]
    fn a_folder_of_other_options_is_refused_and_commits_round_trip() {
        let dir = temp_dir("open");
        let every = Duration::from_secs(1);
        let c = Checkpoint::open(&dir, 0, "job --window 1h", false, every).unwrap();
        // Not started: the folder is not claimed yet.
        assert!(Checkpoint::open(&dir, 0, "job --window 2h", false, every).is_ok());
        c.begin().unwrap();
        assert_eq!(c.commit_of("output").unwrap(), None);
        c.commit("output", Commit { time: Some(7), bytes: 42, rows: 3 }).unwrap();
        let again = Checkpoint::open(&dir, 0, "job --window 1h", false, every).unwrap();
        assert_eq!(again.anchor(), c.anchor(), "the anchor survives restarts");
        assert_eq!(again.commit_of("output").unwrap(), Some(Commit { time: Some(7), bytes: 42, rows: 3 }));
        let err = Checkpoint::open(&dir, 0, "job --window 2h", false, every).unwrap_err();
        assert!(err.contains("belongs to `job --window 1h`"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
