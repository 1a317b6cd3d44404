//! Cutting a byte stream into lines, with numbers, length limits and CRLF handling.
//!
//! The splitter reads big blocks and hands out borrowed lines, so a line costs no
//! allocation. A line longer than the limit is not buffered: the splitter keeps its
//! first bytes for the rejects file and skips the rest, so one 1 GB line cannot
//! exhaust memory.
//!
//! The rules are the same for every source (file, stdin, tcp, tail) and do not depend
//! on how reads cut the stream:
//!
//! * A line ends at `\n`; a `\r` just before it is part of the terminator, not the line.
//! * The length limit counts the line's content, without its terminator: a line of
//!   exactly `max_line` bytes is accepted with `\n` or `\r\n`; one byte more is
//!   [`Flaw::TooLong`], reported with its content length.
//! * The last line of a stream without a terminator depends on what ended it
//!   ([`LastLine`]): at the end of a file or of stdin the producer has finished, so it
//!   is a line like any other (as `cat` and `grep` read it); a tcp connection that
//!   closes mid-line, or a live input cut by a stop, leaves a fragment, handed out as
//!   [`Flaw::Truncated`] so that it is counted and rejected, never parsed.

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
    /// The reader-relative index of this line (0 for the reader's first line); from a live
    /// feed, the line's number within its origin (see `live::Batch::first_line`).
    pub index: u64,
    /// The line without its terminator; for an over-long line, only its first bytes.
    pub bytes: &'a [u8],
    /// Why the line is rejected whatever it holds, if it is.
    pub flaw: Option<Flaw>,
}

/// What makes a line a reject before it is parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flaw {
    /// Longer than the limit: its full content length in bytes.
    TooLong(u64),
    /// A fragment: its stream ended, or was cut, before its terminator.
    Truncated,
}

/// What an unterminated last line is when its stream ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LastLine {
    /// A line: the stream is complete (a file, stdin).
    Whole,
    /// A [`Flaw::Truncated`] fragment: the stream was cut (a tcp connection).
    Truncated,
}

/// An over-long line being skipped.
struct Skip {
    /// Its first bytes, for the rejects file.
    excerpt: Vec<u8>,
    /// Bytes seen so far.
    len: u64,
    /// Whether the last byte seen was `\r`, which a following `\n` makes a terminator.
    cr: bool,
    /// The stream offset where it starts.
    start: u64,
}

impl Skip {
    /// Its content length, given that `bytes` more end it (and a terminator follows).
    fn content(&self, bytes: &[u8]) -> u64 {
        let cr = bytes.last().map_or(self.cr, |&b| b == b'\r');
        self.len + bytes.len() as u64 - u64::from(cr)
    }
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
    /// An over-long line in progress.
    skipping: Option<Skip>,
    /// Following a growing file: end of stream is not the end of the last line.
    follow: bool,
    /// What an unterminated last line is.
    last_line: LastLine,
}

