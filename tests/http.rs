//! `--http`: the Prometheus endpoint, the status API and the dashboard, checked from
//! outside the way people and scrapers use them.
//!
//! Tests that need `promtool` (Debian's `prometheus`) or `chromium` fail under CI
//! (`CI=true`) when the tool is missing, and skip with a message elsewhere.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{TempDir, bin, csv_rows, gen_transactions};

/// Whether `tool` can be run; under CI a missing tool is a failure, elsewhere a skip.
fn have(tool: &str, package: &str) -> bool {
    let found =
        Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is missing under CI: .ci/run installs Debian's {package}"
        );
        eprintln!("skipping: {tool} is not installed (apt-get install {package})");
    }
    found
}

/// A job running with `--http 127.0.0.1:0`: its URL, and its stderr lines as they come.
struct Running {
    child: Child,
    url: String,
    stderr: mpsc::Receiver<String>,
}

impl Running {
    fn start(args: &[&str], stdin: Stdio) -> Running {
        Running::serve(args, "127.0.0.1:0", stdin)
    }

    /// `category_totals ARGS --http ADDR`, lingering for a minute after its input ends.
    fn serve(args: &[&str], addr: &str, stdin: Stdio) -> Running {
        let mut child = Command::new(bin("category_totals"))
            .args(args)
            .args(["--http", addr, "--http-linger", "60s", "--progress-every", "1s"])
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("category_totals starts");
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut running = Running { child, url: String::new(), stderr: rx };
        let line = running.wait_for("serving http://");
        let at = line.find("http://").unwrap();
        running.url = line[at..].split_whitespace().next().unwrap().trim_end_matches('/').to_owned();
        running
    }

    /// The first stderr line containing `text`, waiting up to a minute.
    fn wait_for(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(e) => panic!("no stderr line with '{text}': {e}"),
            }
        }
    }

    fn get(&self, path: &str) -> String {
        get(&format!("{}{path}", self.url))
    }

    /// Ends the linger with SIGTERM and returns stdout; the job must exit 0.
    fn stop(mut self) -> String {
        // SAFETY: kill only sends a signal to our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let mut out = String::new();
        self.child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert!(self.child.wait().unwrap().success(), "the job exits 0 after its linger is cut short");
        out
    }
}

/// The body of a plain HTTP GET of `url` (`http://HOST:PORT/PATH`), which must answer 200.
fn get(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = TcpStream::connect(host).unwrap();
    write!(stream, "GET {} HTTP/1.0\r\nHost: {host}\r\n\r\n", if path.is_empty() { "/" } else { path })
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.") && head.contains(" 200 "), "GET {url}: {head}");
    body.to_owned()
}

/// The samples of a scrape without labels: `name -> value` (names with a `quantile`
/// label keep it).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            let name = match series.find("quantile=") {
                Some(q) => format!("{name}{{{}}}", &series[q..series.len() - 1]),
                None => name.to_owned(),
            };
            let value = if value == "+Inf" { f64::INFINITY } else { value.parse().unwrap() };
            (name, value)
        })
        .collect()
}

