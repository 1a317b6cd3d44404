//! A bounded file, split among all workers in stripes of bytes aligned to lines.
//!
//! The file is cut into stripes of `min(size / n, 4 MiB)` bytes, and worker `i` of `n`
//! owns the lines whose first byte lies in stripes `i`, `i + n`, `i + 2n`, …. Over a
//! time-ordered file the workers so move through event time together, a stripe apart:
//! with one contiguous range each, worker `i` would start `i / n` of the way through
//! the history, and everything it reads would wait for the others' watermark (in open
//! windows, pending output and every snapshot). A file of at most 4 MiB per worker is
//! one range each, as before.
//!
//! Line numbers are counted from the stripe's first line and made absolute only when a
//! line is rejected: the newlines before the stripe are counted then, from where the
//! last count stopped, so clean input pays nothing for them and a run counts each byte
//! at most once.
//!
//! Every count reads the file handle opened at the start, by position (`pread`), never
//! the path again: a file replaced or deleted mid-run still numbers its lines as the
//! file that was read, and counting does not move the reader.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::lines::{Line, LineSplitter};

/// Block size for file reads.
pub const BLOCK: usize = 1 << 20;

/// The largest stripe.
pub const STRIPE: u64 = 4 << 20;

/// Where a [`FileRange`] resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FilePosition {
    /// The stripe being read.
    pub stripe: u64,
    /// The file offset of the next line to read.
    pub next_line: u64,
    /// Its index in the stripe (lines before it in the stripe).
    pub index: u64,
    /// The offset of the stripe's first line, for line numbers.
    pub first_line_at: u64,
    /// The file's size when it was first opened: a file that changed is refused.
    pub size: u64,
}

/// One worker's stripes of a file.
pub struct FileRange {
    /// The file, for counting by position and for each stripe's reader.
    file: File,
    max_line: usize,
    /// The file's size when it was opened.
    size: u64,
    stripe_len: u64,
    parts: u64,
    /// The stripe being read, and its reader.
    stripe: u64,
    splitter: Option<LineSplitter<File>>,
    /// The stripe's reader has handed out its last line; the next stripe opens on the
    /// next call, so the last block's lines are still numbered by this one.
    exhausted: bool,
    /// The file offset the splitter started reading at.
    base: u64,
    /// Offset of the stripe's first line.
    first_line_at: u64,
    /// Newlines counted before an offset: `(offset, newlines)`.
    counted: (u64, u64),
    /// Lines in the whole file, computed on demand.
    lines_in_file: Option<u64>,
}

impl FileRange {
    /// Opens the `part`-th of `parts` shares of `path`.
    pub fn open(path: &Path, part: usize, parts: usize, max_line: usize) -> io::Result<Self> {
        Self::resume(path, part, parts, max_line, None)
    }

