//! Running one job as several processes: connecting them, checking that they agree, and
//! stopping the moment one of them is lost.
//!
//! Timely brings the distributed engine; this module makes starting and stopping it
//! dependable. Timely's own startup ([`timely::communication::networking::create_sockets`])
//! retries a missing peer forever and prints progress on stdout, and a lost peer panics a
//! communication thread while the workers wait on. So a multi-process job instead:
//!
//! 1. binds its own address, connects to every lower-indexed process and accepts every
//!    higher-indexed one, all within `--connect-timeout`; a connection that does not
//!    greet as a kappa process within 2 s (a port scanner, an HTTP probe) is closed and
//!    counted, and the wait for real peers goes on;
//! 2. exchanges a hello on each connection (job name, `-n`, `-w`, the claimed index), so
//!    processes that disagree stop with one line naming the peer and the difference;
//! 3. hands the connected sockets to timely
//!    ([`initialize_networking_from_sockets`]), which runs the dataflow over them as usual;
//! 4. installs a panic hook: a panic in timely's `timely:send-N` / `timely:recv-N` thread
//!    becomes `lost connection to process N (host:port): …` and exit code 1, and any other
//!    panic ends the process too. Timely is fail-stop, so ending at once is the only way
//!    peers learn of it (their sockets close) instead of waiting forever.
//!
//! Keep-alive probes and a user timeout on every socket make a peer that vanishes without
//! closing its connection (a host that loses power, a cut cable) count as lost too.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use timely::communication::WorkerGuards;
use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};
use timely::communication::{Config as CommunicationConfig, Hooks};
use timely::execute::execute_from;
use timely::worker::Worker;

use crate::exit::{EXIT_FAILURE, program_name};

/// Marks a kappa hello, and its version.
const MAGIC: &[u8; 8] = b"kappa\0\x01\0";
/// How long to wait between attempts to reach a peer that is not listening yet.
const RETRY: Duration = Duration::from_millis(100);
/// How long a silent connection may go unacknowledged before its peer counts as lost.
const SILENCE_LIMIT: Duration = Duration::from_secs(10);

/// What a process says about itself when it connects to a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The job binary's name.
    pub job: String,
    /// The sender's `-p`.
    pub process: u64,
    /// The sender's `-n`.
    pub processes: u64,
    /// The sender's `-w`.
    pub threads: u64,
}

impl Hello {
    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let job = &self.job.as_bytes()[..self.job.len().min(255)];
        let mut bytes = Vec::with_capacity(8 + 24 + 1 + job.len());
        bytes.extend_from_slice(MAGIC);
        for n in [self.process, self.processes, self.threads] {
            bytes.extend_from_slice(&n.to_be_bytes());
        }
        bytes.push(job.len() as u8);
        bytes.extend_from_slice(job);
        out.write_all(&bytes)?;
        out.flush()
    }

    fn read_from(input: &mut impl Read) -> io::Result<Hello> {
        let mut head = [0u8; 8 + 24 + 1];
        input.read_exact(&mut head)?;
        if &head[..8] != MAGIC {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not a kappa process of this version"));
        }
        let number = |i: usize| u64::from_be_bytes(head[8 + 8 * i..16 + 8 * i].try_into().unwrap());
        let mut job = vec![0u8; head[32] as usize];
        input.read_exact(&mut job)?;
        Ok(Hello {
            job: String::from_utf8_lossy(&job).into_owned(),
            process: number(0),
            processes: number(1),
            threads: number(2),
        })
    }

    /// Why a peer's hello does not fit this process's, if it does not.
    pub fn mismatch(&self, peer: &Hello, address: &str) -> Option<String> {
        let who = format!("process {} ({address})", peer.process);
        if peer.job != self.job {
            Some(format!("{who} runs job '{}' but this process runs '{}'", peer.job, self.job))
        } else if peer.processes != self.processes {
            Some(format!(
                "{who} was started with -n {} but this process (-p {}) with -n {}; every process needs the same -n",
                peer.processes, self.process, self.processes
            ))
        } else if peer.threads != self.threads {
            Some(format!(
                "{who} was started with -w {} but this process (-p {}) with -w {}; every process needs the same -w",
                peer.threads, self.process, self.threads
            ))
        } else {
            None
        }
    }
}

