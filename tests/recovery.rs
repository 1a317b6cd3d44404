//! Recovery: `kill -9` a job at seeded random moments, start it again with the same
//! checkpoint folder, and its files end byte-identical to those of one uninterrupted
//! run, with the same counts in the summary.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TempDir, bin, gen_transactions, port_base};
use rand::{Rng, SeedableRng};

/// Rows of the kill-loop inputs.
const ROWS: u64 = 2_000_000;

/// A job, its arguments and its output files (`--flag`, file name).
struct Case {
    job: &'static str,
    args: Vec<String>,
    files: Vec<(&'static str, &'static str)>,
}

impl Case {
    fn new(job: &'static str, args: &[&str], files: &[(&'static str, &'static str)]) -> Case {
        Case { job, args: args.iter().map(|s| s.to_string()).collect(), files: files.to_vec() }
    }

    /// The command with its files under `dir`, named with `tag`, plus `extra`.
    fn command(&self, dir: &TempDir, tag: &str, extra: &[&str]) -> Command {
        let mut c = Command::new(bin(self.job));
        c.args(&self.args).args(extra).stdin(Stdio::null()).stdout(Stdio::null());
        for (flag, name) in &self.files {
            c.arg(flag).arg(dir.path(&format!("{tag}-{name}")));
        }
        c
    }

    /// Each output file's bytes.
    fn outputs(&self, dir: &TempDir, tag: &str) -> BTreeMap<&'static str, Vec<u8>> {
        self.files
            .iter()
            .map(|(_, name)| (*name, std::fs::read(dir.path(&format!("{tag}-{name}"))).unwrap()))
            .collect()
    }

    /// Runs to the end; returns the summary's counts.
    fn finish(&self, mut c: Command) -> String {
        let out = c.stderr(Stdio::piped()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{} failed: {stderr}", self.job);
        counts(&stderr)
    }
}

/// The summary's counts: `summary: read N records, rejected R, late L, wrote W rows`,
/// without the timing that follows.
fn counts(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("summary:"))
        .unwrap_or_else(|| panic!("no summary in {stderr}"));
    line.split(" in ").next().unwrap().to_owned()
}

/// Kills the job `kills` times at seeded random moments 50–500 ms after each start,
/// then lets it finish; its files and counts must equal those of an uninterrupted run.
/// A job that resumes from snapshots may finish before the moment drawn: its files must
/// then already be the uninterrupted run's, and the loop starts over from an empty
/// folder until it has killed `kills` runs.
fn kill_loop(dir: &TempDir, case: &Case, seed: u64, kills: usize) {
    let reference = case.finish(case.command(dir, "ref", &[]));
    let want = case.outputs(dir, "ref");
    let checkpoint = dir.path("checkpoint");
    let ck = ["--checkpoint", checkpoint.to_str().unwrap(), "--checkpoint-every", "100ms"];
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let (mut killed, mut runs) = (0, 0);
    while killed < kills {
        runs += 1;
        assert!(
            runs <= 4 * kills,
            "{}: only {killed} of {runs} runs were still running to be killed",
            case.job
        );
        let mut child = case.command(dir, "ck", &ck).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(50..=500)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        let status = child.wait().unwrap();
        assert!(status.success() || status.signal() == Some(9), "{}: {status}", case.job);
        if status.success() {
            let got = case.outputs(dir, "ck");
            for (name, bytes) in &want {
                assert!(
                    got[name] == *bytes,
                    "{} {:?}: {name} differs after {killed} kills",
                    case.job,
                    case.args
                );
            }
            std::fs::remove_dir_all(&checkpoint).unwrap();
        }
    }
    let resumed = case.finish(case.command(dir, "ck", &ck));
    assert_eq!(resumed, reference, "{}: summary counts", case.job);
    let got = case.outputs(dir, "ck");
    for (name, bytes) in &want {
        assert!(got[name] == *bytes, "{} {:?}: {name} differs after {killed} kills", case.job, case.args);
    }
}

/// A shuffled transactions file with three malformed lines among the rows.
fn transactions(dir: &TempDir, rows: u64, extra: &[&str]) -> String {
    let path = dir.path("tx.csv");
    gen_transactions(&path, rows, 5, extra);
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"not,a,row\nT1,C1,2025-01-01T00:00:00,Books,x,1,card,30\n\n").unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn category_totals_batch_windows_survive_kill_loops() {
    let dir = TempDir::new("recovery-ct-batch");
    let input = transactions(&dir, ROWS, &[]);
    let case = Case::new(
        "category_totals",
        &["--input", &input, "--window", "1h"],
        &[("--output", "out.csv"), ("--rejects", "rejects.txt")],
    );
    kill_loop(&dir, &case, 1, 10);
    assert!(!case.outputs(&dir, "ref")["rejects.txt"].is_empty());
}

