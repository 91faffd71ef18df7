use jiff::{Timestamp, civil::Date, tz::TimeZone};

/// What a call is told about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    tenant: String,
    now_ms: i64,
    attempt: u32,
    model: Option<String>,
}

impl Invocation {
    /// An invocation for `tenant` at `now`, first attempt: what tests of your own
    /// functions pass them.
    pub fn new(tenant: impl Into<String>, now: Timestamp) -> Self {
        Self {
            tenant: tenant.into(),
            now_ms: now.as_millisecond(),
            attempt: 1,
            model: None,
        }
    }

    /// The same invocation, as attempt `attempt` (1 is the first).
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// The same invocation, for a record of `model`.
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// The tenant whose data this call serves.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The logical time of the run, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// The logical time of the run: the operator's `--now`, or the time the run started.
    /// Use it instead of a clock, so a run can be replayed.
    pub fn now(&self) -> Timestamp {
        // The host only passes times it parsed or read with jiff; anything else is a
        // host bug, so the epoch is a visible rather than a hidden fallback.
        Timestamp::from_millisecond(self.now_ms).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// The calendar date of [`now`](Self::now) in UTC.
    ///
    /// ```
    /// # use spark_guest::Invocation;
    /// let inv = Invocation::new("acme", "2024-05-01T23:30:00Z".parse().unwrap());
    /// assert_eq!(inv.today().to_string(), "2024-05-01");
    /// ```
    pub fn today(&self) -> Date {
        self.now().to_zoned_datetime(TimeZone::UTC).date()
    }

    /// 1 on the first delivery, 2 on the first retry, and so on.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The model of the record, in a source; `None` in a handler.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    #[doc(hidden)]
    pub fn __from_host(tenant: String, now_ms: i64, attempt: u32, model: Option<String>) -> Self {
        Self {
            tenant,
            now_ms,
            attempt,
            model,
        }
    }
}
