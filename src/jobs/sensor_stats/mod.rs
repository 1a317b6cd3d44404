//! IoT sensor statistics: the rows and the composition of the `sensor_stats` job.
//!
//! * [`Stats`]: the exact partial aggregate of a set of readings: count, and per metric
//!   the integer sum, sum of squares, minimum and maximum (in the metric's fixed-point
//!   units, see [`crate::record::sensor::DECIMALS`]), and the status distribution. Adding
//!   partials is integer addition, so the result does not depend on the order in which
//!   readings arrive, on `-w`/`-n` or on the delivery.
//! * [`WindowSet`]: the window sizes of one run (`--windows 1m,5m,15m,1h`, tumbling or
//!   sliding by one `--slide`) and the finest grid that divides them all.
//! * [`Sensors`]: the metadata over event time; each reading is placed by the row in
//!   effect at its own timestamp (an as-of lookup, see the type's docs for why not a join).
//! * [`SensorStats`]: one row per window, size, grouping (sensor, type, site, all) and key.
//! * [`sensor_stats`]: the dataflow: readings are folded once, per sensor, into partials
//!   over the finest grid; each window size then merges those partials, never the
//!   readings, so adding a size costs a merge of partials, not another pass over the input.
//!
//! * [`rules`]: alert rules with episodes, run per sensor and rule by `KeyedOrdered`.
//!
//! # Statistics, exactly
//!
//! For a metric with `d` decimals, values are integers `x` in units of `10^-d`. With
//! `n` readings, `S = Σx` and `Q = Σx²` (both `i128`):
//! * `mean` is `S / n` printed with `d + 2` decimals, rounded half away from zero;
//! * `std` is the sample standard deviation (`ddof = 1`, as pandas' `std()`),
//!   `sqrt((nQ − S²) / (n(n − 1)))`, printed with `d + 1` decimals and rounded to the
//!   nearest (computed with integers: `r` is the integer with
//!   `(2r − 1)² · n(n − 1) ≤ 4 · 10² · (nQ − S²) < (2r + 1)² · n(n − 1)`); it is empty (`null`
//!   in JSON) when `n < 2`;
//! * `min` and `max` are exact.
//!
//! A metric is at most 9,999,999 units (see the record's parser), so `nQ` stays below
//! 2^126 for up to 10^10 readings per window and key; beyond that the standard deviation
//! falls back to floating point (still deterministic, since the integer sums are).

pub mod rules;

use std::cmp::Ordering;
use std::sync::Arc;

use compact_str::CompactString;
use differential_dataflow::difference::{IsZero, Semigroup};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::dataflow::Stream;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concat, Exchange};

use crate::operators::ingest::Timed;
use crate::operators::window::Windowing;
use crate::operators::{Accumulate, WindowAggregate, WindowFold};
use crate::record::ParseError;
use crate::record::sensor::{DECIMALS, METRICS, Reading, SensorMeta, Status};
use crate::sink::{Cell, Tabular};
use crate::time::{Duration, EventTime, Millis};

/// A sensor and the index of its metadata row in effect at a reading's time (see
/// [`Sensors::placement`]).
pub type Placed = (CompactString, u32);

/// What the job keeps of one reading: its placed sensor, its five metrics and its status.
pub type Sample = (Placed, [i64; 5], Status);

/// The exact partial aggregate of a set of readings.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stats {
    /// Readings.
    pub count: u64,
    /// Per metric, the sum of values.
    pub sum: [i128; 5],
    /// Per metric, the sum of squared values.
    pub sum_sq: [i128; 5],
    /// Per metric, the smallest value (`i64::MAX` when empty).
    pub min: [i64; 5],
    /// Per metric, the largest value (`i64::MIN` when empty).
    pub max: [i64; 5],
    /// Readings per status, in [`Status::ALL`] order.
    pub statuses: [u64; 3],
}

impl Stats {
    /// No readings: the identity of [`Semigroup::plus_equals`].
    pub const EMPTY: Stats = Stats {
        count: 0,
        sum: [0; 5],
        sum_sq: [0; 5],
        min: [i64::MAX; 5],
        max: [i64::MIN; 5],
        statuses: [0; 3],
    };

