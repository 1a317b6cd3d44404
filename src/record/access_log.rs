//! Apache access logs, common and combined format: a borrowed view, its parser and a
//! seeded generator.
//!
//! ```text
//! 83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /x HTTP/1.1" 200 203023 "http://ref/" "Mozilla/5.0"
//! └─ host     ident user └─ time ─────────────┘  └─ request ───────┘ status size  └─ referer ┘  └─ agent ┘
//! ```
//!
//! A line is a request when its *common-format prefix* is valid (host to size, see
//! [`AccessLogFormat::parse`]). The combined-format tail (referer and agent) is optional:
//! when it is missing or broken, for example cut off before its closing quote, the
//! request still counts and [`AccessLog::tail`] says what was found. Quoted fields may
//! hold `\"` and `\xhh` escapes, which Apache writes; they are kept as written.
//!
//! The quoted request line is usually `METHOD URL PROTOCOL`, but Apache also logs what
//! a client actually sent: HTTP/0.9's `GET /page`, `-` for a client that sent nothing
//! (status 408), URLs with spaces, binary probes. Such a line is still a request (its
//! host, time, status and size are valid): it is accepted with an empty method, URL and
//! protocol, and [`AccessLog::unusual_request`] says so. Only a line without a valid
//! host, time, status or size is rejected.

use rand::Rng;

use super::{LineFormat, ParseError, RowGenerator, Timeline};
use crate::time::{Millis, days_from_civil};

/// What followed the size field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tail {
    /// Nothing: common log format.
    Common,
    /// A well-formed `"referer" "agent"` pair: combined log format.
    Combined,
    /// Something that is not a well-formed referer and agent, e.g. a truncated line.
    Broken,
}

/// One parsed access-log line, borrowing its text from the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessLog<'a> {
    /// Client host as written: an IPv4 or IPv6 address or a host name.
    pub host: &'a str,
    /// RFC 1413 identity, usually `-`.
    pub ident: &'a str,
    /// Authenticated user, usually `-`.
    pub user: &'a str,
    /// Event time in UTC milliseconds.
    pub time: Millis,
    /// The hour of day as written in the log (local to the server's offset), 0..=23.
    pub local_hour: u8,
    /// The request line as written between its quotes (escapes kept).
    pub request: &'a str,
    /// Request method, e.g. `GET`; empty when the request line is unusual.
    pub method: &'a str,
    /// Request target, e.g. `/index.html?q=1`; empty when the request line is unusual.
    pub url: &'a str,
    /// Protocol, e.g. `HTTP/1.1`; empty when the request line is unusual.
    pub protocol: &'a str,
    /// Response status, 100..=599.
    pub status: u16,
    /// Response size in bytes, at most [`MAX_SIZE`]; `None` when logged as `-`.
    pub size: Option<u64>,
    /// Everything after the size field: empty in common format, ` "referer" "agent"` in
    /// combined format. Read it with [`AccessLog::combined`] and [`AccessLog::tail`]; it
    /// is parsed only when asked for, since counting requests does not need it.
    pub rest: &'a str,
}

impl<'a> AccessLog<'a> {
    /// Whether the request line is not `METHOD URL PROTOCOL` (method of ASCII capitals,
    /// a URL without spaces, a protocol starting `HTTP/`): HTTP/0.9, `-`, a probe.
    pub fn unusual_request(&self) -> bool {
        self.method.is_empty()
    }

    /// The referer and agent as written between their quotes (escapes kept), when the
    /// line is in well-formed combined format.
    pub fn combined(&self) -> Option<(&'a str, &'a str)> {
        let rest = self.rest;
        parse_tail(rest.as_bytes(), 0).map(|(r0, r1, a0, a1)| (&rest[r0..r1], &rest[a0..a1]))
    }

    /// What followed the size field.
    pub fn tail(&self) -> Tail {
        if self.rest.bytes().all(|c| c == b' ') {
            Tail::Common
        } else if self.combined().is_some() {
            Tail::Combined
        } else {
            Tail::Broken
        }
    }
}

