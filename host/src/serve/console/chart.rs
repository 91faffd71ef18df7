//! Small charts drawn on the server as SVG: nothing for a browser to run. A chart is a
//! few series of counts per day, drawn as bars, named for screen readers by its title
//! and summary, and given as rows for a table of the same numbers.

use std::fmt::Write as _;

use serde_json::{Value, json};

/// Series a chart draws side by side at most: each has a colour of the style sheet,
/// and a day's bars must stay wide enough to see.
pub const MAX_SERIES: usize = 5;

/// Characters of a series' name its legend shows (the bars' tooltips and the table
/// have all of it).
const LEGEND_CHARS: usize = 16;

/// Counts per day, one series or a few side by side.
pub struct Chart {
    /// What it shows, e.g. "Outbox items per day".
    pub title: String,
    /// The days (`2024-05-01`), oldest first.
    pub days: Vec<String>,
    /// Each series: its name and a count per day (at most [`MAX_SERIES`]).
    pub series: Vec<(String, Vec<u64>)>,
}

impl Chart {
    /// Each series' total, as "7 made, 5 sent" (or "7 in all" for one series).
    pub fn summary(&self) -> String {
        let total = |values: &[u64]| values.iter().sum::<u64>();
        match &self.series[..] {
            [(_, values)] => format!("{} in all", total(values)),
            series => series
                .iter()
                .map(|(name, values)| format!("{} {name}", total(values)))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// The numbers as a table's rows: `{"day", "values": [...]}`, one value per series.
    pub fn rows(&self) -> Vec<Value> {
        self.days
            .iter()
            .enumerate()
            .map(|(day, label)| {
                let values: Vec<u64> = self
                    .series
                    .iter()
                    .map(|(_, values)| values.get(day).copied().unwrap_or(0))
                    .collect();
                json!({ "day": label, "values": values })
            })
            .collect()
    }

    /// The series' names, a table's column headings.
    pub fn columns(&self) -> Vec<String> {
        self.series.iter().map(|(name, _)| name.clone()).collect()
    }

    /// The chart as SVG: an image named by its title and summary (`role="img"`,
    /// `aria-label`, `<title>` and `<desc>`), a bar per series and day with the day and
    /// count as its tooltip, and a legend when there are several series. Everything
    /// that is text is escaped.
    pub fn svg(&self) -> String {
        const WIDTH: usize = 560;
        const HEIGHT: usize = 150;
        const AXIS: usize = 20;
        const TOP: usize = 14;
        let max = self
            .series
            .iter()
            .flat_map(|(_, values)| values.iter().copied())
            .max()
            .unwrap_or(0)
            .max(1);
        let slot = WIDTH / self.days.len().max(1);
        let series = self.series.len().max(1);
        let bar = (slot.saturating_sub(4) / series).max(1);
        let label = format!("{}: {}", self.title, self.summary());
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}"><title>{}</title><desc>{}</desc>"#,
            escape(&label),
            escape(&self.title),
            escape(&self.summary())
        );
        for (index, day) in self.days.iter().enumerate() {
            let x = index * slot + 2;
            for (nth, (name, values)) in self.series.iter().enumerate() {
                let value = values.get(index).copied().unwrap_or(0);
                let height = (value as usize * (HEIGHT - AXIS - TOP)) / max as usize;
                let y = HEIGHT - AXIS - height;
                let _ = write!(
                    svg,
                    r#"<rect class="series-{nth}" x="{}" y="{y}" width="{bar}" height="{height}"><title>{}: {value} {}</title></rect>"#,
                    x + nth * bar,
                    escape(day),
                    escape(name)
                );
                // A count over each bar, where there is room for it: one series.
                if series == 1 && value > 0 {
                    let _ = write!(
                        svg,
                        r#"<text x="{}" y="{}" class="value">{value}</text>"#,
                        x + bar / 2,
                        y.saturating_sub(3)
                    );
                }
            }
            if index % 2 == 0 {
                let short = day.get(5..).unwrap_or(day);
                let _ = write!(
                    svg,
                    r#"<text x="{}" y="{}" class="label">{}</text>"#,
                    x + slot / 2 - 2,
                    HEIGHT - 5,
                    escape(short)
                );
            }
        }
        if self.series.len() > 1 {
            for (nth, (name, _)) in self.series.iter().enumerate() {
                let x = 6 + nth * 110;
                let shown: String = if name.chars().count() > LEGEND_CHARS {
                    name.chars().take(LEGEND_CHARS - 1).chain(['…']).collect()
                } else {
                    name.clone()
                };
                let _ = write!(
                    svg,
                    r#"<rect class="series-{nth}" x="{x}" y="3" width="10" height="10"></rect><text x="{}" y="12" class="legend">{}</text>"#,
                    x + 14,
                    escape(&shown)
                );
            }
        }
        svg.push_str("</svg>");
        svg
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_scaled_and_text_escaped() {
        let chart = Chart {
            title: "a <b>".to_owned(),
            days: vec!["2024-05-01".to_owned(), "<x>".to_owned()],
            series: vec![("made".to_owned(), vec![2, 4])],
        };
        let svg = chart.svg();
        assert!(svg.contains("<title>a &lt;b&gt;</title>"));
        assert!(svg.contains("aria-label=\"a &lt;b&gt;: 6 in all\""));
        assert!(svg.contains("&lt;x&gt;: 4 made"));
        assert!(!svg.contains("<x>"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        // The largest count fills the height between the axis and the top margin.
        assert!(svg.contains(r#"y="14" width="276" height="116""#), "{svg}");
    }

    #[test]
    fn several_series_stand_side_by_side_with_a_legend_and_rows() {
        let chart = Chart {
            title: "Outbox".to_owned(),
            days: vec!["2024-05-01".to_owned(), "2024-05-02".to_owned()],
            series: vec![
                ("made".to_owned(), vec![3, 0]),
                ("sent".to_owned(), vec![1, 2]),
            ],
        };
        assert_eq!(chart.summary(), "3 made, 3 sent");
        assert_eq!(chart.columns(), ["made", "sent"]);
        assert_eq!(
            chart.rows(),
            [
                json!({ "day": "2024-05-01", "values": [3, 1] }),
                json!({ "day": "2024-05-02", "values": [0, 2] }),
            ]
        );
        let svg = chart.svg();
        assert_eq!(svg.matches("class=\"series-1\"").count(), 3, "{svg}");
        assert!(svg.contains("class=\"legend\">sent</text>"));
        assert!(svg.contains("<title>2024-05-02: 2 sent</title>"));
    }

    #[test]
    fn a_long_series_name_is_cut_in_the_legend_only() {
        let name = "challenge_inactivity_2d".to_owned();
        let chart = Chart {
            title: "New events".to_owned(),
            days: vec!["2024-05-01".to_owned()],
            series: vec![(name.clone(), vec![1]), ("b".to_owned(), vec![2])],
        };
        let svg = chart.svg();
        assert!(
            svg.contains("class=\"legend\">challenge_inact…</text>"),
            "{svg}"
        );
        assert!(
            svg.contains("2024-05-01: 1 challenge_inactivity_2d"),
            "{svg}"
        );
        assert_eq!(chart.columns(), [name.as_str(), "b"]);
    }
}
