//! TURN REST credentials (the scheme coturn implements as
//! `--use-auth-secret`, and sotto-relay too): username `expiry:user`,
//! password base64(HMAC-SHA1(shared secret, username)); and the long-term
//! keys of static TURN users kept in the `turn_users` table.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;

/// Credentials for one device, valid until `expires_s`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnCredentials {
    /// `expiry:user`.
    pub username: String,
    /// base64(HMAC-SHA1(secret, username)).
    pub password: String,
    /// Seconds the credentials stay valid.
    pub ttl: u64,
    /// Relay URIs (`turn:host:port?transport=udp` …).
    pub uris: Vec<String>,
}

/// Issues credentials for `user` valid for `ttl_s` from `now_s`.
pub fn credentials(
    secret: &[u8],
    user: &str,
    now_s: u64,
    ttl_s: u64,
    uris: Vec<String>,
) -> TurnCredentials {
    let username = format!("{}:{user}", now_s + ttl_s);
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    TurnCredentials {
        username,
        password,
        ttl: ttl_s,
        uris,
    }
}

/// The long-term keys of a TURN user (RFC 8489 §9.2.2), lowercase hex:
/// `(MD5, SHA-256)` of `username ":" realm ":" password`. What the
/// `turn_users` table stores and sotto-relay loads.
pub fn long_term_keys(username: &str, realm: &str, password: &str) -> (String, String) {
    use sha2::Digest as _;
    let input = format!("{username}:{realm}:{password}");
    let md5 = hex::encode(md5::Md5::digest(input.as_bytes()));
    let sha256 = hex::encode(sha2::Sha256::digest(input.as_bytes()));
    let mut input = input;
    zeroize::Zeroize::zeroize(&mut input);
    (md5, sha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_term_keys_known_answer() {
        // `printf 'user:realm:pass' | md5sum` and `| sha256sum`.
        let (md5, sha256) = long_term_keys("user", "realm", "pass");
        assert_eq!(md5, "8493fbc53ba582fb4c044c456bdc40eb");
        assert_eq!(
            sha256,
            "07e934117abd40836e7c6329b54731b2b2d2a5f9a71f544922d75e0730d8251b"
        );
    }

    #[test]
    fn known_answer() {
        // Computed independently: printf '1700000600:alice' | openssl dgst -sha1 -hmac s3cret -binary | base64
        let c = credentials(b"s3cret", "alice", 1_700_000_000, 600, vec![]);
        assert_eq!(c.username, "1700000600:alice");
        assert_eq!(c.password, "bUIJIVaC05oyFgKsQvKAparqg1Q=");
    }
}
