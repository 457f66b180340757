//! Push wakeups for devices without a live connection: Web Push and
//! UnifiedPush ([`webpush`]), APNs ([`apns`]) and FCM HTTP v1
//! ([`fcm`]), behind one dispatcher that collapses by call id, retries with
//! back-off honouring `Retry-After`, and prunes dead tokens.

pub mod apns;
pub mod fcm;
pub mod jwt;
pub mod webpush;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio::sync::watch;

use crate::protocol::{CallId, DeviceId};
use crate::store::{PushEndpoint, Store};
use crate::util::{b64, unix_ms};

/// A push could not be prepared.
#[derive(Debug, Error)]
pub enum PushError {
    /// A key is missing or malformed.
    #[error("key: {0}")]
    Key(&'static str),
    /// A cryptographic primitive failed.
    #[error("crypto failure")]
    Crypto,
    /// The payload does not fit one record.
    #[error("payload too large")]
    TooLarge,
    /// The endpoint is not a usable URL.
    #[error("bad endpoint")]
    Endpoint,
    /// The provider's OAuth token endpoint failed.
    #[error("oauth: {0}")]
    OAuth(String),
}

/// Why a Web Push or UnifiedPush endpoint is refused: the server would
/// otherwise POST wherever a device points it (SSRF).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EndpointRefused {
    /// Not an absolute URL with a host.
    #[error("not a URL")]
    NotUrl,
    /// Not `https:` (plain `http:` only for allow-listed hosts).
    #[error("not https")]
    NotHttps,
    /// A loopback, private, link-local or otherwise non-public address
    /// (or `localhost`) that is not allow-listed.
    #[error("not a public host")]
    NotPublic,
    /// A port other than 443 on a host that is not allow-listed: push
    /// services listen there, and any other port would let devices point
    /// the server's requests at other services (a reflector, a scanner).
    #[error("not port 443")]
    Port,
}

/// Whether `host` is in the operator's allow list (`push.endpoint_allow_hosts`).
fn allow_listed(host: &str, allow_hosts: &[String]) -> bool {
    allow_hosts.iter().any(|a| a.eq_ignore_ascii_case(host))
}

/// Checks a push endpoint URL: `https:` to a public host on port 443,
/// unless its host is allow-listed (then `http:`, private addresses and
/// any port are fine). Names are checked again when resolved
/// ([`PublicResolver`]).
pub fn check_endpoint(endpoint: &str, allow_hosts: &[String]) -> Result<(), EndpointRefused> {
    let url = reqwest::Url::parse(endpoint).map_err(|_| EndpointRefused::NotUrl)?;
    // IPv6 literals come in brackets; they are listed and parsed without.
    let host = url.host_str().ok_or(EndpointRefused::NotUrl)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if allow_listed(host, allow_hosts) {
        return match url.scheme() {
            "https" | "http" => Ok(()),
            _ => Err(EndpointRefused::NotHttps),
        };
    }
    if url.scheme() != "https" {
        return Err(EndpointRefused::NotHttps);
    }
    let public = match host.parse::<IpAddr>() {
        Ok(ip) => !sotto_addr::is_special(ip),
        Err(_) => {
            let d = host.trim_end_matches('.').to_ascii_lowercase();
            d != "localhost" && !d.ends_with(".localhost")
        }
    };
    if !public {
        return Err(EndpointRefused::NotPublic);
    }
    if url.port_or_known_default() != Some(443) {
        return Err(EndpointRefused::Port);
    }
    Ok(())
}

/// A resolver for push requests that drops non-public addresses of names
/// that are not allow-listed, so a public name pointed at an internal
/// address (or re-pointed after registration) reaches nothing.
#[derive(Debug, Clone)]
pub struct PublicResolver {
    allow_hosts: Arc<[String]>,
}

