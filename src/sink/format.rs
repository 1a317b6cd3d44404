//! Rendering rows as CSV, JSON lines or an aligned table.

use std::io::{self, Write};

use crate::cli::Format;
use crate::money::Cents;
use crate::time::{Millis, write_iso8601};

/// One output value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell<'a> {
    /// An event time in milliseconds; printed as an integer, or ISO 8601 in tables.
    Time(Millis),
    /// A signed integer.
    Int(i64),
    /// An amount of money, printed with two decimals.
    Money(Cents),
    /// Text.
    Text(&'a str),
    /// A ratio, printed with the given number of decimals.
    Ratio(f64, usize),
}

/// A row type that sinks can print.
pub trait Tabular {
    /// Column names, in order.
    fn columns() -> &'static [&'static str];
    /// Appends this row's cells, one per column.
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>);
}

impl Cell<'_> {
    fn write_plain(&self, out: &mut Vec<u8>, iso_time: bool) {
        match *self {
            Cell::Time(t) if iso_time => write_iso8601(out, t),
            Cell::Time(t) => out.extend_from_slice(itoa::Buffer::new().format(t).as_bytes()),
            Cell::Int(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
            Cell::Money(c) => c.write(out),
            Cell::Text(s) => out.extend_from_slice(s.as_bytes()),
            Cell::Ratio(v, decimals) => {
                let _ = write!(out, "{v:.decimals$}");
            }
        }
    }

    fn is_numeric(&self) -> bool {
        !matches!(self, Cell::Text(_))
    }
}

/// Writes rows of one [`Tabular`] type in one [`Format`].
pub struct RowWriter<W: Write> {
    out: W,
    format: Format,
    columns: &'static [&'static str],
    line: Vec<u8>,
    started: bool,
}

impl<W: Write> RowWriter<W> {
    /// A writer for rows with `columns`.
    pub fn new(out: W, format: Format, columns: &'static [&'static str]) -> Self {
        RowWriter { out, format, columns, line: Vec::with_capacity(256), started: false }
    }

    /// Writes the CSV header if it has not been written yet.
    pub fn start(&mut self) -> io::Result<()> {
        if !self.started && self.format == Format::Csv {
            self.out.write_all(self.columns.join(",").as_bytes())?;
            self.out.write_all(b"\n")?;
        }
        self.started = true;
        Ok(())
    }

    /// Writes one group of rows, such as everything completed at one time.
    pub fn write_group<R: Tabular>(&mut self, rows: &[R]) -> io::Result<()> {
        self.start()?;
        let mut cells = Vec::with_capacity(self.columns.len());
        match self.format {
            Format::Csv => {
                for row in rows {
                    cells.clear();
                    row.cells(&mut cells);
                    self.line.clear();
                    for (i, cell) in cells.iter().enumerate() {
                        if i > 0 {
                            self.line.push(b',');
                        }
                        match cell {
                            Cell::Text(s) => crate::record::csv::write_field(&mut self.line, s),
                            other => other.write_plain(&mut self.line, false),
                        }
                    }
                    self.line.push(b'\n');
                    self.out.write_all(&self.line)?;
                }
            }
            Format::Json => {
                for row in rows {
                    cells.clear();
                    row.cells(&mut cells);
                    self.line.clear();
                    self.line.push(b'{');
                    for (i, (name, cell)) in self.columns.iter().zip(&cells).enumerate() {
                        if i > 0 {
                            self.line.push(b',');
                        }
                        serde_json::to_writer(&mut self.line, name).map_err(io::Error::other)?;
                        self.line.push(b':');
                        match cell {
                            Cell::Text(s) => {
                                serde_json::to_writer(&mut self.line, s).map_err(io::Error::other)?
                            }
                            Cell::Ratio(v, _) if !v.is_finite() => self.line.extend_from_slice(b"null"),
                            other => other.write_plain(&mut self.line, false),
                        }
                    }
                    self.line.extend_from_slice(b"}\n");
                    self.out.write_all(&self.line)?;
                }
            }
            Format::Table => {
                if rows.is_empty() {
                    return Ok(());
                }
                let mut rendered: Vec<Vec<(String, bool)>> = Vec::with_capacity(rows.len());
                for row in rows {
                    cells.clear();
                    row.cells(&mut cells);
                    rendered.push(
                        cells
                            .iter()
                            .map(|c| {
                                let mut b = Vec::new();
                                c.write_plain(&mut b, true);
                                (String::from_utf8_lossy(&b).into_owned(), c.is_numeric())
                            })
                            .collect(),
                    );
                }
                let mut widths: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
                for row in &rendered {
                    for (w, (text, _)) in widths.iter_mut().zip(row) {
                        *w = (*w).max(text.chars().count());
                    }
                }
                let mut text = String::new();
                for (i, (name, w)) in self.columns.iter().zip(&widths).enumerate() {
                    text.push_str(if i > 0 { "  " } else { "" });
                    text.push_str(&format!("{name:<w$}"));
                }
                text = text.trim_end().to_owned();
                text.push('\n');
                for (i, w) in widths.iter().enumerate() {
                    text.push_str(if i > 0 { "  " } else { "" });
                    text.push_str(&"-".repeat(*w));
                }
                text.push('\n');
                for row in &rendered {
                    let mut line = String::new();
                    for (i, ((cell, numeric), w)) in row.iter().zip(&widths).enumerate() {
                        line.push_str(if i > 0 { "  " } else { "" });
                        if *numeric {
                            line.push_str(&format!("{cell:>w$}"));
                        } else {
                            line.push_str(&format!("{cell:<w$}"));
                        }
                    }
                    text.push_str(line.trim_end());
                    text.push('\n');
                }
                text.push('\n');
                self.out.write_all(text.as_bytes())?;
            }
        }
        Ok(())
    }

    /// Flushes buffered output.
    pub fn flush(&mut self) -> io::Result<()> {
        self.start()?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row(u64, &'static str, i64);
    impl Tabular for Row {
        fn columns() -> &'static [&'static str] {
            &["time", "name", "total"]
        }
        fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
            out.extend([Cell::Time(self.0), Cell::Text(self.1), Cell::Money(Cents(self.2))]);
        }
    }

    fn render(format: Format) -> String {
        let mut w = RowWriter::new(Vec::new(), format, Row::columns());
        w.write_group(&[Row(1000, "a,b", 1234), Row(2000, "c", -5)]).unwrap();
        w.flush().unwrap();
        String::from_utf8(w.out).unwrap()
    }

    #[test]
    fn formats_render_the_same_rows() {
        assert_eq!(render(Format::Csv), "time,name,total\n1000,\"a,b\",12.34\n2000,c,-0.05\n");
        assert_eq!(
            render(Format::Json),
            "{\"time\":1000,\"name\":\"a,b\",\"total\":12.34}\n{\"time\":2000,\"name\":\"c\",\"total\":-0.05}\n"
        );
        let table = render(Format::Table);
        assert!(table.starts_with("time                  name  total\n"), "{table}");
        assert!(table.contains("1970-01-01T00:00:01Z  a,b   12.34\n"), "{table}");
        assert!(table.contains("1970-01-01T00:00:02Z  c     -0.05\n"), "{table}");
    }
}
