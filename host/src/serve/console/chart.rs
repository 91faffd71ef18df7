//! Small charts drawn on the server as SVG: nothing for a browser to run.

use std::fmt::Write as _;

/// A bar chart of `bars` (label, value), labelled for screen readers by `title`.
/// Labels are dates (digits and dashes), escaped all the same.
pub fn bars(title: &str, bars: &[(String, u64)]) -> String {
    const WIDTH: usize = 560;
    const HEIGHT: usize = 150;
    const AXIS: usize = 20;
    let max = bars
        .iter()
        .map(|(_, value)| *value)
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = WIDTH / bars.len().max(1);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}"><title>{}</title>"#,
        escape(title),
        escape(title)
    );
    for (index, (label, value)) in bars.iter().enumerate() {
        let height = (*value as usize * (HEIGHT - AXIS - 14)) / max as usize;
        let x = index * slot + 2;
        let y = HEIGHT - AXIS - height;
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="{y}" width="{}" height="{height}"><title>{}: {value}</title></rect>"#,
            slot.saturating_sub(4),
            escape(label)
        );
        if *value > 0 {
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" class="value">{value}</text>"#,
                x + slot / 2 - 2,
                y.saturating_sub(3)
            );
        }
        if index % 2 == 0 {
            let short = label.get(5..).unwrap_or(label);
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" class="label">{}</text>"#,
                x + slot / 2 - 2,
                HEIGHT - 5,
                escape(short)
            );
        }
    }
    svg.push_str("</svg>");
    svg
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
    fn bars_are_scaled_and_labels_escaped() {
        let svg = bars(
            "a <b>",
            &[("2024-05-01".to_owned(), 2), ("<x>".to_owned(), 4)],
        );
        assert!(svg.contains("a &lt;b&gt;"));
        assert!(svg.contains("&lt;x&gt;: 4"));
        assert!(!svg.contains("<x>"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
