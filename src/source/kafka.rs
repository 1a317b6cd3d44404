//! `kafka://HOST:PORT/TOPIC[,TOPIC…]?group=G[&until=end]`: read topics of a Kafka broker;
//! each record's value is one record line (a CSV or JSON line; one trailing newline is
//! dropped), and its event time is the line's own timestamp, as for a file.
//!
//! **Partitions on workers.** Partitions are assigned explicitly, never by the group's
//! rebalancing: partition `p` of every topic belongs to global worker `p mod (n × w)`,
//! and so to process `(p mod (n × w)) / w`. Each process runs one intake thread (a
//! synchronous `BaseConsumer`) for the partitions of its workers and hands their records
//! to the process's live feed, which the process's workers share like a tcp feed. So
//! every partition is read by exactly one process, and a process with no partition
//! ends its input at once.
//!
//! **Places.** A batch holds records of one partition with consecutive offsets; its
//! origin is `kafka://HOST:PORT/TOPIC/PARTITION` and each line's number is the record's
//! offset, so a reject reads `kafka://127.0.0.1:9092/tx/2:17: REASON: TEXT`: partition
//! 2 of topic `tx`, offset 17.
//!
//! **Where reading starts.** Without `--checkpoint`, at the start of each partition.
//! With it the intake is journaled like tcp's (see [`super::live`]): a restarted job
//! feeds the journal again, then resumes each partition at the offset after the last
//! one journaled, so no record is read twice or skipped. With state snapshots the
//! journal keeps each partition's offset at each round's start only, and a restart
//! reads on from the restored round's. Offsets are kept by kappa;
//! they are committed to the group `G` only so that Kafka's tools show the lag.
//!
//! **`?until=end`** reads each partition up to its end as captured at start, then ends
//! the input like a file (the input is bounded: the watermark holds until the end and
//! results are byte-identical to the file run). A broker's end offset is not trusted
//! alone: Tansu 0.6 reports a partition's end as the base offset of its last record
//! batch plus one, short of the records that follow in that batch. So a partition is
//! done once its position has reached the captured end *and* either a record arrives
//! that was produced after the job started (its timestamp is later: with a correct end
//! offset, as real Kafka gives, this is the first record past it, which is not taken)
//! or no record of it arrives for [`QUIET`]. Records past the captured end that were
//! produced before the start are thus read too, whatever the broker said.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll as TaskPoll, Wake, Waker};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message, Timestamp};
use rdkafka::{Offset, TopicPartitionList};

use super::lines::{Flaw, Line};
use super::live::{Batcher, Intake, Origins, WAIT};
use crate::exit::program_name;

/// How long start-up waits for the broker's metadata and end offsets.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// With `?until=end`, a partition at its captured end is done after this long without
/// a record of it.
pub const QUIET: Duration = Duration::from_millis(300);

/// Messages the intake takes between two looks at the clock (see [`pump`]).
pub const ROUND: usize = 1024;

/// How often consumed offsets are committed to the group (for lag tools only).
pub const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// What to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaSpec {
    /// The broker, `HOST:PORT`.
    pub broker: String,
    /// The topics, in the order given.
    pub topics: Vec<String>,
    /// The consumer group offsets are committed to.
    pub group: String,
    /// End at the end offsets captured at start.
    pub until_end: bool,
}

impl KafkaSpec {
    /// Parses the part after `kafka://`, e.g. `127.0.0.1:9092/tx,clicks?group=g&until=end`.
    pub fn parse(text: &str) -> Result<KafkaSpec, String> {
        let bad = |why: &str| format!("invalid kafka input 'kafka://{text}': {why}");
        let (address, rest) =
            text.split_once('/').ok_or_else(|| bad("expected kafka://HOST:PORT/TOPIC?group=G"))?;
        let broker = broker(address).map_err(|e| bad(&e))?;
        let (topics, query) = rest.split_once('?').unwrap_or((rest, ""));
        let topics: Vec<String> = topics.split(',').map(str::to_owned).collect();
        if let Some(t) = topics.iter().find(|t| !valid_topic(t)) {
            return Err(bad(&format!("bad topic name '{t}' (letters, digits, '.', '_', '-')")));
        }
        let (mut group, mut until_end) = (None, false);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("group", g)) if !g.is_empty() => group = Some(g.to_owned()),
                Some(("until", "end")) => until_end = true,
                _ => return Err(bad(&format!("unknown parameter '{pair}' (use group=G or until=end)"))),
            }
        }
        let group = group.ok_or_else(|| bad("a consumer group is required: add ?group=NAME"))?;
        Ok(KafkaSpec { broker, topics, group, until_end })
    }

    /// The origin of partition `partition` of `topic`, as rejects name it.
    pub fn origin(&self, topic: &str, partition: i32) -> String {
        format!("kafka://{}/{topic}/{partition}", self.broker)
    }
}

