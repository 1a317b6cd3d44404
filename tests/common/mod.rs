//! Helpers shared by the integration tests: run job binaries, make data, compare outputs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};

/// A fresh directory under the target dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new, empty directory named for `name`.
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicU16 = AtomicU16::new(0);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// A path inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The path of a job binary built by cargo for these tests.
pub fn bin(name: &str) -> PathBuf {
    match name {
        "category_totals" => env!("CARGO_BIN_EXE_category_totals").into(),
        "gen" => env!("CARGO_BIN_EXE_gen").into(),
        other => {
            // Binaries are siblings; this covers jobs added later without editing here.
            let gen_path = PathBuf::from(env!("CARGO_BIN_EXE_gen"));
            gen_path.with_file_name(other)
        }
    }
}

/// Runs `name` with `args`, returning its output; panics if it cannot start.
pub fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin(name))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"))
}

/// Runs `name` with `args`, stdout and stderr to files in `dir`; returns whether it
/// succeeded, its stderr and its peak resident memory in KiB (from `wait4`, so only
/// this child counts).
// The child is reaped by wait4, which clippy does not see.
#[allow(dead_code, clippy::zombie_processes)]
pub fn run_measured(dir: &TempDir, name: &str, args: &[&str]) -> (bool, String, u64) {
    let (out, err) = (dir.path(&format!("{name}.stdout")), dir.path(&format!("{name}.stderr")));
    let child = Command::new(bin(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our own unwaited child; the pointers are to live locals.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (ok, std::fs::read_to_string(&err).unwrap(), usage.ru_maxrss as u64)
}

/// Runs `name` with `args` and returns stdout, panicking with stderr on failure.
pub fn run_ok(name: &str, args: &[&str]) -> String {
    let out = run(name, args);
    assert!(
        out.status.success(),
        "{name} {args:?} failed with {}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Writes `gen transactions --rows N --seed S` (plus `extra` flags) to `path`.
pub fn gen_transactions(path: &Path, rows: u64, seed: u64, extra: &[&str]) {
    let rows = rows.to_string();
    let seed = seed.to_string();
    let mut args = vec!["transactions", "--rows", &rows, "--seed", &seed, "--output", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    run_ok("gen", &args);
}

/// A port base unlikely to collide with other tests running in parallel: each call
/// returns a block of 16 ports, distinct per test process and call.
pub fn port_base() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Below Linux's ephemeral range (32768+), so no outgoing connection holds our port:
    // 64 slots of 20 blocks of 16 ports, the slot chosen by the test process.
    let block = NEXT.fetch_add(1, Ordering::Relaxed) % 20;
    11_000 + (std::process::id() % 64) as u16 * 320 + block * 16
}

/// Parses CSV output (no quoted fields) into rows of fields, skipping the header.
pub fn csv_rows(text: &str) -> Vec<Vec<String>> {
    text.lines().skip(1).map(|l| l.split(',').map(str::to_owned).collect()).collect()
}

/// Runs `name args` as two processes on loopback (`-n 2 -p 0/1` on a fresh port base)
/// and returns process 0's stdout, where the results are written; panics if either fails.
pub fn two_processes(name: &str, args: &[&str]) -> String {
    let port = port_base().to_string();
    let spawn = |p: &str| {
        Command::new(bin(name))
            .args(args)
            .args(["-n", "2", "-p", p, "--port-base", &port])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {name}: {e}"))
    };
    let (p0, p1) = (spawn("0"), spawn("1"));
    let (o0, o1) = (p0.wait_with_output().unwrap(), p1.wait_with_output().unwrap());
    assert!(
        o0.status.success() && o1.status.success(),
        "{name} -n 2: {}\n{}",
        String::from_utf8_lossy(&o0.stderr),
        String::from_utf8_lossy(&o1.stderr)
    );
    String::from_utf8(o0.stdout).expect("utf-8 output")
}

/// A connection to a job listening on loopback `port`, retrying while it starts (30 s).
pub fn connect(port: u16) -> std::net::TcpStream {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return s,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => panic!("cannot connect to the job on port {port}: {e}"),
        }
    }
}
