//! `category_totals` against a plain reference fold, across workers, processes, epochs and bad input.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{TempDir, csv_rows, gen_transactions, run, run_ok};

/// (total cents, count, quantity) per category.
type Reference = BTreeMap<String, (i64, i64, i64)>;

/// Cents from decimal text, written independently of the crate's parser.
fn cents(text: &str) -> i64 {
    let (neg, body) = text.strip_prefix('-').map_or((false, text), |b| (true, b));
    let (units, frac) = body.split_once('.').unwrap_or((body, ""));
    let frac = format!("{frac:0<2}");
    let v = units.parse::<i64>().unwrap() * 100 + frac[..2].parse::<i64>().unwrap();
    if neg { -v } else { v }
}

/// The reference: a fold over the file's well-formed lines.
fn reference(path: &Path) -> Reference {
    let bytes = std::fs::read(path).unwrap();
    let mut totals = Reference::new();
    for line in bytes.split(|&b| b == b'\n').skip(1) {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 10 || fields[5].len() < 19 || fields[3].parse::<f64>().is_err() {
            continue;
        }
        let entry = totals.entry(fields[2].to_owned()).or_default();
        entry.0 += cents(fields[9]);
        entry.1 += 1;
        entry.2 += fields[4].parse::<i64>().unwrap();
    }
    totals
}

fn mean(total: i64, count: i64) -> i64 {
    (total.abs() * 2 + count) / (2 * count) * total.signum()
}

/// Batch CSV rows as (category → (total, count, quantity)), checking the mean column too.
fn batch_table(out: &str) -> Reference {
    let mut table = Reference::new();
    let rows = csv_rows(out);
    let times: std::collections::BTreeSet<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert!(times.len() <= 1, "a global batch result is one table: {times:?}");
    for r in &rows {
        let (total, count) = (cents(&r[2]), r[3].parse().unwrap());
        assert_eq!(cents(&r[5]), mean(total, count), "mean of {r:?}");
        table.insert(r[1].clone(), (total, count, r[4].parse().unwrap()));
    }
    table
}

/// Incremental CSV rows consolidated: the values whose diffs do not cancel.
fn consolidate(out: &str) -> Reference {
    let mut diffs: BTreeMap<(String, i64, i64, i64), i64> = BTreeMap::new();
    let mut last_time = 0u64;
    for r in csv_rows(out) {
        let time: u64 = r[0].parse().unwrap();
        assert!(time >= last_time, "changes come out in time order");
        last_time = time;
        *diffs
            .entry((r[1].clone(), cents(&r[2]), r[3].parse().unwrap(), r[4].parse().unwrap()))
            .or_default() += r[5].parse::<i64>().unwrap();
    }
    let mut table = Reference::new();
    for ((category, total, count, quantity), diff) in diffs {
        match diff {
            0 => {}
            1 => assert!(table.insert(category, (total, count, quantity)).is_none(), "one value per key"),
            other => panic!("consolidated diff {other} for {category}"),
        }
    }
    table
}

#[test]
fn totals_are_exact_to_the_cent_for_200k_rows_in_both_modes() {
    let dir = TempDir::new("exact");
    let data = dir.path("tx.csv");
    gen_transactions(&data, 200_000, 11, &[]);
    let want = reference(&data);
    assert_eq!(want.len(), 6);
    assert_eq!(want.values().map(|v| v.1).sum::<i64>(), 200_000);
    let input = data.to_str().unwrap();
    assert_eq!(batch_table(&run_ok("category_totals", &["--input", input, "-q"])), want);
    let incremental = run_ok("category_totals", &["--input", input, "--mode", "incremental", "-q"]);
    assert_eq!(consolidate(&incremental), want);
}

#[test]
fn incremental_output_is_the_same_when_held_updates_spill_to_disk() {
    let dir = TempDir::new("spill");
    let data = dir.path("tx.csv");
    gen_transactions(&data, 30_000, 8, &[]);
    let args = ["--input", data.to_str().unwrap(), "--mode", "incremental", "-w", "2", "-q"];
    let in_memory = run_ok("category_totals", &args);
    let out = std::process::Command::new(common::bin("category_totals"))
        .args(args)
        .env("KAPPA_SPILL_SUMS", "500")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(in_memory.lines().count() > 1000, "many epochs change");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), in_memory);
}

