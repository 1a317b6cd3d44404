//! The `anomalies` job and its NAB scorer: the scorer against NAB's published scoreboard,
//! the job against a reference detector written here, determinism across workers, and
//! rejects; and the multivariate `distance` detector on the anomaly notebook's stream.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{TempDir, bin, connect, csv_rows, port_base, run, run_ok, two_processes};

use kappa::jobs::anomalies::contextual::Contextual;
use kappa::jobs::anomalies::nab::{self, Profile, Scored, Windows};
use kappa::jobs::anomalies::{Detector, Range};

/// The NAB corpus: `$KAPPA_NAB`, or `shared/fixtures/nab` beside the repository or its
/// worktree directory. Missing, the NAB tests fail: they are the scorer's guarantee.
fn nab_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("KAPPA_NAB") {
        return dir.into();
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    repo.ancestors()
        .skip(1)
        .map(|a| a.join("shared/fixtures/nab"))
        .find(|p| p.join("labels/combined_windows.json").exists())
        .expect("the NAB corpus: set KAPPA_NAB to a directory with data/, labels/ and config/")
}

struct Corpus {
    files: Vec<(String, Vec<u64>, Vec<f64>)>,
    windows: Windows,
    profiles: Vec<Profile>,
}

fn corpus() -> Corpus {
    let root = nab_root();
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let windows = nab::parse_windows(&read("labels/combined_windows.json")).unwrap();
    let profiles = nab::parse_profiles(&read("config/profiles.json")).unwrap();
    let names = nab::corpus_files(&root).unwrap();
    assert_eq!(names.len(), 58, "NAB has 58 data files");
    let files = names
        .into_iter()
        .map(|name| {
            let (times, values) = nab::read_series(&read(&format!("data/{name}"))).unwrap();
            (name, times, values)
        })
        .collect();
    Corpus { files, windows, profiles }
}

/// Runs a detector over every file, NAB's way (the file's min and max given in
/// advance), and scores the corpus under every profile.
fn nab_scores(corpus: &Corpus, detector: &str) -> Vec<(String, f64)> {
    nab_scores_with(corpus, |range, _| Detector::new(detector, range).unwrap())
}

/// [`nab_scores`] with each file's detector made by `make(range, rows)`.
fn nab_scores_with(corpus: &Corpus, make: impl Fn(Range, usize) -> Detector) -> Vec<(String, f64)> {
    let scored: Vec<Scored> = corpus
        .files
        .iter()
        .map(|(name, times, values)| {
            let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let range = if lo < hi { Range::Given(lo, hi) } else { Range::Learned };
            let mut d = make(range, values.len());
            let scores = values.iter().map(|&v| twelve_digits(d.score(v))).collect();
            Scored { name: name.clone(), times: times.clone(), scores }
        })
        .collect();
    corpus
        .profiles
        .iter()
        .map(|p| (p.name.clone(), nab::score(&scored, &corpus.windows, p).normalized))
        .collect()
}

/// A score as NAB's results files hold it: 12 significant digits (Python 2's `str` of
/// a float, with which NAB wrote the results behind its scoreboard). For the windowed
/// Gaussian this matters: its scores within 5e-13 of 1 become 1.0, which moves the
/// best threshold of the low-FP profile by 3 points.
fn twelve_digits(score: f64) -> f64 {
    format!("{score:.11e}").parse().unwrap()
}

fn assert_published(measured: &[(String, f64)], published: &[(&str, f64)]) {
    for (profile, want) in published {
        let got =
            measured.iter().find(|m| m.0 == *profile).unwrap_or_else(|| panic!("no profile {profile}")).1;
        assert!(
            (got - want).abs() < 0.01,
            "{profile}: measured {got:.2}, published {want:.2} (all: {measured:?})"
        );
    }
}

