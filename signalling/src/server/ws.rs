//! One WebSocket per online device: accepts sealed messages from it,
//! delivers its queue to it in order, deletes what it acknowledges.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt as _, StreamExt as _};

use super::AppState;
use super::conn::Peer;
use super::http::{ApiError, authed};
use crate::error::ProtocolError;
use crate::protocol::{
    ClientFrame, DeviceId, Envelope, ErrorCode, MAX_FRAME_BYTES, MessageId, MessageKind,
    PROTOCOL_VERSION, ServerFrame,
};
use crate::push::{PushKind, PushMessage};
use crate::seal::{DevicePublic, verify_envelope};
use crate::store::{Enqueued, QueueCaps};
use crate::util::unix_ms;

/// Oldest and newest sender timestamps accepted, relative to our clock.
const MAX_AGE_MS: u64 = 300_000;
const MAX_FUTURE_MS: u64 = 60_000;
/// Socket read chunk per connection (larger frames are assembled across reads).
const READ_BUFFER: usize = 4096;
/// Messages read from the queue per round trip to the database.
const BATCH: i64 = 64;
/// How soon a failed read of the queue is tried again.
const FETCH_RETRY: Duration = Duration::from_secs(1);
/// How often each connection reads its queue while routing between nodes
/// is down ([`super::hub::Hub::routing_degraded`]).
const RECHECK_WHILE_DEGRADED: Duration = Duration::from_secs(2);

/// `GET /v1/ws`: authenticates the session, then upgrades.
pub(crate) async fn upgrade(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    // Authenticate before anything else is looked at.
    let device = match authed(&state, &headers, query.get("token").map(String::as_str)).await {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let client = state.client_of(&peer, &headers);
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return ApiError::rejected(rejection.status()).into_response(),
    };
    // The listener counted this socket as the proxy's, which has no cap:
    // the WebSocket counts as its client's.
    let slot = if state.is_proxy(&peer) {
        match state.conns.hold_client(client) {
            Some(slot) => Some(slot),
            None => {
                metrics::counter!("signald_connections_refused_total", "reason" => "per_ip")
                    .increment(1);
                return ApiError::Status(StatusCode::TOO_MANY_REQUESTS, "too_many_connections")
                    .into_response();
            }
        }
    } else {
        None
    };
    // Twice the frame limit: frames between the two get a typed error,
    // larger ones close the connection.
    ws.max_message_size(2 * MAX_FRAME_BYTES)
        .max_frame_size(2 * MAX_FRAME_BYTES)
        // Signalling frames are small and mostly idle connections dominate:
        // tungstenite's 128 KiB default buffers would cost ~130 KiB each.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            connection(state, socket, device, client).await;
            drop(slot);
        })
}

