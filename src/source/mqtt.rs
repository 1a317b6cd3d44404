//! `mqtt://HOST:PORT/TOPIC-FILTER`: subscribe to an MQTT broker; each message's payload
//! is one record line (a JSON line or a CSV line; one trailing newline is dropped).
//!
//! The subscription is QoS 1 (at least once) with a persistent session (clean session
//! off, client id `kappa-PROGRAM-pP`, or `?client-id=ID`), so the broker keeps the
//! subscription and queues messages while the job is down. Acknowledgements are manual:
//! a message is acknowledged only once its batch is safe: handed to the intake and, with
//! `--checkpoint`, written to the journal ([`Intake::safe_batches`]). So a message the
//! broker considers delivered is in the journal, and a restart loses nothing.
//!
//! **Exactly once across restarts.** A message journaled but not yet acknowledged when
//! the job died is delivered again by the broker after the restart, with the same packet
//! id and its DUP flag set (MQTT 3.1.1, 4.4). The journal keeps each message's packet id,
//! and a restart knows the last [`DELIVERED_TAIL`](super::live::DELIVERED_TAIL) journaled messages with their ids
//! ([`Replayed::delivered`]): a redelivery (DUP set) whose packet id and payload equal
//! one of them is acknowledged and dropped, once. A broker reuses a packet id only after
//! the message that held it was acknowledged, and leaves at most its in-flight window
//! (Mosquitto: 20) unacknowledged, so the match is exact. Message numbers (the `line` of a
//! rejects entry) and `?count=N` go on from the journal's, so they count every message
//! once over all runs.
//!
//! The filter may use MQTT wildcards (`sensors/#`, `sensors/+/temperature`). With `{p}`
//! in the filter, process `p` of a cluster subscribes to its own filter (an edge site's
//! topics, `sensors/site-{p}/#`); without it only process 0 subscribes, so no message is
//! read twice. With `?count=N` the input ends after N messages (for tests and
//! benchmarks); otherwise it runs until the job is stopped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{Client, Connection, Event, MqttOptions, Outgoing, Packet, Publish, QoS, RecvTimeoutError};

use super::lines::{Flaw, Line};
use super::live::{BATCH_LINES, Batcher, Intake, Replayed, WAIT};
use crate::checkpoint::crash_point;
use crate::exit::program_name;

/// How long the start-up waits for the broker to accept the connection and subscription.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Messages taken before they are handed on and acknowledged: Mosquitto's default
/// `max_inflight_messages`. A broker sends no more than its window of unacknowledged
/// messages, so waiting for more before acknowledging would stall the stream.
pub const ACK_EVERY: usize = 20;

/// With messages waiting to be acknowledged, how long to wait for one more before
/// handing them on.
pub const IDLE: Duration = Duration::from_millis(1);

/// Where to subscribe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttSpec {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Topic filter; `{p}` is replaced by the process index.
    pub filter: String,
    /// End the input after this many messages.
    pub count: Option<u64>,
    /// The client id of the persistent session.
    pub client_id: Option<String>,
}

impl MqttSpec {
    /// Parses the part after `mqtt://`, e.g. `127.0.0.1:1883/sensors/#?count=1000`.
    pub fn parse(text: &str) -> Result<MqttSpec, String> {
        let bad = |why: &str| format!("invalid mqtt input 'mqtt://{text}': {why}");
        let (address, rest) =
            text.split_once('/').ok_or_else(|| bad("expected mqtt://HOST:PORT/TOPIC-FILTER"))?;
        let (filter, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (host, port) = address.rsplit_once(':').ok_or_else(|| bad("expected HOST:PORT"))?;
        let port = port.parse().map_err(|_| bad(&format!("bad port '{port}'")))?;
        if filter.is_empty() {
            return Err(bad("empty topic filter"));
        }
        let (mut count, mut client_id) = (None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("count", n)) => {
                    count = Some(n.parse().map_err(|_| bad(&format!("bad count '{n}'")))?);
                }
                Some(("client-id", id)) if !id.is_empty() => client_id = Some(id.to_owned()),
                _ => return Err(bad(&format!("unknown parameter '{pair}' (use count=N or client-id=ID)"))),
            }
        }
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        Ok(MqttSpec { host, port, filter: filter.to_owned(), count, client_id })
    }

    /// The filter process `process` subscribes to, if it subscribes at all.
    pub fn filter_for(&self, process: usize) -> Option<String> {
        if self.filter.contains("{p}") {
            Some(self.filter.replace("{p}", &process.to_string()))
        } else {
            (process == 0).then(|| self.filter.clone())
        }
    }
}

impl std::fmt::Display for MqttSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mqtt://{}:{}/{}", self.host, self.port, self.filter)
    }
}

