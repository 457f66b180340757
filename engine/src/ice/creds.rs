//! TURN REST credentials (draft-uberti-behave-turn-rest, as coturn's
//! `use-auth-secret` implements them): username `expiry:user`, password
//! base64(HMAC-SHA1(secret, username)).

use base64::Engine;

/// A username/password pair valid until `expiry` (Unix seconds).
#[derive(Clone, PartialEq, Eq)]
pub struct RestCredentials {
    /// `expiry:user`.
    pub username: String,
    /// base64 HMAC-SHA1 of the username under the shared secret.
    pub password: String,
}

impl std::fmt::Debug for RestCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Derives REST credentials for `user` expiring at `expiry_unix`.
pub fn rest_credentials(secret: &[u8], user: &str, expiry_unix: u64) -> RestCredentials {
    let username = format!("{expiry_unix}:{user}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = ring::hmac::sign(&key, username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
    RestCredentials { username, password }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_independent_hmac_sha1() {
        // Reference computed with Python's hmac/hashlib/base64 (an independent
        // implementation): base64(hmac.new(b"north", b"1700000000:alice", sha1).digest()).
        let c = rest_credentials(b"north", "alice", 1_700_000_000);
        assert_eq!(c.username, "1700000000:alice");
        assert_eq!(c.password, REFERENCE);
    }

    const REFERENCE: &str = "Cd/49soE35ICqcJF/bCTn8Z4OyE=";
}