impl PublicResolver {
    /// A resolver allowing any address for the names in `allow_hosts`.
    pub fn new(allow_hosts: &[String]) -> Self {
        Self {
            allow_hosts: allow_hosts.into(),
        }
    }
}

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_hosts = self.allow_hosts.clone();
        Box::pin(async move {
            let host = name.as_str();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
            let any = allow_listed(host, &allow_hosts);
            let addrs: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| any || !sotto_addr::is_special(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(EndpointRefused::NotPublic) as _);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Why a device is being pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushKind {
    /// An offer is queued: connect and fetch it.
    Wake,
    /// The call was answered elsewhere or hung up: stop ringing.
    Cancel,
}

/// Whether an endpoint of `provider` takes pushes of `kind`. An `apns`
/// endpoint is a PushKit (VoIP) token: iOS terminates an app that does not
/// report every VoIP push to CallKit as a new incoming call, so it gets
/// wakes only. Cancels go as background pushes, which need the app's
/// ordinary device token (PushKit tokens are refused for the app's own
/// topic): an `apns-app` endpoint, which gets cancels only.
pub fn serves(provider: &str, kind: PushKind) -> bool {
    match provider {
        "apns" => kind == PushKind::Wake,
        "apns-app" => kind == PushKind::Cancel,
        _ => true,
    }
}

/// What is pushed: the call id and why. The call itself stays sealed on
/// the server until the device connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushMessage {
    /// The call.
    pub call_id: CallId,
    /// Wake or cancel.
    pub kind: PushKind,
    /// Time to live at the push service, seconds (the ring timeout).
    pub ttl_s: u64,
}

impl PushMessage {
    /// The JSON the device receives.
    pub fn payload(&self) -> String {
        let kind = match self.kind {
            PushKind::Wake => "wake",
            PushKind::Cancel => "cancel",
        };
        json!({"call_id": self.call_id.as_str(), "kind": kind}).to_string()
    }

    /// Collapse key derived from the call id: the call id itself when it
    /// fits Web Push's 32-character `Topic`, else a hash of it.
    pub fn topic(&self) -> String {
        let id = self.call_id.as_str();
        if id.len() <= 32 {
            id.to_owned()
        } else {
            b64(&Sha256::digest(id.as_bytes())[..24])
        }
    }
}

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Accepted by the push service.
    Sent,
    /// The token or subscription is dead: prune it.
    Gone,
    /// Try again, after the service's `Retry-After` if it gave one.
    Retry(Option<Duration>),
    /// Refused for another reason; do not retry.
    Failed,
}

/// Maps a push service's HTTP answer to an [`Attempt`]; `gone_body`
/// recognises provider-specific "dead token" answers.
pub(crate) async fn classify(
    res: reqwest::Result<reqwest::Response>,
    gone_body: impl Fn(u16, &str) -> bool,
) -> Attempt {
    let res = match res {
        Ok(r) => r,
        Err(_) => return Attempt::Retry(None),
    };
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
    let body = read_capped(res, ERROR_BODY_CAP).await;
    let body = String::from_utf8_lossy(&body);
    let body = body.as_ref();
    match status {
        200..=299 => Attempt::Sent,
        404 | 410 => Attempt::Gone,
        s if gone_body(s, body) => Attempt::Gone,
        429 | 500..=599 => Attempt::Retry(retry_after),
        _ => Attempt::Failed,
    }
}

/// How much of an answer's body we read: error bodies are small, and a
/// misbehaving service must not make us buffer without bound.
const ERROR_BODY_CAP: usize = 4096;

/// Reads at most `cap` bytes of a response body (a read error ends it).
async fn read_capped(mut res: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < cap {
        match res.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(cap - body.len());
                body.extend_from_slice(&chunk[..take]);
            }
            _ => break,
        }
    }
    body
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, the
/// latter measured from `now`; a date in the past means "now".
fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Retry schedule for a push.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, including the first.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles after each.
    pub base_delay: Duration,
    /// No single wait is longer (a `Retry-After` beyond it ends the push).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// How long to wait after failed attempt number `attempt` (1-based),
    /// or `None` to give up.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let backoff = self.base_delay.saturating_mul(1 << (attempt - 1).min(16));
        let wait = retry_after.map_or(backoff, |ra| ra.max(backoff));
        (wait <= self.max_delay).then_some(wait)
    }
}

/// The configured providers, and the dispatcher that uses them.
#[derive(Debug, Default)]
pub struct Providers {
    /// Web Push and UnifiedPush (same protocol).
    pub webpush: Option<webpush::WebPush>,
    /// APNs (VoIP wakes, background cancels).
    pub apns: Option<apns::Apns>,
    /// FCM HTTP v1.
    pub fcm: Option<fcm::Fcm>,
}

