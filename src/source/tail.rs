//! `tail:PATH`: follow a growing file, like `tail -F`.
//!
//! The file is read from its start and then polled for new lines. A line is handed out
//! only once its newline has been written. When the path is renamed away and a new file
//! created in its place (log rotation), the old file is read to its end and the new one
//! is followed from its start; a file truncated in place is followed from its start too.
//! With `?pid=PID` the input ends once process PID has exited and the file is drained,
//! like `tail --pid`: the file followed then, and any file rotated into the path after
//! it, are read to their end. Otherwise it runs until the job is stopped; on a stop the
//! file is read to its end too, and a last line its writer has not finished is rejected
//! as truncated.
//!
//! **Resuming.** Every batch says where the file's next line starts: the file's device
//! and inode, the byte offset and the line's number ([`FilePoint`]). A restart from a
//! checkpoint reads on from the place its snapshot's round began at: in the file at the
//! path if it is the same one, else in the file of that identity in the path's folder
//! (rotated by rename while the job was down), read to its end before the path's new
//! file is followed from its start. A file truncated since is read from its start; one
//! gone from the folder (deleted, or moved elsewhere) is named in a warning, and its lines
//! after the offset, if any, are lost.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::lines::LineSplitter;
use super::live::{Batcher, FilePoint, Intake};

/// How often an idle file is polled for growth.
pub const POLL: Duration = Duration::from_millis(20);

/// What to follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailSpec {
    /// The file.
    pub path: PathBuf,
    /// End when this process has exited.
    pub pid: Option<u32>,
}

impl TailSpec {
    /// Parses the part after `tail:`, e.g. `/var/log/app.log?pid=1234`.
    pub fn parse(text: &str) -> Result<TailSpec, String> {
        let (path, query) = text.split_once("?pid=").map_or((text, None), |(p, q)| (p, Some(q)));
        if path.is_empty() {
            return Err("invalid tail input: expected tail:PATH".into());
        }
        let pid =
            query.map(|q| q.parse().map_err(|_| format!("invalid tail parameter pid={q}"))).transpose()?;
        Ok(TailSpec { path: PathBuf::from(path), pid })
    }
}

