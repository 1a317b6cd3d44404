//! Cutting a byte stream into lines, with numbers, length limits and CRLF handling.
//!
//! The splitter reads big blocks and hands out borrowed lines, so a line costs no
//! allocation. A line longer than the limit is not buffered: the splitter keeps its
//! first bytes for the rejects file and skips the rest, so one 1 GB line cannot
//! exhaust memory.

use std::io::{self, Read};
use std::time::Duration;

use crate::diag::EXCERPT_BYTES;

/// What a reader reports after handing out a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// More lines are ready to be read now.
    More,
    /// Nothing now; the reader's intake will wake the operator.
    Idle,
    /// Nothing until this much time has passed.
    Wait(Duration),
    /// The input has ended.
    Done,
}

/// One line handed out by a reader.
#[derive(Debug)]
pub struct Line<'a> {
    /// The reader-relative index of this line (0 for the reader's first line).
    pub index: u64,
    /// The line without its terminator; for an over-long line, only its first bytes.
    pub bytes: &'a [u8],
    /// For an over-long line, its full length in bytes.
    pub overlong: Option<u64>,
}

/// Splits a `Read` into lines, reading in large blocks.
pub struct LineSplitter<R> {
    reader: R,
    buf: Vec<u8>,
    /// Start of unconsumed bytes in `buf`.
    head: usize,
    /// End of valid bytes in `buf`.
    tail: usize,
    eof: bool,
    max_line: usize,
    next_index: u64,
    /// Bytes of stream consumed before `buf[0]`.
    offset: u64,
    /// Lines starting at or after this stream offset are not handed out.
    stop_at: u64,
    /// An over-long line in progress: (excerpt, length so far).
    skipping: Option<(Vec<u8>, u64)>,
    /// Following a growing file: end of stream is not the end of the last line.
    follow: bool,
}

impl<R: Read> LineSplitter<R> {
    /// A splitter with blocks of `block` bytes that rejects lines longer than `max_line`.
    pub fn new(reader: R, block: usize, max_line: usize) -> Self {
        let cap = block.max(max_line + 1).max(4096);
        LineSplitter {
            reader,
            buf: vec![0; cap],
            head: 0,
            tail: 0,
            eof: false,
            max_line,
            next_index: 0,
            offset: 0,
            stop_at: u64::MAX,
            skipping: None,
            follow: false,
        }
    }

    /// Follows a growing stream: at end of stream, a last line without a terminator is
    /// kept back (its writer may not have finished it) until [`Self::finish`].
    pub fn follow(mut self) -> Self {
        self.follow = true;
        self
    }

    /// After end of stream in follow mode, tries reading again.
    pub fn resume(&mut self) {
        self.eof = false;
    }

    /// Ends follow mode: the next block hands out any unterminated last line.
    pub fn finish(&mut self) {
        self.follow = false;
        self.eof = false;
    }

    /// Whether the last read found the end of the stream.
    pub fn at_eof(&self) -> bool {
        self.eof
    }

    /// The underlying reader.
    pub fn get_ref(&self) -> &R {
        &self.reader
    }

    /// The underlying reader, mutably.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    /// Stops handing out lines that begin at or after `offset` bytes into the stream.
    pub fn stop_at(mut self, offset: u64) -> Self {
        self.stop_at = offset;
        self
    }

    /// Bytes of the stream consumed so far.
    pub fn consumed(&self) -> u64 {
        self.offset + self.head as u64
    }

    /// Whether the stream is exhausted.
    pub fn is_done(&self) -> bool {
        self.eof && self.head == self.tail && self.skipping.is_none()
    }

    /// Skips the partial line at the start of the stream (used by all but the first byte range).
    pub fn skip_partial_first_line(&mut self) -> io::Result<()> {
        loop {
            if let Some(k) = memchr::memchr(b'\n', &self.buf[self.head..self.tail]) {
                self.head += k + 1;
                return Ok(());
            }
            self.head = self.tail;
            if self.eof {
                return Ok(());
            }
            self.fill()?;
        }
    }

