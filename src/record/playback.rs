//! Playback events, the Keystone essay's device telemetry, as JSON lines: their parser and
//! a seeded generator of sessions.
//!
//! ```text
//! {"event_id": "EV_00000001", "event_type": "play", "device_id": "DEV_0042", "device_type": "tv", "title_id": "T_007", "session_id": "S_0000001", "timestamp": "2026-10-01T08:41:17Z", "position_ms": 0, "bitrate_kbps": 5800, "error_code": null}
//! ```
//!
//! # What a valid line is
//!
//! * One JSON object per line (the scanner of [`super::json`]); all eleven fields are
//!   present, each once; other fields are ignored (the generator adds `"label"`).
//! * `event_id`, `device_id`, `title_id` and `session_id` are non-empty strings;
//!   `timestamp` is read as in [`super::click`] (ISO 8601 or epoch milliseconds).
//! * `event_type` is one of `play`, `pause`, `stop`, `seek`, `buffering`, `error`,
//!   `crash`, `click`; `device_type` one of `tv`, `phone`, `browser`, `console`.
//! * `position_ms` is a whole number in `0..=`[`MAX_POSITION_MS`] and `bitrate_kbps` a
//!   whole number in `0..=`[`MAX_BITRATE_KBPS`].
//! * `error_code` is a non-empty string for `error` and `crash` events and `null` for
//!   every other type: an error without a code, or a play with one, is rejected.

use std::borrow::Cow;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::click::ClickFields;
use super::json::Scan;
use super::{LineFormat, ParseError, RowGenerator, Timeline};
use crate::time::{Millis, write_iso8601};

/// The largest accepted playback position: 100 hours.
pub const MAX_POSITION_MS: u64 = 360_000_000;
/// The largest accepted bitrate: 1 Gbit/s.
pub const MAX_BITRATE_KBPS: u64 = 1_000_000;
/// Events per generated session (the last one is a `stop`, or a `crash`).
pub const SESSION_EVENTS: u64 = 8;
/// Number of generated titles, `T_001` to `T_200`.
pub const TITLES: u64 = 200;
/// Number of generated devices, `DEV_0001` to `DEV_2000`.
pub const DEVICES: u64 = 2_000;
/// Generated error bursts: one every this many milliseconds of event time …
pub const BURST_EVERY: Millis = 6 * 3_600_000;
/// … lasting this long, on device type `ALL[(burst number) % 4]`.
pub const BURST_LENGTH: Millis = 10 * 60_000;

/// What happened on a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// Playback started or resumed.
    Play,
    /// Paused.
    Pause,
    /// Playback ended: the session is over.
    Stop,
    /// Jumped to another position.
    Seek,
    /// Playback stalled, waiting for data, until the session's next event.
    Buffering,
    /// A playback error (with a code).
    Error,
    /// The player crashed (with a code): the session is over.
    Crash,
    /// A user interface click.
    Click,
}

impl EventType {
    /// Every event type.
    pub const ALL: [EventType; 8] = [
        EventType::Play,
        EventType::Pause,
        EventType::Stop,
        EventType::Seek,
        EventType::Buffering,
        EventType::Error,
        EventType::Crash,
        EventType::Click,
    ];

    /// The name used in the data.
    pub fn name(self) -> &'static str {
        match self {
            EventType::Play => "play",
            EventType::Pause => "pause",
            EventType::Stop => "stop",
            EventType::Seek => "seek",
            EventType::Buffering => "buffering",
            EventType::Error => "error",
            EventType::Crash => "crash",
            EventType::Click => "click",
        }
    }

    /// The event type called `name`.
    pub fn from_name(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether the event carries an error code (errors and crashes).
    pub fn is_error(self) -> bool {
        matches!(self, EventType::Error | EventType::Crash)
    }

    /// Whether the event ends its session.
    pub fn ends_session(self) -> bool {
        matches!(self, EventType::Stop | EventType::Crash)
    }
}

/// The kind of device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DeviceType {
    /// A smart TV.
    Tv,
    /// A phone.
    Phone,
    /// A web browser.
    Browser,
    /// A games console.
    Console,
}

