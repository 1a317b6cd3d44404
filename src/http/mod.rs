//! `--http ADDR`: a job's own endpoint for people and scrapers, on a thread of its own.
//!
//! | path | what |
//! |---|---|
//! | `/metrics` | the figures in Prometheus text format ([`prometheus`]) |
//! | `/api/status` | the same figures as JSON, the last five minutes of one-second samples ([`history`]) and the latest rows of each output |
//! | `/` | the dashboard: live charts of those samples, the latest result rows and alerts |
//! | `/assets/…` | the vendored chart library (uPlot, MIT) the page uses |
//!
//! Contract: the server runs on one thread named `kappa-http` (tiny_http adds its own
//! accept thread); it never runs on a timely worker, and workers never wait for it:
//! it reads the process-wide [`Meters`](crate::metrics::Meters) atomics, and the
//! latency and latest-rows locks only as long as it takes to copy them. Everything it
//! keeps is bounded (300 samples, a fixed number of rows per output), so a week-long run
//! holds as much as a five-minute one. Each process of a cluster serves its own figures;
//! process `p` listens on `PORT + p` (port 0 picks a free port for each), and its status
//! names every process's dashboard when their addresses are known ([`dashboards`]). The same
//! thread checks the `--health` rules once a second ([`health`]), with or without a server.

pub mod figures;
pub mod health;
pub mod history;
pub mod prometheus;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde::Serialize;
use tiny_http::{Header, Method, Request, Response, Server};

pub use figures::{Figures, Watched};
use health::{Health, Rule};
use history::{History, Sample};

/// Rows of each output kept for the dashboard.
pub const LATEST_ROWS: usize = 100;

const DASHBOARD: &str = include_str!("../../assets/dashboard.html");
const UPLOT_JS: &str = include_str!("../../assets/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../assets/uPlot.min.css");

/// Parses `--http`'s value: `HOST:PORT`, or a bare `PORT` on loopback. The server
/// binds beyond loopback only when the address says so (`0.0.0.0:9000`).
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    text.parse::<SocketAddr>()
        .map_err(|_| format!("invalid --http address '{text}': expected HOST:PORT or PORT"))
}

/// The address process `process` serves on: `PORT + process`, or a free port for port 0.
pub fn for_process(addr: SocketAddr, process: u32) -> Result<SocketAddr, String> {
    if addr.port() == 0 {
        return Ok(addr);
    }
    let port = u16::try_from(addr.port() as u32 + process)
        .map_err(|_| format!("--http port {} + process {process} is not a valid port", addr.port()))?;
    Ok(SocketAddr::new(addr.ip(), port))
}

/// The dashboard of every process of a cluster whose `-n` is `processes`, when the
/// addresses are known: process `p` serves on `PORT + p` at the `--http` address or, for
/// an unspecified one (`0.0.0.0`), at its host in `hosts` (the hostfile's `host:port`
/// lines). With port 0 each process picks its own port, so none is known.
pub fn dashboards(addr: SocketAddr, hosts: &[String]) -> Vec<String> {
    if addr.port() == 0 {
        return Vec::new();
    }
    (0..hosts.len().max(1) as u32)
        .filter_map(|p| {
            let at = for_process(addr, p).ok()?;
            let host = match addr.ip().is_unspecified() {
                true => hosts.get(p as usize)?.rsplit_once(':')?.0.to_owned(),
                false => at.ip().to_string(),
            };
            let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host };
            Some(format!("http://{host}:{}/", at.port()))
        })
        .collect()
}

/// Starts watching `watched` on a thread of its own: serving on `addr`, if given, and
/// checking `rules`. Returns the address bound.
pub fn watch(
    addr: Option<SocketAddr>,
    watched: Watched,
    rules: Vec<Rule>,
) -> Result<Option<SocketAddr>, String> {
    let server = addr
        .map(|addr| Server::http(addr).map_err(|e| format!("cannot serve http on {addr}: {e}")))
        .transpose()?;
    let bound = match &server {
        Some(s) => Some(s.server_addr().to_ip().ok_or("cannot serve http: not a TCP address")?),
        None => None,
    };
    std::thread::Builder::new()
        .name("kappa-http".into())
        .spawn(move || run(server, watched, Health::new(rules)))
        .map_err(|e| format!("cannot start the http thread: {e}"))?;
    Ok(bound)
}

