//! An operator's part in snapshots: hold back records of checkpoint rounds it has not
//! reached, and save its state as each round passes.
//!
//! Records carry the round in which ingest read them ([`crate::time::Time`]). An
//! operator's state for round `n` must reflect every record of the rounds before `n` and
//! none of `n` or later. Records of round `n` can arrive before the last of round
//! `n - 1` (another worker's ingest cut earlier), so the gate holds them until the input
//! frontier reaches round `n`; at that moment every earlier record has arrived, the
//! operator saves its state, and the held records are applied. The held records are at
//! most one interval's worth from the workers ahead.
//!
//! Without snapshots (see [`crate::checkpoint::snapshot`]) every round is 0 and the gate
//! passes everything through.

use serde::Serialize;
use serde::de::DeserializeOwned;

use timely::dataflow::operators::{Capability, InputCapability};

use crate::checkpoint::snapshot::Participant;
use crate::time::{EventTime, Millis};

/// What [`RoundGate::advance`] asks of its operator, in order.
pub enum Step<'a, H, D> {
    /// Save the state for this round: every record of earlier rounds is applied, none later.
    Snapshot(Snap<'a>),
    /// Apply these held records (with their capability or time).
    Release(H, Vec<D>),
}

/// A round to save, and where.
pub struct Snap<'a> {
    /// The round.
    pub round: u64,
    participant: Option<&'a Participant>,
}

impl Snap<'_> {
    /// Saves `state` as the operator's part of the round.
    pub fn save<S: Serialize>(&self, state: &S) {
        if let Some(p) = self.participant {
            p.save(self.round, state);
        }
    }
}

/// Holds records of rounds not reached yet. `H` is what a batch needs besides its records
/// to be applied later: its capability, or its time in a sink.
pub struct RoundGate<H, D> {
    participant: Option<Participant>,
    round: u64,
    held: Vec<(u64, H, Vec<D>)>,
    /// The least event time of the held batches' messages.
    low: Option<u64>,
}

impl<H, D> RoundGate<H, D> {
    /// The gate of worker `worker`'s next operator of kind `name`, in a scope of times
    /// `T`: it takes part in snapshots if the process takes them and `T` has rounds.
    pub fn new<T: EventTime>(worker: usize, name: &str) -> Self {
        let participant = if T::ROUNDS { Participant::register(worker, name) } else { None };
        let round = participant.as_ref().map_or(0, Participant::round);
        RoundGate { participant, round, held: Vec::new(), low: None }
    }

    /// Whether the operator takes part in snapshots.
    pub fn active(&self) -> bool {
        self.participant.is_some()
    }

    /// The operator's state in the round the job resumes from, if it resumes.
    pub fn restore<S: DeserializeOwned>(&self) -> Option<S> {
        self.participant.as_ref().and_then(Participant::restore)
    }

    /// The round whose records are being applied: capabilities may move to it.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// Whether records of `round` must wait for the input frontier.
    #[inline]
    pub fn holds(&self, round: u64) -> bool {
        round > self.round
    }

    /// Keeps `data` of `round`, sent at event time `event`, until the input frontier
    /// reaches its round.
    pub fn hold(&mut self, round: u64, event: u64, with: H, data: Vec<D>) {
        self.low = Some(self.low.map_or(event, |l| l.min(event)));
        self.held.push((round, with, data));
    }

