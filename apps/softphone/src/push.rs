//! A local UnifiedPush-style distributor: an HTTP endpoint that takes the
//! Web Push requests (RFC 8030, aes128gcm body per RFC 8291) signald sends
//! for a sleeping device and wakes that device's signalling client.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use ring::agreement::{ECDH_P256, EphemeralPrivateKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use sotto_signalling::util::b64;
use std::net::SocketAddr;
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

/// The running endpoint; stops when dropped.
pub struct Distributor {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Distributor {
    /// Serves on `bind`; each accepted push goes to the returned receiver.
    pub async fn start(bind: SocketAddr) -> std::io::Result<(Self, mpsc::Receiver<Push>)> {
        let (tx, rx) = mpsc::channel(64);
        let app = Router::new()
            .route("/push/{subscription}", post(receive))
            .with_state(tx);
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((Self { addr, task }, rx))
    }

    /// A new subscription named `name` with fresh keys.
    pub fn subscribe(&self, name: &str) -> anyhow::Result<Subscription> {
        let rng = SystemRandom::new();
        let key = EphemeralPrivateKey::generate(&ECDH_P256, &rng)
            .map_err(|_| anyhow::anyhow!("P-256 key generation failed"))?;
        let public = key
            .compute_public_key()
            .map_err(|_| anyhow::anyhow!("P-256 public key"))?;
        let mut auth = [0u8; 16];
        rng.fill(&mut auth)
            .map_err(|_| anyhow::anyhow!("random auth secret"))?;
        Ok(Subscription {
            endpoint: format!("http://{}/push/{name}", self.addr),
            p256dh: b64(public.as_ref()),
            auth: b64(&auth),
        })
    }
}

impl Drop for Distributor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(tx): State<mpsc::Sender<Push>>,
    Path(subscription): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    // RFC 8291 is the only encoding a Web Push user agent accepts.
    if h("content-encoding") != Some("aes128gcm") || body.is_empty() {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE;
    }
    let push = Push {
        subscription,
        topic: h("topic").map(str::to_owned),
        ttl: h("ttl").and_then(|t| t.parse().ok()),
        body_len: body.len(),
    };
    match tx.try_send(push) {
        Ok(()) => StatusCode::CREATED,
        Err(_) => StatusCode::TOO_MANY_REQUESTS,
    }
}