/// The largest response size accepted: 10^15 bytes (a petabyte). A larger size is a
/// reject (`size out of range`), so sums of sizes, kept in `i128`, stay exact.
pub const MAX_SIZE: u64 = 1_000_000_000_000_000;

/// The Apache common/combined log format.
pub struct AccessLogFormat;

const MONTHS: [&[u8; 3]; 12] =
    [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];

/// Bytes of `17/May/2015:10:05:03 +0000` between the brackets.
const TIME_LEN: usize = 26;

#[inline]
fn digits<const N: usize>(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b.get(..N)? {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + d as u32;
    }
    Some(v)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses the text between the brackets of `[17/May/2015:10:05:03 +0000]` into UTC
/// milliseconds and the hour as written. Exactly this shape is accepted; no allocation.
/// A well-formed time outside 1970..9999 UTC is `None` too; the parser tells the two
/// apart with [`parse_clf_time_signed`].
#[inline]
pub fn parse_clf_time(b: &[u8]) -> Option<(Millis, u8)> {
    parse_clf_time_signed(b)
        .and_then(|(t, hour)| super::event_time_in_range(t as i128, "").ok().map(|t| (t, hour)))
}

/// Like [`parse_clf_time`], with UTC milliseconds that are negative before 1970 and may
/// pass 9999-12-31 (a time zone behind UTC on the last day).
#[inline]
pub fn parse_clf_time_signed(b: &[u8]) -> Option<(i64, u8)> {
    if b.len() != TIME_LEN
        || b[2] != b'/'
        || b[6] != b'/'
        || b[11] != b':'
        || b[14] != b':'
        || b[17] != b':'
        || b[20] != b' '
    {
        return None;
    }
    let day = digits::<2>(b)?;
    let month = MONTHS.iter().position(|m| m[..] == b[3..6])? as u32 + 1;
    let year = digits::<4>(&b[7..])?;
    let hour = digits::<2>(&b[12..])?;
    let minute = digits::<2>(&b[15..])?;
    let second = digits::<2>(&b[18..])?;
    let sign: i64 = match b[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let off_h = digits::<2>(&b[22..])?;
    let off_m = digits::<2>(&b[24..])?;
    if day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
        || off_h > 23
        || off_m > 59
    {
        return None;
    }
    let local =
        days_from_civil(year as i64, month, day) * 86_400 + (hour * 3600 + minute * 60 + second) as i64;
    let utc = local - sign * (off_h * 3600 + off_m * 60) as i64;
    Some((utc * 1000, hour as u8))
}

/// The end of a quoted field that starts just after an opening quote at `from`: the
/// index of its closing quote. A backslash escapes the next byte, as Apache writes `\"`.
#[inline]
fn closing_quote(b: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let k = memchr::memchr2(b'"', b'\\', &b[from..])?;
        let at = from + k;
        if b[at] == b'"' {
            return Some(at);
        }
        from = at + 2;
        if from > b.len() {
            return None;
        }
    }
}

/// Parses ` "referer" "agent"` (anything after the agent is ignored).
#[inline]
fn parse_tail(b: &[u8], from: usize) -> Option<(usize, usize, usize, usize)> {
    if b.get(from..from + 2)? != b" \"" {
        return None;
    }
    let r0 = from + 2;
    let r1 = closing_quote(b, r0)?;
    if b.get(r1 + 1..r1 + 3)? != b" \"" {
        return None;
    }
    let a0 = r1 + 3;
    let a1 = closing_quote(b, a0)?;
    match b.get(a1 + 1) {
        None | Some(b' ') => Some((r0, r1, a0, a1)),
        Some(_) => None,
    }
}

/// The positions of the two spaces of a `METHOD URL PROTOCOL` request line, or `None`
/// when the line has another shape.
#[inline]
fn split_request(request: &[u8]) -> Option<(usize, usize)> {
    let m = memchr::memchr(b' ', request)?;
    let p = memchr::memrchr(b' ', request)?;
    let usual = m > 0
        && p > m + 1
        && request[..m].iter().all(u8::is_ascii_uppercase)
        && memchr::memchr(b' ', &request[m + 1..p]).is_none()
        && request[p + 1..].starts_with(b"HTTP/");
    usual.then_some((m, p))
}

fn token(b: &[u8], from: usize, what: &'static str) -> Result<usize, ParseError> {
    // Tokens are short: a plain loop beats memchr's setup.
    let end = b[from..]
        .iter()
        .position(|&c| c == b' ')
        .map(|k| from + k)
        .ok_or_else(|| ParseError::from(format!("missing fields after {what}")))?;
    if end == from {
        return Err(ParseError::from(format!("empty {what}")));
    }
    Ok(end)
}

impl LineFormat for AccessLogFormat {
    type Parsed<'a> = AccessLog<'a>;
    const NAME: &'static str = "access log";

    fn is_header(_line: &str) -> bool {
        false
    }

    /// Parses one line. The common-format prefix must be, separated by single spaces:
    /// host (visible ASCII, no `"`), ident, user, `[dd/Mon/yyyy:HH:MM:SS ±hhmm]`, a
    /// quoted request line (any text; split into method, URL and protocol when it is
    /// `METHOD URL PROTOCOL`, else [unusual](AccessLog::unusual_request)), a status
    /// 100..=599 and a size (digits or `-`, at most [`MAX_SIZE`]). The prefix ends the
    /// line or is followed by a space and the optional tail.
    #[inline]
    fn parse(line: &str) -> Result<AccessLog<'_>, ParseError> {
        let b = line.as_bytes();
        let text = |from: usize, to: usize| &line[from..to];

        // One pass finds the host's end and checks its bytes.
        let mut host_end = 0;
        loop {
            match b.get(host_end) {
                Some(b' ') => break,
                Some(&c) if c.is_ascii_graphic() && c != b'"' => host_end += 1,
                Some(_) => return Err(ParseError::fixed("bad host: not a visible ASCII token")),
                None => return Err(ParseError::fixed("missing fields after host")),
            }
        }
        if host_end == 0 {
            return Err(ParseError::fixed("empty host"));
        }
        let ident_end = token(b, host_end + 1, "ident")?;
        let user_end = token(b, ident_end + 1, "user")?;

        let t0 = user_end + 1;
        if b.get(t0) != Some(&b'[') || b.get(t0 + 1 + TIME_LEN) != Some(&b']') {
            return Err(ParseError::fixed("bad time: expected [dd/Mon/yyyy:HH:MM:SS +zzzz]"));
        }
        let time_text = text(t0 + 1, t0 + 1 + TIME_LEN);
        let (time, local_hour) = parse_clf_time_signed(time_text.as_bytes()).ok_or_else(|| {
            ParseError::from(format!("bad time '{time_text}': expected dd/Mon/yyyy:HH:MM:SS +zzzz"))
        })?;
        let time = super::event_time_in_range(time as i128, time_text)?;

        let q0 = t0 + TIME_LEN + 2;
        if b.get(q0..q0 + 2) != Some(b" \"") {
            return Err(ParseError::fixed("missing quoted request"));
        }
        let r0 = q0 + 2;
        let r1 = closing_quote(b, r0).ok_or(ParseError::fixed("unterminated request"))?;
        let (method, url, protocol) = match split_request(&b[r0..r1]) {
            Some((m, p)) => (text(r0, r0 + m), text(r0 + m + 1, r0 + p), text(r0 + p + 1, r1)),
            None => ("", "", ""),
        };

        let s0 = r1 + 1;
        if b.get(s0) != Some(&b' ') {
            return Err(ParseError::fixed("missing status after request"));
        }
        let status = digits::<3>(&b[s0 + 1..])
            .filter(|s| (100..=599).contains(s) && b.get(s0 + 4).is_none_or(|&c| c == b' '))
            .ok_or(ParseError::fixed("bad status: expected 3 digits 100..599"))? as u16;
        if b.get(s0 + 4).is_none() {
            return Err(ParseError::fixed("missing size after status"));
        }

        let z0 = s0 + 5;
        let z1 = b[z0..].iter().position(|&c| c == b' ').map_or(b.len(), |k| z0 + k);
        let size = match &b[z0..z1] {
            b"-" => None,
            d if !d.is_empty() && d.iter().all(u8::is_ascii_digit) => {
                // Saturates past MAX_SIZE, so any count of digits is checked without wrapping.
                let n = d.iter().fold(0u64, |v, c| v.saturating_mul(10).saturating_add((c - b'0') as u64));
                if n > MAX_SIZE {
                    return Err(ParseError::fixed("size out of range: more than 10^15 bytes"));
                }
                Some(n)
            }
            _ => return Err(ParseError::fixed("bad size: expected digits or -")),
        };

        Ok(AccessLog {
            host: text(0, host_end),
            ident: text(host_end + 1, ident_end),
            user: text(ident_end + 1, user_end),
            time,
            local_hour,
            request: text(r0, r1),
            method,
            url,
            protocol,
            status,
            size,
            rest: text(z1, b.len()),
        })
    }

    #[inline]
    fn event_time(parsed: &AccessLog<'_>) -> Millis {
        parsed.time
    }
}

