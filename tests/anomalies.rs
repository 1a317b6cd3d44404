//! The `anomalies` job and its NAB scorer: the scorer against NAB's published scoreboard,
//! the job against a reference detector written here, determinism across workers, and
//! rejects.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{TempDir, csv_rows, run, run_ok, two_processes};

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
    let text = std::fs::read_to_string(&ordered).unwrap();
    let mut lines: Vec<&str> = text.lines().skip(1).collect();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for i in (1..lines.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        lines.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let shuffled = dir.path("shuffled.csv");
    std::fs::write(&shuffled, format!("timestamp,value,key\n{}\n", lines.join("\n"))).unwrap();
    (ordered, shuffled)
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
    let text = std::fs::read_to_string(&ordered).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let bad = [
        (100, "2026-10-01 01:00:00,12.5x,s0001", "bad value"),
        (200, "2026-10-01 01:00:00,NaN,s0001", "bad value"),
        (300, "2026-13-01 01:00:00,1,s0002", "bad timestamp"),
        (400, "yesterday,1,s0002", "bad timestamp"),
        (500, "2026-10-01 01:00:00,1,s0003,extra", "wrong field count"),
    ];
    for (at, line, _) in bad {
        lines.insert(at - 1, line.to_owned());
    }
    let dirty = dir.path("dirty.csv");
    std::fs::write(&dirty, lines.join("\n") + "\n").unwrap();
    let rejects = dir.path("rejects.txt");
    let out = job(&dirty, &["--rejects", rejects.to_str().unwrap(), "-w", "2"]);
    let rejected = std::fs::read_to_string(&rejects).unwrap();
    let got: Vec<&str> = rejected.lines().collect();
    assert_eq!(got.len(), bad.len(), "{rejected}");
    for ((at, _, reason), line) in bad.iter().zip(&got) {
        let prefix = format!("{}:{at}: {reason}", dirty.display());
        assert!(line.starts_with(&prefix), "{line} does not start with {prefix}");
    }
    assert!(out == job(&ordered, &["-w", "1"]), "the valid rows give the clean file's scores");
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
    ] {
        let out = run("anomalies", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    let out = run("nab_score", &["--nab", "/nonexistent", "x.csv"]);
    assert_eq!(out.status.code(), Some(2));
}
