//! Logical time: what `--now` accepts and how times are shown.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

use crate::Error;

/// Parses `--now`: a date (`2024-05-01`, midnight UTC), a civil date and time
/// (`2024-05-01T12:00:00`, UTC), or an RFC 3339 timestamp with an offset
/// (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00+02:00`). Returns unix milliseconds.
pub fn parse_time(text: &str) -> Result<i64, Error> {
    let text = text.trim();
    if let Ok(timestamp) = text.parse::<Timestamp>() {
        return Ok(timestamp.as_millisecond());
    }
    if let Ok(datetime) = text.parse::<DateTime>()
        && let Ok(zoned) = datetime.to_zoned_datetime(TimeZone::UTC)
    {
        return Ok(zoned.timestamp().as_millisecond());
    }
    if let Ok(date) = text.parse::<Date>()
        && let Ok(zoned) = date.to_zoned_datetime(TimeZone::UTC)
    {
        return Ok(zoned.timestamp().as_millisecond());
    }
    Err(Error::InvalidTime(text.to_owned()))
}

/// Unix milliseconds as RFC 3339 in UTC, e.g. `2024-05-01T00:00:00Z`.
pub fn format_time(ms: i64) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(timestamp) => timestamp.to_string(),
        Err(_) => format!("{ms}ms"),
    }
}

/// The wall clock, in unix milliseconds.
pub fn wall_clock_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        let midnight = 1_714_521_600_000; // 2024-05-01T00:00:00Z
        assert_eq!(parse_time("2024-05-01").unwrap(), midnight);
        assert_eq!(parse_time("2024-05-01T00:00:00").unwrap(), midnight);
        assert_eq!(parse_time("2024-05-01T00:00:00Z").unwrap(), midnight);
        assert_eq!(parse_time("2024-05-01T02:00:00+02:00").unwrap(), midnight);
        assert_eq!(parse_time(" 2024-05-01 ").unwrap(), midnight);
    }

    #[test]
    fn refused_forms() {
        for text in [
            "",
            "yesterday",
            "2024-13-01",
            "2024-05-01T25:00:00Z",
            "1714521600",
        ] {
            assert!(
                matches!(parse_time(text), Err(Error::InvalidTime(_))),
                "{text:?} must be refused"
            );
        }
    }

    #[test]
    fn formatting_round_trips() {
        let ms = parse_time("2024-05-01T12:34:56Z").unwrap();
        assert_eq!(format_time(ms), "2024-05-01T12:34:56Z");
    }
}
