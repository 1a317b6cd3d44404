//! The Keystone pipeline: playback events cleansed, transformed, aggregated and checked
//! for spikes, as result streams that the job routes to sinks.
//!
//! ```text
//! playback ─► ingest (schema and value checks) ─┬─ rejects ───────────────────────────────┐
//!                                               └─► dedup by event_id ─┬─ duplicates ─────┴─► dead_letters
//!                                                                      └─► events (clean)
//! events ─┬─► (title, session) per 10 s ─► sessions per title ─────────────────► viewers
//!         ├─► counts per device type per minute ─┬──────────────────────────────► devices
//!         │                                      └─► threshold rules ───────────► alerts
//!         ├─► sessions (keyed, in event-time order) ─► per device type per hour ► buffering
//!         └─► plays per title per hour ─► ⋈ titles file (differential join) ─► top 5 ► top_titles
//! ```
//!
//! Every stream is deterministic: windows close when the watermark passes them, keyed
//! state sees its events in event-time order, and sinks write each completed time
//! sorted. Counts are integers and ratios exact fixed-point ([`rows::ratio`]).

use std::sync::Arc;

use compact_str::CompactString;
use differential_dataflow::AsCollection;
use rustc_hash::FxHashMap;
use timely::dataflow::Stream;
use timely::dataflow::operators::vec::{Map, ToStream};

use crate::diag::Diag;
use crate::job::Dataflow;
use crate::operators::ingest::Timed;
use crate::operators::{FanOut, KeyedOrdered, StampBy, ToUpdates, TopPerTime, WindowAggregate, Windowing};
use crate::record::ParseError;
use crate::record::playback::{DeviceType, EventType, Playback};
use crate::time::{Duration, Millis, Time};

pub mod rows;
pub mod state;

use rows::{Alert, Buffering, DeadLetter, DeviceCounts, DeviceMinute, Event, Rule, TopTitle, Viewers};
use state::{Dedup, Deduped, Session, Step};

/// Concurrent viewers are counted per window of this length.
pub const VIEWER_WINDOW: Duration = Duration::from_secs(10);
/// Device counts and alerts are per window of this length.
pub const DEVICE_WINDOW: Duration = Duration::from_secs(60);
/// Buffering ratios and top titles are per window of this length.
pub const HOUR_WINDOW: Duration = Duration::from_secs(3_600);
/// Titles in each hour's top list.
pub const TOP_TITLES: usize = 5;
/// An error spike: errors and crashes are at least this many per 10,000 events …
pub const ERROR_SPIKE: i64 = 2_500;
/// … a buffering spike: buffering events are at least this many per 10,000 events …
pub const BUFFERING_SPIKE: i64 = 4_000;
/// … of a device type's events in a minute with at least this many events.
pub const SPIKE_MIN_EVENTS: i64 = 8;

/// A title's name and genre, from the titles dimension file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Title {
    /// Its name.
    pub name: CompactString,
    /// Its genre.
    pub genre: CompactString,
}

/// The titles dimension: `title_id,name,genre` lines, with a header.
#[derive(Clone, Debug, Default)]
pub struct Titles(pub FxHashMap<CompactString, Title>);

