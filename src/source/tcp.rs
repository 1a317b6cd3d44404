//! `tcp://HOST:PORT`: listen for line clients, many at once.
//!
//! Process `p` of a cluster listens on `PORT + p`, so every process has its own share of
//! the live input and no process is a bottleneck. Each connection gets an intake thread;
//! a connection may start with a header line. With `?clients=N` the input ends after N
//! connections have come and gone; with `--until-eof` it ends when every connection so
//! far has closed; otherwise it runs until the job is stopped.
//!
//! Connections are bounded: with `?max-connections=N` (default [`MAX_CONNECTIONS`]) a
//! client that connects while N are open is refused, as is one whose thread cannot be
//! started. A refused client is closed at once, counted in the meters (the summary
//! says `refused N tcp connections`) and named on stderr, at most once a second so a
//! flood cannot flood the log too. A refusal never stops the listener: the accept loop
//! does not panic, and the input keeps serving the clients it has and the ones to come.
//! A refused connection does not count towards `clients=N`.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::lines::LastLine;
use super::live::Intake;
use crate::exit::program_name;
use crate::metrics::Meters;

/// Open connections per process, by default.
pub const MAX_CONNECTIONS: usize = 1024;

/// Where and how to listen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSpec {
    /// Host or address to bind.
    pub host: String,
    /// Port of process 0; process `p` uses `port + p`.
    pub port: u16,
    /// End the input after this many connections have closed.
    pub clients: Option<usize>,
    /// Refuse a client while this many connections are open.
    pub max_connections: usize,
}

impl TcpSpec {
    /// Parses the part after `tcp://`, e.g. `0.0.0.0:9000?clients=3`.
    pub fn parse(text: &str) -> Result<TcpSpec, String> {
        let (address, query) = text.split_once('?').unwrap_or((text, ""));
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| format!("invalid tcp input 'tcp://{text}': expected tcp://HOST:PORT"))?;
        let port =
            port.parse().map_err(|_| format!("invalid tcp input 'tcp://{text}': bad port '{port}'"))?;
        let mut clients = None;
        let mut max_connections = MAX_CONNECTIONS;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("clients", n)) => {
                    clients = Some(n.parse().map_err(|_| format!("invalid tcp parameter clients={n}"))?)
                }
                Some(("max-connections", n)) => {
                    max_connections = n.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                        format!("invalid tcp parameter max-connections={n}: expected a positive number")
                    })?
                }
                _ => {
                    return Err(format!(
                        "unknown tcp parameter '{pair}' (use clients=N or max-connections=N)"
                    ));
                }
            }
        }
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        Ok(TcpSpec { host, port, clients, max_connections })
    }

    /// Binds this process's listener.
    pub fn bind(&self, process: usize) -> Result<TcpListener, String> {
        let port = self.port as usize + process;
        let port =
            u16::try_from(port).map_err(|_| format!("tcp port {} + {process} is out of range", self.port))?;
        let address = format!("{}:{port}", self.host);
        TcpListener::bind(address.as_str())
            .map_err(|e| format!("cannot listen on {address}: {}", crate::exit::io_reason(&e)))
    }
}

