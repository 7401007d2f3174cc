//! The subscription index: which subscriptions does a published subject reach?
//!
//! [`SubjectTrie`] stores entries (a subscription id, an optional queue name and the caller's value) under their
//! pattern, one trie level per token. Each node has three ways down, mirroring the three kinds of pattern token:
//! a map of literal children keyed by token bytes, one `*` child, and the list of entries whose pattern ends in `>`
//! right after this node (a `>` is always last, so it needs no node of its own). Entries whose pattern ends exactly
//! at a node sit in its `here` list. Looking up a subject walks its tokens from the root, following at each level
//! the literal child for that token and the `*` child, and collecting every `>` list passed on the way — so the
//! cost depends on the subject's length and on how many wildcard branches exist, not on the number of entries.
//!
//! Publishing is far more frequent than subscribing, and most traffic goes to a small set of hot subjects, so the
//! results are memoised per subject in a bounded cache: a hit is one hash lookup and an `Arc` clone. The cache is
//! kept exact, not approximately fresh: every `insert`/`remove` drops precisely the cached subjects the changed
//! pattern matches (one removal for a literal pattern, a scan with [`matches`] for a wildcard one). Clearing it
//! wholesale would be simpler, but a client doing old-style requests subscribes and unsubscribes a fresh inbox per
//! request, and that must not cost every hot subject a cache miss.
//!
//! When the cache is full, a miss evicts an arbitrary half of it (whatever the hash map's iteration order puts
//! first, which is effectively random). That is O(capacity) once per capacity/2 misses, so O(1) amortised, needs no
//! recency bookkeeping on the hit path (an LRU would write on every hit), and a hot subject that was evicted costs
//! one miss to come back. Clearing everything would do the same with a worse cliff.
//!
//! Removal prunes the nodes it leaves empty, so memory follows the live subscriptions rather than their history.
//! Nothing here recurses over the depth of a pattern (walks use an explicit stack and `Node`'s drop is iterative):
//! the depth is bounded only by the server's control-line limit, and a client must not be able to overflow the
//! stack with a long subject.
//!
//! [`matches`]: fn@crate::matches

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::matching::matches;
use crate::split_token;
use crate::validate::is_literal;

/// Cache capacity of [`SubjectTrie::default`].
pub const DEFAULT_CACHE_CAPACITY: usize = 4096;

/// Everything a subject matched: the plain entries (every one gets a copy) and the queue groups (one member of each
/// gets it).
///
/// The order is canonical, so equal trie states give equal results whatever the insertion history: `plain` and each
/// group's `members` are sorted by key, and `groups` by name. With subscription ids handed out in increasing order
/// that is subscription order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matches<T> {
    pub plain: Vec<T>,
    pub groups: Vec<QueueGroup<T>>,
}

impl<T> Matches<T> {
    /// No entry matched: nobody to deliver to (the no-responders case).
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.groups.is_empty()
    }
}

impl<T> Default for Matches<T> {
    fn default() -> Self {
        Self { plain: Vec::new(), groups: Vec::new() }
    }
}

/// The matching entries that share one queue name (byte-exact), whichever patterns they were inserted under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueGroup<T> {
    pub name: Bytes,
    pub members: Vec<T>,
}

struct Entry<T> {
    key: u64,
    queue: Option<Bytes>,
    value: T,
}

struct Node<T> {
    literal: HashMap<Box<[u8]>, Node<T>>,
    star: Option<Box<Node<T>>>,
    /// Entries whose pattern ends at this node.
    here: Vec<Entry<T>>,
    /// Entries whose pattern is this node's path followed by `>`.
    gt: Vec<Entry<T>>,
}

impl<T> Node<T> {
    fn new() -> Self {
        Self { literal: HashMap::new(), star: None, here: Vec::new(), gt: Vec::new() }
    }

    /// The child a pattern token leads to. Only a whole `*` token is the wildcard child; everything else, including
    /// a `>` that is not last (never valid, but given the same literal meaning as in [`matches`](fn@matches)), is
    /// literal.
    fn child(&self, token: &[u8]) -> Option<&Node<T>> {
        if token == b"*" { self.star.as_deref() } else { self.literal.get(token) }
    }