async fn connection(state: Arc<AppState>, socket: WebSocket, device: DeviceId, peer: IpAddr) {
    let (conn_id, signals) = state.hub.attach(&device);
    let node = state.hub.node_id().to_owned();
    // Presence before the first drain: a message stored after the drain
    // finds us and wakes us; one stored before it is drained.
    if let Err(e) = state.store.set_presence(&device, &node, unix_ms()).await {
        tracing::warn!("presence: {e}");
    }
    if let Some(woken) = state.hub.take_woken(&device) {
        metrics::histogram!("signald_wake_to_connect_seconds")
            .record(woken.elapsed().as_secs_f64());
    }
    tracing::info!(%device, %peer, "connected");
    let (mut tx, mut rx) = socket.split();
    let mut last_seq = 0i64;
    let mut delivered = Delivered::new(state.config.queue_max_messages as usize);
    let mut shutdown = state.shutdown.clone();
    // A peer that vanished without a FIN (phone off the network) is found
    // by its silence: pings it must answer, and writes that must complete.
    let period = Duration::from_secs(state.config.ws_ping_interval_s);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unanswered = 0u32;
    // The queue is read when woken, and also on every ping tick and, while
    // routing between nodes is down (a wake from another node may be
    // lost), every few seconds; after a failed read, again shortly.
    let mut recheck = tokio::time::interval(RECHECK_WHILE_DEGRADED);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retry_at: Option<tokio::time::Instant> = None;
    signals.wake.notify_one();
    let reason = loop {
        let mut read_queue = false;
        tokio::select! {
            _ = signals.wake.notified() => read_queue = true,
            _ = recheck.tick() => read_queue = state.hub.routing_degraded(),
            _ = tokio::time::sleep_until(retry_at.unwrap_or_else(tokio::time::Instant::now)),
                if retry_at.is_some() => read_queue = true,
            _ = ping.tick() => {
                if unanswered >= state.config.ws_missed_pongs {
                    metrics::counter!("signald_ws_dead_total").increment(1);
                    break "no pong";
                }
                unanswered += 1;
                let sent = tx.send(Message::Ping(Default::default()));
                if !matches!(tokio::time::timeout(period, sent).await, Ok(Ok(()))) {
                    break "write failed";
                }
                read_queue = true;
            }
            _ = signals.kick.notified() => break "replaced by a newer connection",
            _ = super::stopped(&mut shutdown) => break "server shutting down",
            incoming = rx.next() => {
                // Anything from the peer shows it is alive.
                unanswered = 0;
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Binary(_))) => {
                        if send(&mut tx, &error(ErrorCode::Malformed, None), period).await.is_err() {
                            break "write failed";
                        }
                        continue;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => break "closed by the device",
                    Some(Err(_)) => break "read failed",
                };
                let reply = handle_frame(&state, &device, &mut delivered, text.as_str()).await;
                if let Some(reply) = reply
                    && send(&mut tx, &reply, period).await.is_err()
                {
                    break "write failed";
                }
            }
        }
        if read_queue {
            retry_at = None;
            let drained = drain(&state, &device, &mut last_seq, &mut delivered, &mut tx);
            match tokio::time::timeout(period, drained).await {
                Ok(Ok(Drained::All)) => {}
                Ok(Ok(Drained::FetchFailed)) => {
                    retry_at = Some(tokio::time::Instant::now() + FETCH_RETRY);
                }
                // A write failed or stalled: the peer is gone.
                Ok(Err(_)) | Err(_) => break "write failed",
            }
        }
    };
    tracing::info!(%device, %peer, reason, "disconnected");
    // Gone from routing first, so new offers go by push even while the
    // close below waits on a dead peer.
    if state.hub.detach(&device, conn_id)
        && let Err(e) = state.store.clear_presence(&device, &node).await
    {
        tracing::warn!("presence: {e}");
    }
    let _ = tokio::time::timeout(period, tx.close()).await;
}

type Tx = futures_util::stream::SplitSink<WebSocket, Message>;

/// Messages delivered on this connection and not yet acknowledged, by
/// (sender, id): an ack costs a database write only for one of these, and
/// once, so acks are bounded by deliveries (themselves bounded by the
/// senders' rate limits and the queue caps) rather than by how fast a
/// device can write them. Holds at most `cap`, forgetting the oldest (its
/// message is delivered again on the next connection, and expires).
#[derive(Debug)]
struct Delivered {
    cap: usize,
    by_id: HashMap<(String, String), i64>,
    order: std::collections::VecDeque<(i64, (String, String))>,
}

impl Delivered {
    fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            by_id: HashMap::new(),
            order: std::collections::VecDeque::new(),
        }
    }

    fn insert(&mut self, sender: String, msg_id: String, seq: i64) {
        while self.by_id.len() >= self.cap {
            let Some((seq, key)) = self.order.pop_front() else {
                break;
            };
            if self.by_id.get(&key) == Some(&seq) {
                self.by_id.remove(&key);
            }
        }
        let key = (sender, msg_id);
        self.by_id.insert(key.clone(), seq);
        self.order.push_back((seq, key));
        // Acked entries leave `by_id` only; keep `order` from growing past them.
        if self.order.len() > 2 * self.cap {
            let by_id = &self.by_id;
            self.order.retain(|(seq, key)| by_id.get(key) == Some(seq));
        }
    }

    /// The queue position of a delivered, unacknowledged message, forgetting it.
    fn take(&mut self, sender: &str, msg_id: &str) -> Option<i64> {
        self.by_id.remove(&(sender.to_owned(), msg_id.to_owned()))
    }
}

