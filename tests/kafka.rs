//! Kafka input and output against a real broker (Tansu), each test starting its own on a
//! free loopback port: `?until=end` runs byte-identical to the file run over 1, 3 and 8
//! partitions and several `-w`/`-n`, rejects that name partition and offset, results
//! written to a topic and read back, the delivery check against an injected drop and
//! duplicate, and a Kafka-to-Kafka job killed with `kill -9` that leaves every row in
//! its output topic exactly once.
//!
//! The broker binary is `$KAPPA_TANSU`, else `~/.cache/kappa/tansu/bin/tansu`, else
//! `tansu` on the PATH. Without one the tests skip with a message; under CI
//! (`CI=true`) they fail.

mod common;

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TempDir, run, run_ok};
use kappa::sink::kafka::{PROGRESS_KEY, TopicProducer, TopicUrl};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// A Tansu broker on a free loopback port, stopped when dropped.
struct Broker {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Broker {
    /// Starts a broker, or `None` (skip) when there is no binary outside CI.
    fn start() -> Option<Broker> {
        let Some(binary) = tansu() else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "no tansu binary ($KAPPA_TANSU, ~/.cache/kappa/tansu/bin/tansu, PATH): .ci/run must install it"
            );
            eprintln!(
                "skipped: no Kafka broker (install tansu 0.6.0, see docs/kafka.md, or set KAPPA_TANSU)"
            );
            return None;
        };
        // An empty working folder: tansu reads `.env` from it.
        let dir = TempDir::new("tansu");
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&binary)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .current_dir(&dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path("tansu.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let broker = Broker { child, port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port} within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(broker)
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `kafka://ADDRESS/TOPIC`.
    fn url(&self, topic: &str) -> String {
        format!("kafka://{}/{topic}", self.address())
    }

    /// Publishes a file's lines (not its CSV header) to `topic` with `partitions`.
    fn publish(&self, topic: &str, partitions: u32, lines: &[String]) {
        let producer = TopicProducer::open(&topic_url(&self.url(topic)), partitions).unwrap();
        for (i, line) in lines.iter().enumerate() {
            producer.send((i % partitions as usize) as i32, None, line.as_bytes()).unwrap();
        }
        producer.sync().unwrap();
    }

    /// Every message of partition 0 of `topic`, as (key, value), read to its end.
    fn read(&self, topic: &str) -> Vec<(Vec<u8>, String)> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.address())
            .set("group.id", "kappa-test-reader")
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
        consumer.assign(&list).unwrap();
        let mut out = Vec::new();
        let mut last = Instant::now();
        // Until nothing more comes for a second (Tansu's end offsets are not exact).
        while last.elapsed() < Duration::from_secs(1) {
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                let m = m.unwrap();
                let value = String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap();
                out.push((m.key().unwrap_or_default().to_vec(), value));
                last = Instant::now();
            }
        }
        out
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn topic_url(text: &str) -> TopicUrl {
    TopicUrl::parse(text).unwrap().unwrap()
}

/// The tansu binary, if there is one.
fn tansu() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KAPPA_TANSU") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    let cached = home.join(".cache/kappa/tansu/bin/tansu");
    if cached.is_file() {
        return Some(cached);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join("tansu")).find(|p| p.is_file())
}

/// The data lines of a generated file (its CSV header dropped).
fn data_lines(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().filter(|l| !l.starts_with("transaction_id,")).map(str::to_owned).collect()
}

