//! Durable state: devices, push endpoints, sessions, and the per-device
//! message queue. One implementation over sqlx's `Any` driver runs the
//! same portable SQL (and the same migrations) on SQLite — the embedded
//! default, one file in WAL mode — and on PostgreSQL by URL.
//!
//! Every call message is stored before it is delivered and deleted only
//! when the recipient acknowledges it, so nothing accepted is lost across
//! a restart. Times are passed in as Unix milliseconds.

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor, Row};

use crate::error::StoreError;
use crate::protocol::{DeviceId, Envelope, MessageKind};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A registered push endpoint of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEndpoint {
    /// Provider name: `webpush`, `unifiedpush`, `apns` (PushKit token),
    /// `apns-app` (the app's ordinary APNs token) or `fcm`.
    pub provider: String,
    /// Push resource URL (Web Push, UnifiedPush) or device token (APNs, FCM).
    pub endpoint: String,
    /// Web Push: the user agent's P-256 public key (base64url), else empty.
    pub p256dh: String,
    /// Web Push: the 16-byte auth secret (base64url), else empty.
    pub auth: String,
}

/// A device's public keys as stored, base64url.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceKeys {
    /// Ed25519 signing key (the device id is derived from it).
    pub sign: String,
    /// X25519 sealing key.
    pub seal: String,
    /// The signing key's signature over both keys
    /// ([`crate::auth::register_bytes`]); none for devices registered
    /// before signatures were kept.
    pub reg_sig: Option<String>,
}

/// A queued message as read back for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Position in the recipient's queue (increasing).
    pub seq: i64,
    /// The envelope as JSON.
    pub body: String,
    /// Its sender.
    pub sender: String,
    /// Its message id.
    pub msg_id: String,
}

/// What happened to a message handed to [`Store::enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored at this sequence number.
    Stored(i64),
    /// The sender already used this message id inside the replay window.
    Duplicate,
    /// Not stored: the recipient already has as many unexpired messages
    /// waiting as [`QueueCaps`] allow, in all or from this sender.
    Full,
}

/// How much may wait in one recipient's queue ([`Store::enqueue_capped`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCaps {
    /// Messages in all.
    pub messages: u64,
    /// Bytes of stored envelopes in all.
    pub bytes: u64,
    /// Messages from any one sender.
    pub per_sender: u64,
}

impl QueueCaps {
    /// No caps.
    pub const UNLIMITED: Self = Self {
        messages: u64::MAX,
        bytes: u64::MAX,
        per_sender: u64::MAX,
    };
}

/// The database handle (cheap to clone).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// PostgreSQL (else SQLite), where a check and the write it guards need
    /// a lock to see each other's rows.
    postgres: bool,
}

