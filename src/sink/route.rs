//! Routes: a TOML file that names, for each result stream of a job, the sinks it goes to.
//!
//! ```toml
//! # stream = [sink, …]
//! viewers      = ["output", "dir:out/viewers", "postgres://postgres@127.0.0.1:5432/test?schema=keystone"]
//! dead_letters = ["file:out/dead_letters.csv"]
//! ```
//!
//! | sink | where rows go |
//! |---|---|
//! | `output` | `--output` (stdout by default); one stream at most |
//! | `file:PATH` | one file, committed per completed time with `--checkpoint` |
//! | `dir:PATH` | one file per event hour, `PATH/2026-11-30T14.csv` ([`super::partitioned`]) |
//! | `postgres://…?schema=S` | table `S.STREAM`, a transaction per batch of completed times ([`super::postgres`]) |
//! | `kafka://HOST:PORT/TOPIC` | a topic, one message per row and a progress record per completed time ([`super::kafka`]) |
//!
//! Adding a sink kind is one variant of [`Sink`], one arm in [`Sink::parse`] and one in
//! [`Route::route`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use timely::ExchangeData;
use timely::dataflow::Stream;

use super::postgres::{Postgres, TableRow};
use super::{Outputs, RESULTS, WriteRows};
use crate::time::EventTime;

/// One sink of a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sink {
    /// The job's `--output`.
    Output,
    /// A file; `name` is its destination among the job's outputs.
    File {
        /// Where.
        path: PathBuf,
        /// Its name among the outputs (`STREAM.N`).
        name: &'static str,
    },
    /// A folder of files partitioned by event hour.
    Dir(PathBuf),
    /// A PostgreSQL table.
    Postgres(Postgres),
    /// A Kafka topic; `name` is its destination among the job's outputs.
    Topic {
        /// `kafka://HOST:PORT/TOPIC`.
        url: String,
        /// Its name among the outputs (`STREAM.N`).
        name: &'static str,
    },
}

impl Sink {
    /// Parses one sink of stream `stream` (its `index`-th).
    pub fn parse(spec: &str, stream: &str, index: usize) -> Result<Sink, String> {
        if spec == "output" || spec == "stdout" {
            Ok(Sink::Output)
        } else if let Some(path) = spec.strip_prefix("file:") {
            // Leaked once per route at startup: destinations are named by static strings.
            let name: &'static str = Box::leak(format!("{stream}.{index}").into_boxed_str());
            Ok(Sink::File { path: path.into(), name })
        } else if let Some(path) = spec.strip_prefix("dir:") {
            Ok(Sink::Dir(path.into()))
        } else if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            Ok(Sink::Postgres(Postgres::parse(spec, stream)?))
        } else if spec.starts_with("kafka://") {
            let name: &'static str = Box::leak(format!("{stream}.{index}").into_boxed_str());
            Ok(Sink::Topic { url: spec.to_owned(), name })
        } else {
            Err(format!(
                "route {stream}: unknown sink '{spec}' (expected output, file:PATH, dir:PATH, postgres://… or kafka://…)"
            ))
        }
    }
}

/// Every stream's sinks.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    /// Sinks per stream name.
    pub streams: BTreeMap<String, Vec<Sink>>,
    /// Whether this process writes (process 0).
    pub writes: bool,
}