/// Sends pushes for queued calls; one per (device, call, kind).
///
/// A wake that is being retried stops when the call's cancel is pushed
/// (the cancel is sent only once the wake has stopped, so that a late wake
/// cannot replace the cancel at the push service, which keeps one message
/// per `Topic`), and before its first attempt and each retry when its offer
/// is no longer queued (answered, withdrawn by another node, or expired).
/// Another node's cancel cannot wait for this node's wake, so a wake
/// that ends after the call did is followed by a cancel of its own.
#[derive(Debug, Clone)]
pub struct Pusher {
    inner: Arc<PusherInner>,
}

/// Most (device, call, kind) keys remembered for collapsing; past this the
/// oldest are forgotten first (a forgotten key can be pushed once more).
const MAX_COLLAPSE_KEYS: usize = 100_000;
/// Most pushes in flight (each a task, retrying with back-off); more are
/// dropped and counted (`signald_pushes_dropped_total`).
const MAX_PUSHES_IN_FLIGHT: usize = 4_096;
/// Longest a cancel waits for the wake it stops to finish its attempt in
/// flight (each attempt has the HTTP client's 10 s timeout).
const CANCEL_WAITS_FOR_WAKE: Duration = Duration::from_secs(15);

type CollapseKey = (DeviceId, CallId, PushKind);

/// Keys already pushed, forgotten in the order they expire.
#[derive(Debug, Default)]
struct Collapse {
    until: HashMap<CollapseKey, Instant>,
    order: std::collections::VecDeque<(Instant, CollapseKey)>,
}

impl Collapse {
    /// True (and remembered until `now + ttl`) when `key` is new.
    fn first(&mut self, key: CollapseKey, now: Instant, ttl: Duration) -> bool {
        while let Some((at, _)) = self.order.front() {
            let full = self.until.len() >= MAX_COLLAPSE_KEYS;
            if *at > now && !full {
                break;
            }
            let (at, old) = self.order.pop_front().expect("front exists");
            // A key pushed again after it expired has a later entry.
            if self.until.get(&old) == Some(&at) {
                self.until.remove(&old);
            }
        }
        if self.until.get(&key).is_some_and(|until| *until > now) {
            return false;
        }
        let until = now + ttl;
        self.until.insert(key.clone(), until);
        self.order.push_back((until, key));
        true
    }
}

/// A wake being sent: how to stop it, and how to learn that it stopped.
#[derive(Debug)]
struct WakeHandle {
    generation: u64,
    cancel: watch::Sender<bool>,
    /// Closed (its sender dropped) when the wake has stopped.
    done: watch::Receiver<()>,
}

#[derive(Debug)]
struct PusherInner {
    store: Store,
    providers: Providers,
    policy: RetryPolicy,
    /// (device, call, kind) already pushed: collapses repeats.
    sent: Mutex<Collapse>,
    /// Wakes being sent, per (device, call).
    wakes: Mutex<HashMap<(DeviceId, CallId), WakeHandle>>,
    next_generation: std::sync::atomic::AtomicU64,
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// How a push to one endpoint ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Sent,
    Gone,
    Refused,
    GaveUp,
    /// A wake stopped: the call was cancelled, or its offer is no longer queued.
    Stopped,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Gone => "gone",
            Self::Refused => "refused",
            Self::GaveUp => "retries",
            Self::Stopped => "stopped",
        }
    }
}

impl PushKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Wake => "wake",
            Self::Cancel => "cancel",
        }
    }
}

