//! The notebook's batch analytics over an access log: totals, distributions, top URLs,
//! error rate, average size, peak hour, unusual request lines and parse errors.
//!
//! A request with an unusual request line (not `METHOD URL PROTOCOL`, see
//! [`crate::record::access_log`]) counts in every metric except the method
//! distribution and top URLs, which it has no value for; `unusual_requests` counts them.
//!
//! Each request adds to several [`Facet`] counters; once the input has ended the
//! counters and the number of rejected lines become [`LogReportRow`]s
//! ([`LogReport::log_report`]).

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use timely::dataflow::Stream;
use timely::dataflow::operators::Concat;
use timely::dataflow::operators::vec::Map;

use super::Hit;
use crate::operators::FoldAtEnd;
use crate::operators::aggregate::Windowed;
use crate::sink::{Cell, Layout, Tabular};
use crate::time::{EventTime, Millis};

/// A counter of the report: each request adds to several facets.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Facet {
    /// Requests.
    Requests,
    /// Requests with status 400 or above.
    Errors,
    /// Requests whose size was logged (not `-`).
    Sized,
    /// Sum of logged sizes.
    Bytes,
    /// Requests per client host.
    Ip(CompactString),
    /// Requests per status.
    Status(u16),
    /// Requests per method.
    Method(CompactString),
    /// Requests per URL.
    Url(CompactString),
    /// Requests per hour of day.
    Hour(u8),
    /// Requests whose request line is unusual.
    Unusual,
}

impl Facet {
    /// Calls `each` with every facet a request adds to, and the amount.
    #[inline]
    pub fn of(hit: Hit, mut each: impl FnMut(Facet, i128)) {
        each(Facet::Requests, 1);
        if hit.is_error() {
            each(Facet::Errors, 1);
        }
        if let Some(size) = hit.size {
            each(Facet::Sized, 1);
            each(Facet::Bytes, size as i128);
        }
        each(Facet::Status(hit.status), 1);
        each(Facet::Hour(hit.hour), 1);
        each(Facet::Ip(hit.ip), 1);
        if hit.unusual.is_some() {
            each(Facet::Unusual, 1);
        } else {
            each(Facet::Method(hit.method), 1);
            each(Facet::Url(hit.url), 1);
        }
    }
}

/// The report's metrics, in the order they are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Metric {
    /// Requests (lines with a valid common-format prefix).
    TotalRequests,
    /// Distinct client hosts.
    UniqueIps,
    /// Requests per status, most frequent first.
    StatusDistribution,
    /// Requests per method, most frequent first.
    MethodDistribution,
    /// The 5 most requested URLs.
    TopUrls,
    /// Requests with status 400 or above.
    ErrorRequests,
    /// `ErrorRequests / TotalRequests * 100`.
    ErrorRate,
    /// Requests whose size is not `-`.
    SizedResponses,
    /// Sum of logged sizes.
    ResponseBytes,
    /// `ResponseBytes / SizedResponses`.
    AvgResponseSize,
    /// The hour of day (as written in the log) with the most requests; the earliest on a tie.
    PeakHour,
    /// Requests whose request line is not `METHOD URL PROTOCOL`.
    UnusualRequests,
    /// Lines rejected as malformed.
    ParseErrors,
}

impl Metric {
    fn name(self) -> &'static str {
        match self {
            Metric::TotalRequests => "total_requests",
            Metric::UniqueIps => "unique_ips",
            Metric::StatusDistribution => "status_distribution",
            Metric::MethodDistribution => "method_distribution",
            Metric::TopUrls => "top_urls",
            Metric::ErrorRequests => "error_requests",
            Metric::ErrorRate => "error_rate",
            Metric::SizedResponses => "sized_responses",
            Metric::ResponseBytes => "response_bytes",
            Metric::AvgResponseSize => "avg_response_size",
            Metric::PeakHour => "peak_hour",
            Metric::UnusualRequests => "unusual_requests",
            Metric::ParseErrors => "parse_errors",
        }
    }
}

/// A report value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Value {
    /// A count or sum: `i128`, so a sum of sizes (each at most 10^15) cannot wrap.
    Int(i128),
    /// `num / den * scale`, printed with `decimals` decimals (`NaN` when `den` is 0).
    Ratio {
        /// Numerator.
        num: i128,
        /// Denominator.
        den: i128,
        /// Multiplier, e.g. 100 for a percentage.
        scale: i64,
        /// Decimals printed.
        decimals: u8,
    },
}

/// The number of URLs in the report's top list, as in the notebook.
pub const TOP_URLS: usize = 5;

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LogReportRow {
    /// One past the last event time covered.
    pub time: Millis,
    /// What is reported.
    pub metric: Metric,
    /// Position within a distribution or top list (0 for single values).
    pub rank: u32,
    /// The status, method, URL or hour a distribution row is about; empty otherwise.
    pub key: CompactString,
    /// The value.
    pub value: Value,
}

