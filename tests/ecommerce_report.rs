//! `ecommerce_report` against a pandas-style reference fold, in both modes, across
//! workers and processes, with bad input and every output format.

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

fn money(c: i64) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

/// The mean rounded half away from zero (amounts here are positive).
fn mean(total: i64, count: i64) -> i64 {
    (2 * total + count) / (2 * count)
}

#[derive(Default, Clone)]
struct Agg {
    total: i64,
    count: i64,
    quantity: i64,
    customers: BTreeSet<String>,
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ`, by hand (days from civil).
fn epoch_millis(ts: &str) -> u64 {
    let n = |r: std::ops::Range<usize>| ts[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    ((days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)) * 1000) as u64
}

/// The report a pandas user would compute, as the job's CSV text.
fn reference(path: &Path, top: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    // (section order, section, key) → aggregate
    let mut groups: BTreeMap<(u8, &'static str, String), Agg> = BTreeMap::new();
    let mut max_time = 0u64;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 10 || f[9].parse::<f64>().is_err() || f[4].parse::<i64>().is_err() {
            continue;
        }
        let amount = cents(f[9]);
        let quantity: i64 = f[4].parse().unwrap();
        let age: i64 = f[6].parse().unwrap();
        max_time = max_time.max(epoch_millis(f[5]));
        let age_group = match age {
            1..=25 => Some("18-25"),
            26..=35 => Some("26-35"),
            36..=45 => Some("36-45"),
            46..=55 => Some("46-55"),
            56..=100 => Some("56+"),
            _ => None,
        };
        let mut keys = vec![
            (0, "category", f[2].to_string()),
            (1, "daily", f[5][..10].to_string()),
            (3, "customer", f[1].to_string()),
            (4, "payment", f[8].to_string()),
            (6, "overall", "all".to_string()),
        ];
        if let Some(g) = age_group {
            keys.push((5, "age_group", g.to_string()));
        }
        for k in keys {
            let a = groups.entry(k).or_default();
            a.total += amount;
            a.count += 1;
            a.quantity += quantity;
            a.customers.insert(f[1].to_string());
        }
    }
    let time = max_time + 1;
    let mut best: Vec<(i64, String, Agg)> = groups
        .iter()
        .filter(|(k, _)| k.1 == "customer")
        .map(|(k, a)| (-a.total, k.2.clone(), a.clone()))
        .collect();
    best.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    best.truncate(top);
    let row = |section: &str, rank: usize, key: &str, a: &Agg| {
        format!(
            "{time},{section},{rank},{key},{},{},{},{},{}\n",
            money(a.total),
            a.count,
            a.quantity,
            money(mean(a.total, a.count)),
            a.customers.len()
        )
    };
    let mut out = String::from("time,section,rank,key,total,count,quantity,mean,customers\n");
    let mut ranked = false;
    for ((order, section, key), a) in &groups {
        if *order == 3 {
            continue;
        }
        if *order > 2 && !ranked {
            ranked = true;
            for (i, (_, customer, a)) in best.iter().enumerate() {
                out.push_str(&row("top_customers", i + 1, customer, a));
            }
        }
        out.push_str(&row(section, 0, key, a));
    }
    out
}

#[test]
fn batch_report_equals_the_reference_for_any_worker_count() {
    let dir = TempDir::new("report-ref");
    let data = dir.path("tx.csv");
    gen_transactions(&data, 30_000, 21, &[]);
    let input = data.to_str().unwrap();
    let want = reference(&data, 10);
    for w in ["1", "2", "3"] {
        assert_eq!(run_ok("ecommerce_report", &["--input", input, "-w", w, "-q"]), want, "-w {w}");
    }
    let top3 = run_ok("ecommerce_report", &["--input", input, "--top", "3", "-q"]);
    assert_eq!(top3, reference(&data, 3));
    // Two processes on loopback; process 0 writes the results.
    assert_eq!(common::two_processes("ecommerce_report", &["--input", input, "-q"]), want, "-n 2");
}

#[test]
fn all_customers_lists_every_customer() {
    let dir = TempDir::new("report-customers");
    let data = dir.path("tx.csv");
    gen_transactions(&data, 3000, 4, &[]);
    let out = run_ok("ecommerce_report", &["--input", data.to_str().unwrap(), "--all-customers", "-q"]);
    let text = std::fs::read_to_string(&data).unwrap();
    let mut spent: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let e = spent.entry(f[1]).or_default();
        e.0 += cents(f[9]);
        e.1 += 1;
    }
    let got: BTreeMap<String, (i64, i64)> = out
        .lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f[1] == "customer")
        .map(|f| (f[3].to_string(), (cents(f[4]), f[5].parse().unwrap())))
        .collect();
    let want: BTreeMap<String, (i64, i64)> = spent.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    assert_eq!(got, want);
}

/// Consolidates incremental CSV changes into the rows whose diffs do not cancel.
fn consolidate(out: &str) -> BTreeSet<String> {
    let mut diffs: BTreeMap<String, i64> = BTreeMap::new();
    let mut last = 0u64;
    for line in out.lines().skip(1) {
        let (row, diff) = line.rsplit_once(',').unwrap();
        let (time, rest) = row.split_once(',').unwrap();
        let time: u64 = time.parse().unwrap();
        assert!(time >= last, "changes in time order");
        last = time;
        *diffs.entry(rest.to_string()).or_default() += diff.parse::<i64>().unwrap();
    }
    assert!(diffs.values().all(|d| *d == 0 || *d == 1), "consolidated diffs are 0 or 1");
    diffs.into_iter().filter(|(_, d)| *d == 1).map(|(r, _)| r).collect()
}

#[test]
fn incremental_changes_consolidate_to_the_batch_report() {
    let dir = TempDir::new("report-inc");
    let data = dir.path("tx.csv");
    gen_transactions(&data, 20_000, 5, &["--ordered", "--days", "3", "--jitter", "10s"]);
    let input = data.to_str().unwrap();
    let batch: BTreeSet<String> =
        reference(&data, 10).lines().skip(1).map(|l| l.split_once(',').unwrap().1.to_string()).collect();
    let one =
        run_ok("ecommerce_report", &["--input", input, "--mode", "incremental", "--emit-every", "1h", "-q"]);
    assert_eq!(consolidate(&one), batch);
    // The changes come out once per hour of event time that has data, at the hour's start.
    let hours: BTreeSet<String> = std::fs::read_to_string(&data)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| (epoch_millis(l.split(',').nth(5).unwrap()) / 3_600_000 * 3_600_000).to_string())
        .collect();
    let times: BTreeSet<String> =
        one.lines().skip(1).map(|l| l.split(',').next().unwrap().to_string()).collect();
    assert!(hours.len() >= 72);
    assert_eq!(times, hours);
    for w in ["2", "3"] {
        let got = run_ok(
            "ecommerce_report",
            &["--input", input, "--mode", "incremental", "--emit-every", "1h", "-w", w, "-q"],
        );
        assert_eq!(got, one, "-w {w}");
    }
    let ranked_at: BTreeSet<&str> =
        one.lines().filter(|l| l.contains(",top_customers,")).map(|l| l.split(',').next().unwrap()).collect();
    assert!(ranked_at.len() > 10, "the top customers change as data arrives");
    // Two processes on loopback; process 0 writes the results.
    let args = ["--input", input, "--mode", "incremental", "--emit-every", "1h", "-q"];
    assert_eq!(common::two_processes("ecommerce_report", &args), one, "-n 2");
    let fine = run_ok(
        "ecommerce_report",
        &["--input", input, "--mode", "incremental", "--emit-every", "10m", "-w", "2", "-q"],
    );
    assert_eq!(consolidate(&fine), batch, "--emit-every 10m");
}

#[test]
fn bad_lines_are_counted_and_nothing_valid_is_lost() {
    let dir = TempDir::new("report-bad");
    let good = dir.path("good.csv");
    gen_transactions(&good, 5000, 6, &[]);
    let text = std::fs::read_to_string(&good).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let bad = [
        "TXN_B1,CUST_00001,Books,10.00,1",
        "TXN_B2,CUST_00001,Books,10.00,1,2026-10-01T00:02:01Z,30,Depok,Cash,ten",
        "TXN_B3,CUST_00001,Books,10.00,1,not-a-time,30,Depok,Cash,10.00",
        "TXN_B4,CUST_00001,Books,10.00,1,2026-10-01T00:02:01Z,old,Depok,Cash,10.00",
        "TXN_B5,CUST_00001,Books,10.00,1,2026-10-01T00:02:01Z,30,Depok,,10.00",
        "",
    ];
    for (i, b) in bad.iter().enumerate() {
        lines.insert(3 + i * 700, b);
    }
    let path = dir.path("bad.csv");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let want = reference(&good, 10);
    for w in ["1", "3"] {
        let rejects = dir.path(&format!("rejects-{w}.txt"));
        let out = run(
            "ecommerce_report",
            &["--input", path.to_str().unwrap(), "-w", w, "--rejects", rejects.to_str().unwrap()],
        );
        assert!(out.status.success());
        assert_eq!(String::from_utf8(out.stdout).unwrap(), want, "-w {w}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("read 5006 records, rejected 6,"), "{stderr}");
        assert_eq!(std::fs::read_to_string(&rejects).unwrap().lines().count(), 6);
    }
}

#[test]
fn table_and_json_carry_the_same_report() {
    let dir = TempDir::new("report-formats");
    let data = dir.path("tx.csv");
    gen_transactions(&data, 4000, 8, &[]);
    let input = data.to_str().unwrap();
    let csv = run_ok("ecommerce_report", &["--input", input, "-q"]);
    let json = run_ok("ecommerce_report", &["--input", input, "--format", "json", "-q"]);
    assert_eq!(json.lines().count(), csv.lines().count() - 1);
    for (j, c) in json.lines().zip(csv.lines().skip(1)) {
        let v: serde_json::Value = serde_json::from_str(j).unwrap();
        let f: Vec<&str> = c.split(',').collect();
        assert_eq!(v["section"], f[1]);
        assert_eq!(v["key"], f[3]);
        assert!(j.contains(&format!("\"total\":{},", f[4])), "{j}");
        assert_eq!(v["customers"].to_string(), f[8]);
    }
    let table = run_ok("ecommerce_report", &["--input", input, "--format", "table", "-q"]);
    for title in
        ["Sales by category", "Daily sales", "Top customers", "Payment methods", "Age groups", "Overall"]
    {
        assert_eq!(table.matches(&format!("{title} (events before")).count(), 1, "{title}\n{table}");
    }
    let overall = csv.lines().last().unwrap().split(',').collect::<Vec<_>>();
    let line = table.lines().rev().nth(1).unwrap();
    assert!(line.contains(overall[4]) && line.contains(overall[8]), "{line}");
}
