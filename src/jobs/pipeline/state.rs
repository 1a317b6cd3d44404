//! The pipeline's per-key logic in event-time order: duplicates by `event_id`, and
//! sessions (duration and time spent buffering).
//!
//! Both run under [`crate::operators::KeyedOrdered`], which hands each key's events
//! sorted by `(time, event)`, so what they emit does not depend on delivery or workers.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::operators::KeyLogic;
use crate::operators::ingest::Timed;
use crate::record::playback::{DeviceType, EventType};
use crate::time::Millis;

use super::rows::{DeadLetter, Event, Watching};

/// Events of one id within this much event time of the first kept one are duplicates.
pub const DEDUP_HORIZON: Millis = 3_600_000;
/// A session with no event for this long is closed at its last event plus this.
pub const SESSION_TIMEOUT: Millis = 30 * 60_000;

/// What the duplicate filter lets through or sets aside.
#[derive(Clone, Debug)]
pub enum Deduped {
    /// The first event of its id within the horizon.
    Clean(Event),
    /// A later one.
    Duplicate(DeadLetter),
}

/// One `event_id`'s duplicate filter: the time of the last event kept.
///
/// Its state is forgotten once the frontier is past the horizon after the event kept
/// ([`KeyLogic::forget_at`]), also for an id that never comes again: the state held is
/// the ids of one horizon of event time, not of the history. It sets no wake time, which
/// would hold every downstream window back by the horizon.
#[derive(Default, Serialize, Deserialize)]
pub struct Dedup {
    kept: Option<Millis>,
    frontier: Millis,
}

impl KeyLogic<Event> for Dedup {
    type Out = Deduped;
    // Clean events and duplicates' letters carry their time.
    const ROWS_NAME_THEIR_TIME: bool = true;

    fn advance(
        &mut self,
        events: &mut Vec<(Millis, Event)>,
        frontier: Millis,
        out: &mut Vec<(Millis, Deduped)>,
    ) -> Option<Millis> {
        self.frontier = frontier;
        for (time, event) in events.drain(..) {
            match self.kept {
                Some(first) if time < first + DEDUP_HORIZON => {
                    let reason = format!("duplicate event_id {} (first at {first})", event.event_id);
                    let text = format!("{} at {time}", event.event_id);
                    out.push((
                        time,
                        Deduped::Duplicate(DeadLetter {
                            origin: "dedup".into(),
                            line: 0,
                            reason,
                            text,
                            time: Some(time),
                        }),
                    ));
                }
                _ => {
                    self.kept = Some(time);
                    out.push((time, Deduped::Clean(event)));
                }
            }
        }
        None
    }

    fn is_empty(&self) -> bool {
        self.kept.is_none_or(|k| k.saturating_add(DEDUP_HORIZON) <= self.frontier)
    }

    // An event a horizon after the one kept is kept, as by a new filter.
    fn forget_at(&self) -> Option<Millis> {
        self.kept.map(|k| k.saturating_add(DEDUP_HORIZON))
    }
}

/// What a session needs of a clean event.
///
/// Ordered by `event_id` first: among clean events `(time, event_id)` is unique (a second
/// event of an id within the dedup horizon is a duplicate), so a session's steps sorted
/// by `(time, Step)` are in the order of its events sorted by `(time, Event)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Step {
    /// The event's id.
    pub event_id: CompactString,
    /// What happened.
    pub event_type: EventType,
    /// The device's kind.
    pub device_type: DeviceType,
}

impl Step {
    /// The step of a clean event.
    pub fn of(event: &Event) -> Step {
        Step {
            event_id: event.event_id.clone(),
            event_type: event.event_type,
            device_type: event.device_type,
        }
    }
}

/// One session being watched.
#[derive(Default, Serialize, Deserialize)]
pub struct Session {
    open: Option<Open>,
}

#[derive(Serialize, Deserialize)]
struct Open {
    device_type: DeviceType,
    first: Millis,
    last: Millis,
    buffering_since: Option<Millis>,
    buffering_ms: i64,
}

impl Open {
    fn watching(&self) -> Watching {
        Watching {
            sessions: 1,
            duration_ms: (self.last - self.first) as i64,
            buffering_ms: self.buffering_ms,
        }
    }
}

impl KeyLogic<Step> for Session {
    type Out = Timed<(DeviceType, Watching)>;
    const ROWS_NAME_THEIR_TIME: bool = true;

    fn advance(
        &mut self,
        events: &mut Vec<(Millis, Step)>,
        frontier: Millis,
        out: &mut Vec<(Millis, Self::Out)>,
    ) -> Option<Millis> {
        for (time, event) in events.drain(..) {
            self.time_out(time, out);
            let open = self.open.get_or_insert(Open {
                device_type: event.device_type,
                first: time,
                last: time,
                buffering_since: None,
                buffering_ms: 0,
            });
            if let Some(since) = open.buffering_since.take() {
                open.buffering_ms += (time - since) as i64;
            }
            if event.event_type == EventType::Buffering {
                open.buffering_since = Some(time);
            }
            open.last = time;
            if event.event_type.ends_session() {
                out.push((time, ((open.device_type, open.watching()), time)));
                self.open = None;
            }
        }
        self.time_out(frontier, out);
        self.open.as_ref().map(|o| o.last + SESSION_TIMEOUT)
    }

    fn is_empty(&self) -> bool {
        self.open.is_none()
    }
}

impl Session {
    /// Closes the open session if it has been quiet for [`SESSION_TIMEOUT`] by `now`.
    fn time_out(&mut self, now: Millis, out: &mut Vec<(Millis, Timed<(DeviceType, Watching)>)>) {
        if let Some(open) = &mut self.open
            && open.last + SESSION_TIMEOUT <= now
        {
            if let Some(since) = open.buffering_since.take() {
                open.buffering_ms += (open.last - since) as i64;
            }
            let closed = open.last + SESSION_TIMEOUT;
            out.push((closed, ((open.device_type, open.watching()), closed)));
            self.open = None;
        }
    }
}