/// Accepts connections on `listener` and pumps each into `intake` on its own thread,
/// at most `spec.max_connections` at once; refusals are counted in `meters.refused`.
/// `accepted_before` connections were accepted by an earlier run (from the journal):
/// they count towards `?clients=N` and `--until-eof`.
///
/// Fails only at startup, when the listener cannot be set up or its thread started.
pub fn listen(
    listener: TcpListener,
    intake: Intake,
    spec: &TcpSpec,
    until_eof: bool,
    max_line: usize,
    meters: Arc<Meters>,
    accepted_before: usize,
) -> Result<(), String> {
    let origin = format!("tcp://{}:{}", spec.host, listener.local_addr().map_or(spec.port, |a| a.port()));
    listener.set_nonblocking(true).map_err(|e| format!("{origin}: {}", crate::exit::io_reason(&e)))?;
    let (clients, max) = (spec.clients, spec.max_connections);
    let mut refusals = Refusals { origin: origin.clone(), meters, logged_at: None, unlogged: 0 };
    thread::Builder::new()
        .name("kappa-tcp-accept".into())
        .spawn(move || {
            let open = Arc::new(AtomicUsize::new(0));
            let mut accepted = accepted_before;
            loop {
                if intake.stopping() || clients.is_some_and(|n| accepted >= n) {
                    break;
                }
                if until_eof && accepted > 0 && open.load(Ordering::SeqCst) == 0 {
                    break;
                }
                match listener.accept() {
                    Ok((stream, peer)) => {
                        if open.load(Ordering::SeqCst) >= max {
                            // Dropping the stream closes it: the client sees the refusal.
                            refusals
                                .refuse(peer, &format!("{max} connections are open (max-connections={max})"));
                            continue;
                        }
                        let _ = stream.set_nonblocking(false);
                        open.fetch_add(1, Ordering::SeqCst);
                        let (conn, open_now) = (intake.clone(), Arc::clone(&open));
                        let origin: Arc<str> = Arc::from(format!("tcp:{peer}"));
                        let spawned = thread::Builder::new().name("kappa-tcp-conn".into()).spawn(move || {
                            if let Err(e) =
                                conn.pump(Arc::clone(&origin), stream, max_line, LastLine::Truncated)
                            {
                                eprintln!(
                                    "{}: warning: {origin}: {}",
                                    program_name(),
                                    crate::exit::io_reason(&e)
                                );
                            }
                            open_now.fetch_sub(1, Ordering::SeqCst);
                        });
                        match spawned {
                            Ok(_) => {
                                accepted += 1;
                                intake.accepted();
                            }
                            // The closure, and with it the stream, is dropped: refused.
                            Err(e) => {
                                open.fetch_sub(1, Ordering::SeqCst);
                                let reason =
                                    format!("cannot start its thread: {}", crate::exit::io_reason(&e));
                                refusals.refuse(peer, &reason);
                            }
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(10))
                    }
                    Err(e) => {
                        eprintln!("{}: warning: accept: {}", program_name(), crate::exit::io_reason(&e));
                        thread::sleep(Duration::from_millis(100));
                    }
                }
            }
            // Dropping this thread's intake lets the feed end once connections finish.
        })
        .map(drop)
        .map_err(|e| format!("{origin}: cannot start the accept thread: {}", crate::exit::io_reason(&e)))
}

/// Refused clients: counted each, logged at most once a second.
struct Refusals {
    origin: String,
    meters: Arc<Meters>,
    logged_at: Option<Instant>,
    /// Refusals since the last message.
    unlogged: u64,
}

impl Refusals {
    fn refuse(&mut self, peer: SocketAddr, why: &str) {
        self.meters.refused.fetch_add(1, Ordering::Relaxed);
        self.unlogged += 1;
        let now = Instant::now();
        if self.logged_at.is_some_and(|at| now.duration_since(at) < Duration::from_secs(1)) {
            return;
        }
        let more = match self.unlogged {
            1 => String::new(),
            n => format!(" ({n} refused since the last message)"),
        };
        eprintln!("{}: warning: {}: refused {peer}: {why}{more}", program_name(), self.origin);
        self.logged_at = Some(now);
        self.unlogged = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let s = TcpSpec::parse("0.0.0.0:9000?clients=3").unwrap();
        assert_eq!((s.host.as_str(), s.port, s.clients), ("0.0.0.0", 9000, Some(3)));
        assert_eq!(TcpSpec::parse("[::1]:80").unwrap().host, "::1");
        assert!(TcpSpec::parse("localhost").is_err());
        assert!(TcpSpec::parse("localhost:http").is_err());
        assert!(TcpSpec::parse("localhost:80?x=1").is_err());
        assert_eq!(TcpSpec::parse("h:1").unwrap().max_connections, MAX_CONNECTIONS);
        assert_eq!(TcpSpec::parse("h:1?clients=2&max-connections=3").unwrap().max_connections, 3);
        assert!(TcpSpec::parse("h:1?max-connections=0").is_err());
        assert!(TcpSpec::parse("h:1?max-connections=lots").is_err());
    }
}