/// Connects process `process` to the broker, subscribes, and pumps messages into
/// `intake` on a thread of its own. Fails at start-up when the broker cannot be reached
/// or refuses the subscription within [`CONNECT_TIMEOUT`]. `replayed` is what the
/// checkpoint's journal held: numbering goes on from it, and redeliveries of the messages
/// it holds are dropped.
pub fn subscribe(
    spec: &MqttSpec,
    process: usize,
    intake: Intake,
    max_line: usize,
    replayed: &Replayed,
) -> Result<(), String> {
    let Some(filter) = spec.filter_for(process) else {
        // Nothing to read here: dropping the intake ends this process's feed.
        return Ok(());
    };
    let origin = format!("mqtt://{}:{}/{filter}", spec.host, spec.port);
    let origin: Arc<str> = Arc::from(origin);
    let id = spec.client_id.clone().unwrap_or_else(|| format!("kappa-{}-p{process}", program_name()));
    let mut options = MqttOptions::new(id, spec.host.clone(), spec.port);
    options.set_clean_session(false);
    options.set_manual_acks(true);
    options.set_keep_alive(Duration::from_secs(10));
    options.set_max_packet_size(max_line + 1024, max_line + 1024);
    let (client, mut connection) = Client::new(options, 1024);
    client.subscribe(filter.clone(), QoS::AtLeastOnce).map_err(|e| format!("{origin}: {e}"))?;
    // Wait for the subscription to be acknowledged, keeping any message that comes first.
    let mut early: Vec<Publish> = Vec::new();
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match connection.recv_timeout(left) {
            Ok(Ok(Event::Incoming(Packet::SubAck(ack)))) => {
                if ack.return_codes.iter().any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) {
                    return Err(format!("{origin}: the broker refused the subscription"));
                }
                break;
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => early.push(p),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("cannot connect to {origin}: {e}")),
            Err(_) => return Err(format!("cannot connect to {origin}: no answer in {CONNECT_TIMEOUT:?}")),
        }
    }
    let pump = Pump {
        batcher: Batcher::numbered(
            Arc::clone(&origin),
            replayed.next_line.get(&origin).copied().unwrap_or(1),
        ),
        delivered: replayed.delivered.get(&origin).cloned().unwrap_or_default(),
        client,
        intake,
        max_line,
        origin,
        unacked: Vec::new(),
        pending: VecDeque::new(),
    };
    let count = spec.count;
    std::thread::Builder::new()
        .name("kappa-mqtt".into())
        .spawn(move || pump.run(connection, early, count))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Hands messages to the intake in batches, acknowledging each batch once it is safe.
struct Pump {
    client: Client,
    intake: Intake,
    batcher: Batcher,
    max_line: usize,
    origin: Arc<str>,
    /// The journal's last messages before the restart, for telling redeliveries.
    delivered: VecDeque<(u16, Vec<u8>)>,
    /// Messages taken, not yet in a sent batch.
    unacked: Vec<Publish>,
    /// Messages sent, each with its batch's number, waiting for that batch to be safe.
    pending: VecDeque<(u64, Publish)>,
}

impl Pump {
    /// Messages counted so far, over all runs of the job.
    fn received(&self) -> u64 {
        self.batcher.next_line() - 1
    }

    /// Takes a message into the batch, or acknowledges and drops it if it is a
    /// redelivery of one journaled before the restart.
    fn take(&mut self, p: Publish) {
        let payload = p.payload.as_ref();
        let payload = payload.strip_suffix(b"\n").unwrap_or(payload);
        let payload = payload.strip_suffix(b"\r").unwrap_or(payload);
        let flaw = (payload.len() > self.max_line).then_some(Flaw::TooLong(payload.len() as u64));
        let bytes = if flaw.is_some() { &payload[..self.max_line] } else { payload };
        if p.dup
            && let Some(k) = self.delivered.iter().position(|(id, b)| *id == p.pkid && b == bytes)
        {
            self.delivered.remove(k);
            let _ = self.client.ack(&p);
            return;
        }
        let line = Line { index: self.batcher.next_line(), bytes, flaw };
        self.batcher.push_delivered(&line, p.pkid, &self.intake);
        self.unacked.push(p);
    }

    /// Sends the batch, then waits briefly for the journal: the broker sends no more
    /// until these messages are acknowledged.
    fn flush(&mut self) {
        self.batcher.flush(&self.intake);
        let ticket = self.batcher.sent();
        self.pending.extend(self.unacked.drain(..).map(|p| (ticket, p)));
        self.intake.wait_safe(ticket, IDLE);
    }

    /// Acknowledges the messages whose batches are safe.
    fn ack_safe(&mut self) {
        let safe = self.intake.safe_batches();
        if self.pending.front().is_some_and(|(t, _)| *t <= safe) {
            // For tests: journaled, not yet acknowledged.
            crash_point("mqtt-journaled");
        }
        while let Some((_, p)) = self.pending.pop_front_if(|(t, _)| *t <= safe) {
            let _ = self.client.ack(&p);
        }
    }

