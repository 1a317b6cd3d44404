//! Time series: NAB's `timestamp,value` CSV, with an optional key column, its parser
//! and a seeded generator of many keyed series.
//!
//! ```text
//! timestamp,value
//! 2014-07-01 00:00:00,10844
//! 2014-07-01 00:30:00,8127
//! ```
//!
//! or, with several series in one input, `timestamp,value,key`. A row without a key
//! belongs to the input's own series (the job names it after the file).
//!
//! # What a valid line is
//!
//! * Two fields, or three with a non-empty key.
//! * `timestamp` is ISO 8601 (`2014-07-01 00:00:00` as NAB writes it, or
//!   `2014-07-01T00:00:00Z`), in 1970-01-01..9999-12-31 UTC.
//! * `value` is a finite decimal number, optionally with an exponent (`-1.0574e-05`).
//!
//! # Why values are `f64`, not fixed point
//!
//! Money is integer cents because totals must be exact. Series values are not summed
//! into reported totals: they are fed to detectors that compute in floating point, as
//! NAB's reference detectors do. NAB's values carry up to 20 decimals and exponents
//! down to 1e-5, so no fixed scale holds them all. A value is parsed by Rust's correctly
//! rounded decimal conversion, so it is a function of its text alone (the same `f64` as
//! Python's `float`), and it is printed in the shortest form that reads back to it.

use std::borrow::Cow;
use std::cmp::Ordering;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{LineFormat, ParseError, RowGenerator, Timeline, csv, event_time_in_range};
use crate::diag::excerpt;
use crate::time::{Millis, parse_iso8601_signed, write_iso8601};

/// The header of a single-series file, as NAB writes it.
pub const HEADER: &str = "timestamp,value";

/// The header of a keyed file, as `gen series` writes it.
pub const KEYED_HEADER: &str = "timestamp,value,key";

/// A finite measurement, ordered by [`f64::total_cmp`] so records can be sorted.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Reading(pub f64);

impl PartialEq for Reading {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Reading {}

impl PartialOrd for Reading {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Reading {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// One parsed row, borrowing its key from the line.
#[derive(Clone, Debug, PartialEq)]
pub struct Point<'a> {
    /// Event time.
    pub timestamp: Millis,
    /// The measurement.
    pub value: f64,
    /// The series, if the line names one.
    pub key: Option<Cow<'a, str>>,
}

/// The series CSV format.
pub struct SeriesCsv;

impl LineFormat for SeriesCsv {
    type Parsed<'a> = Point<'a>;
    const NAME: &'static str = "series";

    fn is_header(line: &str) -> bool {
        csv::is_header(line, &[HEADER, KEYED_HEADER])
    }

    #[inline]
    fn parse(line: &str) -> Result<Point<'_>, ParseError> {
        let (timestamp, value, key) = match csv::split::<3>(line) {
            Ok([t, v, k]) => {
                if k.trim().is_empty() {
                    return Err(ParseError::fixed("empty key"));
                }
                (t, v, Some(k))
            }
            Err(2) => {
                let [t, v] = csv::split::<2>(line)
                    .map_err(|_| ParseError::fixed("unterminated or misplaced quote"))?;
                (t, v, None)
            }
            Err(usize::MAX) => return Err(ParseError::fixed("unterminated or misplaced quote")),
            Err(n) => return Err(ParseError::from(format!("wrong field count: expected 2 or 3, found {n}"))),
        };
        let timestamp = parse_iso8601_signed(timestamp.trim())
            .ok_or_else(|| {
                ParseError::from(format!(
                    "bad timestamp '{}': not ISO 8601",
                    excerpt(timestamp.as_bytes(), 40)
                ))
            })
            .and_then(|t| event_time_in_range(t as i128, &timestamp))?;
        let value = value.trim().parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| {
            ParseError::from(format!("bad value '{}': not a finite number", excerpt(value.as_bytes(), 40)))
        })?;
        Ok(Point { timestamp, value, key })
    }

    #[inline]
    fn event_time(parsed: &Point<'_>) -> Millis {
        parsed.timestamp
    }
}

/// Many keyed series, one reading a minute each: a daily cycle plus noise, with rare
/// spikes and level shifts. Row `i` is key `i % keys` at minute `i / keys`.
#[derive(Clone, Debug)]
pub struct SeriesGen {
    seed: u64,
    start: Millis,
    keys: u64,
}

/// The `gen series` options.
#[derive(clap::Args, Clone, Debug)]
pub struct SeriesArgs {
    /// Number of series (keys `s0000`, `s0001`, …).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub keys: u64,
}