    /// Opens the `part`-th of `parts` shares of `path` at `at`, a position this share
    /// reported ([`FileRange::position`]), or at its start.
    pub fn resume(
        path: &Path,
        part: usize,
        parts: usize,
        max_line: usize,
        at: Option<FilePosition>,
    ) -> io::Result<Self> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        let parts = parts.max(1) as u64;
        let stripe_len = size.div_ceil(parts).clamp(1, STRIPE);
        let mut range = FileRange {
            file,
            max_line,
            size,
            stripe_len,
            parts,
            stripe: part as u64,
            splitter: None,
            exhausted: false,
            base: 0,
            first_line_at: 0,
            counted: (0, 0),
            lines_in_file: None,
        };
        match at {
            None => range.open_stripe()?,
            Some(at) => {
                let start = at.stripe * stripe_len;
                if size != at.size
                    || at.stripe % parts != part as u64
                    || at.next_line < start.saturating_sub(1)
                    || at.next_line > size
                {
                    return Err(io::Error::other(format!(
                        "changed since the checkpoint (size {size}, was {})",
                        at.size
                    )));
                }
                let end = (start + stripe_len).min(size);
                let mut file = range.file.try_clone()?;
                file.seek(SeekFrom::Start(at.next_line))?;
                range.splitter = Some(
                    LineSplitter::new(file, BLOCK, max_line)
                        .stop_at(end.saturating_sub(at.next_line))
                        .starting_at(at.index),
                );
                (range.stripe, range.base, range.first_line_at) = (at.stripe, at.next_line, at.first_line_at);
            }
        }
        Ok(range)
    }

    /// Opens the reader of stripe `self.stripe`, or none past the end of the file.
    fn open_stripe(&mut self) -> io::Result<()> {
        self.exhausted = false;
        let start = self.stripe * self.stripe_len;
        if start >= self.size && !(start == 0 && self.size == 0) {
            self.splitter = None;
            return Ok(());
        }
        let end = (start + self.stripe_len).min(self.size);
        let seek_to = start.saturating_sub(1);
        let mut file = self.file.try_clone()?;
        file.seek(SeekFrom::Start(seek_to))?;
        let mut splitter = LineSplitter::new(file, BLOCK, self.max_line).stop_at(end - seek_to);
        self.first_line_at = 0;
        if start > 0 {
            // The byte before `start` decides: a newline there means the stripe starts a line.
            splitter.skip_partial_first_line()?;
            self.first_line_at = seek_to + splitter.consumed();
        }
        self.base = seek_to;
        self.splitter = Some(splitter);
        Ok(())
    }

    /// Where the share would resume: the stripe, the next line's offset and index.
    /// `None` in the middle of an over-long line, between two stripes, or past the last.
    pub fn position(&self) -> Option<FilePosition> {
        if self.exhausted {
            return None;
        }
        let (consumed, index) = self.splitter.as_ref()?.between_lines()?;
        Some(FilePosition {
            stripe: self.stripe,
            next_line: self.base + consumed,
            index,
            first_line_at: self.first_line_at,
            size: self.size,
        })
    }

    /// Hands out the lines of the next block, all of one stripe; `Ok(false)` once the
    /// share is exhausted.
    pub fn next_block(&mut self, each: impl FnMut(Line<'_>)) -> io::Result<bool> {
        if self.exhausted {
            self.stripe += self.parts;
            self.open_stripe()?;
        }
        let Some(splitter) = self.splitter.as_mut() else { return Ok(false) };
        if splitter.next_block(each)? {
            return Ok(true);
        }
        // More stripes follow if the next one starts inside the file.
        self.exhausted = (self.stripe + self.parts) * self.stripe_len < self.size;
        Ok(self.exhausted)
    }

    /// The 1-based line number in the whole file of the last block's `index`-th line.
    pub fn line_number(&mut self, index: u64) -> io::Result<u64> {
        let (at, n) = self.counted;
        let before = if self.first_line_at >= at {
            n + count_newlines(&self.file, at, self.first_line_at)?
        } else {
            count_newlines(&self.file, 0, self.first_line_at)?
        };
        self.counted = (self.first_line_at, before);
        Ok(before + index + 1)
    }

    /// The number of lines in the whole file as it was opened, counting a last line
    /// without a newline.
    pub fn lines_in_file(&mut self) -> io::Result<u64> {
        if let Some(n) = self.lines_in_file {
            return Ok(n);
        }
        let mut n = 0;
        if self.size > 0 {
            let mut last = [0u8];
            self.file.read_exact_at(&mut last, self.size - 1)?;
            n = count_newlines(&self.file, 0, self.size)? + u64::from(last[0] != b'\n');
        }
        self.lines_in_file = Some(n);
        Ok(n)
    }
}