    fn run(mut self, mut connection: Connection, early: Vec<Publish>, count: Option<u64>) {
        for p in early {
            self.take(p);
        }
        let mut oldest: Option<Instant> = None;
        let mut warned = false;
        loop {
            self.ack_safe();
            if self.intake.stopping() || count.is_some_and(|n| self.received() >= n) {
                break;
            }
            let wait = if self.unacked.is_empty() && self.pending.is_empty() { WAIT } else { IDLE };
            match connection.recv_timeout(wait) {
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                    oldest.get_or_insert_with(Instant::now);
                    self.take(p);
                    if self.unacked.len() >= ACK_EVERY.min(BATCH_LINES)
                        || oldest.is_some_and(|o| o.elapsed() >= WAIT)
                    {
                        self.flush();
                        oldest = None;
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    // rumqttc reconnects on the next poll; the persistent session keeps the
                    // subscription and the broker resends what was not acknowledged.
                    if !warned {
                        eprintln!("{}: warning: {}: {e}; reconnecting", program_name(), self.origin);
                        warned = true;
                    }
                    self.flush();
                    std::thread::sleep(WAIT);
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.flush();
                    oldest = None;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.flush();
        // Acknowledge what is safe, then leave once the acknowledgements are out; the
        // session stays on the broker, which redelivers anything left unacknowledged.
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        while !self.pending.is_empty() && Instant::now() < deadline {
            self.ack_safe();
            let _ = connection.recv_timeout(IDLE);
        }
        let _ = self.client.disconnect();
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        while Instant::now() < deadline {
            match connection.recv_timeout(WAIT) {
                Ok(Ok(Event::Outgoing(Outgoing::Disconnect)))
                | Ok(Err(_))
                | Err(RecvTimeoutError::Disconnected) => {
                    break;
                }
                _ => {}
            }
        }
    }
}

/// Publishes `lines` to `topic` at QoS 1, at most `rate` a second if given (open loop:
/// line `i` is due `i / rate` after the start), and waits until the broker has
/// acknowledged them all.
pub fn publish(
    host: &str,
    port: u16,
    topic: &str,
    rate: Option<u64>,
    mut lines: impl FnMut(u64, &mut Vec<u8>) -> bool + Send + 'static,
) -> Result<u64, String> {
    let origin = format!("mqtt://{host}:{port}/{topic}");
    let mut options = MqttOptions::new(format!("kappa-gen-{}", std::process::id()), host, port);
    options.set_keep_alive(Duration::from_secs(10));
    let (client, mut connection) = Client::new(options, 1024);
    // How many were sent, once the sender is done.
    let done = Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
    let sender = std::thread::Builder::new()
        .name("kappa-mqtt-publish".into())
        .spawn({
            let (topic, client, done) = (topic.to_owned(), client.clone(), Arc::clone(&done));
            move || -> Result<u64, String> {
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
                    client
                        .publish(topic.as_str(), QoS::AtLeastOnce, false, line.clone())
                        .map_err(|e| e.to_string())?;
                    sent += 1;
                }
                done.store(sent, std::sync::atomic::Ordering::SeqCst);
                Ok(sent)
            }
        })
        .map_err(|e| e.to_string())?;
    let mut acked = 0u64;
    let mut leaving = false;
    loop {
        match connection.recv_timeout(WAIT) {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) => break,
            Ok(Ok(_)) | Err(RecvTimeoutError::Timeout) => {}
            Ok(Err(e)) => return Err(format!("{origin}: {e}")),
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let sent = done.load(std::sync::atomic::Ordering::SeqCst);
        if !leaving && (acked >= sent || sender.is_finished() && sent == u64::MAX) {
            // Every message acknowledged (or the sender failed): leave.
            let _ = client.disconnect();
            leaving = true;
        }
    }
    let sent = sender.join().map_err(|_| format!("{origin}: the publishing thread panicked"))??;
    if acked < sent {
        return Err(format!("{origin}: the broker acknowledged {acked} of {sent} messages"));
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_name_their_filter_per_process() {
        let s = MqttSpec::parse("127.0.0.1:1883/sensors/#?count=10").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.filter.as_str(), s.count),
            ("127.0.0.1", 1883, "sensors/#", Some(10))
        );
        assert_eq!(s.filter_for(0).as_deref(), Some("sensors/#"));
        assert_eq!(s.filter_for(1), None);
        let e = MqttSpec::parse("h:1/sensors/site-{p}/#?client-id=edge").unwrap();
        assert_eq!(e.filter_for(2).as_deref(), Some("sensors/site-2/#"));
        assert_eq!(e.client_id.as_deref(), Some("edge"));
        for bad in ["h:1", "h/x", "h:x/t", "h:1/", "h:1/t?qos=2"] {
            assert!(MqttSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
