//! Contextual Anomaly Detector, the `cad` detector (the accurate one).
//!
//! A port of CAD OSE (Contextual Anomaly Detector, Open Source Edition; M. Smirnov, 2016,
//! <https://github.com/smirmik/CAD>), as it stands in NAB's `nab/detectors/context_ose`
//! (MIT licence since NAB's relicensing), where it scores 69.9 on the standard profile.
//!
//! * **Facts.** A value is quantised into 8 levels of the range (`⌊(v - min) / step⌋`,
//!   `step = (max - min) / 7`) and the level's 3 bits become 3 facts (`2 s + bit s`).
//! * **Contexts.** A context pairs a left set of facts (the previous value's facts and the
//!   contexts that were active then, as "neuron" facts `2^31 + id`) with a right set (the
//!   current value's facts). Each step stores the zero-level context (previous facts,
//!   current facts) if new, crosses the stored contexts with the current facts, and
//!   learns new contexts from partial matches.
//! * **Score.** `(1 - active / selected + added / potential) / 2`: low when the contexts
//!   that the previous step selected are confirmed now, high when the step had to learn.
//!   After a score of 0.75 or more, the next [`REST`] values score 0.
//!
//! **Same results as the original.** The original breaks ties between equally counted
//! active contexts by Python 2's hash of their fact tuples, and its iteration order over
//! a left semi-context's contexts is CPython 2.7's dict slot order; both decide which
//! contexts learn next. This port computes both the same way ([`py2_hash`],
//! [`SlotOrder`]), so it gives NAB's published per-row scores on 57 of the 58 files (on
//! the last, one value's quotient is 7.000000000000001 and its level depends on how
//! pandas parsed it; docs/anomalies.md), and with NAB's range and rest period per file
//! it reproduces the scoreboard's 69.90 (`tests/anomalies.rs`).
//!
//! **Range.** Given (`--range`): fixed, values outside are put in the end levels. Learned
//! (default): the min and max so far, including the value being scored.
//!
//! **State and cost.** Per key: the contexts learned, which grow with the variety of the
//! series, at most [`MAX_CONTEXTS`]. At the cap no new context or semi-context is stored:
//! the detector keeps scoring with what it knows, and a step whose context is unknown
//! counts as not having learned anything. Per value: a pass over the contexts of every
//! left semi-context the previous facts fully match.

use std::collections::HashMap;

use rustc_hash::FxBuildHasher;
use serde::{Deserialize, Serialize};

use super::range::Range;

/// Values that score 0 after a score at or above [`BASE_THRESHOLD`] (NAB gives CAD OSE a
/// fifth of its probationary period, at most 750 / 5).
pub const REST: usize = 150;
/// A score at or above this starts a rest period.
pub const BASE_THRESHOLD: f64 = 0.75;
/// Longest left semi-context that new contexts are learned from.
pub const MAX_LEFT_SEMI_CONTEXT: usize = 7;
/// Active contexts that become neuron facts for the next step.
pub const MAX_ACTIVE_NEURONS: usize = 15;
/// Bits a value is quantised to.
pub const VALUE_BITS: u32 = 3;
/// Most contexts stored per key.
pub const MAX_CONTEXTS: usize = 1 << 16;

/// The first neuron fact: facts below are value bits, facts from here are active contexts.
const NEURON: u64 = 1 << 31;

type Map<K, V> = HashMap<K, V, FxBuildHasher>;

/// A fact tuple's hash as CPython 2.7 computes it on 64 bits (`tuplehash`, with
/// `hash(n) = n` for ints).
pub fn py2_hash(facts: &[u64]) -> i64 {
    let mut x: i64 = 0x345678;
    let mut mult: i64 = 1_000_003;
    for (i, &fact) in facts.iter().enumerate() {
        let y = if fact as i64 == -1 { -2 } else { fact as i64 };
        x = (x ^ y).wrapping_mul(mult);
        let left = (facts.len() - 1 - i) as i64;
        mult = mult.wrapping_add(82_520 + left + left);
    }
    x = x.wrapping_add(97_531);
    if x == -1 { -2 } else { x }
}