/// NAB's scoreboard (`results/final_results.json` of NAB v1.1): windowed Gaussian.
#[test]
fn scorer_reproduces_the_published_windowed_gaussian_scores() {
    let measured = nab_scores(&corpus(), "gaussian");
    eprintln!("windowed gaussian: {measured:?}");
    assert_published(
        &measured,
        &[("standard", 39.65), ("reward_low_FP_rate", 20.87), ("reward_low_FN_rate", 47.41)],
    );
}

/// NAB's scoreboard: relative entropy, the fast default detector, with NAB's range.
#[test]
fn scorer_reproduces_the_published_relative_entropy_scores() {
    let measured = nab_scores(&corpus(), "entropy");
    eprintln!("relative entropy: {measured:?}");
    assert_published(
        &measured,
        &[("standard", 54.64), ("reward_low_FP_rate", 47.60), ("reward_low_FN_rate", 58.84)],
    );
}

/// `gen series` rows, then shuffled deterministically: the job must not care about order.
/// NAB's scoreboard: CAD OSE, the accurate detector, with NAB's range and NAB's rest
/// period per file (a fifth of the probationary period, `min(⌊0.15 n⌋, 750)`).
#[test]
fn scorer_reproduces_the_published_cad_ose_scores() {
    let measured = nab_scores_with(&corpus(), |range, rows| {
        let probation = ((0.15 * rows as f64).floor()).min(750.0);
        Detector::Cad(Box::new(Contextual::with_rest(range, (probation / 5.0) as usize)))
    });
    eprintln!("cad: {measured:?}");
    assert_published(
        &measured,
        &[("standard", 69.90), ("reward_low_FP_rate", 66.98), ("reward_low_FN_rate", 73.18)],
    );
}

fn series_file(dir: &TempDir, rows: u64, keys: u64, seed: u64) -> (PathBuf, PathBuf) {
    let ordered = dir.path("series.csv");
    let (rows, keys, seed) = (rows.to_string(), keys.to_string(), seed.to_string());
    run_ok(
        "gen",
        &["series", "--rows", &rows, "--keys", &keys, "--seed", &seed, "--output", ordered.to_str().unwrap()],
    );
    let shuffled = dir.path("shuffled.csv");
    std::fs::write(&shuffled, shuffle_lines(&std::fs::read_to_string(&ordered).unwrap())).unwrap();
    (ordered, shuffled)
}

/// Shuffles a file's lines after its header, with a fixed xorshift: the same every run.
fn shuffle_lines(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    let header = lines.remove(0);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for i in (1..lines.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        lines.swap(i, (state % (i as u64 + 1)) as usize);
    }
    format!("{header}\n{}\n", lines.join("\n"))
}

fn job(input: &Path, extra: &[&str]) -> String {
    let mut args = vec!["--input", input.to_str().unwrap(), "-q"];
    args.extend_from_slice(extra);
    run_ok("anomalies", &args)
}

#[test]
fn output_is_byte_identical_for_one_two_and_three_workers_any_order_and_two_processes() {
    let dir = TempDir::new("anomalies-workers");
    let (ordered, shuffled) = series_file(&dir, 60_000, 40, 3);
    assert_ne!(std::fs::read(&shuffled).unwrap(), std::fs::read(&ordered).unwrap(), "the order differs");
    let alerts = dir.path("alerts-1.csv");
    let one = job(&ordered, &["-w", "1", "--alerts", alerts.to_str().unwrap()]);
    let alerts_one = std::fs::read_to_string(&alerts).unwrap();
    assert_eq!(one.lines().count(), 60_001);
    assert!(one.lines().skip(1).any(|l| l.ends_with(",1")), "some values are anomalous");
    assert!(alerts_one.lines().count() > 10, "alerts: {alerts_one}");
    for (input, workers) in [(&ordered, "2"), (&ordered, "3"), (&shuffled, "1"), (&shuffled, "3")] {
        let a = dir.path(&format!("alerts-{workers}.csv"));
        let out = job(input, &["-w", workers, "--alerts", a.to_str().unwrap()]);
        assert!(out == one, "-w {workers} on {}: scores differ", input.display());
        assert_eq!(std::fs::read_to_string(&a).unwrap(), alerts_one, "-w {workers}: alerts differ");
    }
    let two = two_processes("anomalies", &["--input", shuffled.to_str().unwrap(), "-q", "-w", "2"]);
    assert!(two == one, "-n 2 -w 2: scores differ");
    // Delivered on stdin, shuffled, with lateness that admits the disorder.
    let mut child = Command::new(common::bin("anomalies"))
        .args(["--input", "-", "-q", "--lateness", "1000d", "-w", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let text = std::fs::read(&shuffled).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&text).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout).unwrap() == one, "stdin delivery: scores differ");
}