/// The newlines in bytes `[from, to)` of `file`, read by position: the file's own
/// position does not move.
fn count_newlines(file: &File, from: u64, to: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; BLOCK.min(to.saturating_sub(from) as usize)];
    let mut count = 0u64;
    let mut at = from;
    while at < to {
        let want = buf.len().min((to - at) as usize);
        match file.read_at(&mut buf[..want], at) {
            Ok(0) => break,
            Ok(n) => {
                count += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
                at += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_line_once_with_true_numbers() {
        let dir = std::env::temp_dir().join(format!("kappa-range-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lines.txt");
        let text: String = (1..=500).map(|i| format!("{}{}\n", i, "x".repeat(i % 17))).collect();
        std::fs::write(&path, &text).unwrap();
        for parts in [1, 2, 3, 7, 64, 600] {
            let mut seen = Vec::new();
            for part in 0..parts {
                let mut range = FileRange::open(&path, part, parts, 1000).unwrap();
                let mut got = Vec::new();
                while range
                    .next_block(|l| got.push((l.index, String::from_utf8(l.bytes.to_vec()).unwrap())))
                    .unwrap()
                {}
                for (index, line) in got {
                    let number = range.line_number(index).unwrap();
                    let lead: u64 = line.trim_end_matches('x').parse().unwrap();
                    assert_eq!(number, lead, "parts {parts} part {part}");
                    seen.push(number);
                }
            }
            assert_eq!(seen, (1..=500).collect::<Vec<_>>(), "parts {parts}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_large_file_is_read_in_interleaved_stripes_each_line_once_with_true_numbers() {
        let dir = std::env::temp_dir().join(format!("kappa-stripes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lines.txt");
        // About 18 MB: two stripes or more for worker 0 at every worker count below.
        let text: String = (1..=600_000).map(|i| format!("{}{}\n", i, "x".repeat(i % 47))).collect();
        std::fs::write(&path, &text).unwrap();
        for parts in [1, 2, 3] {
            let mut seen = Vec::new();
            let mut gaps = Vec::new();
            for part in 0..parts {
                let mut range = FileRange::open(&path, part, parts, 1000).unwrap();
                let mut mine = Vec::new();
                loop {
                    let mut got = Vec::new();
                    let more = range
                        .next_block(|l| got.push((l.index, String::from_utf8(l.bytes.to_vec()).unwrap())))
                        .unwrap();
                    for (index, line) in got {
                        let number = range.line_number(index).unwrap();
                        let lead: u64 = line.trim_end_matches('x').parse().unwrap();
                        assert_eq!(number, lead, "parts {parts} part {part}");
                        mine.push(number);
                    }
                    if !more {
                        break;
                    }
                }
                // Lines skipped between a worker's first and last: other workers' stripes.
                gaps.push(mine.last().unwrap() + 1 - mine[0] - mine.len() as u64);
                seen.extend(mine);
            }
            seen.sort_unstable();
            assert_eq!(seen, (1..=600_000).collect::<Vec<_>>(), "parts {parts}");
            assert_eq!(gaps[0] > 0, parts > 1, "parts {parts}: worker 0 reads interleaved stripes: {gaps:?}");
        }
        // Resumed at each position it reports, between blocks and stripes alike.
        let mut whole = Vec::new();
        let mut range = FileRange::open(&path, 1, 2, 1000).unwrap();
        let mut positions = Vec::new();
        loop {
            positions.push(range.position());
            let mut got = Vec::new();
            let more = range.next_block(|l| got.push(l.index)).unwrap();
            whole.push(got.into_iter().map(|i| range.line_number(i).unwrap()).collect::<Vec<_>>());
            if !more {
                break;
            }
        }
        for (k, at) in positions.iter().enumerate() {
            let Some(at) = at else { continue };
            let mut resumed = FileRange::resume(&path, 1, 2, 1000, Some(*at)).unwrap();
            let mut rest = Vec::new();
            loop {
                let mut got = Vec::new();
                let more = resumed.next_block(|l| got.push(l.index)).unwrap();
                rest.extend(got.into_iter().map(|i| resumed.line_number(i).unwrap()));
                if !more {
                    break;
                }
            }
            assert_eq!(rest, whole[k..].concat(), "resumed at block {k}");
        }
        assert!(positions.iter().any(Option::is_none), "a stripe boundary was crossed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_range_resumed_at_its_reported_position_reads_the_rest_with_the_same_numbers() {
        let dir = std::env::temp_dir().join(format!("kappa-range-resume-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lines.txt");
        let text: String = (1..=40_000).map(|i| format!("{}{}\n", i, "x".repeat(i % 53))).collect();
        std::fs::write(&path, &text).unwrap();
        let read_all = |range: &mut FileRange, out: &mut Vec<u64>| {
            let mut got = Vec::new();
            while range.next_block(|l| got.push(l.index)).unwrap() {}
            out.extend(got.into_iter().map(|i| range.line_number(i).unwrap()));
        };
        for part in 0..3 {
            let mut whole = Vec::new();
            read_all(&mut FileRange::open(&path, part, 3, 1000).unwrap(), &mut whole);
            // Stop after the first block, resume from the position in a new range.
            let mut range = FileRange::open(&path, part, 3, 1000).unwrap();
            let mut first = Vec::new();
            range.next_block(|l| first.push(l.index)).unwrap();
            let mut resumed: Vec<u64> = first.into_iter().map(|i| range.line_number(i).unwrap()).collect();
            let at = range.position().unwrap();
            read_all(&mut FileRange::resume(&path, part, 3, 1000, Some(at)).unwrap(), &mut resumed);
            assert_eq!(resumed, whole, "part {part}");
        }
        std::fs::write(&path, "changed\n").unwrap();
        let mut range = FileRange::open(&path, 0, 1, 1000).unwrap();
        let at = FilePosition { size: 5, ..range.position().unwrap() };
        assert!(FileRange::resume(&path, 0, 1, 1000, Some(at)).is_err(), "a changed file is refused");
        while range.next_block(|_| {}).unwrap() {}
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn line_numbers_come_from_the_file_read_even_if_its_path_is_replaced_or_deleted() {
        let dir = std::env::temp_dir().join(format!("kappa-range-gone-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lines.txt");
        let text: String = (1..=300).map(|i| format!("{i}\n")).collect();
        for replace in [false, true] {
            std::fs::write(&path, &text).unwrap();
            let mut range = FileRange::open(&path, 1, 3, 1000).unwrap();
            let mut got = Vec::new();
            while range.next_block(|l| got.push((l.index, l.bytes.to_vec()))).unwrap() {}
            std::fs::remove_file(&path).unwrap();
            if replace {
                std::fs::write(&path, "another\nfile\n").unwrap();
            }
            let (index, line) = got.last().unwrap();
            let number = range.line_number(*index).unwrap();
            assert_eq!(number.to_string().as_bytes(), &line[..], "replaced {replace}");
            assert_eq!(range.lines_in_file().unwrap(), 300, "replaced {replace}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
