//! The `gen:` input: seeded records produced inside the job, so no file is needed.
//!
//! Worker `w` of `n` produces rows `w, w + n, w + 2n, …`. Each row depends only on the
//! seed and its number, so the union over workers is the same data for any `n`, and the
//! same as `gen transactions --rows N --seed S` writes to a file.

use std::collections::BTreeMap;

use std::time::{Duration as StdDuration, Instant};

use crate::record::registry::generator;
use crate::record::{RowGenerator, Timeline};
use crate::time::Millis;

use super::lines::{Line, Poll};

/// What a `gen:` spec asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct GenSpec {
    /// The record kind, e.g. `transactions`.
    pub kind: String,
    /// Rows in all; `None` runs until stopped.
    pub count: Option<u64>,
    /// Rows per second over all workers; `None` produces as fast as possible.
    pub rate: Option<u64>,
    /// The seed.
    pub seed: u64,
    /// The kind's own options, such as `burst-every=500`.
    pub options: Vec<(String, String)>,
    /// For a paced generator: the wall-clock time (ms) its schedule starts, the same for
    /// every worker; `None` is when the worker starts. A restarted job passes its first
    /// start, so it makes the same rows with the same event times.
    pub start: Option<Millis>,
}

impl GenSpec {
    /// Parses the part after `gen:`, e.g. `transactions?rate=1000&count=50000&seed=7`.
    pub fn parse(text: &str) -> Result<GenSpec, String> {
        let (kind, query) = text.split_once('?').unwrap_or((text, ""));
        let mut params: BTreeMap<&str, &str> = BTreeMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("invalid gen parameter '{pair}': expected KEY=VALUE"))?;
            params.insert(k, v);
        }
        let number = |key: &str| -> Result<Option<u64>, String> {
            params
                .get(key)
                .map(|v| {
                    v.replace('_', "")
                        .parse::<u64>()
                        .map_err(|_| format!("invalid gen parameter {key}={v}: expected a whole number"))
                })
                .transpose()
        };
        let spec = GenSpec {
            kind: kind.to_owned(),
            count: number("count")?,
            rate: number("rate")?.filter(|&r| r > 0),
            seed: number("seed")?.unwrap_or(42),
            options: params
                .iter()
                .filter(|(k, _)| !["count", "rate", "seed"].contains(k))
                .map(|(k, v)| (k.replace('_', "-"), (*v).to_owned()))
                .collect(),
            start: None,
        };
        // The kind and its options are checked now, so a worker cannot fail on them.
        generator(&spec.kind, 0, Timeline::default_history(), &spec.options)?;
        Ok(spec)
    }
}

/// Rows generated per block.
const BLOCK_ROWS: u64 = 4096;

/// One worker's share of a generator, produced as fast as possible or paced.
///
/// A paced generator is open-loop: row `i` is due at `start + i / rate` whatever the
/// job is doing, and its event time is that scheduled time, so a job that falls behind
/// shows it as latency rather than as a slower input.
pub struct GenRange {
    generator: Box<dyn RowGenerator>,
    timeline: Timeline,
    next: u64,
    step: u64,
    count: u64,
    pace: Option<(Instant, u64)>,
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl GenRange {
    /// Rows `part, part + parts, …` below `spec.count`.
    pub fn new(spec: &GenSpec, part: usize, parts: usize) -> Self {
        let (timeline, pace) = match spec.rate {
            None => (Timeline::default_history(), None),
            Some(rate) => {
                let now = crate::time::now_millis();
                let start = spec.start.unwrap_or(now);
                // Rows scheduled before now (a restart) are due at once.
                let behind = StdDuration::from_millis(now.saturating_sub(start));
                let base = Instant::now().checked_sub(behind).unwrap_or_else(Instant::now);
                (Timeline::Ordered { start, step_nanos: 1_000_000_000 / rate, jitter: 0 }, Some((base, rate)))
            }
        };
        GenRange {
            generator: generator(&spec.kind, spec.seed, timeline, &spec.options)
                .expect("kind checked when parsed"),
            timeline,
            next: part as u64,
            step: parts as u64,
            count: spec.count.unwrap_or(u64::MAX),
            pace,
            buf: Vec::with_capacity(BLOCK_ROWS as usize * 100),
            ends: Vec::with_capacity(BLOCK_ROWS as usize),
        }
    }

    /// The next row this range makes: where it resumes.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Resumes at row `next`, a position this range reported: each row depends only on
    /// the seed and its number, so the rows that follow are the ones it would have made.
    pub fn resume_at(&mut self, next: u64) {
        self.next = next;
    }

    /// For a paced generator: when it started and its rate; row `i` is due `i / rate`
    /// seconds after the start.
    pub fn pace(&self) -> Option<(Instant, u64)> {
        self.pace
    }

    /// The event time of the next row, when rows come in time order.
    pub fn next_time(&self) -> Option<Millis> {
        match self.timeline {
            Timeline::Ordered { start, step_nanos, .. } if self.next < self.count => {
                Some(start + (self.next as u128 * step_nanos as u128 / 1_000_000) as u64)
            }
            _ => None,
        }
    }

    /// Hands out the rows that are due, up to a block.
    pub fn next_block(&mut self, mut each: impl FnMut(Line<'_>)) -> Poll {
        if self.next >= self.count {
            return Poll::Done;
        }
        // Rows due so far, over all workers.
        let due = match self.pace {
            None => u64::MAX,
            Some((start, rate)) => (start.elapsed().as_nanos() * rate as u128 / 1_000_000_000) as u64 + 1,
        };
        if self.next >= due {
            let (start, rate) = self.pace.expect("only paced generators wait");
            let at = StdDuration::from_nanos((self.next as u128 * 1_000_000_000 / rate as u128) as u64);
            return Poll::Wait(at.saturating_sub(start.elapsed()).max(StdDuration::from_micros(100)));
        }
        self.buf.clear();
        self.ends.clear();
        let first = self.next;
        for _ in 0..BLOCK_ROWS {
            if self.next >= self.count || self.next >= due {
                break;
            }
            self.generator.write_row(self.next, &mut self.buf);
            self.ends.push(self.buf.len());
            self.next += self.step;
        }
        let mut start = 0;
        for (k, &end) in self.ends.iter().enumerate() {
            let index = first + k as u64 * self.step;
            each(Line { index, bytes: &self.buf[start..end], flaw: None });
            start = end;
        }
        if self.next >= self.count { Poll::Done } else { Poll::More }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let s = GenSpec::parse("transactions?rate=1000&count=50_000&seed=7").unwrap();
        assert_eq!((s.count, s.rate, s.seed), (Some(50_000), Some(1000), 7));
        assert!(GenSpec::parse("transactions?colour=red").is_err());
        assert!(GenSpec::parse("cats").is_err());
        assert!(GenSpec::parse("transactions?count=x").is_err());
    }

    #[test]
    fn worker_shares_partition_the_rows() {
        let spec = GenSpec::parse("transactions?count=10000&seed=3").unwrap();
        let mut all = Vec::new();
        for part in 0..3 {
            let mut range = GenRange::new(&spec, part, 3);
            while range.next_block(|l| all.push((l.index, l.bytes.to_vec()))) == Poll::More {}
        }
        all.sort();
        let generator = generator("transactions", 3, Timeline::default_history(), &[]).unwrap();
        assert_eq!(all.len(), 10_000);
        for (i, (index, bytes)) in all.iter().enumerate() {
            assert_eq!(*index, i as u64);
            let mut want = Vec::new();
            generator.write_row(i as u64, &mut want);
            assert_eq!(bytes, &want);
        }
    }
}
