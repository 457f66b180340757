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

/// A session token and when it expires.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionAnswer {
    /// The bearer token.
    pub token: String,
    /// Expiry, Unix milliseconds.
    pub expires_ms: u64,
}
