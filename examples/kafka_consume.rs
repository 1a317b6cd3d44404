//! The raw consume rate of a topic: one bare consumer with the Kafka input's own settings
//! (`kappa::source::kafka::consumer_config`) reads every partition from its start until
//! it has taken `RECORDS` records, and does nothing with them but count their bytes. No
//! job that reads the topic through one consumer can be faster, so comparing a job's
//! rate with this one tells whether the job or the broker path is the limit.
//!
//! ```sh
//! cargo run --release --example kafka_consume -- 127.0.0.1:9092 tx 2000000
//! cargo run --release --example kafka_consume -- 127.0.0.1:9092 tx 2000000 fetch.wait.max.ms=500
//! ```
//!
//! Each `KEY=VALUE` overrides one librdkafka setting. It prints two lines, e.g.
//! `2000000 records, 165000000 bytes in 1.10 s: 1818000 records/s` and the age of the
//! records when polled, from their timestamps (`publish to poll: p50 12 ms, p99 25 ms`:
//! for a topic published while it reads, the latency of the broker path alone), and
//! exits 1 if no record came for 5 s before `RECORDS` were read.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use kappa::source::kafka::{CONNECT_TIMEOUT, consumer_config};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [broker, topic, records, overrides @ ..] = &args[..] else {
        eprintln!("usage: kafka_consume HOST:PORT TOPIC RECORDS [KEY=VALUE ...]");
        return ExitCode::from(2);
    };
    let records: u64 = records.parse().expect("RECORDS is a count");
    let mut config = consumer_config(broker, "kafka-consume");
    for pair in overrides {
        let (key, value) = pair.split_once('=').expect("KEY=VALUE");
        config.set(key, value);
    }
    let consumer: BaseConsumer = config.create().expect("a consumer");
    let metadata = consumer.fetch_metadata(Some(topic), CONNECT_TIMEOUT).expect("metadata");
    let mut assignment = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        assignment.add_partition_offset(topic, p.id(), Offset::Beginning).expect("a partition");
    }
    consumer.assign(&assignment).expect("assigned");
    let start = Instant::now();
    let (mut taken, mut bytes, mut last) = (0u64, 0u64, Instant::now());
    let mut ages = hdrhistogram::Histogram::<u64>::new(3).expect("a histogram");
    while taken < records {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                taken += 1;
                bytes += m.payload().map_or(0, <[u8]>::len) as u64;
                if let Some(t) = m.timestamp().to_millis() {
                    ages.saturating_record(kappa::time::now_millis().saturating_sub(t.max(0) as u64));
                }
                last = Instant::now();
            }
            Some(Err(e)) => eprintln!("kafka_consume: {e}"),
            None if last.elapsed() > Duration::from_secs(5) => break,
            None => {}
        }
    }
    let secs = last.duration_since(start).as_secs_f64();
    println!("{taken} records, {bytes} bytes in {secs:.2} s: {:.0} records/s", taken as f64 / secs);
    let (p50, p99) = (ages.value_at_quantile(0.5), ages.value_at_quantile(0.99));
    println!("publish to poll: p50 {p50} ms, p99 {p99} ms, max {} ms", ages.max());
    if taken < records { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