    fn child_mut(&mut self, token: &[u8]) -> Option<&mut Node<T>> {
        if token == b"*" { self.star.as_deref_mut() } else { self.literal.get_mut(token) }
    }

    fn child_or_insert(&mut self, token: &[u8]) -> &mut Node<T> {
        if token == b"*" {
            return self.star.get_or_insert_with(|| Box::new(Node::new()));
        }
        // Look up before inserting so that an existing child costs no key allocation.
        if !self.literal.contains_key(token) {
            self.literal.insert(token.into(), Node::new());
        }
        self.literal.get_mut(token).expect("child was just ensured")
    }

    fn remove_child(&mut self, token: &[u8]) {
        if token == b"*" {
            self.star = None;
        } else {
            self.literal.remove(token);
            shrink_if_sparse_map(&mut self.literal);
        }
    }

    fn child_count(&self) -> usize {
        self.literal.len() + usize::from(self.star.is_some())
    }

    fn has_entries(&self) -> bool {
        !self.here.is_empty() || !self.gt.is_empty()
    }

    fn is_empty(&self) -> bool {
        !self.has_entries() && self.child_count() == 0
    }

    fn detach_children(&mut self, into: &mut Vec<Node<T>>) {
        into.extend(self.literal.drain().map(|(_, child)| child));
        if let Some(star) = self.star.take() {
            into.push(*star);
        }
    }
}

impl<T> Drop for Node<T> {
    /// Tears the subtree down with a work list instead of the default recursive drop, which would overflow the
    /// stack on a chain as deep as a long subject has tokens.
    fn drop(&mut self) {
        if self.child_count() == 0 {
            return;
        }
        let mut doomed = Vec::new();
        self.detach_children(&mut doomed);
        while let Some(mut node) = doomed.pop() {
            node.detach_children(&mut doomed);
            // `node` now has no children, so its own drop returns at once.
        }
    }
}

/// Gives memory back after a mass unsubscribe, with hysteresis so that a map oscillating around one size does not
/// reallocate on every change.
fn shrink_if_sparse_map<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 4 * map.len().max(8) {
        map.shrink_to_fit();
    }
}

fn shrink_if_sparse_vec<V>(list: &mut Vec<V>) {
    if list.capacity() > 4 * list.len().max(4) {
        list.shrink_to_fit();
    }
}

/// Where a pattern's entries live: the node reached by the tokens of the returned path (`None`: the root), in its
/// `gt` list if the pattern ends in a `>` token (the `bool`), else in its `here` list.
fn split_pattern(pattern: &[u8]) -> (Option<&[u8]>, bool) {
    if pattern == b">" {
        (None, true)
    } else if let Some(path) = pattern.strip_suffix(b".>") {
        (Some(path), true)
    } else {
        (Some(pattern), false)
    }
}

fn path_tokens(path: Option<&[u8]>) -> impl Iterator<Item = &[u8]> {
    path.into_iter().flat_map(|p| p.split(|&b| b == b'.'))
}

/// The subscription index with its match cache; see the module docs.
pub struct SubjectTrie<T> {
    root: Node<T>,
    len: usize,
    cache: HashMap<Box<[u8]>, Arc<Matches<T>>>,
    cache_capacity: usize,
}

impl<T: Clone> Default for SubjectTrie<T> {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_CAPACITY)
    }
}

impl<T> fmt::Debug for SubjectTrie<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubjectTrie")
            .field("len", &self.len)
            .field("cache_len", &self.cache.len())
            .field("cache_capacity", &self.cache_capacity)
            .finish_non_exhaustive()
    }
}

impl<T: Clone> SubjectTrie<T> {
    /// An empty trie whose match cache holds at most `cache_capacity` subjects (0 disables the cache).
    pub fn new(cache_capacity: usize) -> Self {
        Self { root: Node::new(), len: 0, cache: HashMap::new(), cache_capacity }
    }

