use std::fmt;

/// A failure to report to the host.
///
/// Any error type converts into it, so `?` works on parse errors, I/O errors of your own
/// crates and so on; [`Error::msg`] makes one from text. The host shows the message in
/// `spark dead list` (handlers) or in the ingest report (sources).
pub struct Error {
    message: String,
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with this message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
        }
    }
}

// Like anyhow, `Error` does not implement `std::error::Error` itself: that is what lets
// every error type convert into it.
impl<E: std::error::Error> From<E> for Error {
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self { message }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.message, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_keeps_the_chain_of_causes() {
        let parse = "x".parse::<u32>().unwrap_err();
        let error = Error::from(std::io::Error::other(parse));
        assert_eq!(error.to_string(), "invalid digit found in string");
        let error = Error::msg("no owner");
        assert_eq!(format!("{error}"), "no owner");
        assert_eq!(format!("{error:?}"), "\"no owner\"");
    }
}
