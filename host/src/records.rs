//! Record input: JSON Lines, one object with an `id` per line.

use std::io::BufRead;

use serde::Deserialize;

/// The largest record line read; longer lines are reported and skipped.
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// The longest record id, in bytes: a generator names its events `GROUP_ID`, and a
/// group of the longest (128 bytes), `_` and an id of this length make a key of the
/// longest (256).
pub const MAX_ID_BYTES: usize = 127;

/// A record line, parsed: its id and its trimmed JSON text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ParsedRecord {
    pub id: String,
    pub json: String,
}

/// Parses one line of JSON Lines input. `Ok(None)` for a blank line.
pub(crate) fn parse_record(line: &[u8]) -> Result<Option<ParsedRecord>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "it is not UTF-8".to_owned())?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.len() > MAX_RECORD_BYTES {
        return Err(format!("it is larger than {MAX_RECORD_BYTES} bytes"));
    }
    if !text.starts_with('{') {
        return Err("it is not a JSON object".to_owned());
    }
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<serde_json::Value>,
    }
    let parsed: IdOnly =
        serde_json::from_str(text).map_err(|error| format!("it is not valid JSON: {error}"))?;
    let id = match parsed.id {
        None | Some(serde_json::Value::Null) => return Err("the record has no `id`".to_owned()),
        Some(serde_json::Value::String(id)) => id,
        Some(serde_json::Value::Number(number)) if number.is_i64() || number.is_u64() => {
            number.to_string()
        }
        Some(other) => {
            return Err(format!(
                "`id` must be a string or an integer, not `{other}`"
            ));
        }
    };
    // An integer id and a string of its digits name one record: an id is its text,
    // as a URL or a form field would carry it, so `5001` and `"5001"` are the same.
    if id.is_empty() {
        return Err("`id` is empty".to_owned());
    }
    if id.len() > MAX_ID_BYTES {
        return Err(format!("`id` is longer than {MAX_ID_BYTES} bytes"));
    }
    if id.chars().any(char::is_control) {
        return Err("`id` contains control characters".to_owned());
    }
    Ok(Some(ParsedRecord {
        id,
        json: text.to_owned(),
    }))
}

/// Reads and drops the rest of an overlong line.
pub(crate) fn skip_line(input: &mut dyn BufRead) {
    loop {
        let (done, used) = match input.fill_buf() {
            Ok([]) | Err(_) => return,
            Ok(buffer) => match buffer.iter().position(|&b| b == b'\n') {
                Some(end) => (true, end + 1),
                None => (false, buffer.len()),
            },
        };
        input.consume(used);
        if done {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Result<Option<ParsedRecord>, String> {
        parse_record(line.as_bytes())
    }

    #[test]
    fn records_with_string_or_integer_ids_parse() {
        let record = parsed(r#"{"id": 7, "title": "Run"}"#).unwrap().unwrap();
        assert_eq!(record.id, "7");
        assert_eq!(record.json, r#"{"id": 7, "title": "Run"}"#);
        assert_eq!(parsed(r#" {"id": "c-1"} "#).unwrap().unwrap().id, "c-1");
        assert_eq!(parsed("{\"id\": -3}\r\n").unwrap().unwrap().id, "-3");
        assert_eq!(parsed("   \n"), Ok(None));
        // One record, whether its id is written as a number or as text.
        assert_eq!(
            parsed(r#"{"id": 5001}"#).unwrap().unwrap().id,
            parsed(r#"{"id": "5001"}"#).unwrap().unwrap().id
        );
        let longest = format!(r#"{{"id": "{}"}}"#, "i".repeat(MAX_ID_BYTES));
        assert!(parsed(&longest).is_ok());
    }

    #[test]
    fn bad_lines_say_why() {
        let too_long = format!(r#"{{"id": "{}"}}"#, "i".repeat(MAX_ID_BYTES + 1));
        let cases = [
            ("{\"id\": 1", "not valid JSON"),
            ("[1, 2]", "not a JSON object"),
            ("\"text\"", "not a JSON object"),
            ("{\"title\": \"x\"}", "has no `id`"),
            ("{\"id\": null}", "has no `id`"),
            ("{\"id\": 1.5}", "string or an integer"),
            ("{\"id\": true}", "string or an integer"),
            ("{\"id\": {\"a\": 1}}", "string or an integer"),
            ("{\"id\": \"\"}", "is empty"),
            ("{\"id\": \"a\\u0000b\"}", "control characters"),
            ("{\"id\": 1, \"id\": 2}", "duplicate field"),
            (&too_long, "longer than 127 bytes"),
        ];
        for (line, expected) in cases {
            let error = parsed(line).expect_err(line);
            assert!(error.contains(expected), "{line}: {error}");
        }
        assert_eq!(
            parse_record(b"{\"id\": \xff}"),
            Err("it is not UTF-8".to_owned())
        );
    }
}