impl SeriesGen {
    /// A generator of `keys` series for `seed`, starting at the timeline's start.
    pub fn new(seed: u64, timeline: Timeline, keys: u64) -> Self {
        let start = match timeline {
            Timeline::Shuffled { start, .. } | Timeline::Ordered { start, .. } => start,
        };
        SeriesGen { seed, start, keys: keys.max(1) }
    }
}

impl RowGenerator for SeriesGen {
    fn header(&self) -> Option<Cow<'static, str>> {
        Some(KEYED_HEADER.into())
    }

    fn write_row(&self, index: u64, out: &mut Vec<u8>) {
        let (key, minute) = (index % self.keys, index / self.keys);
        // The key's shape from (seed, key) alone; the row's noise from (seed, index).
        let mut shape = super::row_rng(!self.seed, key);
        let level: f64 = shape.random_range(10.0..1000.0);
        let amplitude = level * shape.random_range(0.05..0.3);
        let noise = level * shape.random_range(0.005..0.03);
        let mut rng = super::row_rng(self.seed, index);
        let phase = (minute % 1440) as f64 / 1440.0 * std::f64::consts::TAU;
        let gauss = (0..4).map(|_| rng.random_range(-1.0..1.0f64)).sum::<f64>() * 0.866;
        let mut value = level + amplitude * phase.sin() + noise * gauss;
        if rng.random_ratio(1, 2000) {
            value += amplitude * rng.random_range(2.0..4.0) * if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        }
        write_iso8601(out, self.start + minute * 60_000);
        out.push(b',');
        let _ = std::io::Write::write_fmt(out, format_args!("{:.3}", value));
        out.extend_from_slice(b",s");
        let k = itoa::Buffer::new().format(key).to_owned();
        out.extend(std::iter::repeat_n(b'0', 4usize.saturating_sub(k.len())));
        out.extend_from_slice(k.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nab_rows_and_keyed_rows() {
        let p = SeriesCsv::parse("2014-07-01 00:30:00,8127").unwrap();
        assert_eq!(p.timestamp, 1_404_174_600_000);
        assert_eq!(p.value, 8127.0);
        assert_eq!(p.key, None);
        let p = SeriesCsv::parse("2014-07-01T00:30:00Z,-1.0574e-05,cpu").unwrap();
        assert_eq!(p.value, -1.0574e-05);
        assert_eq!(p.key.as_deref(), Some("cpu"));
        assert!(SeriesCsv::is_header("timestamp,value"));
        assert!(SeriesCsv::is_header("timestamp,value,key"));
    }

    #[test]
    fn rejects_name_the_problem() {
        let cases = [
            ("2014-07-01 00:30:00,abc", "bad value"),
            ("2014-07-01 00:30:00,NaN", "bad value"),
            ("2014-07-01 00:30:00,inf", "bad value"),
            ("2014-07-01 00:30:00,", "bad value"),
            ("yesterday,1", "bad timestamp"),
            ("2014-13-01 00:30:00,1", "bad timestamp"),
            ("2014-07-01 00:30:00,1,", "empty key"),
            ("2014-07-01 00:30:00", "wrong field count"),
            ("2014-07-01 00:30:00,1,a,b", "wrong field count"),
        ];
        for (line, reason) in cases {
            let err = SeriesCsv::parse(line).unwrap_err();
            assert!(err.0.starts_with(reason), "{line}: {err}");
        }
    }

    #[test]
    fn generated_rows_parse_back_and_depend_only_on_seed_and_index() {
        let generator = SeriesGen::new(5, Timeline::default_history(), 10);
        let mut line = Vec::new();
        for i in 0..1000 {
            line.clear();
            generator.write_row(i, &mut line);
            let text = std::str::from_utf8(&line).unwrap();
            let p = SeriesCsv::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(p.key.as_deref(), Some(format!("s{:04}", i % 10).as_str()));
            assert_eq!(p.timestamp, super::super::DEFAULT_START + (i / 10) * 60_000);
        }
        let mut again = Vec::new();
        SeriesGen::new(5, Timeline::default_history(), 10).write_row(999, &mut again);
        assert_eq!(line, again);
    }

    #[test]
    fn readings_order_totally() {
        let mut v = [Reading(2.0), Reading(-1.0), Reading(0.5)];
        v.sort();
        assert_eq!(v, [Reading(-1.0), Reading(0.5), Reading(2.0)]);
    }
}
