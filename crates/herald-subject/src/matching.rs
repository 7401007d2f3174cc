//! One pattern against one subject (compat/nats-fluxlib.md §1.9).
//!
//! [`matches`] is the definition the trie is held to: the trie's randomized test compares every lookup with a scan
//! of `matches` over all live entries, and the trie calls it to decide which cached subjects a changed pattern
//! affects. It walks both strings token by token without allocating.
//!
//! Behaviour on invalid patterns is fixed rather than left undefined, so that the trie (which shares the rule) and
//! this function never disagree: `>` is a wildcard only as the last token, and anywhere else it is compared
//! literally; empty tokens are literal empty tokens.
//!
//! [`matches`]: fn@crate::matches

use crate::split_token;

/// Whether the published `subject` matches the subscription `pattern`.
///
/// Token by token: a literal token matches the identical bytes, `*` matches any one token, and a final `>` matches
/// one or more remaining tokens. The subject's tokens are always literal: a published `*` is just the byte `*`.
///
/// ```
/// use herald_subject::matches;
///
/// assert!(matches(b"foo.>", b"foo.a.b"));
/// assert!(!matches(b"foo.>", b"foo"));
/// assert!(matches(b"foo.*", b"foo.*")); // `*` accepts the literal token `*`
/// assert!(!matches(b"foo.a", b"foo.*")); // ...but a published `*` matches nothing by itself
/// ```
pub fn matches(pattern: &[u8], subject: &[u8]) -> bool {
    let mut pattern = pattern;
    let mut subject = subject;
    loop {
        let (p, p_rest) = split_token(pattern);
        // The subject always has at least one token here, which is what `>` needs.
        let (s, s_rest) = split_token(subject);
        if p_rest.is_none() && p == b">" {
            return true;
        }
        if p != b"*" && p != s {
            return false;
        }
        match (p_rest, s_rest) {
            (None, None) => return true,
            (Some(p_rest), Some(s_rest)) => {
                pattern = p_rest;
                subject = s_rest;
            }
            // One ran out of tokens before the other.
            _ => return false,
        }
    }
}

/// Whether every subject `pattern` can match is also matched by `of` (both are subscription patterns). Used for
/// subscribe permissions: `SUB orders.*` is allowed by `orders.>`, but `SUB orders.>` is not allowed by `orders.*`.
pub fn is_subset(pattern: &[u8], of: &[u8]) -> bool {
    let (mut pattern, mut of) = (pattern, of);
    loop {
        let (p, p_rest) = split_token(pattern);
        let (o, o_rest) = split_token(of);
        if o_rest.is_none() && o == b">" {
            // `>` covers one or more tokens, and `pattern` has at least one left.
            return true;
        }
        let p_is_gt = p_rest.is_none() && p == b">";
        let covered = if o == b"*" { !p_is_gt } else { p == o && p != b"*" && !p_is_gt };
        if !covered {
            return false;
        }
        match (p_rest, o_rest) {
            (None, None) => return true,
            (Some(p_rest), Some(o_rest)) => {
                pattern = p_rest;
                of = o_rest;
            }
            _ => return false,
        }
    }
}