/// An I/O error's reason in lower case, without Rust's `(os error N)` suffix.
fn reason(e: &io::Error) -> String {
    let text = match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".to_owned(),
        io::ErrorKind::UnexpectedEof => "connection closed".to_owned(),
        _ => crate::exit::io_reason(e),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

fn resolve(address: &str) -> Result<Vec<SocketAddr>, String> {
    address
        .to_socket_addrs()
        .map(|a| a.collect::<Vec<_>>())
        .map_err(|e| format!("cannot resolve {address}: {}", reason(&e)))
        .and_then(|a| if a.is_empty() { Err(format!("cannot resolve {address}")) } else { Ok(a) })
}

/// Connects this process (`me`) to every other one within `timeout`, checking hellos.
///
/// Returns one stream per process, in process order, with `None` at `me`: the shape
/// timely's [`initialize_networking_from_sockets`] takes.
pub fn connect(
    addresses: &[String],
    me: usize,
    hello: &Hello,
    timeout: Duration,
) -> Result<Vec<Option<TcpStream>>, String> {
    let deadline = Instant::now() + timeout;
    let own = &addresses[me];
    // Bind first: peers that start later find us listening.
    let listener = TcpListener::bind(resolve(own)?.as_slice())
        .map_err(|e| format!("cannot listen on {own} (process {me}): {}", reason(&e)))?;
    listener.set_nonblocking(true).map_err(|e| format!("cannot listen on {own}: {}", reason(&e)))?;

    let accepting = {
        let addresses = addresses.to_vec();
        let hello = hello.clone();
        std::thread::Builder::new()
            .name("kappa:accept".into())
            .spawn(move || accept_all(listener, &addresses, me, &hello, (deadline, timeout)))
            .map_err(|e| format!("cannot start a thread: {e}"))?
    };
    // Try every lower-numbered peer in turn, so that a mismatch with any peer that is up
    // shows at once, whichever other peers are still missing.
    let mut streams: Vec<Option<TcpStream>> = (0..me).map(|_| None).collect();
    let mut last = vec![String::from("timed out"); me];
    let targets = addresses[..me].iter().map(|a| resolve(a)).collect::<Result<Vec<_>, _>>()?;
    let mut accepting = Some(accepting);
    let mut accepted = None;
    let join = |handle: std::thread::JoinHandle<Result<Vec<TcpStream>, String>>| {
        handle.join().map_err(|_| "connection thread failed".to_owned())?
    };
    loop {
        for peer in 0..me {
            if streams[peer].is_none() {
                streams[peer] =
                    try_connect(&targets[peer], &addresses[peer], peer, hello, deadline, &mut last[peer])?;
            }
        }
        // A failure while accepting is reported at once, not after connecting gives up.
        if let Some(handle) = accepting.take_if(|h| h.is_finished()) {
            accepted = Some(join(handle)?);
        }
        let Some(peer) = streams.iter().position(Option::is_none) else {
            break;
        };
        let Some(left) = remaining(deadline) else {
            return Err(format!(
                "cannot reach process {peer} at {} within {}: {}",
                addresses[peer],
                human(timeout),
                last[peer]
            ));
        };
        std::thread::sleep(RETRY.min(left));
    }
    let accepted = match (accepted, accepting) {
        (Some(a), _) => a,
        (None, Some(handle)) => join(handle)?,
        (None, None) => unreachable!("accepting is joined at most once"),
    };
    streams.push(None);
    streams.extend(accepted.into_iter().map(Some));
    Ok(streams)
}

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
}

/// One attempt to connect to and greet `peer`: `Ok(None)` if it is not listening yet
/// (the reason is kept in `last`), an error if it answers wrongly.
fn try_connect(
    targets: &[SocketAddr],
    address: &str,
    peer: usize,
    hello: &Hello,
    deadline: Instant,
    last: &mut String,
) -> Result<Option<TcpStream>, String> {
    let Some(left) = remaining(deadline) else {
        return Ok(None);
    };
    let attempt = targets
        .iter()
        .map(|t| TcpStream::connect_timeout(t, left.min(Duration::from_secs(1))))
        .find_map(|r| r.map_err(|e| *last = reason(&e)).ok());
    let Some(mut stream) = attempt else {
        return Ok(None);
    };
    let greeted = prepare_stream(&stream, deadline)
        .and_then(|_| hello.write_to(&mut stream))
        .and_then(|_| Hello::read_from(&mut stream));
    match greeted {
        Ok(theirs) if theirs.process != peer as u64 => Err(format!(
            "{address} answers as process {} but the address list has it as process {peer}",
            theirs.process
        )),
        Ok(theirs) => match hello.mismatch(&theirs, address) {
            Some(m) => Err(m),
            None => finish_stream(stream, address).map(Some),
        },
        Err(e) => Err(format!("process {peer} at {address} did not greet: {}", reason(&e))),
    }
}

/// How long an accepted connection may take to send its hello before it is ignored as
/// stray; it holds up the other accepts at most this long.
const GREETING_LIMIT: Duration = Duration::from_secs(2);
/// How many stray connections are named on stderr one by one; later ones are only counted.
const STRAYS_NAMED: u64 = 3;

