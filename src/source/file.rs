//! A bounded file, split among all workers by byte ranges aligned to lines.
//!
//! Worker `i` of `n` owns the lines whose first byte lies in
//! `[size * i / n, size * (i + 1) / n)`. Line numbers are counted from the range start
//! and made absolute only when a line is rejected: the count of newlines before the
//! range is computed once, on the first reject, so clean input pays nothing for it.
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

/// Where a [`FileRange`] resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FilePosition {
    /// The file offset of the next line to read.
    pub next_line: u64,
    /// Its index in the range (lines before it in the range).
    pub index: u64,
    /// The offset of the range's first line, for line numbers.
    pub first_line_at: u64,
    /// The file's size when it was first opened: a file that changed is refused.
    pub size: u64,
}

/// One worker's byte range of a file.
pub struct FileRange {
    splitter: LineSplitter<File>,
    /// The file offset the splitter started reading at.
    base: u64,
    /// Offset of the range's first line, once known.
    first_line_at: u64,
    /// Lines before the range's first line, computed on demand.
    lines_before: Option<u64>,
    /// The file's size when it was opened.
    size: u64,
    /// Lines in the whole file, computed on demand.
    lines_in_file: Option<u64>,
}

impl FileRange {
    /// Opens the `part`-th of `parts` byte ranges of `path`.
    pub fn open(path: &Path, part: usize, parts: usize, max_line: usize) -> io::Result<Self> {
        Self::resume(path, part, parts, max_line, None)
    }

    /// Opens the `part`-th of `parts` byte ranges of `path` at `at`, a position this
    /// range reported ([`FileRange::position`]), or at its start.
    pub fn resume(
        path: &Path,
        part: usize,
        parts: usize,
        max_line: usize,
        at: Option<FilePosition>,
    ) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let size = file.metadata()?.len();
        let start = (size as u128 * part as u128 / parts as u128) as u64;
        let end = (size as u128 * (part as u128 + 1) / parts as u128) as u64;
        if let Some(at) = at {
            if size != at.size || at.next_line < start.saturating_sub(1) || at.next_line > size {
                return Err(io::Error::other(format!(
                    "changed since the checkpoint (size {size}, was {})",
                    at.size
                )));
            }
            file.seek(SeekFrom::Start(at.next_line))?;
            let splitter = LineSplitter::new(file, BLOCK, max_line)
                .stop_at(end.saturating_sub(at.next_line))
                .starting_at(at.index);
            return Ok(FileRange {
                splitter,
                base: at.next_line,
                first_line_at: at.first_line_at,
                lines_before: Some(0).filter(|_| start == 0),
                size,
                lines_in_file: None,
            });
        }
        let seek_to = start.saturating_sub(1);
        file.seek(SeekFrom::Start(seek_to))?;
        let mut splitter = LineSplitter::new(file, BLOCK, max_line).stop_at(end - seek_to);
        let mut first_line_at = 0;
        if start > 0 {
            // The byte before `start` decides: a newline there means our range starts a line.
            splitter.skip_partial_first_line()?;
            first_line_at = seek_to + splitter.consumed();
        }
        Ok(FileRange {
            splitter,
            base: seek_to,
            first_line_at,
            lines_before: Some(0).filter(|_| start == 0),
            size,
            lines_in_file: None,
        })
    }

    /// Where the range would resume: the next line's offset and index. `None` in the
    /// middle of an over-long line.
    pub fn position(&self) -> Option<FilePosition> {
        let (consumed, index) = self.splitter.between_lines()?;
        Some(FilePosition {
            next_line: self.base + consumed,
            index,
            first_line_at: self.first_line_at,
            size: self.size,
        })
    }

    /// Hands out the lines of the next block; `Ok(false)` once the range is exhausted.
    pub fn next_block(&mut self, each: impl FnMut(Line<'_>)) -> io::Result<bool> {
        self.splitter.next_block(each)
    }

    /// The 1-based line number in the whole file of the range's `index`-th line.
    pub fn line_number(&mut self, index: u64) -> io::Result<u64> {
        let before = match self.lines_before {
            Some(n) => n,
            None => {
                let n = count_newlines(self.splitter.get_ref(), self.first_line_at)?;
                self.lines_before = Some(n);
                n
            }
        };
        Ok(before + index + 1)
    }

    /// The number of lines in the whole file as it was opened, counting a last line
    /// without a newline.
    pub fn lines_in_file(&mut self) -> io::Result<u64> {
        if let Some(n) = self.lines_in_file {
            return Ok(n);
        }
        let file = self.splitter.get_ref();
        let mut n = 0;
        if self.size > 0 {
            let mut last = [0u8];
            file.read_exact_at(&mut last, self.size - 1)?;
            n = count_newlines(file, self.size)? + u64::from(last[0] != b'\n');
        }
        self.lines_in_file = Some(n);
        Ok(n)
    }
}

/// The newlines in the first `len` bytes of `file`, read by position: the file's own
/// position does not move.
fn count_newlines(file: &File, len: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; BLOCK.min(len as usize)];
    let mut count = 0u64;
    let mut at = 0u64;
    while at < len {
        let want = buf.len().min((len - at) as usize);
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
