//! What devices sign to register and to open a session. Domain-separated
//! so a signature made for one purpose is useless for another.

use serde::{Deserialize, Serialize};

use crate::protocol::DeviceId;

/// How long a session challenge nonce stays valid, milliseconds.
pub const CHALLENGE_TTL_MS: u64 = 60_000;

/// Bytes signed to register keys (proves possession of the signing key).
pub fn register_bytes(sign_key_b64: &str, seal_key_b64: &str) -> Vec<u8> {
    [
        b"sotto-register v1\0",
        sign_key_b64.as_bytes(),
        b"\0",
        seal_key_b64.as_bytes(),
    ]
    .concat()
}

/// Bytes signed to answer a session challenge.
pub fn session_bytes(device: &DeviceId, nonce: &str) -> Vec<u8> {
    [
        b"sotto-session v1\0",
        device.as_str().as_bytes(),
        b"\0",
        nonce.as_bytes(),
    ]
    .concat()
}

/// A session token and when it expires. Its `Debug` form leaves the token
/// out, so that logging the answer does not log a bearer credential.
#[derive(Clone, Serialize, Deserialize)]
pub struct SessionAnswer {
    /// The bearer token.
    pub token: String,
    /// Expiry, Unix milliseconds.
    pub expires_ms: u64,
}

impl std::fmt::Debug for SessionAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionAnswer")
            .field("token", &"<redacted>")
            .field("expires_ms", &self.expires_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_answer_does_not_print_its_token() {
        let a = SessionAnswer {
            token: "s3cr3t-bearer".into(),
            expires_ms: 5,
        };
        let shown = format!("{a:?}");
        assert!(!shown.contains("s3cr3t-bearer"), "{shown}");
        assert!(shown.contains('5'), "{shown}");
    }
}