impl std::fmt::Display for KafkaSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kafka://{}/{}", self.broker, self.topics.join(","))
    }
}

/// Checks `HOST:PORT`.
pub fn broker(address: &str) -> Result<String, String> {
    let (host, port) = address.rsplit_once(':').ok_or("expected HOST:PORT")?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("bad broker address '{address}'"));
    }
    Ok(address.to_owned())
}

/// Whether `name` is a legal Kafka topic name.
pub fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The global worker that reads partition `partition`, of `workers` in all.
pub fn worker_of(partition: i32, workers: usize) -> usize {
    partition as usize % workers
}

/// A client configuration for `broker` that fails fast when nothing answers.
pub fn client_config(broker: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", broker).set("socket.timeout.ms", "5000").set("log_level", "3");
    config
}

/// The configuration of the input's consumer of `broker`, committing to `group`: kappa
/// assigns partitions and keeps positions itself (see the module docs).
pub fn consumer_config(broker: &str, group: &str) -> ClientConfig {
    let mut config = client_config(broker);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Tansu 0.6 holds every fetch for about its max wait even when it has records
        // (it sleeps after reading; half the wait from 500 ms on), and a fetch carries
        // at most 5 MiB: with librdkafka's default 500 ms the input read about 200k
        // records/s, whatever the broker's speed. Real Kafka answers as soon as it has
        // data; a short wait only costs it more empty fetches of a caught-up partition.
        .set("fetch.wait.max.ms", "10")
        // A partition whose local queue holds more than `queued.min.messages` is not
        // fetched again for this long; librdkafka's 1 s default stalls a partition
        // after two 5 MiB fetches.
        .set("fetch.queue.backoff.ms", "10");
    config
}

/// Runs `future` to completion on this thread (rdkafka's admin calls are futures that
/// its own background thread completes; no async runtime is needed to wait for them).
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            TaskPoll::Ready(out) => return out,
            TaskPoll::Pending => std::thread::park_timeout(WAIT),
        }
    }
}

/// Creates `topic` with `partitions` partitions unless it exists; returns how many
/// partitions it has.
pub fn create_topic(broker: &str, topic: &str, partitions: u32) -> Result<usize, String> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(broker).create().map_err(|e| format!("kafka://{broker}: {e}"))?;
    let new = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(1));
    let options =
        AdminOptions::new().operation_timeout(Some(CONNECT_TIMEOUT)).request_timeout(Some(CONNECT_TIMEOUT));
    let results = block_on(admin.create_topics([&new], &options))
        .map_err(|e| format!("cannot create topic {topic} on kafka://{broker}: {e}"))?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => return partition_count(broker, topic),
            Err((_, code)) => return Err(format!("cannot create topic {topic} on kafka://{broker}: {code}")),
        }
    }
    Ok(partitions as usize)
}

/// How many partitions `topic` has.
pub fn partition_count(broker: &str, topic: &str) -> Result<usize, String> {
    let consumer: BaseConsumer =
        client_config(broker).create().map_err(|e| format!("kafka://{broker}: {e}"))?;
    partitions_of(&consumer, broker, topic).map(|p| p.len())
}

fn partitions_of(consumer: &BaseConsumer, broker: &str, topic: &str) -> Result<Vec<i32>, String> {
    let metadata = consumer
        .fetch_metadata(Some(topic), CONNECT_TIMEOUT)
        .map_err(|e| format!("cannot reach kafka://{broker}: {e}"))?;
    let t = metadata.topics().iter().find(|t| t.name() == topic);
    match t {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            Ok(t.partitions().iter().map(|p| p.id()).collect())
        }
        _ => Err(format!("kafka://{broker}: no topic {topic}")),
    }
}

/// One partition this process reads.
struct Part {
    topic: String,
    partition: i32,
    batcher: Batcher,
    /// The offset of the next record to take.
    next: i64,
    /// With `?until=end`: the end captured at start.
    end: Option<i64>,
    last_record: Instant,
    done: bool,
    /// Whether the first record after the start has been checked (see [`pump`]).
    verified: bool,
    /// Whether the partition was sought back to its beginning to find `next`.
    rewound: bool,
}

