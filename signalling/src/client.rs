//! The device side: HTTP calls (register, session, push endpoint, keys,
//! TURN credentials) and a WebSocket connection with reconnect and
//! back-off, resend of unacknowledged messages, exactly-once delivery to
//! the app (also across restarts, given a file to remember messages in:
//! [`SignalClient::with_replay_file`]), and a push-wake entry point.
//!
//! [`ClientCore`] is the sans-IO state machine; [`Connection`] is its thin
//! tokio driver.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::json;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use zeroize::Zeroizing;

use crate::auth;
use crate::auth::{Origin, SessionAnswer};
use crate::error::SealError;
use crate::protocol::{
    CallId, ClientFrame, DeviceId, Envelope, ErrorCode, MAX_FRAME_BYTES, MessageId, MessageKind,
    PROTOCOL_VERSION, ServerFrame,
};
use crate::replay_file::ReplayFile;
use crate::seal::{CallPayload, DeviceIdentity, DevicePublic, ReplayGuard};
use crate::turn::TurnCredentials;
use crate::util::unix_ms;

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        Self::Http(e)
    }
}

/// Client failures.
#[derive(Debug, Error)]
pub enum ClientError {
    /// HTTP transport failure, shown with its causes, each once (it is
    /// not also this error's `source()`, so `{:#}` does not repeat it).
    #[error("http: {}", crate::util::error_chain(.0))]
    Http(reqwest::Error),
    /// The server answered with an error status.
    #[error("server answered {0}")]
    Status(u16),
    /// The server's answer was not what the API promises (including an
    /// answer larger than [`MAX_FRAME_BYTES`]).
    #[error("unexpected answer")]
    Answer,
    /// Sealing failed.
    #[error(transparent)]
    Seal(#[from] crate::error::SealError),
    /// The connection's driver task has stopped.
    #[error("connection closed")]
    Closed,
    /// The directory's keys for a device are not the ones that device
    /// signed at registration (a swapped sealing key, or a device that has
    /// not registered since signatures were kept): they are refused.
    #[error("directory keys of {0} are not signed by that device")]
    KeyBinding(DeviceId),
    /// The TLS set-up could not be built (e.g. CA certificates that do
    /// not parse).
    #[error("TLS set-up: {0}")]
    Tls(String),
    /// The base URL the client was given has no `http:` or `https:`
    /// origin to sign a login for.
    #[error("base URL {0:?}: {1}")]
    BaseUrl(String, crate::auth::OriginError),
    /// The server refused a login signed for the origin of this client's
    /// base URL (421 `wrong_origin`): it does not answer to that origin.
    /// Either the base URL is not the server's public URL (its
    /// `public_origins` setting lists those), or the login was passed on
    /// to another server than the one this client talks to.
    #[error("the server does not answer to {0}, the origin this login was signed for")]
    WrongOrigin(Origin),
}

impl ClientError {
    /// Whether trying again later may succeed (transport failures, an
    /// expired session, rate limits and server errors), as opposed to an
    /// answer that will not change (unknown device, keys that do not verify).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Http(_) | Self::Closed => true,
            Self::Status(s) => matches!(s, 401 | 408 | 429 | 500..),
            Self::Answer
            | Self::Seal(_)
            | Self::KeyBinding(_)
            | Self::Tls(_)
            | Self::BaseUrl(..)
            | Self::WrongOrigin(_) => false,
        }
    }
}

/// HTTP side of the client, bound to one device identity and server.
#[derive(Debug, Clone)]
pub struct SignalClient {
    base: String,
    identity: Arc<DeviceIdentity>,
    http: reqwest::Client,
    /// TLS for `https://` and `wss://`: one config, so that HTTP and the
    /// WebSocket trust the same roots.
    tls: Arc<rustls::ClientConfig>,
    /// The ids of the messages handed to the app, kept across restarts
    /// ([`Self::with_replay_file`]); shared by clones and connections.
    replay: Option<Arc<Mutex<ReplayFile>>>,
    /// How often a connection pings the server ([`PING_INTERVAL`]).
    ping_interval: Duration,
}

/// How often a connected client pings the server. A connection that
/// shows no sign of life (any frame, a pong included) for two of these is
/// taken for dead and replaced: a network that changed under a TCP
/// connection leaves it open on our side with nothing ever arriving, and
/// calls would then reach the device only by push, or not at all.
pub const PING_INTERVAL: Duration = Duration::from_secs(15);