#[test]
fn category_totals_incremental_with_late_records_survives_kill_loops() {
    let dir = TempDir::new("recovery-ct-incr");
    // Time-ordered with jitter and a short lateness: results and late records are
    // written and committed all along the run, not only at its end.
    let input = transactions(&dir, ROWS, &["--ordered", "--jitter", "2m"]);
    let args = ["--input", &input, "--mode", "incremental", "--epoch", "1h", "--lateness", "1m"];
    let case = Case::new(
        "category_totals",
        &args,
        &[("--output", "out.csv"), ("--rejects", "rejects.txt"), ("--late", "late.txt")],
    );
    kill_loop(&dir, &case, 2, 10);
    assert!(!case.outputs(&dir, "ref")["late.txt"].is_empty(), "the test needs late records");
}

#[test]
fn ip_counts_with_top_and_alerts_survives_kill_loops() {
    let dir = TempDir::new("recovery-ip");
    let log = dir.path("access.log");
    common::run_ok(
        "gen",
        &["access-log", "--rows", &ROWS.to_string(), "--seed", "3", "-o", log.to_str().unwrap()],
    );
    let args = ["--input", log.to_str().unwrap(), "--window", "1h", "--top", "5"];
    let case = Case::new(
        "ip_counts",
        &args,
        &[("--output", "out.csv"), ("--alerts", "alerts.csv"), ("--rejects", "rejects.txt")],
    );
    kill_loop(&dir, &case, 3, 10);
}

#[test]
fn fraud_signals_survives_kill_loops() {
    let dir = TempDir::new("recovery-fraud");
    let input = transactions(&dir, ROWS, &[]);
    let case = Case::new(
        "fraud_signals",
        &["--input", &input],
        &[("--output", "out.csv"), ("--rejects", "rejects.txt")],
    );
    kill_loop(&dir, &case, 4, 10);
}

#[test]
fn ecommerce_report_survives_kill_loops() {
    let dir = TempDir::new("recovery-report");
    let input = transactions(&dir, ROWS, &[]);
    let case = Case::new(
        "ecommerce_report",
        &["--input", &input],
        &[("--output", "out.csv"), ("--rejects", "rejects.txt")],
    );
    kill_loop(&dir, &case, 5, 10);
}

#[test]
fn a_job_killed_with_one_thread_resumes_with_three() {
    let dir = TempDir::new("recovery-rescale");
    let input = transactions(&dir, 400_000, &["--ordered", "--jitter", "2m"]);
    let args = ["--input", &input, "--window", "1h", "--lateness", "5m"];
    // The output alone: its commits are the only renames after the manifest's.
    let case = Case::new("category_totals", &args, &[("--output", "out.csv")]);
    let reference = case.finish(case.command(&dir, "ref", &[]));
    let checkpoint = dir.path("checkpoint");
    let ck = ["--checkpoint", checkpoint.to_str().unwrap(), "--checkpoint-every", "1ms"];
    // Killed at its second commit, so part of the output is in before the rescale; the
    // snapshots of one worker do not serve three, so the restart replays the input.
    let status = case
        .command(&dir, "ck", &[&ck[..], &["-w", "1"]].concat())
        .env("KAPPA_CRASH_AT", "renamed:3")
        .status()
        .unwrap();
    assert_eq!(status.signal(), Some(9));
    assert!(std::fs::metadata(dir.path("ck-out.csv")).unwrap().len() > 0);
    assert_eq!(case.finish(case.command(&dir, "ck", &[&ck[..], &["-w", "3"]].concat())), reference);
    assert!(case.outputs(&dir, "ck") == case.outputs(&dir, "ref"), "-w 1 then -w 3 differs from one run");
}