/// A map from small non-negative ints to ints that iterates in CPython 2.7's dict slot
/// order (open addressing with `perturb` probing; resized to the smallest power of two
/// above 4 × used, at least 8, when two thirds full). Nothing is ever removed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SlotOrder {
    slots: Vec<(u32, u32)>,
    used: u32,
}

const EMPTY: u32 = u32::MAX;

impl Default for SlotOrder {
    fn default() -> Self {
        SlotOrder { slots: vec![(EMPTY, 0); 8], used: 0 }
    }
}

impl SlotOrder {
    fn slot(slots: &[(u32, u32)], key: u32) -> usize {
        let mask = slots.len() as u64 - 1;
        let mut i = key as u64 & mask;
        let mut perturb = key as u64;
        loop {
            let s = slots[(i & mask) as usize].0;
            if s == EMPTY || s == key {
                return (i & mask) as usize;
            }
            i = (i << 2).wrapping_add(i).wrapping_add(perturb).wrapping_add(1);
            perturb >>= 5;
        }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: u32) -> Option<u32> {
        let entry = self.slots[Self::slot(&self.slots, key)];
        (entry.0 == key).then_some(entry.1)
    }

    /// The value of `key`, inserting `value` if absent (Python's `setdefault`).
    pub fn setdefault(&mut self, key: u32, value: u32) -> u32 {
        let at = Self::slot(&self.slots, key);
        if self.slots[at].0 == key {
            return self.slots[at].1;
        }
        self.slots[at] = (key, value);
        self.used += 1;
        if self.used as usize * 3 >= self.slots.len() * 2 {
            let mut size = 8;
            while size <= 4 * self.used as usize {
                size <<= 1;
            }
            let old = std::mem::replace(&mut self.slots, vec![(EMPTY, 0); size]);
            for entry in old.into_iter().filter(|e| e.0 != EMPTY) {
                let at = Self::slot(&self.slots, entry.0);
                self.slots[at] = entry;
            }
        }
        value
    }

    /// The entries in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.slots.iter().copied().filter(|e| e.0 != EMPTY)
    }
}

/// A stored context.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Context {
    /// Steps in which it was active.
    count: u64,
    /// Stored, or seen again, as a step's zero-level context.
    zero_level: bool,
    left_hash: i64,
    right_hash: i64,
}

/// One side's semi-contexts: fact sets shared by contexts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Side {
    /// Semi-context id by its facts' hash.
    ids: Map<i64, u32>,
    /// Semi-context ids by fact.
    by_fact: Map<u64, Vec<u32>>,
    /// Each semi-context's number of facts.
    len: Vec<u32>,
    /// Each semi-context's facts present in the last crossing, in crossing order.
    matched: Vec<Vec<u64>>,
    /// The semi-contexts the last crossing matched, in id order.
    crossed: Vec<u32>,
}

impl Side {
    /// The id of the semi-context with these facts, stored if new (`None` at the cap).
    fn id(&mut self, facts: Facts, hash: i64, room: bool) -> Option<(u32, bool)> {
        if let Some(&id) = self.ids.get(&hash) {
            return Some((id, false));
        }
        if !room {
            return None;
        }
        let facts = match facts {
            Facts::Given(facts) => facts.to_vec(),
            Facts::Matched(of) => self.matched[of as usize].clone(),
        };
        let id = self.len.len() as u32;
        self.ids.insert(hash, id);
        self.len.push(facts.len() as u32);
        self.matched.push(Vec::new());
        for fact in facts {
            self.by_fact.entry(fact).or_default().push(id);
        }
        Some((id, true))
    }

