//! Timestamp text formats the contracts use.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 in UTC with nanoseconds, e.g. `2024-12-19T00:00:00.123456789Z` (resource `created_at`).
pub fn rfc3339_nanos(ns: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// RFC 3339 in UTC with whole seconds, e.g. `2024-12-19T00:00:00Z` (`x-flowmesh-failed-at`).
pub fn rfc3339_seconds(ns: i64) -> String {
    rfc3339_nanos(ns - ns.rem_euclid(1_000_000_000))
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(super::rfc3339_seconds(1_704_067_200_999_000_000), "2024-01-01T00:00:00Z");
        assert_eq!(super::rfc3339_nanos(1_704_067_200_000_000_001), "2024-01-01T00:00:00.000000001Z");
    }
}
