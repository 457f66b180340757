//! Typed errors of the signalling crate.

use thiserror::Error;

/// A frame or envelope that cannot be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// Not valid JSON for this protocol.
    #[error("malformed frame")]
    Malformed,
    /// Larger than the frame limit.
    #[error("frame too large")]
    TooLarge,
    /// Another protocol version.
    #[error("unsupported protocol version")]
    Version,
    /// An id outside the allowed length or alphabet.
    #[error("invalid id")]
    BadId,
}

/// Sealing or opening a call message failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SealError {
    /// A key, encapsulation or signature is not valid encoding.
    #[error("bad encoding")]
    Encoding,
    /// The signature does not verify for the claimed sender.
    #[error("bad signature")]
    Signature,
    /// The envelope is not addressed to this device.
    #[error("wrong recipient")]
    Recipient,
    /// HPKE could not open (or seal) the payload.
    #[error("hpke failure")]
    Hpke,
    /// The message id was seen before.
    #[error("replayed message")]
    Replay,
    /// No room to remember the message id: the replay guard holds as many
    /// live ids as it may, in all or from this sender. Refused, as it
    /// could not be told from a replay later, but it need not be one.
    #[error("replay memory full")]
    Full,
    /// The timestamp is outside the accepted window.
    #[error("stale message")]
    Stale,
    /// The plaintext is not a valid payload.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

/// A storage operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Schema migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row could not be decoded.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}