#[test]
fn a_crash_at_every_step_of_a_commit_resumes_to_the_same_bytes() {
    let dir = TempDir::new("recovery-points");
    let input = transactions(&dir, 200_000, &["--ordered", "--jitter", "2m"]);
    let args = ["--input", &input, "--mode", "incremental", "--epoch", "1h", "--lateness", "1m"];
    let case = Case::new("category_totals", &args, &[("--output", "out.csv"), ("--late", "late.txt")]);
    let reference = case.finish(case.command(&dir, "ref", &[]));
    for point in ["manifest", "append:2", "rename:3", "renamed:4", "append:7"] {
        let checkpoint = dir.path(&format!("checkpoint-{point}"));
        let ck = ["--checkpoint", checkpoint.to_str().unwrap(), "--checkpoint-every", "1ms"];
        let status = case.command(&dir, "ck", &ck).env("KAPPA_CRASH_AT", point).status().unwrap();
        assert_eq!(status.signal(), Some(9), "KAPPA_CRASH_AT={point} did not crash: {status}");
        assert_eq!(case.finish(case.command(&dir, "ck", &ck)), reference, "after a crash at {point}");
        assert!(
            case.outputs(&dir, "ck") == case.outputs(&dir, "ref"),
            "files differ after a crash at {point}"
        );
    }
}

/// Runs `case` with snapshots every 10 ms until `KAPPA_CRASH_AT=point` kills it, then
/// again to its end: files and counts must equal the uninterrupted run's (`reference`).
/// After a crash at `snapshotted:3`, the restart must resume from round 3.
fn crash_and_resume(dir: &TempDir, case: &Case, reference: &str, tag: &str, point: &str) {
    let checkpoint = dir.path(&format!("checkpoint-{tag}"));
    let ck = ["--checkpoint", checkpoint.to_str().unwrap(), "--checkpoint-every", "10ms"];
    let status = case.command(dir, "ck", &ck).env("KAPPA_CRASH_AT", point).status().unwrap();
    assert_eq!(status.signal(), Some(9), "{tag}: KAPPA_CRASH_AT={point} did not crash: {status}");
    let out = case.command(dir, "ck", &ck).stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{tag}: {stderr}");
    if point == "snapshotted:3" {
        // The third complete round: it is the one the restart reads.
        assert!(stderr.contains("resuming from the checkpoint's round 3"), "{tag}: {stderr}");
    }
    assert_eq!(counts(&stderr), reference, "{tag}: summary after the crash");
    assert!(case.outputs(dir, "ck") == case.outputs(dir, "ref"), "{tag}: files differ after the crash");
}

#[test]
fn a_restart_resumes_from_the_last_complete_snapshot_after_a_crash_at_any_step() {
    let dir = TempDir::new("recovery-snapshots");
    // Time-ordered with a short lateness: windows close, late records and rejects are
    // written all along, so each round holds open windows and pending rows.
    let input = transactions(&dir, 300_000, &["--ordered", "--jitter", "2m"]);
    let modes: [(&str, &[&str]); 2] = [
        ("batch", &["--window", "1h", "--lateness", "1m"]),
        ("incremental", &["--mode", "incremental", "--epoch", "1h", "--lateness", "1m"]),
    ];
    for (mode, args) in modes {
        let args = [&["--input", input.as_str()][..], args].concat();
        let files = [("--output", "out.csv"), ("--rejects", "rejects.txt"), ("--late", "late.txt")];
        let case = Case::new("category_totals", &args, &files);
        let reference = case.finish(case.command(&dir, "ref", &[]));
        // After a round is complete, in the middle of one, and while committing output.
        for point in ["snapshotted:3", "snapshot:5", "append:6", "renamed:9"] {
            crash_and_resume(&dir, &case, &reference, &format!("{mode}-{point}"), point);
        }
        assert!(!case.outputs(&dir, "ref")["late.txt"].is_empty(), "the test needs late records");
    }
}

#[test]
fn ip_counts_with_top_and_alerts_resumes_from_a_snapshot() {
    let dir = TempDir::new("recovery-ip-snapshots");
    let log = dir.path("access.log");
    let args = ["access-log", "--rows", "300000", "--seed", "7", "--ordered", "--jitter", "2m"];
    common::run_ok("gen", &[&args[..], &["-o", log.to_str().unwrap()]].concat());
    let args = ["--input", log.to_str().unwrap(), "--window", "1h", "--lateness", "1m", "--top", "5"];
    let files = [("--output", "out.csv"), ("--alerts", "alerts.csv"), ("--late", "late.txt")];
    let case = Case::new("ip_counts", &args, &files);
    let reference = case.finish(case.command(&dir, "ref", &[]));
    for point in ["snapshotted:3", "snapshot:4"] {
        crash_and_resume(&dir, &case, &reference, point, point);
    }
    assert!(!case.outputs(&dir, "ref")["alerts.csv"].is_empty(), "the test needs alerts");
}

