//! Event time: milliseconds since the Unix epoch, durations, epochs and ISO 8601.
//!
//! Every record carries its own event time as a `u64` count of milliseconds since
//! 1970-01-01T00:00:00Z. Timely timestamps are event times rounded down to the
//! `--epoch` granularity. Parsing and formatting are written by hand because they
//! sit on the hot path of every job: a timestamp parses in a few nanoseconds and
//! never allocates.

use std::fmt;
use std::str::FromStr;

use timely::order::Product;
use timely::progress::Timestamp;

/// Event time in milliseconds since the Unix epoch (UTC).
pub type Millis = u64;

/// Milliseconds in one day.
pub const DAY_MS: u64 = 86_400_000;

/// A length of time with millisecond resolution, written like `250ms`, `5s`, `1m`, `1h`, `2d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Duration(pub u64);

impl Duration {
    /// The duration in milliseconds.
    pub fn millis(self) -> u64 {
        self.0
    }

    /// A duration of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms)
    }

    /// A duration of `s` seconds.
    pub const fn from_secs(s: u64) -> Self {
        Duration(s * 1000)
    }

    /// The equivalent `std::time::Duration`.
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        if digits.is_empty() {
            return Err(format!(
                "invalid duration '{text}': expected a number and a unit such as 500ms, 5s, 1m, 1h or 1d"
            ));
        }
        let n: u64 = digits.parse().map_err(|_| format!("invalid duration '{text}': number too large"))?;
        let scale = match unit {
            "ms" => 1,
            "s" | "" => 1000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => DAY_MS,
            _ => {
                return Err(format!(
                    "invalid duration '{text}': unknown unit '{unit}' (use ms, s, m, h or d)"
                ));
            }
        };
        n.checked_mul(scale).map(Duration).ok_or_else(|| format!("invalid duration '{text}': too large"))
    }
}

/// Parses a duration that must be greater than zero, for options such as `--epoch`.
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    match text.parse::<Duration>()? {
        d if d.millis() == 0 => Err("must be greater than zero".into()),
        d => Ok(d),
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        for (unit, scale) in [("d", DAY_MS), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
            if ms != 0 && ms.is_multiple_of(scale) {
                return write!(f, "{}{unit}", ms / scale);
            }
        }
        write!(f, "{ms}ms")
    }
}

