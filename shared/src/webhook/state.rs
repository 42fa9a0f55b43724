//! A webhook's lifecycle state: disabled (by hand, after a sustained run of failures, or on
//! 410 Gone), suspended per App when its owner loses the permission it relied on, and the
//! rule that turns a failure run into a disable ([`DisablePolicy`]). Pure values; the
//! lifecycle service applies them over the ports.

use std::time::Duration;

use time::OffsetDateTime;

use crate::config::{parse_duration, Env, SettingError};

/// Default time a failure run must last before the webhook is disabled (Svix's 5 days).
pub const DEFAULT_DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 60 * 60);
/// Default number of failures a run must hold before the webhook is disabled.
pub const DEFAULT_DISABLE_MIN_FAILURES: u32 = 10;
/// The reason a suspension shows.
pub const PERMISSION_REVOKED: &str = "permission revoked";

/// Why a webhook is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisabledReason {
    /// Someone disabled it (`POST .../disable`, `enabled: false`).
    Manual,
    /// Its deliveries kept failing for longer than the deployment allows.
    Failing,
    /// Its endpoint answered 410 Gone.
    Gone,
}

impl DisabledReason {
    /// `manual`, `failing` or `gone`, as the API shows and stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Failing => "failing",
            Self::Gone => "gone",
        }
    }

    /// Reads a stored reason; records written before reasons were codes said "410 Gone" in
    /// words, and any other text was a hand-made disable.
    pub fn parse_stored(s: &str) -> Self {
        match s {
            "failing" => Self::Failing,
            "gone" => Self::Gone,
            s if s.contains("410") => Self::Gone,
            _ => Self::Manual,
        }
    }
}

/// Why and since when a webhook is disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disabled {
    /// Why.
    pub reason: DisabledReason,
    /// Since when.
    pub at: OffsetDateTime,
    /// The last delivery error, for `failing` and `gone`.
    pub last_error: Option<String>,
}

/// A webhook's current run of failed deliveries: kept by the store beside the webhook,
/// counted atomically, ended by any acknowledged delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRun {
    /// The first failure of the run.
    pub since: OffsetDateTime,
    /// Failures in the run.
    pub failures: u32,
    /// The most recent failure's error.
    pub last_error: Option<String>,
}

/// A webhook receives nothing from `app_id`: its owner lost the permission there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspension {
    /// The App.
    pub app_id: String,
    /// Why ([`PERMISSION_REVOKED`]).
    pub reason: String,
    /// Since when.
    pub since: OffsetDateTime,
}

/// The lifecycle part of a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebhookState {
    /// Set while the webhook is disabled.
    pub disabled: Option<Disabled>,
    /// Its current failure run, where the store read it (a single read, not listings).
    pub failures: Option<FailureRun>,
    /// Apps it receives nothing from.
    pub suspended: Vec<Suspension>,
}

impl WebhookState {
    /// Why it is disabled (`manual`, `failing`, `gone`), if it is.
    pub fn disabled_reason(&self) -> Option<&'static str> {
        self.disabled.as_ref().map(|d| d.reason.as_str())
    }

    /// Since when it is disabled, if it is.
    pub fn disabled_at(&self) -> Option<OffsetDateTime> {
        self.disabled.as_ref().map(|d| d.at)
    }

    /// The delivery error that disabled it, if one did.
    pub fn last_error(&self) -> Option<&str> {
        self.disabled.as_ref().and_then(|d| d.last_error.as_deref())
    }
}

/// When a failure run disables a webhook (`HOOKLINE_DISABLE_AFTER`,
/// `HOOKLINE_DISABLE_MIN_FAILURES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisablePolicy {
    /// The run must be at least this old.
    pub after: Duration,
    /// And hold at least this many failures.
    pub min_failures: u32,
}

impl Default for DisablePolicy {
    fn default() -> Self {
        Self {
            after: DEFAULT_DISABLE_AFTER,
            min_failures: DEFAULT_DISABLE_MIN_FAILURES,
        }
    }
}

impl DisablePolicy {
    /// The policy from the two settings' values, the defaults where absent.
    pub fn from_settings(
        after: Option<&str>,
        min_failures: Option<&str>,
    ) -> Result<Self, SettingError> {
        let mut policy = Self::default();
        if let Some(v) = after {
            policy.after = parse_duration("HOOKLINE_DISABLE_AFTER", v)?;
        }
        if let Some(v) = min_failures {
            policy.min_failures = v.trim().parse().map_err(|_| SettingError {
                name: "HOOKLINE_DISABLE_MIN_FAILURES",
                value: v.to_owned(),
                problem: "expected a whole number".into(),
            })?;
        }
        Ok(policy)
    }

    /// The policy from `HOOKLINE_DISABLE_AFTER` and `HOOKLINE_DISABLE_MIN_FAILURES`.
    pub fn from_env(env: &Env) -> Result<Self, SettingError> {
        Self::from_settings(
            env.get("HOOKLINE_DISABLE_AFTER"),
            env.get("HOOKLINE_DISABLE_MIN_FAILURES"),
        )
    }

    /// True when `run` has lasted long enough, with enough failures, at `now`.
    pub fn should_disable(&self, run: &FailureRun, now: OffsetDateTime) -> bool {
        run.failures >= self.min_failures && now - run.since >= self.after
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_run_disables_only_when_old_enough_and_long_enough() {
        let policy = DisablePolicy {
            after: Duration::from_secs(3),
            min_failures: 3,
        };
        let since = datetime!(2026-11-26 12:00:00 UTC);
        let run = |failures| FailureRun {
            since,
            failures,
            last_error: None,
        };
        assert!(!policy.should_disable(&run(10), since + time::Duration::seconds(2)));
        assert!(!policy.should_disable(&run(2), since + time::Duration::seconds(60)));
        assert!(policy.should_disable(&run(3), since + time::Duration::seconds(3)));
    }

    #[test]
    fn settings_parse_durations_and_counts() {
        let p = DisablePolicy::from_settings(Some("90m"), Some("4")).expect("valid");
        assert_eq!(p.after, Duration::from_secs(90 * 60));
        assert_eq!(p.min_failures, 4);
        assert_eq!(
            DisablePolicy::from_settings(None, None).expect("defaults"),
            DisablePolicy::default()
        );
        assert_eq!(
            DisablePolicy::from_settings(Some("5d"), None)
                .expect("valid")
                .after,
            DEFAULT_DISABLE_AFTER
        );
        let e = DisablePolicy::from_settings(Some("soon"), None).expect_err("bad");
        assert_eq!(e.name, "HOOKLINE_DISABLE_AFTER");
        assert!(DisablePolicy::from_settings(None, Some("-1")).is_err());
    }

    #[test]
    fn stored_reasons_read_back() {
        for r in [
            DisabledReason::Manual,
            DisabledReason::Failing,
            DisabledReason::Gone,
        ] {
            assert_eq!(DisabledReason::parse_stored(r.as_str()), r);
        }
        assert_eq!(
            DisabledReason::parse_stored("the endpoint answered 410 Gone"),
            DisabledReason::Gone
        );
    }
}