    /// Adds an entry under `pattern`. The caller guarantees that `pattern` is a valid subscribe subject and that
    /// `key` (a subscription id) is not already in the trie; several entries may share a pattern and a queue name.
    pub fn insert(&mut self, pattern: &[u8], queue: Option<&[u8]>, key: u64, value: T) {
        let (path, full_wildcard) = split_pattern(pattern);
        let mut node = &mut self.root;
        for token in path_tokens(path) {
            node = node.child_or_insert(token);
        }
        let entry = Entry { key, queue: queue.map(Bytes::copy_from_slice), value };
        if full_wildcard {
            node.gt.push(entry);
        } else {
            node.here.push(entry);
        }
        self.len += 1;
        self.invalidate(pattern);
    }

    /// Removes the entry `key` from under `pattern` and returns its value, or `None` if that pattern holds no such
    /// entry. Nodes left empty are pruned.
    pub fn remove(&mut self, pattern: &[u8], key: u64) -> Option<T> {
        let (path, full_wildcard) = split_pattern(pattern);
        let mut node = &mut self.root;
        for token in path_tokens(path) {
            node = node.child_mut(token)?;
        }
        let list = if full_wildcard { &mut node.gt } else { &mut node.here };
        let at = list.iter().position(|e| e.key == key)?;
        // Order within a list does not matter (results are sorted by key), so swap_remove keeps this O(1) after
        // the search.
        let entry = list.swap_remove(at);
        shrink_if_sparse_vec(list);
        let now_empty = node.is_empty();
        self.len -= 1;
        if now_empty && let Some(path) = path {
            self.prune(path);
        }
        self.invalidate(pattern);
        Some(entry.value)
    }

    /// Cuts off the chain of nodes that a removal left useless: the node at the end of `path` is empty, and so is
    /// every ancestor up to the deepest one that still has entries or another child (or is the root). Done as two
    /// iterative walks — find the cut, then cut — rather than a recursion over the path.
    fn prune(&mut self, path: &[u8]) {
        let mut keep = 0;
        let mut node = &self.root;
        for (depth, token) in path_tokens(Some(path)).enumerate() {
            if depth > 0 && (node.has_entries() || node.child_count() > 1) {
                keep = depth;
            }
            let Some(child) = node.child(token) else { return };
            node = child;
        }
        let mut tokens = path_tokens(Some(path));
        let mut node = &mut self.root;
        for _ in 0..keep {
            let Some(child) = tokens.next().and_then(|t| node.child_mut(t)) else { return };
            node = child;
        }
        if let Some(token) = tokens.next() {
            node.remove_child(token);
        }
    }

    /// Keeps the cache exact after `pattern` gained or lost an entry: drops the cached subjects it matches, and
    /// only those. A literal pattern matches exactly one subject, itself, so that is one hash removal; a wildcard
    /// pattern needs a scan of the (bounded) cache.
    fn invalidate(&mut self, pattern: &[u8]) {
        if self.cache.is_empty() {
            return;
        }
        if is_literal(pattern) {
            self.cache.remove(pattern);
        } else {
            self.cache.retain(|subject, _| !matches(pattern, subject));
        }
    }

    /// Every entry whose pattern matches the published `subject` (whose tokens are all literal), from the cache
    /// when possible. The result is shared: callers must not expect to own it.
    pub fn matches(&mut self, subject: &[u8]) -> Arc<Matches<T>> {
        if let Some(hit) = self.cache.get(subject) {
            return Arc::clone(hit);
        }
        let result = Arc::new(self.lookup(subject));
        if self.cache_capacity > 0 {
            if self.cache.len() >= self.cache_capacity {
                self.evict_half();
            }
            self.cache.insert(subject.into(), Arc::clone(&result));
        }
        result
    }

