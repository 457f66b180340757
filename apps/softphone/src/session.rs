//! One call over the signalling service: the engine's [`CallHandle`] on
//! one side, a signalling [`Connection`] on the other. Outgoing
//! [`CallSignal`]s are sealed to the peer device; the peer's messages for
//! this call are opened, checked and handed to the call. Events and
//! periodic statistics go to whoever shows them (the UI or the demo).

use crate::wire;
use anyhow::{Context as _, anyhow};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use sotto_engine::call::driver::{CallHandle, CallSignaller};
use sotto_engine::call::wav::AudioPort;
use sotto_engine::call::{Call, CallSignal, CallStats, EndReason, Event};
use sotto_engine::ice::{IceConfig, TurnServer};
use sotto_signalling::client::{ClientError, ClientEvent, Connection, SignalClient};
use sotto_signalling::protocol::{CallId, DeviceId, MessageId, MessageKind};
use sotto_signalling::seal::DevicePublic;
use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long the last messages (the hang-up) may take to reach the server.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);
/// Second callers whose keys are being fetched at once, to decline them
/// (busy); more are dropped and reported.
const MAX_BUSY_DECLINES: usize = 4;

/// The other device of a call.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its id.
    pub id: DeviceId,
    /// Its public keys (from the server's directory, bound to the id).
    pub keys: DevicePublic,
}

/// What the user (or the demo) asks of a running call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Answer the ringing call.
    Answer,
    /// Decline the ringing call.
    Decline,
    /// Hang up.
    HangUp,
    /// Mute or unmute the microphone.
    Mute(bool),
    /// The SAS matched (true) or not (false).
    ConfirmSas(bool),
}

/// What a running call reports.
#[derive(Debug, Clone)]
pub enum Update {
    /// An engine event.
    Event(Event),
    /// A statistics snapshot, at the caller's chosen interval.
    Stats(Box<CallStats>),
    /// A signalling message was dropped (undecodable or not ours).
    Dropped(String),
    /// Another device called during this call; it was told we are busy.
    Busy(DeviceId),
    /// The callee is not connected: signald keeps our offer this long,
    /// waking it by push if it can, and the call ends unanswered after.
    OfferQueued(Duration),
}

/// How a call ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Why it ended.
    pub reason: EndReason,
    /// Whether it was ever Secure: connected, media keyed. A call that
    /// never was did not take place, whatever ended it.
    pub secure: bool,
}

/// Queues the call's outgoing signals for `run` to seal and send.
struct Outbox(mpsc::UnboundedSender<CallSignal>);

impl CallSignaller for Outbox {
    fn send(&mut self, msg: CallSignal) {
        // The call bounds what it signals (one description, capped candidates).
        let _ = self.0.send(msg);
    }
}

/// A signalling client and its session token. The token is renewed when
/// the server says it expired (401), so a `listen` outlives its session.
pub struct Account {
    client: SignalClient,
    token: tokio::sync::Mutex<String>,
}

impl Account {
    /// Logs `client` in.
    pub async fn login(client: SignalClient) -> Result<Self, ClientError> {
        let token = client.login().await?;
        Ok(Self {
            client,
            token: tokio::sync::Mutex::new(token),
        })
    }

    /// The client.
    pub fn client(&self) -> &SignalClient {
        &self.client
    }

    /// Runs `op` with the session token; on a 401 (the session expired or
    /// was revoked) logs in again and runs it once more.
    pub async fn with_token<T, Fut>(&self, op: impl Fn(String) -> Fut) -> Result<T, ClientError>
    where
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let used = self.token.lock().await.clone();
        match op(used.clone()).await {
            Err(ClientError::Status(401)) => {
                let fresh = {
                    let mut token = self.token.lock().await;
                    // Someone else may have renewed it meanwhile.
                    if *token == used {
                        *token = self.client.login().await?;
                    }
                    token.clone()
                };
                op(fresh).await
            }
            r => r,
        }
    }

    /// Another device's public keys from the server's directory.
    pub async fn device_keys(&self, id: &DeviceId) -> Result<DevicePublic, ClientError> {
        self.with_token(|t| async move { self.client.device_keys(&t, id).await })
            .await
    }

    /// TURN servers for the call's ICE from the signalling server's REST
    /// credentials (`turn:host:port[?transport=udp]` URIs; others are skipped).
    pub async fn ice_config(&self) -> anyhow::Result<IceConfig> {
        let creds = self
            .with_token(|t| async move { self.client.turn_credentials(&t).await })
            .await
            .context("fetching TURN credentials from signald")?;
        let mut turn_servers = Vec::new();
        for uri in &creds.uris {
            let Some(hostport) = turn_udp_hostport(uri) else {
                continue;
            };
            for addr in tokio::net::lookup_host(hostport).await? {
                turn_servers.push(TurnServer {
                    addr,
                    username: creds.username.clone(),
                    password: creds.password.clone(),
                    realm: String::new(),
                });
            }
        }
        if turn_servers.is_empty() {
            return Err(anyhow!(
                "signald offered no usable TURN URI: {:?}",
                creds.uris
            ));
        }
        Ok(IceConfig {
            turn_servers,
            ..IceConfig::default()
        })
    }
}