    /// Matches the semi-contexts against `facts`.
    fn cross(&mut self, facts: &[u64]) {
        for &id in &self.crossed {
            self.matched[id as usize].clear();
        }
        self.crossed.clear();
        for &fact in facts {
            for &id in self.by_fact.get(&fact).map_or(&[][..], |v| &v[..]) {
                let matched = &mut self.matched[id as usize];
                if matched.is_empty() {
                    self.crossed.push(id);
                }
                matched.push(fact);
            }
        }
        self.crossed.sort_unstable();
    }

    fn matched(&self, id: u32) -> usize {
        self.matched[id as usize].len()
    }
}

/// A semi-context's facts: given, or those a stored semi-context matched in the last
/// crossing (copied only if they make a new semi-context).
enum Facts<'a> {
    Given(&'a [u64]),
    Matched(u32),
}

/// A context that might be learned: the left and right semi-contexts whose matched facts
/// it pairs, and the hashes of those facts.
type Potential = (u32, u32, i64, i64);

/// One key's CAD state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Contextual {
    given: Option<(f64, f64)>,
    min: f64,
    max: f64,
    rest: usize,
    /// Most contexts stored.
    cap: usize,
    /// Scores appended since the last one at or above [`BASE_THRESHOLD`].
    since_high: usize,
    left: Side,
    right: Side,
    /// Each left semi-context's contexts: right semi-context id → context id.
    contexts_of: Vec<SlotOrder>,
    contexts: Vec<Context>,
    /// The zero-level context stored this step; 0 when none (the original's `False`,
    /// which equals context 0, so context 0 is skipped then too).
    new_context: u32,
    /// The previous step's facts and neuron facts, sorted.
    left_facts: Vec<u64>,
}

impl Contextual {
    /// A detector with the given range, or one learned causally, and [`REST`].
    pub fn new(range: Range) -> Self {
        Self::with_rest(range, REST)
    }

    /// A detector whose rest period is `rest` values (NAB: its probationary period / 5).
    pub fn with_rest(range: Range, rest: usize) -> Self {
        Contextual {
            given: match range {
                Range::Given(lo, hi) => Some((lo, hi)),
                Range::Learned => None,
            },
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            rest,
            cap: MAX_CONTEXTS,
            since_high: 0,
            left: Side::default(),
            right: Side::default(),
            contexts_of: Vec::new(),
            contexts: Vec::new(),
            new_context: 0,
            left_facts: Vec::new(),
        }
    }

    /// The same detector storing at most `cap` contexts.
    pub fn with_cap(self, cap: usize) -> Self {
        Contextual { cap, ..self }
    }

    /// How many contexts the key holds.
    pub fn contexts(&self) -> usize {
        self.contexts.len()
    }

    /// The value's quantisation level, 0 to 7.
    fn level(&mut self, value: f64) -> u64 {
        let (min, max) = super::range::bounds(self.given, (&mut self.min, &mut self.max), value);
        let top = ((1 << VALUE_BITS) - 1) as f64;
        let range = if max - min == 0.0 { top } else { max - min };
        let q = (value - min) / (range / top);
        if q.is_nan() || q <= 0.0 { 0 } else { (q as u64).min(top as u64) }
    }

    /// Scores the next value, in `[0, 1]`.
    pub fn score(&mut self, value: f64) -> f64 {
        let level = self.level(value);
        let facts: Vec<u64> = (0..VALUE_BITS as u64).map(|s| 2 * s + (level >> s & 1)).collect();
        let (selected_active, added) = self.step(&facts);
        let current = (1.0 - selected_active + added) / 2.0;
        let score = if self.since_high >= self.rest { current } else { 0.0 };
        self.since_high = if current >= BASE_THRESHOLD { 0 } else { self.since_high + 1 };
        score
    }

