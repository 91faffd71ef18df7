//! Printing: aligned tables for people, JSON Lines for scripts.
//!
//! What is listed is printed from its JSON shape (`views.rs`), whether it was read from
//! the data dir or from a server's API, so that both print alike.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::Value;

/// Rows printed as aligned columns under a header.
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Self {
        Self {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Prints the table, or `empty` when there are no rows.
    pub fn print(&self, empty: &str) -> io::Result<()> {
        let mut out = io::stdout().lock();
        if self.rows.is_empty() {
            return writeln!(out, "{empty}");
        }
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  "));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// A list printed an item at a time: one JSON object per line with `--json`, else a
/// table (printed at the end, its columns aligned).
pub struct Listing {
    json: bool,
    table: Table,
}

impl Listing {
    pub fn new(json: bool, header: &[&'static str]) -> Self {
        Self {
            json,
            table: Table::new(header),
        }
    }

    /// Prints `item`, or keeps its table row, made by `row`.
    pub fn item(
        &mut self,
        item: &Value,
        row: impl FnOnce(&Value) -> Vec<String>,
    ) -> io::Result<()> {
        if self.json {
            json_line(item)
        } else {
            self.table.row(row(item));
            Ok(())
        }
    }

    /// Prints the table, or `empty` when it has no rows; nothing more with `--json`.
    pub fn finish(self, empty: &str) -> io::Result<()> {
        if self.json {
            Ok(())
        } else {
            self.table.print(empty)
        }
    }
}

/// The field `name` of a JSON object as text: a string as it is, nothing for null or
/// a missing field, other values as JSON.
pub fn text(value: &Value, name: &str) -> String {
    match &value[name] {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The field `name` of a JSON object, a list of strings, joined with `separator`.
pub fn texts(value: &Value, name: &str, separator: &str) -> String {
    value[name]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map_or_else(|| item.to_string(), str::to_owned)
                })
                .collect::<Vec<_>>()
                .join(separator)
        })
        .unwrap_or_default()
}

/// Prints one JSON object on its own line.
pub fn json_line(value: &impl Serialize) -> io::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)
}

/// Prints a line to stdout, passing write errors (a closed pipe) up.
pub fn line(text: impl std::fmt::Display) -> io::Result<()> {
    writeln!(io::stdout().lock(), "{text}")
}

/// Text cut to `max` characters with an ellipsis, on one line, for table cells.
pub fn cell(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        flat
    } else {
        let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_cut_and_flattened() {
        assert_eq!(cell("short", 10), "short");
        assert_eq!(cell("a\nb", 10), "a b");
        assert_eq!(cell("abcdefghijk", 5), "abcd…");
    }
}