#[test]
fn keyed_rules_and_whole_input_folds_resume_from_a_snapshot() {
    let dir = TempDir::new("recovery-keyed-snapshots");
    let input = transactions(&dir, 300_000, &["--ordered", "--jitter", "2m"]);
    // Two days with a burst every 50 rows: every cut finds customers mid-burst.
    let dense = dir.path("dense.csv");
    gen_transactions(
        &dense,
        300_000,
        6,
        &["--ordered", "--jitter", "2m", "--days", "2", "--burst-every", "50"],
    );
    let dense = dense.to_str().unwrap();
    let files = [("--output", "out.csv"), ("--rejects", "rejects.txt"), ("--late", "late.txt")];
    let cases = [
        // Velocity keeps each customer's recent transactions in the keyed operator.
        Case::new("fraud_signals", &["--input", dense, "--lateness", "1m"], &files),
        // The batch report folds the whole input; the incremental one keeps its sums after
        // differential, rebuilt from what the snapshot saved of the updates.
        Case::new("ecommerce_report", &["--input", &input, "--lateness", "1m"], &files),
        Case::new(
            "ecommerce_report",
            &["--input", &input, "--lateness", "1m", "--mode", "incremental"],
            &files,
        ),
    ];
    for (i, case) in cases.iter().enumerate() {
        let reference = case.finish(case.command(&dir, "ref", &[]));
        if case.job == "fraud_signals" {
            let alerts = String::from_utf8(case.outputs(&dir, "ref")["out.csv"].clone()).unwrap();
            assert!(alerts.contains(",velocity,"), "the test needs velocity alerts");
        }
        for point in ["snapshotted:3", "snapshot:4"] {
            crash_and_resume(&dir, case, &reference, &format!("{}-{i}-{point}", case.job), point);
        }
    }
}

#[test]
fn detectors_and_sensor_rules_resume_from_a_snapshot() {
    let dir = TempDir::new("recovery-detector-snapshots");
    let series = dir.path("series.csv");
    let series_args =
        ["series", "--rows", "200000", "--keys", "20", "--seed", "4", "-o", series.to_str().unwrap()];
    common::run_ok("gen", &series_args);
    let (readings, meta, rules) = (dir.path("readings.csv"), dir.path("meta.csv"), dir.path("rules.txt"));
    let sensors = ["sensors", "--sensors", "20", "--rows", "200000", "--seed", "5", "--interval", "2s"];
    let files = ["--metadata", meta.to_str().unwrap(), "-o", readings.to_str().unwrap()];
    common::run_ok("gen", &[&sensors[..], &files].concat());
    std::fs::write(&rules, "hot critical temperature > 30 for 6s\njump info vibration rate > 1 per 1s\n")
        .unwrap();
    let outputs = [("--output", "out.csv"), ("--alerts", "alerts.csv"), ("--rejects", "rejects.txt")];
    let cases = [
        // Each key's detector (its windows and hypotheses) lives in the keyed operator.
        Case::new("anomalies", &["--input", series.to_str().unwrap()], &outputs),
        Case::new("anomalies", &["--input", series.to_str().unwrap(), "--detector", "gaussian"], &outputs),
        // Rules' episodes per sensor, and windows of four sizes.
        Case::new(
            "sensor_stats",
            &[
                "--input",
                readings.to_str().unwrap(),
                "--sensors",
                meta.to_str().unwrap(),
                "--rules",
                rules.to_str().unwrap(),
            ],
            &outputs,
        ),
    ];
    for (i, case) in cases.iter().enumerate() {
        let reference = case.finish(case.command(&dir, "ref", &[]));
        assert!(!case.outputs(&dir, "ref")["alerts.csv"].is_empty(), "{}: the test needs alerts", case.job);
        for point in ["snapshotted:3", "snapshot:4"] {
            crash_and_resume(&dir, case, &reference, &format!("{}-{i}-{point}", case.job), point);
        }
    }
}

#[test]
fn a_generator_resumes_from_a_snapshot_at_its_next_row() {
    let dir = TempDir::new("recovery-gen-snapshots");
    let args = ["--input", "gen:transactions?count=400000&seed=9", "--window", "1h", "-w", "2"];
    let case = Case::new("category_totals", &args, &[("--output", "out.csv")]);
    let reference = case.finish(case.command(&dir, "ref", &[]));
    crash_and_resume(&dir, &case, &reference, "gen", "snapshotted:3");
}