/// The relative-entropy detector written plainly: the whole history kept, the range
/// the min and max so far, and every window (the current one and each hypothesis's)
/// quantised with that range, its histogram rebuilt, for every value.
struct ReferenceEntropy {
    history: Vec<f64>,
    hypotheses: Vec<(Vec<f64>, u32)>,
}

impl ReferenceEntropy {
    fn score(&mut self, value: f64) -> f64 {
        self.history.push(value);
        let lo = self.history.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self.history.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let step = (hi - lo) / 5.0;
        if step == 0.0 || self.history.len() < 52 {
            return 0.0;
        }
        let histogram = |window: &[f64]| {
            let mut p = vec![0.0; 5];
            for v in window {
                let b = ((v - lo) / step).ceil() as usize;
                p[b.min(4)] += 1.0 / 52.0;
            }
            p
        };
        let window = self.history[self.history.len() - 52..].to_vec();
        let p = histogram(&window);
        if self.hypotheses.is_empty() {
            self.hypotheses.push((window, 1));
            return 0.0;
        }
        let statistic = |q: &[f64]| -> f64 {
            let mut sum = 0.0;
            for (a, b) in p.iter().zip(q) {
                if *a > 0.0 {
                    if *b == 0.0 {
                        return f64::INFINITY;
                    }
                    sum += a * (a / b).ln();
                }
            }
            2.0 * 52.0 * sum
        };
        let mut best: Option<(usize, f64)> = None;
        for (i, (w, _)) in self.hypotheses.iter().enumerate() {
            let e = statistic(&histogram(w));
            if e < 13.276_704_135_987_622 && best.is_none_or(|b| e < b.1) {
                best = Some((i, e));
            }
        }
        match best {
            Some((i, _)) => {
                self.hypotheses[i].1 += 1;
                if self.hypotheses[i].1 <= 1 { 1.0 } else { 0.0 }
            }
            None => {
                self.hypotheses.push((window, 1));
                1.0
            }
        }
    }
}

#[test]
fn the_default_detector_agrees_with_a_plain_reference() {
    let dir = TempDir::new("anomalies-reference");
    let (ordered, shuffled) = series_file(&dir, 40_000, 20, 11);
    let out = job(&shuffled, &["-w", "2"]);
    // Reference: each key's values in time order (ties by value), scored from scratch.
    let mut by_key: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
    let text = std::fs::read_to_string(&ordered).unwrap();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let t = kappa::time::parse_iso8601(f[0]).unwrap();
        by_key.entry(f[2].to_owned()).or_default().push((t, f[1].parse().unwrap()));
    }
    let mut expected = BTreeMap::new();
    let mut anomalous = 0;
    for (key, mut values) in by_key {
        values.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut d = ReferenceEntropy { history: Vec::new(), hypotheses: Vec::new() };
        for (t, v) in values {
            let s = d.score(v);
            anomalous += (s == 1.0) as usize;
            expected.insert((key.clone(), t), s);
        }
    }
    assert!(anomalous > 20, "the data has anomalies to find ({anomalous})");
    let rows = csv_rows(&out);
    assert_eq!(rows.len(), expected.len());
    let mut flagged = 0;
    for r in rows {
        let want = expected[&(r[1].clone(), r[0].parse::<u64>().unwrap())];
        assert_eq!(r[3].parse::<f64>().unwrap(), want, "{r:?}");
        assert_eq!(r[4], if want >= 0.5 { "1" } else { "0" });
        flagged += (r[4] == "1") as usize;
    }
    assert_eq!(flagged, anomalous);
}