impl DeviceType {
    /// Every device type.
    pub const ALL: [DeviceType; 4] =
        [DeviceType::Tv, DeviceType::Phone, DeviceType::Browser, DeviceType::Console];

    /// The name used in the data.
    pub fn name(self) -> &'static str {
        match self {
            DeviceType::Tv => "tv",
            DeviceType::Phone => "phone",
            DeviceType::Browser => "browser",
            DeviceType::Console => "console",
        }
    }

    /// The device type called `name`.
    pub fn from_name(name: &str) -> Option<DeviceType> {
        DeviceType::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// One parsed playback event, borrowing its text from the input line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Playback<'a> {
    /// Unique event id; a re-sent event repeats it.
    pub event_id: Cow<'a, str>,
    /// What happened.
    pub event_type: EventType,
    /// The device.
    pub device_id: Cow<'a, str>,
    /// Its kind.
    pub device_type: DeviceType,
    /// The title played.
    pub title_id: Cow<'a, str>,
    /// The playback session.
    pub session_id: Cow<'a, str>,
    /// Event time.
    pub timestamp: Millis,
    /// Position in the title.
    pub position_ms: u64,
    /// Streaming bitrate.
    pub bitrate_kbps: u64,
    /// The error code of an error or crash.
    pub error_code: Option<Cow<'a, str>>,
}

/// The playback events JSON-lines format.
pub struct PlaybackJson;

impl LineFormat for PlaybackJson {
    type Parsed<'a> = Playback<'a>;
    const NAME: &'static str = "playback event";

    fn is_header(_line: &str) -> bool {
        false
    }

    #[inline]
    fn parse(line: &str) -> Result<Playback<'_>, ParseError> {
        parse_playback(line)
    }

    #[inline]
    fn event_time(parsed: &Playback<'_>) -> Millis {
        parsed.timestamp
    }
}

/// The fields, in schema order.
const FIELDS: [&str; 11] = [
    "event_id",
    "event_type",
    "device_id",
    "device_type",
    "title_id",
    "session_id",
    "timestamp",
    "position_ms",
    "bitrate_kbps",
    "error_code",
    "_",
];

fn parse_playback(line: &str) -> Result<Playback<'_>, ParseError> {
    let mut s = Scan::line_object(line)?;
    let mut p = Playback {
        event_id: Cow::Borrowed(""),
        event_type: EventType::Play,
        device_id: Cow::Borrowed(""),
        device_type: DeviceType::Tv,
        title_id: Cow::Borrowed(""),
        session_id: Cow::Borrowed(""),
        timestamp: 0,
        position_ms: 0,
        bitrate_kbps: 0,
        error_code: None,
    };
    s.object(&FIELDS[..10], |s, _, field| {
        match field {
            None => s.skip_value(1)?,
            Some(0) => p.event_id = s.id("event_id")?,
            Some(1) => {
                p.event_type = s.named(
                    "event_type",
                    EventType::from_name,
                    "play, pause, stop, seek, buffering, error, crash or click",
                )?
            }
            Some(2) => p.device_id = s.id("device_id")?,
            Some(3) => {
                p.device_type =
                    s.named("device_type", DeviceType::from_name, "tv, phone, browser or console")?
            }
            Some(4) => p.title_id = s.id("title_id")?,
            Some(5) => p.session_id = s.id("session_id")?,
            Some(6) => p.timestamp = s.timestamp()?,
            Some(7) => p.position_ms = whole(s, "position_ms", MAX_POSITION_MS)?,
            Some(8) => p.bitrate_kbps = whole(s, "bitrate_kbps", MAX_BITRATE_KBPS)?,
            Some(_) => {
                p.error_code = match s.peek() {
                    Some(b'n') => s.literal(b"null").map(|()| None)?,
                    Some(b'"') => Some(s.id("error_code")?),
                    _ => return Err(s.wrong_type("error_code", "a string or null")),
                }
            }
        }
        Ok(())
    })?;
    match (p.event_type.is_error(), &p.error_code) {
        (true, None) => Err(ParseError::from(format!("{} event without an error_code", p.event_type.name()))),
        (false, Some(_)) => {
            Err(ParseError::from(format!("{} event with an error_code", p.event_type.name())))
        }
        _ => Ok(p),
    }
}