    /// One step over the current facts (sorted, distinct): the share of selected contexts
    /// that are active, and the share of potential new contexts that were new.
    fn step(&mut self, facts: &[u64]) -> (f64, f64) {
        // Potential contexts are told apart by their facts' hashes, as the original tells
        // semi-contexts apart.
        let mut unique: std::collections::HashSet<(i64, i64), FxBuildHasher> = Default::default();
        let mut new_flag = false;
        if !self.left_facts.is_empty() {
            let left = std::mem::take(&mut self.left_facts);
            let hashes = (py2_hash(&left), py2_hash(facts));
            new_flag = self.store(Facts::Given(&left), Facts::Given(facts), hashes, true);
            unique.insert(hashes);
        }

        self.right.cross(facts);
        let (mut active, selected, potential) = self.update(new_flag);
        unique.extend(potential.iter().map(|p| (p.2, p.3)));

        let selected_active = if selected > 0 { active.len() as f64 / selected as f64 } else { 0.0 };
        // The most counted contexts (ties by hashes, as the original sorts); their order
        // does not matter, so a selection does.
        if active.len() > MAX_ACTIVE_NEURONS {
            let cut = active.len() - MAX_ACTIVE_NEURONS;
            active.select_nth_unstable_by_key(cut, |&(_, count, lh, rh)| (count, lh, rh));
            active.drain(..cut);
        }
        let mut left_facts: Vec<u64> = facts.to_vec();
        left_facts.extend(active.iter().map(|a| NEURON + a.0 as u64));
        left_facts.sort_unstable();
        left_facts.dedup();
        self.left_facts = left_facts;

        let mut added = potential
            .iter()
            .filter(|&&(l, r, lh, rh)| self.store(Facts::Matched(l), Facts::Matched(r), (lh, rh), false))
            .count();
        self.left.cross(&self.left_facts);
        added += new_flag as usize;
        let added = if new_flag && !unique.is_empty() { added as f64 / unique.len() as f64 } else { 0.0 };
        (selected_active, added)
    }

    /// Stores the context (`left`, `right`) if new; true if it was. A zero-level context
    /// becomes this step's new context, or, if known, is marked zero-level.
    fn store(
        &mut self,
        left: Facts,
        right: Facts,
        (left_hash, right_hash): (i64, i64),
        zero_level: bool,
    ) -> bool {
        let room = self.contexts.len() < self.cap;
        let Some((l, new_left)) = self.left.id(left, left_hash, room) else { return false };
        if new_left {
            self.contexts_of.push(SlotOrder::default());
        }
        let Some((r, _)) = self.right.id(right, right_hash, room) else { return false };
        let next = self.contexts.len() as u32;
        let contexts = &mut self.contexts_of[l as usize];
        let id = if room {
            contexts.setdefault(r, next)
        } else {
            match contexts.get(r) {
                Some(id) => id,
                None => return false,
            }
        };
        if id == next {
            self.contexts.push(Context { count: 0, zero_level, left_hash, right_hash });
            if zero_level {
                self.new_context = id;
            }
            true
        } else {
            if zero_level {
                self.contexts[id as usize].zero_level = true;
            }
            false
        }
    }