#[test]
fn bad_rows_are_rejected_with_line_numbers_and_nothing_valid_is_lost() {
    let dir = TempDir::new("anomalies-rejects");
    let (ordered, _) = series_file(&dir, 5_000, 5, 5);
    let bad = [
        (100, "2026-10-01 01:00:00,12.5x,s0001", "bad value"),
        (200, "2026-10-01 01:00:00,NaN,s0001", "bad value"),
        (300, "2026-13-01 01:00:00,1,s0002", "bad timestamp"),
        (400, "yesterday,1,s0002", "bad timestamp"),
        (500, "2026-10-01 01:00:00,1,s0003,extra", "wrong field count"),
    ];
    // Out-of-order duplicates: lines 40 and 7 delivered again at the end.
    let (dirty, out) = dirty_run(&dir, &ordered, &bad, &[40, 7], &["-w", "2"]);
    assert!(out == job(&ordered, &["-w", "1"]), "the valid rows give the clean file's scores");
    // NAB's convention scores every row, repeated ones too.
    let rejects = dir.path("rejects-kept.txt");
    let kept = job(&dirty, &["--rejects", rejects.to_str().unwrap(), "--keep-duplicates"]);
    assert_eq!(kept.lines().count(), out.lines().count() + 2);
    assert_eq!(std::fs::read_to_string(&rejects).unwrap().lines().count(), bad.len());
}

/// Writes `clean` with the `bad` lines inserted at their line numbers and the lines
/// numbered `repeat` (after the inserts) delivered again at the end; runs the job on it
/// with `args` and checks the rejects: each bad line with its reason, then each repeat
/// as a duplicate of its line. Returns the dirty file and the job's output.
fn dirty_run(
    dir: &TempDir,
    clean: &Path,
    bad: &[(usize, &str, &str)],
    repeat: &[usize],
    args: &[&str],
) -> (PathBuf, String) {
    let text = std::fs::read_to_string(clean).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for (at, line, _) in bad {
        lines.insert(at - 1, (*line).to_owned());
    }
    let n = lines.len();
    let mut expected: Vec<(usize, String)> = bad.iter().map(|b| (b.0, b.2.to_owned())).collect();
    for (i, &r) in repeat.iter().enumerate() {
        lines.push(lines[r - 1].clone());
        expected.push((n + i + 1, format!("duplicate of line {r}")));
    }
    let dirty = dir.path("dirty.csv");
    std::fs::write(&dirty, lines.join("\n") + "\n").unwrap();
    let rejects = dir.path("rejects.txt");
    let out = job(&dirty, &[&["--rejects", rejects.to_str().unwrap()][..], args].concat());
    let rejected = std::fs::read_to_string(&rejects).unwrap();
    let got: Vec<&str> = rejected.lines().collect();
    assert_eq!(got.len(), expected.len(), "{rejected}");
    for ((at, reason), line) in expected.iter().zip(&got) {
        let prefix = format!("{}:{at}: {reason}", dirty.display());
        assert!(line.starts_with(&prefix), "{line} does not start with {prefix}");
    }
    (dirty, out)
}