    /// The aggregate of one reading.
    #[inline]
    pub fn of(values: &[i64; 5], status: Status) -> Stats {
        let mut stats = Stats::EMPTY;
        stats.add(&(*values, status));
        stats
    }
}

/// A reading's values and status, added into a partial without widening it first.
impl Accumulate<([i64; 5], Status)> for Stats {
    #[inline]
    fn first((values, status): &([i64; 5], Status)) -> Stats {
        Stats::of(values, *status)
    }

    #[inline]
    fn add(&mut self, (values, status): &([i64; 5], Status)) {
        self.count += 1;
        for (m, &v) in values.iter().enumerate() {
            self.sum[m] += v as i128;
            self.sum_sq[m] += (v as i128) * (v as i128);
            self.min[m] = self.min[m].min(v);
            self.max[m] = self.max[m].max(v);
        }
        self.statuses[*status as usize] += 1;
    }
}

impl IsZero for Stats {
    fn is_zero(&self) -> bool {
        self.count == 0
    }
}

impl Semigroup for Stats {
    #[inline]
    fn plus_equals(&mut self, o: &Self) {
        self.count += o.count;
        for m in 0..5 {
            self.sum[m] += o.sum[m];
            self.sum_sq[m] += o.sum_sq[m];
            self.min[m] = self.min[m].min(o.min[m]);
            self.max[m] = self.max[m].max(o.max[m]);
        }
        for s in 0..3 {
            self.statuses[s] += o.statuses[s];
        }
    }
}

/// `num / den` rounded half away from zero (`den > 0`).
pub fn div_round(num: i128, den: i128) -> i128 {
    let (q, r) = (num / den, num % den);
    if 2 * r.abs() >= den { q + num.signum() } else { q }
}

/// The mean of `n` values summing to `sum`, in units of `10^-(d + 2)`.
pub fn mean(sum: i128, n: u64) -> i128 {
    div_round(sum * 100, n as i128)
}

/// The sample standard deviation of `n` values with sum `sum` and sum of squares `sum_sq`,
/// in units of `10^-(d + 1)`, rounded to the nearest; `None` when `n < 2`.
pub fn std_dev(sum: i128, sum_sq: i128, n: u64) -> Option<i128> {
    if n < 2 {
        return None;
    }
    let n = n as i128;
    let exact = || -> Option<i128> {
        let spread = n.checked_mul(sum_sq)?.checked_sub(sum.checked_mul(sum)?)?;
        let x = spread.checked_mul(100)? as u128;
        let den = (n * (n - 1)) as u128;
        let s = (x / den).isqrt();
        // Round up when sqrt(x / den) >= s + 1/2, that is 4x >= (2s + 1)² den.
        let up = x.checked_mul(4)? >= (2 * s + 1).checked_mul(2 * s + 1)?.checked_mul(den)?;
        Some((s + up as u128) as i128)
    };
    exact().or_else(|| {
        let (nf, sf, qf) = (n as f64, sum as f64, sum_sq as f64);
        Some((((nf * qf - sf * sf) / (nf * (nf - 1.0))).max(0.0).sqrt() * 10.0).round() as i128)
    })
}

/// The window sizes of one run, all tumbling or all sliding by one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowSet {
    /// Each size's windowing, in the order given.
    pub windows: Vec<Windowing>,
    /// The finest grid: the greatest common divisor of every size and the slide. Every
    /// window is a union of whole cells of this grid.
    pub grid: Duration,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl WindowSet {
    /// Parses `--windows` (`1m,5m,15m,1h`) with an optional `--slide`.
    pub fn parse(list: &str, slide: Option<Duration>) -> Result<WindowSet, String> {
        let mut windows = Vec::new();
        let mut sizes: Vec<Duration> = Vec::new();
        for part in list.split(',') {
            let size: Duration = part.parse().map_err(|e| format!("--windows: {e}"))?;
            if size.millis() == 0 {
                return Err(format!("--windows: '{}' is not a positive duration", part.trim()));
            }
            if sizes.contains(&size) {
                return Err(format!("--windows: {size} is listed twice"));
            }
            if size > crate::cli::MAX_WINDOW {
                return Err(format!("--windows: {size} is longer than 100 years"));
            }
            let windowing =
                Windowing::from_flags(Some(size), slide).map_err(|e| e.replace("--window ", "--windows "))?;
            if let Some(s) = slide
                && size.millis().div_ceil(s.millis()) > crate::cli::MAX_WINDOWS_PER_RECORD
            {
                return Err(format!(
                    "--windows {size} / --slide {s} puts each record in more than {} windows",
                    crate::cli::MAX_WINDOWS_PER_RECORD
                ));
            }
            sizes.push(size);
            windows.push(windowing);
        }
        let grid = sizes.iter().chain(slide.as_ref()).fold(0, |g, d| gcd(g, d.millis()));
        Ok(WindowSet { windows, grid: Duration::from_millis(grid) })
    }
}

