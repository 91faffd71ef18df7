//! Text from modules and records on its way to a terminal or a log.
//!
//! A record's id, a module's error or log may hold anything, control characters
//! included: printed as they are, an escape sequence could rewrite the operator's
//! terminal, and a line break followed by `error: ...` would forge a line of Spark's
//! own. So everything that prints such text prints it through [`printable`].

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` safe to print: control characters (but tab and line break) written as
/// `\u{..}` escapes, and every line after the first indented by two spaces, so that
/// no line of it can pass for one of Spark's own.
pub fn printable(text: &str) -> Cow<'_, str> {
    let plain = |c: char| !c.is_control() || c == '\t';
    if text.chars().all(plain) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\n  "),
            c if plain(c) => out.push(c),
            c => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_lines_cannot_be_forged() {
        assert!(matches!(
            printable("plain text\twith a tab"),
            Cow::Borrowed(_)
        ));
        assert_eq!(printable("red\u{1b}[31m"), "red\\u{1b}[31m");
        assert_eq!(printable("a\r\nerror: forged"), "a\\u{d}\n  error: forged");
        assert_eq!(
            printable("bell\u{7} del\u{7f} c1\u{9b}"),
            "bell\\u{7} del\\u{7f} c1\\u{9b}"
        );
        assert_eq!(printable("grüße ✓"), "grüße ✓");
    }
}
