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
    /// live ids from this sender as it may. Refused, as it could not be
    /// told from a replay later, but it need not be one.
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
///
/// The database's error is shown with its causes in this error's own
/// text, once, and is not also its `source()`: printed with `{}` or with
/// anyhow's `{:#}`, each cause appears once.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database: {}", crate::util::error_chain(.0))]
    Db(sqlx::Error),
    /// Schema migration failed.
    #[error("migration: {}", crate::util::error_chain(.0))]
    Migrate(sqlx::migrate::MigrateError),
    /// A stored row could not be decoded.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::Migrate(e)
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_database_error_shows_its_cause_once() {
        // A directory where the database file should be: SQLite cannot open it.
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().display());
        let e = crate::store::Store::open(&url).await.unwrap_err();
        let plain = e.to_string();
        let chained = format!("{:#}", anyhow::Error::new(e));
        assert_eq!(plain, chained, "{{:#}} adds nothing {{}} does not show");
        let parts: Vec<&str> = plain.split(": ").collect();
        let mut seen = std::collections::HashSet::new();
        for p in &parts {
            assert!(seen.insert(*p), "{p:?} twice in {plain:?}");
        }
        assert!(plain.starts_with("database: "), "{plain}");
    }

    #[tokio::test]
    async fn an_http_error_shows_its_cause_once() {
        // Nothing listens on a port just released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = reqwest::get(format!("http://127.0.0.1:{port}/"))
            .await
            .unwrap_err();
        let e = crate::client::ClientError::from(e);
        let plain = e.to_string();
        let chained = format!("{:#}", anyhow::Error::new(e));
        assert_eq!(plain, chained);
        assert_eq!(plain.matches("error sending request").count(), 1, "{plain}");
        // The cause below reqwest's own text is kept.
        assert!(plain.to_lowercase().contains("refused"), "{plain}");
    }
}
