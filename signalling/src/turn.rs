//! TURN REST credentials (the scheme coturn implements as
//! `--use-auth-secret`, and sotto-relay too): username `expiry:user`,
//! password base64(HMAC-SHA1(shared secret, username)).

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer() {
        // Computed independently: printf '1700000600:alice' | openssl dgst -sha1 -hmac s3cret -binary | base64
        let c = credentials(b"s3cret", "alice", 1_700_000_000, 600, vec![]);
        assert_eq!(c.username, "1700000600:alice");
        assert_eq!(c.password, "bUIJIVaC05oyFgKsQvKAparqg1Q=");
    }
}