#[test]
fn output_is_byte_identical_for_one_two_and_three_workers() {
    let dir = TempDir::new("workers");
    let data = dir.path("tx.csv");
    gen_transactions(&data, 50_000, 5, &[]);
    let input = data.to_str().unwrap();
    for mode in ["batch", "incremental"] {
        let one = run_ok("category_totals", &["--input", input, "--mode", mode, "-w", "1", "-q"]);
        assert!(one.lines().count() > 6);
        for w in ["2", "3"] {
            let many = run_ok("category_totals", &["--input", input, "--mode", mode, "-w", w, "-q"]);
            assert_eq!(one, many, "{mode} with -w {w}");
        }
    }
}

#[test]
fn batch_output_is_byte_identical_for_any_epoch() {
    let dir = TempDir::new("epochs");
    let data = dir.path("tx.csv");
    gen_transactions(&data, 20_000, 6, &[]);
    let input = data.to_str().unwrap();
    let base = run_ok("category_totals", &["--input", input, "-q"]);
    for epoch in ["1ms", "1m", "1h", "7d"] {
        assert_eq!(
            run_ok("category_totals", &["--input", input, "--epoch", epoch, "-w", "2", "-q"]),
            base,
            "{epoch}"
        );
    }
}

#[test]
fn incremental_output_with_hour_epochs_consolidates_to_batch() {
    let dir = TempDir::new("hourly");
    let data = dir.path("tx.csv");
    gen_transactions(&data, 30_000, 8, &[]);
    let input = data.to_str().unwrap();
    let batch = batch_table(&run_ok("category_totals", &["--input", input, "-q"]));
    let incremental = run_ok(
        "category_totals",
        &["--input", input, "--mode", "incremental", "--epoch", "1h", "-w", "2", "-q"],
    );
    let times: std::collections::BTreeSet<u64> =
        csv_rows(&incremental).iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(times.len() > 500, "one change set per hour with data, got {}", times.len());
    assert!(times.iter().all(|t| t % 3_600_000 == 0), "times are hour epochs");
    assert_eq!(consolidate(&incremental), batch);
}

