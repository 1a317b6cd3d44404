//! The PostgreSQL sink: a stream as a table, upserted per completed time, exactly once.
//!
//! The table `SCHEMA.STREAM` is created if missing, its columns and types from the row
//! type ([`TableRow`]), its primary key the row's key columns. Completed times are
//! applied in one transaction together with a progress row `(sink, time, rows)` in
//! `SCHEMA.kappa_progress`: the transaction commits the rows and the time, or neither
//! (Materialize's progress-record pattern). Several completed times may share one
//! transaction (up to [`BATCH_ROWS`] rows), never split a time.
//!
//! **Bulk.** Rows go in with `COPY … FROM STDIN` (text format), not `INSERT` text. A
//! table with a key is upserted from a session-local staging table in the same
//! transaction: per key, the last row staged wins, as if each row were upserted in
//! turn.
//!
//! **Restarts.** On a job's first start in a `--checkpoint` folder (or on any start
//! without one) the sink starts its table over: it deletes the table's rows and its
//! progress rows. A restart in the same folder reads the last applied time instead and
//! applies only later times, so no time is applied twice: the progress table's primary
//! key `(sink, time)` would refuse it.
//!
//! **Failures.** A sink that cannot write (the database went away, the table was
//! dropped) stops the job with one line and exit code 1; it never drops rows. With
//! `--checkpoint`, the same command resumes.

use std::sync::Arc;

use timely::ExchangeData;
use timely::dataflow::Stream;

use super::{Cell, GatherSorted, Gathered, Outputs, Tabular};
use crate::checkpoint::Commit;
use crate::exit::fail;
use crate::time::{EventTime, Millis};

/// Most rows in one transaction (a time with more is applied alone).
pub const BATCH_ROWS: usize = 50_000;

/// A row type stored as a table.
pub trait TableRow: Tabular {
    /// The SQL type of each column, in the order of [`Tabular::columns`].
    fn sql_types() -> Vec<&'static str>;
    /// The columns (indexes) of the primary key; none: rows are only inserted.
    fn key_columns() -> &'static [usize];
}

/// Where a stream's table is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Postgres {
    /// The connection URL, without kappa's own parameters.
    pub url: String,
    /// The schema (`?schema=`, default `public`).
    pub schema: String,
    /// The table: the stream's name.
    pub table: String,
}

impl Postgres {
    /// Parses `postgres://USER@HOST:PORT/DB?schema=S` for stream `stream`.
    pub fn parse(spec: &str, stream: &str) -> Result<Postgres, String> {
        let (base, query) = spec.split_once('?').unwrap_or((spec, ""));
        let mut schema = "public".to_owned();
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("schema", s)) => schema = s.to_owned(),
                _ => rest.push(pair),
            }
        }
        let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !plain(&schema) || !plain(stream) {
            return Err(format!("route {stream}: schema and table names must be letters, digits and _"));
        }
        let url = if rest.is_empty() { base.to_owned() } else { format!("{base}?{}", rest.join("&")) };
        url.parse::<postgres::Config>().map_err(|e| format!("route {stream}: bad database URL: {e}"))?;
        Ok(Postgres { url, schema: schema.to_ascii_lowercase(), table: stream.to_ascii_lowercase() })
    }

    /// `schema.table`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    /// The sink's name in messages and in the progress table.
    fn sink(&self) -> String {
        format!("postgres {}", self.qualified())
    }

    /// Connects, naming the session `kappa:SCHEMA.TABLE` (`application_name`).
    pub fn connect(&self) -> Result<postgres::Client, String> {
        self.connect_as(&format!("kappa:{}", self.qualified()))
    }

    /// Checks that the database answers (before the job starts), as session `kappa-check`.
    pub fn check(&self) -> Result<(), String> {
        self.connect_as("kappa-check").map(drop)
    }

    fn connect_as(&self, application: &str) -> Result<postgres::Client, String> {
        let mut config: postgres::Config = self.url.parse().map_err(|e| format!("{}: {e}", self.sink()))?;
        config.application_name(application);
        config.connect(postgres::NoTls).map_err(|e| format!("{}: {}", self.sink(), one_line(&e)))
    }

    /// Creates the schema, the table for rows `R` and the progress table if missing.
    pub fn create<R: TableRow>(&self, client: &mut postgres::Client) -> Result<(), String> {
        let columns = R::columns();
        let types = R::sql_types();
        let mut ddl = format!("CREATE SCHEMA IF NOT EXISTS {s};\n", s = self.schema);
        ddl.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {s}.kappa_progress (sink text NOT NULL, time bigint NOT NULL, \
             rows bigint NOT NULL, PRIMARY KEY (sink, time));\n",
            s = self.schema
        ));
        let defs: Vec<String> = columns.iter().zip(&types).map(|(c, t)| format!("{c} {t}")).collect();
        let key: Vec<&str> = R::key_columns().iter().map(|&k| columns[k]).collect();
        let key = if key.is_empty() { String::new() } else { format!(", PRIMARY KEY ({})", key.join(", ")) };
        ddl.push_str(&format!("CREATE TABLE IF NOT EXISTS {} ({}{key});", self.qualified(), defs.join(", ")));
        client.batch_execute(&ddl).map_err(|e| format!("{}: {}", self.sink(), one_line(&e)))
    }

    /// The last time applied, or `None` (having started the table over) on a fresh start.
    fn begin(&self, client: &mut postgres::Client, fresh: bool) -> Result<Option<Millis>, postgres::Error> {
        let sink = literal(&self.sink());
        if fresh {
            let sql = format!(
                "BEGIN; DELETE FROM {t}; DELETE FROM {s}.kappa_progress WHERE sink = {sink}; COMMIT;",
                t = self.qualified(),
                s = self.schema
            );
            client.batch_execute(&sql)?;
            return Ok(None);
        }
        let sql = format!("SELECT max(time) FROM {}.kappa_progress WHERE sink = {sink}", self.schema);
        let row = client.query_one(sql.as_str(), &[])?;
        Ok(row.get::<_, Option<i64>>(0).map(|t| t as Millis))
    }
}