/// Accepts every higher-indexed process within the deadline. A connection that does not
/// greet as a kappa process (a port scanner, an HTTP probe: wrong bytes, closed early, or
/// silent for [`GREETING_LIMIT`]) is closed, counted and ignored; a real peer that
/// disagrees ends startup.
fn accept_all(
    listener: TcpListener,
    addresses: &[String],
    me: usize,
    hello: &Hello,
    (deadline, timeout): (Instant, Duration),
) -> Result<Vec<TcpStream>, String> {
    let n = addresses.len();
    let mut accepted: Vec<Option<TcpStream>> = (me + 1..n).map(|_| None).collect();
    let mut strays = 0u64;
    while let Some(missing) = accepted.iter().position(Option::is_none) {
        let (mut stream, from) = match listener.accept() {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if remaining(deadline).is_none() {
                    let peer = me + 1 + missing;
                    let ignored = match strays {
                        0 => String::new(),
                        1 => "; ignored 1 connection that did not greet as a kappa process".to_owned(),
                        k => format!("; ignored {k} connections that did not greet as a kappa process"),
                    };
                    return Err(format!(
                        "process {peer} ({}) did not connect within {}{ignored}",
                        addresses[peer],
                        human(timeout)
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => return Err(format!("accepting connections: {}", reason(&e))),
        };
        let greeting_deadline = deadline.min(Instant::now() + GREETING_LIMIT);
        let theirs = match prepare_stream(&stream, greeting_deadline)
            .and_then(|_| Hello::read_from(&mut stream))
        {
            Ok(theirs) => theirs,
            Err(e) => {
                strays += 1;
                if strays <= STRAYS_NAMED {
                    let more = if strays == STRAYS_NAMED { " (further ones are only counted)" } else { "" };
                    eprintln!(
                        "{}: warning: ignored a connection from {from} that did not greet as a kappa process: {}{more}",
                        program_name(),
                        reason(&e)
                    );
                }
                continue;
            }
        };
        let peer = theirs.process as usize;
        if peer <= me || peer >= n || accepted[peer - me - 1].is_some() {
            return Err(format!(
                "connection from {from} claims to be process {peer}, which should not connect to process {me}"
            ));
        }
        prepare_stream(&stream, deadline)
            .and_then(|_| hello.write_to(&mut stream))
            .map_err(|e| format!("greeting process {peer} ({from}): {}", reason(&e)))?;
        if let Some(m) = hello.mismatch(&theirs, &addresses[peer]) {
            return Err(m);
        }
        accepted[peer - me - 1] = Some(finish_stream(stream, &addresses[peer])?);
    }
    Ok(accepted.into_iter().flatten().collect())
}

fn prepare_stream(stream: &TcpStream, deadline: Instant) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    let left = remaining(deadline).unwrap_or(Duration::from_millis(1));
    stream.set_read_timeout(Some(left))?;
    stream.set_write_timeout(Some(left))
}

fn finish_stream(stream: TcpStream, address: &str) -> Result<TcpStream, String> {
    stream
        .set_read_timeout(None)
        .and_then(|_| stream.set_write_timeout(None))
        .and_then(|_| watch_for_silence(&stream))
        .map_err(|e| format!("setting up the connection to {address}: {}", reason(&e)))?;
    Ok(stream)
}

/// Keep-alive probes and a user timeout: a peer that stops answering without closing
/// its connection fails the next read or write within about [`SILENCE_LIMIT`].
#[cfg(target_os = "linux")]
fn watch_for_silence(stream: &TcpStream) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    let set = |level: libc::c_int, name: libc::c_int, value: libc::c_int| -> io::Result<()> {
        // SAFETY: `fd` is an open socket owned by `stream`; the option value is a c_int
        // that lives for the duration of the call.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    };
    let limit = SILENCE_LIMIT.as_secs() as libc::c_int;
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, limit / 2)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 1)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, limit / 2)?;
    set(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, limit * 1000)
}

#[cfg(not(target_os = "linux"))]
fn watch_for_silence(_stream: &TcpStream) -> io::Result<()> {
    Ok(())
}

fn human(d: Duration) -> String {
    crate::time::Duration(d.as_millis() as u64).to_string()
}

/// How long a process that lost a peer keeps its own connections open before it exits.
///
/// All survivors see the lost peer's sockets close at about the same moment; lingering
/// keeps each survivor from seeing the *others* close first and naming the wrong peer.
const LINGER: Duration = Duration::from_secs(1);

