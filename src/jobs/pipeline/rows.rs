//! The rows of the `pipeline` job's result streams, each printable ([`Tabular`]) and
//! storable as a database table ([`TableRow`]).
//!
//! Ratios are exact: a share is kept as its numerator and denominator, and printed as a
//! fixed-point fraction with [`RATIO_DECIMALS`] decimals, rounded half away from zero.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::record::playback::{DeviceType, EventType};
use crate::sink::postgres::TableRow;
use crate::sink::{Cell, Tabular};
use crate::time::Millis;

/// Decimals of printed ratios.
pub const RATIO_DECIMALS: u32 = 4;

/// `num / den` as a fixed-point integer with [`RATIO_DECIMALS`] decimals, rounded half
/// away from zero (both are non-negative); 0 when `den` is 0.
pub fn ratio(num: i64, den: i64) -> i128 {
    if den == 0 {
        return 0;
    }
    let scale = 10i128.pow(RATIO_DECIMALS);
    (2 * num as i128 * scale + den as i128) / (2 * den as i128)
}

/// A clean playback event: parsed, checked and not a duplicate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Event {
    /// Event time.
    pub time: Millis,
    /// Its id.
    pub event_id: CompactString,
    /// What happened.
    pub event_type: EventType,
    /// The device.
    pub device_id: CompactString,
    /// Its kind.
    pub device_type: DeviceType,
    /// The title.
    pub title_id: CompactString,
    /// The session.
    pub session_id: CompactString,
    /// Position in the title.
    pub position_ms: u64,
    /// Bitrate.
    pub bitrate_kbps: u64,
    /// The error code of errors and crashes.
    pub error_code: Option<CompactString>,
}

impl Tabular for Event {
    fn columns() -> Vec<&'static str> {
        vec![
            "time",
            "event_id",
            "event_type",
            "device_id",
            "device_type",
            "title_id",
            "session_id",
            "position_ms",
            "bitrate_kbps",
            "error_code",
        ]
    }
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend([
            Cell::Time(self.time),
            Cell::Text(&self.event_id),
            Cell::Text(self.event_type.name()),
            Cell::Text(&self.device_id),
            Cell::Text(self.device_type.name()),
            Cell::Text(&self.title_id),
            Cell::Text(&self.session_id),
            Cell::Int(self.position_ms as i64),
            Cell::Int(self.bitrate_kbps as i64),
            self.error_code.as_deref().map_or(Cell::Null, Cell::Text),
        ]);
    }
    fn group_time(&self) -> Option<Millis> {
        Some(self.time)
    }
}

impl TableRow for Event {
    fn sql_types() -> Vec<&'static str> {
        vec!["bigint", "text", "text", "text", "text", "text", "text", "bigint", "bigint", "text"]
    }
    fn key_columns() -> &'static [usize] {
        &[1]
    }
}

/// A line that did not become a clean event, and why.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Where it came from: the input's name, or `dedup` for a duplicate.
    pub origin: String,
    /// Its line in the input (0 for a duplicate, which names its event instead).
    pub line: u64,
    /// Why it was set aside.
    pub reason: String,
    /// The line, or the duplicate's event id and time.
    pub text: String,
    /// A duplicate's event time, which it is written at (not a column); `None` for a
    /// rejected line, written at ingest's time.
    pub time: Option<Millis>,
}

impl Tabular for DeadLetter {
    fn columns() -> Vec<&'static str> {
        vec!["origin", "line", "reason", "text"]
    }
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend([
            Cell::Text(&self.origin),
            Cell::Int(self.line as i64),
            Cell::Text(&self.reason),
            Cell::Text(&self.text),
        ]);
    }
    fn group_time(&self) -> Option<Millis> {
        self.time
    }
}

impl TableRow for DeadLetter {
    fn sql_types() -> Vec<&'static str> {
        vec!["text", "bigint", "text", "text"]
    }
    fn key_columns() -> &'static [usize] {
        &[0, 1, 3]
    }
}

