//! Each key's running sum over totally ordered time, kept in a hash map.
//!
//! The same collection as differential's `count_total`: for every time at which a key's
//! sum changes, `((key, before), time, -1)` unless `before` is zero and
//! `((key, after), time, +1)` unless `after` is zero. A key whose updates at a time
//! cancel emits nothing. Differences must form a group (every value has an inverse, as
//! integers and exact totals do), so a sum changes exactly when its time's updates do
//! not cancel.
//!
//! `count_total` arranges its input and, per batch, walks each changed key's history in
//! the arrangement. Here each key's sum is the state itself: a complete time costs a
//! hash lookup per update ([`InTimeOrder`]). A key whose sum returns to zero is
//! forgotten, so state holds the keys present now, not the history.

use std::hash::Hash;

use differential_dataflow::VecCollection;
use differential_dataflow::difference::Semigroup;
use rustc_hash::FxHashMap;
use timely::ExchangeData;

use super::keyed::key_hash;
use super::time_order::InTimeOrder;
use crate::time::Millis;

/// Running sums per key, as a collection of `(key, sum)`.
pub trait SumTotal<'scope, K, R> {
    /// Each key with the sum of its differences so far, changing at the times the sum
    /// changes; see the module documentation.
    fn sum_total(self) -> VecCollection<'scope, Millis, (K, R), isize>;
}

/// A key's sum and the last time it was changed.
struct Slot<R> {
    sum: R,
    changed: Millis,
}

impl<'scope, K, R> SumTotal<'scope, K, R> for VecCollection<'scope, Millis, K, R>
where
    K: ExchangeData + Hash + Eq + Clone,
    R: ExchangeData + Semigroup + PartialEq + Clone,
{
    fn sum_total(self) -> VecCollection<'scope, Millis, (K, R), isize> {
        let mut sums: FxHashMap<K, Slot<R>> = FxHashMap::default();
        // The keys a time changes, with their sums before it.
        let mut touched: Vec<(K, Option<R>)> = Vec::new();
        self.in_time_order("SumTotal", key_hash, move |time, updates, out| {
            for (key, diff) in updates.drain(..) {
                match sums.get_mut(&key) {
                    Some(slot) => {
                        if slot.changed != time {
                            slot.changed = time;
                            touched.push((key, Some(slot.sum.clone())));
                        }
                        slot.sum.plus_equals(&diff);
                    }
                    None => {
                        touched.push((key.clone(), None));
                        sums.insert(key, Slot { sum: diff, changed: time });
                    }
                }
            }
            for (key, before) in touched.drain(..) {
                let slot = &sums[&key];
                if before.as_ref() == Some(&slot.sum) {
                    continue;
                }
                let after = (!slot.sum.is_zero()).then(|| slot.sum.clone());
                if after.is_none() {
                    sums.remove(&key);
                }
                if let Some(before) = before {
                    out.push(((key.clone(), before), -1));
                }
                if let Some(after) = after {
                    out.push(((key, after), 1));
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use differential_dataflow::AsCollection;
    use rand::{Rng, SeedableRng};
    use timely::dataflow::operators::vec::Map;

    use super::*;
    use crate::operators::testing::collect;

    /// Batches of `(key, time, diff)` updates, each with the time it is sent at.
    type Batches = Vec<(Millis, Vec<(u32, Millis, i64)>)>;

    /// Random updates of 5 keys over 200 times, some cancelling within a time, sent in
    /// batches whose times go back as far as the frontier allows.
    fn random_updates(seed: u64) -> Batches {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
        let mut batches = Vec::new();
        for frontier in (0..200u64).step_by(10) {
            let mut batch = Vec::new();
            for _ in 0..rng.random_range(0..40) {
                let time = frontier + rng.random_range(0..30);
                let (key, diff) = (rng.random_range(0..5u32), rng.random_range(-3..=3i64));
                batch.push((key, time, diff));
                if rng.random_bool(0.1) {
                    batch.push((key, time, -diff));
                }
            }
            batches.push((frontier, batch));
        }
        batches
    }

    /// The reference: replay the updates in time order and write each key's old and new
    /// sum at every time its sum changes.
    fn fold(batches: &Batches) -> BTreeMap<(Millis, (u32, i64)), isize> {
        let mut per_time: BTreeMap<(Millis, u32), i64> = BTreeMap::new();
        for (_, batch) in batches {
            for (key, time, diff) in batch {
                *per_time.entry((*time, *key)).or_default() += diff;
            }
        }
        let (mut sums, mut want) = (BTreeMap::<u32, i64>::new(), BTreeMap::new());
        for ((time, key), diff) in per_time {
            let sum = sums.entry(key).or_default();
            if diff == 0 {
                continue;
            }
            if *sum != 0 {
                *want.entry((time, (key, *sum))).or_insert(0) -= 1;
            }
            *sum += diff;
            if *sum != 0 {
                *want.entry((time, (key, *sum))).or_insert(0) += 1;
            }
        }
        want
    }

    #[test]
    fn sum_total_equals_a_fold_for_any_worker_count() {
        for seed in 0..4 {
            let batches = random_updates(seed);
            let want = fold(&batches);
            assert!(want.len() > 200, "the test needs many changes");
            for workers in [1, 3] {
                let out = collect(workers, batches.clone(), |s| {
                    s.as_collection().sum_total().inner.map(|(kv, t, r)| (t, kv, r))
                });
                let mut got: BTreeMap<(Millis, (u32, i64)), isize> = BTreeMap::new();
                for (_, (t, kv, r)) in out {
                    *got.entry((t, kv)).or_insert(0) += r;
                    assert!(r == 1 || r == -1, "one row per change");
                }
                got.retain(|_, r| *r != 0);
                assert_eq!(got, want, "seed {seed}, -w {workers}");
            }
        }
    }
}