impl Titles {
    /// Parses a titles file; says which line is wrong.
    pub fn parse(text: &str) -> Result<Titles, String> {
        let mut titles = FxHashMap::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() || (i == 0 && line.starts_with("title_id,")) {
                continue;
            }
            let fields: Vec<&str> = line.split(',').collect();
            let [id, name, genre] = fields[..] else {
                return Err(format!(
                    "line {}: expected title_id,name,genre, found {} fields",
                    i + 1,
                    fields.len()
                ));
            };
            if id.is_empty() {
                return Err(format!("line {}: empty title_id", i + 1));
            }
            let title = Title { name: name.into(), genre: genre.into() };
            if titles.insert(CompactString::from(id), title).is_some() {
                return Err(format!("line {}: title_id {id} listed twice", i + 1));
            }
        }
        Ok(Titles(titles))
    }

    /// The titles the playback generator uses: `T_001` to `T_200`, with made-up names
    /// and genres.
    pub fn generated() -> Titles {
        Titles::parse(&Titles::generated_file()).expect("the generated titles parse")
    }

    /// The generated titles as a file.
    pub fn generated_file() -> String {
        const GENRES: [&str; 6] = ["drama", "comedy", "documentary", "thriller", "animation", "sci-fi"];
        let mut text = String::from("title_id,name,genre\n");
        for n in 1..=crate::record::playback::TITLES {
            text.push_str(&format!("T_{n:03},Title {n:03},{}\n", GENRES[(n % 6) as usize]));
        }
        text
    }
}

/// The clean event a parsed line becomes, or why it is set aside: its title must be in
/// the titles file.
pub fn cleanse(titles: &Titles, p: &Playback<'_>) -> Result<Event, ParseError> {
    if !titles.0.contains_key(p.title_id.as_ref()) {
        return Err(ParseError::from(format!(
            "unknown title_id '{}'",
            crate::diag::excerpt(p.title_id.as_bytes(), 40)
        )));
    }
    Ok(Event {
        time: p.timestamp,
        event_id: p.event_id.as_ref().into(),
        event_type: p.event_type,
        device_id: p.device_id.as_ref().into(),
        device_type: p.device_type,
        title_id: p.title_id.as_ref().into(),
        session_id: p.session_id.as_ref().into(),
        position_ms: p.position_ms,
        bitrate_kbps: p.bitrate_kbps,
        error_code: p.error_code.as_deref().map(CompactString::from),
    })
}

/// The branches' rows of a clean event: the event itself, `(title, session)` for viewers,
/// device counts, a session step, and a play of a title.
type Branches = (
    Vec<Event>,
    Vec<Timed<((CompactString, CompactString), i64)>>,
    Vec<Timed<(DeviceType, DeviceCounts)>>,
    Vec<Timed<(CompactString, Step)>>,
    Vec<Timed<(CompactString, i64)>>,
);

/// The pipeline's result streams.
pub struct Streams<'outer, 'inner> {
    /// Clean events: checked, and not duplicates.
    pub events: Stream<'inner, Time, Vec<Event>>,
    /// Rejected lines and duplicates, with their reasons.
    pub dead_letters: Stream<'inner, Time, Vec<DeadLetter>>,
    /// Concurrent viewers per title per 10 s.
    pub viewers: Stream<'inner, Time, Vec<Viewers>>,
    /// Plays and errors per device type per minute.
    pub devices: Stream<'inner, Time, Vec<DeviceMinute>>,
    /// Buffering ratio per device type per hour.
    pub buffering: Stream<'inner, Time, Vec<Buffering>>,
    /// Error-rate and buffering spikes per device type per minute.
    pub alerts: Stream<'inner, Time, Vec<Alert>>,
    /// The most played titles of each hour, with their names and genres.
    pub top_titles: Stream<'outer, Millis, Vec<TopTitle>>,
}