/// Generates `rows` of `kind` into `dir/kind.txt`.
fn generate(dir: &TempDir, kind: &str, rows: u64, extra: &[&str]) -> PathBuf {
    let path = dir.path(&format!("{kind}.txt"));
    let rows = rows.to_string();
    let mut args = vec![kind, "--rows", &rows, "--seed", "3", "-o", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    run_ok("gen", &args);
    path
}

#[test]
fn until_end_gives_the_file_runs_bytes_over_1_3_and_8_partitions() {
    let Some(broker) = Broker::start() else { return };
    let dir = TempDir::new("kafka-until-end");
    let jobs = [
        ("category_totals", "transactions", vec!["--window", "1d"]),
        ("ip_counts", "access-log", vec!["--window", "1h", "--top", "3"]),
        ("event_counts", "clicks", vec!["--window", "6h"]),
    ];
    for (job, kind, args) in &jobs {
        let file = generate(&dir, kind, 20_000, &[]);
        let expected = run_ok(job, &[&["--input", file.to_str().unwrap(), "-q"], &args[..]].concat());
        let lines = data_lines(&file);
        for partitions in [1u32, 3, 8] {
            let topic = format!("{job}-{partitions}");
            // Published by `gen` itself: its producer batches many records per request,
            // the case where Tansu's end offsets fall short.
            let rows = lines.len().to_string();
            let url = broker.url(&topic);
            let p = partitions.to_string();
            run_ok("gen", &[kind, "--rows", &rows, "--seed", "3", "--publish", &url, "--partitions", &p]);
            let input = format!("{url}?group=g&until=end");
            for workers in ["1", "2"] {
                let got = run_ok(job, &[&["--input", &input, "-q", "-w", workers], &args[..]].concat());
                assert!(
                    got == expected,
                    "{job} over {partitions} partitions, -w {workers}:\n{got}\nvs\n{expected}"
                );
            }
            if partitions == 3 {
                let got = common::two_processes(job, &[&["--input", &input, "-q"], &args[..]].concat());
                assert!(got == expected, "{job} over {partitions} partitions, -n 2");
            }
        }
    }
}

#[test]
fn bad_payloads_are_rejected_naming_partition_and_offset() {
    let Some(broker) = Broker::start() else { return };
    let dir = TempDir::new("kafka-rejects");
    let file = generate(&dir, "transactions", 10, &[]);
    let mut lines = data_lines(&file);
    lines.insert(4, "not,a,transaction".into());
    lines.insert(7, String::new());
    broker.publish("bad", 2, &lines);
    let rejects = dir.path("rejects.txt");
    let input = format!("{}?group=g&until=end", broker.url("bad"));
    let out = run_ok("category_totals", &["--input", &input, "-q", "--rejects", rejects.to_str().unwrap()]);
    // Line 4 went to partition 0 as its third record (offset 2), line 7 to partition 1
    // as its fourth (offset 3).
    let origin = |p: u32| format!("{}/{p}", broker.url("bad"));
    let text = std::fs::read_to_string(&rejects).unwrap();
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(got.len(), 2, "{text}");
    assert!(got[0].starts_with(&format!("{}:2: ", origin(0))), "{text}");
    assert!(got[0].ends_with(": not,a,transaction"), "{text}");
    assert_eq!(got[1], format!("{}:3: empty line: ", origin(1)));
    let expected = run_ok("category_totals", &["--input", file.to_str().unwrap(), "-q"]);
    assert_eq!(out, expected, "the ten good rows count as in the file run");
}

#[test]
fn results_written_to_a_topic_read_back_as_the_file_output() {
    let Some(broker) = Broker::start() else { return };
    let dir = TempDir::new("kafka-sink");
    let file = generate(&dir, "transactions", 20_000, &[]);
    let input = file.to_str().unwrap();
    let expected = run_ok("category_totals", &["--input", input, "-q", "--window", "1d"]);
    let out = broker.url("totals");
    run_ok("category_totals", &["--input", input, "-q", "--window", "1d", "--output", &out]);
    let messages = broker.read("totals");
    let rows: Vec<&str> =
        messages.iter().filter(|(k, _)| k != PROGRESS_KEY).map(|(_, v)| v.as_str()).collect();
    let want: Vec<&str> = expected.lines().skip(1).collect();
    assert_eq!(rows, want);
    // Keyed by category; one progress record per completed time (30 days + 1).
    assert_eq!(messages[0].0, want[0].split(',').nth(1).unwrap().as_bytes());
    let progress = messages.iter().filter(|(k, _)| k == PROGRESS_KEY).count();
    let times = want.iter().map(|l| l.split(',').next().unwrap()).collect::<std::collections::BTreeSet<_>>();
    assert_eq!(progress, times.len());
    assert_eq!(messages.last().unwrap().0, PROGRESS_KEY, "the last time ends with its progress record");
}

#[test]
fn the_delivery_check_catches_a_dropped_and_a_duplicated_message() {
    let Some(broker) = Broker::start() else { return };
    let dir = TempDir::new("kafka-delivery");
    let file = generate(&dir, "clicks", 5_000, &[]);
    let lines = data_lines(&file);
    let n = lines.len().to_string();
    let check = |topic: &str, lines: &[String]| {
        broker.publish(topic, 3, lines);
        let input = format!("{}?group=g&until=end", broker.url(topic));
        run("event_counts", &["--input", &input, "--produced", &n])
    };
    let ok = check("clean", &lines);
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("delivery: {n} records in = {n} processed + 0 rejected + 0 late: ok")),
        "{stderr}"
    );
    let mut dropped = lines.clone();
    dropped.remove(1234);
    let lost = check("dropped", &dropped);
    let stderr = String::from_utf8_lossy(&lost.stderr);
    assert_eq!(lost.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("1 record(s) lost"), "{stderr}");
    let mut doubled = lines.clone();
    doubled.insert(99, lines[98].clone());
    let twice = check("doubled", &doubled);
    let stderr = String::from_utf8_lossy(&twice.stderr);
    assert_eq!(twice.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("1 record(s) delivered twice"), "{stderr}");
}

