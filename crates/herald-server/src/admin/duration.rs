//! Go's duration syntax (`time.ParseDuration`), which FlowMesh's KV `PUT ...?ttl=` accepts (compat/flowmesh.md
//! §5.5): a sign, then one or more `<number><unit>` pairs, the number possibly fractional, the unit one of `ns`,
//! `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`; `0` alone needs no unit.

const NANOS: [(&str, u64); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// The duration in nanoseconds, or `None` where Go's parser returns an error (including overflow).
pub fn parse_nanos(s: &str) -> Option<i64> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let whole: u64 = if int_len == 0 { 0 } else { rest[..int_len].parse().ok()? };
        rest = &rest[int_len..];
        let mut frac_digits = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let n = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            frac_digits = &after_dot[..n];
            rest = &after_dot[n..];
        }
        if int_len == 0 && frac_digits.is_empty() {
            return None;
        }
        let unit_len = rest.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = NANOS.iter().find(|(name, _)| *name == &rest[..unit_len])?.1;
        rest = &rest[unit_len..];
        let mut v = whole.checked_mul(unit)?;
        if !frac_digits.is_empty() {
            // Go keeps the fraction as an integer and a scale and drops digits beyond int64's precision; a float
            // gives the same whole nanoseconds for any fraction a person writes.
            let frac: f64 = format!("0.{frac_digits}").parse().ok()?;
            v = v.checked_add((frac * unit as f64) as u64)?;
        }
        total = total.checked_add(v)?;
    }
    let total = i64::try_from(total).ok()?;
    Some(if negative { -total } else { total })
}

/// Whole seconds, truncated toward zero as Go's `int64(d.Seconds())` does (`500ms` is 0).
pub fn parse_seconds(s: &str) -> Option<i64> {
    parse_nanos(s).map(|ns| ns / 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_examples() {
        assert_eq!(parse_seconds("90s"), Some(90));
        assert_eq!(parse_seconds("15m"), Some(900));
        assert_eq!(parse_seconds("1h30m"), Some(5400));
        assert_eq!(parse_seconds("1.5h"), Some(5400));
        assert_eq!(parse_seconds("500ms"), Some(0));
        assert_eq!(parse_seconds("1500ms"), Some(1));
        assert_eq!(parse_seconds("-5s"), Some(-5));
        assert_eq!(parse_seconds("+2s"), Some(2));
        assert_eq!(parse_seconds("0"), Some(0));
        assert_eq!(parse_seconds("1.s"), Some(1));
        assert_eq!(parse_seconds(".5m"), Some(30));
        assert_eq!(parse_nanos("2h45m30.5s"), Some(9_930_500_000_000));
        assert_eq!(parse_nanos("3\u{b5}s"), Some(3_000));
        assert_eq!(parse_nanos("1ns1us"), Some(1_001));
    }

    #[test]
    fn go_errors() {
        for bad in ["", "-", "5", "s", ".s", "1x", "1s5", "1 s", "9999999999999h", "--1s"] {
            assert_eq!(parse_nanos(bad), None, "{bad:?}");
        }
    }
}