/// The start time of process `pid` while it runs (not a zombie), from `/proc`.
///
/// Comparing start times, not just existence, keeps a recycled pid (or a thread id,
/// which shares the numbering) from passing for the writer we were asked to follow.
fn started_at(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The file a restart resumes in, and where: the one followed at `at`, found at `path`
/// or, rotated away, in `path`'s folder, at `at`'s offset (its start if it has been
/// truncated since). `None` if it is gone.
fn reopen(path: &Path, at: FilePoint) -> io::Result<Option<(File, FilePoint)>> {
    let found =
        if identity(path) == Some(at.file) { Some(path.to_path_buf()) } else { rotated_to(path, at.file)? };
    let Some(found) = found else { return Ok(None) };
    let mut file = match File::open(&found) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if (meta.dev(), meta.ino()) != at.file {
        return Ok(None);
    }
    if meta.len() < at.offset {
        return Ok(Some((file, FilePoint { offset: 0, line: 1, ..at })));
    }
    file.seek(SeekFrom::Start(at.offset))?;
    Ok(Some((file, at)))
}

/// The path in `path`'s folder of the file with identity `file`, if there is one.
fn rotated_to(path: &Path, file: (u64, u64)) -> io::Result<Option<PathBuf>> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        // Not following links: a rename moves the file itself.
        if entry.metadata().is_ok_and(|m| (m.dev(), m.ino()) == file) {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

/// Follows `spec.path` on a thread, pumping its lines into `intake`; on a restart, from
/// `resume`, the place the checkpoint's round began at.
pub fn watch(spec: TailSpec, intake: Intake, max_line: usize, resume: Option<FilePoint>) {
    thread::Builder::new()
        .name("kappa-tail".into())
        .spawn(move || {
            if let Err(e) = follow(&spec, &intake, max_line, resume) {
                eprintln!(
                    "{}: warning: tail:{}: {}",
                    crate::exit::program_name(),
                    spec.path.display(),
                    crate::exit::io_reason(&e)
                );
            }
        })
        .expect("spawn tail thread");
}

fn follow(spec: &TailSpec, intake: &Intake, max_line: usize, resume: Option<FilePoint>) -> io::Result<()> {
    let writer = spec.pid.map(|pid| (pid, started_at(pid)));
    let writer_gone = || writer.is_some_and(|(pid, start)| start.is_none() || started_at(pid) != start);
    let origin: Arc<str> = Arc::from(format!("tail:{}", spec.path.display()));
    let mut batcher = Batcher::new(Arc::clone(&origin)).by_block();
    let mut resumed = None;
    if let Some(at) = resume {
        resumed = reopen(&spec.path, at)?;
        if resumed.is_none() {
            eprintln!(
                "{}: warning: {origin}: the file followed at the checkpoint is gone from its folder; \
                 lines written to it after byte {} are lost",
                crate::exit::program_name(),
                at.offset
            );
        }
    }
    loop {
        let (file, base) = match resumed.take() {
            Some((file, at)) => {
                batcher.renumber(intake, at.line);
                (file, at.offset)
            }
            None => loop {
                match File::open(&spec.path) {
                    Ok(f) => break (f, 0),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        if intake.stopping() || writer_gone() {
                            return Ok(());
                        }
                        thread::sleep(POLL);
                    }
                    Err(e) => return Err(e),
                }
            },
        };
        let opened = (file.metadata()?.dev(), file.metadata()?.ino());
        let mut splitter = LineSplitter::new(file, 256 << 10, max_line).follow();
        // Each block is a batch that ends where the file's next line starts.
        let sent = |splitter: &LineSplitter<File>, batcher: &mut Batcher| {
            let at =
                FilePoint { file: opened, offset: base + splitter.line_start(), line: batcher.next_line() };
            batcher.flush_at(intake, at);
        };
        loop {
            splitter.next_block(|line| batcher.push(&line, intake))?;
            sent(&splitter, &mut batcher);
            if !splitter.at_eof() {
                continue;
            }
            // Decide before the last read whether this is the end, so nothing written
            // before the writer exited is missed.
            let writer_gone = writer_gone();
            let rotated = identity(&spec.path) != Some(opened);
            let truncated = splitter.get_ref().metadata()?.len() < base + splitter.consumed();
            if writer_gone || rotated || intake.stopping() {
                splitter.resume();
                while !splitter.at_eof() {
                    splitter.next_block(|line| batcher.push(&line, intake))?;
                    sent(&splitter, &mut batcher);
                }
                if writer_gone || rotated {
                    // The file is complete: a last line without a newline is a line.
                    splitter.finish();
                    splitter.next_block(|line| batcher.push(&line, intake))?;
                } else {
                    // Stopped while the writer may be mid-line: a fragment is truncated.
                    splitter.cut(|line| batcher.push(&line, intake));
                }
                sent(&splitter, &mut batcher);
                // A file rotated in is read even when the writer has gone: it may have
                // rotated just before exiting, and what it wrote there is input too.
                if rotated && !intake.stopping() {
                    batcher.restart_numbering(intake);
                    break;
                }
                return Ok(());
            }
            if truncated {
                batcher.restart_numbering(intake);
                break;
            }
            thread::sleep(POLL);
            splitter.resume();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!(TailSpec::parse("/x/y.log").unwrap(), TailSpec { path: "/x/y.log".into(), pid: None });
        assert_eq!(TailSpec::parse("a.log?pid=12").unwrap().pid, Some(12));
        assert!(TailSpec::parse("a.log?pid=me").is_err());
        assert!(TailSpec::parse("").is_err());
    }
}
