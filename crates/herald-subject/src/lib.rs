//! NATS-style subjects (compat/nats-fluxlib.md §1.8–1.9): validation, wildcard matching, and the subscription trie
//! the router consults on every publish.
//!
//! A subject is a *byte* string of tokens separated by `.`; any byte but space, tab, CR, LF and form feed may appear
//! in a token, and tokens compare byte-exactly. In a subscription pattern a token that is exactly `*` matches any one
//! token and a last token that is exactly `>` matches one or more remaining tokens; a token that merely contains
//! those characters (`foo*`) is literal, and every token of a *published* subject is literal, so a published `foo.*`
//! reaches `foo.>` and `foo.*` subscribers only because their wildcards accept the literal token `*`.
//!
//! * [`validate`]: what a SUB subject, a pedantic PUB subject and a queue name may be.
//! * [`matching`]: [`matches`], one pattern against one subject, without allocating. It is the reference the trie
//!   is tested against and what the trie's cache invalidation uses.
//! * [`trie`]: [`SubjectTrie`], the subscription index: entries keyed by subscription id, looked up by published
//!   subject, with results split into plain subscribers and queue groups and memoised in a bounded cache.
//!
//! No I/O, no async runtime, no `unsafe`: the server wraps the trie in whatever lock its router needs.
//!
//! [`matches`]: fn@crate::matches

pub mod matching;
pub mod trie;
pub mod validate;

pub use crate::matching::{is_subset, matches, overlaps};
pub use crate::trie::{Matches, QueueGroup, SubjectTrie};
pub use crate::validate::{is_literal, is_valid_publish_subject, is_valid_queue_name, is_valid_subscribe_subject};

/// Splits off the first token: `(token, Some(rest after the dot))`, or `(whole, None)` for the last token. Every
/// byte string has at least one token (the empty string is one empty token); validation rejects empty tokens, but
/// matching and the trie give them the same literal meaning, so the two always agree even on invalid input.
#[inline]
pub(crate) fn split_token(s: &[u8]) -> (&[u8], Option<&[u8]>) {
    match s.iter().position(|&b| b == b'.') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}