impl Tabular for LogReportRow {
    fn current_key() -> &'static [&'static str] {
        &["metric", "key"]
    }

    fn columns() -> Vec<&'static str> {
        vec!["time", "metric", "key", "value"]
    }
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend([Cell::Time(self.time), Cell::Text(self.metric.name()), Cell::Text(&self.key)]);
        out.push(match self.value {
            Value::Int(v) => Cell::Wide(v),
            Value::Ratio { num, den, scale, decimals } => {
                // The notebook's arithmetic, in the same order, so the float is the same.
                let v = if den == 0 { f64::NAN } else { num as f64 / den as f64 * scale as f64 };
                Cell::Ratio(v, decimals as usize)
            }
        });
    }
    /// Distributions get titled tables of their own (and charts with `--format html`);
    /// single figures stay in plain tables.
    fn layout(&self, _changes: bool) -> Option<Layout> {
        let key = match self.metric {
            Metric::StatusDistribution => "status",
            Metric::MethodDistribution => "method",
            Metric::TopUrls => "url",
            _ => return None,
        };
        Some(Layout {
            title: self.metric.name().replace('_', " "),
            columns: vec![("key", key), ("value", "requests")],
        })
    }
}

/// Builds the report's rows from the final facet counts and the number of rejected lines.
pub fn report_rows(time: Millis, facets: Vec<(Facet, i128)>, parse_errors: u64) -> Vec<LogReportRow> {
    let (mut requests, mut errors, mut sized, mut bytes, mut ips, mut unusual) = (0, 0, 0, 0, 0, 0);
    let mut statuses = Vec::new();
    let mut methods = Vec::new();
    let mut urls = Vec::new();
    let mut hours = [0i128; 24];
    for (facet, n) in facets {
        match facet {
            Facet::Requests => requests += n,
            Facet::Errors => errors += n,
            Facet::Sized => sized += n,
            Facet::Bytes => bytes += n,
            Facet::Ip(_) => ips += 1,
            Facet::Status(s) => statuses.push((CompactString::from(itoa::Buffer::new().format(s)), n)),
            Facet::Method(m) => methods.push((m, n)),
            Facet::Url(u) => urls.push((u, n)),
            Facet::Hour(h) => hours[h as usize % 24] += n,
            Facet::Unusual => unusual += n,
        }
    }
    let row = |metric, rank, key: CompactString, value| LogReportRow { time, metric, rank, key, value };
    let none = CompactString::const_new("");
    let mut rows = vec![
        row(Metric::TotalRequests, 0, none.clone(), Value::Int(requests)),
        row(Metric::UniqueIps, 0, none.clone(), Value::Int(ips)),
        row(Metric::ErrorRequests, 0, none.clone(), Value::Int(errors)),
        row(
            Metric::ErrorRate,
            0,
            none.clone(),
            Value::Ratio { num: errors, den: requests, scale: 100, decimals: 4 },
        ),
        row(Metric::SizedResponses, 0, none.clone(), Value::Int(sized)),
        row(Metric::ResponseBytes, 0, none.clone(), Value::Int(bytes)),
        row(
            Metric::AvgResponseSize,
            0,
            none.clone(),
            Value::Ratio { num: bytes, den: sized, scale: 1, decimals: 2 },
        ),
        row(Metric::UnusualRequests, 0, none.clone(), Value::Int(unusual)),
        row(Metric::ParseErrors, 0, none, Value::Int(parse_errors as i128)),
    ];
    for (metric, mut counts, limit) in [
        (Metric::StatusDistribution, statuses, usize::MAX),
        (Metric::MethodDistribution, methods, usize::MAX),
        (Metric::TopUrls, urls, TOP_URLS),
    ] {
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        for (rank, (key, n)) in counts.into_iter().take(limit).enumerate() {
            rows.push(row(metric, rank as u32, key, Value::Int(n)));
        }
    }
    if requests > 0 {
        // The first maximum: the earliest hour wins a tie.
        let (hour, n) =
            hours.iter().enumerate().fold((0, 0), |best, (h, &n)| if n > best.1 { (h, n) } else { best });
        rows.push(row(
            Metric::PeakHour,
            0,
            CompactString::from(itoa::Buffer::new().format(hour)),
            Value::Int(n),
        ));
    }
    rows
}

/// Turns final facet counts and rejected-line counts into the report.
pub trait LogReport<'scope, T: EventTime> {
    /// Waits for the input to end, then emits the report on worker 0. `rejected` carries
    /// every worker's count of rejected lines.
    fn log_report(self, rejected: Stream<'scope, T, Vec<u64>>) -> Stream<'scope, T, Vec<LogReportRow>>;
}

/// What the report's fold takes in: facet counts and rejected-line counts.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Part {
    Facet(Windowed<Facet, i128>),
    Rejected(u64),
}

