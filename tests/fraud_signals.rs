//! `fraud_signals` against a plain reference fold: amount rules, exact sliding-window
//! velocity bursts, the fraud rate, and the same bytes for any worker/process count
//! and input order.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{TempDir, gen_transactions, run, run_ok};

/// Cents from decimal text, written independently of the crate's parser.
fn cents(text: &str) -> i64 {
    let (units, frac) = text.split_once('.').unwrap_or((text, ""));
    let frac = format!("{frac:0<2}");
    units.parse::<i64>().unwrap() * 100 + frac[..2].parse::<i64>().unwrap()
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ`, by hand (days from civil).
fn millis(ts: &str) -> Option<u64> {
    let b = ts.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| ts[r].parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) as u64)
}

fn iso(ms: u64) -> String {
    // Only for writing crafted rows: seconds past 2026-10-01T00:00:00Z, within one day.
    let base = millis("2026-10-01T00:00:00Z").unwrap();
    let s = (ms - base) / 1000;
    format!("2026-10-01T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

#[derive(Clone, Debug)]
struct Tx {
    id: String,
    customer: String,
    time: u64,
    amount: i64,
}

/// The well-formed transactions of a file, parsed with plain split code.
fn transactions(path: &Path) -> Vec<Tx> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    for line in bytes.split(|&b| b == b'\n').skip(1) {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 10 || f[3].parse::<f64>().is_err() || f[9].parse::<f64>().is_err() {
            continue;
        }
        let Some(time) = millis(f[5]) else { continue };
        out.push(Tx { id: f[0].into(), customer: f[1].into(), time, amount: cents(f[9]) });
    }
    out
}

/// One expected alert, as its CSV line.
type Alerts = Vec<String>;

/// The reference: amount rules per transaction; velocity by brute force over every
/// transaction's window (t - span, t], merging triggered windows that share a transaction.
fn reference(txs: &[Tx], n: usize, span: u64) -> (Alerts, u64) {
    let mut lines = Vec::new();
    let mut flagged: BTreeSet<String> = BTreeSet::new();
    for t in txs {
        for (rule, limit) in [("high_amount", 100_000), ("high_value", 50_000)] {
            if t.amount > limit {
                lines.push((
                    t.time,
                    format!(
                        "{},{rule},{},{},{},1,{}.{:02},{}",
                        t.time,
                        t.customer,
                        t.time,
                        t.time,
                        t.amount / 100,
                        t.amount % 100,
                        t.id
                    ),
                ));
                if rule == "high_amount" {
                    flagged.insert(t.id.clone());
                }
            }
        }
    }
    let mut by_customer: BTreeMap<&str, Vec<&Tx>> = BTreeMap::new();
    for t in txs {
        by_customer.entry(&t.customer).or_default().push(t);
    }
    for (customer, mut list) in by_customer {
        list.sort_by(|a, b| (a.time, &a.id, a.amount).cmp(&(b.time, &b.id, b.amount)));
        // Triggered windows as index ranges [lo, hi).
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for t in &list {
            let members: Vec<usize> =
                (0..list.len()).filter(|&j| list[j].time + span > t.time && list[j].time <= t.time).collect();
            if members.len() >= n {
                ranges.push((members[0], members[members.len() - 1] + 1));
            }
        }
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if lo < last.1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        for (lo, hi) in merged {
            let burst = &list[lo..hi];
            let amount: i64 = burst.iter().map(|t| t.amount).sum();
            let ids: Vec<&str> = burst.iter().map(|t| t.id.as_str()).collect();
            let last = burst[burst.len() - 1].time;
            lines.push((
                last + span,
                format!(
                    "{},velocity,{customer},{},{last},{},{}.{:02},{}",
                    last + span,
                    burst[0].time,
                    burst.len(),
                    amount / 100,
                    amount % 100,
                    ids.join(" ")
                ),
            ));
            flagged.extend(ids.iter().map(|s| s.to_string()));
        }
    }
    // Output order: time, then the alert's fields in the row type's order.
    lines.sort_by(|a, b| {
        let key = |l: &(u64, String)| {
            let f: Vec<String> = l.1.split(',').map(str::to_owned).collect();
            let rule = ["high_amount", "high_value", "velocity"].iter().position(|r| *r == f[1]).unwrap();
            let (first, last): (u64, u64) = (f[3].parse().unwrap(), f[4].parse().unwrap());
            (l.0, rule, f[2].clone(), first, last, cents(&f[6]), f[5].parse::<u64>().unwrap(), f[7].clone())
        };
        key(a).cmp(&key(b))
    });
    (lines.into_iter().map(|l| l.1).collect(), flagged.len() as u64)
}

/// The expected output without `--informational`: no `high_value` rows.
fn fraud_only(csv: &str) -> String {
    csv.lines().filter(|l| !l.contains(",high_value,")).map(|l| format!("{l}\n")).collect()
}

const HEADER: &str = "time,rule,customer_id,first,last,transactions,amount,transaction_ids";

/// Crafted velocity cases on top of generated data; returns the rows added.
fn crafted_rows() -> Vec<String> {
    let base = millis("2026-10-01T00:00:00Z").unwrap();
    let row = |id: &str, customer: &str, secs: u64, amount: &str| {
        format!("{id},{customer},Books,{amount},1,{},30,Depok,Cash,{amount}", iso(base + secs * 1000))
    };
    let mut rows = Vec::new();
    // Six within 50 s: one burst of six.
    for (i, s) in [100, 110, 120, 130, 140, 150].iter().enumerate() {
        rows.push(row(&format!("V1_{i}"), "CUST_90001", *s, "10.00"));
    }
    // Five spanning exactly 60 s: no burst, the window is open on the left.
    for (i, s) in [0, 15, 30, 45, 60].iter().enumerate() {
        rows.push(row(&format!("V2_{i}"), "CUST_90002", 1000 + s, "20.00"));
    }
    // A chain: later triggers reach back into the first burst, so one burst of nine.
    for (i, s) in [0, 1, 2, 3, 4, 55, 58, 59, 62].iter().enumerate() {
        rows.push(row(&format!("V3_{i}"), "CUST_90003", 2000 + s, "1500.00"));
    }
    // Two bursts an hour apart, with ties at one instant.
    for (i, s) in [0, 0, 0, 0, 0, 3600, 3601, 3602, 3603, 3604, 3604].iter().enumerate() {
        rows.push(row(&format!("V4_{i:02}"), "CUST_90004", 5000 + s, "600.00"));
    }
    rows
}

/// Writes generated rows plus crafted ones, in a scrambled order.
fn write_data(dir: &TempDir, name: &str, rows: u64, seed: u64, scramble: u64) -> std::path::PathBuf {
    let generated = dir.path(&format!("{name}-gen.csv"));
    gen_transactions(&generated, rows, seed, &["--days", "1"]);
    let text = std::fs::read_to_string(&generated).unwrap();
    let mut lines: Vec<String> = text.lines().skip(1).map(str::to_owned).collect();
    lines.extend(crafted_rows());
    // A deterministic shuffle: the job must not depend on order.
    let len = lines.len() as u64;
    for i in (1..len).rev() {
        let j = (i.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(scramble) >> 7) % (i + 1);
        lines.swap(i as usize, j as usize);
    }
    let path = dir.path(&format!("{name}.csv"));
    let mut out = String::from(kappa_header());
    out.push('\n');
    for l in &lines {
        out.push_str(l);
        out.push('\n');
    }
    std::fs::write(&path, out).unwrap();
    path
}

fn kappa_header() -> &'static str {
    "transaction_id,customer_id,product_category,product_price,quantity,timestamp,customer_age,customer_city,payment_method,total_amount"
}

fn expected_csv(path: &Path, n: usize, span: u64) -> (String, u64, usize) {
    let txs = transactions(path);
    let (lines, flagged) = reference(&txs, n, span);
    let mut text = String::from(HEADER);
    text.push('\n');
    for l in &lines {
        text.push_str(l);
        text.push('\n');
    }
    (text, flagged, txs.len())
}

#[test]
fn alerts_equal_the_reference_including_crafted_bursts() {
    let dir = TempDir::new("fraud-ref");
    let data = write_data(&dir, "tx", 3000, 5, 1);
    let input = data.to_str().unwrap();
    let (want, flagged, total) = expected_csv(&data, 5, 60_000);
    let out = run("fraud_signals", &["--input", input, "--informational"]);
    assert!(out.status.success());
    let got = String::from_utf8(out.stdout).unwrap();
    assert_eq!(got, want);
    // The crafted cases: one burst each for 90001, 90003 and two for 90004; none for 90002.
    let velocity: Vec<&str> = got.lines().filter(|l| l.contains(",velocity,")).collect();
    let customers: Vec<&str> = velocity.iter().map(|l| l.split(',').nth(2).unwrap()).collect();
    assert_eq!(customers, ["CUST_90001", "CUST_90003", "CUST_90004", "CUST_90004"], "{got}");
    assert!(velocity[1].contains(",9,13500.00,V3_0 V3_1"), "{}", velocity[1]);
    assert!(velocity[3].ends_with("V4_05 V4_06 V4_07 V4_08 V4_09 V4_10"), "{}", velocity[3]);
    // The tally: alerts by rule and the fraud rate over the flagged transactions.
    let stderr = String::from_utf8(out.stderr).unwrap();
    let count = |rule: &str| got.lines().filter(|l| l.contains(&format!(",{rule},"))).count();
    let tally = format!(
        "alerts: high_amount {}, high_value {}, velocity 4 ({} transactions); fraud rate {:.2}% ({flagged} of {total} transactions flagged)",
        count("high_amount"),
        count("high_value"),
        6 + 9 + 5 + 6,
        flagged as f64 * 100.0 / total as f64
    );
    assert!(stderr.contains(&tally), "{stderr}\nwant: {tally}");
    // Without --informational: the same rows but high_value's, and the same tally.
    let out = run("fraud_signals", &["--input", input]);
    assert!(out.status.success());
    assert!(count("high_value") > 0 && fraud_only(&want).lines().count() > 1);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), fraud_only(&want));
    assert!(String::from_utf8(out.stderr).unwrap().contains(&tally));
}

#[test]
fn organic_bursts_with_other_thresholds_equal_the_reference() {
    let dir = TempDir::new("fraud-organic");
    let data = write_data(&dir, "tx", 20_000, 11, 2);
    let input = data.to_str().unwrap();
    let (want, _, _) = expected_csv(&data, 2, 3_600_000);
    let got = run_ok(
        "fraud_signals",
        &["--input", input, "--velocity", "2", "--velocity-window", "1h", "-q", "--informational"],
    );
    assert!(got.matches(",velocity,").count() > 100, "the test needs many bursts");
    assert_eq!(got, want);
}

#[test]
fn output_is_byte_identical_for_workers_processes_and_input_order() {
    let dir = TempDir::new("fraud-det");
    let a = write_data(&dir, "a", 8000, 3, 7);
    let b = write_data(&dir, "b", 8000, 3, 99);
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let flags = ["--velocity", "2", "--velocity-window", "30m", "-q"];
    let one = run_ok("fraud_signals", &[&["--input", a.to_str().unwrap()][..], &flags].concat());
    assert!(one.contains(",velocity,"));
    for w in ["2", "3"] {
        let got = run_ok("fraud_signals", &[&["--input", a.to_str().unwrap(), "-w", w][..], &flags].concat());
        assert_eq!(got, one, "-w {w}");
    }
    for epoch in ["1ms", "1h"] {
        let got = run_ok(
            "fraud_signals",
            &[&["--input", b.to_str().unwrap(), "--epoch", epoch][..], &flags].concat(),
        );
        assert_eq!(got, one, "shuffled differently, --epoch {epoch}");
    }
    // Two processes on loopback; process 0 writes the results.
    let mut args = vec!["--input", a.to_str().unwrap()];
    args.extend_from_slice(&flags);
    assert_eq!(common::two_processes("fraud_signals", &args), one, "-n 2");
}

#[test]
fn bad_lines_are_counted_and_nothing_valid_is_lost() {
    let dir = TempDir::new("fraud-bad");
    let good = write_data(&dir, "good", 2000, 8, 3);
    let text = std::fs::read_to_string(&good).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let bad = [
        "TXN_B1,CUST_90001,Books,10.00,1",
        "TXN_B2,CUST_90001,Books,10.00,1,2026-10-01T00:02:01Z,30,Depok,Cash,ten",
        "TXN_B3,CUST_90001,Books,10.00,1,2026-10-01T25:02:01Z,30,Depok,Cash,10.00",
        "TXN_B4,CUST_90001,Books,10.00,x,2026-10-01T00:02:01Z,30,Depok,Cash,10.00",
        "",
    ];
    for (i, b) in bad.iter().enumerate() {
        lines.insert(5 + i * 300, b.to_string());
    }
    let path = dir.path("bad.csv");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let want = fraud_only(&expected_csv(&good, 5, 60_000).0);
    for w in ["1", "2"] {
        let rejects = dir.path(&format!("rejects-{w}.txt"));
        let out = run(
            "fraud_signals",
            &["--input", path.to_str().unwrap(), "-w", w, "--rejects", rejects.to_str().unwrap()],
        );
        assert!(out.status.success());
        assert_eq!(String::from_utf8(out.stdout).unwrap(), want, "-w {w}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let total = 2000 + crafted_rows().len();
        assert!(stderr.contains(&format!("read {} records, rejected 5,", total + 5)), "{stderr}");
        assert!(stderr.contains(&format!("of {total} transactions flagged")), "{stderr}");
        assert_eq!(std::fs::read_to_string(&rejects).unwrap().lines().count(), 5);
    }
    let strict = run("fraud_signals", &["--input", path.to_str().unwrap(), "--strict", "-q"]);
    assert_eq!(strict.status.code(), Some(1));
}

#[test]
fn usage_errors_are_one_line() {
    for args in [
        &["--velocity", "0"][..],
        &["--velocity-window", "0s"],
        &["--high-amount", "12.345"],
        &["--bogus"],
        &["--mode", "incremental"],
    ] {
        let out = run("fraud_signals", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(String::from_utf8(out.stderr).unwrap().lines().count(), 1, "{args:?}");
    }
}

#[test]
fn generated_bursts_each_raise_one_velocity_alert() {
    let dir = TempDir::new("fraud-gen-bursts");
    let data = dir.path("tx.csv");
    gen_transactions(&data, 6000, 13, &["--burst-every", "500", "--burst-size", "6", "--burst-gap", "9s"]);
    let want = fraud_only(&expected_csv(&data, 5, 60_000).0);
    for w in ["1", "3"] {
        let got = run_ok("fraud_signals", &["--input", data.to_str().unwrap(), "-w", w, "-q"]);
        assert_eq!(got, want, "-w {w}");
        // Twelve blocks of 500 rows, each opening with six rows 9 s apart.
        assert_eq!(got.matches(",velocity,").count(), 12, "{got}");
    }
}
