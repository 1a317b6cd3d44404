//! Cluster execution: the same bytes for any split into processes and hosts, fail-stop
//! when a process is lost, and one clear line for each bad startup configuration.
//!
//! Multi-process runs use distinct port bases so that the tests run in parallel. The
//! network-namespace runs need root; without it they say so and pass as skipped.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use common::{TempDir, bin, gen_transactions, port_base};

const ROWS: u64 = 20_000;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name)
}

fn job() -> String {
    bin("category_totals").to_str().unwrap().to_owned()
}

/// A transactions file and its rows dealt round-robin into `parts` shards, each with
/// the header, named `part-{p}.csv` in their own directory.
fn data(dir: &TempDir, parts: &[usize]) -> PathBuf {
    let all = dir.path("all.csv");
    gen_transactions(&all, ROWS, 11, &[]);
    let text = std::fs::read_to_string(&all).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    for &n in parts {
        let shards = dir.path(&format!("shards{n}"));
        std::fs::create_dir_all(&shards).unwrap();
        for p in 0..n {
            let mut shard = format!("{header}\n");
            for row in rows.iter().skip(p).step_by(n) {
                shard.push_str(row);
                shard.push('\n');
            }
            std::fs::write(shards.join(format!("part-{p}.csv")), shard).unwrap();
        }
    }
    all
}

/// The sum of the `count` column: every row of the input is counted exactly once.
fn counted(csv: &str) -> u64 {
    csv.lines().skip(1).map(|l| l.split(',').nth(3).unwrap().parse::<u64>().unwrap()).sum()
}

/// Runs `-n n` processes of the job over loopback; returns process 0's stdout.
fn run_loopback(n: u32, w: u32, args: &[&str]) -> String {
    run_loopback_counting(n, w, args, ROWS)
}

/// Like [`run_loopback`], checking that process 0's summary counts `records` read.
fn run_loopback_counting(n: u32, w: u32, args: &[&str], records: u64) -> String {
    let port = port_base().to_string();
    let (n_s, w_s) = (n.to_string(), w.to_string());
    let command = |p: u32| {
        let mut c = Command::new(bin("category_totals"));
        c.args(args)
            .args(["-n", &n_s, "-w", &w_s, "--port-base", &port, "--connect-timeout", "20s"])
            .args(["-p", &p.to_string()])
            .stdin(Stdio::null());
        c
    };
    let others: Vec<Child> =
        (1..n).map(|p| command(p).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()).collect();
    let first = command(0).output().unwrap();
    for (p, child) in others.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "process {} failed: {}", p + 1, String::from_utf8_lossy(&out.stderr));
    }
    assert!(first.status.success(), "process 0 failed: {}", String::from_utf8_lossy(&first.stderr));
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains(&format!("summary: read {records} records")), "{stderr}");
    String::from_utf8(first.stdout).unwrap()
}

fn script_output(mut command: Command) -> Output {
    command.stdin(Stdio::null()).output().unwrap()
}

