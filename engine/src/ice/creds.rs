//! TURN REST credentials (draft-uberti-behave-turn-rest, as coturn's
//! `use-auth-secret` implements them): username `expiry:user`, password
//! base64(HMAC-SHA1(secret, username)).
//!
//! The password stands for the shared secret for its lifetime, so it is
//! wiped when dropped, and so are the keyed HMAC states and the tag on the
//! way to it (the crate's own HMAC-SHA1; `ring`'s HMAC key and tag cannot
//! be wiped).

use base64::Engine;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::hmac_sha1::HmacSha1;

/// A username/password pair valid until `expiry` (Unix seconds). Both are
/// wiped on drop; clone it only where a copy has to live.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
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
    let tag = Zeroizing::new(HmacSha1::new(secret).mac(&[username.as_bytes()]));
    // Encoded into a buffer of the exact size: no reallocation leaves a copy behind.
    let mut password = String::with_capacity(28);
    base64::engine::general_purpose::STANDARD.encode_string(&tag[..], &mut password);
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

    /// The password and username are wiped on drop. Reading freed memory
    /// to see it is undefined behaviour, so this checks what can be checked
    /// safely: the type wipes on drop (a compile-time bound), and wiping
    /// empties both fields.
    #[test]
    fn credentials_are_wiped() {
        fn wiped_on_drop<T: ZeroizeOnDrop>(_: &T) {}
        let mut c = rest_credentials(b"north", "alice", 1_700_000_000);
        wiped_on_drop(&c);
        c.zeroize();
        assert!(c.password.is_empty() && c.username.is_empty());
    }
}
