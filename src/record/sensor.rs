//! IoT sensor readings: the IoT notebook's record as CSV with a header or as JSON lines,
//! its parser, the sensor metadata file, and a seeded generator.
//!
//! ```text
//! sensor_id,timestamp,temperature,humidity,pressure,vibration,power_consumption,operational_status,latitude,longitude
//! SENSOR_007,2026-10-01T00:00:07Z,24.81,61.02,1011.37,0.512,98.40,normal,-12.345678,101.234567
//! {"sensor_id": "SENSOR_007", "timestamp": "2026-10-01T00:00:07Z", "temperature": 24.81, …, "operational_status": "normal", "latitude": -12.345678, "longitude": 101.234567}
//! ```
//!
//! # What a valid reading is
//!
//! * A CSV line of ten fields (eleven with the generator's `anomaly` label column, `0` or
//!   `1`), or one flat JSON object with the same field names (other fields are ignored;
//!   `anomaly`, if present, must be a boolean). A line starting with `{` is JSON.
//! * `sensor_id` is non-empty. `timestamp` is ISO 8601 (as `click` events take it) or
//!   whole epoch milliseconds (at least 10^11, so epoch seconds are not misread).
//! * The five metrics are decimal numbers, converted exactly to fixed point with the
//!   decimals the notebook rounds to ([`DECIMALS`]: two, and three for vibration). More
//!   precision is rejected (`1.005` for temperature), never rounded. A metric's
//!   magnitude is at most [`MAX_UNITS`] units of its last decimal (99,999.99 for two
//!   decimals), so a window's sums of squares stay exact in `i128` (see
//!   `jobs::sensor_stats`).
//! * `operational_status` is `normal`, `warning` or `alert`.
//! * `latitude` and `longitude` have at most six decimals (about 0.1 m) and lie in
//!   −90..90 and −180..180.
//!
//! # The generator
//!
//! `gen sensors --sensors N --rows R --seed S` follows the notebook's
//! `StreamingDataGenerator`: N sensors (`SENSOR_000`…) of four types with per-sensor
//! baselines (temperature N(25, 5), humidity N(60, 15), pressure N(1013, 20), vibration
//! N(0.5, 0.1), power N(100, 20)), readings with noise around them, anomaly episodes that
//! start with probability 0.05 at a reading outside an episode and last an exponential
//! time with mean 30 s, the notebook's anomaly shapes, and its status rules (decided
//! before clipping to realistic bounds, as the notebook does). Row `i` is sensor
//! `i mod N`; each sensor reads once per `--interval` (1 s), in time order.
//!
//! Row `i` must depend only on the seed and `i` ([`RowGenerator`]), while an episode is
//! state carried from reading to reading. So a sensor's readings are cut into blocks of
//! [`BLOCK`] readings, each simulated exactly by the notebook's rule from its own random
//! stream; an episode that runs past its block's end still covers the following
//! readings (for at most [`LOOKBACK`] further blocks and [`MAX_EPISODE_MS`]). The one
//! difference from the notebook: a block's first readings may start an episode while
//! one from the previous block is still running, which then ends at the later of the two.
//! Sites (`site-0`… , `--sites`, default 4) are not in the notebook: sensor `s` is at
//! site `s mod sites`.

use std::borrow::Cow;
use std::fmt::Write as _;

use rand::Rng;
use rand_pcg::Pcg64Mcg;

use super::json::{Number, Scan};
use super::{LineFormat, ParseError, RowGenerator, Timeline, csv, event_time_in_range, normal, row_rng};
use crate::money::write_fixed;
use crate::time::{Millis, parse_iso8601_signed, write_iso8601};

/// The header line of a readings CSV file.
pub const HEADER: &str = "sensor_id,timestamp,temperature,humidity,pressure,vibration,power_consumption,operational_status,latitude,longitude";

/// The header line with the generator's ground-truth column (`--labels`).
pub const HEADER_LABELLED: &str = "sensor_id,timestamp,temperature,humidity,pressure,vibration,power_consumption,operational_status,latitude,longitude,anomaly";

/// The five metrics, in column order.
pub const METRICS: [&str; 5] = ["temperature", "humidity", "pressure", "vibration", "power_consumption"];

/// Decimals of each metric (the notebook rounds to these): values are integers in units
/// of `10^-DECIMALS[m]`.
pub const DECIMALS: [u32; 5] = [2, 2, 2, 3, 2];

/// The largest magnitude of a metric, in units of its last decimal.
pub const MAX_UNITS: i64 = 9_999_999;

/// Decimals of latitude and longitude.
pub const COORD_DECIMALS: u32 = 6;

/// The sensor types of the notebook.
pub const SENSOR_TYPES: [&str; 4] = ["industrial", "environmental", "automotive", "medical"];

/// Epoch-millisecond timestamps below this are taken to be epoch seconds and rejected.
pub const MIN_EPOCH_MILLIS: i128 = 100_000_000_000;

/// A sensor's operational status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Status {
    /// Within limits.
    Normal,
    /// Temperature above 35, vibration above 2 or power below 50.
    Warning,
    /// An anomaly, or temperature above 45, vibration above 3 or power below 20.
    Alert,
}