impl<R: Read> LineSplitter<R> {
    /// A splitter with blocks of `block` bytes that rejects lines longer than `max_line`.
    pub fn new(reader: R, block: usize, max_line: usize) -> Self {
        // Room for the longest accepted line with its `\r\n`, so the rule cannot depend
        // on the block size.
        let cap = block.max(max_line.saturating_add(2)).max(4096);
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
            last_line: LastLine::Whole,
        }
    }

    /// Sets what an unterminated last line is at the end of the stream (default: a
    /// [`LastLine::Whole`] line).
    pub fn last_line(mut self, last: LastLine) -> Self {
        self.last_line = last;
        self
    }

    /// Follows a growing stream: at end of stream, a last line without a terminator is
    /// kept back (its writer may not have finished it) until [`Self::finish`]. So is an
    /// over-long line being skipped: the rest of it, written later, is still that line.
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

    /// Between lines: the stream offset where the next line starts, and its index.
    /// `None` in the middle of an over-long line.
    pub fn between_lines(&self) -> Option<(u64, u64)> {
        self.skipping.is_none().then(|| (self.consumed(), self.next_index))
    }

    /// Numbers lines from `index` on (a stream resumed in the middle).
    pub fn starting_at(mut self, index: u64) -> Self {
        self.next_index = index;
        self
    }

    /// The stream offset where the next line not yet handed out starts, also in the
    /// middle of an over-long line: a reader that resumes there reads the same lines.
    pub fn line_start(&self) -> u64 {
        self.skipping.as_ref().map_or_else(|| self.consumed(), |skip| skip.start)
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

    /// Ends the stream where it is, without reading more: an over-long line in progress
    /// is handed out as such, and any other unterminated bytes as a truncated line.
    pub fn cut(&mut self, mut each: impl FnMut(Line<'_>)) {
        let window = &self.buf[self.head..self.tail];
        let index = self.next_index;
        if let Some(skip) = self.skipping.take() {
            let len = skip.content(window);
            each(Line { index, bytes: &skip.excerpt, flaw: Some(Flaw::TooLong(len)) });
        } else if !window.is_empty() {
            each(Line { index, bytes: window, flaw: Some(Flaw::Truncated) });
        } else {
            return;
        }
        self.next_index += 1;
        self.head = self.tail;
        self.eof = true;
        self.follow = false;
    }

    /// Reads once into the buffer. A read that times out (`WouldBlock`, `TimedOut`)
    /// reads nothing and is not the end of the stream: the caller polls again.
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
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Ok(0);
                }
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
            if let Some(skip) = self.skipping.as_mut() {
                match memchr::memchr(b'\n', window) {
                    Some(k) => {
                        let len = skip.content(&window[..k]);
                        self.head += k + 1;
                        let skip = self.skipping.take().expect("skipping");
                        let index = self.next_index;
                        self.next_index += 1;
                        each(Line { index, bytes: &skip.excerpt, flaw: Some(Flaw::TooLong(len)) });
                        continue;
                    }
                    None if self.eof && !self.follow => {
                        let len = skip.content(window);
                        self.head = self.tail;
                        let skip = self.skipping.take().expect("skipping");
                        let index = self.next_index;
                        self.next_index += 1;
                        each(Line { index, bytes: &skip.excerpt, flaw: Some(Flaw::TooLong(len)) });
                        return Ok(false);
                    }
                    // Still mid-line, also at the end of a followed file: its writer may
                    // finish the line later, and the rest must not pass for a new line.
                    None => {
                        skip.len += window.len() as u64;
                        if let Some(&last) = window.last() {
                            skip.cr = last == b'\r';
                        }
                        let keep = EXCERPT_BYTES.saturating_sub(skip.excerpt.len()).min(window.len());
                        skip.excerpt.extend_from_slice(&window[..keep]);
                        self.head = self.tail;
                        return Ok(!self.eof);
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
                Some(k) => {
                    let line = strip_cr(&window[..k]);
                    let index = self.next_index;
                    self.next_index += 1;
                    self.head += k + 1;
                    if line.len() <= self.max_line {
                        each(Line { index, bytes: line, flaw: None });
                    } else {
                        let (bytes, len) = (&line[..EXCERPT_BYTES.min(line.len())], line.len() as u64);
                        each(Line { index, bytes, flaw: Some(Flaw::TooLong(len)) });
                    }
                }
                // Over-long for sure: more than the limit even if a `\r` at the end is
                // half of a terminator.
                None if strip_cr(window).len() > self.max_line => {
                    let excerpt = window[..EXCERPT_BYTES.min(window.len())].to_vec();
                    let cr = window.last() == Some(&b'\r');
                    self.skipping = Some(Skip { excerpt, len: window.len() as u64, cr, start: start_offset });
                    self.head = self.tail;
                    if self.eof {
                        continue;
                    }
                    return Ok(true);
                }
                None if self.eof && self.follow => return Ok(false),
                None if self.eof => {
                    let index = self.next_index;
                    self.next_index += 1;
                    self.head = self.tail;
                    match self.last_line {
                        LastLine::Whole => each(Line { index, bytes: strip_cr(window), flaw: None }),
                        LastLine::Truncated => {
                            each(Line { index, bytes: window, flaw: Some(Flaw::Truncated) })
                        }
                    }
                    return Ok(false);
                }
                None => return Ok(true),
            }
        }
    }
}