/// A whole number field in `0..=max`.
fn whole(s: &mut Scan<'_>, field: &str, max: u64) -> Result<u64, ParseError> {
    if !matches!(s.peek(), Some(b'-' | b'0'..=b'9')) {
        return Err(s.wrong_type(field, "a number"));
    }
    let n = s.number()?;
    let excerpt = crate::diag::excerpt(n.text.as_bytes(), 40);
    match n.fixed(0) {
        Ok(v) if v < 0 => Err(ParseError::from(format!("negative {field} {excerpt}"))),
        Ok(v) if v as u64 > max => Err(ParseError::from(format!("{field} {excerpt} is above {max}"))),
        Ok(v) => Ok(v as u64),
        Err(_) => Err(ParseError::from(format!("bad {field} {excerpt}: expected a whole number"))),
    }
}

/// The bitrate ladder a device type streams at.
fn ladder(device: DeviceType) -> &'static [u64] {
    match device {
        DeviceType::Tv => &[3_000, 5_800, 8_000],
        DeviceType::Phone => &[235, 750, 1_750],
        DeviceType::Browser => &[750, 1_750, 3_000],
        DeviceType::Console => &[3_000, 5_800],
    }
}

/// The device type of generated device `n`: 35 % tv, 30 % phone, 25 % browser, 10 % console.
pub fn device_type_of(n: u64) -> DeviceType {
    match n % 20 {
        0..7 => DeviceType::Tv,
        7..13 => DeviceType::Phone,
        13..18 => DeviceType::Browser,
        _ => DeviceType::Console,
    }
}

/// The device type that an error burst starting at `time` hits, if `time` is in one.
pub fn burst_at(time: Millis) -> Option<DeviceType> {
    (time % BURST_EVERY < BURST_LENGTH).then(|| DeviceType::ALL[((time / BURST_EVERY) % 4) as usize])
}

/// A deterministic generator of playback sessions: row `i` depends only on `(seed, i)`.
///
/// Rows come in sessions of [`SESSION_EVENTS`]: a `play`, then plays (heartbeats),
/// buffering, seeks, pauses and clicks 1–8 s apart, then a `stop`. Titles have a long
/// tail (title `n` is drawn with weight falling like the cube of a uniform draw). A
/// session that starts in an error burst ([`burst_at`]) on its device type has errors in
/// half its events and may crash; its events carry `"label": "error_burst"`. Otherwise
/// 1 % of events are errors. 0.5 % of rows re-send the row before (a duplicate
/// `event_id`), and 0.5 % are malformed (labelled `"label": "malformed"` where the line
/// is still JSON).
#[derive(Clone, Debug)]
pub struct PlaybackGen {
    seed: u64,
    timeline: Timeline,
}

/// A session's fixed attributes and its events' offsets.
struct Session {
    device: u64,
    device_type: DeviceType,
    title: u64,
    start: Millis,
    offsets: [Millis; SESSION_EVENTS as usize],
    burst: bool,
}

impl PlaybackGen {
    /// A generator for `seed` along `timeline`.
    pub fn new(seed: u64, timeline: Timeline) -> Self {
        PlaybackGen { seed, timeline }
    }

    fn session(&self, s: u64) -> Session {
        let mut rng = super::row_rng(self.seed ^ 0x5e55_1015, s);
        let device = rng.random_range(1..=DEVICES);
        let device_type = device_type_of(device);
        let u: u128 = rng.random_range(0..1_000_000);
        let title = 1 + (u * u * u * TITLES as u128 / 1_000_000_000_000_000_000) as u64;
        let start = self.timeline.time_of(s * SESSION_EVENTS, &mut rng);
        let mut offsets = [0; SESSION_EVENTS as usize];
        for k in 1..SESSION_EVENTS as usize {
            offsets[k] = offsets[k - 1] + rng.random_range(1..=8) * 1000;
        }
        let burst = burst_at(start) == Some(device_type);
        Session { device, device_type, title, start, offsets, burst }
    }