impl Routes {
    /// Parses a routing file whose streams must be among `known`.
    pub fn parse(text: &str, known: &[&str]) -> Result<Routes, String> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let message = e.message().to_owned();
            match e.span() {
                Some(span) => format!("line {}: {message}", text[..span.start].lines().count().max(1)),
                None => message,
            }
        })?;
        let mut streams = BTreeMap::new();
        let mut outputs = 0;
        for (stream, value) in &table {
            if !known.contains(&stream.as_str()) {
                return Err(format!("unknown stream '{stream}' (streams: {})", known.join(", ")));
            }
            let specs: Vec<&str> = match value {
                toml::Value::String(s) => vec![s.as_str()],
                toml::Value::Array(a) => a
                    .iter()
                    .map(|v| v.as_str().ok_or_else(|| format!("route {stream}: sinks must be strings")))
                    .collect::<Result<_, _>>()?,
                _ => return Err(format!("route {stream}: expected a list of sinks")),
            };
            let sinks: Vec<Sink> =
                specs.iter().enumerate().map(|(i, s)| Sink::parse(s, stream, i)).collect::<Result<_, _>>()?;
            outputs += sinks.iter().filter(|s| **s == Sink::Output).count();
            streams.insert(stream.clone(), sinks);
        }
        if outputs > 1 {
            return Err("only one route may write to output (stdout): the streams would interleave".into());
        }
        Ok(Routes { streams, writes: true })
    }

    /// Whether some route writes to `--output`.
    pub fn uses_output(&self) -> bool {
        self.streams.values().flatten().any(|s| *s == Sink::Output)
    }

    /// The files and topics routes write, as a job's side outputs (a `kafka://` path
    /// opens a topic: see [`Outputs::open`]).
    pub fn files(&self) -> Vec<(&'static str, PathBuf)> {
        let files = self.streams.values().flatten();
        files
            .filter_map(|s| match s {
                Sink::File { path, name } => Some((*name, path.clone())),
                Sink::Topic { url, name } => Some((*name, PathBuf::from(url))),
                _ => None,
            })
            .collect()
    }

    /// The PostgreSQL sinks, with their streams.
    pub fn databases(&self) -> impl Iterator<Item = &Postgres> {
        self.streams.values().flatten().filter_map(|s| if let Sink::Postgres(p) = s { Some(p) } else { None })
    }
}

/// Sends a result stream to the sinks its route names.
pub trait Route<'scope, R> {
    /// Writes the stream to each sink `routes` names for `stream` (none: dropped).
    fn route(self, outputs: &Arc<Outputs>, routes: &Routes, stream: &str);
}

impl<'scope, T, R> Route<'scope, R> for Stream<'scope, T, Vec<R>>
where
    T: EventTime,
    R: TableRow + Ord + ExchangeData + Clone + 'static,
{
    fn route(self, outputs: &Arc<Outputs>, routes: &Routes, stream: &str) {
        for sink in routes.streams.get(stream).into_iter().flatten() {
            match sink {
                Sink::Output => self.clone().write_counted(outputs, RESULTS),
                Sink::File { name, .. } | Sink::Topic { name, .. } => {
                    self.clone().write_counted(outputs, name)
                }
                Sink::Dir(path) => {
                    super::partitioned::write(self.clone(), outputs, path.clone(), stream, routes.writes)
                }
                Sink::Postgres(db) => {
                    super::postgres::write(self.clone(), outputs, db.clone(), routes.writes)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_name_known_streams_and_sinks() {
        let known = ["viewers", "alerts"];
        let r =
            Routes::parse("viewers = [\"output\", \"dir:v\"]\nalerts = \"file:a.csv\"\n", &known).unwrap();
        assert_eq!(r.streams["viewers"], vec![Sink::Output, Sink::Dir("v".into())]);
        assert_eq!(r.files(), vec![("alerts.0", PathBuf::from("a.csv"))]);
        let err = |text: &str| Routes::parse(text, &known).unwrap_err();
        assert!(err("nope = [\"output\"]").starts_with("unknown stream 'nope'"));
        let topic = Routes::parse("alerts = [\"kafka://b:9092/t\"]", &known).unwrap();
        assert_eq!(topic.files(), vec![("alerts.0", PathBuf::from("kafka://b:9092/t"))]);
        assert!(err("alerts = [\"ftp:x\"]").contains("unknown sink 'ftp:x'"));
        assert!(err("alerts = [\"output\"]\nviewers = [\"output\"]").starts_with("only one route"));
        assert!(err("alerts = [").starts_with("line 1"));
    }
}