impl Status {
    /// All statuses, in order of severity.
    pub const ALL: [Status; 3] = [Status::Normal, Status::Warning, Status::Alert];

    /// The name used in the data.
    pub fn name(self) -> &'static str {
        match self {
            Status::Normal => "normal",
            Status::Warning => "warning",
            Status::Alert => "alert",
        }
    }

    /// The status called `name`, if any.
    #[inline]
    pub fn from_name(name: &str) -> Option<Status> {
        match name {
            "normal" => Some(Status::Normal),
            "warning" => Some(Status::Warning),
            "alert" => Some(Status::Alert),
            _ => None,
        }
    }
}

/// One parsed reading, borrowing its sensor id from the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reading<'a> {
    /// The sensor, e.g. `SENSOR_007`.
    pub sensor_id: Cow<'a, str>,
    /// Event time.
    pub timestamp: Millis,
    /// The five metrics in [`METRICS`] order, each in units of its last decimal.
    pub values: [i64; 5],
    /// Operational status.
    pub status: Status,
    /// Latitude in millionths of a degree.
    pub latitude: i64,
    /// Longitude in millionths of a degree.
    pub longitude: i64,
    /// The generator's ground truth, when the line carries it.
    pub anomaly: Option<bool>,
}

/// Sensor readings as CSV (with a header) or JSON lines, told apart line by line.
pub struct SensorFormat;

impl LineFormat for SensorFormat {
    type Parsed<'a> = Reading<'a>;
    const NAME: &'static str = "sensor reading";

    fn is_header(line: &str) -> bool {
        csv::is_header(line, &[HEADER, HEADER_LABELLED])
    }

    #[inline]
    fn parse(line: &str) -> Result<Reading<'_>, ParseError> {
        let line = line.strip_prefix('\u{feff}').unwrap_or(line);
        if line.trim_start().starts_with('{') { parse_json(line) } else { parse_csv(line) }
    }

    #[inline]
    fn event_time(parsed: &Reading<'_>) -> Millis {
        parsed.timestamp
    }
}

fn excerpt(text: &str) -> String {
    crate::diag::excerpt(text.as_bytes(), 40)
}

/// A number's text as a fixed-point integer with `decimals`, within `-max..=max`.
fn fixed(n: &Number<'_>, decimals: u32, max: i64, name: &str) -> Result<i64, ParseError> {
    match n.fixed(decimals) {
        Ok(v) if v.abs() <= max => Ok(v),
        Ok(_) | Err(crate::money::MoneyError::Overflow) => {
            Err(ParseError::from(format!("bad {name} {}: out of range", excerpt(n.text))))
        }
        Err(crate::money::MoneyError::TooPrecise) => {
            Err(ParseError::from(format!("bad {name} {}: more than {decimals} decimals", excerpt(n.text))))
        }
        Err(e) => Err(ParseError::from(format!("bad {name} {}: {e}", excerpt(n.text)))),
    }
}

/// The common shape of a field, `-?(0|[1-9][0-9]*)(\.[0-9]{1,decimals})?` with at most
/// 18 digits once scaled, read in one pass; `None` for anything else, which the general
/// parser then reads (white space, exponents, trailing zeros) or rejects with a reason.
#[inline]
fn plain_fixed(b: &[u8], decimals: u32) -> Option<i64> {
    let (negative, b) = match b.first()? {
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    // One pass over the digits, both sides of the point; the checks after it bound the
    // digit count, so the wrapping arithmetic never wraps in a value that is returned.
    let mut v: i64 = 0;
    let mut i = 0;
    let mut point = None;
    while let Some(&c) = b.get(i) {
        let d = c.wrapping_sub(b'0');
        if d < 10 {
            v = v.wrapping_mul(10).wrapping_add(d as i64);
        } else if c == b'.' && point.is_none() {
            point = Some(i);
        } else {
            return None;
        }
        i += 1;
    }
    let int = point.unwrap_or(i);
    let frac = point.map_or(0, |p| i - p - 1);
    let leading_zero = b.first() == Some(&b'0') && int > 1;
    let bare_point = point.is_some() && frac == 0;
    if int == 0 || leading_zero || bare_point || int + decimals as usize > 18 || frac > decimals as usize {
        return None;
    }
    v *= 10i64.pow(decimals - frac as u32);
    Some(if negative { -v } else { v })
}

/// A CSV field as a fixed-point number.
#[inline]
fn fixed_field(field: &str, decimals: u32, max: i64, name: &str) -> Result<i64, ParseError> {
    if let Some(v) = plain_fixed(field.as_bytes(), decimals)
        && v.abs() <= max
    {
        return Ok(v);
    }
    fixed_field_general(field, decimals, max, name)
}

#[cold]
fn fixed_field_general(field: &str, decimals: u32, max: i64, name: &str) -> Result<i64, ParseError> {
    let text = field.trim();
    let mut s = Scan::new(text);
    match s.number() {
        Ok(n) if s.at_end() => fixed(&n, decimals, max, name),
        _ => Err(ParseError::from(format!("bad {name} '{}': not a decimal number", excerpt(field)))),
    }
}

fn coordinate(value: i64, limit: i64, name: &str, text: &str) -> Result<i64, ParseError> {
    if value.abs() <= limit * 1_000_000 {
        Ok(value)
    } else {
        Err(ParseError::from(format!("bad {name} {}: outside -{limit}..{limit}", excerpt(text))))
    }
}

fn timestamp_text(text: &str) -> Result<Millis, ParseError> {
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        let ms = trimmed.parse::<i128>().unwrap_or(i128::MAX);
        let ms = event_time_in_range(ms, trimmed)?;
        if (ms as i128) < MIN_EPOCH_MILLIS {
            return Err(ParseError::from(format!(
                "bad timestamp {trimmed}: looks like epoch seconds; expected milliseconds"
            )));
        }
        return Ok(ms);
    }
    parse_iso8601_signed(trimmed)
        .ok_or_else(|| ParseError::from(format!("bad timestamp '{}': not ISO 8601", excerpt(text))))
        .and_then(|t| event_time_in_range(t as i128, text))
}