/// Writes one frame; a write that does not complete within `limit` (the
/// peer stopped reading) fails.
async fn send(tx: &mut Tx, frame: &ServerFrame, limit: Duration) -> Result<(), ()> {
    let text = serde_json::to_string(frame).expect("frames serialize");
    match tokio::time::timeout(limit, tx.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

fn error(code: ErrorCode, id: Option<MessageId>) -> ServerFrame {
    metrics::counter!("signald_rejected_total", "code" => format!("{code:?}")).increment(1);
    ServerFrame::Error {
        v: PROTOCOL_VERSION,
        code,
        id,
    }
}

/// How a read of the queue went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drained {
    /// Everything queued was sent.
    All,
    /// The database failed: read again shortly.
    FetchFailed,
}

/// Sends every queued message after `last_seq`, in order.
async fn drain(
    state: &AppState,
    device: &DeviceId,
    last_seq: &mut i64,
    delivered: &mut Delivered,
    tx: &mut Tx,
) -> Result<Drained, axum::Error> {
    loop {
        let batch = match state.store.fetch(device, *last_seq, unix_ms(), BATCH).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(%device, "fetch: {e}; reading again in {FETCH_RETRY:?}");
                return Ok(Drained::FetchFailed);
            }
        };
        for q in &batch {
            // Stored bodies are envelopes we serialized ourselves.
            let frame = format!(
                r#"{{"type":"deliver","v":{PROTOCOL_VERSION},"msg":{}}}"#,
                q.body
            );
            tx.send(Message::Text(frame.into())).await?;
            metrics::counter!("signald_messages_delivered_total").increment(1);
            delivered.insert(q.sender.clone(), q.msg_id.clone(), q.seq);
            *last_seq = q.seq;
        }
        if (batch.len() as i64) < BATCH {
            return Ok(Drained::All);
        }
    }
}

async fn handle_frame(
    state: &AppState,
    me: &DeviceId,
    delivered: &mut Delivered,
    text: &str,
) -> Option<ServerFrame> {
    let frame = match ClientFrame::parse(text) {
        Ok(f) => f,
        Err(e) => {
            let code = match e {
                ProtocolError::TooLarge => ErrorCode::TooLarge,
                ProtocolError::Version => ErrorCode::Version,
                ProtocolError::Malformed | ProtocolError::BadId => ErrorCode::Malformed,
            };
            return Some(error(code, None));
        }
    };
    match frame {
        ClientFrame::Ack { id, from, .. } => {
            // Not delivered here, or acked already: nothing to delete.
            let Some(seq) = delivered.take(from.as_str(), id.as_str()) else {
                metrics::counter!("signald_acks_ignored_total").increment(1);
                return None;
            };
            if let Err(e) = state.store.ack_seq(me, seq).await {
                tracing::warn!("ack: {e}");
            }
            None
        }
        ClientFrame::Send { msg, .. } => {
            let allowed = state
                .device_limits
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .allow(me, Instant::now());
            if !allowed {
                metrics::counter!("signald_rate_limited_total", "scope" => "device").increment(1);
                return Some(error(ErrorCode::RateLimited, Some(msg.id)));
            }
            let id = msg.id.clone();
            Some(match accept(state, me, msg, unix_ms()).await {
                Ok(queued_s) => ServerFrame::Accepted {
                    v: PROTOCOL_VERSION,
                    id,
                    queued_s,
                },
                Err(code) => error(code, Some(id)),
            })
        }
    }
}