/// What a row aggregates over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    /// One sensor.
    Sensor,
    /// All sensors of one type.
    Type,
    /// All sensors of one site.
    Site,
    /// Every reading.
    All,
}

impl Level {
    /// The name printed in the `group` column.
    pub fn name(self) -> &'static str {
        match self {
            Level::Sensor => "sensor",
            Level::Type => "type",
            Level::Site => "site",
            Level::All => "all",
        }
    }
}

/// One sensor's metadata from `since` on.
#[derive(Clone, Debug)]
struct Placement {
    since: Millis,
    sensor_type: CompactString,
    site: CompactString,
}

/// The sensors known from `--sensors FILE`: each one's type and site over event time.
///
/// A sensor listed several times (a move to another site, a change of type) has one
/// placement per `since`; a reading at `t` belongs to the placement with the greatest
/// `since ≤ t`, so a change takes effect from its own time on and never rewrites the
/// windows before it. This is an as-of join of readings against a versioned table: a
/// differential join of the two collections would instead re-attribute every earlier
/// reading of the sensor to its new site at the time of the move, which is the current
/// view of the history, not what a window that has already closed contained.
#[derive(Clone, Debug, Default)]
pub struct Sensors {
    by_id: FxHashMap<CompactString, Vec<Placement>>,
}

impl Sensors {
    /// The lookup for `metadata`.
    pub fn new(metadata: &[SensorMeta]) -> Sensors {
        let mut by_id: FxHashMap<CompactString, Vec<Placement>> = FxHashMap::default();
        for m in metadata {
            by_id.entry(m.sensor_id.as_str().into()).or_default().push(Placement {
                since: m.since.unwrap_or(0),
                sensor_type: m.sensor_type.as_str().into(),
                site: m.site.as_str().into(),
            });
        }
        for placements in by_id.values_mut() {
            placements.sort_by_key(|p| p.since);
        }
        Sensors { by_id }
    }

    /// The type and site of `sensor` in its placement `index` (see [`Sensors::placement`]).
    pub fn get(&self, sensor: &str, index: u32) -> Option<(&CompactString, &CompactString)> {
        let p = self.by_id.get(sensor)?.get(index as usize)?;
        Some((&p.sensor_type, &p.site))
    }

    /// The index of the placement of `sensor` in effect at `time`, or why there is none.
    #[inline]
    pub fn placement(&self, sensor: &str, time: Millis) -> Result<u32, ParseError> {
        let Some(placements) = self.by_id.get(sensor) else {
            return Err(ParseError::from(format!(
                "unknown sensor '{}' (not in --sensors)",
                crate::diag::excerpt(sensor.as_bytes(), 40)
            )));
        };
        match placements.partition_point(|p| p.since <= time) {
            0 => Err(ParseError::from(format!(
                "sensor '{}' is not in --sensors before {}",
                crate::diag::excerpt(sensor.as_bytes(), 40),
                crate::time::format_iso8601(placements[0].since)
            ))),
            k => Ok(k as u32 - 1),
        }
    }

    /// What the job keeps of `reading`, or a reject when the sensor is not known at the
    /// reading's time (`sensors` is `None` when no metadata was given: then every sensor
    /// is accepted, in placement 0).
    #[inline]
    pub fn sample(sensors: Option<&Sensors>, reading: &Reading<'_>) -> Result<Sample, ParseError> {
        let placement = match sensors {
            Some(known) => known.placement(&reading.sensor_id, reading.timestamp)?,
            None => 0,
        };
        Ok(((CompactString::from(&*reading.sensor_id), placement), reading.values, reading.status))
    }
}