impl<'scope, T: EventTime> LogReport<'scope, T> for Stream<'scope, T, Vec<Windowed<Facet, i128>>> {
    fn log_report(self, rejected: Stream<'scope, T, Vec<u64>>) -> Stream<'scope, T, Vec<LogReportRow>> {
        self.map(Part::Facet).concat(rejected.map(Part::Rejected)).fold_at_end(
            "LogReport",
            (Vec::new(), 0, 0),
            |(facets, last, parse_errors): &mut (Vec<(Facet, i128)>, Millis, u64), part| match part {
                Part::Facet((time, facet, n)) => {
                    *last = (*last).max(time);
                    facets.push((facet, n));
                }
                Part::Rejected(n) => *parse_errors += n,
            },
            |(facets, last, parse_errors)| report_rows(last, facets, parse_errors),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(ip: &str, method: &str, url: &str, status: u16, size: Option<u64>, hour: u8) -> Hit {
        Hit { ip: ip.into(), method: method.into(), url: url.into(), status, size, hour, unusual: None }
    }

    #[test]
    fn report_follows_the_notebook() {
        let hits = [
            hit("a", "GET", "/x", 200, Some(100), 10),
            hit("a", "GET", "/y", 404, None, 10),
            hit("b", "POST", "/x", 500, Some(50), 11),
            hit("c", "GET", "/z", 200, Some(0), 11),
        ];
        let mut sums: std::collections::BTreeMap<Facet, i128> = Default::default();
        for h in hits {
            Facet::of(h, |f, n| *sums.entry(f).or_default() += n);
        }
        let rows = report_rows(7, sums.into_iter().collect(), 3);
        let get = |m: Metric| -> Vec<(String, Value)> {
            let mut r: Vec<_> = rows.iter().filter(|r| r.metric == m).cloned().collect();
            r.sort();
            r.into_iter().map(|r| (r.key.to_string(), r.value)).collect()
        };
        assert_eq!(get(Metric::TotalRequests), [("".into(), Value::Int(4))]);
        assert_eq!(get(Metric::UniqueIps), [("".into(), Value::Int(3))]);
        assert_eq!(
            get(Metric::StatusDistribution),
            [("200".into(), Value::Int(2)), ("404".into(), Value::Int(1)), ("500".into(), Value::Int(1))]
        );
        assert_eq!(get(Metric::MethodDistribution)[0], ("GET".into(), Value::Int(3)));
        assert_eq!(get(Metric::TopUrls)[0], ("/x".into(), Value::Int(2)));
        assert_eq!(get(Metric::ErrorRequests), [("".into(), Value::Int(2))]);
        assert_eq!(get(Metric::ResponseBytes), [("".into(), Value::Int(150))]);
        assert_eq!(get(Metric::SizedResponses), [("".into(), Value::Int(3))]);
        assert_eq!(get(Metric::PeakHour), [("10".into(), Value::Int(2))]);
        assert_eq!(get(Metric::ParseErrors), [("".into(), Value::Int(3))]);
        let mut cells = Vec::new();
        let avg = rows.iter().find(|r| r.metric == Metric::AvgResponseSize).unwrap();
        avg.cells(&mut cells);
        assert_eq!(cells[3], Cell::Ratio(50.0, 2));
    }

    #[test]
    fn unusual_request_lines_count_everywhere_but_method_and_url() {
        let hits = [
            hit("a", "GET", "/x", 200, Some(100), 10),
            Hit { unusual: Some("GET /ksc.html".into()), ..hit("b", "", "", 408, Some(5), 11) },
        ];
        let mut sums: std::collections::BTreeMap<Facet, i128> = Default::default();
        for h in hits {
            Facet::of(h, |f, n| *sums.entry(f).or_default() += n);
        }
        let rows = report_rows(7, sums.into_iter().collect(), 0);
        let get = |m: Metric| -> Vec<(String, Value)> {
            rows.iter().filter(|r| r.metric == m).map(|r| (r.key.to_string(), r.value)).collect()
        };
        assert_eq!(get(Metric::TotalRequests), [("".into(), Value::Int(2))]);
        assert_eq!(get(Metric::UniqueIps), [("".into(), Value::Int(2))]);
        assert_eq!(get(Metric::ErrorRequests), [("".into(), Value::Int(1))]);
        assert_eq!(get(Metric::ResponseBytes), [("".into(), Value::Int(105))]);
        assert_eq!(get(Metric::UnusualRequests), [("".into(), Value::Int(1))]);
        assert_eq!(get(Metric::MethodDistribution), [("GET".into(), Value::Int(1))]);
        assert_eq!(get(Metric::TopUrls), [("/x".into(), Value::Int(1))]);
    }

    #[test]
    fn response_bytes_past_i64_add_up_exactly() {
        let max = crate::record::access_log::MAX_SIZE;
        let mut bytes = 0i128;
        for _ in 0..10_000 {
            Facet::of(hit("a", "GET", "/", 200, Some(max), 0), |f, n| {
                if f == Facet::Bytes {
                    bytes += n;
                }
            });
        }
        let rows = report_rows(1, vec![(Facet::Bytes, bytes), (Facet::Sized, 10_000)], 0);
        let row = rows.iter().find(|r| r.metric == Metric::ResponseBytes).unwrap();
        let mut cells = Vec::new();
        row.cells(&mut cells);
        assert_eq!(cells[3], Cell::Wide(10_000_000_000_000_000_000));
    }
}
