//! Where `spark outbox send` delivers the outbox: a transport, named by one line of
//! text in the manifest or on the command line. Parsing it here, once, means a bad one
//! is refused when it is applied, not when the first item is sent.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::Error;
use crate::outbox::OutboxKind;

/// A way to deliver outbox items. `smtp`/`smtps` carry mails only, `http`/`https`
/// outputs only; `file:` and `stdout` carry both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `file:DIR`: one file per item, `DIR/ID.eml` (a mail as an RFC 5322 message) or
    /// `DIR/ID.json` (an output with its channel, event and handler).
    File(PathBuf),
    /// `smtp://HOST:PORT` (STARTTLS when the server offers it, or as
    /// `SPARK_SMTP_TLS` says) or `smtps://HOST:PORT` (TLS from the start).
    /// Credentials come from `SPARK_SMTP_USERNAME` and `SPARK_SMTP_PASSWORD`, never
    /// from the command line, where other users could see them.
    Smtp {
        host: String,
        port: u16,
        implicit_tls: bool,
    },
    /// `http://…` or `https://…`: each output's payload POSTed to the URL.
    Http(String),
    /// `stdout`: each item printed, for a look or a pipe.
    Stdout,
}

impl Transport {
    /// Whether this transport can deliver items of `kind`; if not, why.
    pub fn check_carries(&self, kind: OutboxKind) -> Result<(), Error> {
        let why = match (self, kind) {
            (Transport::Smtp { .. }, OutboxKind::Output) => {
                "SMTP carries mails; outputs go to http(s)://, file:DIR or stdout"
            }
            (Transport::Http(_), OutboxKind::Mail) => {
                "HTTP carries outputs; mails go to smtp(s)://, file:DIR or stdout"
            }
            _ => return Ok(()),
        };
        Err(Error::InvalidTransport {
            transport: self.to_string(),
            why: why.to_owned(),
        })
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::File(dir) => write!(f, "file:{}", dir.display()),
            Transport::Smtp {
                host,
                port,
                implicit_tls,
            } => {
                let scheme = if *implicit_tls { "smtps" } else { "smtp" };
                write!(f, "{scheme}://{host}:{port}")
            }
            Transport::Http(url) => f.write_str(url),
            Transport::Stdout => f.write_str("stdout"),
        }
    }
}

impl FromStr for Transport {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = |why: String| Error::InvalidTransport {
            transport: text.to_owned(),
            why,
        };
        if text == "stdout" {
            Ok(Transport::Stdout)
        } else if let Some(dir) = text.strip_prefix("file:") {
            if dir.is_empty() {
                return Err(invalid("name a directory: file:DIR".to_owned()));
            }
            Ok(Transport::File(PathBuf::from(dir)))
        } else if text.starts_with("http://") || text.starts_with("https://") {
            parse_http(text).map_err(invalid)
        } else if let Some(rest) = text.strip_prefix("smtp://") {
            parse_smtp(rest, false).map_err(invalid)
        } else if let Some(rest) = text.strip_prefix("smtps://") {
            parse_smtp(rest, true).map_err(invalid)
        } else {
            Err(invalid(
                "use file:DIR, stdout, smtp://HOST:PORT or smtps://HOST:PORT (mails), \
                 http:// or https:// (outputs)"
                    .to_owned(),
            ))
        }
    }
}

/// An `http://` or `https://` URL, parsed as the HTTP client will, so that a bad one is
/// refused when it is applied, not when the first output goes.
fn parse_http(url: &str) -> Result<Transport, String> {
    let uri: ureq::http::Uri = url.parse().map_err(|error| format!("not a URL: {error}"))?;
    let authority = uri.authority().map_or("", |authority| authority.as_str());
    if authority.contains('@') {
        // The settings are listed and logged; a secret in the path or query, as many
        // webhooks use, is the receiver's choice to make.
        return Err(
            "credentials do not go in the address; use a secret path or query \
                    if the receiver takes one"
                .to_owned(),
        );
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("the host is missing".to_owned());
    }
    // The URI type takes any text after the host's `:`, and has no port then.
    let after_host = authority
        .rsplit_once(']')
        .map_or(authority, |(_, rest)| rest);
    if after_host.contains(':') && uri.port().is_none() {
        return Err("the port is not a number".to_owned());
    }
    Ok(Transport::Http(url.to_owned()))
}