/// Appends `[dd/Mon/yyyy:HH:MM:SS +0000]` for UTC time `t` (whole seconds).
pub fn write_clf_time(out: &mut Vec<u8>, t: Millis) {
    let secs = t / 1000;
    let (y, mo, d) = crate::time::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let two =
        |out: &mut Vec<u8>, v: u64| out.extend_from_slice(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8]);
    out.push(b'[');
    two(out, d as u64);
    out.push(b'/');
    out.extend_from_slice(MONTHS[mo as usize - 1]);
    out.push(b'/');
    out.extend_from_slice(itoa::Buffer::new().format(y).as_bytes());
    out.push(b':');
    two(out, rem / 3600);
    out.push(b':');
    two(out, rem / 60 % 60);
    out.push(b':');
    two(out, rem % 60);
    out.extend_from_slice(b" +0000]");
}

/// Distinct ordinary clients in generated logs.
pub const CLIENTS: u64 = 50_000;
/// Heavy hitters: a few clients (crawlers, scrapers) that send a large share of requests.
pub const HEAVY_HITTERS: u64 = 12;
/// Percent of generated requests that come from heavy hitters.
pub const HEAVY_PERCENT: u32 = 15;

/// URL paths of generated requests: the notebook's, plus static files and products.
const PATHS: [&str; 12] = [
    "/api/users",
    "/api/products",
    "/home",
    "/login",
    "/checkout",
    "/search",
    "/",
    "/favicon.ico",
    "/static/app.js",
    "/static/style.css",
    "/images/logo.png",
    "/robots.txt",
];