fn status_text(text: &str) -> Result<Status, ParseError> {
    Status::from_name(text.trim()).ok_or_else(|| {
        ParseError::from(format!(
            "unknown operational_status '{}' (expected normal, warning or alert)",
            excerpt(text)
        ))
    })
}

fn parse_csv(line: &str) -> Result<Reading<'_>, ParseError> {
    let (fields, anomaly) = match csv::split::<10>(line) {
        Ok(f) => (f, None),
        Err(11) => {
            let [id, ts, t, h, p, v, w, st, la, lo, label] = csv::split::<11>(line)
                .map_err(|_| ParseError::fixed("wrong field count: expected 10, found 11"))?;
            let anomaly = match label.trim() {
                "0" | "false" => false,
                "1" | "true" => true,
                other => {
                    return Err(ParseError::from(format!(
                        "bad anomaly '{}': expected 0 or 1",
                        excerpt(other)
                    )));
                }
            };
            ([id, ts, t, h, p, v, w, st, la, lo], Some(anomaly))
        }
        Err(usize::MAX) => return Err(ParseError::fixed("unterminated or misplaced quote")),
        Err(n) => return Err(ParseError::from(format!("wrong field count: expected 10, found {n}"))),
    };
    let [id, ts, t, h, p, v, w, st, la, lo] = fields;
    if id.trim().is_empty() {
        return Err(ParseError::fixed("empty sensor_id"));
    }
    let timestamp = timestamp_text(&ts)?;
    let mut values = [0i64; 5];
    for (m, field) in [&t, &h, &p, &v, &w].into_iter().enumerate() {
        values[m] = fixed_field(field, DECIMALS[m], MAX_UNITS, METRICS[m])?;
    }
    let status = status_text(&st)?;
    let latitude = coordinate(fixed_field(&la, COORD_DECIMALS, i64::MAX, "latitude")?, 90, "latitude", &la)?;
    let longitude =
        coordinate(fixed_field(&lo, COORD_DECIMALS, i64::MAX, "longitude")?, 180, "longitude", &lo)?;
    Ok(Reading { sensor_id: id, timestamp, values, status, latitude, longitude, anomaly })
}

/// The fields of a JSON reading; their index is their bit in `seen`.
const FIELDS: [&str; 10] = [
    "sensor_id",
    "timestamp",
    "temperature",
    "humidity",
    "pressure",
    "vibration",
    "power_consumption",
    "operational_status",
    "latitude",
    "longitude",
];

fn json_number<'a>(s: &mut Scan<'a>, field: &str) -> Result<Number<'a>, ParseError> {
    match s.peek() {
        Some(b'-' | b'0'..=b'9') => s.number(),
        _ => Err(s.wrong_type(field, "a number")),
    }
}