    /// The same answer as [`SubjectTrie::matches`], always computed from the trie and never cached; it needs only
    /// `&self`, for callers that share the trie between readers.
    pub fn lookup(&self, subject: &[u8]) -> Matches<T> {
        let mut found: Vec<&Entry<T>> = Vec::new();
        // Depth-first over (node, the subject's remaining tokens). The common walk has one branch per level and
        // stays in `next`; `pending` only allocates where a literal and a `*` child both continue.
        let mut pending: Vec<(&Node<T>, &[u8])> = Vec::new();
        let mut next = Some((&self.root, subject));
        while let Some((node, rest)) = next.take().or_else(|| pending.pop()) {
            let (token, after) = split_token(rest);
            // At least one token remains (`token`), which is what a `>` here needs.
            found.extend(&node.gt);
            let literal = if node.literal.is_empty() { None } else { node.literal.get(token) };
            for child in [literal, node.star.as_deref()].into_iter().flatten() {
                match after {
                    None => found.extend(&child.here),
                    Some(after) if next.is_none() => next = Some((child, after)),
                    Some(after) => pending.push((child, after)),
                }
            }
        }
        collate(found)
    }

    /// Drops an arbitrary half of the cache to make room (see the module docs for why half and why arbitrary).
    fn evict_half(&mut self) {
        let mut keep = false;
        self.cache.retain(|_, _| {
            keep = !keep;
            !keep
        });
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of subjects currently cached.
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    /// Number of trie nodes, root included: 1 when empty. For tests of pruning.
    #[doc(hidden)]
    pub fn node_count(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            count += 1;
            stack.extend(node.literal.values());
            stack.extend(node.star.as_deref());
        }
        count
    }
}