/// An error and its causes on one line.
fn one_line(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A SQL string literal (standard conforming strings; NUL, which text cannot hold, as U+FFFD).
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Appends a cell as a field of `COPY`'s text format: `\N` for no value; backslash,
/// tab, newline and carriage return escaped; NUL, which text cannot hold, as U+FFFD.
fn push_field(out: &mut Vec<u8>, cell: &Cell<'_>) {
    match cell {
        Cell::Null => out.extend_from_slice(b"\\N"),
        Cell::Text(t) => {
            for c in t.chars() {
                match c {
                    '\\' => out.extend_from_slice(b"\\\\"),
                    '\t' => out.extend_from_slice(b"\\t"),
                    '\n' => out.extend_from_slice(b"\\n"),
                    '\r' => out.extend_from_slice(b"\\r"),
                    '\0' => out.extend_from_slice("\u{fffd}".as_bytes()),
                    c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                }
            }
        }
        other => other.write_plain(out, false),
    }
}

/// The rows and times waiting for their transaction, as `COPY` text.
struct Batch {
    copy: Vec<u8>,
    rows: usize,
    last: Option<Millis>,
}

/// The statements that apply a batch.
struct Statements {
    /// `COPY` into the table, or into the staging table when the table has a key.
    copy: String,
    /// The upsert from the staging table (tables with a key).
    upsert: Option<String>,
    /// The start of the progress row's `INSERT`.
    progress: String,
}

impl Statements {
    fn new(db: &Postgres, columns: &[&str], keys: &[usize]) -> Statements {
        let list = columns.join(", ");
        let progress = format!(
            "INSERT INTO {}.kappa_progress (sink, time, rows) VALUES ({}, ",
            db.schema,
            literal(&db.sink())
        );
        if keys.is_empty() {
            let copy = format!("COPY {} ({list}) FROM STDIN", db.qualified());
            return Statements { copy, upsert: None, progress };
        }
        let key: Vec<&str> = keys.iter().map(|&k| columns[k]).collect();
        let key = key.join(", ");
        let updates: Vec<String> = (0..columns.len())
            .filter(|i| !keys.contains(i))
            .map(|i| format!("{c} = EXCLUDED.{c}", c = columns[i]))
            .collect();
        let action = match updates.is_empty() {
            true => "DO NOTHING".to_owned(),
            false => format!("DO UPDATE SET {}", updates.join(", ")),
        };
        let upsert = format!(
            "INSERT INTO {t} ({list}) SELECT DISTINCT ON ({key}) {list} FROM kappa_stage \
             ORDER BY {key}, kappa_seq DESC ON CONFLICT ({key}) {action}",
            t = db.qualified()
        );
        let copy = format!("COPY kappa_stage ({list}) FROM STDIN");
        Statements { copy, upsert: Some(upsert), progress }
    }

    /// Creates the session's staging table (tables with a key).
    fn stage(&self, db: &Postgres, client: &mut postgres::Client) -> Result<(), postgres::Error> {
        if self.upsert.is_none() {
            return Ok(());
        }
        client.batch_execute(&format!(
            "CREATE TEMP TABLE kappa_stage (LIKE {}, kappa_seq bigserial) ON COMMIT DELETE ROWS",
            db.qualified()
        ))
    }

    /// Applies `batch` and its progress row in one transaction.
    fn apply(&self, client: &mut postgres::Client, batch: &Batch, last: Millis) -> Result<(), String> {
        use std::io::Write;
        let pg = |e: postgres::Error| one_line(&e);
        let mut tx = client.transaction().map_err(pg)?;
        let mut copy = tx.copy_in(self.copy.as_str()).map_err(pg)?;
        copy.write_all(&batch.copy).map_err(|e| e.to_string())?;
        copy.finish().map_err(pg)?;
        if let Some(upsert) = &self.upsert {
            tx.batch_execute(upsert).map_err(pg)?;
        }
        tx.batch_execute(&format!("{}{last}, {})", self.progress, batch.rows)).map_err(pg)?;
        tx.commit().map_err(pg)
    }
}

/// Writes `stream` to its table (on worker 0 of process 0, when `writes`).
pub fn write<T, R>(stream: Stream<'_, T, Vec<R>>, outputs: &Arc<Outputs>, db: Postgres, writes: bool)
where
    T: EventTime,
    R: TableRow + Ord + ExchangeData,
{
    let writes = writes && stream.scope().index() == 0;
    let checkpoint = outputs.checkpoint.lock().expect("outputs lock").clone();
    let statements = Statements::new(&db, &R::columns(), R::key_columns());
    let mut client = None;
    let mut applied: Option<Millis> = None;
    if writes {
        fn failed<X>(e: String) -> X {
            fail(&e)
        }
        let mut c = db.connect().unwrap_or_else(failed);
        db.create::<R>(&mut c).unwrap_or_else(failed);
        statements.stage(&db, &mut c).unwrap_or_else(|e| failed(format!("{}: {}", db.sink(), one_line(&e))));
        // A commit record in the checkpoint folder marks that this sink has started there.
        let marker = format!("pg-{}", db.qualified());
        let fresh = match &checkpoint {
            Some(ck) => ck.commit_of(&marker).unwrap_or_else(failed).is_none(),
            None => true,
        };
        applied =
            db.begin(&mut c, fresh).unwrap_or_else(|e| failed(format!("{}: {}", db.sink(), one_line(&e))));
        if let Some(ck) = &checkpoint
            && fresh
            && let Err(e) = ck.commit(&marker, Commit::default())
        {
            fail(&format!("checkpoint: {}", crate::exit::io_reason(&e)));
        }
        client = Some(c);
    }
    let mut batch = Batch { copy: Vec::new(), rows: 0, last: None };
    let flush = move |batch: &mut Batch, client: &mut postgres::Client| {
        let Some(last) = batch.last.take() else { return };
        if let Err(e) = statements.apply(client, batch, last) {
            fail(&format!("writing {}: {e}", db.sink()));
        }
        batch.copy.clear();
        batch.rows = 0;
    };
    stream.gather_sorted("Postgres", R::group_time, move |gathered| {
        let Some(client) = client.as_mut() else { return };
        match gathered {
            Gathered::Frontier(_) | Gathered::Cut => flush(&mut batch, client),
            Gathered::Complete(time, rows) => {
                if applied.is_some_and(|a| time <= a) {
                    return;
                }
                if batch.rows + rows.len() > BATCH_ROWS {
                    flush(&mut batch, client);
                }
                let mut cells = Vec::new();
                for row in rows.iter() {
                    cells.clear();
                    row.cells(&mut cells);
                    for (j, cell) in cells.iter().enumerate() {
                        if j > 0 {
                            batch.copy.push(b'\t');
                        }
                        push_field(&mut batch.copy, cell);
                    }
                    batch.copy.push(b'\n');
                }
                batch.rows += rows.len();
                batch.last = Some(time);
                applied = Some(time);
            }
            Gathered::Closed => flush(&mut batch, client),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_literals() {
        let p = Postgres::parse("postgres://u@h:5432/test?schema=Kx&sslmode=disable", "viewers").unwrap();
        assert_eq!(
            (p.url.as_str(), p.qualified()),
            ("postgres://u@h:5432/test?sslmode=disable", "kx.viewers".into())
        );
        assert!(Postgres::parse("postgres://h/test?schema=a;drop", "v").is_err());
        assert_eq!(literal("it's\0"), "'it''s\u{fffd}'");
        let mut field = Vec::new();
        push_field(&mut field, &Cell::Text("a\tb\\c\nd\re\0"));
        push_field(&mut field, &Cell::Null);
        assert_eq!(String::from_utf8(field).unwrap(), "a\\tb\\\\c\\nd\\re\u{fffd}\\N");
    }
}