fn parse_json(line: &str) -> Result<Reading<'_>, ParseError> {
    let mut s = Scan::new(line);
    s.ws();
    s.eat(b'{', "expected a JSON object")?;
    let mut r = Reading {
        sensor_id: Cow::Borrowed(""),
        timestamp: 0,
        values: [0; 5],
        status: Status::Normal,
        latitude: 0,
        longitude: 0,
        anomaly: None,
    };
    s.object(&FIELDS, |s, key, field| {
        let Some(field) = field else {
            if key == "anomaly" {
                r.anomaly = Some(match s.peek() {
                    Some(b't') => s.literal(b"true").map(|()| true)?,
                    Some(b'f') => s.literal(b"false").map(|()| false)?,
                    _ => return Err(s.wrong_type("anomaly", "a boolean")),
                });
            } else {
                s.skip_value(1)?;
            }
            return Ok(());
        };
        match field {
            0 => {
                if s.peek() != Some(b'"') {
                    return Err(s.wrong_type("sensor_id", "a string"));
                }
                r.sensor_id = s.string()?;
                if r.sensor_id.trim().is_empty() {
                    return Err(ParseError::fixed("empty sensor_id"));
                }
            }
            1 => {
                r.timestamp = match s.peek() {
                    Some(b'"') => {
                        let text = s.string()?;
                        timestamp_text(&text)?
                    }
                    Some(b'0'..=b'9') => {
                        let n = s.number()?;
                        if !n.frac.is_empty() || n.exp != 0 {
                            return Err(ParseError::from(format!(
                                "bad timestamp {}: expected whole epoch milliseconds",
                                excerpt(n.text)
                            )));
                        }
                        timestamp_text(n.text)?
                    }
                    _ => {
                        return Err(s.wrong_type("timestamp", "an ISO 8601 string or epoch milliseconds"));
                    }
                }
            }
            2..=6 => {
                let m = field - 2;
                let n = json_number(s, METRICS[m])?;
                r.values[m] = fixed(&n, DECIMALS[m], MAX_UNITS, METRICS[m])?;
            }
            7 => {
                if s.peek() != Some(b'"') {
                    return Err(s.wrong_type("operational_status", "a string"));
                }
                let text = s.string()?;
                r.status = status_text(&text)?;
            }
            8 => {
                let n = json_number(s, "latitude")?;
                r.latitude =
                    coordinate(fixed(&n, COORD_DECIMALS, i64::MAX, "latitude")?, 90, "latitude", n.text)?;
            }
            _ => {
                let n = json_number(s, "longitude")?;
                r.longitude =
                    coordinate(fixed(&n, COORD_DECIMALS, i64::MAX, "longitude")?, 180, "longitude", n.text)?;
            }
        }
        Ok(())
    })?;
    Ok(r)
}

/// One sensor's metadata from some time on: its type and site.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SensorMeta {
    /// The sensor, e.g. `SENSOR_007`.
    pub sensor_id: String,
    /// Its type, e.g. `industrial`.
    pub sensor_type: String,
    /// Its site, e.g. `site-3`.
    pub site: String,
    /// The event time from which this row holds (`None`: from the beginning). A later
    /// row of the same sensor replaces it from its own `since` on.
    pub since: Option<Millis>,
}

/// The header of a metadata file.
pub const META_HEADER: &str = "sensor_id,sensor_type,site";

/// The fields a metadata line may have, for error messages.
const META_SHAPES: &str = "sensor_id,sensor_type,site[,latitude,longitude][,since]";

/// Parses a metadata file: `sensor_id,sensor_type,site`, optionally followed by
/// `latitude,longitude` (checked and not kept) and then by `since`, the event time (ISO
/// 8601 or epoch milliseconds) from which the row holds; an empty or missing `since`
/// means from the beginning. A header line is allowed. A sensor may be listed once per
/// `since`, so a sensor that moves to another site is listed again with the time of the
/// move. Errors name the line: `line 7: empty site`.
pub fn parse_metadata(text: &str) -> Result<Vec<SensorMeta>, String> {
    let mut out: Vec<SensorMeta> = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim_start_matches('\u{feff}').trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with("sensor_id,") {
            continue;
        }
        let fields = meta_fields(line).map_err(|k| match k {
            usize::MAX => format!("line {n}: unterminated or misplaced quote"),
            k => format!("line {n}: expected 3 to 6 fields ({META_SHAPES}), found {k}"),
        })?;
        if let [_, _, _, la, lo, ..] = &fields[..] {
            fixed_field(la, COORD_DECIMALS, 90_000_000, "latitude")
                .and_then(|_| fixed_field(lo, COORD_DECIMALS, 180_000_000, "longitude"))
                .map_err(|e| format!("line {n}: {e}"))?;
        }
        let since = match &fields[..] {
            [_, _, _, s] | [_, _, _, _, _, s] if !s.trim().is_empty() => {
                Some(timestamp_text(s).map_err(|e| format!("line {n}: since: {e}"))?)
            }
            _ => None,
        };
        let (id, sensor_type, site) = (&fields[0], &fields[1], &fields[2]);
        for (value, name) in [(id, "sensor_id"), (sensor_type, "sensor_type"), (site, "site")] {
            if value.trim().is_empty() {
                return Err(format!("line {n}: empty {name}"));
            }
        }
        if !ids.insert((id.to_string(), since)) {
            return Err(match since {
                None => format!("line {n}: sensor {id} is listed twice without a since"),
                Some(t) => {
                    format!("line {n}: sensor {id} is listed twice since {}", crate::time::format_iso8601(t))
                }
            });
        }
        out.push(SensorMeta {
            sensor_id: id.to_string(),
            sensor_type: sensor_type.to_string(),
            site: site.to_string(),
            since,
        });
    }
    Ok(out)
}

/// A metadata line's 3 to 6 fields, or how many it has (`usize::MAX`: bad quoting).
fn meta_fields(line: &str) -> Result<Vec<Cow<'_, str>>, usize> {
    match csv::split::<6>(line) {
        Ok(f) => Ok(f.into()),
        Err(3) => csv::split::<3>(line).map(Vec::from),
        Err(4) => csv::split::<4>(line).map(Vec::from),
        Err(5) => csv::split::<5>(line).map(Vec::from),
        Err(k) => Err(k),
    }
}

