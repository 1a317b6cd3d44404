//! `tcp://HOST:PORT`: listen for line clients, many at once.
//!
//! Process `p` of a cluster listens on `PORT + p`, so every process has its own share of
//! the live input and no process is a bottleneck. Each connection gets an intake thread;
//! a connection may start with a header line. With `?clients=N` the input ends after N
//! connections have come and gone; with `--until-eof` it ends when every connection so
//! far has closed; otherwise it runs until the job is stopped.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use super::lines::LastLine;
use super::live::Intake;

/// Where and how to listen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSpec {
    /// Host or address to bind.
    pub host: String,
    /// Port of process 0; process `p` uses `port + p`.
    pub port: u16,
    /// End the input after this many connections have closed.
    pub clients: Option<usize>,
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
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("clients", n)) => {
                    clients = Some(n.parse().map_err(|_| format!("invalid tcp parameter clients={n}"))?)
                }
                _ => return Err(format!("unknown tcp parameter '{pair}' (use clients=N)")),
            }
        }
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        Ok(TcpSpec { host, port, clients })
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

/// Accepts connections on `listener` and pumps each into `intake` on its own thread.
pub fn listen(
    listener: TcpListener,
    intake: Intake,
    clients: Option<usize>,
    until_eof: bool,
    max_line: usize,
) {
    listener.set_nonblocking(true).expect("nonblocking listener");
    thread::Builder::new()
        .name("kappa-tcp-accept".into())
        .spawn(move || {
            let open = Arc::new(AtomicUsize::new(0));
            let mut accepted = 0usize;
            loop {
                if intake.stopping() || clients.is_some_and(|n| accepted >= n) {
                    break;
                }
                if until_eof && accepted > 0 && open.load(Ordering::SeqCst) == 0 {
                    break;
                }
                match listener.accept() {
                    Ok((stream, peer)) => {
                        accepted += 1;
                        open.fetch_add(1, Ordering::SeqCst);
                        let _ = stream.set_nonblocking(false);
                        let intake = intake.clone();
                        let open = Arc::clone(&open);
                        let origin: Arc<str> = Arc::from(format!("tcp:{peer}"));
                        thread::Builder::new()
                            .name("kappa-tcp-conn".into())
                            .spawn(move || {
                                if let Err(e) =
                                    intake.pump(Arc::clone(&origin), stream, max_line, LastLine::Truncated)
                                {
                                    eprintln!(
                                        "{}: warning: {origin}: {}",
                                        crate::exit::program_name(),
                                        crate::exit::io_reason(&e)
                                    );
                                }
                                open.fetch_sub(1, Ordering::SeqCst);
                            })
                            .expect("spawn connection thread");
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(10))
                    }
                    Err(e) => {
                        eprintln!(
                            "{}: warning: accept: {}",
                            crate::exit::program_name(),
                            crate::exit::io_reason(&e)
                        );
                        thread::sleep(Duration::from_millis(100));
                    }
                }
            }
            // Dropping this thread's intake lets the feed end once connections finish.
        })
        .expect("spawn accept thread");
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
    }
}