    fn fill(&mut self) -> io::Result<usize> {
        if self.head > 0 {
            self.buf.copy_within(self.head..self.tail, 0);
            self.offset += self.head as u64;
            self.tail -= self.head;
            self.head = 0;
        }
        if self.tail == self.buf.len() {
            // A full buffer with no newline can only be an over-long line being kept.
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.reader.read(&mut self.buf[self.tail..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(0);
                }
                Ok(n) => {
                    self.tail += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Hands out every complete line now in the buffer, after reading at most one block.
    ///
    /// Returns `Ok(true)` while more lines may follow. At end of stream a final line
    /// without a terminator is handed out too.
    pub fn next_block(&mut self, mut each: impl FnMut(Line<'_>)) -> io::Result<bool> {
        if !self.eof {
            self.fill()?;
        }
        loop {
            let start_offset = self.offset + self.head as u64;
            let window = &self.buf[self.head..self.tail];
            if let Some((excerpt, len)) = self.skipping.as_mut() {
                match memchr::memchr(b'\n', window) {
                    Some(k) => {
                        *len += k as u64;
                        self.head += k + 1;
                        let (excerpt, len) = self.skipping.take().expect("skipping");
                        let index = self.next_index;
                        self.next_index += 1;
                        each(Line { index, bytes: &excerpt, overlong: Some(len) });
                        continue;
                    }
                    None if self.eof => {
                        *len += window.len() as u64;
                        self.head = self.tail;
                        let (excerpt, len) = self.skipping.take().expect("skipping");
                        let index = self.next_index;
                        self.next_index += 1;
                        each(Line { index, bytes: &excerpt, overlong: Some(len) });
                        return Ok(false);
                    }
                    None => {
                        *len += window.len() as u64;
                        let keep = EXCERPT_BYTES.saturating_sub(excerpt.len()).min(window.len());
                        excerpt.extend_from_slice(&window[..keep]);
                        self.head = self.tail;
                        return Ok(true);
                    }
                }
            }
            if start_offset >= self.stop_at || (self.eof && window.is_empty()) {
                self.head = self.tail;
                if !self.follow {
                    self.eof = true;
                }
                return Ok(false);
            }
            match memchr::memchr(b'\n', window) {
                Some(k) if k <= self.max_line || (k == self.max_line + 1 && window[k - 1] == b'\r') => {
                    let mut line = &window[..k];
                    if let [rest @ .., b'\r'] = line {
                        line = rest;
                    }
                    let index = self.next_index;
                    self.next_index += 1;
                    self.head += k + 1;
                    each(Line { index, bytes: line, overlong: None });
                }
                Some(_) => {
                    // Over-long, but complete in the buffer.
                    let k = memchr::memchr(b'\n', window).expect("found");
                    let index = self.next_index;
                    self.next_index += 1;
                    self.head += k + 1;
                    each(Line { index, bytes: &window[..EXCERPT_BYTES.min(k)], overlong: Some(k as u64) });
                }
                None if window.len() > self.max_line => {
                    let excerpt = window[..EXCERPT_BYTES.min(window.len())].to_vec();
                    self.skipping = Some((excerpt, window.len() as u64));
                    self.head = self.tail;
                    if self.eof {
                        continue;
                    }
                    return Ok(true);
                }
                None if self.eof && self.follow => return Ok(false),
                None if self.eof => {
                    let mut line = window;
                    if let [rest @ .., b'\r'] = line {
                        line = rest;
                    }
                    let index = self.next_index;
                    self.next_index += 1;
                    self.head = self.tail;
                    each(Line { index, bytes: line, overlong: None });
                    return Ok(false);
                }
                None => return Ok(true),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], block: usize, max: usize) -> Vec<(u64, Vec<u8>, Option<u64>)> {
        let mut s = LineSplitter::new(input, block, max);
        let mut out = Vec::new();
        while s.next_block(|l| out.push((l.index, l.bytes.to_vec(), l.overlong))).unwrap() {}
        assert!(s.is_done());
        out
    }

    #[test]
    fn splits_lines_across_blocks() {
        let text = b"a\r\nbb\n\nccc";
        for block in [1, 2, 3, 4096] {
            let got = lines(text, block, 100);
            let want: Vec<(u64, Vec<u8>, Option<u64>)> = vec![
                (0, b"a".to_vec(), None),
                (1, b"bb".to_vec(), None),
                (2, b"".to_vec(), None),
                (3, b"ccc".to_vec(), None),
            ];
            assert_eq!(got, want, "block {block}");
        }
    }

    #[test]
    fn overlong_lines_are_cut_not_buffered() {
        let mut text = b"ok\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 10_000));
        text.extend_from_slice(b"\nfine\n");
        text.extend(std::iter::repeat_n(b'y', 300));
        for block in [64, 4096, 1 << 20] {
            let got = lines(&text, block, 200);
            assert_eq!(got.len(), 4, "block {block}");
            assert_eq!(got[1].2, Some(10_000));
            assert_eq!(got[1].1.len(), EXCERPT_BYTES);
            assert_eq!(got[2].1, b"fine");
            assert_eq!(got[3].2, Some(300));
        }
    }
}