/// Readings per block of a sensor's episode simulation.
pub const BLOCK: u64 = 64;
/// Blocks before a reading's own whose episodes may still cover it.
pub const LOOKBACK: u64 = 7;
/// The longest generated anomaly episode (20 times the mean; longer draws are cut).
pub const MAX_EPISODE_MS: u64 = 600_000;
/// The probability that a reading outside an episode starts one (the notebook's).
pub const ANOMALY_PROBABILITY: f64 = 0.05;
/// The mean episode length (the notebook's 30 s).
pub const MEAN_EPISODE_MS: f64 = 30_000.0;

/// One sensor's fixed draws.
#[derive(Clone, Debug)]
struct Baseline {
    base: [f64; 5],
    latitude: i64,
    longitude: i64,
    sensor_type: &'static str,
}

/// A deterministic generator of sensor readings: row `i` depends only on `(seed, i)`.
#[derive(Clone, Debug)]
pub struct SensorGen {
    seed: u64,
    /// Row `i`'s nominal time: `start + i * step_nanos / 10^6`.
    start: Millis,
    step_nanos: u64,
    jitter: u64,
    sites: u32,
    labels: bool,
    sensors: Vec<Baseline>,
}

/// The `gen sensors` flags.
#[derive(clap::Args, Clone, Debug)]
pub struct SensorArgs {
    /// Number of sensors (`SENSOR_000`…); row i is sensor i mod N.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub sensors: u32,
    /// Number of sites; sensor s is at `site-{s mod SITES}`.
    #[arg(long, value_name = "SITES", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub sites: u32,
    /// Time between two readings of one sensor (unless --ordered or a paced rate sets it).
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    pub interval: crate::time::Duration,
    /// Add the ground-truth column `anomaly` (1 inside an injected episode).
    #[arg(long)]
    pub labels: bool,
    /// Also write the sensors' metadata (sensor_id,sensor_type,site,latitude,longitude) here.
    #[arg(long, value_name = "PATH")]
    pub metadata: Option<std::path::PathBuf>,
}

/// `1` or `-1`, evenly.
fn sign(rng: &mut Pcg64Mcg) -> f64 {
    if rng.random::<bool>() { 1.0 } else { -1.0 }
}

const BASE_SALT: u64 = 0x5e45_0b45_e11e_0001;
const EPISODE_SALT: u64 = 0x5e45_0e91_50de_0002;

impl SensorGen {
    /// A generator for `seed`: each of `sensors` sensors reads once per `interval`
    /// milliseconds from `start`, unless `timeline` is ordered (then row `i` is at the
    /// timeline's time for `i`).
    pub fn new(seed: u64, timeline: Timeline, args: &SensorArgs) -> Self {
        let n = args.sensors as u64;
        let (start, step_nanos, jitter) = match timeline {
            Timeline::Ordered { start, step_nanos, jitter } => (start, step_nanos, jitter),
            Timeline::Shuffled { start, .. } => (start, args.interval.millis() * 1_000_000 / n, 0),
        };
        let sensors = (0..n)
            .map(|s| {
                let mut rng = row_rng(seed ^ BASE_SALT, s);
                let base = [
                    25.0 + 5.0 * normal(&mut rng),
                    60.0 + 15.0 * normal(&mut rng),
                    1013.0 + 20.0 * normal(&mut rng),
                    0.5 + 0.1 * normal(&mut rng),
                    100.0 + 20.0 * normal(&mut rng),
                ];
                Baseline {
                    base,
                    latitude: rng.random_range(-90_000_000..90_000_000),
                    longitude: rng.random_range(-180_000_000..180_000_000),
                    sensor_type: SENSOR_TYPES[rng.random_range(0..SENSOR_TYPES.len())],
                }
            })
            .collect();
        SensorGen { seed, start, step_nanos, jitter, sites: args.sites, labels: args.labels, sensors }
    }

    fn nominal(&self, row: u64) -> Millis {
        self.start + (row as u128 * self.step_nanos as u128 / 1_000_000) as u64
    }

    /// Sensor `s`'s name.
    pub fn sensor_id(s: usize) -> String {
        format!("SENSOR_{s:03}")
    }

    /// The metadata file's text: a header and one line per sensor.
    pub fn metadata(&self) -> String {
        let mut text = format!("{META_HEADER},latitude,longitude\n");
        for (s, b) in self.sensors.iter().enumerate() {
            let mut coords = Vec::new();
            write_fixed(&mut coords, b.latitude as i128, COORD_DECIMALS);
            coords.push(b',');
            write_fixed(&mut coords, b.longitude as i128, COORD_DECIMALS);
            let _ = writeln!(
                text,
                "{},{},site-{},{}",
                Self::sensor_id(s),
                b.sensor_type,
                s as u64 % self.sites as u64,
                String::from_utf8_lossy(&coords)
            );
        }
        text
    }