    /// Holds a message's `batches`, sent at event time `event`, with what `with` gives, if
    /// its `round` is ahead of the gate's; returns whether it did. If not, the operator
    /// applies them now.
    pub fn hold_if_ahead<'a>(
        &mut self,
        round: u64,
        event: u64,
        with: impl FnOnce() -> H,
        batches: impl Iterator<Item = &'a mut Vec<D>>,
    ) -> bool
    where
        D: 'a,
    {
        if !self.holds(round) {
            return false;
        }
        let data = batches.flat_map(std::mem::take).collect();
        self.hold(round, event, with(), data);
        true
    }

    /// The event-time watermark the operator may act on: the input's, held back by the
    /// records held. The input frontier no longer counts them once received, but they
    /// are not applied yet.
    pub fn watermark(&self, input: u64) -> u64 {
        self.low.map_or(input, |l| l.min(input))
    }

    /// Moves to `frontier_round`, the least round of the input frontier (`u64::MAX` once
    /// it is empty): for each round reached, asks for a snapshot, then releases the
    /// records held for it. An ended input releases everything and asks for nothing.
    /// Returns whether the operator's capabilities should now [`RoundGate::lift`]: it
    /// saved a new round.
    pub fn advance(&mut self, frontier_round: u64, mut step: impl FnMut(Step<'_, H, D>)) -> bool {
        if frontier_round <= self.round {
            return false;
        }
        self.held.sort_by_key(|(round, _, _)| *round);
        let ended = frontier_round == u64::MAX;
        while self.round < frontier_round {
            let next = match self.held.first() {
                Some(&(r, _, _)) if ended => r.max(self.round + 1),
                _ if ended => break,
                _ => self.round + 1,
            };
            self.round = next;
            if !ended {
                step(Step::Snapshot(Snap { round: next, participant: self.participant.as_ref() }));
            }
            let ready = self.held.iter().take_while(|(r, _, _)| *r <= next).count();
            for (_, with, data) in self.held.drain(..ready) {
                step(Step::Release(with, data));
            }
        }
        if ended {
            self.round = u64::MAX;
        }
        if self.held.is_empty() {
            self.low = None;
        }
        !ended
    }

    /// Moves `cap` to the gate's round, once the operator has saved the rounds before
    /// it, so that operators downstream reach the round too.
    pub fn lift<T: EventTime>(&self, cap: &mut Capability<T>) {
        if self.round != u64::MAX && cap.time().round() < self.round {
            let to = cap.time().at_round(self.round);
            cap.downgrade(&to);
        }
    }

    /// A capability at event time `event` in the gate's round, from the operator's
    /// `initial` one: for state restored from a snapshot.
    pub fn mint<T: EventTime>(&self, initial: &Capability<T>, event: Millis) -> Capability<T> {
        initial.delayed(&initial.time().at_event(event).at_round(self.round))
    }
}

impl<T: EventTime, D> RoundGate<Capability<T>, D> {
    /// [`RoundGate::hold_if_ahead`] for an operator that holds batches with their
    /// capability: the message's round and event time come from `cap`.
    pub fn hold_at<'a>(
        &mut self,
        cap: &InputCapability<T>,
        batches: impl Iterator<Item = &'a mut Vec<D>>,
    ) -> bool
    where
        D: 'a,
    {
        self.hold_if_ahead(cap.time().round(), cap.time().event(), || cap.retain(0), batches)
    }
}

/// Keeps the capability `cap` gives if its event time `event` is earlier than that of
/// the one `held`: an operator that releases in event-time order holds its earliest.
pub fn hold_earliest<T: EventTime>(
    held: &mut Option<Capability<T>>,
    event: Millis,
    cap: impl FnOnce() -> Capability<T>,
) {
    if held.as_ref().is_none_or(|h| event < h.time().event()) {
        *held = Some(cap());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_records_are_released_after_their_rounds_snapshot_in_round_order() {
        let mut gate: RoundGate<&str, u32> =
            RoundGate { participant: None, round: 0, held: Vec::new(), low: None };
        assert!(!gate.holds(0));
        assert!(gate.holds(2));
        gate.hold(2, 20, "b", vec![2]);
        gate.hold(1, 30, "a", vec![1]);
        assert_eq!(gate.watermark(100), 20, "held records hold the watermark back");
        let mut log = Vec::new();
        gate.advance(0, |_| log.push("never".to_owned()));
        gate.advance(2, |s| match s {
            Step::Snapshot(snap) => log.push(format!("snapshot {}", snap.round)),
            Step::Release(w, d) => log.push(format!("{w} {d:?}")),
        });
        assert_eq!(log, ["snapshot 1", "a [1]", "snapshot 2", "b [2]"]);
        assert_eq!(gate.round(), 2);
        assert_eq!(gate.watermark(100), 100);
        gate.hold(5, 50, "c", vec![5]);
        log.clear();
        gate.advance(u64::MAX, |s| match s {
            Step::Snapshot(snap) => log.push(format!("snapshot {}", snap.round)),
            Step::Release(w, d) => log.push(format!("{w} {d:?}")),
        });
        assert_eq!(log, ["c [5]"], "an ended input releases without snapshots");
        assert!(!gate.holds(u64::MAX - 1));
    }
}
