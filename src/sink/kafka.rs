//! `--output kafka://HOST:PORT/TOPIC`: results as messages, one row each, and a progress
//! record after each completed time; also the producer behind `gen --publish kafka://…`.
//!
//! **Messages.** Each row is one message on partition 0 of the topic (so the topic holds
//! the rows in the order a file would: completed times in order, each sorted), its value
//! the row in `--format csv` (no header) or `json`, its key the row's text cells joined
//! by `,` (its grouping key: a category, an IP, an event type). After the rows of each
//! completed time comes a progress record: key [`PROGRESS_KEY`], value `TIME ROWS`, the
//! time completed and the rows written for it. The producer is idempotent, so a retried
//! send is never stored twice.
//!
//! **Exactly once across restarts** (with `--checkpoint`). Kafka transactions would make
//! this simple, but the test broker (Tansu 0.6) does not support them, so the sink uses
//! what the output already promises: the same input gives the same rows at the same
//! times. On start it reads the topic back: the last progress record names the last
//! time whose rows are all in the topic, and the rows after it are the first rows of
//! the next time, written before the job died. The restarted job writes no time up to
//! the progress record's ([`TopicProgress::skips`]) and skips exactly as many rows of
//! the next one as the topic holds already; every later row is written. So the topic
//! ends holding every row exactly once. Without `--checkpoint` nothing is read back and
//! a run appends its rows to the topic.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::source::kafka::{CONNECT_TIMEOUT, QUIET, broker, client_config, create_topic, valid_topic};
use crate::time::Millis;

/// The key of a progress record.
pub const PROGRESS_KEY: &[u8] = b"\0kappa-progress";

/// Separates a row's key from its line in what [`super::RowWriter`] writes for a topic.
pub const KEY_END: u8 = 0x1f;

/// How long a flush waits for the broker to acknowledge what was sent.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// A topic on a broker: `kafka://HOST:PORT/TOPIC`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicUrl {
    /// `HOST:PORT`.
    pub broker: String,
    /// The topic.
    pub topic: String,
}

impl TopicUrl {
    /// Parses `kafka://HOST:PORT/TOPIC`; `None` if `text` is not a kafka URL at all.
    pub fn parse(text: &str) -> Option<Result<TopicUrl, String>> {
        let rest = text.strip_prefix("kafka://")?;
        let bad = |why: &str| format!("invalid kafka topic '{text}': {why}");
        Some((|| {
            let (address, topic) =
                rest.split_once('/').ok_or_else(|| bad("expected kafka://HOST:PORT/TOPIC"))?;
            let broker = broker(address).map_err(|e| bad(&e))?;
            if !valid_topic(topic) {
                return Err(bad(&format!("bad topic name '{topic}'")));
            }
            Ok(TopicUrl { broker, topic: topic.to_owned() })
        })())
    }
}

impl std::fmt::Display for TopicUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kafka://{}/{}", self.broker, self.topic)
    }
}

/// Counts deliveries the broker refused after every retry.
#[derive(Default)]
pub struct Deliveries {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            self.first_error.lock().expect("deliveries lock").get_or_insert_with(|| e.to_string());
        }
    }
}

/// An idempotent producer to one topic.
pub struct TopicProducer {
    producer: ThreadedProducer<Deliveries>,
    url: TopicUrl,
}

impl TopicProducer {
    /// Connects to `url`'s broker, creating the topic with `partitions` partitions if it
    /// does not exist; one that exists must have at least as many.
    pub fn open(url: &TopicUrl, partitions: u32) -> Result<TopicProducer, String> {
        let have = create_topic(&url.broker, &url.topic, partitions)?;
        if have < partitions as usize {
            return Err(format!("topic {url} has {have} partition(s), fewer than {partitions}"));
        }
        let producer = client_config(&url.broker)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000")
            .create_with_context(Deliveries::default())
            .map_err(|e| format!("{url}: {e}"))?;
        Ok(TopicProducer { producer, url: url.clone() })
    }

    /// Sends one message to `partition`, waiting while the producer's queue is full.
    pub fn send(&self, partition: i32, key: Option<&[u8]>, value: &[u8]) -> io::Result<()> {
        let mut record = BaseRecord::<[u8], [u8]>::to(&self.url.topic).partition(partition).payload(value);
        if let Some(k) = key {
            record = record.key(k);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    r,
                )) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(io::Error::other(format!("{}: {e}", self.url))),
            }
        }
    }

    /// Waits until the broker has acknowledged everything sent; an error if any message
    /// could not be delivered.
    pub fn sync(&self) -> io::Result<()> {
        self.producer.flush(FLUSH_TIMEOUT).map_err(|e| io::Error::other(format!("{}: {e}", self.url)))?;
        let context = self.producer.context();
        match context.failed.load(Ordering::Relaxed) {
            0 => Ok(()),
            n => {
                let first = context.first_error.lock().expect("deliveries lock").clone().unwrap_or_default();
                Err(io::Error::other(format!("{}: {n} message(s) not delivered: {first}", self.url)))
            }
        }
    }
}

