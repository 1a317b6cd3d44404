//! A bounded file, split among all workers by byte ranges aligned to lines.
//!
//! Worker `i` of `n` owns the lines whose first byte lies in
//! `[size * i / n, size * (i + 1) / n)`. Line numbers are counted from the range start
//! and made absolute only when a line is rejected: the count of newlines before the
//! range is computed once, on the first reject, so clean input pays nothing for it.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::lines::{Line, LineSplitter};

/// Block size for file reads.
pub const BLOCK: usize = 1 << 20;

/// One worker's byte range of a file.
pub struct FileRange {
    path: PathBuf,
    splitter: LineSplitter<File>,
    /// Offset of the range's first line, once known.
    first_line_at: u64,
    /// Lines before the range's first line, computed on demand.
    lines_before: Option<u64>,
}

impl FileRange {
    /// Opens the `part`-th of `parts` byte ranges of `path`.
    pub fn open(path: &Path, part: usize, parts: usize, max_line: usize) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let size = file.metadata()?.len();
        let start = (size as u128 * part as u128 / parts as u128) as u64;
        let end = (size as u128 * (part as u128 + 1) / parts as u128) as u64;
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
            path: path.to_owned(),
            splitter,
            first_line_at,
            lines_before: Some(0).filter(|_| start == 0),
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
                let n = count_newlines(File::open(&self.path)?.take(self.first_line_at))?;
                self.lines_before = Some(n);
                n
            }
        };
        Ok(before + index + 1)
    }
}

/// The number of lines in the file at `path`, counting a last line without a newline.
pub fn count_lines(path: &Path) -> io::Result<u64> {
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    let newlines = count_newlines(&mut file)?;
    if size == 0 {
        return Ok(0);
    }
    let mut last = [0u8];
    file.seek(SeekFrom::Start(size - 1))?;
    file.read_exact(&mut last)?;
    Ok(newlines + u64::from(last[0] != b'\n'))
}

fn count_newlines(mut reader: impl Read) -> io::Result<u64> {
    let mut buf = vec![0u8; BLOCK];
    let mut count = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(count),
            Ok(n) => count += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
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
}