/// TLS trusting the Web PKI's roots and the CA certificates in
/// `extra_roots_pem`.
fn tls_config(extra_roots_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in CertificateDer::pem_slice_iter(extra_roots_pem) {
        let cert = cert.map_err(|e| ClientError::Tls(format!("CA certificates: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| ClientError::Tls(format!("CA certificate: {e}")))?;
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl SignalClient {
    /// A client of the server at `base` (`http://host:port`, or
    /// `https://host` with a certificate from the Web PKI; the WebSocket
    /// then runs over TLS too).
    pub fn new(base: impl Into<String>, identity: Arc<DeviceIdentity>) -> Self {
        Self::with_extra_roots(base, identity, &[])
            .expect("the Web PKI roots alone make a TLS config and a client")
    }

    /// A client that also trusts the CA certificates in `pem` (PEM text),
    /// for a server whose certificate comes from a deployment's own CA.
    pub fn with_extra_roots(
        base: impl Into<String>,
        identity: Arc<DeviceIdentity>,
        pem: &[u8],
    ) -> Result<Self, ClientError> {
        let tls = tls_config(pem)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .use_preconfigured_tls((*tls).clone())
            .build()?;
        Ok(Self {
            base: base.into().trim_end_matches('/').to_owned(),
            identity,
            http,
            tls,
            replay: None,
            ping_interval: PING_INTERVAL,
        })
    }

    /// Pings the server every `every` instead of [`PING_INTERVAL`] (at
    /// least 100 ms).
    pub fn with_ping_interval(mut self, every: Duration) -> Self {
        self.ping_interval = every.max(Duration::from_millis(100));
        self
    }

    /// Remembers the messages this client hands to the app in the file at
    /// `path`, so that a redelivery is refused even after the app restarts.
    ///
    /// Without it, the replay memory lives only as long as the process: an
    /// app started afresh (as when a push wakes a sleeping phone) accepts
    /// again any message the server delivered in the last five minutes —
    /// a malicious or broken server could make an old call offer ring the
    /// phone again. With it, each message's (sender, id) is written to
    /// the file before [`ClientEvent::Message`] hands it to the app (an
    /// offer's flushed to the disk), so an offer is surfaced at most once
    /// even across a crash, and any message across a restart; its
    /// redelivery is acknowledged and dropped without an event, as within
    /// one run. (A crash between the write and the app acting on the
    /// message loses it: at most once wins over at least once.)
    ///
    /// Give each device identity its own file, in the app's private data
    /// directory (not a cache the system may clear). Clones of this client
    /// and all their connections share it; other clients, in this process
    /// or another (a running `listen` and a `call` started beside it), may
    /// open the same file: they take turns on it under an advisory lock on
    /// a companion file (the path with `.lock` appended), and each reads
    /// what the others wrote before it decides, so a message is handed to
    /// at most one of them. It holds only device ids, message ids and
    /// timestamps, is created with mode 0600, and is a few kilobytes in
    /// ordinary use (some 20 MB at worst: 100 000 ids, five minutes'
    /// worth). Opening reads and rewrites it (blocking I/O); later writes,
    /// one `fsync` per offer, run on tokio's blocking threads.
    ///
    /// A damaged file (a crash mid-write, a truncation, garbage) is not an
    /// error: what is readable is kept, a warning is logged through
    /// `tracing`, and messages whose ids were lost are accepted again — see
    /// [`crate::replay_file`] for why that beats refusing them. The error
    /// is a path that cannot be read or written at all (a missing
    /// directory, no permission); the app may then go on with the client
    /// it had, which keeps its replay memory in RAM only.
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # use sotto_signalling::client::SignalClient;
    /// # use sotto_signalling::seal::DeviceIdentity;
    /// # fn run(identity: Arc<DeviceIdentity>, data_dir: &std::path::Path) -> std::io::Result<()> {
    /// let client = SignalClient::new("https://signal.example.net", identity)
    ///     .with_replay_file(data_dir.join("replay"))?;
    /// # Ok(()) }
    /// ```
    pub fn with_replay_file(mut self, path: impl AsRef<Path>) -> std::io::Result<Self> {
        let file = ReplayFile::open(path.as_ref(), ReplayGuard::default(), unix_ms())?;
        self.replay = Some(Arc::new(Mutex::new(file)));
        Ok(self)
    }

    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        self.identity.device_id()
    }

    /// This device's keys.
    pub fn identity(&self) -> &Arc<DeviceIdentity> {
        &self.identity
    }

    async fn json(&self, req: reqwest::RequestBuilder) -> Result<serde_json::Value, ClientError> {
        let mut res = req.send().await?;
        if !res.status().is_success() {
            return Err(ClientError::Status(res.status().as_u16()));
        }
        if res.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(serde_json::Value::Null);
        }
        // The server is not trusted with our memory: read at most a frame's
        // worth, whatever content-length it announces (or omits).
        if res
            .content_length()
            .is_some_and(|n| n > MAX_FRAME_BYTES as u64)
        {
            return Err(ClientError::Answer);
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await? {
            if body.len() + chunk.len() > MAX_FRAME_BYTES {
                return Err(ClientError::Answer);
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|_| ClientError::Answer)
    }

    fn post(&self, path: &str, body: serde_json::Value) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    /// Registers this device's public keys.
    pub async fn register(&self) -> Result<DeviceId, ClientError> {
        let p = self.identity.public();
        let (sign, seal) = (p.sign_b64(), p.seal_b64());
        let sig = self.identity.sign(&auth::register_bytes(&sign, &seal));
        let v = self
            .json(self.post(
                "/v1/devices",
                json!({"sign_key": sign, "seal_key": seal, "sig": sig}),
            ))
            .await?;
        serde_json::from_value(v["device_id"].clone()).map_err(|_| ClientError::Answer)
    }

    /// Opens a session: fetches a challenge and signs it, together with
    /// the origin of this client's base URL ([`auth::session_bytes`]), so
    /// the signature opens a session on that server only.
    /// [`ClientError::WrongOrigin`] when the server does not answer to
    /// that origin.
    pub async fn login(&self) -> Result<String, ClientError> {
        let origin =
            Origin::of_url(&self.base).map_err(|e| ClientError::BaseUrl(self.base.clone(), e))?;
        let me = self.device_id();
        let v = self
            .json(self.post("/v1/challenge", json!({"device_id": me})))
            .await?;
        let nonce = v["nonce"].as_str().ok_or(ClientError::Answer)?;
        let sig = self
            .identity
            .sign(&auth::session_bytes(&origin, &me, nonce));
        let body = json!({"device_id": me, "origin": origin.as_str(), "nonce": nonce, "sig": sig});
        let v = match self.json(self.post("/v1/session", body)).await {
            Err(ClientError::Status(421)) => return Err(ClientError::WrongOrigin(origin)),
            other => other?,
        };
        let s: SessionAnswer = serde_json::from_value(v).map_err(|_| ClientError::Answer)?;
        Ok(s.token)
    }

    /// Registers a push endpoint (`webpush`, `unifiedpush`, `fcm`, `apns`
    /// for an iOS PushKit token, `apns-app` for the app's ordinary APNs
    /// device token, which gets call cancels).
    pub async fn put_push(
        &self,
        token: &str,
        provider: &str,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
    ) -> Result<(), ClientError> {
        let body =
            json!({"provider": provider, "endpoint": endpoint, "p256dh": p256dh, "auth": auth});
        let req = self
            .http
            .put(format!("{}/v1/push", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string());
        self.json(req).await.map(|_| ())
    }

    /// Another device's public keys, from the server's directory.
    pub async fn device_keys(
        &self,
        token: &str,
        id: &DeviceId,
    ) -> Result<DevicePublic, ClientError> {
        let req = self
            .http
            .get(format!("{}/v1/devices/{id}/keys", self.base))
            .bearer_auth(token);
        directory_keys(id, &self.json(req).await?)
    }

    /// TURN credentials for this device.
    pub async fn turn_credentials(&self, token: &str) -> Result<TurnCredentials, ClientError> {
        let req = self
            .http
            .get(format!("{}/v1/turn", self.base))
            .bearer_auth(token);
        serde_json::from_value(self.json(req).await?).map_err(|_| ClientError::Answer)
    }

    /// Starts the connection driver. With `wake_now` false the device stays
    /// asleep until [`Connection::on_push_received`] or a send.
    pub fn connect(&self, wake_now: bool) -> Connection {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let driver = Driver {
            client: self.clone(),
            core: ClientCore::new(),
            cmds: cmd_rx,
            events: ev_tx,
            token: None,
            keys: HashMap::new(),
            awake: wake_now,
        };
        tokio::spawn(driver.run());
        Connection {
            client: self.clone(),
            cmds: cmd_tx,
            events: ev_rx,
        }
    }
}

/// Checks a key-directory answer for `id` (`sign_key`, `seal_key`, `sig`)
/// without trusting the directory: the id is derived from the signing key,
/// and the signing key must have signed both keys at registration, so a
/// server can swap neither.
pub fn directory_keys(
    id: &DeviceId,
    answer: &serde_json::Value,
) -> Result<DevicePublic, ClientError> {
    let (Some(sign), Some(seal)) = (answer["sign_key"].as_str(), answer["seal_key"].as_str())
    else {
        return Err(ClientError::Answer);
    };
    let public = DevicePublic::from_b64(sign, seal)?;
    let signed = answer["sig"].as_str().is_some_and(|sig| {
        crate::seal::verify_b64(&public.sign, &auth::register_bytes(sign, seal), sig).is_ok()
    });
    if public.device_id() != *id || !signed {
        return Err(ClientError::KeyBinding(id.clone()));
    }
    Ok(public)
}

/// What the app learns from its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// Connected (or reconnected) to the server.
    Connected,
    /// The connection dropped; the driver reconnects with back-off.
    Disconnected,
    /// A verified, opened call message (each exactly once).
    Message {
        /// The message's routing header.
        envelope: Box<Envelope>,
        /// The opened payload.
        payload: Box<CallPayload>,
    },
    /// The server stored a message we sent.
    Accepted(MessageId),
    /// The server stored a message we sent for a recipient that is not
    /// connected: it waits this long for it to connect (an offer also
    /// wakes it by push, if it can be woken), then is dropped.
    Queued(MessageId, Duration),
    /// The server refused a message we sent; it was not stored and is not
    /// resent. [`ErrorCode::Stale`]: its timestamp left the server's window
    /// (a resend after a long outage, or this device's clock is off); seal
    /// it again if it still matters.
    Rejected(MessageId, ErrorCode),
    /// A delivered message failed verification, was outside the replay
    /// window, or came while the replay guard had no room for its id (it
    /// holds at most 100 000, and 1 000 from any one sender), and was
    /// dropped.
    Dropped(MessageId),
}

/// What the core wants the driver to do with a delivered envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreEvent {
    /// A new envelope to verify and open ([`ClientCore::open`]), then
    /// acknowledge.
    Deliver(Box<Envelope>),
    /// The server accepted (or already had) an outgoing message.
    Accepted(MessageId),
    /// The server stored an outgoing message for a recipient that is not
    /// connected, for this long.
    Queued(MessageId, Duration),
    /// The server refused an outgoing message.
    Rejected(MessageId, ErrorCode),
    /// A delivered envelope was outside the replay window: acknowledged
    /// and dropped.
    Dropped(MessageId),
}

/// Sans-IO client state: the unacknowledged outbox, duplicate detection,
/// reconnect back-off.
///
/// A delivered envelope is looked at twice. [`Self::handle_input`] drops
/// what is stale and acknowledges a redelivery of what was accepted
/// before, without remembering anything; the rest goes to the driver as
/// [`CoreEvent::Deliver`]. The driver fetches the sender's keys and hands
/// the envelope to [`Self::open`], which verifies it and only then
/// remembers its id: a forgery takes no room in the replay memory.
#[derive(Debug)]
pub struct ClientCore {
    outbox: VecDeque<(MessageId, String)>,
    transmit: VecDeque<String>,
    events: VecDeque<CoreEvent>,
    replay: ReplayGuard,
    failures: u32,
}

impl Default for ClientCore {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientCore {
    /// Empty state.
    pub fn new() -> Self {
        Self {
            outbox: VecDeque::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            replay: ReplayGuard::default(),
            failures: 0,
        }
    }

    /// Queues `env` to send; it is resent on every reconnect until accepted.
    pub fn send(&mut self, env: Envelope) {
        let id = env.id.clone();
        let frame = ClientFrame::Send {
            v: PROTOCOL_VERSION,
            msg: env,
        };
        let text = serde_json::to_string(&frame).expect("frames serialize");
        self.outbox.push_back((id, text.clone()));
        self.transmit.push_back(text);
    }

    /// A connection is up: everything still unacknowledged goes again.
    pub fn on_connected(&mut self) {
        self.failures = 0;
        self.transmit = self.outbox.iter().map(|(_, t)| t.clone()).collect();
    }

    /// The connection failed or dropped at `now`; returns when to retry
    /// (100 ms doubling to 5 s).
    pub fn on_disconnected(&mut self, now: Instant) -> Instant {
        self.transmit.clear();
        let backoff = Duration::from_millis(100).saturating_mul(1 << self.failures.min(6));
        self.failures += 1;
        now + backoff.min(Duration::from_secs(5))
    }

    /// Handles one frame from the server at Unix time `now_ms`.
    pub fn handle_input(
        &mut self,
        now_ms: u64,
        text: &str,
    ) -> Result<(), crate::error::ProtocolError> {
        match ServerFrame::parse(text)? {
            ServerFrame::Deliver { msg, .. } => {
                // Only a look: the id is remembered once the envelope has
                // verified (`open`), so forgeries take no room.
                match self.replay.check(now_ms, &msg) {
                    Ok(()) => self.events.push_back(CoreEvent::Deliver(Box::new(msg))),
                    // Seen (a redelivery after reconnect): ack so the server
                    // forgets it, and do not surface it again.
                    Err(SealError::Replay) => self.ack(&msg),
                    // Stale: gone for good, and the app is told.
                    Err(_) => {
                        self.ack(&msg);
                        self.events.push_back(CoreEvent::Dropped(msg.id));
                    }
                }
            }
            ServerFrame::Accepted { id, queued_s, .. } => {
                self.settle(id, Ok(queued_s.map(Duration::from_secs)))
            }
            // Replay for one of ours means the server already stored it;
            // anything else (stale included) means it did not.
            ServerFrame::Error {
                code, id: Some(id), ..
            } => {
                let known = self.outbox.iter().any(|(i, _)| *i == id);
                if known {
                    let refused = (code != ErrorCode::Replay).then_some(code);
                    self.settle(id, refused.map_or(Ok(None), Err));
                }
            }
            ServerFrame::Error { .. } => {}
        }
        Ok(())
    }

    /// Ends an outgoing message's wait: stored (and queued for how long,
    /// if its recipient is not connected) or refused.
    fn settle(&mut self, id: MessageId, outcome: Result<Option<Duration>, ErrorCode>) {
        let before = self.outbox.len();
        self.outbox.retain(|(i, _)| *i != id);
        if self.outbox.len() == before {
            return;
        }
        self.events.push_back(match outcome {
            Ok(None) => CoreEvent::Accepted(id),
            Ok(Some(kept)) => CoreEvent::Queued(id, kept),
            Err(code) => CoreEvent::Rejected(id, code),
        });
    }

    /// Verifies a delivered envelope as `sender`'s and opens it as
    /// `identity` ([`DeviceIdentity::open`]); then, and only then, accepts
    /// its id at Unix time `now_ms` ([`ReplayGuard::accept`]), so that a
    /// redelivery is not surfaced again. Errors: the envelope's own
    /// ([`SealError::Signature`] and the like: no room taken), or the
    /// guard's — [`SealError::Replay`] for a repeat (one delivered again
    /// before the first was accepted), [`SealError::Stale`] if it aged
    /// out meanwhile (or the guard, full, let go of ids as old),
    /// [`SealError::Full`] if its sender already has its share of the
    /// guard's room. Sans-IO: the
    /// driver fetches the keys.
    pub fn open(
        &mut self,
        now_ms: u64,
        identity: &DeviceIdentity,
        env: &Envelope,
        sender: &DevicePublic,
    ) -> Result<CallPayload, SealError> {
        let payload = identity.open(env, sender)?;
        self.replay.accept(now_ms, env)?;
        Ok(payload)
    }

    /// Forgets the id [`Self::open`] accepted for `env`, so that a
    /// redelivery is taken for a new message: it could not be handed on
    /// after all.
    pub fn forget(&mut self, env: &Envelope) {
        self.replay.forget(env);
    }

    /// A delivered envelope could not be processed for a passing reason
    /// (its sender's keys could not be fetched): it is not acknowledged,
    /// and its id is not remembered (or forgotten, if [`Self::open`]
    /// accepted it), so the server's redelivery on the next connection
    /// surfaces it again.
    pub fn defer(&mut self, env: &Envelope) {
        self.forget(env);
    }

    /// Acknowledges a delivered envelope (after the app has it).
    pub fn ack(&mut self, env: &Envelope) {
        let frame = ClientFrame::Ack {
            v: PROTOCOL_VERSION,
            id: env.id.clone(),
            from: env.from.clone(),
        };
        self.transmit
            .push_back(serde_json::to_string(&frame).expect("frames serialize"));
    }

    /// Next frame to write to the socket.
    pub fn poll_transmit(&mut self) -> Option<String> {
        self.transmit.pop_front()
    }

    /// Next event for the driver.
    pub fn poll_event(&mut self) -> Option<CoreEvent> {
        self.events.pop_front()
    }

    /// Messages sent but not yet accepted.
    pub fn unacknowledged(&self) -> usize {
        self.outbox.len()
    }
}

enum Command {
    Send(Box<Envelope>),
    /// A push arrived (when).
    Wake(Instant),
}

/// Handle on a running connection driver.
#[derive(Debug)]
pub struct Connection {
    client: SignalClient,
    cmds: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<ClientEvent>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Send(_) => "Send",
            Self::Wake(_) => "Wake",
        })
    }
}

impl Connection {
    /// Seals `payload` to `to` and sends it (resent until accepted).
    pub fn send(
        &self,
        to: (&DeviceId, &DevicePublic),
        call_id: CallId,
        kind: MessageKind,
        payload: &CallPayload,
    ) -> Result<MessageId, ClientError> {
        let env = self
            .client
            .identity
            .seal(to, call_id, kind, unix_ms(), payload)?;
        let id = env.id.clone();
        self.cmds
            .send(Command::Send(Box::new(env)))
            .map_err(|_| ClientError::Closed)?;
        Ok(id)
    }

    /// A push arrived: connect now (skipping any back-off) and drain the
    /// queue. Connected already since before the push, the connection is
    /// replaced at once: the server pushes only to a device it does not see
    /// connected, so this one is dead (its network changed).
    pub fn on_push_received(&self) {
        let _ = self.cmds.send(Command::Wake(Instant::now()));
    }

    /// The next event; `None` once the driver has stopped.
    pub async fn next_event(&mut self) -> Option<ClientEvent> {
        self.events.recv().await
    }
}

struct Driver {
    client: SignalClient,
    core: ClientCore,
    cmds: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<ClientEvent>,
    /// The session's bearer token, wiped when replaced or dropped.
    token: Option<Zeroizing<String>>,
    keys: HashMap<DeviceId, DevicePublic>,
    awake: bool,
}

impl Driver {
    async fn run(mut self) {
        let mut retry_at: Option<Instant> = None;
        loop {
            if !self.awake {
                match self.cmds.recv().await {
                    Some(Command::Wake(_)) => self.awake = true,
                    Some(Command::Send(env)) => {
                        self.core.send(*env);
                        self.awake = true;
                    }
                    None => return,
                }
            }
            if let Some(at) = retry_at.take() {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    cmd = self.cmds.recv() => match cmd {
                        Some(Command::Send(env)) => { self.core.send(*env); retry_at = Some(at); continue; }
                        Some(Command::Wake(_)) => {}
                        None => return,
                    },
                }
            }
            match self.session().await {
                Ok(()) => {}
                Err(Stop) => return,
            }
            let _ = self.events.send(ClientEvent::Disconnected);
            retry_at = Some(self.core.on_disconnected(Instant::now()));
        }
    }

    /// One connection's life. `Err` means the app is gone.
    async fn session(&mut self) -> Result<(), Stop> {
        if self.token.is_none() {
            self.token = match self.client.login().await {
                Ok(token) => Some(Zeroizing::new(token)),
                Err(e) => {
                    // Retried with back-off all the same; one that will not
                    // change (a wrong origin) is worth the app's log.
                    if !e.is_transient() {
                        tracing::warn!("login: {e}");
                    }
                    None
                }
            };
        }
        let Some(token) = self.token.clone() else {
            return Ok(());
        };
        let url = format!("{}/v1/ws", self.client.base.replacen("http", "ws", 1));
        let Ok(mut req) = url.into_client_request() else {
            return Ok(());
        };
        let bearer = Zeroizing::new(format!("Bearer {}", token.as_str()));
        let Ok(mut value) = HeaderValue::from_str(&bearer) else {
            return Ok(());
        };
        // Kept out of the request's Debug form, as reqwest's bearer_auth does.
        value.set_sensitive(true);
        req.headers_mut().insert("authorization", value);
        // tungstenite would otherwise buffer messages of up to 64 MiB from
        // the server. As on the server: twice the frame limit, so a frame
        // between the two is refused by `ServerFrame::parse` and a larger
        // one ends the connection before it is read whole.
        let config = WebSocketConfig::default()
            .max_message_size(Some(2 * MAX_FRAME_BYTES))
            .max_frame_size(Some(2 * MAX_FRAME_BYTES));
        let tls = tokio_tungstenite::Connector::Rustls(Arc::clone(&self.client.tls));
        let ws = match tokio_tungstenite::connect_async_tls_with_config(
            req,
            Some(config),
            false,
            Some(tls),
        )
        .await
        {
            Ok((ws, _)) => ws,
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) if res.status() == 401 => {
                self.token = None;
                return Ok(());
            }
            Err(_) => return Ok(()),
        };
        let (mut tx, mut rx) = ws.split();
        self.core.on_connected();
        let _ = self.events.send(ClientEvent::Connected);
        let connected = Instant::now();
        let period = self.client.ping_interval;
        let mut ping = tokio::time::interval_at((connected + period).into(), period);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard = connected;
        loop {
            while let Some(text) = self.core.poll_transmit() {
                if tx.send(Message::text(text)).await.is_err() {
                    return Ok(());
                }
            }
            tokio::select! {
                cmd = self.cmds.recv() => match cmd {
                    Some(Command::Send(env)) => self.core.send(*env),
                    Some(Command::Wake(at)) if at > connected => {
                        tracing::info!("push while connected: the connection is dead, reconnecting");
                        return Ok(());
                    }
                    Some(Command::Wake(_)) => {}
                    None => return Err(Stop),
                },
                _ = ping.tick() => {
                    if heard.elapsed() >= 2 * period {
                        tracing::info!("signalling connection silent for {:?}: reconnecting", heard.elapsed());
                        return Ok(());
                    }
                    if tx.send(Message::Ping(Default::default())).await.is_err() {
                        return Ok(());
                    }
                }
                frame = rx.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        heard = Instant::now();
                        if self.core.handle_input(unix_ms(), text.as_str()).is_err() {
                            continue;
                        }
                        if self.process_events(&token).await? == Flow::Reconnect {
                            return Ok(());
                        }
                    }
                    Some(Ok(_)) => heard = Instant::now(),
                    Some(Err(_)) | None => return Ok(()),
                },
            }
        }
    }

    /// Hands the core's events to the app. `Reconnect` when a delivered
    /// message must wait for its redelivery on a new connection.
    async fn process_events(&mut self, token: &str) -> Result<Flow, Stop> {
        while let Some(ev) = self.core.poll_event() {
            let out = match ev {
                CoreEvent::Accepted(id) => ClientEvent::Accepted(id),
                CoreEvent::Queued(id, kept) => ClientEvent::Queued(id, kept),
                CoreEvent::Rejected(id, code) => ClientEvent::Rejected(id, code),
                CoreEvent::Dropped(id) => ClientEvent::Dropped(id),
                CoreEvent::Deliver(env) => {
                    let sender = match self.keys.get(&env.from) {
                        Some(k) => Ok(k.clone()),
                        None => self.client.device_keys(token, &env.from).await,
                    };
                    let opened = match sender {
                        Err(e) if e.is_transient() => {
                            // Neither acked nor remembered: the server keeps
                            // it and delivers it again after reconnecting.
                            // The replay file is left alone: it holds only
                            // messages handed to the app, which this one may
                            // be (before a restart), and then stays refused.
                            tracing::debug!("keys of {}: {e}; awaiting redelivery", env.from);
                            self.core.defer(&env);
                            if matches!(e, ClientError::Status(401)) {
                                self.token = None;
                            }
                            return Ok(Flow::Reconnect);
                        }
                        Err(_) => None,
                        Ok(s) => {
                            // Verified before its id is remembered.
                            let opened = self.core.open(unix_ms(), &self.client.identity, &env, &s);
                            self.keys.insert(env.from.clone(), s);
                            Some(opened)
                        }
                    };
                    // Verified, or refused for good: either way it is done.
                    self.core.ack(&env);
                    match opened {
                        Some(Ok(payload)) => match self.record(&env).await {
                            Ok(()) => ClientEvent::Message {
                                envelope: env,
                                payload: Box::new(payload),
                            },
                            // Handed to the app before a restart (or by
                            // another process on the same file): acked and
                            // not surfaced again, as a redelivery in one run.
                            Err(Remembered::Yes) => continue,
                            // Not handed on: not a repeat if it comes again.
                            Err(Remembered::No) => {
                                self.core.forget(&env);
                                ClientEvent::Dropped(env.id.clone())
                            }
                        },
                        // Delivered twice before the first was accepted.
                        Some(Err(SealError::Replay)) => continue,
                        _ => ClientEvent::Dropped(env.id.clone()),
                    }
                }
            };
            if let Err(mpsc::error::SendError(out)) = self.events.send(out) {
                // The app is gone: a message it never got must not count as
                // handed on, or its redelivery to the next run is refused.
                if let ClientEvent::Message { envelope, .. } = out {
                    self.unrecord(*envelope).await;
                }
                return Err(Stop);
            }
        }
        Ok(Flow::Continue)
    }

    /// Records `env` in the replay file, if there is one, before it goes to
    /// the app. `Err` if it must not go: a repeat of a message handed on
    /// before a restart (or by another process of this device), or no room
    /// left to remember it.
    async fn record(&self, env: &Envelope) -> Result<(), Remembered> {
        let Some(replay) = self.client.replay.clone() else {
            return Ok(());
        };
        let env = env.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let mut replay = replay.lock().unwrap_or_else(PoisonError::into_inner);
            match replay.accept(unix_ms(), &env) {
                Ok(()) => Ok(()),
                Err(SealError::Replay) => Err(Remembered::Yes),
                Err(_) => Err(Remembered::No),
            }
        })
        .await;
        checked.unwrap_or_else(|e| {
            // Only a panic in the check (or a runtime shutting down): the
            // core's guard has still vetted it for this run.
            tracing::warn!("replay file: {e}");
            Ok(())
        })
    }

    /// Undoes [`Self::record`] for a message that did not reach the app.
    async fn unrecord(&self, env: Envelope) {
        if let Some(replay) = self.client.replay.clone() {
            let _ = tokio::task::spawn_blocking(move || {
                replay
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .forget(unix_ms(), &env);
            })
            .await;
        }
    }
}