/// `line` without a final `\r`.
fn strip_cr(line: &[u8]) -> &[u8] {
    match line {
        [rest @ .., b'\r'] => rest,
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Got = Vec<(u64, Vec<u8>, Option<Flaw>)>;

    fn lines(input: &[u8], block: usize, max: usize) -> Got {
        lines_ending(input, block, max, LastLine::Whole)
    }

    fn lines_ending(input: &[u8], block: usize, max: usize, last: LastLine) -> Got {
        let mut s = LineSplitter::new(Trickle(input, block), block, max).last_line(last);
        let mut out = Vec::new();
        while s.next_block(|l| out.push((l.index, l.bytes.to_vec(), l.flaw))).unwrap() {}
        assert!(s.is_done());
        out
    }

    #[test]
    fn splits_lines_across_blocks() {
        let text = b"a\r\nbb\n\nccc";
        for block in [1, 2, 3, 4096] {
            let got = lines(text, block, 100);
            let want: Got = vec![
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
            assert_eq!(got[1].2, Some(Flaw::TooLong(10_000)));
            assert_eq!(got[1].1.len(), EXCERPT_BYTES);
            assert_eq!(got[2].1, b"fine");
            assert_eq!(got[3].2, Some(Flaw::TooLong(300)));
        }
    }

    /// A reader that returns at most `.1` bytes per read, as a pipe or socket may.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn the_length_limit_counts_content_without_the_terminator_for_every_block_size() {
        // The block sizes of files, tail, stdin and tcp, and reads cut anywhere; limits
        // at and around the buffer's size, where the rule used to depend on it.
        for max in [100, 4094, 4095, 4096, 65_535, 65_536] {
            for block in [1, 7, 4096, crate::source::live::PUMP_BLOCK, 256 << 10, crate::source::file::BLOCK]
            {
                let at = |n: usize, end: &str| [vec![b'x'; n], end.as_bytes().to_vec()].concat();
                let text =
                    [at(max, "\r\n"), at(max, "\n"), at(max + 1, "\r\n"), at(max + 1, "\n"), at(max, "\r")]
                        .concat();
                let got = lines(&text, block, max);
                let flaws: Vec<Option<Flaw>> = got.iter().map(|l| l.2).collect();
                let too_long = Some(Flaw::TooLong(max as u64 + 1));
                assert_eq!(flaws, [None, None, too_long, too_long, None], "max {max} block {block}");
                assert_eq!(got[0].1.len(), max, "max {max} block {block}");
                assert_eq!(got[4].1.len(), max, "a last line's \\r is not content: max {max} block {block}");
            }
        }
    }

    /// A file that grows between reads; a read at its current end returns 0.
    struct Growing(std::rc::Rc<std::cell::RefCell<Vec<u8>>>, usize);

    impl Read for Growing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let data = self.0.borrow();
            let n = buf.len().min(data.len() - self.1);
            buf[..n].copy_from_slice(&data[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }

    #[test]
    fn a_followed_over_long_line_written_in_two_writes_is_one_reject() {
        let file = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut s = LineSplitter::new(Growing(file.clone(), 0), 4096, 100).follow();
        let mut got: Got = Vec::new();
        let read_to_end = |s: &mut LineSplitter<Growing>, got: &mut Got| {
            s.resume();
            while !s.at_eof() {
                s.next_block(|l| got.push((l.index, l.bytes.to_vec(), l.flaw))).unwrap();
            }
        };
        file.borrow_mut().extend_from_slice(&[b"ok\n".to_vec(), vec![b'x'; 150]].concat());
        read_to_end(&mut s, &mut got);
        // The writer finishes the line later; its end is not a line of its own.
        file.borrow_mut().extend_from_slice(b"tail\nnext\n");
        read_to_end(&mut s, &mut got);
        s.finish();
        read_to_end(&mut s, &mut got);
        let flaws: Vec<Option<Flaw>> = got.iter().map(|l| l.2).collect();
        assert_eq!(flaws, [None, Some(Flaw::TooLong(154)), None], "{got:?}");
        assert_eq!((&got[0].1[..], &got[2].1[..]), (&b"ok"[..], &b"next"[..]));
    }

    #[test]
    fn a_reader_resumed_where_the_next_line_starts_reads_the_same_lines_also_mid_over_long_line() {
        let file = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let mut s = LineSplitter::new(Growing(file.clone(), 0), 4096, 100).follow();
        let read_to_end = |s: &mut LineSplitter<Growing>, got: &mut Got| {
            s.resume();
            while !s.at_eof() {
                s.next_block(|l| got.push((l.index, l.bytes.to_vec(), l.flaw))).unwrap();
            }
        };
        let mut first: Got = Vec::new();
        file.borrow_mut().extend_from_slice(&[b"ok\n".to_vec(), vec![b'x'; 150]].concat());
        read_to_end(&mut s, &mut first);
        // Skipping the over-long line: it starts after "ok\n", not where reading stopped.
        assert_eq!((s.line_start(), s.consumed()), (3, 153));
        file.borrow_mut().extend_from_slice(b"tail\nnext\npart");
        let mut rest: Got = Vec::new();
        read_to_end(&mut s, &mut rest);
        assert_eq!(s.line_start(), 163, "an unterminated last line is not yet handed out");
        let mut resumed = LineSplitter::new(Growing(file.clone(), 3), 4096, 100).follow().starting_at(1);
        let mut again: Got = Vec::new();
        read_to_end(&mut resumed, &mut again);
        assert_eq!(again, rest);
        assert_eq!(rest.len(), 2, "{rest:?}");
    }

    #[test]
    fn an_unterminated_last_line_is_whole_at_the_end_of_a_file_and_truncated_when_cut() {
        let text = b"a\nbb\ncc";
        for block in [1, 4096] {
            let whole = lines_ending(text, block, 100, LastLine::Whole);
            assert_eq!(whole[2], (2, b"cc".to_vec(), None));
            let cut = lines_ending(text, block, 100, LastLine::Truncated);
            assert_eq!(cut.len(), 3);
            assert_eq!(cut[2], (2, b"cc".to_vec(), Some(Flaw::Truncated)));
            // A stream that ends with its newline has no fragment.
            assert_eq!(lines_ending(b"a\n", block, 100, LastLine::Truncated), [(0, b"a".to_vec(), None)]);
        }
    }
}