    /// Row `index` as it would be without duplication or damage.
    fn clean_row(&self, index: u64, out: &mut Vec<u8>, label: Option<&str>) {
        let session = self.session(index / SESSION_EVENTS);
        let k = (index % SESSION_EVENTS) as usize;
        let mut rng = super::row_rng(self.seed, index);
        let last = k as u64 == SESSION_EVENTS - 1;
        let error_share = if session.burst { 50 } else { 1 };
        let event_type = if k == 0 {
            EventType::Play
        } else if last {
            if session.burst && rng.random_range(0..100) < 30 { EventType::Crash } else { EventType::Stop }
        } else if rng.random_range(0..100) < error_share {
            EventType::Error
        } else {
            match rng.random_range(0..10) {
                0..5 => EventType::Play,
                5..7 => EventType::Buffering,
                7 => EventType::Seek,
                8 => EventType::Pause,
                _ => EventType::Click,
            }
        };
        let rungs = ladder(session.device_type);
        let bitrate = rungs[rng.random_range(0..rungs.len())];
        let error_code = match event_type {
            EventType::Error => Some(["E_NETWORK", "E_DECODE", "E_DRM"][rng.random_range(0..3)]),
            EventType::Crash => Some("E_CRASH"),
            _ => None,
        };
        write_padded(out, b"{\"event_id\": \"EV_", index + 1, 8);
        out.extend_from_slice(b"\", \"event_type\": \"");
        out.extend_from_slice(event_type.name().as_bytes());
        write_padded(out, b"\", \"device_id\": \"DEV_", session.device, 4);
        out.extend_from_slice(b"\", \"device_type\": \"");
        out.extend_from_slice(session.device_type.name().as_bytes());
        write_padded(out, b"\", \"title_id\": \"T_", session.title, 3);
        write_padded(out, b"\", \"session_id\": \"S_", index / SESSION_EVENTS + 1, 7);
        out.extend_from_slice(b"\", \"timestamp\": \"");
        write_iso8601(out, session.start + session.offsets[k]);
        out.extend_from_slice(b"\", \"position_ms\": ");
        out.extend_from_slice(itoa::Buffer::new().format(session.offsets[k]).as_bytes());
        out.extend_from_slice(b", \"bitrate_kbps\": ");
        out.extend_from_slice(itoa::Buffer::new().format(bitrate).as_bytes());
        out.extend_from_slice(b", \"error_code\": ");
        match error_code {
            Some(code) => {
                out.push(b'"');
                out.extend_from_slice(code.as_bytes());
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        match (label, session.burst) {
            (Some(l), _) => {
                out.extend_from_slice(b", \"label\": \"");
                out.extend_from_slice(l.as_bytes());
                out.push(b'"');
            }
            (None, true) => out.extend_from_slice(b", \"label\": \"error_burst\""),
            (None, false) => {}
        }
        out.push(b'}');
    }
}

fn write_padded(out: &mut Vec<u8>, prefix: &[u8], n: u64, width: usize) {
    out.extend_from_slice(prefix);
    let mut num = itoa::Buffer::new();
    let digits = num.format(n);
    out.extend(std::iter::repeat_n(b'0', width.saturating_sub(digits.len())));
    out.extend_from_slice(digits.as_bytes());
}

impl RowGenerator for PlaybackGen {
    fn header(&self) -> Option<Cow<'static, str>> {
        None
    }

    fn write_row(&self, index: u64, out: &mut Vec<u8>) {
        let mut rng = super::row_rng(self.seed ^ 0xbad, index);
        let roll = rng.random_range(0..1000);
        if roll < 5 && !index.is_multiple_of(SESSION_EVENTS) {
            // Re-sent: the previous row again, byte for byte.
            return self.clean_row(index - 1, out, None);
        }
        if !(5..10).contains(&roll) {
            return self.clean_row(index, out, None);
        }
        let start = out.len();
        self.clean_row(index, out, Some("malformed"));
        let line = String::from_utf8(out.split_off(start)).expect("generated lines are UTF-8");
        let damaged = match rng.random_range(0..5) {
            0 => line[..line.len() / 2].to_owned(),
            1 => line.replacen("\"event_type\": \"", "\"event_type\": \"x", 1),
            2 => line.replacen("\"position_ms\": ", "\"position_ms\": -1", 1),
            3 => line.replacen("\"bitrate_kbps\": ", "\"bitrate_kbps\": \"", 1).replacen(
                ", \"error_code\"",
                "\", \"error_code\"",
                1,
            ),
            _ => line.replacen(", \"session_id\": ", ", \"session\": ", 1),
        };
        out.extend_from_slice(damaged.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"event_id": "E1", "event_type": "error", "device_id": "D1", "device_type": "tv", "title_id": "T1", "session_id": "S1", "timestamp": "2026-10-01T00:00:00Z", "position_ms": 1500, "bitrate_kbps": 5800, "error_code": "E_DRM"}"#;

    #[test]
    fn parses_every_field() {
        let p = PlaybackJson::parse(GOOD).unwrap();
        assert_eq!((p.event_type, p.device_type), (EventType::Error, DeviceType::Tv));
        assert_eq!((p.position_ms, p.bitrate_kbps), (1500, 5800));
        assert_eq!(p.error_code.as_deref(), Some("E_DRM"));
        assert_eq!(p.timestamp, crate::record::DEFAULT_START);
        assert!(matches!(p.session_id, Cow::Borrowed("S1")));
    }

    #[test]
    fn rejects_name_the_problem() {
        let cases = [
            (GOOD.replace("\"error\"", "\"play\""), "play event with an error_code"),
            (GOOD.replace("\"E_DRM\"", "null"), "error event without an error_code"),
            (GOOD.replace("\"tv\"", "\"fridge\""), "unknown device_type 'fridge'"),
            (GOOD.replace("\"error\"", "\"rewind\""), "unknown event_type 'rewind'"),
            (GOOD.replace("1500", "-1"), "negative position_ms -1"),
            (GOOD.replace("1500", "1.5"), "bad position_ms 1.5: expected a whole number"),
            (GOOD.replace("5800", "2000000"), "bitrate_kbps 2000000 is above 1000000"),
            (GOOD.replace("5800", "\"5800\""), "bitrate_kbps must be a number, found a string"),
            (GOOD.replace("\"session_id\"", "\"session\""), "missing field 'session_id'"),
            (GOOD.replace("\"S1\"", "\" \""), "empty session_id"),
            (GOOD[..GOOD.len() / 2].to_owned(), "malformed JSON"),
        ];
        for (line, reason) in &cases {
            let err = PlaybackJson::parse(line).unwrap_err();
            assert!(err.0.contains(reason), "{line}: {err} (wanted {reason})");
        }
    }

    #[test]
    fn generated_sessions_are_mostly_valid_with_a_few_duplicates_and_bursts() {
        let generator = PlaybackGen::new(
            7,
            Timeline::Shuffled { start: crate::record::DEFAULT_START, span: crate::time::DAY_MS },
        );
        let (mut bad, mut ids, mut bursts, mut stops) = (0, std::collections::HashSet::new(), 0, 0);
        let mut line = Vec::new();
        let rows = 40_000;
        for i in 0..rows {
            line.clear();
            generator.write_row(i, &mut line);
            let text = std::str::from_utf8(&line).unwrap();
            match PlaybackJson::parse(text) {
                Err(_) => bad += 1,
                Ok(p) => {
                    ids.insert(p.event_id.into_owned());
                    bursts += text.contains("error_burst") as u32;
                    stops += p.event_type.ends_session() as u32;
                }
            }
        }
        let dups = rows - bad - ids.len() as u64;
        assert!((100..300).contains(&bad), "{bad} malformed");
        assert!((100..300).contains(&dups), "{dups} duplicates");
        assert!(bursts > 0 && stops as u64 > rows / SESSION_EVENTS * 9 / 10, "{bursts} {stops}");
    }
}
