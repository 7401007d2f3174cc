//! The trie (and its cache) against a brute-force model: random inserts, removes and lookups over a tiny token
//! alphabet, so that patterns overlap heavily and wildcards are everywhere, with a small cache so that eviction and
//! invalidation both happen constantly. Every lookup must equal a scan of `matches()` over all live entries.

use std::collections::BTreeMap;

use herald_subject::{SubjectTrie, is_valid_subscribe_subject, matches};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TOKENS: [&str; 3] = ["a", "b", "c"];
const QUEUES: [Option<&str>; 3] = [None, Some("q1"), Some("q2")];

struct Live {
    pattern: Vec<u8>,
    queue: Option<&'static str>,
    key: u64,
}

fn random_pattern(rng: &mut StdRng) -> Vec<u8> {
    let len = rng.random_range(1..=3);
    let mut tokens = Vec::with_capacity(len);
    for i in 0..len {
        let last = i + 1 == len;
        tokens.push(match rng.random_range(0..10) {
            0..=5 => TOKENS[rng.random_range(0..TOKENS.len())],
            6..=7 => "*",
            _ if last => ">",
            _ => "*",
        });
    }
    let pattern = tokens.join(".").into_bytes();
    assert!(is_valid_subscribe_subject(&pattern));
    pattern
}

/// Published subjects are literal, but may contain the bytes `*` and `>` as whole tokens.
fn random_subject(rng: &mut StdRng) -> Vec<u8> {
    let len = rng.random_range(1..=4);
    let tokens: Vec<&str> = (0..len)
        .map(|_| match rng.random_range(0..10) {
            0 => "*",
            1 => ">",
            i => TOKENS[i % TOKENS.len()],
        })
        .collect();
    tokens.join(".").into_bytes()
}

type Expected = (Vec<u64>, BTreeMap<Vec<u8>, Vec<u64>>);

fn brute_force(live: &[Live], subject: &[u8]) -> Expected {
    let mut plain = Vec::new();
    let mut groups: BTreeMap<Vec<u8>, Vec<u64>> = BTreeMap::new();
    for e in live.iter().filter(|e| matches(&e.pattern, subject)) {
        match e.queue {
            None => plain.push(e.key),
            Some(q) => groups.entry(q.as_bytes().to_vec()).or_default().push(e.key),
        }
    }
    plain.sort_unstable();
    groups.values_mut().for_each(|v| v.sort_unstable());
    (plain, groups)
}

fn observed(trie: &mut SubjectTrie<u64>, subject: &[u8]) -> Expected {
    let m = trie.matches(subject);
    let mut plain = m.plain.clone();
    plain.sort_unstable();
    let mut groups = BTreeMap::new();
    for g in &m.groups {
        let mut members = g.members.clone();
        members.sort_unstable();
        assert!(!members.is_empty(), "empty group {:?}", g.name);
        let previous = groups.insert(g.name.to_vec(), members);
        assert!(previous.is_none(), "group {:?} appears twice", g.name);
    }
    // Determinism: the fresh, uncached computation gives the very same result, order included.
    assert_eq!(*m, trie.lookup(subject));
    (plain, groups)
}

fn run(seed: u64, cache_capacity: usize, ops: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut trie = SubjectTrie::new(cache_capacity);
    let mut live: Vec<Live> = Vec::new();
    let mut next_key = 0u64;
    let initial_nodes = trie.node_count();
    for op in 0..ops {
        match rng.random_range(0..100) {
            0..=34 => {
                let pattern = random_pattern(&mut rng);
                let queue = QUEUES[rng.random_range(0..QUEUES.len())];
                next_key += 1;
                trie.insert(&pattern, queue.map(str::as_bytes), next_key, next_key);
                live.push(Live { pattern, queue, key: next_key });
            }
            35..=59 if !live.is_empty() => {
                let e = live.swap_remove(rng.random_range(0..live.len()));
                assert_eq!(trie.remove(&e.pattern, e.key), Some(e.key), "seed {seed} op {op}");
            }
            60..=64 => {
                // A remove that must not find anything: unknown key, or a live key under another pattern.
                let pattern = random_pattern(&mut rng);
                let key = match live.iter().find(|e| e.pattern != pattern) {
                    Some(e) if rng.random_bool(0.5) => e.key,
                    _ => u64::MAX,
                };
                assert_eq!(trie.remove(&pattern, key), None, "seed {seed} op {op}");
            }
            _ => {
                let subject = random_subject(&mut rng);
                let want = brute_force(&live, &subject);
                let got = observed(&mut trie, &subject);
                assert_eq!(got, want, "seed {seed} op {op} subject {:?}", String::from_utf8_lossy(&subject));
            }
        }
        assert_eq!(trie.len(), live.len());
        assert!(trie.cache_len() <= cache_capacity);
    }
    // Drain: every entry comes out, and the structure returns to empty.
    while let Some(e) = live.pop() {
        assert_eq!(trie.remove(&e.pattern, e.key), Some(e.key));
        let subject = random_subject(&mut rng);
        assert_eq!(observed(&mut trie, &subject), brute_force(&live, &subject));
    }
    assert!(trie.is_empty());
    assert_eq!(trie.node_count(), initial_nodes);
}

#[test]
fn trie_agrees_with_brute_force_small_cache() {
    for seed in 0..8 {
        run(seed, 8, 4_000);
    }
}

#[test]
fn trie_agrees_with_brute_force_tiny_and_no_cache() {
    run(100, 1, 3_000);
    run(101, 0, 3_000);
    run(102, 2, 3_000);
}

#[test]
fn trie_agrees_with_brute_force_large_cache() {
    // Capacity above the number of distinct subjects: nothing is ever evicted, so only invalidation keeps it right.
    run(200, 4096, 6_000);
}
