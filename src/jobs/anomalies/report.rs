//! What the `anomalies` job reports besides its rows: duplicates as rejects of the input,
//! and the summary of anomalous values with, given labels, precision, recall and F1 per
//! key and overall.

use std::collections::BTreeMap;

use compact_str::CompactString;
use timely::dataflow::Stream;
use timely::dataflow::operators::vec::Map;

use super::{Duplicate, KeyCounts};
use crate::diag::{Counts, Diag};
use crate::exit::{fail, program_name};
use crate::operators::FoldAtEnd;
use crate::operators::ingest::IngestConfig;
use crate::operators::keyed::key_hash;
use crate::time::EventTime;

/// Duplicates as rejects of the input that `ingest` reads.
pub trait IntoRejects<'scope, T: EventTime> {
    /// Each duplicate as a rejects entry, counted as rejected; the first is fatal under
    /// `--strict`, as a malformed line is.
    fn into_rejects(self, ingest: &IngestConfig) -> Stream<'scope, T, Vec<Diag>>;
}

impl<'scope, T: EventTime> IntoRejects<'scope, T> for Stream<'scope, T, Vec<Duplicate>> {
    fn into_rejects(self, ingest: &IngestConfig) -> Stream<'scope, T, Vec<Diag>> {
        let (origin, strict) = (ingest.input.to_string(), ingest.strict);
        self.flat_map(move |d| {
            let reject = d.reject(&origin);
            if strict {
                fail(&format!("{}:{}: {}", reject.origin, reject.line, reject.reason));
            }
            [Diag::Reject(reject), Diag::Counts(Counts { rejected: 1, ..Counts::default() })]
        })
    }
}

/// The job's summary on stderr.
pub trait Summarize<'scope, T: EventTime> {
    /// Counts `(key, anomalous, labelled positive)` rows per key and, unless `quiet`,
    /// prints the summary when the input ends.
    fn summarize(self, quiet: bool);
}

impl<'scope, T: EventTime> Summarize<'scope, T>
    for Stream<'scope, T, Vec<(CompactString, bool, Option<bool>)>>
{
    fn summarize(self, quiet: bool) {
        self.fold_at_end_by(
            "CountPerKey",
            |row| key_hash(&row.0),
            BTreeMap::<CompactString, KeyCounts>::new(),
            |counts, (key, anomaly, positive)| {
                counts
                    .entry(key.clone())
                    .or_insert_with(|| KeyCounts { key, ..Default::default() })
                    .tally(anomaly, positive);
            },
            |counts| counts.into_values().collect::<Vec<_>>(),
        )
        .fold_at_end(
            "Summary",
            Vec::new(),
            |all, c| all.push(c),
            move |mut all: Vec<KeyCounts>| {
                if !quiet {
                    print_summary(&mut all);
                }
                Vec::<()>::new()
            },
        );
    }
}

/// Prints the anomaly counts, and with labels the evaluation per key and overall.
fn print_summary(all: &mut [KeyCounts]) {
    all.sort();
    let mut total = KeyCounts::default();
    for c in all.iter() {
        total.merge(c);
    }
    let name = program_name();
    eprintln!("{name}: {} of {} values anomalous over {} keys", total.anomalies, total.values, all.len());
    if total.labelled {
        for c in all.iter().filter(|c| c.labelled) {
            eprintln!("{name}: {}: {}", c.key, c.evaluation());
        }
        eprintln!("{name}: overall: {}", total.evaluation());
    }
}