/// Concurrent viewers of a title in a 10-second window: its distinct sessions with an
/// event in the window.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Viewers {
    /// The window's end (exclusive).
    pub time: Millis,
    /// The title.
    pub title_id: CompactString,
    /// Distinct sessions.
    pub viewers: i64,
}

impl Tabular for Viewers {
    fn current_key() -> &'static [&'static str] {
        &["title_id"]
    }

    fn columns() -> Vec<&'static str> {
        vec!["time", "title_id", "viewers"]
    }
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend([Cell::Time(self.time), Cell::Text(&self.title_id), Cell::Int(self.viewers)]);
    }
}

impl TableRow for Viewers {
    fn sql_types() -> Vec<&'static str> {
        vec!["bigint", "text", "bigint"]
    }
    fn key_columns() -> &'static [usize] {
        &[0, 1]
    }
}

/// Counts of one device type's events in a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceCounts {
    /// Every event.
    pub events: i64,
    /// `play` events.
    pub plays: i64,
    /// `error` and `crash` events.
    pub errors: i64,
    /// `buffering` events.
    pub buffering: i64,
}

impl DeviceCounts {
    /// The counts of one event.
    pub fn one(event_type: EventType) -> Self {
        DeviceCounts {
            events: 1,
            plays: (event_type == EventType::Play) as i64,
            errors: event_type.is_error() as i64,
            buffering: (event_type == EventType::Buffering) as i64,
        }
    }
}

impl differential_dataflow::difference::Semigroup for DeviceCounts {
    fn plus_equals(&mut self, rhs: &Self) {
        self.events += rhs.events;
        self.plays += rhs.plays;
        self.errors += rhs.errors;
        self.buffering += rhs.buffering;
    }
}

impl differential_dataflow::difference::IsZero for DeviceCounts {
    fn is_zero(&self) -> bool {
        *self == DeviceCounts::default()
    }
}

/// Plays and errors of a device type in a one-minute window.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeviceMinute {
    /// The window's end (exclusive).
    pub time: Millis,
    /// The device type.
    pub device_type: DeviceType,
    /// Its counts.
    pub counts: DeviceCounts,
}

impl Tabular for DeviceMinute {
    fn current_key() -> &'static [&'static str] {
        &["device_type"]
    }

    fn columns() -> Vec<&'static str> {
        vec!["time", "device_type", "events", "plays", "errors", "buffering", "error_rate"]
    }
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        let c = self.counts;
        out.extend([
            Cell::Time(self.time),
            Cell::Text(self.device_type.name()),
            Cell::Int(c.events),
            Cell::Int(c.plays),
            Cell::Int(c.errors),
            Cell::Int(c.buffering),
            Cell::Fixed(ratio(c.errors, c.events), RATIO_DECIMALS),
        ]);
    }
}

impl TableRow for DeviceMinute {
    fn sql_types() -> Vec<&'static str> {
        vec!["bigint", "text", "bigint", "bigint", "bigint", "bigint", "numeric"]
    }
    fn key_columns() -> &'static [usize] {
        &[0, 1]
    }
}

/// Time spent in a device type's sessions, and how much of it buffering.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Watching {
    /// Sessions that closed.
    pub sessions: i64,
    /// Their total duration, first to last event.
    pub duration_ms: i64,
    /// Time spent buffering: from each `buffering` event to the session's next event.
    pub buffering_ms: i64,
}

impl differential_dataflow::difference::Semigroup for Watching {
    fn plus_equals(&mut self, rhs: &Self) {
        self.sessions += rhs.sessions;
        self.duration_ms += rhs.duration_ms;
        self.buffering_ms += rhs.buffering_ms;
    }
}

impl differential_dataflow::difference::IsZero for Watching {
    fn is_zero(&self) -> bool {
        *self == Watching::default()
    }
}