#[test]
fn a_kafka_to_kafka_job_killed_and_restarted_writes_every_row_once() {
    let Some(broker) = Broker::start() else { return };
    let dir = TempDir::new("kafka-kill");
    // Time-ordered, with a lateness: windows close all along, so rows are written
    // (and progress records made) throughout the run, not only at its end.
    let file = generate(&dir, "transactions", 300_000, &["--ordered", "--days", "60"]);
    let args = ["--window", "1h", "--lateness", "1m", "-q"];
    let expected = run_ok("category_totals", &[&["--input", file.to_str().unwrap()], &args[..]].concat());
    broker.publish("in", 1, &data_lines(&file));
    let input = format!("{}?group=g&until=end", broker.url("in"));
    let checkpoint = dir.path("checkpoint");
    let command = || {
        let mut c = Command::new(common::bin("category_totals"));
        c.args(["--input", &input, "--output", &broker.url("out")])
            .args(["--checkpoint", checkpoint.to_str().unwrap(), "--checkpoint-every", "50ms"])
            .args(args)
            .stdin(Stdio::null());
        c
    };
    // Killed with SIGKILL after a time's rows are delivered but before its progress
    // record: the restart must skip exactly those rows, read back from the topic.
    let status =
        command().env("KAPPA_CRASH_AT", "progress:100").stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert_eq!(status.unwrap().signal(), Some(9), "KAPPA_CRASH_AT=progress:100");
    let written = broker.read("out");
    let last_progress = written.iter().rposition(|(k, _)| k == PROGRESS_KEY).expect("progress records");
    assert!(
        last_progress + 1 < written.len(),
        "rows after the last progress record, so the skip is exercised"
    );
    // Then inside the sink (its third commit: rows and progress records handed to the
    // producer, some delivered, some not), then once after a second.
    let status =
        command().env("KAPPA_CRASH_AT", "append:3").stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert_eq!(status.unwrap().signal(), Some(9), "KAPPA_CRASH_AT=append:3");
    let mut child = command().stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let _ = child.kill();
    child.wait().unwrap();
    let killed = 4;
    let last = command().output().unwrap();
    assert!(last.status.success(), "{}", String::from_utf8_lossy(&last.stderr));
    let rows: Vec<String> =
        broker.read("out").into_iter().filter(|(k, _)| k != PROGRESS_KEY).map(|(_, v)| v).collect();
    let want: Vec<&str> = expected.lines().skip(1).collect();
    assert_eq!(rows.len(), want.len(), "rows in the output topic after {killed} kills");
    assert!(rows.iter().zip(&want).all(|(a, b)| a == b), "rows differ after {killed} kills");
}

