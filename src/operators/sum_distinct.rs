//! Per key, the running sum and the number of distinct members, over totally ordered time.
//!
//! SQL's `SUM(value), COUNT(DISTINCT member) GROUP BY key`, kept up to date. The input is
//! a collection of records whose differences are the values; each record names one
//! member and the keys it counts toward. The output is the collection of
//! `(key, (sum, members))`: a key is present while its sum is not zero, and `members`
//! counts its members whose own sum for the key is not zero. As with
//! [`SumTotal`](super::SumTotal), a time at which a key's row changes emits the old row
//! with `-1` (if it was present) and the new row with `+1` (if it is), and nothing when
//! the row is unchanged; differences must form a group.
//!
//! This is the collection that `count_total` per key, `distinct_total` + `count_total`
//! per key and a `join` of the two produce, consolidated; those arrange every
//! `(key, member)` update three times and the join emits pairs that cancel.
//!
//! **How.** Records go to their member's worker first, whole: a record that counts toward
//! six keys crosses one channel, once. There each member keeps its sum per key, and a
//! complete time ([`InTimeOrder`]) turns into one change per key it touched: the change
//! in the key's sum and in its member count (a member's sum leaving or reaching zero).
//! [`SumTotal`] adds those changes up per key. A time costs a lookup per record and per
//! key it counts toward, in a member's own small map; a member whose sums are all zero is
//! forgotten.

use std::hash::Hash;

use differential_dataflow::VecCollection;
use differential_dataflow::difference::{IsZero, Semigroup};
use rustc_hash::FxHashMap;
use timely::ExchangeData;

use super::keyed::key_hash;
use super::sum_total::SumTotal;
use super::time_order::InTimeOrder;
use crate::time::Millis;

/// Sums and distinct member counts per key.
pub trait SumDistinct<'scope, D, R> {
    /// Each key with the sum of the records that count toward it and the number of their
    /// members with a non-zero sum; `member(record)` names a record's member and
    /// `keys(record, out)` pushes the keys it counts toward. See the module documentation.
    fn sum_distinct<K, M>(
        self,
        member: impl Fn(&D) -> M + 'static,
        keys: impl Fn(&D, &mut Vec<K>) + 'static,
    ) -> VecCollection<'scope, Millis, (K, (R, isize)), isize>
    where
        K: ExchangeData + Hash + Eq + Clone,
        M: Hash + Eq + 'static;
}