/// Samples and checks the rules once a second and answers requests in between.
fn run(server: Option<Server>, watched: Watched, mut health: Health) {
    let mut history = History::default();
    let mut next = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next {
            let figures = Figures::read(&watched);
            history.record(figures.clone());
            let sample = history.latest().copied().unwrap_or_default();
            for line in health.check(&figures, &sample, now) {
                eprintln!("{}: {line}", crate::exit::program_name());
            }
            // After a stall, sample again a second from now rather than catching up.
            next = (next + Duration::from_secs(1)).max(now);
        }
        let wait = next.saturating_duration_since(Instant::now());
        match &server {
            Some(server) => match server.recv_timeout(wait) {
                Ok(Some(request)) => respond(request, &watched, &history, &health),
                Ok(None) => {}
                Err(_) => return,
            },
            None => std::thread::sleep(wait),
        }
    }
}

/// What `/api/status` returns.
#[derive(Serialize)]
struct Status<'a> {
    job: &'a str,
    process: u32,
    processes: u32,
    dashboards: &'a [String],
    started_unix_ms: u64,
    figures: Figures,
    samples: &'a std::collections::VecDeque<Sample>,
    latest: std::collections::BTreeMap<&'static str, crate::metrics::latest::Rows>,
    health: &'a [health::RuleState],
    health_events: &'a std::collections::VecDeque<health::Event>,
}

fn respond(request: Request, watched: &Watched, history: &History, health: &Health) {
    let path = request.url().split('?').next().unwrap_or("");
    let (status, content_type, body): (u16, &str, String) = match (request.method(), path) {
        (Method::Get, "/metrics") => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            prometheus::render(&watched.job, watched.process, &Figures::read(watched), &health.states),
        ),
        (Method::Get, "/api/status") => {
            let status = Status {
                job: &watched.job,
                process: watched.process,
                processes: watched.processes,
                dashboards: &watched.dashboards,
                started_unix_ms: watched.started_unix_ms,
                figures: Figures::read(watched),
                samples: history.samples(),
                latest: watched.meters.latest.as_ref().map(|l| l.snapshot()).unwrap_or_default(),
                health: &health.states,
                health_events: &health.events,
            };
            (200, "application/json", serde_json::to_string(&status).unwrap_or_default())
        }
        (Method::Get, "/") => (200, "text/html; charset=utf-8", DASHBOARD.into()),
        (Method::Get, "/assets/uPlot.iife.min.js") => {
            (200, "text/javascript; charset=utf-8", UPLOT_JS.into())
        }
        (Method::Get, "/assets/uPlot.min.css") => (200, "text/css; charset=utf-8", UPLOT_CSS.into()),
        (Method::Get, _) => (404, "text/plain; charset=utf-8", "not found\n".into()),
        _ => (405, "text/plain; charset=utf-8", "only GET\n".into()),
    };
    let header = Header::from_bytes("Content-Type", content_type).expect("a valid header");
    let response = Response::from_string(body).with_status_code(status).with_header(header);
    // A client that went away is its own business.
    let _ = request.respond(response);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_stay_on_loopback_unless_they_say_otherwise() {
        assert_eq!(parse_addr("9000").unwrap(), "127.0.0.1:9000".parse().unwrap());
        assert_eq!(parse_addr("0.0.0.0:9000").unwrap(), "0.0.0.0:9000".parse().unwrap());
        assert!(parse_addr("localhost").unwrap_err().contains("HOST:PORT"));
        let base = parse_addr("127.0.0.1:9000").unwrap();
        assert_eq!(for_process(base, 3).unwrap().port(), 9003);
        assert_eq!(for_process(parse_addr("127.0.0.1:0").unwrap(), 3).unwrap().port(), 0);
        assert!(for_process(parse_addr("127.0.0.1:65535").unwrap(), 1).is_err());
    }

    #[test]
    fn a_cluster_names_each_process_dashboard_where_it_can_be_known() {
        let hosts = ["alpha:2101".to_owned(), "beta:2101".to_owned()];
        let loopback = parse_addr("9000").unwrap();
        assert_eq!(dashboards(loopback, &hosts), ["http://127.0.0.1:9000/", "http://127.0.0.1:9001/"]);
        assert_eq!(dashboards(loopback, &[]), ["http://127.0.0.1:9000/"]);
        let any = parse_addr("0.0.0.0:9000").unwrap();
        assert_eq!(dashboards(any, &hosts), ["http://alpha:9000/", "http://beta:9001/"]);
        assert!(dashboards(parse_addr("127.0.0.1:0").unwrap(), &hosts).is_empty());
    }
}