/// Checks a message from `me`, stores it for its recipient, and routes a
/// wake-up to the recipient's connection, or a push when it has none.
/// `Some(seconds)` when the recipient is not connected: how long the
/// message waits for it.
async fn accept(
    state: &AppState,
    me: &DeviceId,
    env: Envelope,
    now_ms: u64,
) -> Result<Option<u64>, ErrorCode> {
    if env.from != *me {
        return Err(ErrorCode::Forbidden);
    }
    // Not `replay`: the sender must learn that this was not stored.
    if env.ts_ms.saturating_add(MAX_AGE_MS) < now_ms
        || env.ts_ms > now_ms.saturating_add(MAX_FUTURE_MS)
    {
        return Err(ErrorCode::Stale);
    }
    let keys = state
        .store
        .device_keys(me)
        .await
        .map_err(|_| ErrorCode::Unavailable)?;
    let keys = keys.ok_or(ErrorCode::Forbidden)?;
    let sender =
        DevicePublic::from_b64(&keys.sign, &keys.seal).map_err(|_| ErrorCode::Unavailable)?;
    verify_envelope(&env, &sender).map_err(|_| ErrorCode::Forbidden)?;
    let exists = state
        .store
        .device_keys(&env.to)
        .await
        .map_err(|_| ErrorCode::Unavailable)?;
    if exists.is_none() {
        return Err(ErrorCode::UnknownDevice);
    }
    let body = serde_json::to_string(&env).map_err(|_| ErrorCode::Malformed)?;
    let ttl_ms = state.config.ring_timeout_s * 1000;
    let caps = QueueCaps {
        messages: state.config.queue_max_messages,
        bytes: state.config.queue_max_bytes,
        per_sender: state.config.queue_max_per_sender,
    };
    let stored = state
        .store
        .enqueue_capped(
            &env,
            &body,
            now_ms + ttl_ms,
            env.ts_ms + MAX_AGE_MS,
            now_ms,
            caps,
        )
        .await
        .map_err(|e| {
            tracing::warn!("enqueue: {e}");
            ErrorCode::Unavailable
        })?;
    match stored {
        Enqueued::Stored(_) => {}
        Enqueued::Duplicate => return Err(ErrorCode::Replay),
        Enqueued::Full => {
            tracing::info!(from = %me, to = %env.to, "message refused: the recipient's queue is full");
            return Err(ErrorCode::QueueFull);
        }
    }
    metrics::counter!("signald_messages_total", "kind" => env.kind.as_str()).increment(1);
    if state.hub.route(&env.to).await {
        return Ok(None);
    }
    // Offline: wake it for an offer; withdraw and cancel for an ended call.
    let push = |kind| PushMessage {
        call_id: env.call_id.clone(),
        kind,
        ttl_s: state.config.ring_timeout_s,
    };
    if env.kind == MessageKind::Offer {
        state.hub.mark_woken(&env.to, Instant::now());
        state.pusher.push(env.to.clone(), push(PushKind::Wake));
    } else if env.kind.ends_ringing() {
        // Only a device that still has the offer queued was (or will be)
        // woken for it, by whichever node; the shared database knows.
        match state
            .store
            .withdraw_offers(&env.to, env.call_id.as_str())
            .await
        {
            Ok(0) => {}
            Ok(_) => state.pusher.push(env.to.clone(), push(PushKind::Cancel)),
            Err(e) => tracing::warn!("withdraw: {e}"),
        }
    }
    Ok(Some(state.config.ring_timeout_s))
}

#[cfg(test)]
mod tests {
    use super::Delivered;

    #[test]
    fn delivered_ids_are_taken_once_and_bounded() {
        let mut d = Delivered::new(3);
        d.insert("a".into(), "1".into(), 1);
        d.insert("a".into(), "2".into(), 2);
        assert_eq!(d.take("a", "1"), Some(1));
        assert_eq!(d.take("a", "1"), None, "an ack deletes once");
        assert_eq!(d.take("b", "2"), None, "sender and id must both match");
        for n in 3..1_000 {
            d.insert("a".into(), n.to_string(), n);
        }
        assert!(d.by_id.len() <= 3 && d.order.len() <= 7);
        assert_eq!(d.take("a", "999"), Some(999));
        assert_eq!(d.take("a", "3"), None, "the oldest were forgotten");
    }
}