/// Whether some subject is matched by both patterns. Used for deny rules: `SUB >` overlaps a denied `secret.x`.
pub fn overlaps(a: &[u8], b: &[u8]) -> bool {
    let (mut a, mut b) = (a, b);
    loop {
        let (x, x_rest) = split_token(a);
        let (y, y_rest) = split_token(b);
        if (x_rest.is_none() && x == b">") || (y_rest.is_none() && y == b">") {
            return true;
        }
        if x != b"*" && y != b"*" && x != y {
            return false;
        }
        match (x_rest, y_rest) {
            (None, None) => return true,
            (Some(x_rest), Some(y_rest)) => {
                a = x_rest;
                b = y_rest;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_of_patterns() {
        assert!(is_subset(b"orders.*", b"orders.>"));
        assert!(is_subset(b"orders.a.b", b"orders.>"));
        assert!(is_subset(b"orders.>", b"orders.>"));
        assert!(is_subset(b"orders.>", b">"));
        assert!(is_subset(b"a.b", b"a.*"));
        assert!(is_subset(b"a.*", b"a.*"));
        assert!(!is_subset(b"orders.>", b"orders.*"));
        assert!(!is_subset(b"a.*", b"a.b"));
        assert!(!is_subset(b"orders", b"orders.>"));
        assert!(!is_subset(b"a.b.c", b"a.*"));
        assert!(!is_subset(b">", b"a.>"));
    }

    #[test]
    fn overlapping_patterns() {
        assert!(overlaps(b">", b"secret.x"));
        assert!(overlaps(b"secret.*", b"*.x"));
        assert!(overlaps(b"a.>", b"a.b.c"));
        assert!(!overlaps(b"a.*", b"b.*"));
        assert!(!overlaps(b"a.*", b"a.b.c"));
        assert!(!overlaps(b"a.>", b"a"));
    }

    #[test]
    fn examples_of_section_1_9() {
        assert!(matches(b"foo.>", b"foo.a"));
        assert!(matches(b"foo.>", b"foo.a.b"));
        assert!(!matches(b"foo.>", b"foo"));
        for s in [&b"a"[..], b"a.b", b"a.b.c", b"foo", b"*", b">", b"_INBOX.x.1"] {
            assert!(matches(b">", s));
        }
        assert!(matches(b"foo.*", b"foo.a"));
        assert!(!matches(b"foo.*", b"foo"));
        assert!(!matches(b"foo.*", b"foo.a.b"));
    }

    #[test]
    fn ac_03_wildcards() {
        let subjects: [&[u8]; 4] = [b"a", b"a.b", b"a.b.c", b"x.b"];
        let expected: [(&[u8], &[&[u8]]); 5] = [
            (b"a.*", &[b"a.b"]),
            (b"a.>", &[b"a.b", b"a.b.c"]),
            (b"a.*.c", &[b"a.b.c"]),
            (b">", &[b"a", b"a.b", b"a.b.c", b"x.b"]),
            (b"*.b", &[b"a.b", b"x.b"]),
        ];
        for (pattern, want) in expected {
            let got: Vec<&[u8]> = subjects.iter().copied().filter(|s| matches(pattern, s)).collect();
            assert_eq!(got, want, "pattern {:?}", String::from_utf8_lossy(pattern));
        }
    }

    #[test]
    fn published_wildcards_are_literal_tokens() {
        assert!(matches(b"foo.>", b"foo.*"));
        assert!(matches(b"foo.*", b"foo.*"));
        assert!(matches(b"foo.>", b"foo.>"));
        assert!(matches(b"*", b">"));
        assert!(!matches(b"foo.bar", b"foo.*"));
        assert!(!matches(b"foo.bar", b"foo.>"));
        assert!(!matches(b"foo.*", b"foo.>.x"));
    }

    #[test]
    fn literal_tokens() {
        assert!(matches(b"foo", b"foo"));
        assert!(!matches(b"foo", b"Foo"));
        assert!(!matches(b"foo", b"foo.bar"));
        assert!(!matches(b"foo.bar", b"foo"));
        assert!(!matches(b"foo", b"fo"));
        assert!(matches(b"foo*", b"foo*"));
        assert!(!matches(b"foo*", b"fooa"));
        assert!(matches(b"a>b.c", b"a>b.c"));
        assert!(matches(b"service/tick", b"service/tick"));
        assert!(matches("ünï.*".as_bytes(), "ünï.x".as_bytes()));
        assert!(matches(&[0xFF, b'.', b'*'], &[0xFF, b'.', 0x00]));
    }

    #[test]
    fn wildcards_in_every_position() {
        assert!(matches(b"*.bar.>", b"x.bar.y"));
        assert!(matches(b"*.bar.>", b"x.bar.y.z"));
        assert!(!matches(b"*.bar.>", b"x.bar"));
        assert!(!matches(b"*.bar.>", b"x.baz.y"));
        assert!(matches(b"*.*", b"a.b"));
        assert!(!matches(b"*.*", b"a"));
        assert!(!matches(b"*", b"a.b"));
        assert!(matches(b"a.*.c", b"a.b.c"));
        assert!(!matches(b"a.*.c", b"a.b.d"));
    }

    #[test]
    fn invalid_patterns_have_a_fixed_meaning() {
        // `>` not last is a literal token.
        assert!(matches(b"foo.>.bar", b"foo.>.bar"));
        assert!(!matches(b"foo.>.bar", b"foo.x.bar"));
        // Empty tokens are literal empty tokens.
        assert!(matches(b"foo..bar", b"foo..bar"));
        assert!(matches(b"foo.*", b"foo."));
        assert!(matches(b">", b""));
        assert!(matches(b"", b""));
    }
}