#[test]
fn two_processes_on_loopback_match_one_process() {
    let dir = TempDir::new("procs");
    let data = dir.path("tx.csv");
    gen_transactions(&data, 40_000, 9, &[]);
    let input = data.to_str().unwrap();
    for mode in ["batch", "incremental"] {
        let single = run_ok("category_totals", &["--input", input, "--mode", mode, "-w", "2", "-q"]);
        let port = common::port_base().to_string();
        let spawn = |p: &str| {
            std::process::Command::new(common::bin("category_totals"))
                .args(["--input", input, "--mode", mode, "-n", "2", "-p", p, "--port-base", &port, "-q"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (p0, p1) = (spawn("0"), spawn("1"));
        let (o0, o1) = (p0.wait_with_output().unwrap(), p1.wait_with_output().unwrap());
        assert!(o0.status.success() && o1.status.success(), "{}", String::from_utf8_lossy(&o0.stderr));
        assert_eq!(String::from_utf8(o0.stdout).unwrap(), single, "{mode}: process 0 writes the results");
        assert!(o1.stdout.is_empty(), "process 1 writes no results");
    }
}

#[test]
fn the_default_run_uses_the_seeded_generator() {
    let dir = TempDir::new("default");
    let data = dir.path("tx.csv");
    gen_transactions(&data, 100_000, 42, &[]);
    let from_file = run_ok("category_totals", &["--input", data.to_str().unwrap(), "-q"]);
    let out = run("category_totals", &[]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), from_file);
    let summary = String::from_utf8(out.stderr).unwrap();
    assert!(summary.contains("read 100000 records, rejected 0"), "{summary}");
}

#[test]
fn generator_output_is_stable_across_runs_and_streams() {
    let a = run_ok("gen", &["transactions", "--rows", "1000", "--seed", "3"]);
    let b = run_ok("gen", &["transactions", "--rows", "1000", "--seed", "3"]);
    assert_eq!(a, b);
    assert_eq!(a.lines().count(), 1001);
    assert!(a.starts_with("transaction_id,customer_id,product_category,product_price,quantity,timestamp,"));
    let ordered = run_ok("gen", &["transactions", "--rows", "1000", "--ordered", "--jitter", "5s"]);
    let times: Vec<u64> = ordered
        .lines()
        .skip(1)
        .map(|l| {
            let t = l.split(',').nth(5).unwrap();
            chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp_millis() as u64
        })
        .collect();
    let mut max = 0;
    for t in times {
        assert!(t + 5_000 >= max, "disorder is bounded by the jitter");
        max = max.max(t);
    }
}

/// A file with every kind of bad line the issue names, and the line numbers they land on.
fn write_bad_file(path: &Path, good: &Path) -> Vec<(u64, &'static str)> {
    let text = std::fs::read(good).unwrap();
    let mut lines: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    if lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    let bad: Vec<(usize, Vec<u8>, &'static str)> = vec![
        (10, b"TXN_X,CUST_00001,Books,10.00,1".to_vec(), "wrong field count"),
        (
            200,
            b"TXN_Y,CUST_00001,Books,ten,1,2026-10-01T00:00:00Z,30,Depok,Cash,10.00".to_vec(),
            "bad product_price",
        ),
        (
            3000,
            b"TXN_Z,CUST_00001,Books,10.00,1,2026-10-01T00:00:00Z,30,Depok,Cash,1O.00".to_vec(),
            "bad total_amount",
        ),
        (
            4000,
            b"TXN_T,CUST_00001,Books,10.00,1,2026-13-45T00:00:00Z,30,Depok,Cash,10.00".to_vec(),
            "bad timestamp",
        ),
        (
            5000,
            b"TXN_U,CUST_00001,Bo\xffks,10.00,1,2026-10-01T00:00:00Z,30,Depok,Cash,10.00".to_vec(),
            "invalid UTF-8",
        ),
        (6000, Vec::new(), "empty line"),
        (7000, vec![b'7'; 1 << 20], "line too long"),
    ];
    let mut expected = Vec::new();
    for (offset, (at, line, reason)) in bad.into_iter().enumerate() {
        lines.insert(at, line);
        expected.push((at as u64 + 1, reason));
        let _ = offset;
    }
    let mut out = lines.join(&b'\n');
    out.push(b'\n');
    std::fs::write(path, out).unwrap();
    expected
}

#[test]
fn bad_lines_are_rejected_with_line_numbers_and_nothing_valid_is_lost() {
    let dir = TempDir::new("bad");
    let good = dir.path("good.csv");
    gen_transactions(&good, 10_000, 12, &[]);
    let bad = dir.path("bad.csv");
    let expected = write_bad_file(&bad, &good);
    let want = reference(&good);
    for w in ["1", "3"] {
        let rejects = dir.path(&format!("rejects-{w}.txt"));
        let out = run(
            "category_totals",
            &["--input", bad.to_str().unwrap(), "-w", w, "--rejects", rejects.to_str().unwrap()],
        );
        assert!(out.status.success());
        assert_eq!(batch_table(&String::from_utf8(out.stdout).unwrap()), want, "-w {w}");
        let summary = String::from_utf8(out.stderr).unwrap();
        assert!(summary.contains("read 10007 records, rejected 7,"), "{summary}");
        let text = std::fs::read_to_string(&rejects).unwrap();
        let got: Vec<(u64, String)> = text
            .lines()
            .map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, line, rest) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
                (line.parse().unwrap(), rest.trim().to_owned())
            })
            .collect();
        assert_eq!(got.len(), expected.len(), "{text}");
        for ((line, reason), (want_line, want_reason)) in got.iter().zip(&expected) {
            assert_eq!(line, want_line, "{text}");
            assert!(
                reason.starts_with(want_reason),
                "line {line}: '{reason}' should start with '{want_reason}'"
            );
        }
        assert!(text.len() < 4096, "the 1 MB line is excerpted, not copied");
    }
}