/// Runs the job with `scripts/netns.sh cluster`, or `None` when namespaces are not available.
fn run_netns(n: u32, args: &[&str]) -> Option<String> {
    let mut c = Command::new(script("netns.sh"));
    c.args(["cluster", &n.to_string(), "--", &job()]).args(args);
    let out = script_output(c);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(77) {
        eprintln!("{}", stderr.trim());
        return None;
    }
    assert!(out.status.success(), "netns cluster failed:\n{stderr}");
    // Every process's logs come back labelled with its host.
    for p in 0..n {
        assert!(stderr.contains(&format!("[p{p} 10.77.0.{}] summary", p + 1)), "{stderr}");
    }
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn any_split_into_processes_gives_the_same_bytes() {
    let dir = TempDir::new("cluster-equal");
    let all = data(&dir, &[2, 3]);
    let all = all.to_str().unwrap();
    let shards2 = format!("{}/part-{{p}}.csv", dir.path("shards2").display());
    for window in [&[][..], &["--window", "1h"][..]] {
        fn with_input<'a>(input: &'a str, window: &[&'a str]) -> Vec<&'a str> {
            [&["--input", input][..], window].concat()
        }
        let with = |input| with_input(input, window);
        let single = common::run_ok("category_totals", &[&with(all)[..], &["-w", "4"]].concat());
        assert_eq!(counted(&single), ROWS);
        assert!(single.lines().count() > 6, "{single}");

        assert_eq!(run_loopback(2, 2, &with(all)), single, "-n 2 -w 2, shared file");
        assert_eq!(run_loopback(2, 2, &with(&shards2)), single, "-n 2 -w 2, shards");

        // The launch script, with the shards as a directory per process.
        let dirs = format!("{}/p{{p}}", dir.path("dirs").display());
        for p in 0..2 {
            let d = dir.path(&format!("dirs/p{p}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::copy(dir.path(&format!("shards2/part-{p}.csv")), d.join("data.csv")).unwrap();
        }
        let port = port_base().to_string();
        let mut c = Command::new(script("local-cluster.sh"));
        c.args(["2", "--", &job(), "-w", "2", "--port-base", &port]).args(with(&dirs));
        let out = script_output(c);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("[p1] summary (process 1 of 2"), "{stderr}");
        assert_eq!(String::from_utf8(out.stdout).unwrap(), single, "local-cluster.sh, directories");

        // Three hosts on a real network path.
        let shards3 = format!("{}/part-{{p}}.csv", dir.path("shards3").display());
        for input in [all, &shards3] {
            match run_netns(3, &[&with(input)[..], &["-w", "1"]].concat()) {
                Some(out) => assert_eq!(out, single, "-n 3 -w 1 across namespaces, {input}"),
                None => break,
            }
        }
    }
}

/// Waits for `child` at most `limit`; kills it and fails if it is still running.
fn wait_within(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{what} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut text = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        text.push_str(&line.unwrap());
        text.push('\n');
    }
    text
}

fn sigkill(pid: u32) {
    let status = Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill {pid}");
}

/// An input that takes far longer than the tests wait: an unbounded generator.
const ENDLESS: &[&str] = &["--input", "gen:transactions", "--connect-timeout", "5s", "-q"];

#[test]
fn killing_a_process_stops_the_others_and_names_it() {
    let port = port_base().to_string();
    let mut children: Vec<Child> = (0..3)
        .map(|p| {
            Command::new(bin("category_totals"))
                .args(ENDLESS)
                .args(["-n", "3", "-p", &p.to_string(), "--port-base", &port])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    for (p, child) in children.iter_mut().enumerate() {
        assert!(child.try_wait().unwrap().is_none(), "process {p} ended early");
    }
    sigkill(children[1].id());
    for p in [0, 2] {
        let status = wait_within(&mut children[p], Duration::from_secs(10), "a survivor");
        assert_eq!(status.code(), Some(1), "process {p}");
        let stderr = stderr_of(&mut children[p]);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!(
                "lost connection to process 1 (localhost:{})",
                port.parse::<u16>().unwrap() + 1
            )),
            "process {p}: {stderr}"
        );
    }
    children[1].wait().unwrap();
}

/// Starts a launch script, kills its process 1 once running, and checks the report.
fn launcher_names_killed_process(mut command: Command, pids_after: &str) -> Option<()> {
    let mut launcher =
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = BufReader::new(launcher.stderr.take().unwrap());
    let mut log = String::new();
    let pids: Vec<u32> = loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let status = launcher.wait().unwrap();
            if status.code() == Some(77) {
                eprintln!("{}", log.trim());
                return None;
            }
            panic!("launcher ended before starting processes ({status}):\n{log}");
        }
        log.push_str(&line);
        if let Some(rest) = line.split(pids_after).nth(1) {
            break rest.trim().trim_end_matches(')').split(' ').map(|p| p.parse().unwrap()).collect();
        }
    };
    assert_eq!(pids.len(), 3, "{log}");
    std::thread::sleep(Duration::from_millis(1500));
    sigkill(pids[1]);
    let status = wait_within(&mut launcher, Duration::from_secs(10), "the launch script");
    for line in stderr.lines() {
        log.push_str(&line.unwrap());
        log.push('\n');
    }
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("process 1 (p1") && log.contains("failed first: it was killed by SIGKILL"), "{log}");
    assert!(log.contains("lost connection to process 1"), "{log}");
    Some(())
}