impl<'scope, D, R> SumDistinct<'scope, D, R> for VecCollection<'scope, Millis, D, R>
where
    D: ExchangeData,
    R: ExchangeData + Semigroup + PartialEq + Clone,
{
    fn sum_distinct<K, M>(
        self,
        member: impl Fn(&D) -> M + 'static,
        keys: impl Fn(&D, &mut Vec<K>) + 'static,
    ) -> VecCollection<'scope, Millis, (K, (R, isize)), isize>
    where
        K: ExchangeData + Hash + Eq + Clone,
        M: Hash + Eq + 'static,
    {
        let member = std::rc::Rc::new(member);
        let route = {
            let member = std::rc::Rc::clone(&member);
            move |record: &D| key_hash(&member(record))
        };
        // Each member's sum per key.
        let mut members: FxHashMap<M, FxHashMap<K, R>> = FxHashMap::default();
        // What a time changes per key: its sum, and its count of members.
        let mut changes: FxHashMap<K, (R, isize)> = FxHashMap::default();
        let mut record_keys: Vec<K> = Vec::new();
        self.in_time_order("SumDistinctMembers", route, move |_time, updates, out| {
            for (record, diff) in updates.drain(..) {
                keys(&record, &mut record_keys);
                let sums = members.entry(member(&record)).or_default();
                for key in record_keys.drain(..) {
                    let present = match sums.get_mut(&key) {
                        Some(sum) => {
                            sum.plus_equals(&diff);
                            if sum.is_zero() {
                                sums.remove(&key);
                                -1
                            } else {
                                0
                            }
                        }
                        None if diff.is_zero() => 0,
                        None => {
                            sums.insert(key.clone(), diff.clone());
                            1
                        }
                    };
                    match changes.get_mut(&key) {
                        Some((sum, count)) => {
                            sum.plus_equals(&diff);
                            *count += present;
                        }
                        None => {
                            changes.insert(key, (diff.clone(), present));
                        }
                    }
                }
                if sums.is_empty() {
                    members.remove(&member(&record));
                }
            }
            out.extend(changes.drain().filter(|(_, change)| !change.is_zero()));
        })
        .sum_total()
        // A key whose members' sums cancel has members but no sum: like a join of the
        // sums with the counts, leave it out.
        .filter(|(_, (sum, _))| !sum.is_zero())
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

    /// A record: its member and, as bits, the keys 0..4 it counts toward.
    type Update = ((u32, u8), Millis, i64);

    /// A record and its difference.
    type Record = ((u32, u8), i64);

    /// The keys whose bits are set in `mask`.
    fn keys_of(mask: u8) -> impl Iterator<Item = u32> {
        (0..4u32).filter(move |k| mask & (1 << k) != 0)
    }

    /// Random records of 6 members over 200 times, some cancelling within a time, sent
    /// in batches whose times go back as far as the frontier allows.
    fn random_updates(seed: u64) -> Vec<(Millis, Vec<Update>)> {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
        let mut batches = Vec::new();
        for frontier in (0..200u64).step_by(10) {
            let mut batch = Vec::new();
            for _ in 0..rng.random_range(0..40) {
                let time = frontier + rng.random_range(0..30);
                let record = (rng.random_range(0..6u32), rng.random_range(0..16u8));
                let diff = rng.random_range(-3..=3i64);
                batch.push((record, time, diff));
                if rng.random_bool(0.1) {
                    batch.push((record, time, -diff));
                }
            }
            batches.push((frontier, batch));
        }
        batches
    }

    type Rows = BTreeMap<(Millis, (u32, (i64, isize))), isize>;

    /// The reference: replay the records in time order, keeping every (key, member) sum,
    /// and after each time write the rows of the keys whose row changed.
    fn fold(batches: &[(Millis, Vec<Update>)]) -> Rows {
        let mut per_time: BTreeMap<Millis, Vec<Record>> = BTreeMap::new();
        for (_, batch) in batches {
            for (record, time, diff) in batch {
                per_time.entry(*time).or_default().push((*record, *diff));
            }
        }
        let mut sums: BTreeMap<(u32, u32), i64> = BTreeMap::new();
        let rows = |sums: &BTreeMap<(u32, u32), i64>| -> BTreeMap<u32, (i64, isize)> {
            let mut rows: BTreeMap<u32, (i64, isize)> = BTreeMap::new();
            for ((key, _), sum) in sums {
                let row = rows.entry(*key).or_default();
                row.0 += sum;
                row.1 += isize::from(*sum != 0);
            }
            rows.retain(|_, (sum, _)| *sum != 0);
            rows
        };
        let mut want = BTreeMap::new();
        for (time, records) in per_time {
            let before = rows(&sums);
            for ((member, mask), diff) in records {
                for key in keys_of(mask) {
                    *sums.entry((key, member)).or_default() += diff;
                }
            }
            let after = rows(&sums);
            for (key, row) in &before {
                *want.entry((time, (*key, *row))).or_insert(0) -= 1;
            }
            for (key, row) in &after {
                *want.entry((time, (*key, *row))).or_insert(0) += 1;
            }
        }
        want.retain(|_, r| *r != 0);
        want
    }

    #[test]
    fn sum_distinct_equals_a_fold_for_any_worker_count() {
        for seed in 0..4 {
            let batches = random_updates(seed);
            let want = fold(&batches);
            assert!(want.len() > 200, "the test needs many changes");
            for workers in [1, 3] {
                let out = collect(workers, batches.clone(), |s| {
                    s.as_collection()
                        .sum_distinct(|(member, _)| *member, |(_, mask), keys| keys.extend(keys_of(*mask)))
                        .inner
                        .map(|(row, t, r)| (t, row, r))
                });
                let mut got: Rows = BTreeMap::new();
                for (_, (t, row, r)) in out {
                    assert!(r == 1 || r == -1, "one row per change");
                    let count = got.entry((t, row)).or_insert(0);
                    *count += r;
                    assert!(count.abs() == 1, "no row both retracted and asserted at {t}");
                }
                assert_eq!(got, want, "seed {seed}, -w {workers}");
            }
        }
    }
}