/// The advisory lock key (PostgreSQL) of `what` for device `id`.
fn lock_key(what: &str, id: &DeviceId) -> i64 {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(what.as_bytes());
    h.update([0]);
    h.update(id.as_str().as_bytes());
    let d = h.finalize();
    i64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

impl Store {
    /// Opens (creating if needed) the database at `url` and runs the
    /// migrations. `sqlite://path` files are put in WAL mode.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let url = if sqlite && !url.contains('?') {
            format!("{url}?mode=rwc")
        } else {
            url.to_owned()
        };
        let pool = AnyPoolOptions::new()
            .max_connections(match (sqlite, url.contains(":memory:")) {
                // Each connection to :memory: would be its own database.
                (true, true) => 1,
                (true, false) => 4,
                _ => 8,
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        if sqlite {
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        MIGRATOR.run(&pool).await?;
        let postgres = url.starts_with("postgres:") || url.starts_with("postgresql:");
        Ok(Self { pool, postgres })
    }

    /// Registers (or re-registers with the same signing key) a device,
    /// keeping `reg_sig`, its signature over [`crate::auth::register_bytes`],
    /// for clients to check. The caller has verified it.
    pub async fn register_device_signed(
        &self,
        id: &DeviceId,
        sign_key: &str,
        seal_key: &str,
        reg_sig: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.put_device(id, sign_key, seal_key, Some(reg_sig), now_ms)
            .await
    }

    /// Registers a device without a registration signature. Clients refuse
    /// the keys of such a device ([`crate::client::ClientError::KeyBinding`]),
    /// so this serves only tools that never need its keys looked up (load
    /// tests that open connections).
    pub async fn register_device(
        &self,
        id: &DeviceId,
        sign_key: &str,
        seal_key: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.put_device(id, sign_key, seal_key, None, now_ms).await
    }

    async fn put_device(
        &self,
        id: &DeviceId,
        sign_key: &str,
        seal_key: &str,
        reg_sig: Option<&str>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        // The seal key and its signature change together, never one alone.
        sqlx::query(
            "INSERT INTO devices (device_id, sign_key, seal_key, reg_sig, created_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (device_id) DO UPDATE SET seal_key = excluded.seal_key, reg_sig = excluded.reg_sig",
        )
        .bind(id.as_str())
        .bind(sign_key)
        .bind(seal_key)
        .bind(reg_sig)
        .bind(now_ms as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A device's keys as registered.
    pub async fn device_keys(&self, id: &DeviceId) -> Result<Option<DeviceKeys>, StoreError> {
        let row =
            sqlx::query("SELECT sign_key, seal_key, reg_sig FROM devices WHERE device_id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| {
            Ok(DeviceKeys {
                sign: r.try_get(0)?,
                seal: r.try_get(1)?,
                reg_sig: r.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Adds or replaces a push endpoint of a device; false (and nothing
    /// stored) when it is new and the device already has `max` others.
    pub async fn put_push_endpoint(
        &self,
        id: &DeviceId,
        ep: &PushEndpoint,
        max: u32,
    ) -> Result<bool, StoreError> {
        // One statement, so the count and the insert see the same rows; on
        // SQLite that is enough (writers take turns). PostgreSQL's READ
        // COMMITTED lets concurrent statements each count without the
        // others' rows, so there the device's puts take turns under an
        // advisory lock held to the end of the transaction.
        let mut tx = self.pool.begin().await?;
        if self.postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(lock_key("push_endpoints", id))
                .execute(&mut *tx)
                .await?;
        }
        let done = sqlx::query(
            "INSERT INTO push_endpoints (device_id, provider, endpoint, p256dh, auth) \
             SELECT $1, $2, $3, $4, $5 \
             WHERE (SELECT COUNT(*) FROM push_endpoints WHERE device_id = $1 AND endpoint <> $3) < $6 \
             ON CONFLICT (device_id, endpoint) DO UPDATE SET provider = excluded.provider, \
             p256dh = excluded.p256dh, auth = excluded.auth",
        )
        .bind(id.as_str())
        .bind(ep.provider.as_str())
        .bind(ep.endpoint.as_str())
        .bind(ep.p256dh.as_str())
        .bind(ep.auth.as_str())
        .bind(i64::from(max))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// The push endpoints of a device.
    pub async fn push_endpoints(&self, id: &DeviceId) -> Result<Vec<PushEndpoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT provider, endpoint, p256dh, auth FROM push_endpoints WHERE device_id = $1 ORDER BY endpoint",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PushEndpoint {
                    provider: r.try_get(0)?,
                    endpoint: r.try_get(1)?,
                    p256dh: r.try_get(2)?,
                    auth: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Removes a dead push endpoint (the provider said 404/410/UNREGISTERED).
    pub async fn remove_push_endpoint(
        &self,
        id: &DeviceId,
        endpoint: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM push_endpoints WHERE device_id = $1 AND endpoint = $2")
            .bind(id.as_str())
            .bind(endpoint)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores a session challenge nonce for `id`.
    pub async fn put_challenge(
        &self,
        nonce: &str,
        id: &DeviceId,
        expires_ms: u64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO challenges (nonce, device_id, expires_ms) VALUES ($1, $2, $3)")
            .bind(nonce)
            .bind(id.as_str())
            .bind(expires_ms as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Consumes a challenge: true when it existed for `id` and was unexpired.
    /// A nonce can be used once only.
    pub async fn take_challenge(
        &self,
        nonce: &str,
        id: &DeviceId,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM challenges WHERE nonce = $1 AND device_id = $2 AND expires_ms > $3",
        )
        .bind(nonce)
        .bind(id.as_str())
        .bind(now_ms as i64)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores a session (by the SHA-256 of its token).
    pub async fn put_session(
        &self,
        token_hash: &str,
        id: &DeviceId,
        expires_ms: u64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO sessions (token_hash, device_id, expires_ms) VALUES ($1, $2, $3)")
            .bind(token_hash)
            .bind(id.as_str())
            .bind(expires_ms as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The device of an unexpired session.
    pub async fn session_device(
        &self,
        token_hash: &str,
        now_ms: u64,
    ) -> Result<Option<DeviceId>, StoreError> {
        let row =
            sqlx::query("SELECT device_id FROM sessions WHERE token_hash = $1 AND expires_ms > $2")
                .bind(token_hash)
                .bind(now_ms as i64)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| {
            let id: String = r.try_get(0)?;
            DeviceId::new(id).map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .transpose()
    }

    /// Stores `env` in its recipient's queue until `expires_ms`, refusing a
    /// message id the sender already used (kept until `seen_until_ms`).
    /// Uncapped: see [`Self::enqueue_capped`].
    pub async fn enqueue(
        &self,
        env: &Envelope,
        body: &str,
        expires_ms: u64,
        seen_until_ms: u64,
    ) -> Result<Enqueued, StoreError> {
        self.enqueue_capped(
            env,
            body,
            expires_ms,
            seen_until_ms,
            0,
            QueueCaps::UNLIMITED,
        )
        .await
    }

    /// [`Self::enqueue`], refusing ([`Enqueued::Full`], nothing stored, the
    /// id not used up) a message that would take its recipient's unexpired
    /// queue at `now_ms` past `caps`. Enqueues for one recipient take turns
    /// (its sequence counter row is locked first), so concurrent senders
    /// cannot overshoot the caps together.
    pub async fn enqueue_capped(
        &self,
        env: &Envelope,
        body: &str,
        expires_ms: u64,
        seen_until_ms: u64,
        now_ms: u64,
        caps: QueueCaps,
    ) -> Result<Enqueued, StoreError> {
        let mut tx = self.pool.begin().await?;
        let fresh = sqlx::query(
            "INSERT INTO seen_ids (sender, msg_id, expires_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (sender, msg_id) DO NOTHING",
        )
        .bind(env.from.as_str())
        .bind(env.id.as_str())
        .bind(seen_until_ms as i64)
        .execute(&mut *tx)
        .await?;
        if fresh.rows_affected() == 0 {
            return Ok(Enqueued::Duplicate);
        }
        let seq: i64 = sqlx::query(
            "INSERT INTO queue_counters (recipient, next_seq) VALUES ($1, 1) \
             ON CONFLICT (recipient) DO UPDATE SET next_seq = queue_counters.next_seq + 1 \
             RETURNING next_seq",
        )
        .bind(env.to.as_str())
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if caps != QueueCaps::UNLIMITED {
            let row = sqlx::query(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0), \
                 COALESCE(SUM(CASE WHEN sender = $2 THEN 1 ELSE 0 END), 0) \
                 FROM queue WHERE recipient = $1 AND expires_ms > $3",
            )
            .bind(env.to.as_str())
            .bind(env.from.as_str())
            .bind(now_ms as i64)
            .fetch_one(&mut *tx)
            .await?;
            let count: i64 = row.try_get(0)?;
            let bytes: i64 = row.try_get(1)?;
            let from_sender: i64 = row.try_get(2)?;
            let over = count as u64 >= caps.messages
                || bytes as u64 + body.len() as u64 > caps.bytes
                || from_sender as u64 >= caps.per_sender;
            if over {
                // Rolled back: neither the id nor a sequence number is used.
                return Ok(Enqueued::Full);
            }
        }
        sqlx::query(
            "INSERT INTO queue (recipient, seq, sender, msg_id, call_id, kind, body, expires_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(env.to.as_str())
        .bind(seq)
        .bind(env.from.as_str())
        .bind(env.id.as_str())
        .bind(env.call_id.as_str())
        .bind(env.kind.as_str())
        .bind(body)
        .bind(expires_ms as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Enqueued::Stored(seq))
    }

    /// Unexpired queued messages of `recipient` after `after_seq`, in order.
    pub async fn fetch(
        &self,
        recipient: &DeviceId,
        after_seq: i64,
        now_ms: u64,
        limit: i64,
    ) -> Result<Vec<Queued>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, body, sender, msg_id FROM queue \
             WHERE recipient = $1 AND seq > $2 AND expires_ms > $3 ORDER BY seq LIMIT $4",
        )
        .bind(recipient.as_str())
        .bind(after_seq)
        .bind(now_ms as i64)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Queued {
                    seq: r.try_get(0)?,
                    body: r.try_get(1)?,
                    sender: r.try_get(2)?,
                    msg_id: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Deletes a delivered message; only the recipient can (it is `recipient`).
    pub async fn ack(
        &self,
        recipient: &DeviceId,
        sender: &DeviceId,
        msg_id: &str,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM queue WHERE recipient = $1 AND sender = $2 AND msg_id = $3")
                .bind(recipient.as_str())
                .bind(sender.as_str())
                .bind(msg_id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes the delivered message at `seq` of `recipient`'s queue.
    pub async fn ack_seq(&self, recipient: &DeviceId, seq: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM queue WHERE recipient = $1 AND seq = $2")
            .bind(recipient.as_str())
            .bind(seq)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Withdraws queued offers of a call (it was cancelled or hung up).
    pub async fn withdraw_offers(
        &self,
        recipient: &DeviceId,
        call_id: &str,
    ) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM queue WHERE recipient = $1 AND call_id = $2 AND kind = $3")
                .bind(recipient.as_str())
                .bind(call_id)
                .bind(MessageKind::Offer.as_str())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    /// Whether an unexpired offer of `call_id` is queued for `recipient`
    /// (not yet acknowledged, withdrawn or expired): a wake for it is
    /// still wanted.
    pub async fn offer_queued(
        &self,
        recipient: &DeviceId,
        call_id: &str,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT seq FROM queue WHERE recipient = $1 AND call_id = $2 AND kind = $3 \
             AND expires_ms > $4 LIMIT 1",
        )
        .bind(recipient.as_str())
        .bind(call_id)
        .bind(MessageKind::Offer.as_str())
        .bind(now_ms as i64)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Whether a message ending `call_id` (hangup, cancel, busy) is queued,
    /// unexpired, for `recipient`: the device has not heard that the call
    /// ended, so a wake sent for it must be followed by a cancel push.
    pub async fn call_end_queued(
        &self,
        recipient: &DeviceId,
        call_id: &str,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT seq FROM queue WHERE recipient = $1 AND call_id = $2 \
             AND kind IN ($3, $4, $5) AND expires_ms > $6 LIMIT 1",
        )
        .bind(recipient.as_str())
        .bind(call_id)
        .bind(MessageKind::ENDS_RINGING[0].as_str())
        .bind(MessageKind::ENDS_RINGING[1].as_str())
        .bind(MessageKind::ENDS_RINGING[2].as_str())
        .bind(now_ms as i64)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Records that `device` is connected to `node`.
    pub async fn set_presence(
        &self,
        device: &DeviceId,
        node: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO presence (device_id, node_id, since_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (device_id) DO UPDATE SET node_id = excluded.node_id, since_ms = excluded.since_ms",
        )
        .bind(device.as_str())
        .bind(node)
        .bind(now_ms as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Clears `device`'s presence if `node` (still) holds it.
    pub async fn clear_presence(&self, device: &DeviceId, node: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM presence WHERE device_id = $1 AND node_id = $2")
            .bind(device.as_str())
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Clears every presence of `node` (at start-up after a crash).
    pub async fn clear_node(&self, node: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM presence WHERE node_id = $1")
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The node holding `device`'s connection, if any.
    pub async fn presence(&self, device: &DeviceId) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT node_id FROM presence WHERE device_id = $1")
            .bind(device.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Deletes expired messages, ids, challenges and sessions.
    pub async fn sweep(&self, now_ms: u64) -> Result<(), StoreError> {
        for sql in [
            "DELETE FROM queue WHERE expires_ms <= $1",
            "DELETE FROM seen_ids WHERE expires_ms <= $1",
            "DELETE FROM challenges WHERE expires_ms <= $1",
            "DELETE FROM sessions WHERE expires_ms <= $1",
        ] {
            sqlx::query(sql)
                .bind(now_ms as i64)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Adds or replaces the static TURN user `username` of `realm`,
    /// storing only its long-term keys (see [`crate::turn::long_term_keys`]).
    /// sotto-relay sees the change on its next start or SIGHUP.
    pub async fn put_turn_user(
        &self,
        realm: &str,
        username: &str,
        password: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let (md5, sha256) = crate::turn::long_term_keys(username, realm, password);
        sqlx::query(
            "INSERT INTO turn_users (realm, username, key_md5, key_sha256, created_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (realm, username) DO UPDATE SET key_md5 = excluded.key_md5, key_sha256 = excluded.key_sha256",
        )
        .bind(realm)
        .bind(username)
        .bind(md5)
        .bind(sha256)
        .bind(now_ms as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes a static TURN user; false if there was none.
    pub async fn remove_turn_user(&self, realm: &str, username: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM turn_users WHERE realm = $1 AND username = $2")
            .bind(realm)
            .bind(username)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The static TURN usernames of `realm`, sorted.
    pub async fn turn_users(&self, realm: &str) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT username FROM turn_users WHERE realm = $1 ORDER BY username")
                .bind(realm)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Closes the pool, flushing SQLite's WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CallId, MessageId, PROTOCOL_VERSION};

    pub(crate) fn env(from: &str, to: &str, id: &str, kind: MessageKind) -> Envelope {
        Envelope {
            v: PROTOCOL_VERSION,
            id: MessageId::new(id).unwrap(),
            from: DeviceId::new(from).unwrap(),
            to: DeviceId::new(to).unwrap(),
            call_id: CallId::new("c1").unwrap(),
            kind,
            ts_ms: 0,
            enc: String::new(),
            ct: String::new(),
            sig: String::new(),
        }
    }

    #[tokio::test]
    async fn queue_is_ordered_deduplicated_acked_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = Store::open(&url).await.unwrap();
        let bob = DeviceId::new("bob").unwrap();
        let alice = DeviceId::new("alice").unwrap();
        let e1 = env("alice", "bob", "m1", MessageKind::Offer);
        let e2 = env("alice", "bob", "m2", MessageKind::Ice);
        assert_eq!(
            store.enqueue(&e1, "one", 10_000, 10_000).await.unwrap(),
            Enqueued::Stored(1)
        );
        assert_eq!(
            store.enqueue(&e2, "two", 10_000, 10_000).await.unwrap(),
            Enqueued::Stored(2)
        );
        assert_eq!(
            store.enqueue(&e1, "one", 10_000, 10_000).await.unwrap(),
            Enqueued::Duplicate
        );
        store.close().await;

        let store = Store::open(&url).await.unwrap();
        let q = store.fetch(&bob, 0, 5_000, 10).await.unwrap();
        assert_eq!(
            q.iter().map(|q| q.body.as_str()).collect::<Vec<_>>(),
            ["one", "two"]
        );
        assert!(store.ack(&bob, &alice, "m1").await.unwrap());
        // Only the recipient's own queue is touched.
        assert!(!store.ack(&alice, &alice, "m2").await.unwrap());
        let q = store.fetch(&bob, 0, 5_000, 10).await.unwrap();
        assert_eq!(q.len(), 1);
        // Sequence keeps increasing after the queue drains.
        store.ack(&bob, &alice, "m2").await.unwrap();
        let e3 = env("alice", "bob", "m3", MessageKind::Offer);
        assert_eq!(
            store.enqueue(&e3, "3", 10_000, 10_000).await.unwrap(),
            Enqueued::Stored(3)
        );
        // Expired messages are not delivered.
        assert!(store.fetch(&bob, 0, 10_000, 10).await.unwrap().is_empty());
        assert_eq!(store.withdraw_offers(&bob, "c1").await.unwrap(), 1);
    }

    #[tokio::test]
    async fn queues_are_capped_per_recipient_and_per_sender() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let bob = DeviceId::new("bob").unwrap();
        let caps = QueueCaps {
            messages: 3,
            bytes: 100,
            per_sender: 2,
        };
        let put = |from: &str, id: &str, body: &str, expires: u64| {
            let e = env(from, "bob", id, MessageKind::Ice);
            let (store, body) = (store.clone(), body.to_owned());
            async move {
                store
                    .enqueue_capped(&e, &body, expires, 10_000, 1_000, caps)
                    .await
                    .unwrap()
            }
        };
        assert!(matches!(
            put("a", "1", "x", 5_000).await,
            Enqueued::Stored(_)
        ));
        assert!(matches!(
            put("a", "2", "x", 5_000).await,
            Enqueued::Stored(_)
        ));
        // Alice has her share; Carol still gets in, up to the total.
        assert_eq!(put("a", "3", "x", 5_000).await, Enqueued::Full);
        assert!(matches!(
            put("c", "1", "x", 5_000).await,
            Enqueued::Stored(_)
        ));
        assert_eq!(put("d", "1", "x", 5_000).await, Enqueued::Full);
        // A refused id was not used up, nor a sequence number.
        store
            .ack(&bob, &DeviceId::new("a").unwrap(), "1")
            .await
            .unwrap();
        assert_eq!(put("a", "3", "x", 5_000).await, Enqueued::Stored(4));
        // Bytes count too.
        store
            .ack(&bob, &DeviceId::new("a").unwrap(), "2")
            .await
            .unwrap();
        assert_eq!(
            put("d", "big", &"x".repeat(99), 5_000).await,
            Enqueued::Full
        );
        assert!(matches!(
            put("d", "small", "x", 5_000).await,
            Enqueued::Stored(_)
        ));
        // Expired messages do not count, swept or not.
        let store2 = Store::open("sqlite::memory:").await.unwrap();
        let e = env("e", "bob", "new", MessageKind::Ice);
        for from in ["a", "c", "d"] {
            let e = env(from, "bob", "old", MessageKind::Ice);
            store2
                .enqueue_capped(&e, "x", 500, 10_000, 0, caps)
                .await
                .unwrap();
        }
        let fresh = store2
            .enqueue_capped(&e, "x", 5_000, 10_000, 1_000, caps)
            .await;
        assert!(matches!(fresh.unwrap(), Enqueued::Stored(_)));
    }

    #[tokio::test]
    async fn push_endpoints_are_capped_per_device() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let (d, e) = (DeviceId::new("d").unwrap(), DeviceId::new("e").unwrap());
        let ep = |n: u32| PushEndpoint {
            provider: "fcm".into(),
            endpoint: format!("t{n}"),
            p256dh: String::new(),
            auth: String::new(),
        };
        for n in 0..3 {
            assert!(store.put_push_endpoint(&d, &ep(n), 3).await.unwrap());
        }
        assert!(!store.put_push_endpoint(&d, &ep(3), 3).await.unwrap());
        // Replacing one it has is not adding one; other devices are apart.
        assert!(store.put_push_endpoint(&d, &ep(1), 3).await.unwrap());
        assert!(store.put_push_endpoint(&e, &ep(3), 3).await.unwrap());
        assert_eq!(store.push_endpoints(&d).await.unwrap().len(), 3);
        store.remove_push_endpoint(&d, "t0").await.unwrap();
        assert!(store.put_push_endpoint(&d, &ep(3), 3).await.unwrap());
    }

    #[tokio::test]
    async fn challenges_are_single_use() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let d = DeviceId::new("d").unwrap();
        store.put_challenge("n1", &d, 100).await.unwrap();
        assert!(
            !store
                .take_challenge("n1", &DeviceId::new("e").unwrap(), 0)
                .await
                .unwrap()
        );
        assert!(store.take_challenge("n1", &d, 0).await.unwrap());
        assert!(!store.take_challenge("n1", &d, 0).await.unwrap());
        store.put_challenge("n2", &d, 100).await.unwrap();
        assert!(!store.take_challenge("n2", &d, 100).await.unwrap());
    }

    #[tokio::test]
    async fn turn_users_are_per_realm_and_replaceable() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        store.put_turn_user("r", "bob", "pw", 1).await.unwrap();
        store.put_turn_user("r", "alice", "old", 1).await.unwrap();
        store.put_turn_user("r", "alice", "new", 2).await.unwrap();
        store
            .put_turn_user("other", "carol", "pw", 1)
            .await
            .unwrap();
        assert_eq!(store.turn_users("r").await.unwrap(), ["alice", "bob"]);
        let row =
            sqlx::query("SELECT key_md5 FROM turn_users WHERE realm = 'r' AND username = 'alice'")
                .fetch_one(&store.pool)
                .await
                .unwrap();
        let md5: String = row.try_get(0).unwrap();
        assert_eq!(md5, crate::turn::long_term_keys("alice", "r", "new").0);
        assert!(store.remove_turn_user("r", "bob").await.unwrap());
        assert!(!store.remove_turn_user("r", "bob").await.unwrap());
        assert_eq!(store.turn_users("r").await.unwrap(), ["alice"]);
    }
}
