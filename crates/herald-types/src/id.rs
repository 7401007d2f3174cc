//! Generated identifiers.
//!
//! Message ids, job ids and session ids are 32 lowercase hexadecimal characters (16 random bytes), the format
//! FlowMesh clients know. Clients treat them as opaque strings.

use rand::RngCore;

/// A fresh random 128-bit id as 32 lowercase hex characters.
pub fn new_id() -> String {
    hex::encode(new_id_bytes())
}

/// A fresh random 128-bit id as raw bytes (what the engine stores; render it with [`to_hex`]).
pub fn new_id_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// The 32-character lowercase hex form of an id.
pub fn to_hex(id: &[u8; 16]) -> String {
    hex::encode(id)
}

/// The raw 16 bytes of an id produced by [`new_id`], or `None` if `id` is not 32 hex characters.
pub fn id_bytes(id: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    hex::decode_to_slice(id, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_lowercase_hex_and_distinct() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
        assert_ne!(a, b);
        assert_eq!(hex::encode(id_bytes(&a).unwrap()), a);
        assert!(id_bytes("xyz").is_none());
    }
}
