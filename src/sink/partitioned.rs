//! Files partitioned by event hour: the data-lake sink, `DIR/2026-11-30T14.csv`.
//!
//! A row goes to the file of the hour of its completed time (a window's rows: the hour
//! the window covers). Completed times grow, so partitions are written one after the
//! other: when a time of a later hour completes, the current file is finished (and
//! committed) and the next one begun. Each partition is an output file of its own with
//! the same exactly-once commits as any other ([`super::commit`]): with `--checkpoint`
//! a restart cuts the partition it was writing back to its committed length and writes
//! no committed time again. `--format json` writes `.jsonl` files, any other format CSV.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use timely::ExchangeData;
use timely::dataflow::Stream;

use super::{Committer, Format, GatherSorted, Gathered, Output, Outputs, RowWriter, Tabular};
use crate::exit::{fail, io_reason, write_failed};
use crate::time::{EventTime, Millis};

const HOUR_MS: Millis = 3_600_000;

/// The partition of `time`: its hour, as `2026-11-30T14`.
pub fn partition_of(time: Millis) -> String {
    let mut text = Vec::new();
    crate::time::write_iso8601(&mut text, time - time % HOUR_MS);
    String::from_utf8_lossy(&text[..13]).into_owned()
}

/// One open partition.
struct Partition {
    hour: Millis,
    writer: RowWriter<Output>,
    commits: Option<Committer>,
    label: String,
}

/// Writes `stream` into hour partitions under `dir` (on worker 0, when `writes`).
pub fn write<T, R>(
    stream: Stream<'_, T, Vec<R>>,
    outputs: &Arc<Outputs>,
    dir: PathBuf,
    name: &str,
    writes: bool,
) where
    T: EventTime,
    R: Tabular + Ord + ExchangeData,
{
    let writes = writes && stream.scope().index() == 0;
    if writes && let Err(e) = std::fs::create_dir_all(&dir) {
        crate::exit::usage_error(&format!("cannot create folder {}: {}", dir.display(), io_reason(&e)));
    }
    let format = if outputs.format == Format::Json { Format::Json } else { Format::Csv };
    let extension = if format == Format::Json { "jsonl" } else { "csv" };
    let outputs = Arc::clone(outputs);
    let name = name.to_owned();
    let mut current: Option<Partition> = None;
    stream.gather_sorted("Partitioned", R::group_time, move |gathered| {
        if !writes {
            return;
        }
        let result = match gathered {
            Gathered::Frontier(_) => match &mut current {
                Some(Partition { writer, commits: Some(c), .. }) => c.tick(|| writer.flush()),
                _ => Ok(()),
            },
            Gathered::Cut => match &mut current {
                Some(Partition { writer, commits: Some(c), .. }) => c.commit(|| writer.flush()),
                _ => Ok(()),
            },
            Gathered::Complete(time, rows) => {
                let hour = time - time % HOUR_MS;
                if current.as_ref().is_none_or(|p| p.hour != hour) {
                    if let Some(mut done) = current.take() {
                        close(&mut done);
                    }
                    let path = dir.join(format!("{}.{extension}", partition_of(time)));
                    current = Some(open(&outputs, &name, &path, hour, format, R::columns()));
                }
                let p = current.as_mut().expect("opened above");
                match &mut p.commits {
                    Some(c) if c.skips(time) => Ok(()),
                    commits => p.writer.write_group(&rows).and_then(|()| match commits {
                        Some(c) => c.wrote(time, || p.writer.flush()),
                        None => Ok(()),
                    }),
                }
            }
            Gathered::Closed => {
                if let Some(mut done) = current.take() {
                    close(&mut done);
                }
                Ok(())
            }
        };
        if let (Err(e), Some(p)) = (result, &current) {
            write_failed(&p.label, &e);
        }
    });
}

fn close(p: &mut Partition) {
    let done = p.writer.finish().and_then(|()| match &mut p.commits {
        Some(c) => c.commit(|| p.writer.flush()),
        None => Ok(()),
    });
    if let Err(e) = done {
        write_failed(&p.label, &e);
    }
}

/// Opens a partition: created afresh, or with `--checkpoint` resumed at its committed length.
fn open(
    outputs: &Outputs,
    stream: &str,
    path: &Path,
    hour: Millis,
    format: Format,
    columns: Vec<&'static str>,
) -> Partition {
    let label = format!("{stream} partition {}", path.display());
    let checkpoint = outputs.checkpoint.lock().expect("outputs lock").clone();
    fn die<X>(label: &str, e: io::Error) -> X {
        fail(&format!("cannot open {label}: {}", io_reason(&e)))
    }
    let (file, commits) = match checkpoint {
        None => (File::create(path).unwrap_or_else(|e| die(&label, e)), None),
        Some(c) => {
            let commit_name = format!("{stream}@{}", partition_of(hour));
            let committed =
                c.commit_of(&commit_name).unwrap_or_else(|e| -> Option<_> { fail(&e) }).unwrap_or_default();
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .unwrap_or_else(|e| die(&label, e));
            file.set_len(committed.bytes).unwrap_or_else(|e| die(&label, e));
            file.seek(SeekFrom::End(0)).unwrap_or_else(|e| die(&label, e));
            let own = file.try_clone().unwrap_or_else(|e| die(&label, e));
            let commits = Committer::new(commit_name, c, own, committed, Arc::clone(&outputs.meters));
            (file, Some(commits))
        }
    };
    let resumed = commits.as_ref().is_some_and(Committer::resumed);
    let out: Output = Box::new(BufWriter::with_capacity(1 << 20, file));
    let writer = RowWriter::new(out, format, columns);
    Partition { hour, writer: if resumed { writer.started() } else { writer }, commits, label }
}

#[cfg(test)]
mod tests {
    #[test]
    fn partitions_are_hours() {
        assert_eq!(super::partition_of(1_790_812_800_000 + 3_600_000 * 14 + 59_999), "2026-10-01T14");
    }
}
