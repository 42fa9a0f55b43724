//! Times as they travel: Unix milliseconds (how the stores keep them, SQLite columns and
//! DynamoDB numbers, and how a held rate-limit slot travels in a delivery message) and
//! RFC 3339 text (what the APIs show).

use time::OffsetDateTime;

/// `t` as Unix milliseconds (saturating far outside any stored time).
pub fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Unix milliseconds back to a time; `None` out of range.
pub fn from_unix_ms(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// `t` as RFC 3339 text (`2026-11-26T12:34:56Z`), as the APIs and operational events show it.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
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
