//! The `anomalies` job and its NAB scorer: the scorer against NAB's published scoreboard,
//! the job against a reference detector written here, determinism across workers, and
//! rejects.

mod common;

use std::path::PathBuf;

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
    let scored: Vec<Scored> = corpus
        .files
        .iter()
        .map(|(name, times, values)| {
            let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let range = if lo < hi { Range::Given(lo, hi) } else { Range::Learned };
            let mut d = Detector::new(detector, range).unwrap();
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