#[test]
fn two_processes_restarted_by_the_launch_script_resume() {
    let dir = TempDir::new("recovery-cluster");
    let input = transactions(&dir, ROWS, &["--ordered", "--jitter", "2m"]);
    let out = dir.path("out.csv");
    // A lateness beyond the jitter: no record is late, so no record's fate depends on
    // where the file is split between the processes.
    let args = ["--input", &input, "--window", "1h", "--lateness", "5m"];
    let reference = common::run_ok("category_totals", &args);
    let checkpoint = dir.path("checkpoint");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/local-cluster.sh");
    let mut cluster = Command::new(script)
        .args(["--restart", "2", "2", "--", bin("category_totals").to_str().unwrap()])
        .args(args)
        .args(["-w", "1", "--port-base", &port_base().to_string(), "--output", out.to_str().unwrap()])
        .args(["--checkpoint", checkpoint.to_str().unwrap(), "--checkpoint-every", "100ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `local-cluster: started 2 processes: pids P0 P1`: kill P1 in the middle of the run.
    let mut log = BufReader::new(cluster.stderr.take().unwrap());
    let mut seen = String::new();
    let pids = loop {
        let mut line = String::new();
        assert!(log.read_line(&mut line).unwrap() > 0, "no pids in {seen}");
        seen.push_str(&line);
        if let Some(p) = line.strip_prefix("local-cluster: started 2 processes: pids ") {
            break p.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        }
    };
    std::thread::sleep(Duration::from_millis(400));
    Command::new("kill").args(["-9", &pids[1]]).status().unwrap();
    let rest = std::thread::spawn(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut log, &mut rest).unwrap();
        rest
    });
    let status = cluster.wait().unwrap();
    let rest = rest.join().unwrap();
    assert!(status.success(), "{seen}{rest}");
    assert!(rest.contains("restarting all 2 processes"), "process 1 was not killed mid-run: {rest}");
    let got = std::fs::read_to_string(&out).unwrap();
    assert!(
        got == reference,
        "-n 2 after a restart: {} bytes, uninterrupted -n 1: {}",
        got.len(),
        reference.len()
    );
}

/// Sends `text` to `port` as one client, retrying until the job listens.
fn send(port: u16, text: &str) {
    let mut stream = common::connect(port);
    stream.write_all(text.as_bytes()).unwrap();
}

/// The arguments of the tcp recovery tests' job.
const TCP_ARGS: [&str; 4] = ["--window", "1h", "--lateness", "10m"];

/// A time-ordered transactions file of `rows` rows, as text, and the job's output over it.
fn ordered(dir: &TempDir, rows: u64, seed: u64) -> (String, String) {
    let path = dir.path("tx.csv");
    gen_transactions(&path, rows, seed, &["--ordered", "--jitter", "1m"]);
    let reference =
        common::run_ok("category_totals", &[&["--input", path.to_str().unwrap()][..], &TCP_ARGS].concat());
    (std::fs::read_to_string(&path).unwrap(), reference)
}

/// The job over two tcp clients on `port`, writing `out.csv` with the checkpoint
/// folder `checkpoint` in `dir`, with `extra` arguments.
fn tcp_job(dir: &TempDir, port: u16, extra: &[&str]) -> Command {
    let mut c = Command::new(bin("category_totals"));
    c.args(["--input", &format!("tcp://127.0.0.1:{port}?clients=2")])
        .args(TCP_ARGS)
        .arg("--output")
        .arg(dir.path("out.csv"))
        .arg("--checkpoint")
        .arg(dir.path("checkpoint"))
        .args(extra)
        .stdin(Stdio::null());
    c
}

