//! Connecting the processes of a cluster: quietly, with a deadline and clear errors.
//!
//! Timely's own connection setup retries forever and prints progress to stdout, which
//! would corrupt results written there. We make the same connections ourselves (each
//! process dials the lower-numbered ones and accepts the higher-numbered ones, then
//! sends its index, exactly as timely does) and hand the sockets to timely.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::thread;
use std::time::{Duration, Instant};

use timely::communication::Hooks;
use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};

use crate::source::io_reason;

/// Opens this process's sockets to every other process, or says why it could not.
pub fn connect(addresses: &[String], me: usize, timeout: Duration) -> Result<Vec<Option<TcpStream>>, String> {
    let deadline = Instant::now() + timeout;
    let listen_at = &addresses[me];
    let listener = TcpListener::bind(listen_at.as_str())
        .map_err(|e| format!("process {me} cannot listen on {listen_at}: {}", io_reason(&e)))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;

    let dial: Vec<(usize, String)> = addresses.iter().cloned().enumerate().take(me).collect();
    let dialer = thread::spawn(move || -> Result<Vec<Option<TcpStream>>, String> {
        dial.into_iter().map(|(peer, address)| dial_peer(me, peer, &address, deadline).map(Some)).collect()
    });

    let mut accepted: Vec<Option<TcpStream>> = (me + 1..addresses.len()).map(|_| None).collect();
    while accepted.iter().any(Option::is_none) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                stream.set_nonblocking(false).map_err(|e| e.to_string())?;
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
                let mut id = [0u8; 8];
                if stream.read_exact(&mut id).is_err() {
                    continue; // not a peer, or one that gave up: keep waiting
                }
                stream.set_read_timeout(None).map_err(|e| e.to_string())?;
                let peer = u64::from_be_bytes(id) as usize;
                match peer.checked_sub(me + 1).and_then(|i| accepted.get_mut(i)) {
                    Some(slot) => *slot = Some(stream),
                    None => {
                        return Err(format!(
                            "process {me} was contacted by unexpected process {peer}: are -n and the hostfile the same everywhere?"
                        ));
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    let missing = accepted.iter().position(Option::is_none).map_or(0, |i| i + me + 1);
                    return Err(format!(
                        "process {missing} ({}) did not connect within {}s (--connect-timeout)",
                        addresses[missing],
                        timeout.as_secs()
                    ));
                }
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("accepting peers on {listen_at}: {}", io_reason(&e))),
        }
    }
    let mut sockets = dialer.join().map_err(|_| "connection thread panicked".to_owned())??;
    sockets.push(None);
    sockets.extend(accepted);
    Ok(sockets)
}

fn dial_peer(me: usize, peer: usize, address: &str, deadline: Instant) -> Result<TcpStream, String> {
    let mut last_error = String::from("no address");
    loop {
        let addrs: Vec<_> = match address.to_socket_addrs() {
            Ok(a) => a.collect(),
            Err(e) => {
                return Err(format!("process {peer} address {address}: {}", io_reason(&e)));
            }
        };
        for addr in &addrs {
            let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            match TcpStream::connect_timeout(addr, left.min(Duration::from_secs(1))) {
                Ok(mut stream) => {
                    stream.set_nodelay(true).map_err(|e| e.to_string())?;
                    stream
                        .write_all(&(me as u64).to_be_bytes())
                        .map_err(|e| format!("process {peer} ({address}): {}", io_reason(&e)))?;
                    return Ok(stream);
                }
                Err(e) => last_error = io_reason(&e),
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "cannot reach process {peer} at {address}: {last_error} (gave up after --connect-timeout)"
            ));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Builds timely's allocators for this process from connected sockets.
pub fn allocators(
    sockets: Vec<Option<TcpStream>>,
    me: usize,
    threads: usize,
) -> Result<(Vec<AllocatorBuilder>, Box<dyn std::any::Any + Send>), String> {
    let hooks = Hooks::default();
    let process = ProcessBuilder::new_typed_vector(threads, hooks.refill.clone(), hooks.spill.clone());
    let (builders, guard) = initialize_networking_from_sockets(process, sockets, me, threads, hooks)
        .map_err(|e| format!("cannot start networking: {}", io_reason(&e)))?;
    Ok((builders.into_iter().map(AllocatorBuilder::Tcp).collect(), Box::new(guard)))
}
