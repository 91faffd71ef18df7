//! `multipart/form-data` (RFC 7578) as a browser sends a form with a file in it: the
//! console's module upload is the one form that needs it.
//!
//! Parsed here, from the body read whole, rather than with axum's `multipart` feature
//! (multer), for three reasons. The component has to be whole in memory anyway, to be
//! hashed and compiled, so a streaming parser would buy nothing. The body is read by
//! the same `read_body` as the API's upload: the same limit, and a body announced too
//! large refused before any of it is read (axum's `Multipart` brings a limit of its
//! own, `DefaultBodyLimit`, to be kept in step). And the form is ours, a few text
//! fields and one file: what browsers send of it takes a page to parse strictly, where
//! multer would bring new crates (encoding_rs, spin, mime...) for every build.

use std::collections::BTreeMap;

use axum::body::Bytes;
use memchr::memmem;

/// A file of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Its name on the sender's disk, as the browser gives it (only to be shown).
    pub name: String,
    pub bytes: Bytes,
}

/// A form's fields: text (the last of a repeated name) and files.
#[derive(Debug, Default)]
pub struct Form {
    pub fields: BTreeMap<String, String>,
    pub files: BTreeMap<String, File>,
}

/// The boundary of a `Content-Type: multipart/form-data; boundary=...`, or `None` for
/// any other type.
pub fn boundary(content_type: &str) -> Option<String> {
    let (kind, parameters) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let (_, value) = parameters
        .split(';')
        .filter_map(|parameter| parameter.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("boundary"))?;
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|value| value.strip_suffix('"'))
        .unwrap_or(value);
    // RFC 2046: 1 to 70 characters.
    (!value.is_empty() && value.len() <= 70).then(|| value.to_owned())
}

/// Parses `body`, whose parts are separated by `boundary`. A body that does not follow
/// the format is refused with what is wrong with it.
pub fn parse(body: &Bytes, boundary: &str) -> Result<Form, String> {
    let dash_boundary = format!("--{boundary}");
    // Every boundary but one at the very start is preceded by a line end, which
    // belongs to it and not to the part before.
    let delimiter = format!("\r\n{dash_boundary}");
    let delimiters = memmem::Finder::new(delimiter.as_bytes());
    let missing = |what: &str| format!("the form's body is cut short: no {what}");
    let mut at = if body.starts_with(dash_boundary.as_bytes()) {
        dash_boundary.len()
    } else {
        // A preamble, which is ignored.
        delimiters.find(body).ok_or_else(|| missing("boundary"))? + delimiter.len()
    };
    let mut form = Form::default();
    loop {
        let rest = &body[at..];
        // `--` after a boundary ends the body; what follows (an epilogue) is ignored.
        if rest.starts_with(b"--") {
            return Ok(form);
        }
        let line_end = memmem::find(rest, b"\r\n").ok_or_else(|| missing("part"))?;
        if !rest[..line_end]
            .iter()
            .all(|byte| matches!(byte, b' ' | b'\t'))
        {
            return Err("the form's body has text after a boundary".to_owned());
        }
        at += line_end + 2;
        let headers_end = memmem::find(&body[at..], b"\r\n\r\n")
            .ok_or_else(|| missing("end of a part's headers"))?;
        let (name, file_name) = disposition(&body[at..at + headers_end])?;
        at += headers_end + 4;
        let content_end = delimiters
            .find(&body[at..])
            .ok_or_else(|| missing("boundary after a part"))?;
        let content = body.slice(at..at + content_end);
        at += content_end + delimiter.len();
        match file_name {
            Some(file_name) => {
                form.files.insert(
                    name,
                    File {
                        name: file_name,
                        bytes: content,
                    },
                );
            }
            None => {
                form.fields
                    .insert(name, String::from_utf8_lossy(&content).into_owned());
            }
        }
    }
}

/// The field name and file name (for a file) of a part's headers.
fn disposition(headers: &[u8]) -> Result<(String, Option<String>), String> {
    let headers = String::from_utf8_lossy(headers);
    let value = headers
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-disposition"))
        .map(|(_, value)| value.trim())
        .ok_or("a part of the form has no Content-Disposition")?;
    let mut parameters = parameters(value).into_iter();
    if !parameters
        .next()
        .is_some_and(|(kind, value)| kind.eq_ignore_ascii_case("form-data") && value.is_none())
    {
        return Err(format!("a part of the form is not form-data: {value}"));
    }
    let mut name = None;
    let mut file_name = None;
    for (key, value) in parameters {
        if key.eq_ignore_ascii_case("name") {
            name = value;
        } else if key.eq_ignore_ascii_case("filename") {
            file_name = Some(value.unwrap_or_default());
        }
    }
    let name = name.ok_or("a part of the form has no name")?;
    Ok((name, file_name))
}