#[test]
fn tcp_lines_are_journaled_so_clients_resend_nothing() {
    let dir = TempDir::new("recovery-tcp");
    let (text, reference) = ordered(&dir, 40_000, 8);
    let lines: Vec<&str> = text.lines().collect();
    let half = lines.len() / 2;
    let (first, second) = (lines[..half].join("\n") + "\n", lines[half..].join("\n") + "\n");
    let port = port_base();
    let (out, checkpoint) = (dir.path("out.csv"), dir.path("checkpoint"));
    let start = || tcp_job(&dir, port, &["-q", "--checkpoint-every", "50ms"]).spawn().unwrap();
    let mut job = start();
    send(port, &first);
    // Wait until the first client's windows are committed, then kill the job.
    let commit = checkpoint.join("p0/commit-output");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !commit.exists() {
        assert!(Instant::now() < deadline, "no commit within a minute");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    job.kill().unwrap();
    job.wait().unwrap();
    let mut job = start();
    send(port, &second);
    assert!(job.wait().unwrap().success());
    let got = std::fs::read_to_string(&out).unwrap();
    assert!(got == reference, "tcp after a restart: {} bytes, file: {}", got.len(), reference.len());
}

#[test]
fn a_checkpoint_of_other_options_or_stdout_results_is_a_usage_error() {
    let dir = TempDir::new("recovery-usage");
    let checkpoint = dir.path("checkpoint");
    let out = dir.path("out.csv");
    let (ck, out) = (checkpoint.to_str().unwrap(), out.to_str().unwrap());
    let input = "gen:transactions?count=1000&seed=1";
    common::run_ok("category_totals", &["--input", input, "--output", out, "--checkpoint", ck]);
    let other = common::run(
        "category_totals",
        &["--input", input, "--window", "1h", "--output", out, "--checkpoint", ck],
    );
    assert_eq!(other.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(
        stderr.contains("belongs to `category_totals --input") && stderr.lines().count() == 1,
        "{stderr}"
    );
    let stdout =
        common::run("category_totals", &["--input", input, "--checkpoint", dir.path("c2").to_str().unwrap()]);
    assert_eq!(stdout.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&stdout.stderr).contains("use --output FILE"));
}

#[test]
fn a_journaled_stdin_job_run_again_with_an_empty_stdin_writes_the_same_files() {
    let dir = TempDir::new("recovery-stdin");
    let path = dir.path("tx.csv");
    gen_transactions(&path, 50_000, 4, &["--ordered", "--jitter", "1m"]);
    let args = ["--input", "-", "--window", "1h", "--lateness", "10m"];
    let case = Case::new("category_totals", &args, &[("--output", "out.csv"), ("--late", "late.txt")]);
    let from = |tag: &str, extra: &[&str], stdin: Stdio| {
        let mut c = case.command(&dir, tag, extra);
        c.stdin(stdin);
        case.finish(c)
    };
    let reference = from("ref", &[], std::fs::File::open(&path).unwrap().into());
    let checkpoint = dir.path("checkpoint");
    let ck = ["--checkpoint", checkpoint.to_str().unwrap(), "--checkpoint-every", "10ms"];
    let first = from("ck", &ck, std::fs::File::open(&path).unwrap().into());
    assert_eq!(first, reference);
    // Everything the first run read is in the journal: the same files and counts again.
    let again = from("ck", &ck, Stdio::null());
    assert_eq!(again, reference);
    assert!(case.outputs(&dir, "ck") == case.outputs(&dir, "ref"), "the journal reproduces the output");
}

/// The bytes of the journal's segments in a process's checkpoint folder, and whether it
/// still has its first (round 0).
fn journal(folder: &Path) -> (u64, bool) {
    let mut bytes = 0;
    let mut first = false;
    for entry in std::fs::read_dir(folder).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("journal-") {
            bytes += entry.metadata().unwrap().len();
            first |= name == "journal-0";
        }
    }
    (bytes, first)
}

