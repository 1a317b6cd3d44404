//! Fuzzing every record parser and every job's ingest path with structure-aware
//! mutations of valid records.
//!
//! Each parser gets valid generated lines mutated by field (a field replaced by an
//! extreme or malformed value, dropped, duplicated, swapped) and by byte (flips,
//! truncations, insertions). A parser must never panic, and an accepted record's event
//! time must lie in the supported range. Each job then reads a file of such lines at
//! `-w 2` and must exit 0, counting exactly the lines the parser itself accepts and
//! rejects (`read = accepted + rejected + late`, late 0 for a file).
//!
//! CI runs a few seconds per parser. Longer, on demand:
//! `KAPPA_FUZZ_SECS=600 cargo test --release --test fuzz -- --nocapture`
//! (the count of executions is printed per parser).

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use common::{TempDir, run};
use kappa::record::access_log::AccessLogFormat;
use kappa::record::click::ClickJson;
use kappa::record::registry;
use kappa::record::series::SeriesCsv;
use kappa::record::transaction::TransactionCsv;
use kappa::record::{LineFormat, MAX_EVENT_TIME, Timeline};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// Values that have broken parsers somewhere: extremes, signs, encodings, structure.
const NASTY: &[&str] = &[
    "",
    "-",
    "0",
    "-0",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "92233720368547758.07",
    "9999999999999999999",
    "1e308",
    "-1e-308",
    "NaN",
    "null",
    "true",
    "\"",
    "\"\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\r",
    "\t",
    "\u{feff}",
    "\u{1F600}",
    "ÿ",
    "10000-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999Z",
    "9999-12-31T23:59:59.999+00:00",
    "9999-12-31T23:59:59.999-14:00",
    "0000-00-00T00:00:00Z",
    "2026-02-30T25:61:61Z",
    "[01/Jan/1970:00:00:00 +0000]",
    "[31/Dec/9999:23:59:59 -1400]",
    "[32/Foo/2026:99:99:99 +9999]",
    "\"GET /ksc.html\"",
    "\"GET / HTTP/1.1\" 200",
    "\"\\x16\\x03\\x01\"",
];

/// One parser under test: how to split a line into fields, and whether it parses.
struct Target {
    kind: &'static str,
    separators: &'static [u8],
    /// `Ok(Some(time))` for an accepted record, `Ok(None)` for a header.
    parse: fn(&str) -> Result<Option<u64>, String>,
}

fn parse_with<F: LineFormat>(line: &str) -> Result<Option<u64>, String> {
    if F::is_header(line) {
        return Ok(None);
    }
    F::parse(line).map(|p| Some(F::event_time(&p))).map_err(|e| e.to_string())
}

const TARGETS: &[Target] = &[
    Target { kind: "transactions", separators: b",", parse: parse_with::<TransactionCsv> },
    Target { kind: "clicks", separators: b",:\"", parse: parse_with::<ClickJson> },
    Target { kind: "access-log", separators: b" \"[]", parse: parse_with::<AccessLogFormat> },
    Target { kind: "series", separators: b",", parse: parse_with::<SeriesCsv> },
];

/// Valid lines of `kind` from its generator.
fn valid_lines(kind: &str, n: u64) -> Vec<Vec<u8>> {
    let generator = registry::generator(kind, 7, Timeline::default_history(), &[]).unwrap();
    (0..n)
        .map(|i| {
            let mut line = Vec::new();
            generator.write_row(i, &mut line);
            line
        })
        .collect()
}

/// A mutation of `line`: by field (between separators) or by byte.
fn mutate(line: &[u8], separators: &[u8], rng: &mut Pcg64Mcg) -> Vec<u8> {
    let mut out = line.to_vec();
    for _ in 0..rng.random_range(1..=3) {
        // Field boundaries: the separators' positions.
        let cuts: Vec<usize> =
            out.iter().enumerate().filter(|(_, b)| separators.contains(b)).map(|(i, _)| i).collect();
        let field = |rng: &mut Pcg64Mcg| -> (usize, usize) {
            if cuts.is_empty() {
                return (0, out.len());
            }
            let i = rng.random_range(0..=cuts.len());
            let start = if i == 0 { 0 } else { cuts[i - 1] + 1 };
            let end = if i == cuts.len() { out.len() } else { cuts[i] };
            (start, end.max(start))
        };
        match rng.random_range(0..9) {
            0..=2 => {
                let (s, e) = field(rng);
                let value = NASTY[rng.random_range(0..NASTY.len())].as_bytes();
                out.splice(s..e, value.iter().copied());
            }
            3 => {
                let (s, e) = field(rng);
                out.drain(s..(e + 1).min(out.len()));
            }
            4 => {
                let (s, e) = field(rng);
                let copy = out[s..e].to_vec();
                out.splice(e..e, copy);
            }
            5 if !out.is_empty() => {
                let at = rng.random_range(0..out.len());
                out[at] ^= 1 << rng.random_range(0..8);
            }
            6 => out.truncate(rng.random_range(0..=out.len())),
            7 => {
                let at = rng.random_range(0..=out.len());
                let bytes: Vec<u8> = (0..rng.random_range(1..8)).map(|_| rng.random()).collect();
                out.splice(at..at, bytes);
            }
            _ => {
                // Swap two fields' contents.
                let ((a, b), (c, d)) = (field(rng), field(rng));
                if b <= c || d <= a {
                    let (first, second) = if b <= c { ((a, b), (c, d)) } else { ((c, d), (a, b)) };
                    let x = out[first.0..first.1].to_vec();
                    let y = out[second.0..second.1].to_vec();
                    out.splice(second.0..second.1, x);
                    out.splice(first.0..first.1, y);
                }
            }
        }
    }
    // Lines reach parsers as text without their newline (or a CRLF's carriage return).
    out.retain(|&b| b != b'\n');
    while out.last() == Some(&b'\r') {
        out.pop();
    }
    out
}