/// `kind; key=value; key="quoted; value"` as (key, value) pairs, the first without a
/// value. Browsers percent-encode a quote in a name (`%22`), so a quoted value ends at
/// the next quote.
fn parameters(text: &str) -> Vec<(String, Option<String>)> {
    let mut pairs = Vec::new();
    let mut rest = text;
    while !rest.trim().is_empty() {
        let end = rest.find([';', '=']).unwrap_or(rest.len());
        let key = rest[..end].trim().to_owned();
        rest = &rest[end..];
        let value = match rest.strip_prefix('=') {
            Some(after) => {
                let after = after.trim_start();
                let (value, left) = match after.strip_prefix('"') {
                    Some(quoted) => match quoted.split_once('"') {
                        Some((value, left)) => (value, left),
                        None => (quoted, ""),
                    },
                    None => {
                        let end = after.find(';').unwrap_or(after.len());
                        (after[..end].trim_end(), &after[end..])
                    }
                };
                rest = left;
                Some(value.to_owned())
            }
            None => None,
        };
        // Up to and past the next separator.
        rest = rest.find(';').map_or("", |end| &rest[end + 1..]);
        pairs.push((key, value));
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body as Chromium sends a form of a text field, a file and an empty file input.
    fn chromium_body(file: &[u8]) -> Bytes {
        let mut body = Vec::new();
        body.extend_from_slice(
            b"------WebKitFormBoundaryAbC\r\n\
              Content-Disposition: form-data; name=\"csrf\"\r\n\r\n\
              tok\r\n\
              ------WebKitFormBoundaryAbC\r\n\
              Content-Disposition: form-data; name=\"handlers\"\r\n\r\n\
              ^a$\r\n^b;c=\"d\"$\r\n\
              ------WebKitFormBoundaryAbC\r\n\
              Content-Disposition: form-data; name=\"file\"; filename=\"x;y%22.wasm\"\r\n\
              Content-Type: application/wasm\r\n\r\n",
        );
        body.extend_from_slice(file);
        body.extend_from_slice(
            b"\r\n------WebKitFormBoundaryAbC\r\n\
              Content-Disposition: form-data; name=\"other\"; filename=\"\"\r\n\
              Content-Type: application/octet-stream\r\n\r\n\
              \r\n------WebKitFormBoundaryAbC--\r\n",
        );
        Bytes::from(body)
    }

    #[test]
    fn a_browsers_form_is_parsed_with_its_file_byte_for_byte() {
        // A file holding what looks like line ends and boundaries, but is not one.
        let file = b"\0asm\r\n\r\n----WebKitFormBoundaryAbC-\r\n--WebKitFormBoundaryAb\r\n";
        let boundary = boundary("multipart/form-data; boundary=----WebKitFormBoundaryAbC")
            .expect("a boundary");
        let form = parse(&chromium_body(file), &boundary).unwrap();
        assert_eq!(form.fields["csrf"], "tok");
        assert_eq!(form.fields["handlers"], "^a$\r\n^b;c=\"d\"$");
        assert_eq!(form.files["file"].name, "x;y%22.wasm");
        assert_eq!(&form.files["file"].bytes[..], file);
        assert_eq!(form.files["other"].name, "");
        assert!(form.files["other"].bytes.is_empty());
    }

    #[test]
    fn boundaries_are_read_from_the_content_type() {
        for (content_type, expected) in [
            ("multipart/form-data; boundary=abc", Some("abc")),
            (
                "Multipart/Form-Data;charset=utf-8; BOUNDARY=\"a b\"",
                Some("a b"),
            ),
            ("multipart/form-data", None),
            ("multipart/form-data; boundary=", None),
            ("application/x-www-form-urlencoded; boundary=abc", None),
            (
                &format!("multipart/form-data; boundary={}", "x".repeat(71)),
                None,
            ),
        ] {
            assert_eq!(
                boundary(content_type).as_deref(),
                expected,
                "{content_type}"
            );
        }
    }

    #[test]
    fn a_preamble_and_an_epilogue_are_ignored() {
        let body = Bytes::from_static(
            b"preamble\r\n--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b--\r\nepilogue",
        );
        let form = parse(&body, "b").unwrap();
        assert_eq!(form.fields["a"], "1");
    }

    #[test]
    fn a_malformed_body_is_refused() {
        for body in [
            &b""[..],
            b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1",
            b"--b\r\nContent-Disposition: form-data; name=a\r\n1\r\n--b--",
            b"--b\r\nContent-Type: text/plain\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: attachment; name=a\r\n\r\n1\r\n--b--",
            b"--b\r\nContent-Disposition: form-data\r\n\r\n1\r\n--b--",
            b"--bogus\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b--",
            b"--b",
        ] {
            assert!(
                parse(&Bytes::from_static(body), "b").is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