impl Pusher {
    /// A dispatcher over `providers`.
    pub fn new(store: Store, providers: Providers, policy: RetryPolicy) -> Self {
        Self {
            inner: Arc::new(PusherInner {
                store,
                providers,
                policy,
                sent: Mutex::new(Collapse::default()),
                wakes: Mutex::new(HashMap::new()),
                next_generation: std::sync::atomic::AtomicU64::new(1),
                in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_PUSHES_IN_FLIGHT)),
            }),
        }
    }

    /// The VAPID public key, when Web Push is configured.
    pub fn vapid_public_key(&self) -> Option<String> {
        self.inner
            .providers
            .webpush
            .as_ref()
            .map(|w| w.public_key_b64())
    }

    /// Pushes `msg` to every endpoint of `device` in the background. A
    /// repeat of the same (device, call, kind) within the TTL is collapsed;
    /// past 4 096 pushes at once, more are dropped.
    pub fn push(&self, device: DeviceId, msg: PushMessage) {
        if !self.first_of_its_kind(&device, &msg) {
            return;
        }
        let Ok(permit) = self.inner.in_flight.clone().try_acquire_owned() else {
            metrics::counter!("signald_pushes_dropped_total").increment(1);
            tracing::warn!(%device, kind = msg.kind.as_str(), "push dropped: too many in flight");
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            this.push_now(&device, &msg).await;
            drop(permit);
        });
    }

    /// True (and remembered for the TTL) when `msg` is the first of its
    /// (device, call, kind); a repeat is counted as collapsed.
    fn first_of_its_kind(&self, device: &DeviceId, msg: &PushMessage) -> bool {
        let key = (device.clone(), msg.call_id.clone(), msg.kind);
        let ttl = Duration::from_secs(msg.ttl_s);
        let first = self
            .inner
            .sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first(key, Instant::now(), ttl);
        if !first {
            metrics::counter!("signald_pushes_collapsed_total").increment(1);
        }
        first
    }

    /// Pushes `msg` to every endpoint of `device` and waits for the outcome.
    /// A cancel first stops a wake of the same call still being sent, and
    /// waits for it, so that it reaches the push service after the wake.
    pub async fn push_now(&self, device: &DeviceId, msg: &PushMessage) {
        let call = (device.clone(), msg.call_id.clone());
        let (cancel_rx, _done_tx, generation) = match msg.kind {
            PushKind::Wake => {
                let generation = self
                    .inner
                    .next_generation
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (cancel, cancel_rx) = watch::channel(false);
                let (done_tx, done) = watch::channel(());
                let handle = WakeHandle {
                    generation,
                    cancel,
                    done,
                };
                self.wakes().insert(call.clone(), handle);
                (Some(cancel_rx), Some(done_tx), generation)
            }
            PushKind::Cancel => {
                self.stop_wake(&call).await;
                (None, None, 0)
            }
        };
        // A wake whose offer is gone before it starts (a cancel another
        // node handled while this task waited to run) is not sent.
        let sending =
            msg.kind == PushKind::Cancel || self.wake_wanted(device, msg, &cancel_rx).await;
        if sending {
            self.push_endpoints(device, msg, cancel_rx.clone()).await;
        }
        if msg.kind == PushKind::Wake {
            {
                let mut wakes = self.wakes();
                if wakes.get(&call).is_some_and(|h| h.generation == generation) {
                    wakes.remove(&call);
                }
            }
            let stopped_here = cancel_rx.as_ref().is_some_and(|c| *c.borrow());
            if sending && !stopped_here {
                self.cancel_if_ended_meanwhile(device, msg).await;
            }
        }
        // `_done_tx` drops here: a cancel waiting on this wake goes on.
    }

    /// Follows a wake with a cancel when the call ended while the wake was
    /// being sent. Another node that took the hang-up pushed its cancel at
    /// once, without waiting for this node's wake, so that cancel may have
    /// reached the push service first, and the wake would then replace it.
    /// A cancel handled on this node stops the wake and waits for it
    /// instead (it is collapsed here, or collapses this one).
    async fn cancel_if_ended_meanwhile(&self, device: &DeviceId, wake: &PushMessage) {
        let ended = match self
            .inner
            .store
            .call_end_queued(device, wake.call_id.as_str(), unix_ms())
            .await
        {
            Ok(ended) => ended,
            Err(e) => {
                tracing::warn!("push: checking for the call's end: {e}");
                false
            }
        };
        let cancel = PushMessage {
            kind: PushKind::Cancel,
            ..wake.clone()
        };
        if ended && self.first_of_its_kind(device, &cancel) {
            self.push_endpoints(device, &cancel, None).await;
        }
    }

    fn wakes(&self) -> std::sync::MutexGuard<'_, HashMap<(DeviceId, CallId), WakeHandle>> {
        self.inner.wakes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the wake of `call` being sent, if any, and waits (bounded)
    /// until its attempt in flight has ended.
    async fn stop_wake(&self, call: &(DeviceId, CallId)) {
        let Some(handle) = self.wakes().remove(call) else {
            return;
        };
        handle.cancel.send_replace(true);
        let mut done = handle.done;
        let stopped = async { while done.changed().await.is_ok() {} };
        if tokio::time::timeout(CANCEL_WAITS_FOR_WAKE, stopped)
            .await
            .is_err()
        {
            tracing::warn!(device = %call.0, "cancel push: the wake it stops is still sending");
        }
    }

    async fn push_endpoints(
        &self,
        device: &DeviceId,
        msg: &PushMessage,
        cancel: Option<watch::Receiver<bool>>,
    ) {
        let endpoints = match self.inner.store.push_endpoints(device).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("push endpoints of {device}: {e}");
                return;
            }
        };
        let sends = endpoints
            .iter()
            .filter(|ep| serves(&ep.provider, msg.kind))
            .map(|ep| {
                let cancel = cancel.clone();
                async move {
                    let outcome = self.push_endpoint(device, ep, msg, cancel).await;
                    tracing::info!(
                        %device,
                        provider = ep.provider.as_str(),
                        kind = msg.kind.as_str(),
                        outcome = outcome.as_str(),
                        "push"
                    );
                }
            });
        futures_util::future::join_all(sends).await;
    }

    /// Whether a wake should go on: not cancelled, and its offer still queued.
    async fn wake_wanted(
        &self,
        device: &DeviceId,
        msg: &PushMessage,
        cancel: &Option<watch::Receiver<bool>>,
    ) -> bool {
        if cancel.as_ref().is_some_and(|c| *c.borrow()) {
            return false;
        }
        if msg.kind != PushKind::Wake {
            return true;
        }
        match self
            .inner
            .store
            .offer_queued(device, msg.call_id.as_str(), unix_ms())
            .await
        {
            Ok(queued) => queued,
            // Unknown: a wake too many beats a missed call.
            Err(e) => {
                tracing::warn!("push: checking the offer: {e}");
                true
            }
        }
    }

    async fn push_endpoint(
        &self,
        device: &DeviceId,
        ep: &PushEndpoint,
        msg: &PushMessage,
        mut cancel: Option<watch::Receiver<bool>>,
    ) -> Outcome {
        let provider = ep.provider.as_str();
        let mut attempt = 1;
        loop {
            let now_s = unix_ms() / 1000;
            let p = &self.inner.providers;
            let outcome = match provider {
                "webpush" | "unifiedpush" => match &p.webpush {
                    Some(w) => w.send(ep, msg, now_s).await,
                    None => Attempt::Failed,
                },
                "apns" | "apns-app" => match &p.apns {
                    Some(a) => a.send(ep, msg, now_s).await,
                    None => Attempt::Failed,
                },
                "fcm" => match &p.fcm {
                    Some(f) => f.send(ep, msg, now_s).await,
                    None => Attempt::Failed,
                },
                _ => Attempt::Failed,
            };
            let provider = provider.to_owned();
            match outcome {
                Attempt::Sent => {
                    metrics::counter!("signald_pushes_sent_total", "provider" => provider)
                        .increment(1);
                    return Outcome::Sent;
                }
                Attempt::Gone => {
                    metrics::counter!("signald_pushes_failed_total", "provider" => provider, "reason" => "gone")
                        .increment(1);
                    if let Err(e) = self
                        .inner
                        .store
                        .remove_push_endpoint(device, &ep.endpoint)
                        .await
                    {
                        tracing::warn!("pruning push endpoint: {e}");
                    }
                    return Outcome::Gone;
                }
                Attempt::Failed => {
                    metrics::counter!("signald_pushes_failed_total", "provider" => provider, "reason" => "refused")
                        .increment(1);
                    return Outcome::Refused;
                }
                Attempt::Retry(after) => match self.inner.policy.delay(attempt, after) {
                    Some(wait) => {
                        metrics::counter!("signald_push_retries_total", "provider" => provider.clone())
                            .increment(1);
                        let cancelled = async {
                            match cancel.as_mut() {
                                // A dropped sender is a wake replaced by a
                                // newer one of the call, not a cancel.
                                Some(c) => {
                                    if c.wait_for(|stop| *stop).await.is_err() {
                                        std::future::pending::<()>().await;
                                    }
                                }
                                None => std::future::pending().await,
                            }
                        };
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = cancelled => {}
                        }
                        if !self.wake_wanted(device, msg, &cancel).await {
                            metrics::counter!("signald_pushes_failed_total", "provider" => provider, "reason" => "stopped")
                                .increment(1);
                            return Outcome::Stopped;
                        }
                        attempt += 1;
                    }
                    None => {
                        metrics::counter!("signald_pushes_failed_total", "provider" => provider, "reason" => "retries")
                            .increment(1);
                        return Outcome::GaveUp;
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        // RFC 9110's example date is `now` here; 30 s later is 30 s away.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retry_policy_backs_off_and_honours_retry_after() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, None), Some(Duration::from_millis(250)));
        assert_eq!(p.delay(2, None), Some(Duration::from_millis(500)));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(p.delay(1, Some(Duration::from_secs(60))), None);
        assert_eq!(p.delay(4, None), None);
    }

    #[test]
    fn voip_tokens_get_wakes_and_app_tokens_cancels() {
        assert!(serves("apns", PushKind::Wake));
        assert!(!serves("apns", PushKind::Cancel));
        assert!(!serves("apns-app", PushKind::Wake));
        assert!(serves("apns-app", PushKind::Cancel));
        for p in ["webpush", "unifiedpush", "fcm"] {
            assert!(serves(p, PushKind::Wake) && serves(p, PushKind::Cancel));
        }
    }

    #[test]
    fn endpoints_on_public_hosts_must_use_port_443() {
        assert_eq!(check_endpoint("https://push.example.com/a", &[]), Ok(()));
        assert_eq!(
            check_endpoint("https://push.example.com:443/a", &[]),
            Ok(())
        );
        for port in [22, 25, 80, 6379, 8443] {
            let url = format!("https://push.example.com:{port}/a");
            assert_eq!(
                check_endpoint(&url, &[]),
                Err(EndpointRefused::Port),
                "{url}"
            );
            let url = format!("https://8.8.8.8:{port}/a");
            assert_eq!(
                check_endpoint(&url, &[]),
                Err(EndpointRefused::Port),
                "{url}"
            );
        }
        // An allow-listed host (a distributor of one's own) may use any port.
        let allow = ["ntfy.example.org".to_owned()];
        assert_eq!(
            check_endpoint("https://ntfy.example.org:8443/a", &allow),
            Ok(())
        );
    }

    #[test]
    fn collapse_forgets_in_expiry_order_and_holds_a_bounded_number() {
        let key = |n: usize| {
            (
                DeviceId::new("d").unwrap(),
                CallId::new(format!("c{n}")).unwrap(),
                PushKind::Wake,
            )
        };
        let t0 = Instant::now();
        let ttl = Duration::from_secs(45);
        let mut c = Collapse::default();
        assert!(c.first(key(0), t0, ttl));
        assert!(!c.first(key(0), t0 + Duration::from_secs(44), ttl));
        assert!(c.first(key(1), t0 + Duration::from_secs(10), ttl));
        // Expired keys go (from the front) as time passes.
        assert!(c.first(key(0), t0 + Duration::from_secs(46), ttl));
        assert!(!c.first(key(1), t0 + Duration::from_secs(46), ttl));
        assert_eq!(c.until.len(), 2);
        // Attacker-chosen call ids cannot grow it without bound.
        for n in 2..MAX_COLLAPSE_KEYS + 10 {
            c.first(key(n), t0 + Duration::from_secs(47), ttl);
        }
        assert!(c.until.len() <= MAX_COLLAPSE_KEYS);
        assert!(c.order.len() <= MAX_COLLAPSE_KEYS + 1);
    }

    #[test]
    fn topic_is_call_id_or_its_hash() {
        let m = |id: &str| PushMessage {
            call_id: CallId::new(id).unwrap(),
            kind: PushKind::Wake,
            ttl_s: 45,
        };
        assert_eq!(m("abc").topic(), "abc");
        let long = m(&"x".repeat(40)).topic();
        assert_eq!(long.len(), 32);
        assert_eq!(long, m(&"x".repeat(40)).topic());
    }
}
