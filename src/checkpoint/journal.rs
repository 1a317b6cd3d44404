//! The journal: an append-only log of what live inputs handed to ingest, in segments
//! by checkpoint round, so that it is bounded by retention behind the last snapshot.
//!
//! Entries are a `u32` length, then bytes. Segment `journal-R` holds the entries read in
//! round `R` (all of them in `journal-0` for a job without snapshots). A new segment
//! starts with a header entry that its writer supplies (what a reader needs to know of
//! the segments before it), so that once round `C` is a complete snapshot every segment
//! before `C` can be deleted: a restart resumes from a round of at least `C`.
//!
//! **Crash safety.** Segments are written in order, and a segment is only created after
//! the one before it is whole, so only the last can end in a torn entry; it is cut off on
//! open. With `fsync`, every append is synced.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::crash_point;

/// The journal of one process: its segments in a checkpoint folder.
pub struct Journal {
    dir: PathBuf,
    fsync: bool,
    file: File,
    /// The round of the segment being appended to.
    round: u64,
}

/// One segment's entries, as read on open.
#[derive(Debug, PartialEq, Eq)]
pub struct Segment {
    /// The round its entries were read in.
    pub round: u64,
    /// Its complete entries, header first (segments after round 0).
    pub entries: Vec<Vec<u8>>,
}

impl Journal {
    /// Opens the journal in `dir`: reads every segment's complete entries, in round
    /// order, cuts a torn entry off the last, and opens the last for appending (creating
    /// `journal-0` if there is none). A journal of one file named `journal` (before
    /// segments) is segment 0.
    pub fn open(dir: &Path, fsync: bool) -> io::Result<(Journal, Vec<Segment>)> {
        let single = dir.join("journal");
        if single.exists() {
            fs::rename(&single, segment_path(dir, 0))?;
        }
        let mut rounds = segment_rounds(dir)?;
        if rounds.is_empty() {
            rounds.push(0);
        }
        let mut segments = Vec::with_capacity(rounds.len());
        let mut last = None;
        for &round in &rounds {
            let mut file =
                OpenOptions::new().read(true).append(true).create(true).open(segment_path(dir, round))?;
            let mut all = Vec::new();
            file.read_to_end(&mut all)?;
            let (entries, whole) = split_entries(&all);
            if whole < all.len() {
                file.set_len(whole as u64)?;
            }
            segments.push(Segment { round, entries });
            last = Some(file);
        }
        let round = *rounds.last().expect("one segment at least");
        let file = last.expect("one segment at least");
        Ok((Journal { dir: dir.to_path_buf(), fsync, file, round }, segments))
    }

    /// The round of the segment being appended to.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// Appends one entry to the current segment.
    pub fn append(&mut self, entry: &[u8]) -> io::Result<()> {
        let mut record = Vec::with_capacity(entry.len() + 4);
        record.extend_from_slice(&(entry.len() as u32).to_le_bytes());
        record.extend_from_slice(entry);
        self.file.write_all(&record)?;
        if self.fsync {
            self.file.sync_data()?;
        }
        crash_point("journal");
        Ok(())
    }

    /// Starts segment `round` (after the current one) with `header` as its first entry.
    pub fn begin(&mut self, round: u64, header: &[u8]) -> io::Result<()> {
        debug_assert!(round > self.round, "segments go forward");
        let path = segment_path(&self.dir, round);
        self.file = OpenOptions::new().append(true).create(true).truncate(false).open(&path)?;
        self.round = round;
        if self.fsync {
            File::open(&self.dir)?.sync_all()?;
        }
        self.append(header)
    }

    /// Deletes every segment before `round`: a restart never reads them again.
    pub fn drop_before(&self, round: u64) -> io::Result<()> {
        for r in segment_rounds(&self.dir)?.into_iter().filter(|&r| r < round && r != self.round) {
            fs::remove_file(segment_path(&self.dir, r))?;
        }
        Ok(())
    }
}

/// Deletes every segment in `dir` after `round`: for a journal of positions only, whose
/// later segments describe rounds a restart from `round` reads again differently.
pub fn drop_after(dir: &Path, round: u64) -> io::Result<()> {
    for r in segment_rounds(dir)?.into_iter().filter(|&r| r > round) {
        fs::remove_file(segment_path(dir, r))?;
    }
    Ok(())
}