/// Turns the matched entries into the canonical result: sorted so that plain entries (no queue) come first, then
/// queue entries grouped by name; by key within each. Sorting also makes the result independent of where in the
/// trie each entry was found.
fn collate<T: Clone>(mut found: Vec<&Entry<T>>) -> Matches<T> {
    found.sort_unstable_by(|a, b| a.queue.cmp(&b.queue).then(a.key.cmp(&b.key)));
    let plain_end = found.partition_point(|e| e.queue.is_none());
    let plain = found[..plain_end].iter().map(|e| e.value.clone()).collect();
    let groups = found[plain_end..]
        .chunk_by(|a, b| a.queue == b.queue)
        .map(|members| QueueGroup {
            name: members[0].queue.clone().unwrap_or_default(),
            members: members.iter().map(|e| e.value.clone()).collect(),
        })
        .collect();
    Matches { plain, groups }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group<'a>(m: &'a Matches<u64>, name: &[u8]) -> Option<&'a [u64]> {
        m.groups.iter().find(|g| g.name == name).map(|g| &g.members[..])
    }

    #[test]
    fn plain_and_queue_entries_are_split() {
        let mut trie = SubjectTrie::new(16);
        trie.insert(b"jobs", Some(b"workers"), 1, 1u64);
        trie.insert(b"jobs", Some(b"workers"), 2, 2);
        trie.insert(b"jobs", Some(b"workers"), 3, 3);
        trie.insert(b"jobs", None, 4, 4);
        trie.insert(b"jobs", Some(b"auditors"), 5, 5);
        let m = trie.matches(b"jobs");
        assert_eq!(m.plain, [4]);
        assert_eq!(m.groups.len(), 2);
        assert_eq!(group(&m, b"workers"), Some(&[1, 2, 3][..]));
        assert_eq!(group(&m, b"auditors"), Some(&[5][..]));
        // Groups come sorted by name.
        assert_eq!(m.groups[0].name, &b"auditors"[..]);
        assert!(trie.matches(b"other").is_empty());
    }

    #[test]
    fn a_queue_group_spans_patterns() {
        let mut trie = SubjectTrie::new(16);
        trie.insert(b"foo.*", Some(b"q"), 1, 1u64);
        trie.insert(b"foo.>", Some(b"q"), 2, 2);
        trie.insert(b"foo.bar", Some(b"q"), 3, 3);
        trie.insert(b">", Some(b"q"), 4, 4);
        trie.insert(b"foo.bar", Some(b"Q"), 5, 5);
        let m = trie.matches(b"foo.bar");
        assert!(m.plain.is_empty());
        assert_eq!(m.groups.len(), 2);
        assert_eq!(group(&m, b"q"), Some(&[1, 2, 3, 4][..]));
        assert_eq!(group(&m, b"Q"), Some(&[5][..]));
        let m = trie.matches(b"foo.bar.baz");
        assert_eq!(m.groups, [QueueGroup { name: Bytes::from_static(b"q"), members: vec![2, 4] }]);
    }

    #[test]
    fn several_entries_on_one_pattern_each_match() {
        let mut trie = SubjectTrie::new(16);
        // A FluxLib service subscribes twice to the same subject and expects both handlers.
        trie.insert(b"service.s1.set_config", None, 7, 7u64);
        trie.insert(b"service.s1.set_config", None, 8, 8);
        trie.insert(b"service.*.set_config", None, 9, 9);
        assert_eq!(trie.matches(b"service.s1.set_config").plain, [7, 8, 9]);
        assert_eq!(trie.len(), 3);
    }

    #[test]
    fn results_are_sorted_by_key_whatever_the_insertion_order() {
        let mut trie = SubjectTrie::new(0);
        for key in [5u64, 1, 9, 3] {
            trie.insert(if key % 2 == 0 { b"a.*" } else { b"a.b" }, None, key, key);
        }
        trie.insert(b"a.>", None, 2, 2);
        assert_eq!(trie.matches(b"a.b").plain, [1, 2, 3, 5, 9]);
    }

    #[test]
    fn remove_returns_the_value_and_the_entry_stops_matching() {
        let mut trie = SubjectTrie::new(16);
        trie.insert(b"a.*", None, 1, "one");
        trie.insert(b"a.*", None, 2, "two");
        trie.insert(b"a.>", Some(b"q"), 3, "three");
        assert_eq!(trie.matches(b"a.b").plain, ["one", "two"]);
        // Wrong pattern or unknown key: nothing happens.
        assert_eq!(trie.remove(b"a.>", 1), None);
        assert_eq!(trie.remove(b"a.*", 99), None);
        assert_eq!(trie.remove(b"x.y.z", 1), None);
        assert_eq!(trie.len(), 3);
        assert_eq!(trie.remove(b"a.*", 1), Some("one"));
        assert_eq!(trie.remove(b"a.*", 1), None);
        assert_eq!(trie.len(), 2);
        let m = trie.matches(b"a.b");
        assert_eq!(m.plain, ["two"]);
        assert_eq!(group_str(&m, b"q"), Some(&["three"][..]));
        assert_eq!(trie.remove(b"a.>", 3), Some("three"));
        assert_eq!(trie.remove(b"a.*", 2), Some("two"));
        assert!(trie.matches(b"a.b").is_empty());
        assert!(trie.is_empty());
        assert_eq!(trie.node_count(), 1);
    }

    fn group_str<'a>(m: &'a Matches<&'static str>, name: &[u8]) -> Option<&'a [&'static str]> {
        m.groups.iter().find(|g| g.name == name).map(|g| &g.members[..])
    }

    #[test]
    fn ac_03_through_the_trie() {
        let mut trie = SubjectTrie::new(16);
        let patterns: [&[u8]; 5] = [b"a.*", b"a.>", b"a.*.c", b">", b"*.b"];
        for (key, p) in patterns.iter().enumerate() {
            trie.insert(p, None, key as u64, key as u64);
        }
        // Keys: 0 `a.*`, 1 `a.>`, 2 `a.*.c`, 3 `>`, 4 `*.b`.
        let expected: [(&[u8], &[u64]); 4] =
            [(b"a", &[3]), (b"a.b", &[0, 1, 3, 4]), (b"a.b.c", &[1, 2, 3]), (b"x.b", &[3, 4])];
        for round in 0..2 {
            for (subject, want) in expected {
                assert_eq!(trie.matches(subject).plain, want, "round {round} subject {subject:?}");
            }
        }
    }

    #[test]
    fn published_wildcards_are_literal() {
        let mut trie = SubjectTrie::new(16);
        trie.insert(b"foo.>", None, 1, 1u64);
        trie.insert(b"foo.*", None, 2, 2);
        trie.insert(b"foo.bar", None, 3, 3);
        trie.insert(b"foo*", None, 4, 4);
        assert_eq!(trie.matches(b"foo.*").plain, [1, 2]);
        assert_eq!(trie.matches(b"foo.>").plain, [1, 2]);
        assert_eq!(trie.matches(b"foo*").plain, [4]);
        assert!(trie.matches(b"foo").is_empty());
    }

    #[test]
    fn pruning_returns_the_trie_to_its_initial_size() {
        let mut trie = SubjectTrie::new(64);
        let initial = trie.node_count();
        assert_eq!(initial, 1);
        let patterns: Vec<Vec<u8>> = (0..10_000)
            .map(|i| match i % 5 {
                0 => format!("many.{i}"),
                1 => format!("_INBOX.{i}.*"),
                2 => format!("{i}.>"),
                3 => format!("*.x.{i}.y"),
                _ => format!("deep.{i}.a.b.c.>"),
            })
            .map(String::into_bytes)
            .collect();
        // A few permanent entries share prefixes with the churning ones; pruning must not cut them off.
        trie.insert(b"many.keep", None, u64::MAX, 0u64);
        trie.insert(b"*.x", None, u64::MAX - 1, 0);
        let with_permanent = trie.node_count();
        for (i, p) in patterns.iter().enumerate() {
            trie.insert(p, None, i as u64, i as u64);
            let _ = trie.matches(p);
        }
        assert_eq!(trie.len(), 10_002);
        // Remove in an order different from insertion.
        for (i, p) in patterns.iter().enumerate().rev() {
            assert_eq!(trie.remove(p, i as u64), Some(i as u64));
        }
        assert_eq!(trie.node_count(), with_permanent);
        assert_eq!(trie.matches(b"many.keep").plain, [0]);
        assert_eq!(trie.matches(b"a.x").plain, [0]);
        assert_eq!(trie.remove(b"many.keep", u64::MAX), Some(0));
        assert_eq!(trie.remove(b"*.x", u64::MAX - 1), Some(0));
        assert_eq!(trie.node_count(), initial);
        assert!(trie.is_empty());
    }

    #[test]
    fn churn_on_one_subject_does_not_grow_the_trie() {
        let mut trie = SubjectTrie::new(64);
        trie.insert(b"svc.echo", None, 0, 0u64);
        let before = trie.node_count();
        for i in 1..5_000u64 {
            // Old-style request: a fresh inbox subscription, one reply, unsubscribe.
            let inbox = format!("_INBOX.abcdefghijklmnopqrstuv{i}");
            trie.insert(inbox.as_bytes(), None, i, i);
            assert_eq!(trie.matches(b"svc.echo").plain, [0]);
            assert_eq!(trie.matches(inbox.as_bytes()).plain, [i]);
            assert_eq!(trie.remove(inbox.as_bytes(), i), Some(i));
        }
        assert_eq!(trie.node_count(), before);
        assert_eq!(trie.len(), 1);
    }

    #[test]
    fn cache_hits_share_the_result() {
        let mut trie = SubjectTrie::new(16);
        trie.insert(b"a.b", None, 1, 1u64);
        let first = trie.matches(b"a.b");
        let second = trie.matches(b"a.b");
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(trie.cache_len(), 1);
        // Misses that match nothing are cached too (publishing into the void is common).
        assert!(trie.matches(b"nobody.home").is_empty());
        assert_eq!(trie.cache_len(), 2);
    }

    #[test]
    fn changes_invalidate_only_the_subjects_they_match() {
        let mut trie = SubjectTrie::new(64);
        trie.insert(b"hot.a", None, 1, 1u64);
        trie.insert(b"hot.b", None, 2, 2);
        for s in [&b"hot.a"[..], b"hot.b", b"cold.a", b"_INBOX.x"] {
            let _ = trie.matches(s);
        }
        assert_eq!(trie.cache_len(), 4);
        let hot_a = trie.matches(b"hot.a");

        // A churning literal inbox touches its own subject only.
        trie.insert(b"_INBOX.y", None, 3, 3);
        trie.remove(b"_INBOX.y", 3);
        assert_eq!(trie.cache_len(), 4);
        trie.insert(b"_INBOX.x", None, 4, 4);
        assert_eq!(trie.cache_len(), 3);
        assert_eq!(trie.matches(b"_INBOX.x").plain, [4]);
        assert!(Arc::ptr_eq(&hot_a, &trie.matches(b"hot.a")));

        // A wildcard drops what it matches and nothing else.
        trie.insert(b"*.a", None, 5, 5);
        assert_eq!(trie.cache_len(), 2); // hot.b and _INBOX.x remain
        assert_eq!(trie.matches(b"hot.a").plain, [1, 5]);
        assert_eq!(trie.matches(b"cold.a").plain, [5]);
        trie.remove(b"*.a", 5);
        assert_eq!(trie.matches(b"hot.a").plain, [1]);
        assert!(trie.matches(b"cold.a").is_empty());
        trie.insert(b">", Some(b"all"), 6, 6);
        assert_eq!(trie.cache_len(), 0);
    }

    #[test]
    fn cache_stays_bounded() {
        let mut trie = SubjectTrie::new(10);
        trie.insert(b">", None, 1, 1u64);
        for i in 0..1_000 {
            let s = format!("s.{i}");
            assert_eq!(trie.matches(s.as_bytes()).plain, [1]);
            assert!(trie.cache_len() <= 10);
        }
        let mut one = SubjectTrie::new(1);
        one.insert(b"a", None, 1, 1u64);
        for s in [&b"a"[..], b"b", b"a"] {
            let _ = one.matches(s);
            assert_eq!(one.cache_len(), 1);
        }
    }

    #[test]
    fn zero_capacity_disables_the_cache() {
        let mut trie = SubjectTrie::new(0);
        trie.insert(b"a.*", None, 1, 1u64);
        assert_eq!(trie.matches(b"a.b").plain, [1]);
        assert_eq!(trie.cache_len(), 0);
        trie.remove(b"a.*", 1);
        assert!(trie.matches(b"a.b").is_empty());
    }

    #[test]
    fn ten_thousand_literal_subscriptions() {
        let mut trie = SubjectTrie::default();
        for i in 0..10_000u64 {
            trie.insert(format!("many.{i}").as_bytes(), None, i, i);
        }
        for i in 0..10_000u64 {
            let m = trie.matches(format!("many.{i}").as_bytes());
            assert_eq!(m.plain, [i]);
            assert!(m.groups.is_empty());
        }
        assert!(trie.matches(b"many").is_empty());
        assert!(trie.matches(b"many.10000").is_empty());
        for i in 0..10_000u64 {
            assert_eq!(trie.remove(format!("many.{i}").as_bytes(), i), Some(i));
        }
        for i in (0..10_000u64).step_by(100) {
            assert!(trie.matches(format!("many.{i}").as_bytes()).is_empty());
        }
        assert_eq!(trie.node_count(), 1);
    }

    #[test]
    fn fan_out_to_two_thousand() {
        let mut trie = SubjectTrie::default();
        for i in 0..2_000u64 {
            trie.insert(b"fan", None, i, i);
        }
        let m = trie.matches(b"fan");
        assert_eq!(m.plain, (0..2_000).collect::<Vec<_>>());
        for i in (0..2_000u64).rev() {
            assert_eq!(trie.remove(b"fan", i), Some(i));
        }
        assert!(trie.matches(b"fan").is_empty());
    }

    #[test]
    fn very_deep_subjects_do_not_recurse() {
        // Far deeper than any control line allows by default; a recursive walk or drop would overflow the stack.
        let depth = 100_000;
        let pattern = vec!["t"; depth].join(".").into_bytes();
        let wildcard = [&vec!["t"; depth - 1].join(".").into_bytes()[..], b".*"].concat();
        let mut trie = SubjectTrie::new(8);
        trie.insert(&pattern, None, 1, 1u64);
        trie.insert(&wildcard, None, 2, 2);
        trie.insert(b"t.>", None, 3, 3);
        assert_eq!(trie.matches(&pattern).plain, [1, 2, 3]);
        assert_eq!(trie.remove(&pattern, 1), Some(1));
        assert_eq!(trie.matches(&pattern).plain, [2, 3]);
        assert_eq!(trie.remove(&wildcard, 2), Some(2));
        assert_eq!(trie.node_count(), 2);
        // And dropping a deep trie wholesale.
        trie.insert(&pattern, None, 4, 4);
        drop(trie);
    }
}