    /// Simulates sensor `s`'s block `block` by the notebook's rule: which of its readings
    /// are in an episode (bit `k - block * BLOCK`), and its episodes as (first reading,
    /// start time, length).
    fn block(&self, s: u64, block: u64, episodes: &mut Vec<(u64, Millis, u64)>) -> u64 {
        let n = self.sensors.len() as u64;
        let mut rng = row_rng(self.seed ^ EPISODE_SALT ^ s.wrapping_mul(0x9e37_79b9_7f4a_7c15), block);
        let mut current: Option<(Millis, u64)> = None;
        let mut bits = 0u64;
        for j in 0..BLOCK {
            let k = block * BLOCK + j;
            let t = self.nominal(k * n + s);
            let active = current.is_some_and(|(start, len)| t - start <= len);
            if active {
                bits |= 1 << j;
            } else if rng.random::<f64>() < ANOMALY_PROBABILITY {
                let u: f64 = 1.0 - rng.random::<f64>();
                let len = ((-u.ln() * MEAN_EPISODE_MS) as u64).min(MAX_EPISODE_MS);
                current = Some((t, len));
                episodes.push((k, t, len));
                bits |= 1 << j;
            }
        }
        bits
    }

    /// Whether reading `k` of sensor `s` is inside an anomaly episode.
    pub fn in_episode(&self, s: u64, k: u64) -> bool {
        let block = k / BLOCK;
        let mut episodes = Vec::new();
        if self.block(s, block, &mut episodes) & (1 << (k % BLOCK)) != 0 {
            return true;
        }
        let t = self.nominal(k * self.sensors.len() as u64 + s);
        (block.saturating_sub(LOOKBACK)..block).any(|b| {
            episodes.clear();
            self.block(s, b, &mut episodes);
            episodes.iter().any(|&(_, start, len)| t - start <= len)
        })
    }
}

