//! The registry of record kinds that can be generated: the one place a kind is listed.
//!
//! `gen`'s subcommands, their help and their options, and the `gen:KIND` input spec
//! all follow from [`KINDS`]. Adding a kind is one entry here.

use super::access_log::AccessLogGen;
use super::click::ClickGen;
use super::features::{FeaturesArgs, FeaturesGen};
use super::playback::PlaybackGen;
use super::sensor::{SensorArgs, SensorGen};
use super::series::{SeriesArgs, SeriesGen};
use super::transaction::{BurstArgs, TransactionGen};
use super::{RowGenerator, Timeline};

/// A record kind that the `gen` binary and `gen:KIND` inputs can generate.
pub struct Kind {
    /// The kind's name: `gen NAME`, `gen:NAME`.
    pub name: &'static str,
    /// One line of help for `gen NAME`.
    pub about: &'static str,
    /// Adds the kind's own options (beyond rows, seed and time span) to a command.
    pub args: fn(clap::Command) -> clap::Command,
    /// A generator for a seed along a timeline, with the kind's own options.
    pub make: MakeGenerator,
}

/// Makes a kind's generator for a seed along a timeline, with the kind's own options.
pub type MakeGenerator = fn(u64, Timeline, &clap::ArgMatches) -> Result<Box<dyn RowGenerator>, String>;

/// Every kind that can be generated, in `gen --help` order.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "transactions",
        about: "E-commerce transactions as CSV with a header.",
        args: <BurstArgs as clap::Args>::augment_args,
        make: |seed, timeline, matches| {
            let bursts =
                <BurstArgs as clap::FromArgMatches>::from_arg_matches(matches).map_err(|e| e.to_string())?;
            let generator = TransactionGen::new(seed, timeline);
            Ok(Box::new(match bursts.bursts() {
                Some(b) => generator.with_bursts(b),
                None => generator,
            }))
        },
    },
    Kind {
        name: "clicks",
        about: "Clickstream events as JSON lines (the notebook's Kafka demo).",
        args: no_args,
        make: |seed, timeline, _| Ok(Box::new(ClickGen::new(seed, timeline))),
    },
    Kind {
        name: "playback",
        about: "Playback events as JSON lines (the Keystone essay): sessions, long-tail titles, labelled error bursts, 0.5 % duplicates and 0.5 % malformed rows.",
        args: no_args,
        make: |seed, timeline, _| Ok(Box::new(PlaybackGen::new(seed, timeline))),
    },
    Kind {
        name: "access-log",
        about: "Apache access-log lines (combined format, some common), with heavy hitters and 4xx/5xx responses; no header.",
        args: no_args,
        make: |seed, timeline, _| Ok(Box::new(AccessLogGen::new(seed, timeline))),
    },
    Kind {
        name: "series",
        about: "Keyed time series as CSV (timestamp,value,key): one reading a minute per key, daily cycles, noise, rare spikes.",
        args: <SeriesArgs as clap::Args>::augment_args,
        make: |seed, timeline, matches| {
            let args =
                <SeriesArgs as clap::FromArgMatches>::from_arg_matches(matches).map_err(|e| e.to_string())?;
            Ok(Box::new(SeriesGen::new(seed, timeline, args.keys)))
        },
    },
    Kind {
        name: "anomalies",
        about: "Labelled feature vectors as CSV (timestamp,key,x1..xN,label): the anomaly notebook's stream, N(0, I) with 5 % shift, scale and outlier anomalies, optional concept drift.",
        args: <FeaturesArgs as clap::Args>::augment_args,
        make: |seed, timeline, matches| {
            let args = <FeaturesArgs as clap::FromArgMatches>::from_arg_matches(matches)
                .map_err(|e| e.to_string())?;
            Ok(Box::new(FeaturesGen::new(seed, timeline, &args)))
        },
    },
    Kind {
        name: "sensors",
        about: "IoT sensor readings as CSV with a header (the IoT notebook's generator: baselines, anomaly episodes, statuses); --metadata writes the sensors' types and sites.",
        args: <SensorArgs as clap::Args>::augment_args,
        make: |seed, timeline, matches| {
            let args =
                <SensorArgs as clap::FromArgMatches>::from_arg_matches(matches).map_err(|e| e.to_string())?;
            let generator = SensorGen::new(seed, timeline, &args);
            if let Some(path) = &args.metadata {
                std::fs::write(path, generator.metadata()).map_err(|e| {
                    format!("cannot write metadata {}: {}", path.display(), crate::exit::io_reason(&e))
                })?;
            }
            Ok(Box::new(generator))
        },
    },
];

/// The kind named `name`.
pub fn kind(name: &str) -> Result<&'static Kind, String> {
    KINDS.iter().find(|k| k.name == name).ok_or_else(|| {
        let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        format!("unknown generator kind '{name}' (available: {})", names.join(", "))
    })
}

/// The generator for `kind`, with its own options given as `(name, value)` pairs
/// (`("burst-every", "500")` for `--burst-every 500`, `("labels", "true")` for `--labels`).
pub fn generator(
    kind_name: &str,
    seed: u64,
    timeline: Timeline,
    options: &[(String, String)],
) -> Result<Box<dyn RowGenerator>, String> {
    let kind = kind(kind_name)?;
    // A switch is given as `name=true` (or left out, `name=false`).
    let args = std::iter::once("gen".to_owned()).chain(options.iter().flat_map(|(k, v)| match v.as_str() {
        "true" => vec![format!("--{k}")],
        "false" => vec![],
        _ => vec![format!("--{k}"), v.clone()],
    }));
    let matches = (kind.args)(clap::Command::new(kind.name)).try_get_matches_from(args).map_err(|e| {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or("invalid option").trim();
        format!("gen:{kind_name}: {}", first.strip_prefix("error: ").unwrap_or(first))
    })?;
    (kind.make)(seed, timeline, &matches)
}

/// For kinds without options of their own.
pub fn no_args(command: clap::Command) -> clap::Command {
    command
}