/// One row: a window's statistics for one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorStats {
    /// The window's end (exclusive).
    pub time: Millis,
    /// The window's size in milliseconds.
    pub window: u64,
    /// The window's size as written, e.g. `5m`.
    pub window_label: CompactString,
    /// What the row aggregates over.
    pub level: Level,
    /// The sensor, type or site; `all` for every reading.
    pub key: CompactString,
    /// The statistics.
    pub stats: Stats,
}

impl Ord for SensorStats {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.time, self.window, self.level, &self.key, &self.stats)
            .cmp(&(o.time, o.window, o.level, &o.key, &o.stats))
    }
}

impl PartialOrd for SensorStats {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// The columns of [`SensorStats`].
const COLUMNS: [&str; 28] = [
    "time",
    "window",
    "group",
    "key",
    "count",
    "temperature_mean",
    "temperature_std",
    "temperature_min",
    "temperature_max",
    "humidity_mean",
    "humidity_std",
    "humidity_min",
    "humidity_max",
    "pressure_mean",
    "pressure_std",
    "pressure_min",
    "pressure_max",
    "vibration_mean",
    "vibration_std",
    "vibration_min",
    "vibration_max",
    "power_consumption_mean",
    "power_consumption_std",
    "power_consumption_min",
    "power_consumption_max",
    "normal",
    "warning",
    "alert",
];

impl Tabular for SensorStats {
    fn current_key() -> &'static [&'static str] {
        &["window", "group", "key"]
    }

    fn columns() -> Vec<&'static str> {
        debug_assert!(METRICS.iter().enumerate().all(|(m, name)| COLUMNS[5 + 4 * m].starts_with(name)));
        COLUMNS.to_vec()
    }

    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        let s = &self.stats;
        out.extend([
            Cell::Time(self.time),
            Cell::Text(&self.window_label),
            Cell::Text(self.level.name()),
            Cell::Text(&self.key),
            Cell::Int(s.count as i64),
        ]);
        for (m, &d) in DECIMALS.iter().enumerate() {
            out.push(Cell::Fixed(mean(s.sum[m], s.count), d + 2));
            out.push(std_dev(s.sum[m], s.sum_sq[m], s.count).map_or(Cell::Null, |v| Cell::Fixed(v, d + 1)));
            out.push(Cell::Fixed(s.min[m] as i128, d));
            out.push(Cell::Fixed(s.max[m] as i128, d));
        }
        out.extend(s.statuses.iter().map(|&c| Cell::Int(c as i64)));
    }
}

/// What crosses from each worker to the centre (worker 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Ship {
    /// Each worker's partial aggregates over the grid (edge pre-aggregation).
    #[default]
    Partials,
    /// Every reading, folded at the centre.
    Readings,
}

