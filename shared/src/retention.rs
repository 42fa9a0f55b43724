//! How long events and attempts are kept (`HOOKLINE_RETENTION`): the TTL written on each
//! event and attempt, the embedded sweeper's cut-off, and the horizon no window may reach
//! before.

use std::time::Duration;

use time::OffsetDateTime;

use crate::config::{parse_duration_text, Env, SettingError};

/// The shortest retention a deployment may set: one hour.
pub const MIN: Duration = Duration::from_secs(60 * 60);
/// The longest retention a deployment may set: 400 days.
pub const MAX: Duration = Duration::from_secs(400 * 24 * 60 * 60);
/// Retention when `HOOKLINE_RETENTION` is not set: 30 days.
pub const DEFAULT: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// The variable that sets it.
pub const VARIABLE: &str = "HOOKLINE_RETENTION";

/// How long events and attempts are kept, between [`MIN`] and [`MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention(Duration);

impl Default for Retention {
    fn default() -> Self {
        Self(DEFAULT)
    }
}

impl Retention {
    /// `kept`, if it lies between [`MIN`] and [`MAX`].
    pub fn new(kept: Duration) -> Result<Self, String> {
        if kept < MIN || kept > MAX {
            return Err(format!(
                "{} is not a retention from 1 hour to 400 days",
                human(kept)
            ));
        }
        Ok(Self(kept))
    }

    /// Parses a duration such as `30d`, `36h` or `90m`, then checks its range.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::new(parse_duration_text(text)?)
    }

    /// `HOOKLINE_RETENTION`, [`DEFAULT`] when unset.
    pub fn from_env(env: &Env) -> Result<Self, SettingError> {
        env.parsed(VARIABLE, Self::default(), Self::parse)
    }

    /// How long rows are kept.
    pub fn duration(self) -> Duration {
        self.0
    }

    /// When a row written at `at` expires.
    pub fn expiry(self, at: OffsetDateTime) -> OffsetDateTime {
        at + self.0
    }

    /// The oldest instant still kept at `now`: windows may not start before it.
    pub fn horizon(self, now: OffsetDateTime) -> OffsetDateTime {
        now - self.0
    }

    /// The retention in words ("30 days", "36 hours", "90 minutes").
    pub fn describe(self) -> String {
        human(self.0)
    }
}

/// A duration in the largest whole unit that states it exactly.
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if secs > 0 && secs.is_multiple_of(86_400) {
        (secs / 86_400, "day")
    } else if secs > 0 && secs.is_multiple_of(3_600) {
        (secs / 3_600, "hour")
    } else if secs > 0 && secs.is_multiple_of(60) {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_is_one_hour_to_four_hundred_days() {
        assert_eq!(Retention::parse("1h").map(Retention::duration), Ok(MIN));
        assert_eq!(Retention::parse("400d").map(Retention::duration), Ok(MAX));
        assert_eq!(
            Retention::parse("59m"),
            Err("59 minutes is not a retention from 1 hour to 400 days".into())
        );
        assert_eq!(
            Retention::parse("401d"),
            Err("401 days is not a retention from 1 hour to 400 days".into())
        );
        assert!(Retention::parse("soon").is_err());
        assert_eq!(Retention::default().describe(), "30 days");
        assert_eq!(
            Retention::parse("36h").map(Retention::describe),
            Ok("36 hours".into())
        );
    }

    #[test]
    fn the_horizon_is_the_retention_before_now() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
        let r = Retention::parse("2d").expect("valid");
        assert_eq!(r.horizon(now), now - time::Duration::days(2));
        assert_eq!(r.expiry(now), now + time::Duration::days(2));
    }

    #[test]
    fn unset_is_the_default_and_a_bad_value_names_the_variable() {
        let env = Env::from_pairs([("X", "1")]);
        assert_eq!(Retention::from_env(&env), Ok(Retention::default()));
        let env = Env::from_pairs([(VARIABLE, "2y")]);
        let e = Retention::from_env(&env).expect_err("refused");
        assert!(e.to_string().contains(VARIABLE), "{e}");
    }
}