#[test]
fn a_kafka_job_resumes_from_a_snapshot_and_its_journal_keeps_only_later_rounds() {
    let Some(broker) = Broker::start() else { return };
    let dir = TempDir::new("kafka-snapshots");
    let file = generate(&dir, "transactions", 300_000, &["--ordered", "--days", "60"]);
    let args = ["--window", "1h", "--lateness", "1m"];
    let expected =
        run_ok("category_totals", &[&["--input", file.to_str().unwrap(), "-q"], &args[..]].concat());
    // Four partitions on two workers: the watermark is the least over the partitions.
    broker.publish("snap-in", 4, &data_lines(&file));
    let input = format!("{}?group=g&until=end", broker.url("snap-in"));
    let (out, checkpoint) = (dir.path("out.csv"), dir.path("checkpoint"));
    let command = || {
        let mut c = Command::new(common::bin("category_totals"));
        c.args(["--input", &input, "--output", out.to_str().unwrap(), "-w", "2"])
            .args(["--checkpoint", checkpoint.to_str().unwrap(), "--checkpoint-every", "10ms"])
            .args(args)
            .stdin(Stdio::null());
        c
    };
    // After the eighth complete round; then at the first round the restarted job
    // completes, which must not take the first run's positions for its own.
    for point in ["snapshotted:8", "snapshotted:1"] {
        let status =
            command().env("KAPPA_CRASH_AT", point).stdout(Stdio::null()).stderr(Stdio::null()).status();
        assert_eq!(status.unwrap().signal(), Some(9), "KAPPA_CRASH_AT={point}");
    }
    let last = command().output().unwrap();
    let stderr = String::from_utf8_lossy(&last.stderr);
    assert!(last.status.success(), "{stderr}");
    assert!(stderr.contains("resuming from the checkpoint's round"), "{stderr}");
    let got = std::fs::read_to_string(&out).unwrap();
    assert!(
        got == expected,
        "after a restart from a snapshot: {} bytes, file run: {}",
        got.len(),
        expected.len()
    );
    assert!(!checkpoint.join("p0/journal-0").exists(), "the journal before the latest round is deleted");
}

#[test]
fn an_unreachable_broker_is_a_one_line_usage_error() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let input = format!("kafka://127.0.0.1:{port}/t?group=g");
    let out = run("category_totals", &["--input", &input]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let out = run("category_totals", &["--input", "kafka://127.0.0.1:1/t"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("?group=NAME"));
}

#[test]
fn a_pipeline_route_to_a_topic_holds_the_rows_of_its_file_route() {
    let Some(broker) = Broker::start() else { return };
    let dir = TempDir::new("kafka-route");
    let input = generate(&dir, "playback", 5_000, &[]);
    let file = dir.path("devices.csv");
    let routes = dir.path("routes.toml");
    let topic = broker.url("devices");
    std::fs::write(&routes, format!("devices = [\"file:{}\", \"{topic}\"]\n", file.display())).unwrap();
    run_ok("pipeline", &["--input", input.to_str().unwrap(), "--routes", routes.to_str().unwrap(), "-q"]);
    let want = std::fs::read_to_string(&file).unwrap();
    let messages = broker.read("devices");
    let rows: Vec<&str> =
        messages.iter().filter(|(k, _)| k != PROGRESS_KEY).map(|(_, v)| v.as_str()).collect();
    assert!(rows.len() > 10, "{}", rows.len());
    assert_eq!(rows, want.lines().skip(1).collect::<Vec<_>>());
}
