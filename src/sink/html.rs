//! `--format html`: one self-contained page of tables, each with the chart the seeds draw.
//!
//! The page needs nothing at run time: no script, no stylesheet or font from the
//! network. Charts are inline SVG drawn here. Each titled table (a report's section, see
//! [`Layout`]) or each plain group of rows becomes a section: its title, a chart and the
//! table. The chart plots the table's first numeric column (not a time, a rank or a
//! diff) against its first text column: a line over time when the labels are dates or
//! times (the daily trend), bars otherwise (categories, payment methods, status codes).
//! Tables show every value exactly as `--format table` does; the chart's scale is the
//! only place values become floats.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::tabular::{Cell, Layout, Tabular, shown_columns};

/// Bars drawn at most per chart; the table below still lists every row.
pub const MAX_BARS: usize = 40;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em}\
section{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}\
table{border-collapse:collapse}th,td{padding:2px 10px;border-bottom:1px solid #ddd}\
th{text-align:left;background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}\
svg text{font:11px system-ui,sans-serif;fill:#333}.bar{fill:#4878a8}.neg{fill:#c0504d}\
.line{fill:none;stroke:#4878a8;stroke-width:2}.dot{fill:#4878a8}.caption{color:#666;font-size:12px}";

/// Writes the page's head, titled `title`.
pub fn head(out: &mut impl Write, title: &str) -> io::Result<()> {
    let title = escape(title);
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>{STYLE}</style></head>\n<body><h1>{title}</h1>\n"
    )
}

/// Writes the end of the page.
pub fn foot(out: &mut impl Write) -> io::Result<()> {
    out.write_all(b"</body></html>\n")
}

/// Writes one section: its title, its chart (if it has something to plot) and its table.
pub fn section<R: Tabular>(
    out: &mut impl Write,
    columns: &[&'static str],
    layout: Option<&Layout>,
    rows: &[R],
) -> io::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let shown = shown_columns(columns, layout);
    let mut cells = Vec::with_capacity(columns.len());
    let table: Vec<Vec<Cell<'_>>> = rows
        .iter()
        .map(|row| {
            cells.clear();
            row.cells(&mut cells);
            shown.iter().map(|(i, _)| cells[*i]).collect()
        })
        .collect();
    let mut html = String::new();
    let title = layout.map_or("Results", |l| l.title.as_str());
    let _ = writeln!(html, "<h2>{}</h2>\n<section>", escape(title));
    let names: Vec<(&str, &str)> = shown.iter().map(|(i, header)| (columns[*i], *header)).collect();
    chart(&mut html, &names, &table);
    html.push_str("<table><thead><tr>");
    for (_, header) in &shown {
        let _ = write!(html, "<th>{}</th>", escape(header));
    }
    html.push_str("</tr></thead><tbody>\n");
    for row in &table {
        html.push_str("<tr>");
        for cell in row {
            let class = if matches!(cell, Cell::Text(_)) { "" } else { " class=\"n\"" };
            let _ = write!(html, "<td{class}>{}</td>", escape(&cell.text()));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody></table>\n</section>\n");
    out.write_all(html.as_bytes())
}

/// The value a chart plots for a numeric cell; `None` for times and text.
fn plotted(cell: &Cell<'_>) -> Option<f64> {
    match *cell {
        Cell::Int(v) => Some(v as f64),
        Cell::Wide(v) => Some(v as f64),
        Cell::Money(c) => Some(c.0 as f64 / 100.0),
        Cell::Ratio(v, _) | Cell::Real(v) if v.is_finite() => Some(v),
        _ => None,
    }
}

/// Whether a label reads as a date or a time, so the rows form a series over time.
fn is_temporal(cell: &Cell<'_>) -> bool {
    match cell {
        Cell::Time(_) => true,
        Cell::Text(s) => {
            let b = s.as_bytes();
            b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[7] == b'-'
        }
        _ => false,
    }
}

/// Appends the section's chart, if it has a label column and a value column. `names`
/// are the shown columns' names and headers.
fn chart(html: &mut String, names: &[(&str, &str)], table: &[Vec<Cell<'_>>]) {
    let first = &table[0];
    let label = (0..first.len())
        .find(|&i| matches!(first[i], Cell::Text(_)))
        .or_else(|| (0..first.len()).find(|&i| matches!(first[i], Cell::Time(_))));
    let value = (0..first.len())
        .find(|&i| !matches!(names[i].0, "rank" | "diff") && table.iter().any(|r| plotted(&r[i]).is_some()));
    let (Some(label), Some(value)) = (label, value) else { return };
    let points: Vec<(String, f64)> =
        table.iter().map(|r| (r[label].text(), plotted(&r[value]).unwrap_or(0.0))).collect();
    let what = format!("{} by {}", names[value].1, names[label].1);
    if table.iter().all(|r| is_temporal(&r[label])) && points.len() > 1 {
        line_chart(html, &what, &points);
    } else {
        bar_chart(html, &what, &points);
    }
}

fn bar_chart(html: &mut String, what: &str, points: &[(String, f64)]) {
    let shown = &points[..points.len().min(MAX_BARS)];
    let max = shown.iter().map(|(_, v)| v.abs()).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let (label_w, bar_w, row_h) = (240.0, 360.0, 20.0);
    let height = row_h * shown.len() as f64 + 10.0;
    let _ = write!(
        html,
        "<figure><svg class=\"chart\" data-points=\"{}\" width=\"700\" height=\"{height}\" role=\"img\" aria-label=\"{}\">",
        shown.len(),
        escape(what)
    );
    for (k, (label, v)) in shown.iter().enumerate() {
        let y = k as f64 * row_h + 5.0;
        let w = (v.abs() / max * bar_w).max(1.0);
        let class = if *v < 0.0 { "bar neg" } else { "bar" };
        let _ = write!(
            html,
            "<text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect class=\"{class}\" x=\"{label_w}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            label_w - 6.0,
            y + 14.0,
            escape(&short(label, 38)),
            row_h - 4.0,
            label_w + w + 4.0,
            y + 14.0,
            number(*v)
        );
    }
    html.push_str("</svg>");
    caption(html, what, shown.len(), points.len());
}

fn line_chart(html: &mut String, what: &str, points: &[(String, f64)]) {
    let (w, h, left, top, bottom) = (640.0, 240.0, 110.0, 10.0, 30.0);
    let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min).min(0.0);
    let hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    let step = (w - left - 10.0) / (points.len() - 1) as f64;
    let xy = |k: usize, v: f64| (left + k as f64 * step, top + (hi - v) / span * (h - top - bottom));
    let _ = write!(
        html,
        "<figure><svg class=\"chart\" data-points=\"{}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">",
        points.len(),
        escape(what)
    );
    let _ = write!(
        html,
        "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{}</text><text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{}</text>",
        left - 6.0,
        top + 10.0,
        number(hi),
        left - 6.0,
        h - bottom,
        number(lo)
    );
    let line: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(k, (_, v))| {
            let (x, y) = xy(k, *v);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let _ = write!(html, "<polyline class=\"line\" points=\"{}\"/>", line.join(" "));
    for (k, (_, v)) in points.iter().enumerate() {
        let (x, y) = xy(k, *v);
        let _ = write!(html, "<circle class=\"dot\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.5\"/>");
    }
    let (first, last) = (&points[0].0, &points[points.len() - 1].0);
    let _ = write!(
        html,
        "<text x=\"{left}\" y=\"{:.0}\">{}</text><text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{}</text></svg>",
        h - 8.0,
        escape(first),
        w - 10.0,
        h - 8.0,
        escape(last)
    );
    caption(html, what, points.len(), points.len());
}

/// The chart's caption: what it plots, and how many rows it leaves out.
fn caption(html: &mut String, what: &str, drawn: usize, rows: usize) {
    let more = if drawn < rows { format!(" (first {drawn} of {rows})") } else { String::new() };
    let _ = writeln!(html, "<figcaption class=\"caption\">{}{more}</figcaption></figure>", escape(what));
}

/// A number for a chart's labels: whole when it is, else two decimals.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v:.2}") }
}

/// At most `n` characters of `s`, with an ellipsis when cut.
fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { s.chars().take(n - 1).chain(['…']).collect() }
}

/// `s` with HTML's special characters escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sale(&'static str, i64);

    impl Tabular for Sale {
        fn columns() -> Vec<&'static str> {
            vec!["key", "total"]
        }
        fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
            out.extend([Cell::Text(self.0), Cell::Money(crate::money::Cents(self.1 as i128))]);
        }
    }

    fn page(rows: &[Sale]) -> String {
        let mut out = Vec::new();
        head(&mut out, "t <&>").unwrap();
        section(&mut out, &Sale::columns(), None, rows).unwrap();
        foot(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn categories_are_bars_and_dates_are_a_line_with_every_row_in_the_table() {
        let bars = page(&[Sale("Books", 1050), Sale("<Home>", -200)]);
        assert!(bars.contains("<title>t &lt;&amp;&gt;</title>"));
        assert_eq!(bars.matches("<rect class=\"bar").count(), 2);
        assert!(bars.contains("data-points=\"2\"") && bars.contains("<td>&lt;Home&gt;</td>"));
        assert!(bars.contains("<td class=\"n\">10.50</td>") && bars.contains("rect class=\"bar neg\""));
        assert!(bars.trim_end().ends_with("</html>"));
        let line = page(&[Sale("2026-01-01", 100), Sale("2026-01-02", 300), Sale("2026-01-03", 200)]);
        assert!(line.contains("<polyline") && line.matches("<circle").count() == 3);
        assert!(!line.contains("<rect"));
    }

    #[test]
    fn bars_are_capped_but_the_table_lists_every_row() {
        let rows: Vec<Sale> = (0..100).map(|i| Sale("k", i)).collect();
        let html = page(&rows);
        assert_eq!(html.matches("<rect").count(), MAX_BARS);
        assert_eq!(html.matches("<tr>").count(), 101);
        assert!(html.contains("(first 40 of 100)"));
    }
}