/// Why the replay file refused a message.
#[derive(Debug)]
enum Remembered {
    /// It was handed to the app before.
    Yes,
    /// It is new, but the file's guard has no room for it (or it aged
    /// out of the window meanwhile).
    No,
}

/// Whether a connection carries on after handling events.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Reconnect,
}

/// The app dropped its [`Connection`].
struct Stop;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_resends_until_accepted_and_redeliveries_are_dropped() {
        let alice = DeviceIdentity::generate();
        let bob = DeviceIdentity::generate();
        let mut core = ClientCore::new();
        let env = alice
            .seal(
                (&bob.device_id(), bob.public()),
                CallId::new("c").unwrap(),
                MessageKind::Offer,
                unix_ms(),
                &CallPayload::default(),
            )
            .unwrap();
        core.send(env.clone());
        assert!(core.poll_transmit().is_some());
        let t0 = Instant::now();
        let r1 = core.on_disconnected(t0);
        let r2 = core.on_disconnected(t0);
        assert!(r2 > r1);
        core.on_connected();
        assert!(core.poll_transmit().is_some(), "resent after reconnect");
        // The server says it already had it: settled, not an error.
        let dup = format!(
            r#"{{"type":"error","v":1,"code":"replay","id":"{}"}}"#,
            env.id
        );
        core.handle_input(unix_ms(), &dup).unwrap();
        assert_eq!(core.poll_event(), Some(CoreEvent::Accepted(env.id.clone())));
        assert_eq!(core.unacknowledged(), 0);