    /// Counts the contexts that the last crossings select and confirm, and lists the
    /// potential new contexts: `(active (id, count, left hash, right hash), selected,
    /// potential)`.
    #[allow(clippy::type_complexity)]
    fn update(&mut self, new_flag: bool) -> (Vec<(u32, u64, i64, i64)>, usize, Vec<Potential>) {
        let mut active = Vec::new();
        let mut selected = 0;
        let mut potential = Vec::new();
        for &l in &self.left.crossed {
            let left_matched = self.left.matched(l);
            let mut left_hash = None;
            let full_left = self.left.len[l as usize] as usize == left_matched;
            for (r, id) in self.contexts_of[l as usize].iter() {
                if id == self.new_context {
                    continue;
                }
                let right_matched = self.right.matched(r);
                let context = &mut self.contexts[id as usize];
                let learn = context.zero_level && new_flag && left_matched <= MAX_LEFT_SEMI_CONTEXT;
                if full_left {
                    selected += 1;
                    if right_matched == 0 {
                        continue;
                    }
                    if self.right.len[r as usize] as usize == right_matched {
                        context.count += 1;
                        active.push((id, context.count, context.left_hash, context.right_hash));
                        continue;
                    }
                } else if right_matched == 0 {
                    continue;
                }
                if learn {
                    let lh = *left_hash.get_or_insert_with(|| py2_hash(&self.left.matched[l as usize]));
                    potential.push((l, r, lh, py2_hash(&self.right.matched[r as usize])));
                }
            }
        }
        self.new_context = 0;
        (active, selected, potential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_no_context_is_stored_and_scores_stay_in_range() {
        let values: Vec<f64> = (0..5_000u64).map(|i| ((i * 7_919) % 1_000) as f64 / 10.0).collect();
        let mut free = Contextual::with_rest(Range::Given(0.0, 100.0), 10);
        let mut capped = Contextual::with_rest(Range::Given(0.0, 100.0), 10).with_cap(300);
        let mut differ = 0;
        for &v in &values {
            let (a, b) = (free.score(v), capped.score(v));
            assert!((0.0..=1.0).contains(&b), "score {b}");
            differ += (a != b) as usize;
        }
        assert!(free.contexts() > 300, "the series needs more than the cap: {}", free.contexts());
        assert_eq!(capped.contexts(), 300);
        assert!(differ > 0, "the cap changes what is learned");
    }

    /// CPython 2.7's `hash` of these tuples on 64 bits.
    #[test]
    fn tuple_hashes_are_python_2s() {
        assert_eq!(py2_hash(&[]), 3_527_539);
        assert_eq!(py2_hash(&[1]), 3_430_019_387_558);
        assert_eq!(py2_hash(&[1, 2]), 3_713_081_631_934_410_656);
        assert_eq!(py2_hash(&[0, 2, 4]), 1_267_307_236_350_160_189);
        assert_eq!(py2_hash(&[1, 3, 5, NEURON + 7]), -1_085_064_435_035_546_291);
    }

    /// 8, 0 and 16 collide in slot 0 of 8, so the order is the probing's, not the keys'.
    #[test]
    fn slot_order_follows_cpython_2_probing_and_resizing() {
        let mut d = SlotOrder::default();
        for k in [8, 0, 16, 1] {
            d.setdefault(k, k);
        }
        let keys: Vec<u32> = d.iter().map(|e| e.0).collect();
        assert_eq!(keys, python_order(&[8, 0, 16, 1]));
        let mut d = SlotOrder::default();
        let inserted: Vec<u32> = (0..40).map(|i| (i * 7_919 + 11) % 100_003).collect();
        for &k in &inserted {
            assert_eq!(d.setdefault(k, k + 1), k + 1);
        }
        assert_eq!(d.setdefault(inserted[3], 0), inserted[3] + 1, "setdefault keeps the first value");
        let keys: Vec<u32> = d.iter().map(|e| e.0).collect();
        assert_eq!(keys, python_order(&inserted));
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_ne!(keys, sorted, "the order is the table's, not the keys'");
    }

    /// A plain model of CPython 2.7's dict: a table of `Option`s, probed and resized the
    /// same way, written separately from [`SlotOrder`].
    fn python_order(keys: &[u32]) -> Vec<u32> {
        fn place(table: &mut [Option<u32>], key: u32) {
            let mask = table.len() - 1;
            let (mut i, mut perturb) = (key as usize & mask, key as usize);
            while table[i & mask].is_some() {
                i = i * 5 + perturb + 1;
                perturb >>= 5;
            }
            table[i & mask] = Some(key);
        }
        let mut table = vec![None; 8];
        for (used, &key) in keys.iter().enumerate() {
            place(&mut table, key);
            let used = used + 1;
            if used * 3 >= table.len() * 2 {
                let size = (3..).map(|p| 1usize << p).find(|&s| s > 4 * used).unwrap();
                let old = std::mem::replace(&mut table, vec![None; size]);
                for k in old.into_iter().flatten() {
                    place(&mut table, k);
                }
            }
        }
        table.into_iter().flatten().collect()
    }
}
