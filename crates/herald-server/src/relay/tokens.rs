//! Credentials of the relay (contract §1.1, §1.2): HS256 access tokens, opaque rotating refresh tokens and Argon2id
//! password hashes. Pure functions; the state (deny-list, refresh records, users) is the engine's.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Access-token claims. `sub`, `username`, `exp` and `iat` are required; `jti` and `permissions` are optional
/// (tokens minted elsewhere with the same secret are accepted if they follow these rules).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

pub struct Jwt {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
    /// Tokens whose signature and claims have been checked, by their exact text. A client sends the same token on
    /// every request until it expires, and decoding plus HMAC is the largest part of authenticating one; a hit only
    /// re-checks the expiry (the one check that changes with time).
    verified: RwLock<HashMap<String, Claims>>,
}

/// Verified tokens remembered at most; past this the cache starts over.
const VERIFIED_MAX: usize = 10_000;

impl Jwt {
    pub fn new(secret: &str) -> Jwt {
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Jwt {
            enc: EncodingKey::from_secret(secret.as_bytes()),
            dec: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            verified: RwLock::new(HashMap::new()),
        }
    }

    /// Mints an access token for `ttl_secs` with a fresh 32-hex `jti`.
    pub fn issue(&self, user_id: &str, username: &str, permissions: &[String], now_secs: i64, ttl_secs: i64) -> String {
        let claims = Claims {
            sub: user_id.to_string(),
            username: username.to_string(),
            permissions: Some(permissions.to_vec()),
            exp: now_secs + ttl_secs,
            iat: now_secs,
            jti: Some(uuid::Uuid::new_v4().simple().to_string()),
        };
        jsonwebtoken::encode(&Header::new(jsonwebtoken::Algorithm::HS256), &claims, &self.enc)
            .expect("HS256 signing cannot fail")
    }

    /// Checks signature, expiry and the required claims. `None` for anything wrong.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        if let Some(c) = self.verified.read().get(token) {
            // jsonwebtoken's rule with zero leeway: expired once `exp` is before now.
            return (c.exp >= jsonwebtoken::get_current_timestamp() as i64).then(|| c.clone());
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.dec, &self.validation).ok()?.claims;
        let mut verified = self.verified.write();
        if verified.len() >= VERIFIED_MAX {
            verified.clear();
        }
        verified.insert(token.to_owned(), claims.clone());
        Some(claims)
    }
}

/// A new refresh token: (`jti`, wire form `<jti>.<secret>`, sha256 of the secret in hex).
pub fn new_refresh_token() -> (String, String, String) {
    let jti = uuid::Uuid::new_v4().hyphenated().to_string();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let hash = sha256_hex(&secret);
    (jti.clone(), format!("{jti}.{secret}"), hash)
}

/// Splits `<jti>.<secret>`; `None` without a `.` or with an empty half.
pub fn split_refresh_token(token: &str) -> Option<(&str, &str)> {
    let (jti, secret) = token.split_once('.')?;
    (!jti.is_empty() && !secret.is_empty()).then_some((jti, secret))
}

pub fn sha256_hex(s: &str) -> String {
    hex_lower(&Sha256::digest(s.as_bytes()))
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn argon2() -> Argon2<'static> {
    // The reference's parameters (pwdlib's defaults): m = 64 MiB, t = 3, p = 4.
    let params = Params::new(65_536, 3, 4, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password to a PHC string (`$argon2id$v=19$m=65536,t=3,p=4$...`). CPU-heavy: call from a blocking
/// thread.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("16-byte salt");
    argon2().hash_password(password.as_bytes(), &salt).expect("Argon2 hashing").to_string()
}

/// Verifies a password against a PHC string (any Argon2 parameters). CPU-heavy: call from a blocking thread.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_tokens_round_trip_and_expire() {
        let jwt = Jwt::new("0123456789abcdef0123456789abcdef");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let t = jwt.issue("u1", "bob", &["read".into()], now, 600);
        let c = jwt.verify(&t).unwrap();
        assert_eq!((c.sub.as_str(), c.username.as_str(), c.exp - c.iat), ("u1", "bob", 600));
        assert_eq!(c.jti.unwrap().len(), 32);
        assert!(jwt.verify(&jwt.issue("u1", "bob", &[], now - 700, 600)).is_none(), "expired");
        assert!(Jwt::new("another-secret-another-secret-0000").verify(&t).is_none(), "wrong key");
        assert!(jwt.verify("garbage").is_none());
        assert_eq!(jwt.verify(&t).unwrap().sub, "u1", "a second check (from the cache) agrees");
        let short = jwt.issue("u2", "eve", &[], now - 10, 11);
        assert!(jwt.verify(&short).is_some());
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert!(jwt.verify(&short).is_none(), "a cached token still expires");
    }

    #[test]
    fn refresh_tokens_have_the_wire_form() {
        let (jti, wire, hash) = new_refresh_token();
        let (a, b) = split_refresh_token(&wire).unwrap();
        assert_eq!((a, jti.len(), b.len()), (jti.as_str(), 36, 43));
        assert_eq!(sha256_hex(b), hash);
        assert!(split_refresh_token("nodot").is_none());
        assert!(split_refresh_token(".x").is_none());
    }

    #[test]
    fn passwords_hash_in_the_reference_format() {
        let h = hash_password("12345678");
        assert!(h.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"), "{h}");
        assert!(verify_password("12345678", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not-a-hash"));
    }
}