        let deliver = deliver_frame(&env);
        core.handle_input(unix_ms(), &deliver).unwrap();
        assert!(matches!(core.poll_event(), Some(CoreEvent::Deliver(_))));
        core.open(unix_ms(), &bob, &env, alice.public()).unwrap();
        core.handle_input(unix_ms(), &deliver).unwrap();
        assert_eq!(
            core.poll_event(),
            None,
            "a redelivery is not surfaced twice"
        );
        assert!(core.poll_transmit().unwrap().contains("\"ack\""));
        assert!(core.handle_input(unix_ms(), "garbage").is_err());
    }

    fn offer(ts_ms: u64) -> Envelope {
        let bob = DeviceIdentity::generate();
        DeviceIdentity::generate()
            .seal(
                (&bob.device_id(), bob.public()),
                CallId::new("c").unwrap(),
                MessageKind::Offer,
                ts_ms,
                &CallPayload::default(),
            )
            .unwrap()
    }

    fn deliver_frame(env: &Envelope) -> String {
        serde_json::to_string(&ServerFrame::Deliver {
            v: 1,
            msg: env.clone(),
        })
        .unwrap()
    }

    fn refusal(code: &str, id: &MessageId) -> String {
        format!(r#"{{"type":"error","v":1,"code":"{code}","id":"{id}"}}"#)
    }

    #[test]
    fn a_stale_refusal_is_reported_as_rejected_not_accepted() {
        let mut core = ClientCore::new();
        let env = offer(unix_ms() - 600_000);
        core.send(env.clone());
        core.handle_input(unix_ms(), &refusal("stale", &env.id))
            .unwrap();
        assert_eq!(
            core.poll_event(),
            Some(CoreEvent::Rejected(env.id.clone(), ErrorCode::Stale))
        );
        assert_eq!(core.unacknowledged(), 0, "not resent forever either");
    }

    #[test]
    fn a_stale_delivery_is_acked_and_reported_dropped() {
        let mut core = ClientCore::new();
        let env = offer(unix_ms() - 600_000);
        let deliver = deliver_frame(&env);
        core.handle_input(unix_ms(), &deliver).unwrap();
        assert_eq!(core.poll_event(), Some(CoreEvent::Dropped(env.id)));
        assert!(core.poll_transmit().unwrap().contains("\"ack\""));
    }

    #[test]
    fn a_deferred_delivery_is_not_acked_and_surfaces_again_on_redelivery() {
        let mut core = ClientCore::new();
        let env = offer(unix_ms());
        let deliver = deliver_frame(&env);
        core.handle_input(unix_ms(), &deliver).unwrap();
        assert!(matches!(core.poll_event(), Some(CoreEvent::Deliver(_))));
        core.defer(&env);
        assert_eq!(core.poll_transmit(), None, "not acknowledged");
        core.on_disconnected(Instant::now());
        core.on_connected();
        core.handle_input(unix_ms(), &deliver).unwrap();
        assert!(
            matches!(core.poll_event(), Some(CoreEvent::Deliver(_))),
            "the redelivery is surfaced, not taken for a replay"
        );
    }

    /// An offer from `from` to `to`, signed and sealed.
    fn offer_between(from: &DeviceIdentity, to: &DeviceIdentity) -> Envelope {
        from.seal(
            (&to.device_id(), to.public()),
            CallId::new("c").unwrap(),
            MessageKind::Offer,
            unix_ms(),
            &CallPayload::default(),
        )
        .unwrap()
    }

    /// What became of a delivered envelope.
    #[derive(Debug, PartialEq, Eq)]
    enum Fate {
        /// Handed to the app.
        ToApp,
        /// Acked in silence, as a redelivery.
        Repeat,
        /// Dropped by the core at first look.
        Dropped,
        /// Refused by [`ClientCore::open`].
        Refused(SealError),
    }

    /// Delivers `env` to `core` as the driver does, with `sender`'s keys.
    fn deliver(
        core: &mut ClientCore,
        me: &DeviceIdentity,
        env: &Envelope,
        sender: &DevicePublic,
    ) -> Fate {
        core.handle_input(unix_ms(), &deliver_frame(env)).unwrap();
        match core.poll_event() {
            Some(CoreEvent::Deliver(env)) => match core.open(unix_ms(), me, &env, sender) {
                Ok(_) => Fate::ToApp,
                Err(e) => Fate::Refused(e),
            },
            Some(CoreEvent::Dropped(_)) => Fate::Dropped,
            None => Fate::Repeat,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_fresh_delivery_refused_for_want_of_replay_memory_is_not_taken_for_a_repeat() {
        // The guard can remember one id from Alice: a second, new message
        // cannot be told from a replay later, so it is refused; but it is
        // not a replay, and must not be acked away in silence as one would
        // be.
        let (alice, me) = (DeviceIdentity::generate(), DeviceIdentity::generate());
        let mut core = ClientCore::new();
        core.replay = ReplayGuard::new(300_000, 60_000, 2, 1);
        let first = offer_between(&alice, &me);
        assert_eq!(deliver(&mut core, &me, &first, alice.public()), Fate::ToApp);
        let second = offer_between(&alice, &me);
        assert_eq!(
            deliver(&mut core, &me, &second, alice.public()),
            Fate::Refused(SealError::Full)
        );
        assert_eq!(
            deliver(&mut core, &me, &second, alice.public()),
            Fate::Refused(SealError::Full),
            "its redelivery is looked at afresh"
        );
        assert_eq!(
            deliver(&mut core, &me, &first, alice.public()),
            Fate::Repeat
        );
    }

    #[test]
    fn forged_envelopes_take_no_replay_memory() {
        // A server (or anyone who can feed the connection) forges
        // envelopes from Alice, signed by no key of hers: they fail to
        // verify and take no room, so her genuine offer still gets in.
        let (alice, mallory, me) = (
            DeviceIdentity::generate(),
            DeviceIdentity::generate(),
            DeviceIdentity::generate(),
        );
        let mut core = ClientCore::new();
        core.replay = ReplayGuard::new(300_000, 60_000, 4, 4);
        let mut forgeries = Vec::new();
        for _ in 0..10 {
            let mut forged = offer_between(&mallory, &me);
            forged.from = alice.device_id();
            forgeries.push(deliver(&mut core, &me, &forged, alice.public()));
        }
        let genuine = offer_between(&alice, &me);
        assert_eq!(
            deliver(&mut core, &me, &genuine, alice.public()),
            Fate::ToApp,
            "forgeries kept out Alice's genuine offer"
        );
        assert_eq!(core.replay.len(), 1, "forgeries took replay memory");
        for fate in forgeries {
            assert_eq!(fate, Fate::Refused(SealError::Signature));
        }
        assert_eq!(
            deliver(&mut core, &me, &genuine, alice.public()),
            Fate::Repeat,
            "and its redelivery is a repeat"
        );
    }

    #[test]
    fn a_flooding_sender_cannot_keep_out_another_senders_message() {
        // Mallory is a genuine device, so her messages verify; she sends
        // more than the guard holds, inside the window. She gets her
        // share of its room; Alice's offer still gets through.
        let (alice, mallory, me) = (
            DeviceIdentity::generate(),
            DeviceIdentity::generate(),
            DeviceIdentity::generate(),
        );
        let mut core = ClientCore::new();
        core.replay = ReplayGuard::new(300_000, 60_000, 8, 2);
        let mut through = 0;
        for _ in 0..20 {
            let flood = offer_between(&mallory, &me);
            if deliver(&mut core, &me, &flood, mallory.public()) == Fate::ToApp {
                through += 1;
            }
        }
        let offer = offer_between(&alice, &me);
        assert_eq!(
            deliver(&mut core, &me, &offer, alice.public()),
            Fate::ToApp,
            "Alice's offer was refused"
        );
        assert_eq!(through, 2, "Mallory's share");
    }

    #[test]
    fn key_lookup_failures_are_transient_or_final() {
        for s in [401, 429, 500, 503] {
            assert!(ClientError::Status(s).is_transient(), "{s}");
        }
        assert!(!ClientError::Status(404).is_transient());
        let id = DeviceIdentity::generate().device_id();
        assert!(!ClientError::KeyBinding(id).is_transient());
        assert!(!ClientError::Answer.is_transient());
        let origin = Origin::of_url("https://a.example").unwrap();
        let wrong = ClientError::WrongOrigin(origin);
        assert!(!wrong.is_transient());
        assert!(wrong.to_string().contains("https://a.example"), "{wrong}");
    }
}