#[test]
fn the_job_scores_a_nab_file_as_the_detector_does_with_the_values_printed_exactly() {
    // NAB's convention, through the job and nab_score: one file, its own range. The
    // whole corpus is scripts/nab.sh; here one labelled file checks the plumbing, with
    // its scores equal to the detector's in file order.
    let root = nab_root();
    let name = "realKnownCause/nyc_taxi.csv";
    let (_, values) =
        nab::read_series(&std::fs::read_to_string(root.join("data").join(name)).unwrap()).unwrap();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let range = format!("--range={lo}:{hi}");
    for (detector, rest) in [("entropy", None), ("cad", Some(120))] {
        let mut args = vec!["--key", name, &range, "--detector", detector];
        let rest_arg = rest.map(|r: usize| r.to_string());
        if let Some(r) = &rest_arg {
            args.extend(["--rest", r]);
        }
        let out = job(&root.join("data").join(name), &args);
        let mut d = Detector::with_rest(detector, Range::Given(lo, hi), rest).unwrap();
        let rows = csv_rows(&out);
        assert_eq!(rows.len(), values.len());
        let mut positive = 0;
        for (row, v) in rows.iter().zip(&values) {
            assert_eq!(row[1], name);
            assert_eq!(row[2].parse::<f64>().unwrap(), *v, "values print back exactly");
            let score = d.score(*v);
            assert_eq!(row[3].parse::<f64>().unwrap(), score, "{detector}");
            positive += (score > 0.0) as usize;
        }
        assert!(positive > 0, "{detector}: some scores are positive");
    }
}

/// The accurate detector's state is per key and its input in event-time order, so its
/// output does not depend on workers, processes or file order either.
#[test]
fn cad_output_is_byte_identical_for_any_workers_order_and_processes() {
    let dir = TempDir::new("anomalies-cad");
    let (ordered, shuffled) = series_file(&dir, 20_000, 20, 5);
    let cad = ["--detector", "cad", "--rest", "20"];
    let one = job(&ordered, &[&cad[..], &["-w", "1"]].concat());
    assert_eq!(one.lines().count(), 20_001);
    assert!(one.lines().skip(1).any(|l| l.ends_with(",1")), "some values are anomalous");
    for (input, workers) in [(&ordered, "2"), (&shuffled, "3")] {
        let out = job(input, &[&cad[..], &["-w", workers]].concat());
        assert!(out == one, "-w {workers} on {}: scores differ", input.display());
    }
    let shuffled = shuffled.to_str().unwrap();
    let two = two_processes("anomalies", &[&["--input", shuffled, "-q", "-w", "2"][..], &cad[..]].concat());
    assert!(two == one, "-n 2 -w 2: scores differ");
}