/// Makes every panic end this process: a communication thread's panic as one line
/// naming the lost peer, any other after the usual panic message.
pub fn install_fail_stop(addresses: Vec<String>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static ENDING: AtomicBool = AtomicBool::new(false);
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if ENDING.swap(true, Ordering::SeqCst) {
            // Another thread is already ending the process with the first cause.
            loop {
                std::thread::park();
            }
        }
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("");
        let peer = name
            .strip_prefix("timely:recv-")
            .or_else(|| name.strip_prefix("timely:send-"))
            .and_then(|i| i.parse::<usize>().ok());
        if let Some(peer) = peer {
            let payload = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("communication failed");
            let cause = payload.strip_prefix("timely communication error: ").unwrap_or(payload);
            let cause = match cause.find(" (os error") {
                Some(at) => &cause[..at],
                None => cause,
            };
            let address = addresses.get(peer).map(String::as_str).unwrap_or("?");
            eprintln!("{}: error: lost connection to process {peer} ({address}): {cause}", program_name());
            std::thread::sleep(LINGER);
        } else {
            default(info);
        }
        std::process::exit(EXIT_FAILURE as i32);
    }));
}

/// Runs `func` on every worker of this process, like [`timely::execute`], connecting the
/// processes of a cluster configuration dependably (see the module docs).
pub fn execute<T, F>(
    config: timely::Config,
    connect_timeout: Duration,
    job: &str,
    func: F,
) -> Result<WorkerGuards<T>, String>
where
    T: Send + 'static,
    F: Fn(&mut Worker) -> T + Send + Sync + 'static,
{
    let CommunicationConfig::Cluster { threads, process, addresses, .. } = config.communication else {
        // One process is fail-stop too: a worker's panic must not leave its peers waiting.
        install_fail_stop(Vec::new());
        return timely::execute(config, func);
    };
    let hello = Hello {
        job: job.to_owned(),
        process: process as u64,
        processes: addresses.len() as u64,
        threads: threads as u64,
    };
    let sockets = connect(&addresses, process, &hello, connect_timeout)?;
    install_fail_stop(addresses);
    let hooks = Hooks::default();
    let local = ProcessBuilder::new_typed_vector(threads, hooks.refill.clone(), hooks.spill.clone());
    let (builders, guard) = initialize_networking_from_sockets(local, sockets, process, threads, hooks)
        .map_err(|e| format!("cannot start networking: {}", reason(&e)))?;
    let builders = builders.into_iter().map(AllocatorBuilder::Tcp).collect();
    execute_from(builders, Box::new(guard), config.worker, func)
}

/// One process's own line at the end of a multi-process job; process 0 prints the
/// summary over all processes.
pub fn local_summary(
    process: u32,
    processes: u32,
    counters: &crate::metrics::Meters,
    elapsed: std::time::Duration,
) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let read = counters.read.load(Relaxed);
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { read as f64 / secs } else { 0.0 };
    let refused = match counters.refused.load(Relaxed) {
        0 => String::new(),
        n => format!("; refused {n} tcp connections"),
    };
    format!(
        "summary (process {process} of {processes}, this process only; process 0 reports the totals): read {read} records, rejected {}, late {} in {secs:.3}s ({rate:.0} records/s){refused}",
        counters.rejected.load(Relaxed),
        counters.late.load(Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(process: u64, threads: u64) -> Hello {
        Hello { job: "category_totals".into(), process, processes: 2, threads }
    }

    #[test]
    fn hello_round_trips_and_names_differences() {
        let mut bytes = Vec::new();
        hello(1, 3).write_to(&mut bytes).unwrap();
        assert_eq!(Hello::read_from(&mut &bytes[..]).unwrap(), hello(1, 3));
        assert!(Hello::read_from(&mut &b"GET / HTTP/1.1\r\n\r\nxxxxxxxxxxxxxxxxxxxxxx"[..]).is_err());
        let m = hello(0, 2).mismatch(&hello(1, 3), "h:1").unwrap();
        assert!(m.contains("process 1 (h:1) was started with -w 3"), "{m}");
        assert!(hello(0, 2).mismatch(&hello(1, 2), "h:1").is_none());
    }

    #[test]
    fn two_processes_connect_over_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let addresses = vec![format!("127.0.0.1:{port}"), format!("127.0.0.1:{}", port + 1)];
        let other = addresses.clone();
        let t = std::thread::spawn(move || connect(&other, 1, &hello(1, 2), Duration::from_secs(5)));
        let mine = connect(&addresses, 0, &hello(0, 2), Duration::from_secs(5)).unwrap();
        let theirs = t.join().unwrap().unwrap();
        assert!(mine[0].is_none() && mine[1].is_some());
        assert!(theirs[0].is_some() && theirs[1].is_none());
    }
}