const REFERERS: [&str; 6] = [
    "-",
    "https://www.google.com/",
    "https://shop.example.com/home",
    "https://shop.example.com/search?q=rust",
    "http://\\xe4\\xe5\\xe3\\xf2.\\xf0\\xf4/",
    "https://forum.example.org/t/\\\"deals\\\"",
];

const AGENTS: [&str; 6] = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.5.0",
    "python-requests/2.31 \\\"scraper\\\"",
];

/// A deterministic access-log generator: row `i` depends only on `(seed, i)`.
///
/// Clients: [`HEAVY_HITTERS`] heavy hitters send [`HEAVY_PERCENT`]% of requests, the rest
/// come from [`CLIENTS`] clients with a skewed (squared-uniform) popularity. Most hosts are
/// IPv4; about 2% are IPv6 and 1% host names. Statuses include 3xx, 4xx and 5xx; 304s,
/// and half the 5xx, have size `-`; about 10% of lines are in common format (no tail).
#[derive(Clone, Debug)]
pub struct AccessLogGen {
    seed: u64,
    timeline: Timeline,
}

impl AccessLogGen {
    /// A generator for `seed` along `timeline`.
    pub fn new(seed: u64, timeline: Timeline) -> Self {
        AccessLogGen { seed, timeline }
    }

