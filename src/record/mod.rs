//! Record kinds: one file per kind, holding the type, its parser and its generator.
//!
//! A record kind implements [`LineFormat`]: it recognises its header line, parses one
//! line into a borrowed view without allocating, and names the view's event time.
//! The ingest operator is generic over `LineFormat`, so every job reads every input
//! kind through the same code.

use std::borrow::Cow;

use crate::time::Millis;

pub mod csv;
pub mod transaction;

/// Why a line was rejected: a short, human-readable reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub Cow<'static, str>);

impl ParseError {
    /// A reason known at compile time.
    pub const fn fixed(reason: &'static str) -> Self {
        ParseError(Cow::Borrowed(reason))
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for ParseError {
    fn from(reason: String) -> Self {
        ParseError(Cow::Owned(reason))
    }
}

/// A line-oriented record format.
pub trait LineFormat: 'static {
    /// The parsed, borrowed view of one line.
    type Parsed<'a>;
    /// A short name for messages, such as `transaction`.
    const NAME: &'static str;
    /// Whether `line` is the format's header line, which is skipped rather than rejected.
    fn is_header(line: &str) -> bool;
    /// Parses one line (without its line terminator).
    fn parse(line: &str) -> Result<Self::Parsed<'_>, ParseError>;
    /// The event time of a parsed record.
    fn event_time(parsed: &Self::Parsed<'_>) -> Millis;
}