#[test]
fn tcp_input_resumes_from_a_snapshot_and_its_journal_keeps_only_what_came_after() {
    let dir = TempDir::new("recovery-tcp-snapshots");
    let (text, reference) = ordered(&dir, 120_000, 9);
    let lines: Vec<&str> = text.lines().collect();
    let half = lines.len() / 2;
    let port = port_base();
    let (out, checkpoint) = (dir.path("out.csv"), dir.path("checkpoint"));
    let start = || {
        let mut job = tcp_job(&dir, port, &["--checkpoint-every", "10ms", "-w", "2"]);
        job.stderr(Stdio::piped()).spawn().unwrap()
    };
    let mut job = start();
    // The first client sends its half in pieces, so that the job reads it over many rounds.
    let mut client = common::connect(port);
    for piece in lines[..half].chunks(5_000) {
        client.write_all((piece.join("\n") + "\n").as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    // Kill the job once it has journaled the last line sent, a round is complete and
    // the journal before it is dropped.
    let folder = checkpoint.join("p0");
    let deadline = Instant::now() + Duration::from_secs(60);
    let sent = (lines[..half].iter().map(|l| l.len() + 1).sum::<usize>()) as u64;
    let last = lines[half - 1].as_bytes();
    let has_last = || {
        std::fs::read_dir(&folder).unwrap().any(|e| {
            let e = e.unwrap();
            e.file_name().to_string_lossy().starts_with("journal-")
                && std::fs::read(e.path()).is_ok_and(|b| b.windows(last.len()).any(|w| w == last))
        })
    };
    loop {
        let (bytes, first) = journal(&folder);
        if !first && bytes > 0 && has_last() {
            assert!(bytes < sent, "the journal holds {bytes} bytes of the {sent} sent");
            break;
        }
        assert!(Instant::now() < deadline, "the journal was never cut back");
        std::thread::sleep(Duration::from_millis(20));
    }
    job.kill().unwrap();
    job.wait().unwrap();
    drop(client);

    let job = start();
    send(port, &(lines[half..].join("\n") + "\n"));
    let done = job.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{stderr}");
    assert!(stderr.contains("resuming from the checkpoint's round"), "{stderr}");
    let got = std::fs::read_to_string(&out).unwrap();
    assert!(got == reference, "tcp after a restart: {} bytes, file: {}", got.len(), reference.len());

    // What the journal dropped is only in the snapshots of two workers: another -w cannot
    // resume, and says which can.
    let other = tcp_job(&dir, port, &["-w", "3"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert_eq!(other.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("resume it with -w 2") && stderr.lines().count() == 1, "{stderr}");
}

/// Every file under `folder` by relative name, with its bytes.
fn tree(folder: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut all = BTreeMap::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            all.extend(tree(&path).into_iter().map(|(inner, bytes)| (format!("{name}/{inner}"), bytes)));
        } else {
            all.insert(name, std::fs::read(&path).unwrap());
        }
    }
    all
}

#[test]
fn the_pipeline_and_its_join_of_hourly_plays_resume_from_a_snapshot() {
    let dir = TempDir::new("recovery-pipeline-snapshots");
    let input = dir.path("playback.jsonl");
    let args = ["playback", "--rows", "200000", "--seed", "5", "--days", "2", "--ordered", "--jitter", "1m"];
    common::run_ok("gen", &[&args[..], &["-o", input.to_str().unwrap()]].concat());
    // Every stream to a file of its own, the events to hour partitions.
    let routes = |tag: &str| {
        let out = dir.path(tag);
        let o = out.display();
        let text = format!(
            "events = [\"dir:{o}/events\"]\ndead_letters = [\"file:{o}/dead.csv\"]\n\
             viewers = [\"file:{o}/viewers.csv\"]\ndevices = [\"file:{o}/devices.csv\"]\n\
             buffering = [\"file:{o}/buffering.csv\"]\nalerts = [\"file:{o}/alerts.csv\"]\n\
             top_titles = [\"file:{o}/top.csv\"]\n"
        );
        std::fs::create_dir_all(&out).unwrap();
        let path = dir.path(&format!("{tag}.toml"));
        std::fs::write(&path, text).unwrap();
        (out, path)
    };
    let job = |routes: &Path, extra: &[&str]| {
        let mut c = Command::new(bin("pipeline"));
        c.args(["--input", input.to_str().unwrap(), "--lateness", "1m", "-w", "2", "--routes"]);
        c.arg(routes).args(extra).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        c
    };
    let (reference_out, reference_routes) = routes("ref");
    let done = job(&reference_routes, &[]).output().unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let reference = counts(&String::from_utf8_lossy(&done.stderr));
    let expected = tree(&reference_out);
    let top = String::from_utf8_lossy(&expected["top.csv"]).lines().count();
    assert!(top > 200, "the test needs top titles of many hours: {top} rows");
    for point in ["snapshotted:3", "snapshot:4"] {
        let tag = format!("ck-{}", point.replace(':', "-"));
        let (out, routes) = routes(&tag);
        let checkpoint = dir.path(&format!("checkpoint-{tag}"));
        let ck = ["--checkpoint", checkpoint.to_str().unwrap(), "--checkpoint-every", "10ms"];
        let status = job(&routes, &ck).env("KAPPA_CRASH_AT", point).status().unwrap();
        assert_eq!(status.signal(), Some(9), "KAPPA_CRASH_AT={point} did not crash: {status}");
        let done = job(&routes, &ck).output().unwrap();
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert!(done.status.success(), "{point}: {stderr}");
        if point == "snapshotted:3" {
            assert!(stderr.contains("resuming from the checkpoint's round 3"), "{stderr}");
        }
        assert_eq!(counts(&stderr), reference, "{point}: summary after the crash");
        let got = tree(&out);
        assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "{point}");
        for (name, bytes) in &expected {
            assert!(&got[name] == bytes, "{point}: {name} differs after the crash");
        }
    }
}

/// The latest complete snapshot round in a process's checkpoint folder.
fn latest_snapshot(folder: &Path) -> Option<u64> {
    std::fs::read_dir(folder)
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let round = e.file_name().to_string_lossy().strip_prefix("snap-")?.parse().ok()?;
            e.path().join("complete").exists().then_some(round)
        })
        .max()
}