impl RowGenerator for SensorGen {
    fn header(&self) -> Option<Cow<'static, str>> {
        Some(if self.labels { HEADER_LABELLED } else { HEADER }.into())
    }

    fn write_row(&self, index: u64, out: &mut Vec<u8>) {
        let n = self.sensors.len() as u64;
        let (s, k) = (index % n, index / n);
        let b = &self.sensors[s as usize];
        let mut rng = row_rng(self.seed, index);
        let anomaly = self.in_episode(s, k);
        let noise = [2.0, 5.0, 5.0, 0.1, 5.0];
        let mut x = [0.0; 5];
        for m in 0..5 {
            x[m] = b.base[m] + noise[m] * normal(&mut rng);
        }
        let [temperature, _, _, vibration, power] = &mut x;
        if anomaly {
            let kind = rng.random_range(0..4u8); // temperature, vibration, power, multiple
            if kind == 0 || kind == 3 {
                *temperature += sign(&mut rng) * rng.random_range(10.0..20.0);
            }
            if kind == 1 || kind == 3 {
                *vibration += rng.random_range(2.0..5.0);
            }
            if kind == 2 || kind == 3 {
                *power += sign(&mut rng) * rng.random_range(30.0..60.0);
            }
        }
        let status = if anomaly || *temperature > 45.0 || *vibration > 3.0 || *power < 20.0 {
            Status::Alert
        } else if *temperature > 35.0 || *vibration > 2.0 || *power < 50.0 {
            Status::Warning
        } else {
            Status::Normal
        };
        let bounds = [(-40.0, 80.0), (0.0, 100.0), (900.0, 1100.0), (0.0, 10.0), (0.0, 500.0)];
        let mut time = self.nominal(index);
        if self.jitter > 0 {
            time = time.saturating_sub(rng.random_range(0..=self.jitter));
        }
        out.extend_from_slice(Self::sensor_id(s as usize).as_bytes());
        out.push(b',');
        write_iso8601(out, time);
        for m in 0..5 {
            let (lo, hi) = bounds[m];
            let scale = 10f64.powi(DECIMALS[m] as i32);
            let units = (x[m].clamp(lo, hi) * scale).round() as i128;
            out.push(b',');
            write_fixed(out, units, DECIMALS[m]);
        }
        out.push(b',');
        out.extend_from_slice(status.name().as_bytes());
        out.push(b',');
        write_fixed(out, b.latitude as i128, COORD_DECIMALS);
        out.push(b',');
        write_fixed(out, b.longitude as i128, COORD_DECIMALS);
        if self.labels {
            out.extend_from_slice(if anomaly { b",1" } else { b",0" });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(sensors: u32) -> SensorArgs {
        SensorArgs {
            sensors,
            sites: 4,
            interval: crate::time::Duration::from_secs(1),
            labels: true,
            metadata: None,
        }
    }

    fn rows(generator: &SensorGen, count: u64) -> Vec<String> {
        (0..count)
            .map(|i| {
                let mut line = Vec::new();
                generator.write_row(i, &mut line);
                String::from_utf8(line).unwrap()
            })
            .collect()
    }

    #[test]
    fn generated_rows_parse_back_and_follow_the_notebooks_rules() {
        let generator = SensorGen::new(7, Timeline::default_history(), &args(20));
        let lines = rows(&generator, 40_000);
        let (mut anomalous, mut alerts) = (0, 0);
        for (i, line) in lines.iter().enumerate() {
            let r = SensorFormat::parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(r.sensor_id, format!("SENSOR_{:03}", i % 20));
            assert_eq!(
                r.timestamp,
                crate::record::DEFAULT_START + (i as u64 / 20) * 1000 + (i as u64 % 20) * 50
            );
            let [t, h, p, v, w] = r.values;
            assert!((-4000..=8000).contains(&t) && (0..=10_000).contains(&h), "{line}");
            assert!(
                (90_000..=110_000).contains(&p) && (0..=10_000).contains(&v) && (0..=50_000).contains(&w)
            );
            // Inside an episode every reading is an alert; outside, the thresholds decide
            // (on the unclipped, unrounded value, so only well-clear values are checked).
            let anomaly = r.anomaly.unwrap();
            anomalous += anomaly as u32;
            alerts += (r.status == Status::Alert) as u32;
            if anomaly || t > 4501 || v > 3001 || w < 1999 {
                assert_eq!(r.status, Status::Alert, "{line}");
            } else if t < 3499 && v < 1999 && w > 5001 {
                assert_eq!(r.status, Status::Normal, "{line}");
            }
        }
        // Episodes start with p = 0.05 outside one and last 30 s on average at one
        // reading a second: about 0.05 * 31 / (1 + 0.05 * 31) = 61% of readings.
        let share = anomalous as f64 / lines.len() as f64;
        assert!((0.5..0.7).contains(&share), "anomalous share {share}");
        assert!(alerts >= anomalous);
    }

    #[test]
    fn episodes_are_contiguous_runs() {
        let generator = SensorGen::new(3, Timeline::default_history(), &args(5));
        let flags: Vec<bool> = (0..2000).map(|k| generator.in_episode(2, k)).collect();
        let starts = flags.windows(2).filter(|w| !w[0] && w[1]).count();
        let run_lengths: f64 = flags.iter().filter(|f| **f).count() as f64 / starts.max(1) as f64;
        // Mean run length: about 31 readings (30 s mean at 1 s plus the starting reading).
        assert!((15.0..60.0).contains(&run_lengths), "{run_lengths}");
    }

    #[test]
    fn rows_depend_only_on_seed_and_index() {
        let a = SensorGen::new(1, Timeline::default_history(), &args(10));
        let b = SensorGen::new(1, Timeline::default_history(), &args(10));
        assert_eq!(rows(&a, 500), rows(&b, 500));
        let c = SensorGen::new(2, Timeline::default_history(), &args(10));
        assert_ne!(rows(&a, 500), rows(&c, 500));
        let meta = parse_metadata(&a.metadata()).unwrap();
        assert_eq!(meta.len(), 10);
        assert_eq!(meta[5].site, "site-1");
        assert!(SENSOR_TYPES.contains(&meta[5].sensor_type.as_str()));
    }

    #[test]
    fn csv_and_json_lines_parse_to_the_same_reading() {
        let csv = "SENSOR_001,2026-10-01T00:00:07Z,24.8,61.02,1011.37,0.512,98.40,warning,-12.5,101.234567";
        let json = r#"{"sensor_id": "SENSOR_001", "timestamp": 1790812807000, "temperature": 24.80, "humidity": 61.02, "pressure": 1011.37, "vibration": 5.12e-1, "power_consumption": 98.4, "operational_status": "warning", "latitude": -12.5, "longitude": 101.234567, "extra": [1, {"a": 2}]}"#;
        let a = SensorFormat::parse(csv).unwrap();
        let b = SensorFormat::parse(json).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.values, [2480, 6102, 101_137, 512, 9840]);
        assert_eq!((a.latitude, a.longitude), (-12_500_000, 101_234_567));
        assert_eq!(a.status, Status::Warning);
        assert!(SensorFormat::is_header(HEADER) && SensorFormat::is_header(HEADER_LABELLED));
    }

    #[test]
    fn rejects_name_the_problem() {
        let good = "S,2026-10-01T00:00:00Z,1.00,2.00,3.00,0.004,5.00,normal,0,0";
        assert!(SensorFormat::parse(good).is_ok());
        let cases = [
            ("S,2026-10-01T00:00:00Z,1.00", "wrong field count"),
            (",2026-10-01T00:00:00Z,1.00,2.00,3.00,0.004,5.00,normal,0,0", "empty sensor_id"),
            ("S,yesterday,1.00,2.00,3.00,0.004,5.00,normal,0,0", "bad timestamp"),
            ("S,1790812800,1.00,2.00,3.00,0.004,5.00,normal,0,0", "bad timestamp"),
            (
                "S,2026-10-01T00:00:00Z,1.005,2.00,3.00,0.004,5.00,normal,0,0",
                "bad temperature 1.005: more than 2",
            ),
            ("S,2026-10-01T00:00:00Z,1.00,abc,3.00,0.004,5.00,normal,0,0", "bad humidity"),
            (
                "S,2026-10-01T00:00:00Z,1.00,2.00,100000.00,0.004,5.00,normal,0,0",
                "bad pressure 100000.00: out of range",
            ),
            ("S,2026-10-01T00:00:00Z,1.00,2.00,3.00,0.0041,5.00,normal,0,0", "bad vibration"),
            ("S,2026-10-01T00:00:00Z,1.00,2.00,3.00,0.004,5.00,broken,0,0", "unknown operational_status"),
            ("S,2026-10-01T00:00:00Z,1.00,2.00,3.00,0.004,5.00,normal,91,0", "bad latitude 91"),
            ("S,2026-10-01T00:00:00Z,1.00,2.00,3.00,0.004,5.00,normal,0,1.0000001", "bad longitude"),
            ("S,2026-10-01T00:00:00Z,1.00,2.00,3.00,0.004,5.00,normal,0,0,maybe", "bad anomaly"),
            (r#"{"sensor_id": "S"}"#, "missing field 'timestamp'"),
            (r#"{"sensor_id": "S", "sensor_id": "T"}"#, "duplicate field 'sensor_id'"),
            (r#"{"sensor_id": 5}"#, "sensor_id must be a string"),
            (r#"{"temperature": "hot"}"#, "temperature must be a number"),
            (r#"{"sensor_id": "S""#, "malformed JSON"),
        ];
        for (line, reason) in cases {
            let err = SensorFormat::parse(line).unwrap_err();
            assert!(err.0.starts_with(reason), "{line}: {err}");
        }
    }

    proptest::proptest! {
        /// Wherever the one-pass reader of plain decimals answers, the general parser
        /// gives the same value.
        #[test]
        fn plain_decimals_read_as_the_general_parser_reads_them(
            text in "-?[0-9]{0,20}(\\.[0-9]{0,8})?[e ]?",
            decimals in 0u32..7,
        ) {
            if let Some(v) = plain_fixed(text.as_bytes(), decimals) {
                proptest::prop_assert_eq!(Ok(v), fixed_field_general(&text, decimals, i64::MAX, "x").map_err(|e| e.0));
            }
        }

        /// The one-pass reader answers for every plain decimal, so the general parser
        /// only sees the unusual ones.
        #[test]
        fn every_plain_decimal_takes_the_one_pass_reader(
            int in 0i64..100_000_000_000,
            frac in 0i64..1_000_000,
            decimals in 0u32..7,
            shown in 0u32..7,
            negative: bool,
        ) {
            let shown = shown.min(decimals);
            let frac = frac % 10i64.pow(shown);
            let text = match shown {
                0 => format!("{}{int}", if negative { "-" } else { "" }),
                k => format!("{}{int}.{frac:0k$}", if negative { "-" } else { "" }, k = k as usize),
            };
            let magnitude = (int * 10i64.pow(shown) + frac) * 10i64.pow(decimals - shown);
            proptest::prop_assert_eq!(plain_fixed(text.as_bytes(), decimals), Some(if negative { -magnitude } else { magnitude }));
        }
    }

    #[test]
    fn metadata_errors_name_the_line() {
        let ok = parse_metadata("sensor_id,sensor_type,site\nA,industrial,north\nB,medical,south,1.5,2.5\n")
            .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(
            ok[1],
            SensorMeta {
                sensor_id: "B".into(),
                sensor_type: "medical".into(),
                site: "south".into(),
                since: None
            }
        );
        assert_eq!(
            parse_metadata("A,industrial\n").unwrap_err(),
            "line 1: expected 3 to 6 fields (sensor_id,sensor_type,site[,latitude,longitude][,since]), found 2"
        );
        assert_eq!(parse_metadata("A,x,y\nB,x,\n").unwrap_err(), "line 2: empty site");
        assert_eq!(
            parse_metadata("A,x,y\nA,x,z\n").unwrap_err(),
            "line 2: sensor A is listed twice without a since"
        );
        assert!(parse_metadata("A,x,y,95,0\n").unwrap_err().starts_with("line 1: bad latitude"));
        // A move: the same sensor again from a later time, with or without coordinates.
        let moved = parse_metadata("A,x,north\nA,x,south,2026-10-01T00:05:30Z\nA,x,east,1,2,1790000000000\n")
            .unwrap();
        assert_eq!(
            moved.iter().map(|m| m.since).collect::<Vec<_>>(),
            [None, Some(1_790_813_130_000), Some(1_790_000_000_000)]
        );
        assert!(parse_metadata("A,x,y,yesterday\n").unwrap_err().starts_with("line 1: since: bad timestamp"));
        assert_eq!(
            parse_metadata("A,x,y,1790000000000\nA,x,z,2026-09-21T14:13:20Z\n").unwrap_err(),
            "line 2: sensor A is listed twice since 2026-09-21T14:13:20Z"
        );
    }

    #[test]
    fn fixed_point_values_print_exactly() {
        let mut out = Vec::new();
        for (v, d) in [(-50, 3), (123_456, 2), (0, 2), (7, 0), (-1_000_000, 6)] {
            write_fixed(&mut out, v, d);
            out.push(b' ');
        }
        assert_eq!(String::from_utf8(out).unwrap(), "-0.050 1234.56 0.00 7 -1.000000 ");
    }
}
