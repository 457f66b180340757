//! A local UnifiedPush-style distributor: an HTTP endpoint that takes the
//! Web Push requests (RFC 8030, aes128gcm body per RFC 8291) signald sends
//! for a sleeping device, decrypts each with its subscription's keys as
//! the device's user agent would, and hands it on to wake that device's
//! signalling client.
//!
//! The user agent's keys and decryption are signald's crate's
//! ([`sotto_signalling::push::webpush`]: [`UaKeys`], [`decrypt`]), beside
//! the encryption signald pushes with; this is only the receiving end.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use sotto_signalling::push::webpush::{DecryptError, UaKeys, decrypt};
use sotto_signalling::util::b64;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// One push as received.
#[derive(Debug, Clone)]
pub struct Push {
    /// The subscription it was for (the endpoint's last path segment).
    pub subscription: String,
    /// `Topic` header (signald collapses by call id).
    pub topic: Option<String>,
    /// `TTL` header, seconds.
    pub ttl: Option<u64>,
    /// Encrypted body length.
    pub body_len: usize,
    /// The message, decrypted with the subscription's keys, or why it
    /// could not be.
    pub message: Result<Vec<u8>, DecryptError>,
}

/// What signald pushes to a device about a call (the JSON of its
/// `PushMessage::payload`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct CallPush {
    /// The call.
    pub call_id: String,
    /// `wake` (a call waits at signald) or `cancel` (it no longer does).
    pub kind: String,
}

impl CallPush {
    /// Parses a decrypted push.
    pub fn parse(message: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(message)
    }
}

/// A subscription's public keys, as a user agent registers them.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Endpoint URL the server posts to.
    pub endpoint: String,
    /// `p256dh`: the user agent's P-256 public key (base64url).
    pub p256dh: String,
    /// `auth`: 16 random bytes (base64url).
    pub auth: String,
}

/// What the endpoint's handler shares: where pushes go, and each
/// subscription's keys.
#[derive(Clone)]
struct Shared {
    tx: mpsc::Sender<Push>,
    keys: Arc<Mutex<HashMap<String, UaKeys>>>,
}

/// The running endpoint; stops when dropped.
pub struct Distributor {
    addr: SocketAddr,
    keys: Arc<Mutex<HashMap<String, UaKeys>>>,
    task: JoinHandle<()>,
}

impl Distributor {
    /// Serves on `bind`; each accepted push goes to the returned receiver.
    pub async fn start(bind: SocketAddr) -> std::io::Result<(Self, mpsc::Receiver<Push>)> {
        let (tx, rx) = mpsc::channel(64);
        let keys = Arc::new(Mutex::new(HashMap::new()));
        let app = Router::new()
            .route("/push/{subscription}", post(receive))
            .with_state(Shared {
                tx,
                keys: Arc::clone(&keys),
            });
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((Self { addr, keys, task }, rx))
    }

    /// A new subscription named `name` with fresh keys (replacing any
    /// earlier one of that name).
    pub fn subscribe(&self, name: &str) -> anyhow::Result<Subscription> {
        let keys = UaKeys::generate()?;
        let sub = Subscription {
            endpoint: format!("http://{}/push/{name}", self.addr),
            p256dh: b64(keys.public()),
            auth: b64(keys.auth()),
        };
        self.keys
            .lock()
            .map_err(|_| anyhow::anyhow!("push keys poisoned"))?
            .insert(name.to_owned(), keys);
        Ok(sub)
    }
}

impl Drop for Distributor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(shared): State<Shared>,
    Path(subscription): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    // RFC 8291 is the only encoding a Web Push user agent accepts.
    if h("content-encoding") != Some("aes128gcm") || body.is_empty() {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE;
    }
    let keys = shared
        .keys
        .lock()
        .ok()
        .and_then(|k| k.get(&subscription).cloned());
    // No such subscription: gone, as a push service says (RFC 8030 §7.3).
    let Some(keys) = keys else {
        return StatusCode::GONE;
    };
    // A push service would deliver it as it is; this one is also the user
    // agent, so it decrypts, and says what it found (a push that does not
    // decrypt is still accepted, to fail the demo rather than be retried).
    let push = Push {
        subscription,
        topic: h("topic").map(str::to_owned),
        ttl: h("ttl").and_then(|t| t.parse().ok()),
        body_len: body.len(),
        message: decrypt(&keys, &body),
    };
    match shared.tx.try_send(push) {
        Ok(()) => StatusCode::CREATED,
        Err(_) => StatusCode::TOO_MANY_REQUESTS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decrypts_what_signald_encrypts_for_a_wake() {
        use sotto_signalling::protocol::CallId;
        use sotto_signalling::push::{PushKind, PushMessage, webpush};
        let ua = UaKeys::generate().unwrap();
        let msg = PushMessage {
            call_id: CallId::random(),
            kind: PushKind::Wake,
            ttl_s: 30,
        };
        let body = webpush::encrypt(ua.public(), ua.auth(), msg.payload().as_bytes()).unwrap();
        let push = CallPush::parse(&decrypt(&ua, &body).unwrap()).unwrap();
        assert_eq!(
            push,
            CallPush {
                call_id: msg.call_id.as_str().to_owned(),
                kind: "wake".into(),
            }
        );
        // Another subscription's keys open nothing.
        let other = UaKeys::generate().unwrap();
        assert_eq!(decrypt(&other, &body), Err(DecryptError::Open));
    }
}