/// Appends `lines` to `path` in pieces, so that the job reads them over many rounds.
fn append_slowly(path: &Path, lines: &[&str]) {
    let mut file = std::fs::OpenOptions::new().append(true).create(true).open(path).unwrap();
    for piece in lines.chunks(5_000) {
        file.write_all((piece.join("\n") + "\n").as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// Waits until a round after `after` is complete in `folder`, and returns it.
fn snapshot_after(folder: &Path, after: Option<u64>) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match latest_snapshot(folder) {
            Some(round) if Some(round) > after && round >= 2 => return round,
            _ => assert!(Instant::now() < deadline, "no round after {after:?} was completed"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_tail_input_resumes_at_its_file_and_offset_also_when_rotated_away_while_down() {
    let dir = TempDir::new("recovery-tail-snapshots");
    let (text, reference) = ordered(&dir, 120_000, 11);
    let (header, rest) = text.split_once('\n').unwrap();
    let lines: Vec<&str> = rest.lines().collect();
    let (a, b) = (lines.len() * 2 / 5, lines.len() * 7 / 10);
    let path = dir.path("app.csv");
    std::fs::write(&path, format!("{header}\n")).unwrap();
    let mut writer = Command::new("sleep").arg("600").spawn().unwrap();
    let spec = format!("tail:{}?pid={}", path.display(), writer.id());
    let start = || {
        let mut c = Command::new(bin("category_totals"));
        c.args(["--input", &spec]).args(TCP_ARGS).arg("--output").arg(dir.path("out.csv"));
        c.arg("--checkpoint").arg(dir.path("checkpoint")).args(["--checkpoint-every", "10ms", "-w", "2"]);
        c.stdin(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
    };
    let folder = dir.path("checkpoint").join("p0");

    // Killed while following the file, resumed in it at the restored round's offset: a
    // replay from its start would count its first lines twice.
    let mut job = start();
    append_slowly(&path, &lines[..a]);
    let first = snapshot_after(&folder, None);
    job.kill().unwrap();
    job.wait().unwrap();
    let mut job = start();
    append_slowly(&path, &lines[a..b]);
    snapshot_after(&folder, Some(first));
    job.kill().unwrap();
    job.wait().unwrap();

    // Rotated while the job is down: the rest of the old file is found by its identity
    // in the folder and read before the new one. The writer has gone, so the input ends.
    std::fs::rename(&path, dir.path("app.csv.1")).unwrap();
    std::fs::write(dir.path("app.csv.tmp"), format!("{header}\n{}\n", lines[b..].join("\n"))).unwrap();
    std::fs::rename(dir.path("app.csv.tmp"), &path).unwrap();
    writer.kill().unwrap();
    writer.wait().unwrap();
    let done = start().wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{stderr}");
    assert!(stderr.contains("resuming from the checkpoint's round"), "{stderr}");
    assert!(stderr.contains("rejected 0, late 0"), "{stderr}");
    let got = std::fs::read_to_string(dir.path("out.csv")).unwrap();
    assert!(got == reference, "tail after two restarts: {} bytes, file: {}", got.len(), reference.len());
}

#[test]
fn a_job_that_fails_to_start_claims_no_checkpoint_and_a_missing_flag_is_named() {
    let dir = TempDir::new("recovery-start");
    let checkpoint = dir.path("checkpoint");
    let ck = checkpoint.to_str().unwrap();
    let input = "gen:transactions?count=1000&seed=1";
    let bad = common::run(
        "category_totals",
        &["--input", input, "--output", "/nonexistent/out.csv", "--checkpoint", ck],
    );
    assert_eq!(bad.status.code(), Some(2));
    // The corrected command may use the folder.
    let out = dir.path("out.csv");
    common::run_ok(
        "category_totals",
        &["--input", input, "--output", out.to_str().unwrap(), "--checkpoint", ck],
    );
    let lone = common::run("category_totals", &["--checkpoint-every", "1s"]);
    assert_eq!(lone.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&lone.stderr);
    assert!(stderr.contains("--checkpoint <DIR>") && stderr.lines().count() == 1, "{stderr}");
}
