//! The exit policy: the program's name in messages, exit codes, and how a job stops.
//!
//! This is the one place that decides how kappa ends a process, the way ripgrep's
//! `main` is the one place that maps errors to exit codes:
//!
//! | code | when |
//! |---|---|
//! | 0 | success; also a closed pipe on stdout (`job | head`), like other Unix tools |
//! | 1 | [`EXIT_FAILURE`]: bad input under `--strict`, a read or write error, a lost peer |
//! | 2 | [`EXIT_USAGE`]: a bad flag, a missing file, a port in use: anything found before workers start |
//!
//! Messages are one line, `NAME: error: MESSAGE`, naming the file and line where there is one.
//! Timely is fail-stop: a worker that stops alone leaves its peers waiting for it, so a
//! fatal error while running ends the whole process at once ([`fail`]).

use std::io;

/// Exit code for a usage or startup error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code for bad input under `--strict`, or a failure while running.
pub const EXIT_FAILURE: u8 = 1;

/// The program's name, for messages.
pub fn program_name() -> String {
    std::env::args()
        .next()
        .and_then(|p| std::path::Path::new(&p).file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "kappa".into())
}

/// Prints `NAME: error: MESSAGE` on stderr and exits with code 2.
pub fn usage_error(message: &str) -> ! {
    eprintln!("{}: error: {message}", program_name());
    std::process::exit(EXIT_USAGE as i32)
}

/// Prints `NAME: error: MESSAGE` and ends the process with exit code 1.
///
/// Timely is fail-stop: a worker that stops alone would leave its peers waiting, so a
/// fatal error while running ends the whole process at once.
pub fn fail(message: &str) -> ! {
    eprintln!("{}: error: {message}", program_name());
    std::process::exit(EXIT_FAILURE as i32)
}

/// Ends the process after a failed write to `what`: quietly with code 0 when the reader
/// went away (a broken pipe), like other Unix tools; otherwise as [`fail`].
pub fn write_failed(what: &str, e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    fail(&format!("writing {what}: {}", io_reason(e)))
}

/// An I/O error's reason without Rust's `(os error N)` suffix.
pub fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}
