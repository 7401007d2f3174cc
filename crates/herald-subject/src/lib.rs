//! NATS-style subjects (compat/nats-fluxlib.md §1.8–1.9): validation, wildcard matching, and the subscription trie
//! the engine's router uses. Being filled in; see the module docs once present.
