//! Schedules of the runs time brings: `process-sources` and `generate`, which a server
//! runs by itself when they come due (`[schedule]` in the manifest, or the settings
//! through the API).
//!
//! Two forms, both in UTC: `every DURATION` (`every 30s`, `every 15m`, `every 1h`,
//! `every 2d`; a second to a year) and `daily HH:MM`. A schedule's first run is the first time it names
//! after the server first sees it: a server that starts never runs everything at once,
//! and `daily 03:00` set at noon runs at 03:00.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

const MINUTE_MS: i64 = 60_000;
const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

/// When a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Schedule {
    /// Every `ms` milliseconds after the last run.
    Every { ms: i64 },
    /// Every day at this minute of the day (UTC).
    Daily { minute: i64 },
}

impl Schedule {
    /// When it is next due after a run at `last_ms` (unix ms).
    pub fn next_after(&self, last_ms: i64) -> i64 {
        match *self {
            Schedule::Every { ms } => last_ms.saturating_add(ms),
            Schedule::Daily { minute } => {
                let day = last_ms.div_euclid(DAY_MS) * DAY_MS;
                let today = day + minute * MINUTE_MS;
                if today > last_ms {
                    today
                } else {
                    today + DAY_MS
                }
            }
        }
    }
}

impl FromStr for Schedule {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = |why: &str| {
            Error::InvalidSchedule(format!(
                "`{text}`: {why} (use `every 15m`, `every 1h`, `every 1d` or `daily 03:00`, UTC)"
            ))
        };
        let mut words = text.split_whitespace();
        let (Some(kind), Some(value), None) = (words.next(), words.next(), words.next()) else {
            return Err(invalid("it is not two words"));
        };
        match kind {
            "every" => {
                let split = value
                    .find(|c: char| !c.is_ascii_digit())
                    .ok_or_else(|| invalid("the duration has no unit"))?;
                let (number, unit) = value.split_at(split);
                let number: i64 = number
                    .parse()
                    .map_err(|_| invalid("the duration is not a number"))?;
                let unit_ms = match unit {
                    "s" => 1_000,
                    "m" => MINUTE_MS,
                    "h" => 60 * MINUTE_MS,
                    "d" => DAY_MS,
                    _ => return Err(invalid("the unit is not s, m, h or d")),
                };
                let ms = number
                    .checked_mul(unit_ms)
                    .filter(|ms| (1_000..=366 * DAY_MS).contains(ms))
                    .ok_or_else(|| invalid("the duration is not between a second and a year"))?;
                Ok(Schedule::Every { ms })
            }
            "daily" => {
                let (hours, minutes) = value
                    .split_once(':')
                    .ok_or_else(|| invalid("the time is not HH:MM"))?;
                let hours: i64 = hours
                    .parse()
                    .map_err(|_| invalid("the hour is not a number"))?;
                let minutes: i64 = minutes
                    .parse()
                    .map_err(|_| invalid("the minute is not a number"))?;
                if !(0..24).contains(&hours) || !(0..60).contains(&minutes) || value.len() != 5 {
                    return Err(invalid("the time is not HH:MM"));
                }
                Ok(Schedule::Daily {
                    minute: hours * 60 + minutes,
                })
            }
            _ => Err(invalid("it starts with neither `every` nor `daily`")),
        }
    }
}

impl TryFrom<String> for Schedule {
    type Error = Error;

    fn try_from(text: String) -> Result<Self, Error> {
        text.parse()
    }
}

impl From<Schedule> for String {
    fn from(schedule: Schedule) -> String {
        schedule.to_string()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Schedule::Every { ms } => {
                let (number, unit) = [(DAY_MS, "d"), (60 * MINUTE_MS, "h"), (MINUTE_MS, "m")]
                    .into_iter()
                    .find(|(unit_ms, _)| ms % unit_ms == 0)
                    .map_or((ms / 1_000, "s"), |(unit_ms, unit)| (ms / unit_ms, unit));
                write!(f, "every {number}{unit}")
            }
            Schedule::Daily { minute } => write!(f, "daily {:02}:{:02}", minute / 60, minute % 60),
        }
    }
}

/// A job a schedule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ScheduledJob {
    ProcessSources,
    Generate,
}

impl ScheduledJob {
    /// Its name, as in the manifest and the logs.
    pub fn name(self) -> &'static str {
        match self {
            ScheduledJob::ProcessSources => "process-sources",
            ScheduledJob::Generate => "generate",
        }
    }
}

/// A tenant's schedules: `[schedule]` in the manifest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Schedules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_sources: Option<Schedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<Schedule>,
}

impl Schedules {
    pub fn is_empty(&self) -> bool {
        self.process_sources.is_none() && self.generate.is_none()
    }

    /// Each job that has a schedule, with it.
    pub fn jobs(&self) -> impl Iterator<Item = (ScheduledJob, Schedule)> {
        [
            (ScheduledJob::ProcessSources, self.process_sources),
            (ScheduledJob::Generate, self.generate),
        ]
        .into_iter()
        .filter_map(|(job, schedule)| Some((job, schedule?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_print_and_come_due() {
        let hourly: Schedule = "every 1h".parse().unwrap();
        assert_eq!(hourly, Schedule::Every { ms: 3_600_000 });
        assert_eq!(hourly.to_string(), "every 1h");
        assert_eq!(
            "every 90s".parse::<Schedule>().unwrap().to_string(),
            "every 90s"
        );
        assert_eq!(hourly.next_after(1_000), 3_601_000);
        let nightly: Schedule = "daily 03:00".parse().unwrap();
        assert_eq!(nightly.to_string(), "daily 03:00");
        // 2024-05-10T12:00Z: next is 2024-05-11T03:00Z; at 02:00 it is the same day.
        let noon = 1_715_342_400_000;
        assert_eq!(nightly.next_after(noon), noon + 15 * 3_600_000);
        assert_eq!(
            nightly.next_after(noon - 10 * 3_600_000),
            noon - 9 * 3_600_000
        );
        // Exactly at 03:00, the next is the day after.
        assert_eq!(
            nightly.next_after(noon - 9 * 3_600_000),
            noon + 15 * 3_600_000
        );
        for bad in [
            "",
            "every",
            "every 1",
            "every 0s",
            "every 1w",
            "every -1h",
            "daily 3:00",
            "daily 24:00",
            "daily 03:60",
            "hourly",
            "every 1h now",
            "every 9999999999d",
        ] {
            assert!(
                matches!(bad.parse::<Schedule>(), Err(Error::InvalidSchedule(_))),
                "{bad:?} must be refused"
            );
        }
    }
}
