//! `ip_counts` against a reference fold written independently of the crate's parser.
//!
//! The reference parses access-log lines with plain `split` code and chrono, then counts
//! in `BTreeMap`s. Every test compares the job's output with it, or pins figures that
//! were computed by it (and by a separate script) for the real fixture.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};

use chrono::NaiveDate;
use common::{TempDir, port_base, run, run_ok};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/access_log_elastic_sample.log");

/// One request as the reference sees it.
#[derive(Clone, Debug)]
struct Req {
    ip: String,
    method: String,
    url: String,
    status: u16,
    size: Option<u64>,
    /// UTC seconds since the epoch.
    secs: i64,
    /// Hour as written.
    hour: u32,
    /// The request line is not `METHOD URL PROTOCOL` (then method and URL are empty).
    unusual: bool,
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The reference parser: a valid common-format prefix, or `None`.
fn ref_parse(line: &str) -> Option<Req> {
    let mut parts = line.splitn(4, ' ');
    let (host, ident, user, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if host.is_empty() || ident.is_empty() || user.is_empty() {
        return None;
    }
    if !host.bytes().all(|b| b.is_ascii_graphic() && b != b'"') {
        return None;
    }
    let rest = rest.strip_prefix('[')?;
    let (time, rest) = rest.split_once(']')?;
    if time.len() != 26 {
        return None;
    }
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let num = |s: &str| -> Option<u32> { all_digits(s).then(|| s.parse().ok()).flatten() };
    let (date, clock) = time.split_once(':')?;
    let d: Vec<&str> = date.split('/').collect();
    if d.len() != 3 || d[0].len() != 2 || d[2].len() != 4 {
        return None;
    }
    let month = months.iter().position(|m| *m == d[1])? as u32 + 1;
    let (hms, zone) = clock.split_once(' ')?;
    let t: Vec<&str> = hms.split(':').collect();
    if t.len() != 3 || t.iter().any(|x| x.len() != 2) || zone.len() != 5 {
        return None;
    }
    let (h, mi, s) = (num(t[0])?, num(t[1])?, num(t[2])?);
    let date = NaiveDate::from_ymd_opt(num(d[2])? as i32, month, num(d[0])?)?;
    let local = date.and_hms_opt(h, mi, s)?.and_utc().timestamp();
    let sign = match &zone[..1] {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let (oh, om) = (num(&zone[1..3])?, num(&zone[3..5])?);
    if oh > 23 || om > 59 {
        return None;
    }
    let secs = local - sign * (oh as i64 * 3600 + om as i64 * 60);

    let rest = rest.strip_prefix(" \"")?;
    // The request ends at the first quote not escaped by a backslash.
    let mut end = None;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let end = end?;
    let request: Vec<&str> = rest[..end].split(' ').collect();
    // Any other request line is still a request, just an unusual one.
    let unusual = request.len() != 3
        || request[0].is_empty()
        || !request[0].bytes().all(|b| b.is_ascii_uppercase())
        || request[1].is_empty()
        || !request[2].starts_with("HTTP/");
    let (method, url) = if unusual { ("", "") } else { (request[0], request[1]) };
    let rest = rest[end + 1..].strip_prefix(' ')?;
    let mut fields = rest.splitn(3, ' ');
    let status = fields.next()?;
    let size = fields.next()?;
    if status.len() != 3 || !all_digits(status) {
        return None;
    }
    let status: u16 = status.parse().ok()?;
    if !(100..=599).contains(&status) {
        return None;
    }
    let size = match size {
        "-" => None,
        s if all_digits(s) => Some(s.parse().ok().filter(|&n: &u64| n <= 1_000_000_000_000_000)?),
        _ => return None,
    };
    Some(Req {
        ip: host.into(),
        method: method.into(),
        url: url.into(),
        status,
        size,
        secs,
        hour: h,
        unusual,
    })
}

/// Parses a file: the requests, and the 1-based numbers of the other lines.
fn ref_read(path: &Path) -> (Vec<Req>, Vec<u64>) {
    let text = std::fs::read_to_string(path).unwrap();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        match ref_parse(line) {
            Some(r) => good.push(r),
            None => bad.push(i as u64 + 1),
        }
    }
    (good, bad)
}

/// Requests per (window end, host); window `None` is all time, named by last event + 1 ms.
fn ref_counts(reqs: &[Req], window_ms: Option<i64>) -> BTreeMap<(i64, String), i64> {
    let last = reqs.iter().map(|r| r.secs * 1000).max().unwrap_or(0) + 1;
    let mut counts = BTreeMap::new();
    for r in reqs {
        let t = r.secs * 1000;
        let end = window_ms.map_or(last, |w| t - t % w + w);
        *counts.entry((end, r.ip.clone())).or_insert(0) += 1;
    }
    counts
}

/// Splits one CSV line, honouring quoted fields.
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') => quoted = true,
            (false, ',') => fields.push(String::new()),
            (_, c) => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

fn rows(csv: &str) -> Vec<Vec<String>> {
    csv.lines().skip(1).map(csv_fields).collect()
}

/// The job's `time,ip,requests` table as a map.
fn job_counts(csv: &str) -> BTreeMap<(i64, String), i64> {
    assert!(csv.starts_with("time,ip,requests\n"), "{csv}");
    rows(csv).into_iter().map(|r| ((r[0].parse().unwrap(), r[1].clone()), r[2].parse().unwrap())).collect()
}

fn gen_log(path: &Path, rows: u64, seed: u64, days: u64) {
    run_ok(
        "gen",
        &[
            "access-log",
            "--rows",
            &rows.to_string(),
            "--seed",
            &seed.to_string(),
            "--days",
            &days.to_string(),
            "--output",
            path.to_str().unwrap(),
        ],
    );
}

fn ip_counts(args: &[&str]) -> String {
    let mut all = vec!["-q"];
    all.extend_from_slice(args);
    run_ok("ip_counts", &all)
}

#[test]
fn counts_equal_the_reference_fold_on_seeded_data() {
    let dir = TempDir::new("ip-seeded");
    let log = dir.path("access.log");
    gen_log(&log, 20_000, 7, 2);
    let input = log.to_str().unwrap();
    let (reqs, bad) = ref_read(&log);
    assert_eq!((reqs.len(), bad.len()), (20_000, 0));

    let all = ip_counts(&["--input", input]);
    assert_eq!(job_counts(&all), ref_counts(&reqs, None));
    // Largest first, ties by host.
    let table: Vec<(i64, String)> =
        rows(&all).iter().map(|r| (-r[2].parse::<i64>().unwrap(), r[1].clone())).collect();
    assert!(table.windows(2).all(|w| w[0] < w[1]));

    let hourly = ip_counts(&["--input", input, "--window", "1h"]);
    assert_eq!(job_counts(&hourly), ref_counts(&reqs, Some(3_600_000)));

    // Sliding windows of 30 minutes every 10: each request is in the three windows
    // that end in the next 30 minutes.
    let sliding = ip_counts(&["--input", input, "--window", "30m", "--slide", "10m"]);
    let mut want: BTreeMap<(i64, String), i64> = BTreeMap::new();
    for ((end, ip), n) in ref_counts(&reqs, Some(600_000)) {
        for k in 0..3 {
            *want.entry((end + k * 600_000, ip.clone())).or_default() += n;
        }
    }
    assert_eq!(job_counts(&sliding), want);

    // Top 3 per hour: the reference's three largest, ties broken by host.
    let top = ip_counts(&["--input", input, "--window", "1h", "--top", "3"]);
    let mut by_window: BTreeMap<i64, Vec<(i64, String)>> = BTreeMap::new();
    for ((end, ip), n) in ref_counts(&reqs, Some(3_600_000)) {
        by_window.entry(end).or_default().push((-n, ip));
    }
    let mut want = BTreeMap::new();
    for (end, mut v) in by_window {
        v.sort();
        for (n, ip) in v.into_iter().take(3) {
            want.insert((end, ip), -n);
        }
    }
    assert_eq!(job_counts(&top), want);

    // The gen: input makes the same rows as the gen binary.
    let same = ip_counts(&["--input", "gen:access-log?count=20000&seed=7", "-w", "2", "--top", "20"]);
    let from_file = ip_counts(&["--input", input, "--top", "20"]);
    assert_eq!(rows(&same).len(), 20);
    // Same hosts and counts; only the time label differs (--days 2 vs 30 days of history).
    let strip = |csv: &str| -> Vec<Vec<String>> { rows(csv).into_iter().map(|r| r[1..].to_vec()).collect() };
    assert_eq!(strip(&same), strip(&from_file));
}

/// Sums incremental changes `time,ip,requests,diff` into the final table per window.
fn consolidate(csv: &str, window_ms: Option<i64>, last: i64) -> BTreeMap<(i64, String), i64> {
    assert!(csv.starts_with("time,ip,requests,diff\n"), "{csv}");
    let mut acc: BTreeMap<(i64, String, i64), i64> = BTreeMap::new();
    for r in rows(csv) {
        let time: i64 = r[0].parse().unwrap();
        // Global changes are stamped with their epoch; windowed ones with the window's end.
        let key_time = if window_ms.is_some() { time } else { last };
        *acc.entry((key_time, r[1].clone(), r[2].parse().unwrap())).or_default() +=
            r[3].parse::<i64>().unwrap();
    }
    acc.into_iter()
        .filter(|(_, d)| *d != 0)
        .map(|((t, ip, n), d)| {
            assert_eq!(d, 1, "{ip} {n}");
            ((t, ip), n)
        })
        .collect()
}

#[test]
fn incremental_changes_consolidate_to_the_batch_table() {
    let dir = TempDir::new("ip-incr");
    let log = dir.path("access.log");
    gen_log(&log, 5_000, 11, 1);
    let input = log.to_str().unwrap();
    let (reqs, _) = ref_read(&log);
    let last = reqs.iter().map(|r| r.secs * 1000).max().unwrap() + 1;
    let changes = ip_counts(&["--input", input, "--mode", "incremental"]);
    assert_eq!(consolidate(&changes, None, last), ref_counts(&reqs, None));
    let changes = ip_counts(&["--input", input, "--mode", "incremental", "--window", "10m"]);
    assert_eq!(consolidate(&changes, Some(600_000), last), ref_counts(&reqs, Some(600_000)));

    // Incremental top-K consolidates to batch top-K.
    let batch = ip_counts(&["--input", input, "--top", "4"]);
    let changes = ip_counts(&["--input", input, "--mode", "incremental", "--top", "4"]);
    assert_eq!(consolidate(&changes, None, last), job_counts(&batch));
    assert_eq!(job_counts(&batch).len(), 4);
}

/// Runs with `args` plus outputs in `dir`, returning (table, alerts, report).
fn outputs(dir: &TempDir, tag: &str, args: &[&str]) -> (String, String, String) {
    let [out, alerts, report] = ["out", "alerts", "report"].map(|k| dir.path(&format!("{tag}.{k}")));
    let mut all: Vec<&str> = args.to_vec();
    all.extend([
        "--output",
        out.to_str().unwrap(),
        "--alerts",
        alerts.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    ip_counts(&all);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    (read(&out), read(&alerts), read(&report))
}

#[test]
fn output_is_byte_identical_for_any_worker_count_and_epoch() {
    let dir = TempDir::new("ip-workers");
    let log = dir.path("access.log");
    gen_log(&log, 30_000, 3, 1);
    let input = log.to_str().unwrap();
    for extra in [
        &["--window", "1h", "--suspicious", "15"][..],
        &["--top", "5", "--mode", "incremental", "--window", "30m", "--suspicious", "8"][..],
    ] {
        let mut base = vec!["--input", input];
        base.extend_from_slice(extra);
        let one = outputs(&dir, "w1", &[&base[..], &["-w", "1"]].concat());
        assert!(one.1.contains("suspicious_ip") && one.1.contains("server_error"));
        for w in ["2", "3"] {
            let many = outputs(&dir, w, &[&base[..], &["-w", w]].concat());
            assert!(one == many, "-w {w} differs with {extra:?}");
        }
        // Windowed results and alerts do not depend on the epoch either.
        let coarse = outputs(&dir, "e", &[&base[..], &["-w", "2", "--epoch", "1m"]].concat());
        assert!(one == coarse, "--epoch 1m differs with {extra:?}");
    }
}

#[test]
fn two_processes_equal_one() {
    let dir = TempDir::new("ip-cluster");
    let log = dir.path("access.log");
    gen_log(&log, 20_000, 5, 1);
    let input = log.to_str().unwrap();
    let args = ["--input", input, "--window", "1h", "--top", "10"];
    let single = outputs(&dir, "single", &args);

    let base = port_base().to_string();
    let [out, alerts, report] = ["out", "alerts", "report"].map(|k| dir.path(&format!("n2.{k}")));
    let spawn = |p: &str| {
        Command::new(common::bin("ip_counts"))
            .args(args)
            .args(["-q", "-n", "2", "-p", p, "--port-base", &base])
            .args(["--output", out.to_str().unwrap()])
            .args(["--alerts", alerts.to_str().unwrap()])
            .args(["--report", report.to_str().unwrap()])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (p0, p1) = (spawn("0"), spawn("1"));
    for child in [p0, p1] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    assert!(single == (read(&out), read(&alerts), read(&report)));
}

#[test]
fn alerts_match_the_reference() {
    let dir = TempDir::new("ip-alerts");
    let log = dir.path("access.log");
    gen_log(&log, 30_000, 9, 1);
    let input = log.to_str().unwrap();
    let (reqs, _) = ref_read(&log);
    let (_, alerts, _) = outputs(&dir, "a", &["--input", input, "--window", "1h", "--suspicious", "20"]);
    assert!(alerts.starts_with("time,alert,ip,requests,status,url\n"));
    let mut suspicious = BTreeSet::new();
    let mut errors = Vec::new();
    for r in rows(&alerts) {
        match r[1].as_str() {
            "suspicious_ip" => {
                suspicious.insert((r[0].parse::<i64>().unwrap(), r[2].clone(), r[3].parse::<i64>().unwrap()));
            }
            "server_error" => errors.push((
                r[0].parse::<i64>().unwrap(),
                r[2].clone(),
                r[4].parse::<u16>().unwrap(),
                r[5].clone(),
            )),
            other => panic!("unknown alert {other}"),
        }
    }
    let want: BTreeSet<_> = ref_counts(&reqs, Some(3_600_000))
        .into_iter()
        .filter(|(_, n)| *n > 20)
        .map(|((end, ip), n)| (end, ip, n))
        .collect();
    assert!(!want.is_empty(), "heavy hitters should trip the threshold");
    assert_eq!(suspicious, want);
    let mut want_errors: Vec<_> = reqs
        .iter()
        .filter(|r| r.status >= 500)
        .map(|r| (r.secs * 1000, r.ip.clone(), r.status, r.url.clone()))
        .collect();
    want_errors.sort();
    errors.sort();
    assert!(!want_errors.is_empty());
    assert_eq!(errors, want_errors);
}

/// The notebook's analytics over `reqs`, as `metric,key,value` lines.
fn ref_report(reqs: &[Req], parse_errors: usize) -> Vec<String> {
    let mut out = Vec::new();
    let n = reqs.len() as i64;
    let count_of = |which: &dyn Fn(&Req) -> bool, f: &dyn Fn(&Req) -> String| -> Vec<(i64, String)> {
        let mut m: BTreeMap<String, i64> = BTreeMap::new();
        for r in reqs.iter().filter(|r| which(r)) {
            *m.entry(f(r)).or_default() += 1;
        }
        let mut v: Vec<(i64, String)> = m.into_iter().map(|(k, c)| (-c, k)).collect();
        v.sort();
        v
    };
    let count = |f: &dyn Fn(&Req) -> String| -> Vec<(i64, String)> { count_of(&|_| true, f) };
    out.push(format!("total_requests,,{n}"));
    out.push(format!("unique_ips,,{}", count(&|r| r.ip.clone()).len()));
    for (c, k) in count(&|r| r.status.to_string()) {
        out.push(format!("status_distribution,{k},{}", -c));
    }
    // Unusual request lines have no method or URL to count.
    for (c, k) in count_of(&|r| !r.unusual, &|r| r.method.clone()) {
        out.push(format!("method_distribution,{k},{}", -c));
    }
    for (c, k) in count_of(&|r| !r.unusual, &|r| r.url.clone()).into_iter().take(5) {
        out.push(format!("top_urls,{k},{}", -c));
    }
    let errors = reqs.iter().filter(|r| r.status >= 400).count();
    out.push(format!("error_requests,,{errors}"));
    out.push(format!("error_rate,,{:.4}", errors as f64 / n as f64 * 100.0));
    let sizes: Vec<u64> = reqs.iter().filter_map(|r| r.size).collect();
    let bytes: u64 = sizes.iter().sum();
    out.push(format!("sized_responses,,{}", sizes.len()));
    out.push(format!("response_bytes,,{bytes}"));
    out.push(format!("avg_response_size,,{:.2}", bytes as f64 / sizes.len() as f64));
    let mut hours = [0i64; 24];
    for r in reqs {
        hours[r.hour as usize] += 1;
    }
    let peak = (0..24).rev().max_by_key(|&h| hours[h]).unwrap();
    out.push(format!("peak_hour,{peak},{}", hours[peak]));
    out.push(format!("unusual_requests,,{}", reqs.iter().filter(|r| r.unusual).count()));
    out.push(format!("parse_errors,,{parse_errors}"));
    out
}

/// The job's report without its time column.
fn report_lines(report: &str) -> Vec<String> {
    assert!(report.starts_with("time,metric,key,value\n"), "{report}");
    report.lines().skip(1).map(|l| l.split_once(',').unwrap().1.to_owned()).collect()
}

#[test]
fn report_matches_the_reference_on_seeded_data() {
    let dir = TempDir::new("ip-report");
    let log = dir.path("access.log");
    gen_log(&log, 20_000, 13, 3);
    let (reqs, _) = ref_read(&log);
    let (_, _, report) = outputs(&dir, "r", &["--input", log.to_str().unwrap()]);
    assert_eq!(report_lines(&report), ref_report(&reqs, 0));
}

/// Lines that must be accepted (even with broken tails) or rejected, by line number.
const MIXED: &[(&str, bool)] = &[
    (r#"10.0.0.1 - - [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.1" 200 100 "-" "curl/8""#, true),
    (r#"10.0.0.1 - - [17/May/2015:10:05:04 +0000] "GET /a HTTP/1.1" 503 -"#, true),
    (
        r#"10.0.0.1 - - [17/May/2015:10:05:05 +0000] "GET /b HTTP/1.1" 200 7 "-" "Googlebot/2.1; +http://www.google.com/bot.html"#,
        true,
    ),
    (
        r#"2001:db8::1 - - [17/May/2015:10:06:00 +0000] "POST /login HTTP/1.0" 404 12 "http://\xe4\xe5/" "a \"quoted\" agent""#,
        true,
    ),
    (r#"crawler.example.com - bob [17/May/2015:12:06:00 +0200] "HEAD / HTTP/1.1" 304 -"#, true),
    ("", false),
    (r#"10.0.0.2 - - [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.1" 200"#, false),
    (r#"10.0.0.2 - - [17/May/2015:25:05:03 +0000] "GET /a HTTP/1.1" 200 1"#, false),
    (r#"10.0.0.2 - - [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.1" 2000 1"#, false),
    (r#"10.0.0.2 - - [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.1 200 1"#, false),
    (r#"10.0.0.2 - - 17/May/2015:10:05:03 +0000 "GET /a HTTP/1.1" 200 1"#, false),
    // An unusual request line is still a request.
    (r#"10.0.0.2 - - [17/May/2015:10:05:03 +0000] "GARBAGE" 200 1"#, true),
    (r#"10.0.0.2 - - [17/May/2015:10:05:03 +0000] "GET /a HTTP/1.1" 200 12kb"#, false),
    ("this is not a log line", false),
    (
        r#"10.0.0.3 - - [17/May/2015:10:07:00 +0000] "DELETE /x?id=1 HTTP/1.1" 500 0 "ref" "agent" extra"#,
        true,
    ),
];

#[test]
fn bad_lines_are_rejected_with_line_numbers_and_nothing_valid_is_lost() {
    let dir = TempDir::new("ip-bad");
    let log = dir.path("mixed.log");
    let mut text: String = MIXED.iter().map(|(l, _)| format!("{l}\n")).collect();
    // The same lines again, with CRLF endings.
    text += &MIXED.iter().map(|(l, _)| format!("{l}\r\n")).collect::<String>();
    std::fs::write(&log, text).unwrap();
    let (reqs, bad) = ref_read(&log);
    let want_bad: Vec<u64> = (0..2)
        .flat_map(|k| {
            MIXED
                .iter()
                .enumerate()
                .filter(|(_, (_, ok))| !ok)
                .map(move |(i, _)| (k * MIXED.len() + i + 1) as u64)
        })
        .collect();
    // The reference agrees with the table above.
    assert_eq!((reqs.len(), &bad), (14, &want_bad));
    let rejects = dir.path("rejects.txt");
    for w in ["1", "2"] {
        let out = run(
            "ip_counts",
            &["--input", log.to_str().unwrap(), "--rejects", rejects.to_str().unwrap(), "-w", w],
        );
        assert!(out.status.success());
        let summary = String::from_utf8_lossy(&out.stderr);
        assert!(summary.contains("read 30 records, rejected 16"), "{summary}");
        let counts = job_counts(&String::from_utf8(out.stdout).unwrap());
        let hosts: BTreeMap<&str, i64> = counts.iter().map(|((_, ip), n)| (ip.as_str(), *n)).collect();
        assert_eq!(
            hosts,
            BTreeMap::from([
                ("10.0.0.1", 6),
                ("10.0.0.2", 2),
                ("10.0.0.3", 2),
                ("2001:db8::1", 2),
                ("crawler.example.com", 2)
            ])
        );
        let lines: Vec<u64> = std::fs::read_to_string(&rejects)
            .unwrap()
            .lines()
            .map(|l| l.split(':').nth(1).unwrap().parse().unwrap())
            .collect();
        assert_eq!(lines, want_bad);
    }
    let (_, _, report) = outputs(&dir, "m", &["--input", log.to_str().unwrap()]);
    let report = report_lines(&report);
    assert!(report.contains(&"parse_errors,,16".to_owned()), "{report:?}");
    assert!(report.contains(&"total_requests,,14".to_owned()), "{report:?}");
    assert!(report.contains(&"unusual_requests,,2".to_owned()), "{report:?}");
    let strict = run("ip_counts", &["--input", log.to_str().unwrap(), "--strict"]);
    assert_eq!(strict.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&strict.stderr).contains(":6: empty line"));
}

#[test]
fn real_fixture_counts_are_exact() {
    let path = Path::new(FIXTURE);
    let (reqs, bad) = ref_read(path);
    // Pinned from an independent scan: every line has a valid common-format prefix
    // (one has a truncated agent), 1,753 hosts.
    assert_eq!((reqs.len(), bad.len()), (10_000, 0));
    let all = ip_counts(&["--input", FIXTURE, "-w", "2"]);
    let counts = job_counts(&all);
    assert_eq!(counts, ref_counts(&reqs, None));
    assert_eq!(counts.len(), 1753);
    let top: Vec<(String, i64)> =
        rows(&all).into_iter().take(4).map(|r| (r[1].clone(), r[2].parse().unwrap())).collect();
    let pinned =
        [("66.249.73.135", 482), ("46.105.14.53", 364), ("130.237.218.86", 357), ("75.97.9.59", 273)];
    assert_eq!(top, pinned.map(|(ip, n)| (ip.to_owned(), n)));

    // Out of order by up to a minute: windows are still exact.
    let minutes = ip_counts(&["--input", FIXTURE, "--window", "1m"]);
    assert_eq!(job_counts(&minutes), ref_counts(&reqs, Some(60_000)));

    let dir = TempDir::new("ip-fixture");
    let (_, alerts, report) = outputs(&dir, "f", &["--input", FIXTURE, "--window", "1h"]);
    assert_eq!(report_lines(&report), ref_report(&reqs, 0));
    for pinned in [
        "total_requests,,10000",
        "unique_ips,,1753",
        "status_distribution,200,9126",
        "status_distribution,500,3",
        "method_distribution,GET,9952",
        "top_urls,/favicon.ico,807",
        "error_requests,,220",
        "error_rate,,2.2000",
        "sized_responses,,9331",
        "response_bytes,,2747282740",
        "avg_response_size,,294425.33",
        "peak_hour,14,498",
        "parse_errors,,0",
    ] {
        assert!(report_lines(&report).contains(&pinned.to_owned()), "{pinned}");
    }
    let alerts = rows(&alerts);
    assert_eq!(alerts.iter().filter(|r| r[1] == "server_error").count(), 3);
    assert_eq!(alerts.iter().filter(|r| r[1] == "suspicious_ip").count(), 6);
}

/// Real lines from a public server log (NASA, July 1995) whose request lines Apache
/// wrote as the client sent them.
const UNUSUAL: &[&str] = &[
    r#"pipe1.nyc.pipeline.com - - [01/Jul/1995:00:22:43 -0400] "GET /ksc.html" 200 7067"#,
    r#"pipe1.nyc.pipeline.com - - [01/Jul/1995:00:22:44 -0400] "GET /shuttle/missions/sts-71/mission-sts-71.html HTTP/1.0" 200 12040"#,
    r#"10.0.0.9 - - [01/Jul/1995:00:23:00 -0400] "-" 408 -"#,
    r#"10.0.0.9 - - [01/Jul/1995:00:23:01 -0400] "GET /a b.html HTTP/1.0" 404 -"#,
    r#"10.0.0.10 - - [01/Jul/1995:00:23:02 -0400] "\x16\x03\x01\x00\xa5\x01" 400 226"#,
];

#[test]
fn unusual_request_lines_count_as_requests_and_are_reported_apart() {
    let dir = TempDir::new("ip-unusual");
    let log = dir.path("nasa.log");
    std::fs::write(&log, UNUSUAL.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let (reqs, bad) = ref_read(&log);
    assert_eq!((reqs.len(), bad.len()), (5, 0));
    let unusual_file = dir.path("unusual.csv");
    let (out, alerts, report) =
        outputs(&dir, "u", &["--input", log.to_str().unwrap(), "--unusual", unusual_file.to_str().unwrap()]);
    let hosts: BTreeMap<String, i64> = job_counts(&out).into_iter().map(|((_, ip), n)| (ip, n)).collect();
    let want = BTreeMap::from([
        ("10.0.0.10".into(), 1),
        ("10.0.0.9".into(), 2),
        ("pipe1.nyc.pipeline.com".into(), 2),
    ]);
    assert_eq!(hosts, want);
    assert_eq!(report_lines(&report), ref_report(&reqs, 0));
    assert!(report_lines(&report).contains(&"unusual_requests,,4".to_owned()), "{report}");
    assert!(report_lines(&report).contains(&"status_distribution,408,1".to_owned()), "{report}");
    assert!(alerts.starts_with("time,alert"), "{alerts}");
    let unusual = std::fs::read_to_string(&unusual_file).unwrap();
    let lines: Vec<&str> = unusual.lines().collect();
    assert_eq!(lines[0], "time,ip,status,request");
    assert_eq!(lines.len(), 5, "{unusual}");
    assert!(lines[1].ends_with(",pipe1.nyc.pipeline.com,200,GET /ksc.html"), "{unusual}");
    assert!(lines[2].ends_with(",10.0.0.9,408,-"), "{unusual}");
}

#[test]
fn bad_flags_are_one_line_with_exit_code_2() {
    for args in [
        &["--top", "x"][..],
        &["--window", "0s"][..],
        &["--alerts", "/nonexistent-dir/alerts.csv"][..],
        &["--input", "gen:access-log?count=x"][..],
    ] {
        let out = run("ip_counts", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn every_run_writes_all_outputs_whichever_worker_builds_first() {
    // Sinks gather on worker 0; a writer taken by another worker would write nothing.
    let dir = TempDir::new("ip-race");
    let log = dir.path("mixed.log");
    let text: String = MIXED.iter().map(|(l, _)| format!("{l}\n")).collect();
    std::fs::write(&log, text).unwrap();
    let rejects = dir.path("rejects.txt");
    for _ in 0..8 {
        let (out, alerts, report) = outputs(
            &dir,
            "race",
            &["--input", log.to_str().unwrap(), "-w", "4", "--rejects", rejects.to_str().unwrap()],
        );
        assert_eq!(job_counts(&out).len(), 5);
        assert_eq!(rows(&alerts).len(), 2, "{alerts}");
        assert!(report.contains("parse_errors,,8"), "{report}");
        assert_eq!(std::fs::read_to_string(&rejects).unwrap().lines().count(), 8);
    }
}

#[test]
fn a_failed_write_names_the_file_it_was_for() {
    // /dev/full accepts the open and fails every write: each message names its file.
    if !std::path::Path::new("/dev/full").exists() {
        eprintln!("skipped: no /dev/full on this machine");
        return;
    }
    let dir = TempDir::new("ip-counts-write-errors");
    let input = dir.path("access.log");
    let log = common::run_ok("gen", &["access-log", "--rows", "20000", "--seed", "2"]);
    std::fs::write(&input, log).unwrap();
    let input = input.to_str().unwrap();
    let out_file = dir.path("out.csv");
    let out_file = out_file.to_str().unwrap();
    for (flag, what) in [("--alerts", "alerts file /dev/full"), ("--report", "report file /dev/full")] {
        let out = run(
            "ip_counts",
            &["--input", input, "--output", out_file, flag, "/dev/full", "--suspicious", "1"],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flag}: {stderr}");
        assert!(stderr.contains(&format!("writing {what}: ")), "{flag}: {stderr}");
    }
}
