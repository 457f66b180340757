//! The crate's error type.

use sotto_codecs::CodecError;

/// Why a buffer could not be built, or a packet was refused (a refused
/// packet is also counted in `packetsDiscarded`).
#[derive(Debug, thiserror::Error)]
pub enum JitterError {
    /// The payload is empty or larger than the configured maximum.
    #[error("payload of {len} bytes is outside 1..={max}")]
    PayloadSize {
        /// Its length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The decoder cannot tell how much audio the payload holds, or holds
    /// a duration the buffer does not play (not a multiple of 2.5 ms, or
    /// more than 120 ms).
    #[error("undecodable payload: {0}")]
    Undecodable(String),
    /// A setting of the configuration is out of range.
    #[error("jitter buffer configuration: {0}")]
    Config(String),
    /// The codec failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
}
