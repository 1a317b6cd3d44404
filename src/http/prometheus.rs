//! `/metrics`: the figures in Prometheus's text exposition format (version 0.0.4).
//!
//! Names follow Prometheus's conventions: a `kappa_` prefix, base units in the name
//! (`_seconds`, `_bytes`), `_total` on counters; resident memory is the standard
//! `process_resident_memory_bytes`. Every sample carries the labels `job` (the binary)
//! and `process` (its index in the cluster); a scraper that sets its own `job` label
//! keeps ours as `exported_job`. Figures that are undefined at the moment (a lag
//! before the frontier moves, latency for a file input) are left out, not reported as 0.

use std::fmt::Write;

use super::figures::Figures;
use super::health::RuleState;

/// The figures as exposition text for the process `process` of `job`.
pub fn render(job: &str, process: u32, f: &Figures, health: &[RuleState]) -> String {
    let labels = format!("job=\"{}\",process=\"{process}\"", escape(job));
    let mut out = String::with_capacity(4096);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (extra, value) in samples {
            let (suffix, extra) = extra.split_once('|').unwrap_or(("", extra));
            let sep = if extra.is_empty() { "" } else { "," };
            let _ = writeln!(out, "{name}{suffix}{{{labels}{sep}{extra}}} {}", number(*value));
        }
    };
    let counter = |v: u64| [("", v as f64)];
    metric("kappa_records_read_total", "counter", "Data lines read.", &counter(f.read));
    metric("kappa_records_rejected_total", "counter", "Lines rejected as malformed.", &counter(f.rejected));
    metric(
        "kappa_records_late_total",
        "counter",
        "Records that arrived behind the watermark.",
        &counter(f.late),
    );
    metric("kappa_rows_written_total", "counter", "Result rows written.", &counter(f.rows_written));
    let frontier = match (f.closed, f.output_frontier_ms) {
        (true, _) => Some(f64::INFINITY),
        (false, Some(ms)) => Some(ms as f64 / 1000.0),
        (false, None) => None,
    };
    let optional = |v: Option<f64>| v.map(|v| vec![("", v)]).unwrap_or_default();
    metric(
        "kappa_output_frontier_seconds",
        "gauge",
        "Event time (Unix seconds) before which every result has been released; +Inf once the input has ended.",
        &optional(frontier),
    );
    metric(
        "kappa_max_event_time_seconds",
        "gauge",
        "Largest event time seen (Unix seconds).",
        &optional(f.max_event_ms.map(|ms| ms as f64 / 1000.0)),
    );
    metric(
        "kappa_output_frontier_lag_seconds",
        "gauge",
        "How far the output frontier trails the wall clock (freshness).",
        &optional(f.lag_wall_seconds),
    );
    metric(
        "kappa_output_frontier_event_lag_seconds",
        "gauge",
        "How far the output frontier trails the largest event time seen.",
        &optional(f.lag_event_seconds),
    );
    if let Some(l) = f.latency {
        metric(
            "kappa_output_latency_seconds",
            "summary",
            "Wait from a record's arrival to the release of its result.",
            &[
                ("quantile=\"0.5\"", l.p50),
                ("quantile=\"0.9\"", l.p90),
                ("quantile=\"0.99\"", l.p99),
                ("quantile=\"0.999\"", l.p999),
                ("quantile=\"1\"", l.max),
                ("_sum|", l.sum),
                ("_count|", l.count as f64),
            ],
        );
    }
    if let (Some(queued), Some(capacity)) = (f.intake_queued, f.intake_capacity) {
        metric(
            "kappa_intake_queue_batches",
            "gauge",
            "Batches of input lines waiting for the workers (backpressure when near capacity).",
            &[("", queued as f64)],
        );
        metric(
            "kappa_intake_queue_capacity_batches",
            "gauge",
            "Capacity of the intake queue.",
            &[("", capacity as f64)],
        );
    }
    if !health.is_empty() {
        let rule = |s: &RuleState| format!("rule=\"{}\"", escape(&s.rule));
        let rules: Vec<String> = health.iter().map(rule).collect();
        let each = |value: &dyn Fn(&RuleState) -> f64| -> Vec<(&str, f64)> {
            rules.iter().zip(health).map(|(r, s)| (r.as_str(), value(s))).collect()
        };
        metric(
            "kappa_health_breaches_total",
            "counter",
            "Breach episodes of each --health rule.",
            &each(&|s| s.breaches as f64),
        );
        metric(
            "kappa_health_breached",
            "gauge",
            "1 while a --health rule's breach episode lasts.",
            &each(&|s| if s.firing { 1.0 } else { 0.0 }),
        );
    }
    if let Some(c) = f.commits {
        metric(
            "kappa_checkpoint_commits_total",
            "counter",
            "Output files committed to the checkpoint folder (each file counts).",
            &counter(c.count),
        );
        metric(
            "kappa_checkpoint_commit_seconds_total",
            "counter",
            "Time spent committing output: flush, sync with --fsync, record and rename.",
            &[("", c.seconds)],
        );
        metric(
            "kappa_checkpoint_last_commit_timestamp_seconds",
            "gauge",
            "When the last commit finished (Unix seconds).",
            &optional(c.last_unix_ms.map(|ms| ms as f64 / 1000.0)),
        );
    }
    metric("kappa_uptime_seconds", "gauge", "Seconds since the job started.", &[("", f.uptime_seconds)]);
    metric(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        &[("", f.resident_bytes as f64)],
    );
    out
}

/// A sample value as Prometheus writes it.
fn number(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::figures::Quantiles;

    #[test]
    fn counters_and_summaries_follow_the_text_format() {
        let f = Figures {
            read: 10,
            rejected: 1,
            closed: true,
            latency: Some(Quantiles { p50: 0.5, count: 3, sum: 1.5, ..Quantiles::default() }),
            ..Figures::default()
        };
        let text = render("a\"b", 2, &f, &[]);
        assert!(text.contains("kappa_records_read_total{job=\"a\\\"b\",process=\"2\"} 10\n"), "{text}");
        assert!(text.contains("kappa_output_frontier_seconds{job=\"a\\\"b\",process=\"2\"} +Inf\n"));
        assert!(
            text.contains(
                "kappa_output_latency_seconds{job=\"a\\\"b\",process=\"2\",quantile=\"0.5\"} 0.5\n"
            )
        );
        assert!(text.contains("kappa_output_latency_seconds_count{job=\"a\\\"b\",process=\"2\"} 3\n"));
        assert!(!text.contains("lag_seconds{"), "undefined lags are left out:\n{text}");
        assert!(!text.contains("intake"), "no intake queue for a file input");
        assert!(!text.contains("checkpoint"), "no commits without --checkpoint");
        let commits =
            super::super::figures::CommitFigures { count: 4, seconds: 0.25, last_unix_ms: Some(2_000) };
        let text = render("j", 0, &Figures { commits: Some(commits), ..f }, &[]);
        assert!(text.contains("kappa_checkpoint_commits_total{job=\"j\",process=\"0\"} 4\n"), "{text}");
        assert!(text.contains("kappa_checkpoint_last_commit_timestamp_seconds{job=\"j\",process=\"0\"} 2\n"));
    }
}