/// `read, rejected, late, rows` from the summary line.
fn summary_figures(line: &str) -> [f64; 4] {
    let number = |after: &str| -> f64 {
        let at = line.find(after).unwrap_or_else(|| panic!("no '{after}' in {line}")) + after.len();
        line[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    [number("read "), number("rejected "), number("late "), number("wrote ")]
}

const COUNTERS: [&str; 4] = [
    "kappa_records_read_total",
    "kappa_records_rejected_total",
    "kappa_records_late_total",
    "kappa_rows_written_total",
];

#[test]
fn scraped_counters_only_grow_and_end_at_the_summary_figures() {
    let mut job = Running::start(
        &["--input", "gen:transactions?rate=2000&count=8000&seed=3", "--window", "1s"],
        Stdio::null(),
    );
    job.wait_for("progress:");
    let first = samples(&job.get("/metrics"));
    std::thread::sleep(Duration::from_millis(1200));
    let second = samples(&job.get("/metrics"));
    for name in COUNTERS {
        assert!(second[name] >= first[name], "{name} went from {} to {}", first[name], second[name]);
    }
    assert!(second["kappa_records_read_total"] > first["kappa_records_read_total"], "a paced run reads on");
    assert!(first["kappa_records_read_total"] < 8000.0, "the first scrape was during the run");
    assert!(second.contains_key("kappa_output_frontier_lag_seconds"), "the frontier moves in a paced run");
    assert!(second.contains_key("kappa_output_latency_seconds{quantile=\"0.99\"}"));
    assert!(second["process_resident_memory_bytes"] > 1e6);

    let summary = job.wait_for("summary:");
    let last = samples(&job.get("/metrics"));
    let expected = summary_figures(&summary);
    for (name, want) in COUNTERS.iter().zip(expected) {
        assert!(last[*name] >= second[*name], "{name} only grows");
        assert_eq!(last[*name], want, "{name} at the end equals the summary: {summary}");
    }
    assert_eq!(last["kappa_output_frontier_seconds"], f64::INFINITY, "the frontier closed at the end");
    let out = job.stop();
    assert_eq!(csv_rows(&out).len() as f64, expected[3]);
}

#[test]
fn metrics_text_passes_promtool_check() {
    if !have("promtool", "prometheus") {
        return;
    }
    // A live input, so every metric is present: latency and the intake queue too; and a
    // checkpoint, for the commit metrics.
    let dir = TempDir::new("http-promtool");
    let (ck, out) = (dir.path("checkpoint"), dir.path("out.csv"));
    let (ck, out) = (ck.to_str().unwrap(), out.to_str().unwrap());
    let args = ["--input", "-", "--window", "1h", "--lateness", "0s", "--checkpoint", ck, "--output", out];
    let mut job = Running::start(&[&args[..], &["--checkpoint-every", "100ms"]].concat(), Stdio::piped());
    let mut stdin = job.child.stdin.take().unwrap();
    feed(&mut stdin, &dir, 2000, 1);
    job.wait_for("progress:");
    let text = job.get("/metrics");
    for name in [
        "kappa_output_latency_seconds_count",
        "kappa_intake_queue_batches",
        "kappa_output_frontier_seconds",
        "kappa_checkpoint_commits_total",
    ] {
        assert!(text.contains(name), "{name} is exposed:\n{text}");
    }
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let result = check.wait_with_output().unwrap();
    assert!(
        result.status.success() && result.stdout.is_empty() && result.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    drop(stdin);
    job.wait_for("summary:");
    job.stop();
}

/// Writes `rows` ordered transactions (one day) to the job's stdin in `seconds`.
fn feed(stdin: &mut ChildStdin, dir: &TempDir, rows: u64, seconds: u64) {
    let path = dir.path("tx.csv");
    gen_transactions(&path, rows, 9, &["--ordered", "--days", "1"]);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let chunk = lines.len().div_ceil(10);
    for part in lines.chunks(chunk) {
        stdin.write_all((part.join("\n") + "\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(seconds * 100));
    }
}

#[test]
fn dashboard_charts_have_points_and_its_table_shows_the_jobs_rows() {
    if !have("chromium", "chromium") {
        return;
    }
    let dir = TempDir::new("http-dashboard");
    let mut job = Running::start(&["--input", "-", "--window", "1h"], Stdio::piped());
    let mut stdin = job.child.stdin.take().unwrap();
    feed(&mut stdin, &dir, 4000, 3);
    job.wait_for("progress:");
    let chromium = |extra: &[&str]| {
        let out = Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000"])
            .args(extra)
            .arg(format!("{}/", job.url))
            .current_dir(&dir.0)
            .output()
            .expect("chromium runs");
        assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let dom = chromium(&["--dump-dom"]);
    let shot = dir.path("dashboard.png");
    chromium(&["--window-size=1400,1100", &format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).expect("a screenshot was saved");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "a real screenshot: {} bytes", png.len());
    // Kept where people can look at it after the run.
    let _ = std::fs::copy(&shot, std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"));

    for chart in ["rates", "lag", "latency", "bad", "intake", "memory"] {
        let attr = format!("id=\"chart-{chart}\" data-points=\"");
        let at =
            dom.find(&attr).unwrap_or_else(|| panic!("no chart {chart} in the page:\n{dom}")) + attr.len();
        let points: usize = dom[at..].split('"').next().unwrap().parse().unwrap();
        assert!(points >= 2, "chart {chart} has {points} data points");
        let own = dom[at..].split("id=\"chart-").next().unwrap();
        assert!(own.contains("<canvas"), "chart {chart} is drawn");
    }
    drop(stdin);
    job.wait_for("summary:");
    let written = csv_rows(&job.stop());
    // Each shown row is `#k, time (ISO), cells…`: the job's k-th row, the same cells.
    let body = &dom[dom.find("<tbody id=\"results\"").expect("a results table")..];
    assert!(
        body.starts_with("<tbody id=\"results\" data-view=\"current\">"),
        "windows by category show each category's current row"
    );
    let body = &body[body.find('>').unwrap() + 1..];
    let body = &body[..body.find("</tbody>").unwrap()];
    let shown: Vec<Vec<String>> = body
        .split("<tr>")
        .skip(1)
        .map(|tr| tr.split("</td>").filter_map(|td| td.rsplit('>').next()).map(str::to_owned).collect())
        .collect();
    assert!(!shown.is_empty(), "the results table has rows:\n{body}");
    for cells in &shown {
        let k: usize = cells[0].parse().unwrap();
        assert_eq!(cells[2..cells.len() - 1], written[k - 1][1..], "row {k} is the job's row {k}");
    }
}

/// The `/api/status` of a running job, parsed.
fn status(job: &Running) -> serde_json::Value {
    serde_json::from_str(&job.get("/api/status")).expect("/api/status is JSON")
}

/// The cells but the time (shown in ISO 8601) of the current results per key in a
/// status, each row's cells joined by commas, sorted.
fn current_rows(status: &serde_json::Value) -> Vec<String> {
    let current = &status["latest"]["output"]["current"];
    let rows = current["rows"].as_array().unwrap_or_else(|| panic!("no current results in {status}"));
    let mut rows: Vec<String> = rows
        .iter()
        .map(|r| {
            r[1].as_array().unwrap()[1..].iter().map(|c| c.as_str().unwrap()).collect::<Vec<_>>().join(",")
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn the_dashboard_keeps_each_keys_current_row_and_sums_a_change_log_to_the_batch_table() {
    let dir = TempDir::new("http-current");
    let input = dir.path("tx.csv");
    gen_transactions(&input, 20_000, 4, &["--days", "3"]);
    let input = input.to_str().unwrap();
    let batch = csv_rows(&common::run_ok("category_totals", &["--input", input]));
    // What is kept of a category: total, count and quantity (the change log has no mean).
    let expected: Vec<String> = batch.iter().map(|r| r[1..5].join(",")).collect();
    assert_eq!(expected.len(), 6, "six categories");

    let mut job =
        Running::start(&["--input", input, "--mode", "incremental", "--epoch", "1h"], Stdio::null());
    job.wait_for("summary:");
    let st = status(&job);
    let changes = csv_rows(&job.stop());
    assert!(changes.len() > 100, "a long change log: {} rows", changes.len());
    let current = &st["latest"]["output"]["current"];
    assert_eq!(current["key"], serde_json::json!(["category"]));
    assert_eq!(current["columns"], serde_json::json!(["time", "category", "total", "count", "quantity"]));
    assert_eq!(current_rows(&st), expected, "the current rows are the batch table");
    assert_eq!(st["latest"]["output"]["written"], changes.len(), "every change was folded");

    // Windows: each category's row of the last window it had rows in.
    let windows = csv_rows(&common::run_ok("category_totals", &["--input", input, "--window", "1d"]));
    let mut last = BTreeMap::new();
    for row in &windows {
        last.insert(row[1].clone(), row[1..].join(","));
    }
    let mut job = Running::start(&["--input", input, "--window", "1d"], Stdio::null());
    job.wait_for("summary:");
    let st = status(&job);
    job.stop();
    assert_eq!(current_rows(&st), last.into_values().collect::<Vec<_>>());
}

#[test]
fn each_process_of_a_cluster_serves_its_own_figures_and_names_every_dashboard() {
    let dir = TempDir::new("http-cluster");
    let input = dir.path("tx.csv");
    gen_transactions(&input, 30_000, 6, &[]);
    let input = input.to_str().unwrap();
    let base = common::port_base();
    let (cluster, http) = (base.to_string(), format!("127.0.0.1:{}", base + 8));
    let mut jobs: Vec<Running> = (0..2)
        .map(|p| {
            let p = p.to_string();
            let args =
                ["--input", input, "-n", "2", "-p", &p, "--port-base", &cluster, "--connect-timeout", "20s"];
            Running::serve(&args, &http, Stdio::null())
        })
        .collect();
    let urls: Vec<String> = (0..2).map(|p| format!("http://127.0.0.1:{}/", base + 8 + p)).collect();
    for (p, job) in jobs.iter_mut().enumerate() {
        assert_eq!(format!("{}/", job.url), urls[p], "process {p} serves on PORT + {p}");
        // Process 0's line is `summary: …`, the others' `summary (process p of n …`.
        job.wait_for("summary");
    }
    let statuses: Vec<serde_json::Value> = jobs.iter().map(status).collect();
    let mut read = 0;
    for (p, st) in statuses.iter().enumerate() {
        assert_eq!(st["process"], p);
        assert_eq!(st["processes"], 2);
        assert_eq!(st["dashboards"], serde_json::json!(urls), "process {p} links every dashboard");
        let own = st["figures"]["read"].as_u64().unwrap();
        assert!(own > 0, "process {p} reads its own part of the file");
        read += own;
        let metrics = jobs[p].get("/metrics");
        assert!(
            metrics.contains(&format!(
                "kappa_records_read_total{{job=\"category_totals\",process=\"{p}\"}} {own}"
            ))
        );
    }
    assert_eq!(read, 30_000, "the processes' reads add up to the file");
    // Only process 0 writes, so only its page shows results: the whole table.
    let mut written: Vec<String> =
        csv_rows(&jobs.remove(0).stop()).iter().map(|r| r[1..].join(",")).collect();
    written.sort();
    assert_eq!(current_rows(&statuses[0]), written);
    assert!(statuses[1]["latest"]["output"].is_null(), "process 1 writes nothing");
    jobs.remove(0).stop();
}

#[test]
fn a_bad_or_busy_address_is_one_line_and_exit_code_2() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    for (addr, says) in
        [("nonsense", "invalid --http address 'nonsense'"), (busy.as_str(), "cannot serve http on")]
    {
        let out = common::run("category_totals", &["--http", addr]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--http {addr}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn a_health_breach_is_one_stderr_line_and_a_metric_once_per_episode() {
    let rule = "input_rate<1 for 2s";
    let mut job = Running::start(&["--input", "-", "--health", rule], Stdio::piped());
    let mut stdin = job.child.stdin.take().unwrap();
    let dir = TempDir::new("http-health");
    feed(&mut stdin, &dir, 500, 1);
    // The input goes quiet: one episode fires after 2s, however long the quiet lasts.
    let breach = job.wait_for("health: breach");
    assert!(breach.contains(rule), "{breach}");
    std::thread::sleep(Duration::from_secs(2));
    feed(&mut stdin, &dir, 500, 1);
    let recovered = job.wait_for("health: ");
    assert!(recovered.contains("health: recovered: input_rate<1 for 2s"), "{recovered}");
    drop(stdin);
    job.wait_for("summary:");
    let metrics = job.get("/metrics");
    let line =
        format!("kappa_health_breaches_total{{job=\"category_totals\",process=\"0\",rule=\"{rule}\"}} 1\n");
    assert!(metrics.contains(&line), "{metrics}");
    let status = job.get("/api/status");
    assert!(status.contains("\"what\":\"breach\"") && status.contains("\"what\":\"recovered\""), "{status}");
    job.stop();
}

#[test]
fn html_reports_open_in_chromium_with_their_charts_and_every_row() {
    if !have("chromium", "chromium") {
        return;
    }
    let dir = TempDir::new("http-html-report");
    let input = dir.path("tx.csv");
    gen_transactions(&input, 20_000, 9, &[]);
    let input = input.to_str().unwrap();
    let page = dir.path("report.html");
    common::run_ok(
        "ecommerce_report",
        &["--input", input, "--format", "html", "--output", page.to_str().unwrap()],
    );
    let csv = common::run_ok("ecommerce_report", &["--input", input, "-q"]);
    let dom = {
        let out = Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
            .arg(format!("file://{}", page.display()))
            .output()
            .expect("chromium runs");
        assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let shot = dir.path("report.png");
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,2600"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    let png = std::fs::read(&shot).expect("a screenshot was saved");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "a real screenshot: {} bytes", png.len());
    let _ = std::fs::copy(&shot, std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("report.png"));

    // Every section with a label and a value has its chart: bars, and a line for the days.
    let charts: Vec<&str> = dom.split("<svg class=\"chart\"").skip(1).collect();
    assert_eq!(charts.len(), 5, "category, daily, customers, payment, age group charts");
    let points = |svg: &str| -> usize {
        let at = svg.find("data-points=\"").unwrap() + "data-points=\"".len();
        svg[at..].split('"').next().unwrap().parse().unwrap()
    };
    assert_eq!(points(charts[0]), 6, "six categories");
    assert_eq!(charts[0].split("</svg>").next().unwrap().matches("<rect").count(), 6);
    assert!(charts[1].split("</svg>").next().unwrap().contains("<polyline"), "daily sales is a line");
    assert_eq!(points(charts[1]), csv.lines().filter(|l| l.contains(",daily,")).count());
    // The tables list every row of the CSV report.
    assert_eq!(dom.matches("<tr><td").count(), csv.lines().count() - 1);
}

#[test]
fn benchmark_results_render_as_a_page_with_a_chart_per_figure() {
    let dir = TempDir::new("bench-report");
    let csv = dir.path("results.csv");
    std::fs::write(
        &csv,
        "date,commit,cores,cpu,load1,suite,config,metric,value,unit\n\
         d1,c1,2,x,1.0,batch,ct w=1,wall_s,2.5,s\n\
         d1,c1,2,x,1.0,batch,ct w=2,wall_s,1.5,s\n\
         d1,c1,2,x,1.0,batch,ct w=1,peak_rss,6444,KiB\n",
    )
    .unwrap();
    let page = dir.path("results.html");
    common::run_ok("bench_report", &["--input", csv.to_str().unwrap(), "--output", page.to_str().unwrap()]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<h2>batch: wall_s (s)</h2>") && html.contains("<h2>batch: peak_rss (KiB)</h2>"));
    assert_eq!(html.matches("<svg class=\"chart\"").count(), 2, "a chart per suite and figure");
    assert_eq!(html.matches("<rect").count(), 3, "a bar per configuration");
    let bad = dir.path("bad.csv");
    std::fs::write(&bad, "header\nnot,enough\n").unwrap();
    let out =
        common::run("bench_report", &["--input", bad.to_str().unwrap(), "--output", page.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2: expected 10 fields"));
}