/// Builds the pipeline over ingested `events` and ingest's `diags`.
pub fn pipeline<'outer, 'inner>(
    df: &Dataflow<'outer, 'inner>,
    events: Stream<'inner, Time, Vec<Timed<Event>>>,
    diags: Stream<'inner, Time, Vec<Diag>>,
    titles: &Arc<Titles>,
) -> Streams<'outer, 'inner> {
    let deduped = events
        .map(|(event, time)| ((event.event_id.clone(), event), time))
        .keyed_ordered("Dedup", |_: &CompactString| Dedup::default());
    let (clean, duplicates) =
        deduped.fan_out("Duplicates", |d, (clean, letters): &mut (Vec<Event>, Vec<_>)| match d {
            Deduped::Clean(e) => clean.push(e),
            Deduped::Duplicate(letter) => letters.push(letter),
        });
    let rejects = diags.flat_map(|d| match d {
        Diag::Reject(r) => {
            Some(DeadLetter { origin: r.origin, line: r.line, reason: r.reason, text: r.text, time: None })
        }
        _ => None,
    });
    let dead_letters = timely::dataflow::operators::Concat::concat(rejects, duplicates);
    // Each branch gets its own small rows, projected once; the events move on whole.
    let (clean, viewers, devices, sessions, plays) = clean.fan_out("Branches", |e, b: &mut Branches| {
        let time = e.time;
        b.1.push((((e.title_id.clone(), e.session_id.clone()), 1), time));
        b.2.push(((e.device_type, DeviceCounts::one(e.event_type)), time));
        b.3.push(((e.session_id.clone(), Step::of(&e)), time));
        if e.event_type == EventType::Play {
            b.4.push(((e.title_id.clone(), 1), time));
        }
        b.0.push(e);
    });

    let viewer_window = Windowing::Tumbling { size: VIEWER_WINDOW };
    let viewers = viewers
        .window_aggregate(viewer_window)
        .map(|(end, (title, _session), _)| ((title, 1i64), end - 1))
        .window_aggregate(viewer_window)
        .map(|(time, title_id, viewers)| Viewers { time, title_id, viewers });

    let devices = devices
        .window_aggregate(Windowing::Tumbling { size: DEVICE_WINDOW })
        .map(|(time, device_type, counts)| DeviceMinute { time, device_type, counts });
    let alerts = devices.clone().flat_map(|m| spikes(&m));

    let buffering = sessions
        .keyed_ordered("Sessions", |_: &CompactString| Session::default())
        .window_aggregate(Windowing::Tumbling { size: HOUR_WINDOW })
        .map(|(time, device_type, watching)| Buffering { time, device_type, watching });

    // An hour's plays of a title are the difference of its update at the hour's last
    // millisecond. `to_updates` keeps what it sent with snapshots, so that a restart
    // sends the join again what it held.
    let plays = plays.to_updates(HOUR_WINDOW, Windowing::Tumbling { size: HOUR_WINDOW });
    let dimension: Vec<_> = match df.inner.index() {
        0 => titles
            .0
            .iter()
            .map(|(id, t)| ((id.clone(), (t.name.clone(), t.genre.clone())), 0, 1i64))
            .collect(),
        _ => Vec::new(),
    };
    let top_titles = df
        .collection(plays)
        .map(|(end, title_id)| (title_id, end))
        .join_map(dimension.to_stream(df.outer).as_collection(), |title_id, end, (name, genre)| {
            (*end, title_id.clone(), name.clone(), genre.clone())
        })
        // Each worker sends its own sum: one row per title and hour, with their total.
        .consolidate()
        .inner
        .map(|((time, title_id, name, genre), _time, plays)| TopTitle {
            time,
            minus_plays: -plays,
            title_id,
            name,
            genre,
        })
        .stamp_by(|row: &TopTitle| row.time - 1)
        .top_per_time(TOP_TITLES, |row: &TopTitle| (row.minus_plays, row.title_id.clone()));

    Streams { events: clean, dead_letters, viewers, devices, buffering, alerts, top_titles }
}

/// The alerts a device type's minute raises.
pub fn spikes(m: &DeviceMinute) -> Vec<Alert> {
    let c = m.counts;
    let mut alerts = Vec::new();
    if c.events >= SPIKE_MIN_EVENTS {
        for (rule, count, threshold) in
            [(Rule::ErrorSpike, c.errors, ERROR_SPIKE), (Rule::BufferingSpike, c.buffering, BUFFERING_SPIKE)]
        {
            if count * 10_000 >= threshold * c.events {
                alerts.push(Alert {
                    time: m.time,
                    rule,
                    device_type: m.device_type,
                    count,
                    events: c.events,
                });
            }
        }
    }
    alerts
}