#[test]
fn launch_scripts_name_the_process_that_failed() {
    let port = port_base().to_string();
    let mut local = Command::new(script("local-cluster.sh"));
    local.args(["3", "--", &job(), "--port-base", &port]).args(ENDLESS);
    launcher_names_killed_process(local, "pids ").unwrap();

    let mut netns = Command::new(script("netns.sh"));
    netns.args(["cluster", "3", "--", &job()]).args(ENDLESS);
    if launcher_names_killed_process(netns, "local pids ").is_some() {
        // The network is gone again.
        let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
        let list = String::from_utf8_lossy(&list.stdout);
        assert!(!list.contains(&format!("kappa{}-", std::process::id())), "{list}");
    }
}

/// Runs the job expecting a startup error; returns its only stderr line.
fn startup_error(args: &[&str]) -> String {
    let out = common::run("category_totals", args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("category_totals: error: "), "{stderr}");
    stderr
}

#[test]
fn bad_startup_configurations_give_one_line() {
    let dir = TempDir::new("cluster-startup");
    let hosts = dir.path("hosts");
    std::fs::write(&hosts, "# two hosts\nlocalhost:4001\n\nlocalhost:4002 # b\n").unwrap();
    let hosts = hosts.to_str().unwrap();
    let e = startup_error(&["-n", "3", "-p", "0", "-h", hosts]);
    assert!(e.contains("lists 2 address(es) but -n is 3"), "{e}");

    let e = startup_error(&["-n", "2", "-p", "2"]);
    assert!(e.contains("-p 2 is out of range"), "{e}");

    let port = port_base();
    let p = port.to_string();
    let e = startup_error(&["-n", "2", "-p", "1", "--port-base", &p, "--connect-timeout", "1s"]);
    assert!(e.contains(&format!("cannot reach process 0 at localhost:{port} within 1s")), "{e}");
    let e = startup_error(&["-n", "2", "-p", "0", "--port-base", &p, "--connect-timeout", "1s"]);
    assert!(e.contains(&format!("process 1 (localhost:{}) did not connect within 1s", port + 1)), "{e}");

    let taken = std::net::TcpListener::bind(("localhost", port)).unwrap();
    let e = startup_error(&["-n", "2", "-p", "0", "--port-base", &p, "--connect-timeout", "1s"]);
    assert!(e.contains(&format!("cannot listen on localhost:{port}")), "{e}");
    drop(taken);

    let missing = format!("{}/none-{{p}}.csv", dir.0.display());
    let e = startup_error(&["--input", &missing]);
    assert!(e.contains("none-0.csv (process 0's shard)"), "{e}");

    // -w differs: both processes see it at once and say which peer and which values.
    let p = port_base().to_string();
    let spawn = |index: &str, w: &str| {
        Command::new(bin("category_totals"))
            .args(["-n", "3", "-p", index, "-w", w, "--port-base", &p, "--connect-timeout", "10s"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let started = Instant::now();
    // Process 0 never starts: processes 1 and 2 still find out about each other.
    let (a, b) = (spawn("1", "2"), spawn("2", "1"));
    for (child, want) in [(a, "process 2 (localhost:"), (b, "process 1 (localhost:")] {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(want) && stderr.contains("every process needs the same -w"), "{stderr}");
    }
    // Both saw it at once, well before the 10 s connect timeout.
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Removes a namespace network when dropped.
struct Network(String);

impl Drop for Network {
    fn drop(&mut self) {
        let _ = Command::new(script("netns.sh")).args(["down", &self.0]).status();
    }
}

#[test]
fn a_peer_cut_off_without_closing_counts_as_lost() {
    let name = format!("kcut{}", std::process::id());
    let up = Command::new(script("netns.sh")).args(["up", &name, "3"]).output().unwrap();
    if up.status.code() == Some(77) {
        eprintln!("{}", String::from_utf8_lossy(&up.stderr).trim());
        return;
    }
    let network = Network(name.clone());
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let dir = TempDir::new("cluster-cut");
    let hosts = dir.path("hosts");
    std::fs::write(&hosts, "10.77.0.1:2101\n10.77.0.2:2101\n10.77.0.3:2101\n").unwrap();
    let mut children: Vec<Child> = (0..3)
        .map(|p| {
            Command::new(script("netns.sh"))
                .args(["exec", &name, &p.to_string(), &job()])
                .args(ENDLESS)
                .args(["-n", "3", "-p", &p.to_string(), "-h", hosts.to_str().unwrap()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    // Unplug host 1's cable: no packet says goodbye, its peers only stop hearing from it.
    let cut =
        Command::new("ip").args(["-n", &format!("{name}-sw"), "link", "set", "h1", "down"]).status().unwrap();
    assert!(cut.success());
    for p in [0, 2] {
        let status = wait_within(&mut children[p], Duration::from_secs(20), "a survivor");
        assert_eq!(status.code(), Some(1), "process {p}");
        let stderr = stderr_of(&mut children[p]);
        assert!(stderr.contains("lost connection to process 1 (10.77.0.2:2101)"), "{stderr}");
    }
    let status = wait_within(&mut children[1], Duration::from_secs(20), "the cut-off process");
    assert_eq!(status.code(), Some(1));
    drop(network);
}

#[test]
fn local_cluster_runs_a_bare_job_name_found_on_path() {
    // As the README writes it: `scripts/local-cluster.sh 2 -- category_totals …`.
    let dir = TempDir::new("cluster-path");
    data(&dir, &[]);
    let bin_dir = bin("category_totals").parent().unwrap().to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let port = port_base().to_string();
    let all = dir.path("all.csv");
    let mut c = Command::new(script("local-cluster.sh"));
    c.env("PATH", path).current_dir(dir.path(""));
    c.args(["1", "--", "category_totals", "--port-base", &port, "--input", all.to_str().unwrap()]);
    let out = script_output(c);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!String::from_utf8(out.stdout).unwrap().is_empty(), "{stderr}");
}

#[test]
fn scripts_are_shellcheck_clean() {
    let dir = script("");
    let mut files: Vec<String> =
        ["local-cluster.sh", "cluster.sh", "netns.sh", "bench-cluster.sh", "lib/supervise.sh"]
            .iter()
            .map(|f| dir.join(f).to_str().unwrap().to_owned())
            .collect();
    files.insert(0, "-x".into());
    match Command::new("shellcheck").current_dir(&dir).args(&files).output() {
        Err(_) => eprintln!("skipped: shellcheck is not installed (apt-get install -y shellcheck)"),
        Ok(out) => assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout)),
    }
}

#[test]
fn rejects_in_a_shard_name_the_process_file_and_line() {
    let dir = TempDir::new("cluster-rejects");
    data(&dir, &[2]);
    let bad = dir.path("shards2/part-1.csv");
    let mut text = std::fs::read_to_string(&bad).unwrap();
    text.push_str("not,a,transaction\n");
    let bad_line = text.lines().count();
    std::fs::write(&bad, text).unwrap();
    let rejects = dir.path("rejects.txt");
    let input = format!("{}/part-{{p}}.csv", dir.path("shards2").display());
    let args = ["--input", &input, "--rejects", rejects.to_str().unwrap()];
    let out = run_loopback_counting(2, 1, &args, ROWS + 1);
    assert_eq!(counted(&out), ROWS);
    let written = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(written.lines().count(), 1, "{written}");
    assert!(written.starts_with(&format!("{}:{bad_line}: ", bad.display())), "{written}");
}

#[test]
fn a_stray_connection_at_startup_is_ignored_and_the_job_completes() {
    use std::io::Write;
    use std::net::TcpStream;
    let dir = TempDir::new("stray");
    let all = data(&dir, &[]);
    let input = all.to_str().unwrap();
    let port = port_base();
    let port_s = port.to_string();
    let command = |p: &str| {
        let mut c = Command::new(bin("category_totals"));
        c.args(["--input", input, "-n", "2", "-p", p, "--port-base", &port_s, "--connect-timeout", "20s"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    let first = command("0").spawn().unwrap();
    // An HTTP probe at process 0's port before process 1 exists.
    let started = Instant::now();
    let mut probe = loop {
        match TcpStream::connect(("localhost", port)) {
            Ok(s) => break s,
            Err(_) if started.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("process 0 never listened: {e}"),
        }
    };
    probe.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let second = command("1").spawn().unwrap();
    let (o0, o1) = (first.wait_with_output().unwrap(), second.wait_with_output().unwrap());
    drop(probe);
    let stderr = String::from_utf8_lossy(&o0.stderr);
    assert!(o0.status.success() && o1.status.success(), "{stderr}\n{}", String::from_utf8_lossy(&o1.stderr));
    assert!(stderr.contains("ignored a connection from "), "{stderr}");
    let alone = common::run_ok("category_totals", &["--input", input]);
    assert_eq!(String::from_utf8(o0.stdout).unwrap(), alone);
    assert_eq!(counted(&alone), ROWS);
}