/// The statistics of every window size in `windows`, per sensor, per type and site
/// (when `sensors` is given) and over all readings.
///
/// Readings are folded per sensor and placement over `windows.grid` (each worker folds its own, and
/// only partials cross to worker 0); each partial is then placed, under each grouping,
/// in every window of every size that contains its grid cell. A cell lies wholly inside
/// or outside each window because the grid divides every size and the slide, so the
/// result is exactly the fold of the readings themselves.
///
/// With [`Ship::Readings`] every reading is sent to worker 0 before the fold instead, as
/// a centre without edge aggregation would receive them: the same result, for measuring
/// what pre-aggregation saves on the network.
pub fn sensor_stats<'scope, T: EventTime>(
    samples: Stream<'scope, T, Vec<Timed<Sample>>>,
    windows: &WindowSet,
    sensors: Option<Arc<Sensors>>,
    ship: Ship,
) -> Stream<'scope, T, Vec<SensorStats>> {
    let grid = Windowing::Tumbling { size: windows.grid };
    let samples = match ship {
        Ship::Partials => samples,
        Ship::Readings => samples.exchange(|_| 0),
    };
    let cells = samples
        .map(|((sensor, values, status), time)| ((sensor, (values, status)), time))
        .window_fold::<Stats>(grid);
    let grouped = cells.flat_map(move |(end, (sensor, placement), stats)| {
        // A cell's last millisecond lies in exactly the windows that contain the cell.
        let at = end - 1;
        let mut groups = Vec::with_capacity(4);
        if let Some((sensor_type, site)) = sensors.as_ref().and_then(|s| s.get(&sensor, placement)) {
            groups.push((((Level::Type, sensor_type.clone()), stats.clone()), at));
            groups.push((((Level::Site, site.clone()), stats.clone()), at));
        }
        groups.push((((Level::All, CompactString::const_new("all")), stats.clone()), at));
        groups.push((((Level::Sensor, sensor), stats), at));
        groups
    });
    let mut out: Option<Stream<'scope, T, Vec<SensorStats>>> = None;
    for &windowing in &windows.windows {
        let size = windowing.size().expect("sensor windows have a size");
        let label = CompactString::from(size.to_string());
        let rows = grouped.clone().window_aggregate(windowing).map(move |(time, (level, key), stats)| {
            SensorStats { time, window: size.millis(), window_label: label.clone(), level, key, stats }
        });
        out = Some(match out {
            None => rows,
            Some(o) => o.concat(rows),
        });
    }
    out.expect("at least one window size")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn std_dev_is_the_nearest_integer_to_the_exact_root() {
        // Values 1, 2, 3, 4 (in units): variance 5/3, std 1.29…, 13 tenths of a unit.
        assert_eq!(std_dev(10, 30, 4), Some(13));
        assert_eq!(std_dev(5, 25, 1), None);
        assert_eq!(std_dev(10, 50, 2), Some(0));
        // Brute force against the definition for small sets.
        for a in -20i128..20 {
            for b in -20i128..20 {
                for c in [-7i128, 0, 3, 19] {
                    let (n, s, q) = (3u64, a + b + c, a * a + b * b + c * c);
                    let r = std_dev(s, q, n).unwrap();
                    let x = (3 * q - s * s) * 100;
                    let den = 6;
                    assert!((2 * r - 1).pow(2) * den <= 4 * x || r == 0, "{a} {b} {c}: {r}");
                    assert!(4 * x < (2 * r + 1).pow(2) * den, "{a} {b} {c}: {r}");
                }
            }
        }
    }

    #[test]
    fn means_round_half_away_from_zero() {
        assert_eq!(mean(1, 3), 33);
        assert_eq!(mean(2, 3), 67);
        assert_eq!(mean(-2, 3), -67);
        assert_eq!(mean(1, 8), 13);
        assert_eq!(mean(-1, 8), -13);
    }

    #[test]
    fn window_sets_share_one_grid() {
        let w = WindowSet::parse("1m,5m,15m,1h", None).unwrap();
        assert_eq!(w.grid, Duration::from_secs(60));
        assert_eq!(w.windows.len(), 4);
        let w = WindowSet::parse("10m,15m", Some(Duration::from_secs(300))).unwrap();
        assert_eq!(w.grid, Duration::from_secs(300));
        assert!(WindowSet::parse("1m,1m", None).unwrap_err().contains("twice"));
        assert!(WindowSet::parse("1m,x", None).is_err());
        assert!(WindowSet::parse("4m,5m", Some(Duration::from_secs(120))).unwrap_err().contains("multiple"));
        assert!(
            WindowSet::parse("1m,5m", Some(Duration::from_secs(120))).unwrap_err().contains("longer than")
        );
    }

    #[test]
    fn adding_a_reading_is_adding_its_partial() {
        let readings = [
            ([1, -2, 3, 4, 5], Status::Normal),
            ([-7, 0, 9, 4, 2], Status::Alert),
            ([3, 3, 3, 3, 3], Status::Warning),
        ];
        let mut added = Stats::first(&readings[0]);
        let mut merged = Stats::of(&readings[0].0, readings[0].1);
        for r in &readings[1..] {
            added.add(r);
            merged.plus_equals(&Stats::of(&r.0, r.1));
        }
        assert_eq!(added, merged);
    }

    #[test]
    fn partials_add_up_exactly() {
        let mut a = Stats::of(&[1, 2, 3, 4, 5], Status::Normal);
        a.plus_equals(&Stats::of(&[-1, 0, 9, 4, 5], Status::Alert));
        assert_eq!(a.count, 2);
        assert_eq!(a.sum, [0, 2, 12, 8, 10]);
        assert_eq!(a.sum_sq, [2, 4, 90, 32, 50]);
        assert_eq!((a.min, a.max), ([-1, 0, 3, 4, 5], [1, 2, 9, 4, 5]));
        assert_eq!(a.statuses, [1, 0, 1]);
    }
}