/// `HOST:PORT`, after `smtp://` or `smtps://` (`implicit_tls`).
fn parse_smtp(rest: &str, implicit_tls: bool) -> Result<Transport, String> {
    if rest.contains('@') {
        return Err(
            "credentials do not go on the command line; set SPARK_SMTP_USERNAME \
                    and SPARK_SMTP_PASSWORD"
                .to_owned(),
        );
    }
    let (host, port) = rest
        .trim_end_matches('/')
        .rsplit_once(':')
        .ok_or("give the port: smtp://HOST:PORT")?;
    let port = port.parse().map_err(|_| "the port is not a number")?;
    if host.is_empty() {
        return Err("the host is missing".to_owned());
    }
    Ok(Transport::Smtp {
        host: host.to_owned(),
        port,
        implicit_tls,
    })
}

/// The directory of a `file:` transport, created if need be.
pub(crate) fn file_dir(dir: &Path) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        what: "cannot create the transport's directory",
        path: dir.to_owned(),
        error: source,
    })?;
    Ok(dir.to_owned())
}

/// What the `file:` transport does with one item: writes `contents` to `DIR/NAME`
/// through a hidden partial file renamed into place, so that a program watching the
/// directory never reads half an item.
pub(crate) fn write_file(dir: &Path, name: &str, contents: &[u8]) -> Result<(), String> {
    let path = dir.join(name);
    let partial = dir.join(format!(".{name}.partial"));
    std::fs::write(&partial, contents)
        .and_then(|()| std::fs::rename(&partial, &path))
        .map_err(|error| format!("cannot write `{}`: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_parse_and_refuse_clearly() {
        assert_eq!("stdout".parse::<Transport>().unwrap(), Transport::Stdout);
        assert_eq!(
            "file:out/mails".parse::<Transport>().unwrap(),
            Transport::File("out/mails".into())
        );
        assert_eq!(
            "smtp://localhost:2525".parse::<Transport>().unwrap(),
            Transport::Smtp {
                host: "localhost".to_owned(),
                port: 2525,
                implicit_tls: false
            }
        );
        assert!(matches!(
            "smtps://mail.example.com:465".parse::<Transport>().unwrap(),
            Transport::Smtp {
                implicit_tls: true,
                ..
            }
        ));
        for url in [
            "http://127.0.0.1:8080/hooks/seen",
            "https://hooks.example.com/T0/B1?token=x@y",
            "http://[::1]:8080/hook",
        ] {
            assert_eq!(
                url.parse::<Transport>().unwrap(),
                Transport::Http(url.to_owned())
            );
        }
        for (text, why) in [
            (
                "smtp://user:secret@host:25",
                "credentials do not go on the command line",
            ),
            ("https://user:secret@host/hook", "credentials do not go in"),
            ("http:///hook", "not a URL"),
            ("http://:80/hook", "the host is missing"),
            ("http://host:port/hook", "the port is not a number"),
            ("https://bad host/hook", "not a URL"),
            ("smtp://host", "give the port"),
            ("smtp://host:port", "not a number"),
            ("file:", "name a directory"),
            ("carrier-pigeon", "use file:DIR"),
        ] {
            let error = text.parse::<Transport>().unwrap_err().to_string();
            assert!(error.contains(why), "{text}: {error}");
        }
    }

    #[test]
    fn each_transport_says_what_it_carries() {
        let smtp: Transport = "smtp://localhost:25".parse().unwrap();
        let http: Transport = "http://localhost/hook".parse().unwrap();
        assert!(smtp.check_carries(OutboxKind::Mail).is_ok());
        assert!(http.check_carries(OutboxKind::Output).is_ok());
        let error = smtp.check_carries(OutboxKind::Output).unwrap_err();
        assert!(error.to_string().contains("SMTP carries mails"), "{error}");
        let error = http.check_carries(OutboxKind::Mail).unwrap_err();
        assert!(
            error.to_string().contains("HTTP carries outputs"),
            "{error}"
        );
        for both in [Transport::Stdout, Transport::File("out".into())] {
            assert!(both.check_carries(OutboxKind::Mail).is_ok());
            assert!(both.check_carries(OutboxKind::Output).is_ok());
        }
    }

    #[test]
    fn a_transport_prints_as_it_is_written() {
        for text in [
            "stdout",
            "file:out/mails",
            "smtp://localhost:2525",
            "smtps://mail.example.com:465",
            "https://hooks.example.com/x",
        ] {
            assert_eq!(text.parse::<Transport>().unwrap().to_string(), text);
        }
    }
}
