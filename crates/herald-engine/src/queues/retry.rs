//! Retry policies: validation (compat/flowmesh.md §3.4 `SetRetryPolicy`, in the contract's order) and backoff.

use crate::api::RetryPolicy;
use herald_types::{HeraldError, Result};

const ONE_YEAR_SECS: i64 = 31_536_000;

pub(crate) fn validate(p: &RetryPolicy) -> Result<()> {
    let fail = |m: &str| Err(HeraldError::invalid(m));
    if p.max_attempts < 0 {
        return fail("max_attempts cannot be negative");
    }
    if p.initial_backoff_seconds <= 0 {
        return fail("initial_backoff_seconds must be positive");
    }
    if p.max_backoff_seconds <= 0 {
        return fail("max_backoff_seconds must be positive");
    }
    if p.max_backoff_seconds < p.initial_backoff_seconds {
        return fail("max_backoff_seconds must be >= initial_backoff_seconds");
    }
    // NaN is not positive either.
    if p.backoff_multiplier.is_nan() || p.backoff_multiplier <= 0.0 {
        return fail("backoff_multiplier must be positive");
    }
    if !matches!(p.backoff_strategy.as_str(), "fixed" | "linear" | "exponential") {
        return fail("backoff_strategy must be one of: fixed, linear, exponential");
    }
    if p.max_backoff_seconds > ONE_YEAR_SECS {
        return fail("max_backoff_seconds cannot exceed 31536000 (1 year)");
    }
    Ok(())
}

/// The delay before retry number `attempts` (the number of deliveries so far, ≥ 1), in nanoseconds, capped at the
/// policy's maximum. Computed on durations, so fractional seconds can result (multiplier 1.5).
pub(crate) fn backoff_ns(p: &RetryPolicy, attempts: i32) -> i64 {
    let a = f64::from(attempts.max(1));
    let initial = p.initial_backoff_seconds as f64;
    let secs = match p.backoff_strategy.as_str() {
        "fixed" => initial,
        "linear" => initial * a,
        _ => initial * p.backoff_multiplier.powf(a - 1.0),
    };
    let capped = secs.min(p.max_backoff_seconds as f64).max(0.0);
    (capped * 1e9) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max: i32, initial: i64, cap: i64, mult: f64, strategy: &str) -> RetryPolicy {
        RetryPolicy {
            max_attempts: max,
            initial_backoff_seconds: initial,
            max_backoff_seconds: cap,
            backoff_multiplier: mult,
            backoff_strategy: strategy.into(),
        }
    }

    #[test]
    fn backoff_matches_the_contract_examples() {
        let secs = |p: &RetryPolicy, a| backoff_ns(p, a) as f64 / 1e9;
        let exp = policy(0, 1, 60, 2.0, "exponential");
        assert_eq!([1, 2, 3].map(|a| secs(&exp, a)), [1.0, 2.0, 4.0]);
        let capped = policy(0, 1, 3, 2.0, "exponential");
        assert_eq!([1, 2, 3, 4].map(|a| secs(&capped, a)), [1.0, 2.0, 3.0, 3.0]);
        let lin = policy(0, 1, 60, 2.0, "linear");
        assert_eq!([1, 2, 3].map(|a| secs(&lin, a)), [1.0, 2.0, 3.0]);
        let fixed = policy(0, 2, 60, 5.0, "fixed");
        assert_eq!([1, 2, 3].map(|a| secs(&fixed, a)), [2.0, 2.0, 2.0]);
        let frac = policy(0, 1, 60, 1.5, "exponential");
        assert_eq!(secs(&frac, 2), 1.5);
    }

    #[test]
    fn validation_order_and_messages() {
        let msg = |p: RetryPolicy| validate(&p).unwrap_err().message;
        assert_eq!(msg(policy(-1, 1, 1, 1.0, "fixed")), "max_attempts cannot be negative");
        assert_eq!(msg(policy(1, 0, 1, 1.0, "fixed")), "initial_backoff_seconds must be positive");
        assert_eq!(msg(policy(1, 1, 0, 1.0, "fixed")), "max_backoff_seconds must be positive");
        assert_eq!(msg(policy(1, 2, 1, 1.0, "fixed")), "max_backoff_seconds must be >= initial_backoff_seconds");
        assert_eq!(msg(policy(1, 1, 1, 0.0, "fixed")), "backoff_multiplier must be positive");
        assert_eq!(msg(policy(1, 1, 1, f64::NAN, "fixed")), "backoff_multiplier must be positive");
        assert_eq!(msg(policy(1, 1, 1, 1.0, "random")), "backoff_strategy must be one of: fixed, linear, exponential");
        assert_eq!(msg(policy(1, 1, 31_536_001, 1.0, "fixed")), "max_backoff_seconds cannot exceed 31536000 (1 year)");
        assert!(validate(&RetryPolicy::default()).is_ok());
    }
}