#[test]
fn bad_flags_are_one_line_errors_with_exit_code_2() {
    for args in [
        &["--detector", "nope"][..],
        &["--detector", "cad", "--rest", "0"],
        &["--rest", "10"],
        &["--range", "3:1"],
        &["--range", "x"],
        &["--threshold", "1.5"],
        &["--labels", "/nonexistent/labels.json"],
        &["--mode", "incremental"],
        &["--detector", "distance", "--range", "0:1"],
        &["--detector", "distance", "--features", "0"],
        &["--drifts", "/tmp/drifts.csv"],
    ] {
        let out = run("anomalies", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    let out = run("nab_score", &["--nab", "/nonexistent", "x.csv"]);
    assert_eq!(out.status.code(), Some(2));
}

/// `gen anomalies` into `dir`: the notebook's 5-feature stream.
fn features_file(
    dir: &TempDir,
    name: &str,
    rows: u64,
    keys: u64,
    seed: u64,
    drift_every: Option<u64>,
) -> PathBuf {
    let path = dir.path(name);
    let (rows, keys, seed) = (rows.to_string(), keys.to_string(), seed.to_string());
    let drift = drift_every.map(|d| d.to_string());
    let mut args =
        vec!["anomalies", "--rows", &rows, "--keys", &keys, "--seed", &seed, "-o", path.to_str().unwrap()];
    if let Some(d) = &drift {
        args.extend(["--drift-every", d]);
    }
    run_ok("gen", &args);
    path
}

/// Precision, recall and F1 of the score rows (`time,key,values,score,anomaly,label`).
fn f1_of(out: &str) -> (f64, f64, f64) {
    let (mut tp, mut fp, mut fn_) = (0.0, 0.0, 0.0);
    for r in csv_rows(out) {
        match (r[4] == "1", r[5] != "normal") {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fn_ += 1.0,
            (false, false) => {}
        }
    }
    let (p, r) = (tp / (tp + fp), tp / (tp + fn_));
    (p, r, 2.0 * p * r / (p + r))
}

#[test]
fn distance_output_is_byte_identical_for_any_workers_processes_order_and_tcp_delivery() {
    let dir = TempDir::new("anomalies-distance");
    let ordered = features_file(&dir, "features.csv", 30_000, 30, 9, Some(400));
    let shuffled = dir.path("shuffled.csv");
    std::fs::write(&shuffled, shuffle_lines(&std::fs::read_to_string(&ordered).unwrap())).unwrap();
    let run_with = |input: &Path, workers: &str, tag: &str| {
        let (alerts, drifts) =
            (dir.path(&format!("alerts-{tag}.csv")), dir.path(&format!("drifts-{tag}.csv")));
        let out = job(
            input,
            &[
                "--detector",
                "distance",
                "-w",
                workers,
                "--alerts",
                alerts.to_str().unwrap(),
                "--drifts",
                drifts.to_str().unwrap(),
            ],
        );
        (out, std::fs::read_to_string(alerts).unwrap(), std::fs::read_to_string(drifts).unwrap())
    };
    let one = run_with(&ordered, "1", "1");
    assert_eq!(one.0.lines().count(), 30_001);
    assert!(one.1.lines().count() > 100, "alerts: {}", one.1.lines().count());
    assert!(one.2.lines().count() > 30, "drifts: {}", one.2.lines().count());
    for (input, workers) in [(&ordered, "2"), (&shuffled, "3")] {
        let got = run_with(input, workers, workers);
        assert!(got.0 == one.0, "-w {workers} on {}: scores differ", input.display());
        assert_eq!((&got.1, &got.2), (&one.1, &one.2), "-w {workers}: alerts or drifts differ");
    }
    let shuffled_arg = shuffled.to_str().unwrap();
    let two =
        two_processes("anomalies", &["--input", shuffled_arg, "-q", "-w", "2", "--detector", "distance"]);
    assert!(two == one.0, "-n 2 -w 2: scores differ");
    // Over TCP: two clients, each half of the shuffled file; lateness admits the disorder.
    let port = port_base();
    let child = Command::new(bin("anomalies"))
        .args(["--input", &format!("tcp://127.0.0.1:{port}?clients=2"), "-q", "-w", "2"])
        .args(["--lateness", "1000d", "--detector", "distance"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let text = std::fs::read_to_string(&shuffled).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for half in lines.chunks(lines.len().div_ceil(2)) {
        let mut stream = connect(port);
        stream.write_all((half.join("\n") + "\n").as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout).unwrap() == one.0, "tcp delivery: scores differ");
}

/// The notebook's own detector, an Isolation Forest refitted every batch of 100 on a
/// window of 500 (`scripts/iforest_baseline.py`, scikit-learn 1.9.1), scores F1 0.6217
/// on `gen anomalies --rows 100000 --seed 1`, 0.6188 with `--seed 2`, 0.5908 with
/// `--seed 1 --drift-every 2000` (and 0.8126 on seed 1 with `--contamination auto`,
/// a stronger setting than the notebook's); these floors are above all of them.
#[test]
fn distance_beats_the_notebooks_isolation_forest_on_its_stream() {
    let dir = TempDir::new("anomalies-f1");
    for (seed, drift, floor) in [(1, None, 0.86), (2, Some(2000), 0.83)] {
        let input = features_file(&dir, &format!("f{seed}.csv"), 50_000, 1, seed, drift);
        let out = run("anomalies", &["--input", input.to_str().unwrap(), "--detector", "distance"]);
        assert!(out.status.success());
        let stdout = String::from_utf8(out.stdout).unwrap();
        let (p, r, f1) = f1_of(&stdout);
        assert!(f1 > floor, "seed {seed}: precision {p:.4} recall {r:.4} F1 {f1:.4}");
        // The summary evaluates the same labels.
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(&format!("overall: precision {p:.4} recall {r:.4} F1 {f1:.4}")), "{stderr}");
    }
}

#[test]
fn distance_reports_each_regime_change_once_near_its_start() {
    let dir = TempDir::new("anomalies-drift");
    let input = features_file(&dir, "drift.csv", 50_000, 10, 4, Some(1000));
    let drifts = dir.path("drifts.csv");
    job(&input, &["--detector", "distance", "--drifts", drifts.to_str().unwrap(), "-w", "2"]);
    let found = csv_rows(&std::fs::read_to_string(&drifts).unwrap());
    let start = kappa::record::DEFAULT_START;
    // Each key's regimes change at its samples 1000, 2000, 3000 and 4000, one a second.
    for key in 0..10 {
        let key = format!("k{key:04}");
        let mine: Vec<(u64, u64)> = found
            .iter()
            .filter(|r| r[1] == key)
            .map(|r| (r[0].parse().unwrap(), r[2].parse().unwrap()))
            .collect();
        for change in [1000u64, 2000, 3000, 4000] {
            let at = start + change * 1000;
            assert!(
                mine.iter()
                    .any(|&(time, since)| time >= at && time < at + 60_000 && since.abs_diff(at) <= 30_000),
                "{key}: change at sample {change} not found in {mine:?}"
            );
        }
        assert!(mine.len() <= 5, "{key}: at most one false drift: {mine:?}");
    }
}

#[test]
fn distance_rejects_bad_vectors_with_line_numbers_and_loses_nothing_valid() {
    let dir = TempDir::new("anomalies-vector-rejects");
    let clean = features_file(&dir, "clean.csv", 3_000, 3, 5, None);
    let bad = [
        (100, "2026-10-01T00:10:00Z,k0001,1,2,3,4,normal", "wrong feature count: expected 5"),
        (200, "2026-10-01T00:10:00Z,k0001,1,2,x,4,5,normal", "bad feature 3 'x'"),
        (300, "2026-10-01T00:10:00Z,k0001,1,2,3,4,5,weird", "bad feature 6 'weird'"),
        (400, "2026-10-01T25:10:00Z,k0001,1,2,3,4,5", "bad timestamp"),
        (500, "2026-10-01T00:10:00Z,,1,2,3,4,5", "empty key"),
    ];
    let (_, out) = dirty_run(&dir, &clean, &bad, &[1001], &["--detector", "distance", "-w", "2"]);
    assert!(out == job(&clean, &["--detector", "distance"]), "the valid rows give the clean file's scores");
}

/// IoT readings: each sensor's five metrics are one vector. The notebook's generator
/// puts about 60 % of readings inside anomaly episodes, so the model must hold against
/// a majority of anomalies in its window (each metric is disturbed in under half).
#[test]
fn distance_finds_the_sensor_generators_anomaly_episodes() {
    let input = "gen:sensors?count=30000&seed=3&labels=true&sensors=30";
    let args = ["--input", input, "--detector", "distance", "--record", "sensors"];
    let out = run("anomalies", &[&args[..], &["-w", "2"]].concat());
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let overall = stderr.lines().find(|l| l.contains("overall:")).unwrap_or_else(|| panic!("{stderr}"));
    let f1: f64 = overall.split("F1 ").nth(1).and_then(|t| t.split(' ').next()).unwrap().parse().unwrap();
    assert!(f1 > 0.85, "{overall}");
    let one = run_ok("anomalies", &[&args[..], &["-w", "1", "-q"]].concat());
    assert!(String::from_utf8(out.stdout).unwrap() == one, "-w 1 and -w 2 differ");
}