fn seconds() -> f64 {
    std::env::var("KAPPA_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0)
}

#[test]
fn no_parser_panics_or_accepts_an_event_time_out_of_range() {
    let budget = Duration::from_secs_f64(seconds());
    for target in TARGETS {
        let valid = valid_lines(target.kind, 2_000);
        for line in &valid {
            let text = std::str::from_utf8(line).unwrap();
            assert!((target.parse)(text).is_ok(), "{}: a generated line parses: {text}", target.kind);
        }
        let mut rng = Pcg64Mcg::seed_from_u64(0x5eed ^ target.kind.len() as u64);
        let (started, mut executions, mut accepted) = (Instant::now(), 0u64, 0u64);
        while started.elapsed() < budget {
            for _ in 0..1_000 {
                let base = &valid[rng.random_range(0..valid.len())];
                let bytes = mutate(base, target.separators, &mut rng);
                let text = String::from_utf8_lossy(&bytes);
                let result = catch_unwind(AssertUnwindSafe(|| (target.parse)(&text)));
                let Ok(result) = result else { panic!("{} parser panicked on {text:?}", target.kind) };
                if let Ok(Some(time)) = result {
                    accepted += 1;
                    assert!(time <= MAX_EVENT_TIME, "{}: accepted time {time} from {text:?}", target.kind);
                }
                executions += 1;
            }
        }
        eprintln!(
            "{}: {executions} executions in {:.1?}, {accepted} accepted",
            target.kind,
            started.elapsed()
        );
        assert!(accepted > 0 && accepted < executions, "mutations both keep and break records");
    }
}

#[test]
fn every_job_accounts_for_every_mutated_line() {
    let dir = TempDir::new("fuzz-jobs");
    let jobs: &[(&str, &str, &[&str])] = &[
        ("category_totals", "transactions", &[]),
        ("ecommerce_report", "transactions", &[]),
        ("fraud_signals", "transactions", &[]),
        ("event_counts", "clicks", &["--window", "1h"]),
        ("ip_counts", "access-log", &["--window", "1h"]),
    ];
    for (job, kind, extra) in jobs {
        let target = TARGETS.iter().find(|t| t.kind == *kind).unwrap();
        let valid = valid_lines(kind, 3_000);
        let mut rng = Pcg64Mcg::seed_from_u64(99);
        let mut text = Vec::new();
        // What the parser itself says about each line: the job must count the same.
        let (mut read, mut rejected) = (0, 0);
        for (i, line) in valid.iter().enumerate() {
            // Half the lines mutated, half valid: both paths run under the same watermark.
            let mutated = String::from_utf8_lossy(&mutate(line, target.separators, &mut rng)).into_owned();
            let line = if i % 2 == 0 && !mutated.trim().is_empty() {
                mutated
            } else {
                String::from_utf8(line.clone()).unwrap()
            };
            match (target.parse)(&line) {
                Ok(None) => {}
                Ok(Some(_)) => read += 1,
                Err(_) => (read, rejected) = (read + 1, rejected + 1),
            }
            text.extend_from_slice(line.as_bytes());
            text.push(b'\n');
        }
        assert!(rejected > 100 && rejected < read, "{job}: {rejected} of {read} rejected");
        let input = dir.path(&format!("{job}.txt"));
        std::fs::write(&input, &text).unwrap();
        for mode in ["batch", "incremental"] {
            if *job == "fraud_signals" && mode == "incremental" {
                continue;
            }
            let mut args = vec!["--input", input.to_str().unwrap(), "-w", "2", "--mode", mode];
            args.extend_from_slice(extra);
            let out = run(job, &args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{job} {mode}: {stderr}");
            assert!(!stderr.contains("panicked"), "{job} {mode}: {stderr}");
            let summary = format!("read {read} records, rejected {rejected}, late 0");
            assert!(stderr.contains(&summary), "{job} {mode}: wanted {summary}\n{stderr}");
        }
    }
}