/// `host:port` of a UDP `turn:` URI (RFC 7065), `None` for other schemes.
fn turn_udp_hostport(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("turn:")?;
    let (hostport, query) = rest.split_once('?').unwrap_or((rest, ""));
    let udp = query.is_empty() || query == "transport=udp";
    (udp && hostport.contains(':')).then_some(hostport)
}

/// A call's engine started on sockets bound to `bind` (one per family).
pub struct Started {
    handle: CallHandle,
    signals: mpsc::UnboundedReceiver<CallSignal>,
    cache: Option<PathBuf>,
}

impl Started {
    /// Starts `call` with `audio` (see [`CallHandle::start`]).
    pub async fn new(
        call: Call,
        bind: &[SocketAddr],
        ice: IceConfig,
        audio: Box<dyn AudioPort>,
    ) -> anyhow::Result<Self> {
        let (tx, signals) = mpsc::unbounded_channel();
        let handle = CallHandle::start(call, bind, ice, Box::new(Outbox(tx)), Some(audio))
            .await
            .context("starting the call's transport")?;
        Ok(Self {
            handle,
            signals,
            cache: None,
        })
    }

    /// Saves the call's ZID cache to `path` once Secure and after a SAS
    /// confirmation, so retained secrets carry over to the next call.
    pub fn persist_cache(&mut self, path: PathBuf) {
        self.cache = Some(path);
    }

    /// The engine's handle (to place the call or feed the peer's offer).
    pub fn handle(&self) -> &CallHandle {
        &self.handle
    }

    /// Runs the call until it ends, then shuts it down and flushes the
    /// last messages; returns how it ended.
    #[allow(clippy::too_many_arguments)]
    pub async fn run(
        mut self,
        account: &Account,
        conn: &mut Connection,
        peer: &Peer,
        call_id: &CallId,
        mut controls: mpsc::Receiver<Control>,
        updates: mpsc::UnboundedSender<Update>,
        stats_every: Duration,
    ) -> anyhow::Result<Outcome> {
        let mut sent = HashSet::new();
        let mut secure = false;
        let mut offer = None;
        let mut busy = FuturesUnordered::new();
        let mut stats = tokio::time::interval(stats_every);
        let mut controls_open = true;
        let reason = loop {
            tokio::select! {
                ev = self.handle.recv() => match ev {
                    Some(Event::Ended { reason }) => {
                        let _ = updates.send(Update::Event(Event::Ended { reason }));
                        break reason;
                    }
                    Some(e) => {
                        if matches!(e, Event::SecureUp { .. }) {
                            secure = true;
                            self.save_cache().await?;
                        }
                        let _ = updates.send(Update::Event(e));
                    }
                    None => break EndReason::ConnectionFailed,
                },
                Some(s) = self.signals.recv() => {
                    let id = send(conn, peer, call_id, &s)?;
                    if matches!(s, CallSignal::Offer(_)) {
                        offer = Some(id.clone());
                    }
                    sent.insert(id);
                }
                ev = conn.next_event() => match ev {
                    Some(ClientEvent::Message { envelope, payload }) => {
                        if envelope.call_id != *call_id && envelope.kind == MessageKind::Offer {
                            // A second caller: decline rather than leave them
                            // ringing. Their keys are fetched beside the call,
                            // so that its own signalling never waits on that.
                            let from = envelope.from;
                            if busy.len() >= MAX_BUSY_DECLINES {
                                let _ = updates.send(Update::Dropped(format!("offer from {from}: too many callers at once")));
                                continue;
                            }
                            let their_call = envelope.call_id;
                            busy.push(async move {
                                let keys = account.device_keys(&from).await;
                                (from, their_call, keys)
                            });
                            continue;
                        }
                        if envelope.call_id != *call_id || envelope.from != peer.id {
                            let _ = updates.send(Update::Dropped(format!("{} for another call", envelope.kind.as_str())));
                            continue;
                        }
                        match wire::decode(envelope.kind, &payload) {
                            Ok(s) => self.handle.signal(s).await?,
                            Err(e) => { let _ = updates.send(Update::Dropped(e.to_string())); }
                        }
                    }
                    Some(ClientEvent::Accepted(id)) => { sent.remove(&id); }
                    Some(ClientEvent::Queued(id, kept)) => {
                        sent.remove(&id);
                        if offer.as_ref() == Some(&id) {
                            let _ = updates.send(Update::OfferQueued(kept));
                            // Refused only by a call that has just ended.
                            let _ = self.handle.offer_queued(kept).await;
                        }
                    }
                    Some(_) => {}
                    None => return Err(anyhow!("signalling connection stopped")),
                },
                Some((from, their_call, keys)) = busy.next(), if !busy.is_empty() => {
                    let declined = keys
                        .context("fetching the caller's keys")
                        .and_then(|keys| decline(conn, Peer { id: from.clone(), keys }, their_call))
                        .map(|_| ());
                    let _ = updates.send(match declined {
                        Ok(()) => Update::Busy(from),
                        Err(e) => Update::Dropped(format!("offer from {from}: {}", crate::report::Causes(&e))),
                    });
                }
                c = controls.recv(), if controls_open => match c {
                    Some(c) => {
                        self.control(c).await?;
                        if matches!(c, Control::ConfirmSas(_)) {
                            self.save_cache().await?;
                        }
                    }
                    None => controls_open = false,
                },
                _ = stats.tick() => {
                    if let Ok(s) = self.handle.stats().await {
                        let _ = updates.send(Update::Stats(Box::new(s)));
                    }
                }
            }
        };
        self.handle.shutdown().await;
        // The task has flushed everything it signalled (e.g. our hang-up).
        while let Ok(s) = self.signals.try_recv() {
            sent.insert(send(conn, peer, call_id, &s)?);
        }
        flush(conn, sent).await;
        Ok(Outcome { reason, secure })
    }