/// Publishes `lines` through `producer` as one message each, line `i` to partition `i
/// mod partitions`, at most `rate` a second if given (open loop: line `i` is due `i /
/// rate` after the start), and waits until the broker has acknowledged them all.
pub fn publish(
    producer: &TopicProducer,
    partitions: u32,
    rate: Option<u64>,
    mut lines: impl FnMut(u64, &mut Vec<u8>) -> bool,
) -> Result<u64, String> {
    let start = Instant::now();
    let mut line = Vec::new();
    let mut sent = 0u64;
    loop {
        line.clear();
        if !lines(sent, &mut line) {
            break;
        }
        if let Some(rate) = rate {
            let due = Duration::from_nanos((sent as u128 * 1_000_000_000 / rate as u128) as u64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        producer.send((sent % partitions as u64) as i32, None, &line).map_err(|e| e.to_string())?;
        sent += 1;
    }
    producer.sync().map_err(|e| e.to_string())?;
    Ok(sent)
}

/// What an output topic held when the job started: the last completed time and the rows
/// written after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadBack {
    /// The time of the last progress record.
    pub time: Option<Millis>,
    /// Rows after that progress record.
    pub rows_after: u64,
}

/// Reads partition 0 of `url` from its start to its end (see `source::kafka` on how the
/// end is found despite Tansu's end offsets).
pub fn read_back(url: &TopicUrl) -> Result<ReadBack, String> {
    let consumer: BaseConsumer = client_config(&url.broker)
        .set("group.id", format!("kappa-read-back-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| format!("{url}: {e}"))?;
    let (_, end) = consumer
        .fetch_watermarks(&url.topic, 0, CONNECT_TIMEOUT)
        .map_err(|e| format!("{url}: cannot read its end offset: {e}"))?;
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(&url.topic, 0, Offset::Beginning).map_err(|e| e.to_string())?;
    consumer.assign(&list).map_err(|e| format!("{url}: {e}"))?;
    let mut found = ReadBack::default();
    let (mut next, mut last) = (0i64, Instant::now());
    while next < end || last.elapsed() < QUIET {
        match consumer.poll(crate::source::live::WAIT) {
            Some(Ok(m)) => {
                next = m.offset() + 1;
                last = Instant::now();
                if m.key() == Some(PROGRESS_KEY) {
                    let text = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                    let time = text.split(' ').next().and_then(|t| t.parse().ok());
                    let time =
                        time.ok_or_else(|| format!("{url}: offset {}: bad progress record", m.offset()))?;
                    found = ReadBack { time: Some(time), rows_after: 0 };
                } else {
                    found.rows_after += 1;
                }
            }
            Some(Err(e)) => return Err(format!("{url}: {e}")),
            None if last.elapsed() > FLUSH_TIMEOUT => {
                return Err(format!("{url}: read back stalled at offset {next} of {end}"));
            }
            None => {}
        }
    }
    Ok(found)
}

/// The rows a job sends to a topic, and its progress.
pub struct TopicProgress {
    producer: TopicProducer,
    /// What the topic held at start (nothing without `--checkpoint`).
    read_back: ReadBack,
    /// Rows of the open time still to skip: they are in the topic already.
    skip: Mutex<u64>,
    /// Rows sent since the last progress record.
    rows: AtomicU64,
}

impl TopicProgress {
    /// Opens the output topic `url`; with `resume`, reads back what it holds.
    pub fn open(url: &TopicUrl, resume: bool) -> Result<Arc<TopicProgress>, String> {
        let producer = TopicProducer::open(url, 1)?;
        let read_back = if resume { read_back(url)? } else { ReadBack::default() };
        Ok(Arc::new(TopicProgress {
            producer,
            read_back,
            skip: Mutex::new(read_back.rows_after),
            rows: AtomicU64::new(0),
        }))
    }

    /// Whether the rows of `time` are in the topic already.
    pub fn skips(&self, time: Millis) -> bool {
        self.read_back.time.is_some_and(|t| time <= t)
    }

    /// Sends one row, unless it is among those the topic holds already.
    fn row(&self, key: &[u8], line: &[u8]) -> io::Result<()> {
        let mut skip = self.skip.lock().expect("skip lock");
        if *skip > 0 {
            *skip -= 1;
            return Ok(());
        }
        self.rows.fetch_add(1, Ordering::Relaxed);
        self.producer.send(0, Some(key), line)
    }

    /// Every row of `time` has been sent: the progress record follows them.
    pub fn completed(&self, time: Millis) -> io::Result<()> {
        let rows = self.rows.swap(0, Ordering::Relaxed);
        *self.skip.lock().expect("skip lock") = 0;
        self.producer.send(0, Some(PROGRESS_KEY), format!("{time} {rows}").as_bytes())
    }

    /// Waits until the broker has acknowledged everything sent.
    pub fn sync(&self) -> io::Result<()> {
        self.producer.sync()
    }
}

/// The writer a sink renders rows into: each `KEY \x1f LINE \n` it is given becomes a
/// message. [`super::RowWriter::keyed`] writes that shape.
pub struct TopicWriter {
    progress: Arc<TopicProgress>,
    pending: Vec<u8>,
}

impl TopicWriter {
    /// A writer sending to `progress`'s topic.
    pub fn new(progress: Arc<TopicProgress>) -> TopicWriter {
        TopicWriter { progress, pending: Vec::new() }
    }
}

impl Write for TopicWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        let mut start = 0;
        while let Some(k) = memchr::memchr(b'\n', &self.pending[start..]) {
            let line = &self.pending[start..start + k];
            let (key, value) = match memchr::memchr(KEY_END, line) {
                Some(at) => (&line[..at], &line[at + 1..]),
                None => (&line[..0], line),
            };
            self.progress.row(key, value)?;
            start += k + 1;
        }
        self.pending.drain(..start);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_urls_parse() {
        let u = TopicUrl::parse("kafka://127.0.0.1:9092/out").unwrap().unwrap();
        assert_eq!((u.broker.as_str(), u.topic.as_str()), ("127.0.0.1:9092", "out"));
        assert_eq!(u.to_string(), "kafka://127.0.0.1:9092/out");
        assert!(TopicUrl::parse("out.csv").is_none());
        for bad in ["kafka://h/out", "kafka://h:1", "kafka://h:1/", "kafka://h:1/a/b"] {
            assert!(TopicUrl::parse(bad).unwrap().is_err(), "{bad}");
        }
    }
}