/// Assigns process `process`'s partitions (of `processes`, `threads` workers each) to
/// a consumer and reads them into `intake` on a thread of its own. `resume` gives the
/// next line number (offset) per origin that the checkpoint's journal holds already.
/// Each partition is registered in `origins`, so the watermark waits for it.
/// Fails at start-up when the broker cannot be reached or a topic does not exist.
pub fn subscribe(
    spec: &KafkaSpec,
    (process, processes, threads): (usize, usize, usize),
    intake: Intake,
    origins: &Origins,
    max_line: usize,
    resume: &BTreeMap<Arc<str>, u64>,
) -> Result<(), String> {
    let started = crate::time::now_millis() as i64;
    let consumer: BaseConsumer = consumer_config(&spec.broker, &spec.group)
        .set("client.id", format!("kappa-{}-p{process}", program_name()))
        .create()
        .map_err(|e| format!("kafka://{}: {e}", spec.broker))?;
    let workers = processes * threads;
    let mut parts = Vec::new();
    let mut assignment = TopicPartitionList::new();
    for topic in &spec.topics {
        for partition in partitions_of(&consumer, &spec.broker, topic)? {
            if worker_of(partition, workers) / threads != process {
                continue;
            }
            let origin: Arc<str> = Arc::from(spec.origin(topic, partition));
            let next = resume.get(&origin).map_or(0, |&n| n as i64);
            let end = if spec.until_end {
                let (_, high) = consumer
                    .fetch_watermarks(topic, partition, CONNECT_TIMEOUT)
                    .map_err(|e| format!("{origin}: cannot read its end offset: {e}"))?;
                Some(high)
            } else {
                None
            };
            assignment
                .add_partition_offset(topic, partition, Offset::Offset(next))
                .map_err(|e| format!("{origin}: {e}"))?;
            origins.register(Arc::clone(&origin));
            let batcher = Batcher::numbered(origin, next as u64);
            parts.push(Part {
                topic: topic.clone(),
                partition,
                batcher,
                next,
                end,
                last_record: Instant::now(),
                done: false,
                verified: next == 0,
                rewound: false,
            });
        }
    }
    if parts.is_empty() {
        // Nothing to read here: dropping the intake ends this process's feed.
        return Ok(());
    }
    consumer.assign(&assignment).map_err(|e| format!("kafka://{}: {e}", spec.broker))?;
    let origin = spec.to_string();
    std::thread::Builder::new()
        .name("kappa-kafka".into())
        .spawn(move || pump(consumer, parts, intake, max_line, started, &origin))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Takes records into per-partition batches and hands them to the intake.
///
/// It works in rounds: each round takes what the consumer holds without waiting, up to
/// [`ROUND`] messages, and reads the clock once, not once a message (at two million
/// messages a second the clock reads cost more than the rest of the intake). Collected
/// lines are handed out as soon as the consumer holds nothing more, so a line waits for
/// nothing but the next fetch, or once the oldest has waited [`WAIT`]. Only a round that
/// finds nothing waits, at most [`WAIT`], for the next message.
fn pump(
    consumer: BaseConsumer,
    mut parts: Vec<Part>,
    intake: Intake,
    max_line: usize,
    started: i64,
    origin: &str,
) {
    let mut last_commit = Instant::now();
    let mut oldest: Option<Instant> = None;
    let mut warned = false;
    let mut warn = |e: KafkaError| {
        if !std::mem::replace(&mut warned, true) {
            eprintln!("{}: warning: {origin}: {e}", program_name());
        }
    };
    loop {
        if intake.stopping() || parts.iter().all(|p| p.done) {
            break;
        }
        let now = Instant::now();
        let (mut taken, mut empty) = (0, false);
        while taken < ROUND {
            match consumer.poll(Duration::ZERO) {
                Some(Ok(m)) => take(&consumer, &m, &mut parts, &intake, (max_line, started), now),
                Some(Err(e)) => warn(e),
                None => {
                    empty = true;
                    break;
                }
            }
            taken += 1;
        }
        if taken > 0 {
            oldest.get_or_insert(now);
        }
        if empty || oldest.is_some_and(|o| now.duration_since(o) >= WAIT) {
            flush(&mut parts, &intake);
            oldest = None;
        }
        if taken == 0 {
            match consumer.poll(WAIT) {
                Some(Ok(m)) => {
                    let now = Instant::now();
                    take(&consumer, &m, &mut parts, &intake, (max_line, started), now);
                    oldest = Some(now);
                }
                Some(Err(e)) => warn(e),
                None => {}
            }
        }
        let now = Instant::now();
        for part in parts.iter_mut().filter(|p| !p.done) {
            if part.end.is_some_and(|end| part.next >= end) && now.duration_since(part.last_record) >= QUIET {
                // Resumed inside the last record batch, Tansu answers with nothing: read
                // the partition again from its beginning once before taking it as done.
                if !part.verified && !part.rewound {
                    part.rewound = true;
                    part.last_record = now;
                    if consumer.seek(&part.topic, part.partition, Offset::Beginning, CONNECT_TIMEOUT).is_ok()
                    {
                        continue;
                    }
                }
                part.done = true;
            }
        }
        if now.duration_since(last_commit) >= COMMIT_EVERY {
            commit(&consumer, &parts);
            last_commit = now;
        }
    }
    flush(&mut parts, &intake);
    commit(&consumer, &parts);
}

/// Takes message `m`, read at about `now`, into its partition's batch; `max_line` and
/// `started` as for [`subscribe`].
///
/// A partition resumed at an offset inside a record batch must start there: Tansu 0.6
/// answers a fetch from the middle of a batch with the *next* batch, skipping the rest.
/// So when the first record of a resumed partition is past the offset asked for, the
/// partition is sought back to its beginning once and read forward (records before the
/// offset are skipped); a gap that remains then is a real one (compaction, retention).
/// Resumed inside the *last* batch, the fetch answers nothing at all, so a resumed
/// partition that stays silent is sought back too before it is taken as done
/// (`?until=end`). Real Kafka starts at the offset asked for, and nothing is sought.
fn take(
    consumer: &BaseConsumer,
    m: &BorrowedMessage<'_>,
    parts: &mut [Part],
    intake: &Intake,
    (max_line, started): (usize, i64),
    now: Instant,
) {
    let found = parts.iter().position(|p| p.partition == m.partition() && p.topic == m.topic());
    let Some(i) = found else { return };
    let part = &mut parts[i];
    if part.done || m.offset() < part.next {
        part.verified |= m.offset() < part.next;
        return;
    }
    if !part.verified {
        if m.offset() > part.next && !part.rewound {
            let (topic, partition) = (part.topic.clone(), part.partition);
            part.rewound = true;
            if consumer.seek(&topic, partition, Offset::Beginning, CONNECT_TIMEOUT).is_ok() {
                return;
            }
        }
        part.verified = true;
    }
    if let Some(end) = part.end
        && m.offset() >= end
        && produced_after(m.timestamp(), started)
    {
        part.done = true;
        return;
    }
    if m.offset() != part.next {
        // A gap (compaction, transaction markers): number from here.
        part.batcher.renumber(intake, m.offset() as u64);
    }
    let payload = m.payload().unwrap_or_default();
    let payload = payload.strip_suffix(b"\n").unwrap_or(payload);
    let payload = payload.strip_suffix(b"\r").unwrap_or(payload);
    let flaw = (payload.len() > max_line).then_some(Flaw::TooLong(payload.len() as u64));
    let bytes = if flaw.is_some() { &payload[..max_line] } else { payload };
    // Latency is measured from the record's timestamp (when it was produced).
    let stamp = m.timestamp().to_millis().map_or_else(crate::time::now_millis, |t| t.max(0) as u64);
    part.batcher.push_stamped(&Line { index: m.offset() as u64, bytes, flaw }, stamp, intake);
    part.next = m.offset() + 1;
    part.last_record = now;
}

/// Whether a record's timestamp says it was produced after `started` (ms).
fn produced_after(timestamp: Timestamp, started: i64) -> bool {
    timestamp.to_millis().is_some_and(|t| t > started)
}

fn flush(parts: &mut [Part], intake: &Intake) {
    for part in parts {
        part.batcher.flush(intake);
    }
}

/// Commits each partition's position to the group, for lag tools; failures only cost
/// the lag figure, so they are ignored.
fn commit(consumer: &BaseConsumer, parts: &[Part]) {
    let mut list = TopicPartitionList::new();
    for p in parts {
        let _ = list.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next));
    }
    let _ = consumer.commit(&list, CommitMode::Async);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_partitions_map_to_workers() {
        let s = KafkaSpec::parse("127.0.0.1:9092/tx,clicks?group=g&until=end").unwrap();
        assert_eq!(s.broker, "127.0.0.1:9092");
        assert_eq!(s.topics, ["tx", "clicks"]);
        assert_eq!((s.group.as_str(), s.until_end), ("g", true));
        assert_eq!(s.to_string(), "kafka://127.0.0.1:9092/tx,clicks");
        assert_eq!(s.origin("tx", 2), "kafka://127.0.0.1:9092/tx/2");
        assert!(!KafkaSpec::parse("h:1/t?group=g").unwrap().until_end);
        for bad in [
            "h:1/t",
            "h:1/t?group=",
            "h/t?group=g",
            "h:x/t?group=g",
            "h:1/?group=g",
            "h:1/a b?group=g",
            "h:1/t?group=g&until=now",
        ] {
            assert!(KafkaSpec::parse(bad).is_err(), "{bad}");
        }
        // 8 partitions on 2 processes of 2 workers: p mod 4, process = worker / 2.
        let owners: Vec<usize> = (0..8).map(|p| worker_of(p, 4) / 2).collect();
        assert_eq!(owners, [0, 0, 1, 1, 0, 0, 1, 1]);
    }
}
