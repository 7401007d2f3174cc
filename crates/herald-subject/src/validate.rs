//! Subject and queue-name validity (compat/nats-fluxlib.md §1.8).
//!
//! The server checks every SUB subject with [`is_valid_subscribe_subject`] (`-ERR 'Invalid Subject'`), and a
//! publish subject with [`is_valid_publish_subject`] only in pedantic mode, because the reference routes whatever
//! publish subject it gets and treats every token as literal. The forbidden bytes are the protocol's argument
//! separators, so on the wire they cannot occur inside an argument anyway; the check matters for subjects that
//! arrive by other routes (an API, a config file) and keeps the rule in one place. Form feed is rejected too, as the
//! newest reference does.
//!
//! Everything else is allowed, including non-UTF-8 bytes: subjects are compared as bytes, never decoded.

use crate::split_token;

/// Bytes that may not appear anywhere in a subject or queue name.
#[inline]
fn is_forbidden(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0C)
}

/// A SUB subject: non-empty, no empty token, no forbidden whitespace byte, and `>` (as a whole token) only last.
/// Tokens that merely contain `*` or `>` are literal and fine.
pub fn is_valid_subscribe_subject(s: &[u8]) -> bool {
    if s.is_empty() || s.iter().copied().any(is_forbidden) {
        return false;
    }
    let mut rest = s;
    loop {
        let (token, after) = split_token(rest);
        if token.is_empty() {
            return false;
        }
        match after {
            None => return true,
            // A full wildcard swallows the rest of the subject, so anything after it is meaningless.
            Some(_) if token == b">" => return false,
            Some(after) => rest = after,
        }
    }
}

/// A publish subject under pedantic checking: a valid subject with no wildcard token.
pub fn is_valid_publish_subject(s: &[u8]) -> bool {
    is_valid_subscribe_subject(s) && is_literal(s)
}

/// A queue group name: non-empty and free of forbidden whitespace. It is not a subject, so `.`, `*` and `>` are
/// ordinary characters in it.
pub fn is_valid_queue_name(s: &[u8]) -> bool {
    !s.is_empty() && !s.iter().copied().any(is_forbidden)
}

/// Whether no token is exactly `*` or `>`, i.e. the pattern can match only the identical subject. The trie uses
/// this to invalidate one cache entry instead of scanning the cache.
pub fn is_literal(s: &[u8]) -> bool {
    s.split(|&b| b == b'.').all(|t| t != b"*" && t != b">")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_table_of_section_1_8() {
        let valid: &[&[u8]] = &[
            b"foo",
            b"foo.bar",
            b"*",
            b">",
            b"foo.*",
            b"foo.>",
            b"*.bar.>",
            b"foo*",
            b"service/tick",
            "ünï.*".as_bytes(),
        ];
        for s in valid {
            assert!(is_valid_subscribe_subject(s), "{:?} should be valid", String::from_utf8_lossy(s));
        }
        let invalid: &[&[u8]] = &[b"", b".foo", b"foo.", b"foo..bar", b"foo.>.bar", b">.foo"];
        for s in invalid {
            assert!(!is_valid_subscribe_subject(s), "{:?} should be invalid", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn literal_tokens_containing_wildcard_characters() {
        for s in [&b"a>b"[..], b"foo*.bar", b"*a.b>", b">>", b"**.x", b"a.b.>c", b"service.my-service.status"] {
            assert!(is_valid_subscribe_subject(s));
            assert!(is_valid_publish_subject(s));
            assert!(is_literal(s));
        }
        assert!(!is_valid_subscribe_subject(b"a.>.>"));
        assert!(!is_valid_subscribe_subject(b"."));
        assert!(!is_valid_subscribe_subject(b".."));
    }

    #[test]
    fn forbidden_whitespace_bytes_are_rejected_everywhere() {
        for b in [b' ', b'\t', b'\r', b'\n', 0x0C] {
            for s in [vec![b], vec![b'a', b], vec![b, b'a'], [&b"foo."[..], &[b], b"bar"].concat()] {
                assert!(!is_valid_subscribe_subject(&s), "{s:?}");
                assert!(!is_valid_publish_subject(&s), "{s:?}");
                assert!(!is_valid_queue_name(&s), "{s:?}");
            }
        }
        // Other control bytes are not separators and stay allowed.
        assert!(is_valid_subscribe_subject(&[0x0B]));
        assert!(is_valid_subscribe_subject(&[0x00, b'.', 0x7F]));
    }

    #[test]
    fn non_utf8_bytes_are_accepted() {
        let s = vec![0xFF, 0xFE, b'.', 0xC3, b'.', 0x80];
        assert!(std::str::from_utf8(&s).is_err());
        assert!(is_valid_subscribe_subject(&s));
        assert!(is_valid_publish_subject(&s));
        assert!(is_valid_queue_name(&s));
        assert!(is_valid_subscribe_subject(&[0xFF, b'.', b'*', b'.', b'>']));
    }

    #[test]
    fn publish_subjects_are_valid_and_wildcard_free() {
        for s in [&b"foo"[..], b"foo.bar", b"foo*", b"a>b", b"_INBOX.abc.1", b"echo/echo1/request"] {
            assert!(is_valid_publish_subject(s), "{:?}", String::from_utf8_lossy(s));
        }
        for s in [&b"*"[..], b">", b"foo.*", b"foo.>", b"*.bar", b"a.*.c", b"", b"foo..bar", b".foo", b"foo.>.bar"] {
            assert!(!is_valid_publish_subject(s), "{:?}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn queue_names() {
        for s in [&b"workers"[..], b"a.b", b"*", b">", b"q.*.>", b".", "ünï".as_bytes()] {
            assert!(is_valid_queue_name(s), "{:?}", String::from_utf8_lossy(s));
        }
        assert!(!is_valid_queue_name(b""));
        assert!(!is_valid_queue_name(b"two words"));
    }

    #[test]
    fn literal_check() {
        assert!(is_literal(b"foo.bar"));
        assert!(is_literal(b"foo*"));
        assert!(!is_literal(b"*"));
        assert!(!is_literal(b">"));
        assert!(!is_literal(b"foo.*.bar"));
        assert!(!is_literal(b"foo.>"));
        // Not a valid subject, but still not literal: `>` in the middle is no plain token either.
        assert!(!is_literal(b"foo.>.bar"));
    }
}
