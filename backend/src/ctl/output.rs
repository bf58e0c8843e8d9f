//! How `ctl` prints for people: aligned plain-text tables (easy to read, and to `grep` or
//! `awk`), times relative to now; and JSON for scripts (`--json`), as the API answered.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::ctl::client::CtlError;

/// Rows of cells, printed in columns two spaces apart. A header is just the first row.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn with_header(header: &[&str]) -> Table {
        Table { rows: vec![header.iter().map(|h| (*h).to_owned()).collect()] }
    }

    /// One thing in detail: a field per line, those without a value left out.
    pub fn record<'a>(fields: impl IntoIterator<Item = (&'a str, String)>) -> Table {
        let mut table = Table::default();
        for (name, value) in fields {
            if !value.is_empty() {
                table.row([name.to_owned(), value]);
            }
        }
        table
    }

    pub fn row(&mut self, cells: impl IntoIterator<Item = String>) {
        self.rows.push(cells.into_iter().map(|c| one_line(&c)).collect());
    }

    /// The table as text, one line per row; a missing value shows as `-`.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(shown(cell).chars().count());
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let cell = shown(cell);
                line.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i] - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn print(&self) -> Result<(), CtlError> {
        write_out(self.render().as_bytes())
    }
}

fn shown(cell: &str) -> &str {
    if cell.is_empty() { "-" } else { cell }
}

/// A value from the API on one line: control characters (a newline in an error) as spaces.
pub fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// An API timestamp (RFC 3339) relative to `now`: `12s ago`, `in 3d`; empty if none.
pub fn relative(timestamp: Option<&str>, now: SystemTime) -> String {
    let Some(timestamp) = timestamp else { return String::new() };
    let Ok(at) = humantime::parse_rfc3339_weak(timestamp) else { return timestamp.to_owned() };
    match now.duration_since(at) {
        Ok(past) => format!("{} ago", rough(past)),
        Err(future) => format!("in {}", rough(future.duration())),
    }
}

/// An API timestamp as it is, and relative to `now`: `2026-01-10T11:59:15.250Z (44s ago)`.
pub fn moment(timestamp: Option<&str>, now: SystemTime) -> String {
    match timestamp {
        Some(at) => format!("{at} ({})", relative(Some(at), now)),
        None => String::new(),
    }
}

/// A duration in its largest whole unit: `45s`, `12m`, `5h`, `3d`.
fn rough(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Pretty JSON for scripts.
pub fn print_json(value: &Value) -> Result<(), CtlError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CtlError::Local(e.to_string()))?;
    write_out(format!("{text}\n").as_bytes())
}

/// Writes to stdout, flushed: one that is closed (`| head`) is an error, not a panic.
pub fn write_out(bytes: &[u8]) -> Result<(), CtlError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| CtlError::Local(format!("cannot write to stdout: {e}")))
}

/// Writes to stderr, flushed (a job's error output).
pub fn write_err(bytes: &[u8]) -> Result<(), CtlError> {
    let mut err = std::io::stderr().lock();
    err.write_all(bytes)
        .and_then(|()| err.flush())
        .map_err(|e| CtlError::Local(format!("cannot write to stderr: {e}")))
}

/// A note for the person at the terminal (never part of what a script reads on stdout).
pub fn note(text: &str) {
    let _ = write_err(format!("{}\n", one_line(text)).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_aligns_its_columns_and_marks_missing_values() {
        let mut table = Table::with_header(&["NAME", "STATUS", "LABELS"]);
        table.row(["web-01".to_owned(), "online".to_owned(), "linux,gpu".to_owned()]);
        table.row(["db".to_owned(), "unreachable".to_owned(), String::new()]);
        assert_eq!(
            table.render(),
            "NAME    STATUS       LABELS\n\
             web-01  online       linux,gpu\n\
             db      unreachable  -\n"
        );
    }

    #[test]
    fn a_cell_stays_on_its_line_and_wide_characters_count_once() {
        let mut table = Table::default();
        table.row(["error".to_owned(), "connection\nrefused".to_owned()]);
        table.row(["café".to_owned(), "x".to_owned()]);
        assert_eq!(table.render(), "error  connection refused\ncafé   x\n");
    }

    #[test]
    fn a_record_leaves_out_fields_without_a_value() {
        let record = Table::record([
            ("name", "web-01".to_owned()),
            ("error", String::new()),
            ("max jobs", "4".into()),
        ]);
        assert_eq!(record.render(), "name      web-01\nmax jobs  4\n");
    }

    #[test]
    fn times_are_shown_relative_to_now() {
        let now = humantime::parse_rfc3339("2026-01-10T12:00:00Z").unwrap();
        assert_eq!(relative(Some("2026-01-10T11:59:15.250Z"), now), "44s ago");
        assert_eq!(relative(Some("2026-01-10T11:30:00Z"), now), "30m ago");
        assert_eq!(relative(Some("2026-01-09T12:00:00Z"), now), "1d ago");
        assert_eq!(relative(Some("2026-01-13T12:00:00Z"), now), "in 3d");
        assert_eq!(relative(None, now), "");
        assert_eq!(relative(Some("yesterday"), now), "yesterday");
    }
}