/// The first round the journal in `dir` still holds (0 when it is whole or absent).
pub fn first_round(dir: &Path) -> io::Result<u64> {
    Ok(segment_rounds(dir)?.first().copied().unwrap_or(0))
}

fn segment_path(dir: &Path, round: u64) -> PathBuf {
    dir.join(format!("journal-{round}"))
}

/// The rounds of the segments in `dir`, ascending.
fn segment_rounds(dir: &Path) -> io::Result<Vec<u64>> {
    let mut rounds = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(round) = name.strip_prefix("journal-").and_then(|r| r.parse::<u64>().ok()) {
            rounds.push(round);
        }
    }
    rounds.sort_unstable();
    Ok(rounds)
}

/// The complete entries in `all`, and the length they take.
fn split_entries(all: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let (mut entries, mut at) = (Vec::new(), 0usize);
    while let Some(len) = all.get(at..at + 4) {
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        let Some(entry) = all.get(at + 4..at + 4 + len) else { break };
        entries.push(entry.to_vec());
        at += 4 + len;
    }
    (entries, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kappa-journal-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_torn_journal_entry_is_cut_off() {
        let dir = temp_dir("torn");
        let (mut j, segments) = Journal::open(&dir, false).unwrap();
        assert_eq!(segments, vec![Segment { round: 0, entries: vec![] }]);
        j.append(b"one").unwrap();
        j.append(b"two").unwrap();
        drop(j);
        // A kill half-way through a third entry: its length says 9, 2 bytes follow.
        let mut f = OpenOptions::new().append(true).open(dir.join("journal-0")).unwrap();
        f.write_all(&9u32.to_le_bytes()).unwrap();
        f.write_all(b"th").unwrap();
        drop(f);
        let (mut j, segments) = Journal::open(&dir, false).unwrap();
        assert_eq!(segments[0].entries, vec![b"one".to_vec(), b"two".to_vec()]);
        j.append(b"four").unwrap();
        let (_, segments) = Journal::open(&dir, false).unwrap();
        assert_eq!(segments[0].entries, vec![b"one".to_vec(), b"two".to_vec(), b"four".to_vec()]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn segments_come_back_in_round_order_and_those_before_or_after_a_round_can_be_dropped() {
        let dir = temp_dir("segments");
        let (mut j, _) = Journal::open(&dir, false).unwrap();
        j.append(b"a").unwrap();
        j.begin(2, b"header 2").unwrap();
        j.append(b"b").unwrap();
        j.begin(10, b"header 10").unwrap();
        j.append(b"c").unwrap();
        drop(j);
        let (j, segments) = Journal::open(&dir, false).unwrap();
        let rounds: Vec<u64> = segments.iter().map(|s| s.round).collect();
        assert_eq!(rounds, [0, 2, 10], "10 sorts after 2");
        assert_eq!(segments[2].entries, vec![b"header 10".to_vec(), b"c".to_vec()]);
        assert_eq!(j.round(), 10, "appends go on in the last segment");
        drop(j);
        drop_after(&dir, 2).unwrap();
        let (j, segments) = Journal::open(&dir, false).unwrap();
        assert_eq!(segments.iter().map(|s| s.round).collect::<Vec<_>>(), [0, 2]);
        assert_eq!(j.round(), 2, "appends go on in the last segment left");
        j.drop_before(2).unwrap();
        assert_eq!(first_round(&dir).unwrap(), 2);
        let (_, segments) = Journal::open(&dir, false).unwrap();
        assert_eq!(segments.len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_journal_of_one_file_is_read_as_segment_zero() {
        let dir = temp_dir("single");
        fs::write(dir.join("journal"), [&3u32.to_le_bytes()[..], b"old"].concat()).unwrap();
        let (_, segments) = Journal::open(&dir, false).unwrap();
        assert_eq!(segments, vec![Segment { round: 0, entries: vec![b"old".to_vec()] }]);
        assert!(!dir.join("journal").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