/// The wall-clock time now, in milliseconds since the Unix epoch.
pub fn now_millis() -> Millis {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The timestamp of a job's checkpointed region: an event time in milliseconds (outer)
/// and a checkpoint round (inner), in product order.
///
/// Ingest sends records at `(watermark, round)`. The round counts the checkpoints its
/// input has been cut at: every record read after cut `n` carries a round of at least
/// `n`. Because the order is a product, the frontier answers two questions at once: the
/// smallest event part over its elements is the event-time watermark, and the smallest
/// round part says which cuts every operator upstream has passed. Leaving the region
/// keeps the event part, so differential and sinks downstream see plain event time.
pub type Time = Product<Millis, u64>;

/// What operators read from a timely timestamp: its event time and its round.
///
/// Implemented for [`Time`] and for plain event time ([`Millis`], always round 0), so
/// operators work inside a job's checkpointed region and outside it, and in unit tests.
pub trait EventTime: Timestamp + Copy {
    /// Whether the time has a checkpoint round: operators in a scope of such times take
    /// part in snapshots (see `crate::checkpoint::snapshot`).
    const ROUNDS: bool;
    /// The event-time part, in milliseconds.
    fn event(&self) -> Millis;
    /// The checkpoint round (0 outside a checkpointed region).
    fn round(&self) -> u64;
    /// The same round at event time `event`.
    fn at_event(&self, event: Millis) -> Self;
    /// The same event time in round `round` (unchanged outside a checkpointed region).
    fn at_round(&self, round: u64) -> Self;
}

impl EventTime for Millis {
    const ROUNDS: bool = false;
    #[inline]
    fn event(&self) -> Millis {
        *self
    }
    #[inline]
    fn round(&self) -> u64 {
        0
    }
    #[inline]
    fn at_event(&self, event: Millis) -> Self {
        event
    }
    #[inline]
    fn at_round(&self, _round: u64) -> Self {
        *self
    }
}

impl EventTime for Time {
    const ROUNDS: bool = true;
    #[inline]
    fn event(&self) -> Millis {
        self.outer
    }
    #[inline]
    fn round(&self) -> u64 {
        self.inner
    }
    #[inline]
    fn at_event(&self, event: Millis) -> Self {
        Product::new(event, self.inner)
    }
    #[inline]
    fn at_round(&self, round: u64) -> Self {
        Product::new(self.outer, round)
    }
}

/// The event-time watermark a frontier stands for: the smallest event part of its
/// elements, or [`Millis::MAX`] once it is empty.
#[inline]
pub fn event_frontier<T: EventTime>(frontier: &[T]) -> Millis {
    frontier.iter().map(EventTime::event).min().unwrap_or(Millis::MAX)
}

/// The checkpoint round every element of a frontier has reached, or `u64::MAX` once it
/// is empty.
#[inline]
pub fn round_frontier<T: EventTime>(frontier: &[T]) -> u64 {
    frontier.iter().map(EventTime::round).min().unwrap_or(u64::MAX)
}

/// Rounds an event time down to the start of its epoch.
#[inline]
pub fn epoch_of(time: Millis, epoch: Duration) -> Millis {
    time - time % epoch.0.max(1)
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
#[inline]
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a count of days since 1970-01-01.
#[inline]
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

#[inline]
fn digits(bytes: &[u8], at: usize, n: usize) -> Option<u32> {
    let mut value = 0u32;
    for &b in bytes.get(at..at + n)? {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        value = value * 10 + d as u32;
    }
    Some(value)
}

/// Parses an ISO 8601 timestamp into milliseconds since the Unix epoch.
///
/// Accepts `YYYY-MM-DD`, followed optionally by `T` or a space and `HH:MM[:SS[.fff…]]`,
/// followed optionally by `Z` or an offset `±HH:MM`/`±HHMM`. A timestamp without an
/// offset is taken as UTC. Fractions beyond milliseconds are truncated. Times before
/// 1970 are rejected because event time is unsigned.
pub fn parse_iso8601(text: &str) -> Option<Millis> {
    parse_iso8601_signed(text).and_then(|t| u64::try_from(t).ok())
}

/// Like [`parse_iso8601`], but a well-formed time before 1970 is a negative count, so a
/// caller can tell "out of range" from "not ISO 8601".
pub fn parse_iso8601_signed(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(b, 0, 4)? as i64;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let mut ms: i64 = 0;
    let mut i = 10;
    if i < b.len() && (b[i] == b'T' || b[i] == b' ') {
        let hour = digits(b, i + 1, 2)?;
        if b.get(i + 3) != Some(&b':') {
            return None;
        }
        let minute = digits(b, i + 4, 2)?;
        i += 6;
        let mut second = 0;
        if b.get(i) == Some(&b':') {
            second = digits(b, i + 1, 2)?;
            i += 3;
            if b.get(i) == Some(&b'.') {
                i += 1;
                let start = i;
                let mut frac = 0u32;
                while i < b.len() && b[i].is_ascii_digit() {
                    if i - start < 3 {
                        frac = frac * 10 + (b[i] - b'0') as u32;
                    }
                    i += 1;
                }
                let n = i - start;
                if n == 0 {
                    return None;
                }
                for _ in n..3 {
                    frac *= 10;
                }
                ms += frac as i64;
            }
        }
        // 24:00:00 is not accepted; 60 seconds would need leap-second tables.
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        ms += (hour as i64 * 3600 + minute as i64 * 60 + second as i64) * 1000;
        match b.get(i) {
            None => {}
            Some(b'Z') if i + 1 == b.len() => {}
            Some(&sign @ (b'+' | b'-')) => {
                let oh = digits(b, i + 1, 2)? as i64;
                let om = match b.len() - (i + 3) {
                    0 => 0,
                    2 => digits(b, i + 3, 2)? as i64,
                    3 if b[i + 3] == b':' => digits(b, i + 4, 2)? as i64,
                    _ => return None,
                };
                if oh > 23 || om > 59 {
                    return None;
                }
                let offset = (oh * 60 + om) * 60_000;
                ms -= if sign == b'+' { offset } else { -offset };
            }
            Some(_) => return None,
        }
    } else if i != b.len() {
        return None;
    }
    Some(days_from_civil(year, month, day) * DAY_MS as i64 + ms)
}

/// Writes `time` as `YYYY-MM-DDTHH:MM:SSZ`, or with `.mmm` when it has milliseconds.
pub fn write_iso8601(out: &mut Vec<u8>, time: Millis) {
    let days = (time / DAY_MS) as i64;
    let ms_of_day = time % DAY_MS;
    let (year, month, day) = civil_from_days(days);
    let secs = ms_of_day / 1000;
    let mut buf = [0u8; 24];
    let year = year as u32;
    let put2 = |buf: &mut [u8], at: usize, v: u32| {
        buf[at] = b'0' + (v / 10) as u8;
        buf[at + 1] = b'0' + (v % 10) as u8;
    };
    put2(&mut buf, 0, year / 100);
    put2(&mut buf, 2, year % 100);
    buf[4] = b'-';
    put2(&mut buf, 5, month);
    buf[7] = b'-';
    put2(&mut buf, 8, day);
    buf[10] = b'T';
    put2(&mut buf, 11, (secs / 3600) as u32);
    buf[13] = b':';
    put2(&mut buf, 14, (secs / 60 % 60) as u32);
    buf[16] = b':';
    put2(&mut buf, 17, (secs % 60) as u32);
    let millis = (ms_of_day % 1000) as u32;
    if millis == 0 {
        buf[19] = b'Z';
        out.extend_from_slice(&buf[..20]);
    } else {
        buf[19] = b'.';
        buf[20] = b'0' + (millis / 100) as u8;
        put2(&mut buf, 21, millis % 100);
        buf[23] = b'Z';
        out.extend_from_slice(&buf[..24]);
    }
}

/// Formats `time` as ISO 8601 text (see [`write_iso8601`]).
pub fn format_iso8601(time: Millis) -> String {
    let mut out = Vec::with_capacity(24);
    write_iso8601(&mut out, time);
    String::from_utf8(out).expect("ISO 8601 output is ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trip_matches_chrono() {
        for &t in &[0u64, 1, 999, 1_000, 86_399_999, 951_782_400_000, 1_790_000_123_456] {
            let text = format_iso8601(t);
            assert_eq!(parse_iso8601(&text), Some(t), "{text}");
            let chrono = chrono::DateTime::from_timestamp_millis(t as i64).unwrap();
            let expected = chrono.format("%Y-%m-%dT%H:%M:%S").to_string();
            assert!(text.starts_with(&expected), "{text} vs {expected}");
        }
    }

    #[test]
    fn iso_accepts_offsets_spaces_and_fractions() {
        let base = parse_iso8601("2026-10-01T12:00:00Z").unwrap();
        assert_eq!(parse_iso8601("2026-10-01 12:00:00"), Some(base));
        assert_eq!(parse_iso8601("2026-10-01T14:00:00+02:00"), Some(base));
        assert_eq!(parse_iso8601("2026-10-01T07:00:00-0500"), Some(base));
        assert_eq!(parse_iso8601("2026-10-01T12:00:00.123456"), Some(base + 123));
        assert_eq!(parse_iso8601("2026-10-01T12:00"), Some(base));
        assert_eq!(parse_iso8601("2026-10-01"), Some(base - 12 * 3_600_000));
    }

    #[test]
    fn iso_rejects_malformed() {
        for bad in [
            "",
            "2026-13-01T00:00:00",
            "2026-02-29T00:00:00",
            "2026-10-01T25:00:00",
            "2026-10-01T12:00:00X",
            "2026-10-01T12:00:00.",
            "yesterday",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
        assert!(parse_iso8601("2024-02-29T00:00:00").is_some());
    }

    #[test]
    fn durations_parse_and_print() {
        assert_eq!("1s".parse::<Duration>().unwrap().millis(), 1000);
        assert_eq!("250ms".parse::<Duration>().unwrap().millis(), 250);
        assert_eq!("1h".parse::<Duration>().unwrap().millis(), 3_600_000);
        assert!("1x".parse::<Duration>().is_err());
        assert!("s".parse::<Duration>().is_err());
        assert_eq!(Duration(90_000).to_string(), "90s");
        assert_eq!(Duration(3_600_000).to_string(), "1h");
    }
}