    fn write_host(&self, out: &mut Vec<u8>, client: u64) {
        // A fixed, seed-dependent scramble of the client number, so addresses look random.
        let h = super::mix(client ^ self.seed.rotate_left(17));
        let mut num = itoa::Buffer::new();
        match client % 100 {
            0 | 1 => {
                out.extend_from_slice(b"2001:db8:");
                let _ = std::io::Write::write_fmt(
                    out,
                    format_args!("{:x}:{:x}::{:x}", (h >> 48) & 0xffff, (h >> 32) & 0xffff, h & 0xffff),
                );
            }
            2 => {
                out.extend_from_slice(b"host-");
                out.extend_from_slice(num.format(h % 100_000).as_bytes());
                out.extend_from_slice(b".example.net");
            }
            _ => {
                for (k, shift) in [56u32, 40, 24, 8].into_iter().enumerate() {
                    if k > 0 {
                        out.push(b'.');
                    }
                    let octet = ((h >> shift) & 0xff).max(1);
                    out.extend_from_slice(num.format(octet).as_bytes());
                }
            }
        }
    }
}

impl RowGenerator for AccessLogGen {
    fn header(&self) -> Option<std::borrow::Cow<'static, str>> {
        None
    }

    fn write_row(&self, index: u64, out: &mut Vec<u8>) {
        let mut rng = super::row_rng(self.seed, index);
        let client = if rng.random_range(0..100) < HEAVY_PERCENT {
            // Heavy hitters are clients 3.., so they are IPv4 addresses.
            3 + rng.random_range(0..HEAVY_HITTERS)
        } else {
            let u: f64 = rng.random();
            (u * u * CLIENTS as f64) as u64
        };
        let time = self.timeline.time_of(index, &mut rng);
        let method = match rng.random_range(0..100) {
            0..80 => "GET",
            80..92 => "POST",
            92..95 => "HEAD",
            95..98 => "PUT",
            _ => "DELETE",
        };
        let status: u16 = match rng.random_range(0..1000) {
            0..780 => 200,
            780..820 => 301,
            820..880 => 304,
            880..930 => 404,
            930..950 => 403,
            950..975 => 500,
            975..990 => 503,
            _ => 502,
        };
        let size = match status {
            304 => None,
            500.. if rng.random_bool(0.5) => None,
            _ => Some(rng.random_range(200..50_000u64)),
        };
        let path = PATHS[rng.random_range(0..PATHS.len())];
        let mut num = itoa::Buffer::new();

        self.write_host(out, client);
        out.extend_from_slice(b" - - ");
        write_clf_time(out, time);
        out.extend_from_slice(b" \"");
        out.extend_from_slice(method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(path.as_bytes());
        match path {
            "/api/products" => {
                out.extend_from_slice(b"?id=");
                out.extend_from_slice(num.format(rng.random_range(1..500u32)).as_bytes());
            }
            "/search" => {
                out.extend_from_slice(b"?q=item");
                out.extend_from_slice(num.format(rng.random_range(1..50u32)).as_bytes());
            }
            _ => {}
        }
        out.extend_from_slice(b" HTTP/1.1\" ");
        out.extend_from_slice(num.format(status).as_bytes());
        out.push(b' ');
        match size {
            Some(s) => out.extend_from_slice(num.format(s).as_bytes()),
            None => out.push(b'-'),
        }
        if rng.random_range(0..10) > 0 {
            out.extend_from_slice(b" \"");
            out.extend_from_slice(REFERERS[rng.random_range(0..REFERERS.len())].as_bytes());
            out.extend_from_slice(b"\" \"");
            out.extend_from_slice(AGENTS[rng.random_range(0..AGENTS.len())].as_bytes());
            out.push(b'"');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_iso8601;

    const LINE: &str = r#"83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/x.png HTTP/1.1" 200 203023 "http://semicomplete.com/" "Mozilla/5.0 (Macintosh)""#;

    #[test]
    fn parses_combined_and_common_lines() {
        let a = AccessLogFormat::parse(LINE).unwrap();
        assert_eq!(a.host, "83.149.9.216");
        assert_eq!((a.ident, a.user), ("-", "-"));
        assert_eq!(a.time, parse_iso8601("2015-05-17T10:05:03Z").unwrap());
        assert_eq!(a.local_hour, 10);
        assert_eq!((a.method, a.url, a.protocol), ("GET", "/presentations/x.png", "HTTP/1.1"));
        assert_eq!((a.status, a.size), (200, Some(203023)));
        assert_eq!(a.combined(), Some(("http://semicomplete.com/", "Mozilla/5.0 (Macintosh)")));
        assert_eq!(a.tail(), Tail::Combined);

        let c = AccessLogFormat::parse(
            r#"::1 - frank [01/Jan/2020:00:00:00 -0130] "POST /login HTTP/1.0" 503 -"#,
        )
        .unwrap();
        assert_eq!((c.host, c.user, c.status, c.size), ("::1", "frank", 503, None));
        assert_eq!(c.time, parse_iso8601("2020-01-01T01:30:00Z").unwrap());
        assert_eq!((c.local_hour, c.tail()), (0, Tail::Common));
    }

    #[test]
    fn escaped_quotes_and_broken_tails() {
        let l = r#"h.example.com - - [17/May/2015:10:05:03 +0000] "GET /a\"b HTTP/1.1" 404 12 "http://\xe4\xe5/" "agent \"quoted\" x""#;
        let a = AccessLogFormat::parse(l).unwrap();
        assert_eq!(a.url, r#"/a\"b"#);
        assert_eq!(a.combined(), Some((r"http://\xe4\xe5/", r#"agent \"quoted\" x"#)));
        for tail in [
            r#" "-" "Googlebot/2.1; +http://www.google.com/bot.html"#,
            " junk",
            r#" "only-one""#,
            r#" "a" "b"c"#,
        ] {
            let l = format!(r#"1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5{tail}"#);
            let a = AccessLogFormat::parse(&l).unwrap_or_else(|e| panic!("{l}: {e}"));
            assert_eq!((a.tail(), a.combined(), a.size), (Tail::Broken, None, Some(5)), "{l}");
        }
    }

    #[test]
    fn unusual_request_lines_are_requests_with_their_host_time_status_and_size() {
        for request in [
            "GET /ksc.html",
            "-",
            "",
            "GET /a b HTTP/1.1",
            "get / HTTP/1.1",
            "GET / FTP/1",
            "GET  HTTP/1.1",
            "\\x16\\x03\\x01\\x00\\xa5",
            "\\\"GET / HTTP/1.1",
        ] {
            let line = format!("1.2.3.4 - - [17/May/2015:10:05:03 +0000] \"{request}\" 408 12 \"-\" \"-\"");
            let a = AccessLogFormat::parse(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert!(a.unusual_request(), "{line}");
            assert_eq!((a.host, a.status, a.size, a.request), ("1.2.3.4", 408, Some(12), request));
            assert_eq!((a.method, a.url, a.protocol, a.tail()), ("", "", "", Tail::Combined));
        }
        let usual = AccessLogFormat::parse(LINE).unwrap();
        assert!(!usual.unusual_request());
        assert_eq!(usual.request, format!("{} {} {}", usual.method, usual.url, usual.protocol));
    }

    #[test]
    fn rejects_bad_prefixes() {
        let cases = [
            ("1.2.3.4 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200", "missing size"),
            ("1.2.3.4 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 12x", "bad size"),
            ("1.2.3.4 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 20 12", "bad status"),
            ("1.2.3.4 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 700 12", "bad status"),
            ("1.2.3.4 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1 200 12", "unterminated"),
            ("1.2.3.4 - - [32/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 12", "bad time"),
            ("1.2.3.4 - - [17/Mai/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 12", "bad time"),
            ("1.2.3.4 - - [17/May/2015:10:05:03] \"GET / HTTP/1.1\" 200 12", "bad time"),
            ("1.2.3.4 - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 12", "bad time"),
            ("1.2.3.4 - - [17/May/2015:10:05:03 +0000] GET / HTTP/1.1 200 12", "missing quoted"),
            ("1.2.3.4 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1", "unterminated"),
            ("1.2.3.4", "missing fields"),
            (" - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 12", "empty host"),
        ];
        for (line, reason) in cases {
            match AccessLogFormat::parse(line) {
                Ok(a) => panic!("{line}: accepted as {a:?}"),
                Err(e) => assert!(e.0.starts_with(reason), "{line}: {e}"),
            }
        }
    }

    #[test]
    fn generated_rows_parse_back() {
        let generator = AccessLogGen::new(7, Timeline::default_history());
        let mut line = Vec::new();
        let (mut v6, mut names, mut dash, mut common, mut errors) = (0, 0, 0, 0, 0);
        for i in 0..5000 {
            line.clear();
            generator.write_row(i, &mut line);
            let text = std::str::from_utf8(&line).unwrap();
            let a = AccessLogFormat::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_ne!(a.tail(), Tail::Broken, "{text}");
            v6 += a.host.contains(':') as u32;
            names += a.host.ends_with(".example.net") as u32;
            dash += a.size.is_none() as u32;
            common += (a.tail() == Tail::Common) as u32;
            errors += (a.status >= 500) as u32;
            let mut again = Vec::new();
            generator.write_row(i, &mut again);
            assert_eq!(line, again);
        }
        for (what, n) in [("ipv6", v6), ("names", names), ("dash", dash), ("common", common), ("5xx", errors)]
        {
            assert!(n > 10, "{what}: {n}");
        }
    }

    #[test]
    fn event_times_outside_1970_to_9999_are_rejected_as_out_of_range() {
        let at = |time: &str| format!("1.2.3.4 - - [{time}] \"GET / HTTP/1.1\" 200 12");
        let time = |time: &str| AccessLogFormat::parse(&at(time)).map(|a| a.time);
        assert_eq!(time("01/Jan/1970:00:00:00 +0000"), Ok(0));
        assert_eq!(time("31/Dec/9999:23:59:59 +0000"), Ok(crate::record::MAX_EVENT_TIME - 999));
        for text in ["31/Dec/1969:23:59:59 +0000", "01/Jan/1970:00:30:00 +0100", "31/Dec/9999:23:00:00 -0500"]
        {
            let err = time(text).unwrap_err();
            assert!(err.0.starts_with("timestamp out of range"), "{text}: {err}");
        }
    }

    #[test]
    fn sizes_beyond_a_petabyte_are_rejected_not_wrapped() {
        let with =
            |size: &str| format!("1.2.3.4 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 {size}");
        let size = |s: &str| AccessLogFormat::parse(&with(s)).map(|a| a.size);
        assert_eq!(size("1000000000000000"), Ok(Some(MAX_SIZE)));
        assert_eq!(size("0001"), Ok(Some(1)));
        for s in ["1000000000000001", "9999999999999999999", "184467440737095516150000"] {
            assert!(size(s).unwrap_err().0.starts_with("size out of range"), "{s}");
        }
    }

    #[test]
    fn clf_time_round_trips() {
        let t = parse_iso8601("2024-02-29T23:59:58Z").unwrap();
        let mut out = Vec::new();
        write_clf_time(&mut out, t);
        assert_eq!(out, b"[29/Feb/2024:23:59:58 +0000]");
        assert_eq!(parse_clf_time(&out[1..27]), Some((t, 23)));
        assert_eq!(parse_clf_time(b"29/Feb/2023:23:59:58 +0000"), None);
    }

    proptest::proptest! {
        /// Cutting, splicing or corrupting a valid line never panics the parser, and
        /// whatever it accepts has a valid prefix (a request that fits in the line).
        #[test]
        fn parser_never_panics_on_mangled_lines(
            cut in 0usize..200,
            at in 0usize..200,
            insert in "[ -~]{0,4}|\\\\|\"|\\[|\\]",
        ) {
            let mut line = LINE.to_owned();
            let at = at.min(line.len());
            line.insert_str(at, &insert);
            line.truncate(line.len().saturating_sub(cut));
            if let Ok(a) = AccessLogFormat::parse(&line) {
                proptest::prop_assert!(!a.host.is_empty() && (100..=599).contains(&a.status));
                proptest::prop_assert!(a.url.len() + a.method.len() < line.len());
                let _ = (a.tail(), a.combined());
            }
        }

        #[test]
        fn parser_never_panics_on_arbitrary_text(line in "\\PC{0,120}") {
            let _ = AccessLogFormat::parse(&line).map(|a| (a.tail(), a.combined()));
        }
    }
}
