//! Record kinds: one file per kind, holding the type, its parser and its generator.
//!
//! A record kind implements [`LineFormat`]: it recognises its header line, parses one
//! line into a borrowed view without allocating, and names the view's event time.
//! The ingest operator is generic over `LineFormat`, so every job reads every input
//! kind through the same code. Every kind rejects event times outside
//! 1970-01-01..9999-12-31 UTC ([`MAX_EVENT_TIME`]).

use std::borrow::Cow;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

use crate::time::{DAY_MS, Millis};

pub mod access_log;
pub mod click;
pub mod csv;
pub mod features;
pub mod json;
pub mod playback;
pub mod registry;
pub mod sensor;
pub mod series;
pub mod transaction;

/// The default first generated timestamp: 2026-10-01T00:00:00Z.
pub const DEFAULT_START: Millis = 1_790_812_800_000;

/// The first supported event time: 1970-01-01T00:00:00Z.
pub const MIN_EVENT_TIME: Millis = 0;

/// The last supported event time: 9999-12-31T23:59:59.999Z.
///
/// Every parser rejects a record whose event time falls outside
/// [`MIN_EVENT_TIME`]`..=MAX_EVENT_TIME` with a reason starting `timestamp out of range`
/// ([`event_time_in_range`]). The bound keeps event times about 2^47, so window and epoch
/// arithmetic downstream (a window's end is `time - time % size + size`) stays far
/// from `u64::MAX`, and every accepted time prints as a four-digit year.
pub const MAX_EVENT_TIME: Millis = 253_402_300_799_999;

/// Checks that `time` (milliseconds since the epoch, negative before 1970) is within
/// [`MIN_EVENT_TIME`]`..=`[`MAX_EVENT_TIME`]; `text` is the field as written, for the reason.
#[inline]
pub fn event_time_in_range(time: i128, text: &str) -> Result<Millis, ParseError> {
    if (MIN_EVENT_TIME as i128..=MAX_EVENT_TIME as i128).contains(&time) {
        Ok(time as Millis)
    } else {
        Err(ParseError::from(format!(
            "timestamp out of range '{}': event times must lie in 1970-01-01..9999-12-31 UTC",
            crate::diag::excerpt(text.as_bytes(), 40)
        )))
    }
}

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

/// Where generated timestamps fall.
#[derive(Clone, Copy, Debug)]
pub enum Timeline {
    /// Uniformly at random over `[start, start + span)`, at whole seconds: a shuffled history.
    Shuffled {
        /// First possible timestamp.
        start: Millis,
        /// Length of the range.
        span: u64,
    },
    /// Row `i` at `start + i * step`, minus a random delay of up to `jitter`: a live feed
    /// with bounded disorder.
    Ordered {
        /// Timestamp of row 0.
        start: Millis,
        /// Nanoseconds between consecutive rows.
        step_nanos: u64,
        /// Largest delay of a row behind its place in the order.
        jitter: u64,
    },
}

impl Timeline {
    /// 30 days of shuffled history from [`DEFAULT_START`], as in the notebooks.
    pub fn default_history() -> Self {
        Timeline::Shuffled { start: DEFAULT_START, span: 30 * DAY_MS }
    }

    /// The timestamp of row `index`, drawing any randomness from `rng`.
    #[inline]
    pub fn time_of(&self, index: u64, rng: &mut impl Rng) -> Millis {
        match *self {
            Timeline::Shuffled { start, span } => start + rng.random_range(0..(span / 1000).max(1)) * 1000,
            Timeline::Ordered { start, step_nanos, jitter } => {
                let at = start + (index as u128 * step_nanos as u128 / 1_000_000) as u64;
                at.saturating_sub(if jitter > 0 { rng.random_range(0..=jitter) } else { 0 })
            }
        }
    }
}

/// A seeded generator of one record kind's lines.
///
/// Row `index` must depend only on the generator's seed and `index`, so that any worker
/// can produce any subset of rows and the union is the same data on every machine.
pub trait RowGenerator: Send + Sync {
    /// The header line, if the format has one.
    fn header(&self) -> Option<std::borrow::Cow<'static, str>>;
    /// Appends row `index` (without a newline) to `out`.
    fn write_row(&self, index: u64, out: &mut Vec<u8>);
}

/// A row's random source: a PCG stream seeded from `(seed, index)` only.
#[inline]
pub fn row_rng(seed: u64, index: u64) -> Pcg64Mcg {
    Pcg64Mcg::seed_from_u64(mix(seed ^ mix(index.wrapping_add(0x9e37_79b9_7f4a_7c15))))
}

/// A standard normal deviate from `rng` (Box–Muller), for generators.
pub fn normal(rng: &mut Pcg64Mcg) -> f64 {
    use rand::Rng;
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

#[inline]
fn mix(mut z: u64) -> u64 {
    // SplitMix64's finaliser: decorrelates neighbouring row numbers.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