    async fn save_cache(&self) -> anyhow::Result<()> {
        let Some(path) = &self.cache else {
            return Ok(());
        };
        // The call may have ended meanwhile; then there is nothing newer.
        if let Ok(cache) = self.handle.zid_cache().await {
            cache
                .save(path)
                .with_context(|| format!("saving {}", path.display()))?;
        }
        Ok(())
    }

    async fn control(&self, c: Control) -> anyhow::Result<()> {
        let h = &self.handle;
        match c {
            Control::Answer => h.answer().await?,
            Control::Decline => h.decline().await?,
            Control::HangUp => h.hang_up().await?,
            Control::Mute(m) => h.set_muted(m).await?,
            Control::ConfirmSas(ok) => h.confirm_sas(ok).await?,
        }
        Ok(())
    }
}

/// Waits (at most [`FLUSH_TIMEOUT`]) until the server has taken or refused
/// each message in `sent`, so that they are not lost when we exit.
pub async fn flush(conn: &mut Connection, mut sent: HashSet<MessageId>) {
    let deadline = tokio::time::Instant::now() + FLUSH_TIMEOUT;
    while !sent.is_empty() {
        match tokio::time::timeout_at(deadline, conn.next_event()).await {
            Ok(Some(
                ClientEvent::Accepted(id)
                | ClientEvent::Queued(id, _)
                | ClientEvent::Rejected(id, _),
            )) => {
                sent.remove(&id);
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
}

fn send(
    conn: &Connection,
    peer: &Peer,
    call_id: &CallId,
    s: &CallSignal,
) -> anyhow::Result<MessageId> {
    let (kind, payload) = wire::encode(s);
    Ok(conn.send((&peer.id, &peer.keys), call_id.clone(), kind, &payload)?)
}

/// Declines the offer `call_id` from `from` (the caller hears we are
/// busy); returns the message's id (see [`flush`]).
pub async fn decline_offer(
    account: &Account,
    conn: &Connection,
    from: &DeviceId,
    call_id: CallId,
) -> anyhow::Result<MessageId> {
    let peer = Peer {
        keys: account
            .device_keys(from)
            .await
            .context("fetching the caller's keys")?,
        id: from.clone(),
    };
    decline(conn, peer, call_id)
}

/// Sends `peer` a decline of their call `call_id`.
fn decline(conn: &Connection, peer: Peer, call_id: CallId) -> anyhow::Result<MessageId> {
    send(conn, &peer, &call_id, &CallSignal::Decline)
}

/// Waits for the first offer addressed to us; returns it with its call id
/// and sender. Other messages (late ones of earlier calls) are skipped.
pub async fn next_offer(
    conn: &mut Connection,
) -> anyhow::Result<(CallId, DeviceId, CallSignal, Instant)> {
    loop {
        match conn.next_event().await {
            Some(ClientEvent::Message { envelope, payload }) => {
                if let Ok(s @ CallSignal::Offer(_)) = wire::decode(envelope.kind, &payload) {
                    return Ok((envelope.call_id, envelope.from, s, Instant::now()));
                }
            }
            Some(_) => {}
            None => return Err(anyhow!("signalling connection stopped")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_uris() {
        assert_eq!(
            turn_udp_hostport("turn:127.0.0.1:3478"),
            Some("127.0.0.1:3478")
        );
        assert_eq!(
            turn_udp_hostport("turn:relay.example:3478?transport=udp"),
            Some("relay.example:3478")
        );
        assert_eq!(
            turn_udp_hostport("turn:relay.example:3478?transport=tcp"),
            None
        );
        assert_eq!(turn_udp_hostport("turns:relay.example:5349"), None);
        assert_eq!(turn_udp_hostport("stun:relay.example:3478"), None);
    }
}