#[test]
fn strict_mode_fails_at_a_bad_line() {
    let dir = TempDir::new("strict");
    let good = dir.path("good.csv");
    gen_transactions(&good, 8_000, 13, &[]);
    let bad = dir.path("bad.csv");
    write_bad_file(&bad, &good);
    let out = run("category_totals", &["--input", bad.to_str().unwrap(), "--strict"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bad.csv:11: wrong field count"), "{err}");
    let clean = run("category_totals", &["--input", good.to_str().unwrap(), "--strict", "-q"]);
    assert!(clean.status.success());
}

#[test]
fn usage_errors_are_one_line_with_exit_code_two() {
    for args in [
        &["--threads", "zero"][..],
        &["--no-such-flag"],
        &["--epoch", "5 parsecs"],
        &["--input", "/no/such/file.csv"],
        &["--mode", "sideways"],
        &["--window", "1m", "--slide", "7s"],
        &["-n", "2", "-p", "5"],
        &["--output", "/no/such/dir/out.csv"],
        &["--input", "gen:unicorns"],
    ] {
        let out = run("category_totals", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("category_totals: error: "), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let help = run("category_totals", &["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8(help.stdout).unwrap().contains("--hostfile"));
}

#[test]
fn formats_carry_the_same_results() {
    let csv = run_ok("category_totals", &["-q", "--input", "gen:transactions?count=5000&seed=1"]);
    let json = run_ok(
        "category_totals",
        &["-q", "--input", "gen:transactions?count=5000&seed=1", "--format", "json"],
    );
    let table = run_ok(
        "category_totals",
        &["-q", "--input", "gen:transactions?count=5000&seed=1", "--format", "table"],
    );
    let rows = csv_rows(&csv);
    assert_eq!(json.lines().count(), rows.len());
    for (row, line) in rows.iter().zip(json.lines()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["category"], row[1].as_str());
        assert_eq!(v["count"].as_i64().unwrap().to_string(), row[3]);
        assert!(table.contains(&row[2]), "table shows total {}", row[2]);
    }
}

#[test]
fn header_lines_are_skipped_not_rejected() {
    let dir = TempDir::new("headers");
    let a = dir.path("a.csv");
    gen_transactions(&a, 1_000, 1, &[]);
    let text = std::fs::read_to_string(&a).unwrap();
    let twice = dir.path("twice.csv");
    std::fs::write(&twice, format!("{text}{text}")).unwrap();
    let out = run("category_totals", &["--input", twice.to_str().unwrap()]);
    let summary = String::from_utf8(out.stderr).unwrap();
    assert!(summary.contains("read 2000 records, rejected 0"), "{summary}");
}

#[test]
fn an_output_naming_the_input_file_is_refused_before_anything_is_written() {
    let dir = TempDir::new("ct-self");
    let input = dir.path("data.csv");
    gen_transactions(&input, 100, 3, &[]);
    let before = std::fs::read(&input).unwrap();
    // Another spelling of the same file: canonical paths are compared.
    let alias = format!(
        "{}/../{}/data.csv",
        dir.path("").display(),
        dir.path("").file_name().unwrap().to_str().unwrap()
    );
    for flag in ["--output", "--rejects", "--late"] {
        for path in [input.to_str().unwrap(), alias.as_str()] {
            let out = run("category_totals", &["--input", input.to_str().unwrap(), flag, path]);
            assert_eq!(out.status.code(), Some(2), "{flag} {path}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(err.contains("is the input file"), "{err}");
            assert_eq!(std::fs::read(&input).unwrap(), before, "{flag} {path}");
        }
    }
}

#[test]
fn gen_help_describes_each_kind_in_its_own_words() {
    let help = run_ok("gen", &["--help"]);
    for kind in kappa::record::registry::KINDS {
        let line = help.lines().find(|l| l.trim_start().starts_with(kind.name)).expect("each kind is listed");
        assert!(line.contains(kind.about), "{}: {line}", kind.name);
    }
}
