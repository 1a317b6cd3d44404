//! Diagnostics: what ingest counts, and the records it sets aside.
//!
//! Every data line is counted exactly once, as accepted, rejected or late, so
//! `read = accepted + rejected + late` holds on every worker and in every summary. A
//! rejected line and a late record keep where they came from (origin and line), so a
//! user can find them; they travel to the diagnostics sink beside the records.

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// How much of a line a rejects or late entry shows.
pub const EXCERPT_BYTES: usize = 120;

/// A line that did not parse.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Rejected {
    /// The input it came from.
    pub origin: String,
    /// Its 1-based line number.
    pub line: u64,
    /// Why it was rejected.
    pub reason: String,
    /// The start of the line, made printable.
    pub text: String,
}

/// A record that arrived behind the watermark.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Late {
    /// The input it came from.
    pub origin: String,
    /// Its 1-based line number.
    pub line: u64,
    /// Its event time.
    pub event_time: Millis,
    /// The watermark it was behind.
    pub watermark: Millis,
    /// The line, made printable.
    pub text: String,
}

/// What ingest counted on one worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Counts {
    /// Data lines seen (header lines excluded).
    pub read: u64,
    /// Lines that parsed and were sent on.
    pub accepted: u64,
    /// Lines rejected as malformed.
    pub rejected: u64,
    /// Records behind the watermark.
    pub late: u64,
    /// Bytes of input handed to the parser.
    pub bytes: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.read += o.read;
        self.accepted += o.accepted;
        self.rejected += o.rejected;
        self.late += o.late;
        self.bytes += o.bytes;
    }
}

/// Diagnostics that travel beside the records to the diagnostics sink.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Diag {
    /// A malformed line.
    Reject(Rejected),
    /// A record behind the watermark.
    Late(Late),
    /// A worker's final counts.
    Counts(Counts),
}

/// Printable text from the start of `bytes`: at most `limit` bytes, invalid UTF-8 and
/// control characters shown as U+FFFD, and `…` when something was cut.
///
/// Used for a rejected line in the rejects file and for a bad value in a reject reason,
/// so that no message can carry a terminal escape or a megabyte of text.
pub fn excerpt(bytes: &[u8], limit: usize) -> String {
    let cut = &bytes[..bytes.len().min(limit)];
    let text = String::from_utf8_lossy(cut);
    let mut out: String = text.chars().map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect();
    if bytes.len() > limit {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_and_printable() {
        assert_eq!(excerpt(b"abc", 10), "abc");
        assert_eq!(excerpt(b"abcdef", 3), "abc…");
        assert_eq!(excerpt(b"a\x1b[2Jb", 10), "a\u{fffd}[2Jb");
        assert_eq!(excerpt(b"\xff\xfe", 10), "\u{fffd}\u{fffd}");
    }
}
