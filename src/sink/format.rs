//! Rendering rows as CSV, JSON lines or aligned tables.
//!
//! A row type says what its columns are and what each cell holds ([`Tabular`]); the
//! [`RowWriter`] renders rows in the chosen [`Format`]. Tables are for people: times in
//! ISO 8601, numbers right-aligned, and a row type may split a group of rows into
//! several titled tables ([`Tabular::layout`]), as a report does per section.

use std::io::{self, Write};

use clap::ValueEnum;

use super::kafka::KEY_END;
use super::tabular::{Cell, Layout, Tabular, shown_columns};
use crate::time::write_iso8601;

/// How results are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// CSV with a header row.
    Csv,
    /// An aligned table for people.
    Table,
    /// JSON lines, one object per row.
    Json,
    /// One self-contained HTML page: each table with a chart (for reports).
    Html,
}

impl Cell<'_> {
    pub(super) fn write_plain(&self, out: &mut Vec<u8>, iso_time: bool) {
        match *self {
            Cell::Time(t) if iso_time => write_iso8601(out, t),
            Cell::Time(t) => out.extend_from_slice(itoa::Buffer::new().format(t).as_bytes()),
            Cell::Int(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
            Cell::Wide(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
            Cell::Money(c) => c.write(out),
            Cell::Text(s) => out.extend_from_slice(s.as_bytes()),
            Cell::Ratio(v, decimals) => {
                let _ = write!(out, "{v:.decimals$}");
            }
            Cell::Real(v) => {
                let _ = write!(out, "{v}");
            }
            Cell::Fixed(v, decimals) => crate::money::write_fixed(out, v, decimals),
            Cell::Null => {}
        }
    }

    /// The cell as text, times in ISO 8601: as a table shows it, without padding.
    pub fn text(&self) -> String {
        self.rendered().0
    }

    fn is_numeric(&self) -> bool {
        !matches!(self, Cell::Text(_))
    }

    /// The cell as a table shows it, and whether it is right-aligned.
    fn rendered(&self) -> (String, bool) {
        let mut b = Vec::new();
        self.write_plain(&mut b, true);
        (String::from_utf8_lossy(&b).into_owned(), self.is_numeric())
    }
}

/// Writes rows of one [`Tabular`] type in one [`Format`].
pub struct RowWriter<W: Write> {
    out: W,
    format: Format,
    columns: Vec<&'static str>,
    line: Vec<u8>,
    started: bool,
    /// Each row's line starts with its key (see [`RowWriter::keyed`]).
    keyed: bool,
}

impl<W: Write> RowWriter<W> {
    /// A writer for rows with `columns`.
    pub fn new(out: W, format: Format, columns: Vec<&'static str>) -> Self {
        RowWriter { out, format, columns, line: Vec::with_capacity(256), started: false, keyed: false }
    }

    /// The same writer, starting each CSV or JSON row's line with the row's key, its
    /// text cells joined by `,`, and the byte [`KEY_END`]: a Kafka topic's writer
    /// splits the two into a message's key and value.
    pub fn keyed(mut self) -> Self {
        self.keyed = true;
        self
    }

    /// Starts a row's line: empty, or its key and [`KEY_END`] when keyed.
    fn begin_line(&mut self, cells: &[Cell<'_>]) {
        self.line.clear();
        if self.keyed {
            let mut first = true;
            for cell in cells {
                if let Cell::Text(s) = cell {
                    if !first {
                        self.line.push(b',');
                    }
                    first = false;
                    self.line.extend(s.bytes().filter(|&b| b != KEY_END && b != b'\n'));
                }
            }
            self.line.push(KEY_END);
        }
    }

    /// The same writer, for an output that has its header already.
    pub fn started(mut self) -> Self {
        self.started = true;
        self
    }

    /// Writes the CSV header, or the HTML page's head, if it has not been written yet.
    pub fn start(&mut self) -> io::Result<()> {
        if !self.started {
            match self.format {
                Format::Csv => {
                    self.out.write_all(self.columns.join(",").as_bytes())?;
                    self.out.write_all(b"\n")?;
                }
                Format::Html => super::html::head(&mut self.out, &crate::exit::program_name())?,
                Format::Table | Format::Json => {}
            }
        }
        self.started = true;
        Ok(())
    }

    /// Ends the output (the HTML page's end) and flushes it.
    pub fn finish(&mut self) -> io::Result<()> {
        self.start()?;
        if self.format == Format::Html {
            super::html::foot(&mut self.out)?;
        }
        self.out.flush()
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
                    self.begin_line(&cells);
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
                    self.begin_line(&cells);
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
                            Cell::Ratio(v, _) | Cell::Real(v) if !v.is_finite() => {
                                self.line.extend_from_slice(b"null")
                            }
                            Cell::Null => self.line.extend_from_slice(b"null"),
                            other => other.write_plain(&mut self.line, false),
                        }
                    }
                    self.line.extend_from_slice(b"}\n");
                    self.out.write_all(&self.line)?;
                }
            }
            Format::Html => {
                let mut start = 0;
                while start < rows.len() {
                    let layout = rows[start].layout(false);
                    let end = start + rows[start..].iter().take_while(|r| r.layout(false) == layout).count();
                    super::html::section(&mut self.out, &self.columns, layout.as_ref(), &rows[start..end])?;
                    start = end;
                }
            }
            Format::Table => {
                let mut text = String::new();
                let mut start = 0;
                while start < rows.len() {
                    let layout = rows[start].layout(false);
                    let end = start + rows[start..].iter().take_while(|r| r.layout(false) == layout).count();
                    render_table(&mut text, &self.columns, layout.as_ref(), &rows[start..end]);
                    start = end;
                }
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

/// Appends one aligned table of `rows` to `text`: under its title with the layout's
/// columns, or with every column. Titled tables align each header like its column;
/// plain tables left-align their headers.
fn render_table<R: Tabular>(
    text: &mut String,
    columns: &[&'static str],
    layout: Option<&Layout>,
    rows: &[R],
) {
    let shown = shown_columns(columns, layout);
    let mut cells = Vec::with_capacity(columns.len());
    let rendered: Vec<Vec<(String, bool)>> = rows
        .iter()
        .map(|row| {
            cells.clear();
            row.cells(&mut cells);
            shown.iter().map(|(i, _)| cells[*i].rendered()).collect()
        })
        .collect();
    let mut widths: Vec<usize> = shown.iter().map(|(_, h)| h.chars().count()).collect();
    for row in &rendered {
        for (w, (cell, _)) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let right_headers: Vec<bool> =
        (0..shown.len()).map(|i| layout.is_some() && rendered.first().is_some_and(|r| r[i].1)).collect();
    let mut line = |cells: &mut dyn Iterator<Item = (&str, bool)>| {
        let mut s = String::new();
        for (i, ((cell, right), w)) in cells.zip(&widths).enumerate() {
            s.push_str(if i > 0 { "  " } else { "" });
            if right {
                s.push_str(&format!("{cell:>w$}"));
            } else {
                s.push_str(&format!("{cell:<w$}"));
            }
        }
        text.push_str(s.trim_end());
        text.push('\n');
    };
    if rows.is_empty() {
        return;
    }
    if let Some(l) = layout {
        line(&mut std::iter::once((l.title.as_str(), false)));
    }
    line(&mut shown.iter().zip(&right_headers).map(|((_, h), r)| (*h, *r)));
    let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&mut dashes.iter().map(|d| (d.as_str(), false)));
    for row in &rendered {
        line(&mut row.iter().map(|(c, r)| (c.as_str(), *r)));
    }
    text.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Cents;

    struct Row(u64, &'static str, i128);
    impl Tabular for Row {
        fn columns() -> Vec<&'static str> {
            vec!["time", "name", "total"]
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

    struct Titled(&'static str, i64);
    impl Tabular for Titled {
        fn columns() -> Vec<&'static str> {
            vec!["section", "amount"]
        }
        fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
            out.extend([Cell::Text(self.0), Cell::Int(self.1)]);
        }
        fn layout(&self, _changes: bool) -> Option<Layout> {
            Some(Layout { title: format!("Section {}", self.0), columns: vec![("amount", "sum")] })
        }
    }

    #[test]
    fn layouts_split_a_group_into_titled_tables() {
        let mut w = RowWriter::new(Vec::new(), Format::Table, Titled::columns());
        w.write_group(&[Titled("a", 1), Titled("a", 22), Titled("b", 3)]).unwrap();
        let text = String::from_utf8(w.out).unwrap();
        assert_eq!(text, "Section a\nsum\n---\n  1\n 22\n\nSection b\nsum\n---\n  3\n\n");
    }
}
