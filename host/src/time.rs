//! Logical time: what `--now` accepts, how times are shown, and how coarsely a module
//! reads them.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

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

/// How coarsely a module reads the run's time: its calls see `now-ms` rounded down to
/// the start of the UTC minute, hour or day, or exact.
///
/// A coarse clock is a promise the host can keep by itself: a source whose calls see
/// the same record at the same time returns the same events, so a record ingested
/// again unchanged within one period of its source's clock skips the call (see
/// `Pipeline::run_sources`). The challenges source reads only the date, so `day`
/// changes nothing it computes and saves every call after a record's first of the day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    #[default]
    Exact,
    Minute,
    Hour,
    Day,
}

impl Clock {
    const ALL: [Clock; 4] = [Clock::Exact, Clock::Minute, Clock::Hour, Clock::Day];

    /// Its name in manifests, on the command line and in `--json` (as serde spells it).
    pub fn name(self) -> &'static str {
        match self {
            Clock::Exact => "exact",
            Clock::Minute => "minute",
            Clock::Hour => "hour",
            Clock::Day => "day",
        }
    }

    /// What the module sees of `now_ms`.
    pub fn read(self, now_ms: i64) -> i64 {
        const MINUTE: i64 = 60_000;
        let period = match self {
            Clock::Exact => return now_ms,
            Clock::Minute => MINUTE,
            Clock::Hour => 60 * MINUTE,
            Clock::Day => 24 * 60 * MINUTE,
        };
        now_ms - now_ms.rem_euclid(period)
    }

    pub fn is_exact(self) -> bool {
        self == Clock::Exact
    }
}

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Clock {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        Clock::ALL
            .into_iter()
            .find(|clock| clock.name() == text)
            .ok_or_else(|| Error::InvalidClock(text.to_owned()))
    }
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
    fn clocks_round_down_to_the_start_of_their_period() {
        let now = parse_time("2024-05-01T12:34:56.789Z").unwrap();
        let read = |clock: Clock| format_time(clock.read(now));
        assert_eq!(read(Clock::Exact), "2024-05-01T12:34:56.789Z");
        assert_eq!(read(Clock::Minute), "2024-05-01T12:34:00Z");
        assert_eq!(read(Clock::Hour), "2024-05-01T12:00:00Z");
        assert_eq!(read(Clock::Day), "2024-05-01T00:00:00Z");
        // Before 1970 too: down, not towards zero.
        let before = parse_time("1969-12-31T23:00:00Z").unwrap();
        assert_eq!(format_time(Clock::Day.read(before)), "1969-12-31T00:00:00Z");
    }

    #[test]
    fn clocks_are_named() {
        for clock in Clock::ALL {
            assert_eq!(clock.name().parse::<Clock>().unwrap(), clock);
            assert_eq!(serde_json::to_value(clock).unwrap(), clock.name());
        }
        assert!(matches!(
            "daily".parse::<Clock>(),
            Err(Error::InvalidClock(_))
        ));
    }

    #[test]
    fn formatting_round_trips() {
        let ms = parse_time("2024-05-01T12:34:56Z").unwrap();
        assert_eq!(format_time(ms), "2024-05-01T12:34:56Z");
    }
}