/// The buffering ratio of a device type's sessions that closed in an hour.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Buffering {
    /// The hour's end (exclusive).
    pub time: Millis,
    /// The device type.
    pub device_type: DeviceType,
    /// Its sessions' time.
    pub watching: Watching,
}

impl Tabular for Buffering {
    fn current_key() -> &'static [&'static str] {
        &["device_type"]
    }

    fn columns() -> Vec<&'static str> {
        vec!["time", "device_type", "sessions", "duration_ms", "buffering_ms", "buffering_ratio"]
    }
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        let w = self.watching;
        out.extend([
            Cell::Time(self.time),
            Cell::Text(self.device_type.name()),
            Cell::Int(w.sessions),
            Cell::Int(w.duration_ms),
            Cell::Int(w.buffering_ms),
            Cell::Fixed(ratio(w.buffering_ms, w.duration_ms), RATIO_DECIMALS),
        ]);
    }
}

impl TableRow for Buffering {
    fn sql_types() -> Vec<&'static str> {
        vec!["bigint", "text", "bigint", "bigint", "bigint", "numeric"]
    }
    fn key_columns() -> &'static [usize] {
        &[0, 1]
    }
}

/// One of the most played titles of an hour, enriched from the titles file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopTitle {
    /// The hour's end (exclusive).
    pub time: Millis,
    /// Plays, negated, so rows sort most played first.
    pub minus_plays: i64,
    /// The title.
    pub title_id: CompactString,
    /// Its name.
    pub name: CompactString,
    /// Its genre.
    pub genre: CompactString,
}

impl Tabular for TopTitle {
    fn columns() -> Vec<&'static str> {
        vec!["time", "title_id", "name", "genre", "plays"]
    }
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend([
            Cell::Time(self.time),
            Cell::Text(&self.title_id),
            Cell::Text(&self.name),
            Cell::Text(&self.genre),
            Cell::Int(-self.minus_plays),
        ]);
    }
}

impl TableRow for TopTitle {
    fn sql_types() -> Vec<&'static str> {
        vec!["bigint", "text", "text", "text", "bigint"]
    }
    fn key_columns() -> &'static [usize] {
        &[0, 1]
    }
}

/// The spike rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Rule {
    /// Errors and crashes are at least [`super::ERROR_SPIKE`] of a device type's events.
    ErrorSpike,
    /// Buffering events are at least [`super::BUFFERING_SPIKE`] of them.
    BufferingSpike,
}

impl Rule {
    /// The rule's name in rows: `error_spike`, `buffering_spike`.
    pub fn name(self) -> &'static str {
        match self {
            Rule::ErrorSpike => "error_spike",
            Rule::BufferingSpike => "buffering_spike",
        }
    }
}

/// An alert: a device type's error rate or buffering share in a minute at or above the
/// threshold.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Alert {
    /// The minute's end (exclusive).
    pub time: Millis,
    /// Which rule fired.
    pub rule: Rule,
    /// The device type.
    pub device_type: DeviceType,
    /// Errors (or buffering events) in the minute.
    pub count: i64,
    /// All events in the minute.
    pub events: i64,
}

impl Tabular for Alert {
    fn columns() -> Vec<&'static str> {
        vec!["time", "rule", "device_type", "count", "events", "rate"]
    }
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend([
            Cell::Time(self.time),
            Cell::Text(self.rule.name()),
            Cell::Text(self.device_type.name()),
            Cell::Int(self.count),
            Cell::Int(self.events),
            Cell::Fixed(ratio(self.count, self.events), RATIO_DECIMALS),
        ]);
    }
}

impl TableRow for Alert {
    fn sql_types() -> Vec<&'static str> {
        vec!["bigint", "text", "text", "bigint", "bigint", "numeric"]
    }
    fn key_columns() -> &'static [usize] {
        &[0, 1, 2]
    }
}
