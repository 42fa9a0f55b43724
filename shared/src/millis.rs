//! Times as Unix milliseconds: how the stores keep them (SQLite columns, DynamoDB numbers)
//! and how a held rate-limit slot travels in a delivery message.

use time::OffsetDateTime;

/// `t` as Unix milliseconds (saturating far outside any stored time).
pub fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Unix milliseconds back to a time; `None` out of range.
pub fn from_unix_ms(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_round_trip() {
        let t = time::macros::datetime!(2026-11-26 12:34:56.789 UTC);
        assert_eq!(unix_ms(t), 1_795_696_496_789);
        assert_eq!(from_unix_ms(unix_ms(t)), Some(t));
        assert_eq!(from_unix_ms(i64::MAX), None);
    }
}
