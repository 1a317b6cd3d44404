//! Access-log monitoring: the rows and operators of the `ip_counts` job.
//!
//! * [`IpCount`]: requests per client host, per window (batch) or as changes
//!   (incremental), ordered by count descending, then host.
//! * [`IpAlert`]: a suspicious host (more than N requests in a window) or a 5xx response.
//! * [`UnusualRequest`]: a request whose request line is not `METHOD URL PROTOCOL`. It
//!   counts like any other request (per host, status, size, alerts); only its method and
//!   URL are unknown, so the report leaves it out of those two and counts it apart.
//! * [`report`]: the notebook's batch analytics over the whole log.

pub mod report;

use std::cmp::{Ordering, Reverse};

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::operators::aggregate::Windowed;
use crate::record::access_log::AccessLog;
use crate::sink::{Cell, Tabular};
use crate::time::Millis;

/// What the job keeps of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hit {
    /// Client host, as written.
    pub ip: CompactString,
    /// Request method; empty when no output needs it.
    pub method: CompactString,
    /// Request URL; empty when no output needs it.
    pub url: CompactString,
    /// Response status.
    pub status: u16,
    /// Response size, if logged.
    pub size: Option<u64>,
    /// Hour of day as written in the log.
    pub hour: u8,
    /// The request line as written, when it is unusual (then method and URL are empty);
    /// empty otherwise.
    pub unusual: Option<CompactString>,
}

impl Hit {
    /// The host, status and size of `log`, plus its method and URL when `details` is set
    /// or the response is a server error (which raises an alert naming its URL).
    #[inline]
    pub fn of(log: &AccessLog<'_>, details: bool) -> Hit {
        let url = if details || log.status >= 500 {
            CompactString::from(log.url)
        } else {
            CompactString::const_new("")
        };
        Hit {
            ip: CompactString::from(log.host),
            method: if details { CompactString::from(log.method) } else { CompactString::const_new("") },
            url,
            status: log.status,
            size: log.size,
            hour: log.local_hour,
            // Unusual lines are rare, so keeping their text costs nothing on the hot path.
            unusual: log.unusual_request().then(|| CompactString::from(log.request)),
        }
    }

    /// Whether the response is an error (status 400 or above), as the notebook counts them.
    pub fn is_error(&self) -> bool {
        self.status >= 400
    }
}

/// Orders by count descending, then host: the table's and top-K's order.
fn by_count(a: (&Millis, i64, &str), b: (&Millis, i64, &str)) -> Ordering {
    a.0.cmp(b.0).then(b.1.cmp(&a.1)).then_with(|| a.2.cmp(b.2))
}

/// Requests from one host: a window's count (batch), or a count changed (incremental).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpCount {
    /// End of the window (exclusive); for all time, one past the last event; for a
    /// change, the time of the change (the event-time epoch, or the window's end).
    pub time: Millis,
    /// Client host.
    pub ip: CompactString,
    /// Requests.
    pub requests: i64,
}

impl IpCount {
    /// The sort key of top-K selection: count descending, then host.
    pub fn rank(&self) -> (Reverse<i64>, CompactString) {
        (Reverse(self.requests), self.ip.clone())
    }
}

impl Ord for IpCount {
    fn cmp(&self, o: &Self) -> Ordering {
        by_count((&self.time, self.requests, &self.ip), (&o.time, o.requests, &o.ip))
    }
}

impl PartialOrd for IpCount {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Tabular for IpCount {
    fn current_key() -> &'static [&'static str] {
        &["ip"]
    }

    fn columns() -> Vec<&'static str> {
        vec!["time", "ip", "requests"]
    }
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend([Cell::Time(self.time), Cell::Text(&self.ip), Cell::Int(self.requests)]);
    }
}

/// Why an alert was raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AlertKind {
    /// A host sent more than the threshold of requests in a window.
    SuspiciousIp,
    /// A response had a 5xx status.
    ServerError,
}

/// One alert row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IpAlert {
    /// For a suspicious host, the window's end; for a server error, the request's time.
    pub time: Millis,
    /// The kind of alert.
    pub kind: AlertKind,
    /// Client host.
    pub ip: CompactString,
    /// The host's requests in the window (suspicious hosts only).
    pub requests: i64,
    /// The response status (server errors only).
    pub status: u16,
    /// The request URL (server errors only).
    pub url: CompactString,
}

impl IpAlert {
    /// A suspicious-host alert for a window's count.
    pub fn suspicious((time, ip, requests): Windowed<CompactString, i64>) -> IpAlert {
        IpAlert {
            time,
            kind: AlertKind::SuspiciousIp,
            ip,
            requests,
            status: 0,
            url: CompactString::const_new(""),
        }
    }

    /// A server-error alert for one request.
    pub fn server_error(hit: Hit, time: Millis) -> IpAlert {
        IpAlert {
            time,
            kind: AlertKind::ServerError,
            ip: hit.ip,
            requests: 0,
            status: hit.status,
            url: hit.url,
        }
    }
}

impl Tabular for IpAlert {
    fn columns() -> Vec<&'static str> {
        vec!["time", "alert", "ip", "requests", "status", "url"]
    }
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.push(Cell::Time(self.time));
        match self.kind {
            AlertKind::SuspiciousIp => out.extend([
                Cell::Text("suspicious_ip"),
                Cell::Text(&self.ip),
                Cell::Int(self.requests),
                Cell::Text(""),
                Cell::Text(""),
            ]),
            AlertKind::ServerError => out.extend([
                Cell::Text("server_error"),
                Cell::Text(&self.ip),
                Cell::Text(""),
                Cell::Int(self.status as i64),
                Cell::Text(&self.url),
            ]),
        }
    }
}

/// A request whose request line is not `METHOD URL PROTOCOL`, for the `--unusual` file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnusualRequest {
    /// The request's event time.
    pub time: Millis,
    /// Client host.
    pub ip: CompactString,
    /// Response status.
    pub status: u16,
    /// The request line as written between its quotes.
    pub request: CompactString,
}

impl UnusualRequest {
    /// The unusual request `hit` at `time`, if its request line is unusual.
    pub fn of(hit: Hit, time: Millis) -> Option<UnusualRequest> {
        let request = hit.unusual?;
        Some(UnusualRequest { time, ip: hit.ip, status: hit.status, request })
    }
}

impl Tabular for UnusualRequest {
    fn columns() -> Vec<&'static str> {
        vec!["time", "ip", "status", "request"]
    }
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend([
            Cell::Time(self.time),
            Cell::Text(&self.ip),
            Cell::Int(self.status as i64),
            Cell::Text(&self.request),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_rows_sort_by_count_then_host() {
        let r = |ip: &str, n| IpCount { time: 1, ip: ip.into(), requests: n };
        let mut rows = [r("b", 2), r("c", 5), r("a", 2)];
        rows.sort();
        let order: Vec<_> = rows.iter().map(|r| r.ip.as_str()).collect();
        assert_eq!(order, ["c", "a", "b"]);
    }
}
