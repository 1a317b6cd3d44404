//! Live input: the same results from a file, stdin, tcp and tail; late data; clean stops.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{TempDir, bin, connect, csv_rows, gen_transactions, run_ok};

fn job(args: &[&str]) -> Command {
    let mut c = Command::new(bin("category_totals"));
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn finish(child: Child, what: &str) -> String {
    let out = wait_within(child, Duration::from_secs(60), what);
    assert!(out.status.success(), "{what}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn wait_within(child: Child, limit: Duration, what: &str) -> Output {
    // Read the pipes while waiting, so a child with a lot to say cannot block on them.
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            let out = rx.recv().unwrap().unwrap();
            panic!(
                "{what}: process did not finish within {limit:?}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

fn lines_of(path: &Path) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines().map(str::to_owned);
    let header = lines.next().unwrap();
    (header, lines.collect())
}

/// Delivers `path` over stdin.
fn via_stdin(path: &Path, args: &[&str]) -> String {
    let mut child = job(&[&["--input", "-", "-q"], args].concat()).stdin(Stdio::piped()).spawn().unwrap();
    let data = std::fs::read(path).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = finish(child, "stdin");
    writer.join().unwrap();
    out
}

/// Delivers `path` from three concurrent tcp clients, each sending every third chunk.
fn via_tcp(path: &Path, args: &[&str]) -> String {
    let port = common::port_base();
    let spec = format!("tcp://127.0.0.1:{port}?clients=3");
    let child = job(&[&["--input", &spec, "-q"], args].concat()).spawn().unwrap();
    let (header, lines) = lines_of(path);
    let mut clients: Vec<TcpStream> = (0..3).map(|_| connect(port)).collect();
    for c in &mut clients {
        writeln!(c, "{header}").unwrap();
    }
    for (i, chunk) in lines.chunks(500).enumerate() {
        let mut text = chunk.join("\n");
        text.push('\n');
        clients[i % 3].write_all(text.as_bytes()).unwrap();
    }
    drop(clients);
    finish(child, "tcp")
}

/// Delivers `path` through `tail:` while a separate process appends it in parts.
fn via_tail(path: &Path, dir: &TempDir, args: &[&str]) -> String {
    let (header, lines) = lines_of(path);
    let parts: Vec<String> = lines.chunks(lines.len() / 8 + 1).map(|c| c.join("\n") + "\n").collect();
    for (i, part) in parts.iter().enumerate() {
        let text = if i == 0 { format!("{header}\n{part}") } else { part.clone() };
        std::fs::write(dir.path(&format!("part{i}")), text).unwrap();
    }
    let followed = dir.path("followed.csv");
    let _ = std::fs::remove_file(&followed);
    let script = format!(
        "for i in $(seq 0 {}); do cat {}/part$i >> {}; sleep 0.03; done",
        parts.len() - 1,
        dir.0.display(),
        followed.display()
    );
    let mut writer = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    let spec = format!("tail:{}?pid={}", followed.display(), writer.id());
    let child = job(&[&["--input", &spec, "--progress-every", "1s"], args].concat()).spawn().unwrap();
    writer.wait().unwrap();
    finish(child, &format!("tail {args:?}"))
}

#[test]
fn file_stdin_tcp_and_tail_give_byte_identical_windows() {
    let dir = TempDir::new("deliveries");
    let data = dir.path("ordered.csv");
    gen_transactions(&data, 100_000, 21, &["--days", "1", "--ordered", "--jitter", "2s"]);
    let input = data.to_str().unwrap();
    for window in [&["--window", "1h"][..], &["--window", "1h", "--slide", "10m"]] {
        for mode in ["batch", "incremental"] {
            for workers in ["1", "2"] {
                let args = [window, &["--mode", mode, "-w", workers]].concat();
                let file = run_ok("category_totals", &[&["--input", input, "-q"], &args[..]].concat());
                let rows = csv_rows(&file);
                assert!(rows.len() >= 24 * 6, "{args:?}: {} rows", rows.len());
                if mode == "batch" {
                    let keys: BTreeSet<(&str, &str)> =
                        rows.iter().map(|r| (r[0].as_str(), r[1].as_str())).collect();
                    assert_eq!(keys.len(), rows.len(), "no window is reported twice");
                }
                assert_eq!(via_stdin(&data, &args), file, "stdin {args:?}");
                assert_eq!(via_tail(&data, &dir, &args), file, "tail {args:?}");
                // Three clients race each other: allow disorder across the whole day of data.
                let tcp_args = [&args[..], &["--lateness", "2d"]].concat();
                assert_eq!(via_tcp(&data, &tcp_args), file, "tcp {args:?}");
            }
        }
    }
}

fn cents(text: &str) -> i64 {
    let (units, frac) = text.split_once('.').unwrap();
    units.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap()
}

fn millis(iso: &str) -> u64 {
    chrono::DateTime::parse_from_rfc3339(iso).unwrap().timestamp_millis() as u64
}

/// Tumbling-window totals per (window end, category) over the given lines.
fn window_reference(lines: &[String], size: u64) -> BTreeMap<(u64, String), (i64, i64)> {
    let mut totals = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let t = millis(f[5]);
        let e: &mut (i64, i64) = totals.entry((t - t % size + size, f[2].to_owned())).or_default();
        e.0 += cents(f[9]);
        e.1 += 1;
    }
    totals
}

fn window_output(out: &str) -> BTreeMap<(u64, String), (i64, i64)> {
    csv_rows(out)
        .into_iter()
        .map(|r| ((r[0].parse().unwrap(), r[1].clone()), (cents(&r[2]), r[3].parse().unwrap())))
        .collect()
}

#[test]
fn late_records_are_counted_written_and_kept_out_exactly() {
    let dir = TempDir::new("late");
    let data = dir.path("ordered.csv");
    gen_transactions(&data, 3_000, 4, &["--days", "1", "--ordered"]);
    let (header, mut lines) = lines_of(&data);
    // Three records an hour behind the stream, at known places.
    let mut late_lines = Vec::new();
    for at in [700, 1400, 2100] {
        let mut f: Vec<String> = lines[at - 1].split(',').map(str::to_owned).collect();
        let t = millis(&f[5]) - 3_600_000;
        f[5] = chrono::DateTime::from_timestamp_millis(t as i64)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        f[0] = format!("LATE_{at}");
        lines.insert(at, f.join(","));
        late_lines.push(at as u64 + 2); // +1 for the header, +1 for 1-based
    }
    let mixed = dir.path("mixed.csv");
    std::fs::write(&mixed, format!("{header}\n{}\n", lines.join("\n"))).unwrap();
    let late_path = dir.path("late.txt");
    let mut child =
        job(&["--input", "-", "--window", "10m", "--lateness", "5s", "--late", late_path.to_str().unwrap()])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
    child.stdin.take().unwrap().write_all(&std::fs::read(&mixed).unwrap()).unwrap();
    let out = wait_within(child, Duration::from_secs(30), "job");
    assert!(out.status.success());
    let summary = String::from_utf8(out.stderr).unwrap();
    assert!(summary.contains("read 3003 records, rejected 0, late 3,"), "{summary}");
    let late = std::fs::read_to_string(&late_path).unwrap();
    let numbers: Vec<u64> = late.lines().map(|l| l.split(':').nth(1).unwrap().parse().unwrap()).collect();
    assert_eq!(numbers, late_lines, "{late}");
    assert!(late.lines().all(|l| l.contains("late by") && l.contains("LATE_")), "{late}");
    // Everything else is counted: the output is the fold over the records that were not late.
    let kept: Vec<String> = lines.iter().filter(|l| !l.starts_with("LATE_")).cloned().collect();
    assert_eq!(window_output(&String::from_utf8(out.stdout).unwrap()), window_reference(&kept, 600_000));
    // A file holds its watermark until it ends, so the same records are all counted.
    let whole = run_ok("category_totals", &["--input", mixed.to_str().unwrap(), "--window", "10m", "-q"]);
    assert_eq!(window_output(&whole), window_reference(&lines, 600_000));
    // With two workers which records are late may differ, but none is lost.
    let mut child = job(&["--input", "-", "--window", "10m", "--lateness", "5s", "-w", "2"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&std::fs::read(&mixed).unwrap()).unwrap();
    let out = wait_within(child, Duration::from_secs(30), "job");
    let summary = String::from_utf8(out.stderr).unwrap();
    let late_count: i64 = summary.split("late ").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
    let counted: i64 = window_output(&String::from_utf8(out.stdout).unwrap()).values().map(|v| v.1).sum();
    assert_eq!(counted + late_count, 3003, "{summary}");
}

/// Reads lines of `path` as they are flushed, until `pred` holds or the time is up.
fn wait_for_output(path: &Path, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if pred(&text) || start.elapsed() > limit {
            return text;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn tx(id: usize, at: u64, amount: &str) -> String {
    let time = chrono::DateTime::from_timestamp_millis(at as i64).unwrap().format("%Y-%m-%dT%H:%M:%S%.3fZ");
    format!("T{id},CUST_00001,Books,{amount},1,{time},30,Depok,Cash,{amount}\n")
}

const T0: u64 = 1_790_812_800_000; // 2026-10-01T00:00:00Z

#[test]
fn a_window_is_reported_once_and_only_after_the_watermark_passes_its_end() {
    let dir = TempDir::new("early");
    let out_path = dir.path("out.csv");
    let port = common::port_base();
    let spec = format!("tcp://127.0.0.1:{port}?clients=1");
    let child = job(&[
        "--input",
        &spec,
        "--window",
        "1m",
        "--lateness",
        "0s",
        "--output",
        out_path.to_str().unwrap(),
    ])
    .spawn()
    .unwrap();
    let mut client = connect(port);
    for (i, s) in [0u64, 10, 30, 59].iter().enumerate() {
        client.write_all(tx(i, T0 + s * 1000, "1.00").as_bytes()).unwrap();
    }
    let end = (T0 + 60_000).to_string();
    // The window [0s, 60s) is not complete: nothing may be reported yet.
    thread::sleep(Duration::from_millis(400));
    let early = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(!early.contains(&end), "window reported before its end passed:\n{early}");
    // An event at 61s moves the watermark past 60s: the window must come out now.
    client.write_all(tx(9, T0 + 61_000, "2.00").as_bytes()).unwrap();
    let text = wait_for_output(&out_path, Duration::from_secs(10), |t| t.contains(&end));
    assert!(text.contains(&format!("{end},Books,4.00,4,4,1.00")), "{text}");
    drop(client);
    let out = wait_within(child, Duration::from_secs(10), "job");
    assert!(out.status.success());
    let text = std::fs::read_to_string(&out_path).unwrap();
    assert_eq!(text.matches(&end).count(), 1, "reported once:\n{text}");
    assert!(
        text.contains(&format!("{},Books,2.00,1,1,2.00", T0 + 120_000)),
        "last window at end of input:\n{text}"
    );
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn an_idle_tcp_job_parks_then_stops_cleanly_on_sigterm() {
    let dir = TempDir::new("stop");
    let out_path = dir.path("out.csv");
    let port = common::port_base();
    let spec = format!("tcp://127.0.0.1:{port}");
    let child = job(&[
        "--input",
        &spec,
        "-w",
        "2",
        "--window",
        "1m",
        "--lateness",
        "0s",
        "--output",
        out_path.to_str().unwrap(),
    ])
    .spawn()
    .unwrap();
    let mut client = connect(port);
    for (i, s) in [5u64, 65, 70].iter().enumerate() {
        client.write_all(tx(i, T0 + s * 1000, "3.00").as_bytes()).unwrap();
    }
    let first = (T0 + 60_000).to_string();
    let text = wait_for_output(&out_path, Duration::from_secs(10), |t| t.contains(&first));
    assert!(text.contains(&first), "{text}");
    // Idle now: parked workers use next to no CPU.
    thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(child.id());
    thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(child.id()) - before;
    assert!(used <= 10, "an idle job used {used} ticks of CPU in 2 s");
    let start = Instant::now();
    signal(&child, "TERM");
    let out = wait_within(child, Duration::from_secs(5), "job");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "stopping took {took:?}");
    assert_eq!(out.status.code(), Some(0));
    let text = std::fs::read_to_string(&out_path).unwrap();
    assert_eq!(text.matches(&first).count(), 1, "{text}");
    assert!(text.contains(&format!("{},Books,6.00,2,2,3.00", T0 + 120_000)), "{text}");
    let summary = String::from_utf8(out.stderr).unwrap();
    assert!(summary.contains("summary: read 3 records, rejected 0, late 0"), "{summary}");
}

#[test]
fn a_paced_generator_reports_progress_and_latency() {
    let dir = TempDir::new("paced");
    let hist = dir.path("latency.txt");
    let out = Command::new(bin("category_totals"))
        .args([
            "--input",
            "gen:transactions?rate=4000&count=6000",
            "--window",
            "1s",
            "--progress-every",
            "300ms",
        ])
        .args(["--latency-out", hist.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.lines().filter(|l| l.starts_with("progress: ")).count() >= 2, "{err}");
    assert!(err.contains("records/s in") || err.contains(" in "), "{err}");
    let summary = err.lines().last().unwrap();
    assert!(summary.contains("read 6000 records") && summary.contains("latency p50"), "{summary}");
    let counted: i64 =
        csv_rows(&String::from_utf8(out.stdout).unwrap()).iter().map(|r| r[3].parse::<i64>().unwrap()).sum();
    assert_eq!(counted, 6000);
    let text = std::fs::read_to_string(&hist).unwrap();
    assert!(text.contains("Percentile") && text.contains("Total count = 6000"), "{text}");
}

#[test]
fn tail_follows_a_file_through_rotation() {
    let dir = TempDir::new("rotate");
    let data = dir.path("data.csv");
    gen_transactions(&data, 4_000, 2, &["--days", "1", "--ordered"]);
    let (header, lines) = lines_of(&data);
    let path = dir.path("app.csv");
    let first = format!("{header}\n{}\n", lines[..2000].join("\n"));
    let second = format!("{header}\n{}\n", lines[2000..].join("\n"));
    std::fs::write(dir.path("first"), first).unwrap();
    std::fs::write(dir.path("second"), second).unwrap();
    let d = dir.0.display();
    let script = format!(
        "cat {d}/first > {d}/app.csv; sleep 0.3; mv {d}/app.csv {d}/app.csv.1; cat {d}/second > {d}/app.csv.tmp; mv {d}/app.csv.tmp {d}/app.csv; sleep 0.3"
    );
    let mut writer = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    let spec = format!("tail:{}?pid={}", path.display(), writer.id());
    let child = job(&["--input", &spec, "--window", "1h"]).spawn().unwrap();
    writer.wait().unwrap();
    let out = wait_within(child, Duration::from_secs(30), "job");
    let summary = String::from_utf8(out.stderr).unwrap();
    assert!(summary.contains("read 4000 records, rejected 0, late 0"), "{summary}");
    let expected = run_ok("category_totals", &["--input", data.to_str().unwrap(), "--window", "1h", "-q"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
}

#[test]
fn tcp_connections_may_each_start_with_a_header_and_bad_lines_name_their_client() {
    let dir = TempDir::new("tcp-rejects");
    let rejects = dir.path("rejects.txt");
    let port = common::port_base();
    let spec = format!("tcp://127.0.0.1:{port}?clients=2");
    let child =
        job(&["--input", &spec, "--lateness", "1d", "--rejects", rejects.to_str().unwrap()]).spawn().unwrap();
    let header = "transaction_id,customer_id,product_category,product_price,quantity,timestamp,customer_age,customer_city,payment_method,total_amount";
    let mut a = connect(port);
    let mut b = connect(port);
    writeln!(a, "{header}").unwrap();
    a.write_all(tx(1, T0, "1.00").as_bytes()).unwrap();
    writeln!(b, "{header}").unwrap();
    b.write_all(b"not,a,transaction\n").unwrap();
    b.write_all(tx(2, T0 + 1, "2.00").as_bytes()).unwrap();
    drop((a, b));
    let out = wait_within(child, Duration::from_secs(10), "job");
    let summary = String::from_utf8(out.stderr).unwrap();
    assert!(summary.contains("read 3 records, rejected 1"), "{summary}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains(",Books,3.00,2,2,1.50"), "{stdout}");
    let reader = BufReader::new(stdout.as_bytes());
    assert_eq!(reader.lines().count(), 2);
    let rejects = std::fs::read_to_string(&rejects).unwrap();
    let b_port = rejects.split(':').nth(2).unwrap_or("");
    assert!(rejects.starts_with("tcp:127.0.0.1:") && !b_port.is_empty(), "{rejects}");
    assert!(rejects.contains(":2: wrong field count: expected 10, found 3: not,a,transaction"), "{rejects}");
}

/// Sends `path` to `name` over one tcp connection and returns its output.
fn over_tcp(name: &str, path: &Path, args: &[&str]) -> String {
    let port = common::port_base();
    let spec = format!("tcp://127.0.0.1:{port}?clients=1");
    let child = Command::new(bin(name))
        .args([&["--input", spec.as_str(), "-q"], args].concat())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut client = connect(port);
    client.write_all(&std::fs::read(path).unwrap()).unwrap();
    drop(client);
    finish(child, name)
}

#[test]
fn every_job_gives_the_same_results_over_tcp_as_from_a_file() {
    let dir = TempDir::new("jobs-tcp");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/access_log_elastic_sample.log");
    let clicks = dir.path("clicks.jsonl");
    run_ok("gen", &["clicks", "--rows", "20000", "--seed", "3", "--output", clicks.to_str().unwrap()]);
    let sales = dir.path("sales.csv");
    let burst = ["--burst-every", "500"];
    gen_transactions(&sales, 20_000, 3, &burst);
    // Shuffled history needs a lateness that covers it; the real log is out of order by
    // up to a minute.
    let cases: [(&str, &Path, &[&str]); 7] = [
        ("fraud_signals", &sales, &["--lateness", "40d"]),
        ("ecommerce_report", &sales, &["--lateness", "40d"]),
        ("ecommerce_report", &sales, &["--lateness", "40d", "--mode", "incremental", "--epoch", "1d"]),
        ("ip_counts", &fixture, &["--lateness", "1h", "--window", "1h"]),
        ("ip_counts", &fixture, &["--lateness", "1h", "--mode", "incremental", "--top", "5"]),
        ("event_counts", &clicks, &["--lateness", "40d", "--window", "1d"]),
        ("event_counts", &clicks, &["--lateness", "40d", "--mode", "incremental", "--epoch", "1h"]),
    ];
    for (name, path, args) in cases {
        let file = run_ok(name, &[&["--input", path.to_str().unwrap(), "-q"], args].concat());
        assert!(file.lines().count() > 10, "{name} {args:?}: {file}");
        assert_eq!(over_tcp(name, path, args), file, "{name} {args:?}");
    }
}

#[test]
fn a_tcp_client_that_closes_mid_line_leaves_a_truncated_reject_not_a_record() {
    let dir = TempDir::new("tcp-truncated");
    let rejects = dir.path("rejects.txt");
    let port = common::port_base();
    let spec = format!("tcp://127.0.0.1:{port}?clients=1");
    let child =
        job(&["--input", &spec, "--lateness", "1d", "--rejects", rejects.to_str().unwrap()]).spawn().unwrap();
    let mut client = connect(port);
    client.write_all(tx(1, T0, "1.00").as_bytes()).unwrap();
    // A whole record but for its newline: the connection ends before the line does.
    client.write_all(tx(2, T0 + 1, "2.00").trim_end().as_bytes()).unwrap();
    drop(client);
    let out = wait_within(child, Duration::from_secs(10), "job");
    assert!(out.status.success());
    let summary = String::from_utf8(out.stderr).unwrap();
    assert!(summary.contains("read 2 records, rejected 1, late 0"), "{summary}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains(",Books,1.00,1,1,1.00"), "{stdout}");
    let rejects = std::fs::read_to_string(&rejects).unwrap();
    assert!(rejects.starts_with("tcp:127.0.0.1:") && rejects.contains(":2: truncated: T2,"), "{rejects}");
}

#[test]
fn tail_rejects_an_over_long_line_written_in_two_writes_once() {
    let dir = TempDir::new("tail-overlong");
    let path = dir.path("app.csv");
    let rejects = dir.path("rejects.txt");
    let (first, last) = (tx(1, T0, "1.00"), tx(2, T0 + 1, "2.00"));
    std::fs::write(dir.path("first"), format!("{first}{}", "x".repeat(300))).unwrap();
    std::fs::write(dir.path("second"), format!("{}\n{last}", "y".repeat(20))).unwrap();
    let d = dir.0.display();
    // The over-long line's second write comes after the tail has read to the file's end.
    let script = format!("cat {d}/first > {d}/app.csv; sleep 0.4; cat {d}/second >> {d}/app.csv; sleep 0.1");
    let mut writer = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    let spec = format!("tail:{}?pid={}", path.display(), writer.id());
    let args = ["--input", &spec, "--max-line-bytes", "200", "--lateness", "1d"];
    let child = job(&[&args[..], &["--rejects", rejects.to_str().unwrap()]].concat()).spawn().unwrap();
    writer.wait().unwrap();
    let out = wait_within(child, Duration::from_secs(30), "job");
    let summary = String::from_utf8(out.stderr).unwrap();
    assert!(summary.contains("read 3 records, rejected 1, late 0"), "{summary}");
    let rejects = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(rejects.lines().count(), 1, "{rejects}");
    assert!(rejects.contains(":2: line too long (320 bytes)"), "{rejects}");
}

#[test]
fn tail_reads_the_file_its_writer_rotated_in_just_before_exiting() {
    let dir = TempDir::new("rotate-exit");
    let data = dir.path("data.csv");
    gen_transactions(&data, 4_000, 2, &["--days", "1", "--ordered"]);
    let (header, lines) = lines_of(&data);
    let path = dir.path("app.csv");
    let expected = run_ok("category_totals", &["--input", data.to_str().unwrap(), "--window", "1h", "-q"]);
    // The race is lost when the tail sees the rotation and the exit at once: try it a few times.
    for round in 0..3 {
        let _ = std::fs::remove_file(&path);
        std::fs::write(dir.path("first"), format!("{header}\n{}\n", lines[..2000].join("\n"))).unwrap();
        std::fs::write(dir.path("next"), format!("{header}\n{}\n", lines[2000..].join("\n"))).unwrap();
        let d = dir.0.display();
        let script = format!(
            "cat {d}/first > {d}/app.csv; sleep 0.3; mv {d}/app.csv {d}/app.csv.1; mv {d}/next {d}/app.csv"
        );
        let mut writer = Command::new("sh").args(["-c", &script]).spawn().unwrap();
        let spec = format!("tail:{}?pid={}", path.display(), writer.id());
        let child = job(&["--input", &spec, "--window", "1h"]).spawn().unwrap();
        writer.wait().unwrap();
        let out = wait_within(child, Duration::from_secs(30), "job");
        let summary = String::from_utf8(out.stderr).unwrap();
        assert!(summary.contains("read 4000 records, rejected 0, late 0"), "round {round}: {summary}");
        assert_eq!(String::from_utf8(out.stdout).unwrap(), expected, "round {round}");
    }
}

/// Bytes written to a pipe that its reader has not taken yet.
fn unread(pipe: &impl std::os::fd::AsRawFd) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through a valid pointer.
    assert_eq!(unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut n) }, 0);
    n
}

#[test]
fn a_clean_stop_during_stdin_input_drains_every_line_already_read() {
    let dir = TempDir::new("stop-drain");
    let data = dir.path("ordered.csv");
    // More than the intake channel holds, so batches are queued when the stop comes.
    gen_transactions(&data, 300_000, 8, &["--days", "1", "--ordered"]);
    let mut child =
        job(&["--input", "-", "--window", "1h", "--lateness", "1d"]).stdin(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&std::fs::read(&data).unwrap()).unwrap();
    // Every line has been taken from the pipe; stdin stays open, so only the stop ends it.
    let start = Instant::now();
    while unread(&stdin) > 0 && start.elapsed() < Duration::from_secs(30) {
        thread::sleep(Duration::from_millis(1));
    }
    signal(&child, "TERM");
    let out = wait_within(child, Duration::from_secs(60), "job");
    drop(stdin);
    assert_eq!(out.status.code(), Some(0));
    let summary = String::from_utf8(out.stderr).unwrap();
    assert!(summary.contains("read 300000 records, rejected 0, late 0"), "{summary}");
    let counted: i64 =
        csv_rows(&String::from_utf8(out.stdout).unwrap()).iter().map(|r| r[3].parse::<i64>().unwrap()).sum();
    assert_eq!(counted, 300_000);
}

/// Connects and tells whether the job refused the client (closed it unread) or kept it.
fn connect_or_refused(port: u16) -> Option<TcpStream> {
    let mut client = connect(port);
    client.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    match std::io::Read::read(&mut client, &mut [0u8; 1]) {
        Ok(0) => None,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            Some(client)
        }
        other => panic!("unexpected answer from the job: {other:?}"),
    }
}

#[test]
fn tcp_refuses_clients_over_max_connections_counts_them_and_keeps_listening() {
    let port = common::port_base();
    let spec = format!("tcp://127.0.0.1:{port}?clients=2&max-connections=1");
    let child = job(&["--input", &spec, "--lateness", "1d"]).spawn().unwrap();
    let mut first = connect_or_refused(port).expect("the first client is served");
    // While the first client is connected, the limit is reached: a second is refused.
    assert!(connect_or_refused(port).is_none(), "a client over the limit is refused");
    let mut refused = 1;
    first.write_all(tx(1, T0, "1.00").as_bytes()).unwrap();
    drop(first);
    // The listener is still there: once the first has gone, a client is served again.
    let mut second = loop {
        match connect_or_refused(port) {
            Some(client) => break client,
            None => refused += 1,
        }
        assert!(refused < 20, "the job keeps refusing clients");
    };
    second.write_all(tx(2, T0 + 1, "2.00").as_bytes()).unwrap();
    drop(second);
    let out = wait_within(child, Duration::from_secs(10), "job");
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("refused 127.0.0.1:") && stderr.contains("max-connections=1"), "{stderr}");
    assert!(stderr.contains("read 2 records, rejected 0, late 0"), "{stderr}");
    assert!(stderr.contains(&format!("; refused {refused} tcp connections")), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains(",Books,3.00,2,2,1.50"), "{stdout}");
}
