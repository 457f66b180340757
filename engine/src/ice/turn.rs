//! One STUN/TURN client per (local socket, server): server-reflexive
//! discovery and a relayed allocation with its permissions and channels.

use super::{IceError, TurnServer};
use rtc_ice::crypto::{HashAlgorithm, RTCCryptoProvider};
use rtc_shared::TransportProtocol;
use rtc_stun::attributes::{ATTR_FINGERPRINT, ATTR_MESSAGE_INTEGRITY, ATTR_REALM};
use rtc_stun::error_code::{
    CODE_ALLOC_MISMATCH, CODE_STALE_NONCE, CODE_UNAUTHORIZED, ErrorCode, ErrorCodeAttribute,
};
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::{
    CLASS_ERROR_RESPONSE, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, Getter, METHOD_ALLOCATE,
    METHOD_CREATE_PERMISSION, METHOD_REFRESH, Message, Method, Setter, TransactionId,
};
use rtc_stun::textattrs::TextAttribute;
use rtc_turn::client::{Client, ClientConfig, Event};
use rtc_turn::proto::reqfamily::REQUESTED_FAMILY_IPV6;
use sansio::Protocol;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// What a link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkKind {
    /// STUN Binding only (server-reflexive candidate).
    Stun,
    /// TURN allocation (relayed candidate).
    Turn,
}

/// What happened on a link, for the session.
pub(crate) enum LinkEvent {
    /// Our server-reflexive address.
    Reflexive(SocketAddr),
    /// The allocation's relayed address.
    Relayed(SocketAddr),
    /// Data from `peer` through the relay.
    Data { peer: SocketAddr, data: Vec<u8> },
    /// Data dropped: from a peer whose IP we gave no permission to.
    Unpermitted,
    /// The server no longer has the allocation at this relayed address
    /// (437 to a request on it: it restarted, or the allocation expired).
    Lost(SocketAddr),
    /// The server did not answer or refused.
    Failed(String),
    /// The server refused a permission for a peer (403 Forbidden from a
    /// relay whose policy denies the peer's address, say): the allocation
    /// stays, but media cannot flow to that peer through it.
    Refused(String),
}

/// STUN message type of an Allocate request (RFC 8656 §7.1).
const ALLOCATE_REQUEST: [u8; 2] = [0x00, 0x03];
/// Requests sent again in a row after 438 (Stale Nonce) answers; a server
/// that keeps calling a fresh nonce stale is broken, not slow.
const MAX_STALE_NONCE_RETRIES: u32 = 3;
/// Allocate requests sent again after 437 (Allocation Mismatch): a server
/// may hold a just-deleted allocation's 5-tuple a little while (coturn for
/// about a second) and refuse a new one on it meanwhile.
const MAX_MISMATCH_RETRIES: u32 = 3;
/// Wait before such a retry.
const MISMATCH_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Signed requests remembered to authenticate their answers: far more than
/// a link has in flight (the client gives up a transaction after ~8 s).
const MAX_SIGNED: usize = 64;
/// First retransmission timeout of a STUN/TURN request, doubled on each
/// retransmission (`rtc-turn` caps the interval at 1.6 s and gives up after
/// 7 sends). RFC 8489 §6.2.1 says RTO SHOULD be greater than 500 ms when
/// the path's RTT is unknown, and a TURN server is often far away or behind
/// a cellular link whose RTT exceeds `rtc-turn`'s default of 200 ms: then
/// every request would be sent twice for nothing. 500 ms costs a lost
/// Allocate 300 ms more, and moves the verdict on a dead server from about
/// 8 s to 9.5 s; a dead path mid-call is noticed by ICE consent, not by this.
const RTO: Duration = Duration::from_millis(500);
/// Peer addresses a link asks permissions for: all remote candidates of a
/// few generations, and one refresh request that still fits a datagram.
pub(crate) const MAX_PERMISSIONS: usize = 64;

pub(crate) struct TurnLink {
    pub(crate) kind: LinkKind,
    pub(crate) socket: SocketAddr,
    pub(crate) server: SocketAddr,
    pub(crate) relayed: Option<SocketAddr>,
    client: Client,
    /// Whether Allocate requests ask for an IPv6 relay (server reached
    /// over IPv6, and it has not refused that family).
    ask_ipv6: bool,
    /// Username and password, to re-sign an Allocate that asks for IPv6.
    creds: Option<TurnServer>,
    provider: Arc<dyn RTCCryptoProvider>,
    /// Time of the latest input, for a retry decided while polling events.
    last_now: Instant,
    /// Peers we asked permissions for, to ask again after a 438.
    peers: Vec<SocketAddr>,
    /// 438 answers retried since the last success response.
    stale_retries: u32,
    /// The relayed address being deleted by [`TurnLink::close`].
    closing: Option<SocketAddr>,
    /// Transaction ID of the deleting Refresh (LIFETIME 0) last sent; none
    /// while one is queued but not yet sent.
    closing_tid: Option<[u8; 12]>,
    /// Whether the Allocate was sent (see [`TurnLink::start`]).
    started: bool,
    /// Whether the link reported [`LinkEvent::Failed`] without a relayed address.
    failed: bool,
    /// A relayed address the server said it no longer has, to report.
    lost: Option<SocketAddr>,
    /// The last permission refusal reported: each is reported once, not
    /// at every refresh.
    refused: Option<String>,
    /// When to send the Allocate again after a 437, and how often it was.
    mismatch_retry_at: Option<Instant>,
    mismatch_retries: u32,
    refresh_cap: Option<Duration>,
    /// Our latest signed requests: transaction ID and realm.
    signed: VecDeque<([u8; 12], String)>,
}

impl TurnLink {
    /// A link that sends its Binding or Allocate request at once.
    pub(crate) fn new(
        now: Instant,
        kind: LinkKind,
        socket: SocketAddr,
        server: SocketAddr,
        creds: Option<&TurnServer>,
        refresh_cap: Option<Duration>,
        provider: Arc<dyn RTCCryptoProvider>,
    ) -> Result<Self, IceError> {
        let mut link = Self::idle(now, kind, socket, server, creds, refresh_cap, provider)?;
        link.start(now)?;
        Ok(link)
    }

    /// A new TURN link to the same server from the same socket, with the
    /// same credentials, whose Allocate waits for [`TurnLink::start`].
    pub(crate) fn renewed(&self, now: Instant) -> Result<Self, IceError> {
        Self::idle(
            now,
            self.kind,
            self.socket,
            self.server,
            self.creds.as_ref(),
            self.refresh_cap,
            self.provider.clone(),
        )
    }

    fn idle(
        now: Instant,
        kind: LinkKind,
        socket: SocketAddr,
        server: SocketAddr,
        creds: Option<&TurnServer>,
        refresh_cap: Option<Duration>,
        provider: Arc<dyn RTCCryptoProvider>,
    ) -> Result<Self, IceError> {
        let (username, password, realm) = creds
            .map(|t| (t.username.as_str(), t.password.as_str(), t.realm.as_str()))
            .unwrap_or_default();
        let cfg = ClientConfig {
            stun_serv_addr: server.to_string(),
            turn_serv_addr: if kind == LinkKind::Turn {
                server.to_string()
            } else {
                String::new()
            },
            local_addr: socket,
            transport_protocol: TransportProtocol::UDP,
            username: username.to_owned(),
            password: password.to_owned(),
            realm: realm.to_owned(),
            software: String::new(),
            rto_in_ms: RTO.as_millis() as u64,
            allocation_refresh_interval_cap: refresh_cap,
        };
        let client = Client::new(cfg, provider.clone())?;
        Ok(Self {
            kind,
            socket,
            server,
            relayed: None,
            client,
            ask_ipv6: kind == LinkKind::Turn && server.is_ipv6(),
            creds: creds.cloned(),
            provider,
            last_now: now,
            peers: Vec::new(),
            stale_retries: 0,
            closing: None,
            closing_tid: None,
            started: false,
            failed: false,
            lost: None,
            refused: None,
            mismatch_retry_at: None,
            mismatch_retries: 0,
            refresh_cap,
            signed: VecDeque::new(),
        })
    }

    /// Sends the Binding or Allocate request, once. A new allocation on a
    /// 5-tuple whose old one is still being deleted would be refused (437,
    /// RFC 8656 §7.2), so a renewed link starts only after that.
    pub(crate) fn start(&mut self, now: Instant) -> Result<(), IceError> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        self.last_now = now;
        let sent = match self.kind {
            LinkKind::Stun => self.client.send_binding_request(now),
            LinkKind::Turn => self.client.allocate(now),
        };
        if sent.is_err() {
            self.failed = true;
        }
        sent.map(|_| ()).map_err(IceError::from)
    }

    pub(crate) fn started(&self) -> bool {
        self.started
    }

    /// Whether the link gave up without a relayed or reflexive address.
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// Peer addresses the allocation has permissions for.
    pub(crate) fn permissions(&self) -> usize {
        self.peers.len()
    }

    /// Whether [`TurnLink::close`] sent a deletion and it is over: answered
    /// (accepted, refused, or 438 too often) or given up on.
    pub(crate) fn closed(&self) -> bool {
        self.closing.is_some()
            && self
                .closing_tid
                .is_some_and(|id| !self.client.has_transaction(&TransactionId(id)))
    }

    /// Whether the link is deleting its allocation.
    pub(crate) fn closing(&self) -> bool {
        self.closing.is_some()
    }

    /// Feeds a datagram that came from this link's server.
    pub(crate) fn handle_read(&mut self, now: Instant, data: &[u8]) -> Result<(), IceError> {
        self.last_now = now;
        let answer = self.our_answer(data);
        if answer.is_some() && !self.authentic_answer(data) {
            return Err(IceError::Stun(
                "unauthenticated answer from the TURN server".into(),
            ));
        }
        let msg = rtc_shared::TaggedBytesMut {
            now,
            transport: rtc_shared::TransportContext {
                local_addr: self.socket,
                peer_addr: self.server,
                transport_protocol: TransportProtocol::UDP,
                ecn: None,
            },
            message: bytes::BytesMut::from(data),
        };
        // `rtc-turn` returns an error for some error answers it took in.
        let read = self.client.handle_read(msg);
        match answer {
            Some((_, None)) => self.stale_retries = 0,
            Some((method, Some(CODE_STALE_NONCE))) => self.after_stale_nonce(now, method),
            Some((method, Some(CODE_ALLOC_MISMATCH))) => self.after_mismatch(now, method),
            _ => {}
        }
        read.map_err(IceError::from)
    }

    /// The method and error code (none for a success) of `data` when it
    /// answers one of our pending transactions.
    fn our_answer(&self, data: &[u8]) -> Option<(Method, Option<ErrorCode>)> {
        if !self.claims(data) || !rtc_stun::message::is_stun_message(data) {
            return None;
        }
        let mut m = Message::new();
        m.unmarshal_binary(data).ok()?;
        if m.typ.class == CLASS_SUCCESS_RESPONSE {
            return Some((m.typ.method, None));
        }
        let mut code = ErrorCodeAttribute::default();
        code.get_from(&m).ok()?;
        Some((m.typ.method, Some(code.code)))
    }

    /// The client took the fresh NONCE of a 438 answer (RFC 8489 §9.2.5),
    /// but `rtc-turn` 0.21 sends a Refresh again only at its next timer
    /// (possibly after the allocation expired) and a CreatePermission for a
    /// new peer never: the relay would not let that peer in. Ask again now,
    /// a bounded number of times. (An Allocate is retried in `poll_event`;
    /// a ChannelBind by the client itself at the next send.)
    fn after_stale_nonce(&mut self, now: Instant, method: Method) {
        if self.stale_retries >= MAX_STALE_NONCE_RETRIES {
            return;
        }
        if method == METHOD_REFRESH {
            self.stale_retries += 1;
            match self.closing {
                Some(relayed) => {
                    // The deletion is not over until this one is answered.
                    let sent = self.client.relay(relayed).and_then(|mut r| r.close(now));
                    if sent.is_ok() {
                        self.closing_tid = None;
                    }
                }
                None => {
                    let _ = self.client.refresh_allocations(now);
                }
            }
        } else if method == METHOD_CREATE_PERMISSION {
            self.stale_retries += 1;
            // Only the refused (now forgotten) permissions are sent again.
            for peer in self.peers.clone() {
                let _ = self.permit(now, peer);
            }
        }
    }

    /// Whether `data` is a response to one of this link's transactions.
    pub(crate) fn answers(&self, data: &[u8]) -> bool {
        // Response classes have the C1 bit (0x0100) of the type set (RFC 5389 §6).
        rtc_stun::message::is_stun_message(data)
            && data[0] & 0x01 != 0
            && transaction_id(data)
                .is_some_and(|id| self.client.has_transaction(&TransactionId(id)))
    }

    /// 437 (Allocation Mismatch, RFC 8656 §7.2, §7.3). To an Allocate: the
    /// 5-tuple still has an allocation, which a server may keep a little
    /// after deleting it; ask again a bit later, a bounded number of times.
    /// To a request on our allocation: the server no longer has it.
    fn after_mismatch(&mut self, now: Instant, method: Method) {
        if method == METHOD_ALLOCATE {
            if self.relayed.is_none() && self.mismatch_retries < MAX_MISMATCH_RETRIES {
                self.mismatch_retries += 1;
                self.mismatch_retry_at = Some(now + MISMATCH_RETRY_AFTER);
            }
        } else if self.closing.is_none()
            && let Some(relayed) = self.relayed.take()
        {
            self.lost = Some(relayed);
        }
    }

    /// Asks the server to refresh the allocation (a Refresh request), to
    /// learn whether it still has it: a 437 answer reports [`LinkEvent::Lost`].
    pub(crate) fn probe(&mut self, now: Instant) {
        if self.relayed.is_some() {
            let _ = self.client.refresh_allocations(now);
        }
    }

    /// Whether `data`, from this link's server, is for this link: a
    /// response to one of its transactions, or anything else (indications,
    /// ChannelData) when it is a TURN link. A STUN link and a TURN link on
    /// one socket often share a server (one coturn for both), and each
    /// drops the other's responses as unknown transactions.
    pub(crate) fn claims(&self, data: &[u8]) -> bool {
        let response = rtc_stun::message::is_stun_message(data) && data[0] & 0x01 != 0;
        if response {
            self.answers(data)
        } else {
            self.kind == LinkKind::Turn
        }
    }

    /// Relays `data` to `peer` (ChannelData once bound, Send indication before).
    pub(crate) fn send_to(
        &mut self,
        now: Instant,
        data: &[u8],
        peer: SocketAddr,
    ) -> Result<(), IceError> {
        let relayed = self.relayed.ok_or(IceError::NotConnected)?;
        self.client
            .relay(relayed)?
            .send_to(now, data, peer)
            .map_err(IceError::from)
    }

    /// Asks the server to accept traffic from `peer`'s IP (idempotent).
    pub(crate) fn permit(&mut self, now: Instant, peer: SocketAddr) -> Result<(), IceError> {
        let Some(relayed) = self.relayed else {
            return Ok(());
        };
        if relayed.is_ipv4() != peer.is_ipv4() {
            return Ok(());
        }
        if !self.peers.contains(&peer) {
            // rtc-turn keeps every permission for the allocation's life and
            // refreshes them all in one request.
            if self.peers.len() >= MAX_PERMISSIONS {
                return Err(IceError::Agent("too many TURN permissions".into()));
            }
            self.peers.push(peer);
        }
        self.client.relay(relayed)?.create_permission(now, peer)?;
        Ok(())
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        let _ = self.client.handle_timeout(now);
        if self.mismatch_retry_at.is_some_and(|t| now >= t) {
            self.mismatch_retry_at = None;
            if self.client.allocate(now).is_err() {
                self.failed = true;
                self.lost = None;
            }
        }
    }

    pub(crate) fn poll_timeout(&mut self) -> Option<Instant> {
        match (self.client.poll_timeout(), self.mismatch_retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Next datagram to send to the server (always from `self.socket`).
    pub(crate) fn poll_write(&mut self) -> Option<Vec<u8>> {
        let m = self.client.poll_write()?.message;
        let out = if self.ask_ipv6 && m.get(..2) == Some(&ALLOCATE_REQUEST[..]) {
            // Unreadable input cannot happen (the client built it); sent as is then.
            self.ask_for_ipv6(&m).unwrap_or_else(|| m.to_vec())
        } else {
            m.to_vec()
        };
        self.remember_signed(&out);
        if self.closing.is_some() && is_deletion(&out) {
            self.closing_tid = transaction_id(&out);
        }
        Some(out)
    }

    /// Notes the transaction ID and realm of a request we signed, so that
    /// its answer is authenticated under the same key.
    fn remember_signed(&mut self, raw: &[u8]) {
        let mut m = Message::new();
        if !rtc_stun::message::is_stun_message(raw)
            || m.unmarshal_binary(raw).is_err()
            || m.typ.class != CLASS_REQUEST
            || !m.contains(ATTR_MESSAGE_INTEGRITY)
            || self.signed.iter().any(|(id, _)| *id == m.transaction_id.0)
        {
            return;
        }
        let realm =
            TextAttribute::get_from_as(&m, ATTR_REALM).map_or_else(|_| String::new(), |r| r.text);
        if self.signed.len() == MAX_SIGNED {
            self.signed.pop_front();
        }
        self.signed.push_back((m.transaction_id.0, realm));
    }

    /// Whether an answer may reach the client. `rtc-turn` 0.21 checks no
    /// MESSAGE-INTEGRITY on answers, but one to a request we signed counts
    /// only if it verifies under the long-term key (RFC 8489 §9.2.5):
    /// otherwise whoever sees our requests could forge an allocation, a
    /// LIFETIME of 0 that drops it, or a refused permission. 401 and 438
    /// answers cannot be signed and carry a new nonce instead.
    fn authentic_answer(&self, data: &[u8]) -> bool {
        let mut m = Message::new();
        if m.unmarshal_binary(data).is_err() {
            return false;
        }
        let Some((_, realm)) = self.signed.iter().find(|(id, _)| *id == m.transaction_id.0) else {
            return true; // an answer to an unsigned request (Binding, first Allocate)
        };
        let mut code = ErrorCodeAttribute::default();
        if m.typ.class == CLASS_ERROR_RESPONSE
            && code.get_from(&m).is_ok()
            && (code.code == CODE_UNAUTHORIZED || code.code == CODE_STALE_NONCE)
        {
            return true;
        }
        let Some(key) = self.long_term_key(realm) else {
            return false;
        };
        // HMAC compared in constant time by the crypto provider.
        MessageIntegrity::check(&mut m, &key, self.provider.crypto()).is_ok()
    }

    /// The long-term key MD5(username ":" realm ":" password) (RFC 8489
    /// §9.2.2). It stands for the password, so it and the text it is
    /// hashed from are wiped when dropped.
    fn long_term_key(&self, realm: &str) -> Option<Zeroizing<Vec<u8>>> {
        let creds = self.creds.as_ref()?;
        let text = Zeroizing::new(format!("{}:{realm}:{}", creds.username, creds.password));
        let key = self
            .provider
            .crypto()
            .hash(HashAlgorithm::Md5, text.as_bytes());
        key.ok().filter(|k| k.len() == 16).map(Zeroizing::new)
    }

    /// Adds REQUESTED-ADDRESS-FAMILY: IPv6 to an Allocate request and signs
    /// it again. Without it a server allocates IPv4 (RFC 8656 §7.1, RFC 6156
    /// §4.2; coturn answers 440 when it relays on IPv6 only), and an IPv6
    /// client must relay on IPv6 for the peer's IPv6 candidates to pair with
    /// ours. A server that refuses IPv6 (440) is asked again without it
    /// (see `poll_event`). `rtc-turn` 0.21 cannot add the attribute itself;
    /// the rebuilt request keeps the transaction ID, so the client matches
    /// the answer.
    fn ask_for_ipv6(&self, raw: &[u8]) -> Option<Vec<u8>> {
        let mut orig = Message::new();
        orig.unmarshal_binary(raw).ok()?;
        let mut out = Message::new();
        out.write_header();
        orig.typ.add_to(&mut out).ok()?;
        orig.transaction_id.add_to(&mut out).ok()?;
        for a in &orig.attributes.0 {
            if a.typ != ATTR_MESSAGE_INTEGRITY && a.typ != ATTR_FINGERPRINT {
                out.add(a.typ, &a.value);
            }
        }
        REQUESTED_FAMILY_IPV6.add_to(&mut out).ok()?;
        if orig.contains(ATTR_MESSAGE_INTEGRITY) {
            let creds = self.creds.as_ref()?;
            let realm = String::from_utf8(orig.get(ATTR_REALM).ok()?).ok()?;
            MessageIntegrity::new_long_term_integrity_with_provider(
                creds.username.clone(),
                realm,
                creds.password.clone(),
                self.provider.crypto(),
            )
            .ok()?
            .add_to(&mut out)
            .ok()?;
        }
        FINGERPRINT.add_to(&mut out).ok()?;
        Some(out.raw)
    }

    pub(crate) fn poll_event(&mut self) -> Option<LinkEvent> {
        if let Some(relayed) = self.lost.take() {
            return Some(LinkEvent::Lost(relayed));
        }
        loop {
            let ev = self.client.poll_event()?;
            let out = match ev {
                // The 437 that `after_mismatch` answers by asking again.
                Event::AllocateError(..) if self.mismatch_retry_at.is_some() => continue,
                Event::BindingResponse(_, addr) => LinkEvent::Reflexive(addr),
                Event::AllocateResponse(_, addr) => {
                    self.relayed = Some(addr);
                    LinkEvent::Relayed(addr)
                }
                // The server relays only from permitted IPs (RFC 8656 §9);
                // anything else did not come through it (Data indications
                // are not authenticated).
                Event::DataIndicationOrChannelData(_, peer, _)
                    if !self.peers.iter().any(|p| p.ip() == peer.ip()) =>
                {
                    LinkEvent::Unpermitted
                }
                Event::DataIndicationOrChannelData(_, peer, data) => LinkEvent::Data {
                    peer,
                    data: data.to_vec(),
                },
                Event::TransactionTimeout(_) if self.relayed.is_some() => {
                    // A lost Refresh/CreatePermission of a live allocation: the
                    // client retries on its own schedule; the path is judged by ICE consent.
                    continue;
                }
                Event::TransactionTimeout(_) => {
                    self.failed = true;
                    LinkEvent::Failed("timeout".into())
                }
                // 440 Address Family not Supported (RFC 8656 §7.2) to our
                // IPv6 request: allocate again, letting the server pick its
                // default (IPv4) relay. rtc-turn reports the code only in
                // the error's text ("... (error 440: ...)").
                Event::AllocateError(_, e)
                    if self.ask_ipv6 && e.to_string().contains("(error 440") =>
                {
                    self.ask_ipv6 = false;
                    match self.client.allocate(self.last_now) {
                        Ok(_) => continue,
                        Err(e) => {
                            self.failed = true;
                            LinkEvent::Failed(e.to_string())
                        }
                    }
                }
                // 438 Stale Nonce to the authenticated Allocate: start
                // again, so the server's next 401 brings a fresh nonce.
                Event::AllocateError(_, e)
                    if self.stale_retries < MAX_STALE_NONCE_RETRIES
                        && e.to_string().contains("(error 438") =>
                {
                    self.stale_retries += 1;
                    match self.client.allocate(self.last_now) {
                        Ok(_) => continue,
                        Err(e) => {
                            self.failed = true;
                            LinkEvent::Failed(e.to_string())
                        }
                    }
                }
                Event::AllocateError(_, e) | Event::BindingError(_, e) => {
                    self.failed = true;
                    LinkEvent::Failed(e.to_string())
                }
                // An answer with an error code other than 438 (which the
                // client retries) is worth telling, once. rtc-turn gives
                // the code only in the error's text ("... (error 403: ...)").
                Event::CreatePermissionError(_, e)
                    if e.to_string().contains("(error ")
                        && self.refused.as_deref() != Some(&e.to_string()) =>
                {
                    let reason = e.to_string();
                    self.refused = Some(reason.clone());
                    LinkEvent::Refused(format!("permission for a peer refused: {reason}"))
                }
                Event::CreatePermissionResponse(..) | Event::CreatePermissionError(..) => continue,
                _ => continue,
            };
            return Some(out);
        }
    }

    /// Deletes the allocation (Refresh with lifetime 0). The link stays
    /// needed until [`TurnLink::closed`]: a 438 answer is retried (see
    /// `after_stale_nonce`).
    pub(crate) fn close(&mut self, now: Instant) {
        if let Some(relayed) = self.relayed.take()
            && let Ok(mut r) = self.client.relay(relayed)
            && r.close(now).is_ok()
        {
            self.closing = Some(relayed);
            self.closing_tid = None;
        }
    }
}

/// The STUN transaction ID (RFC 5389 §6: header bytes 8 to 20).
fn transaction_id(raw: &[u8]) -> Option<[u8; 12]> {
    raw.get(8..20)?.try_into().ok()
}

/// Whether `raw` is a Refresh request with LIFETIME 0 (RFC 8656 §7.3: a deletion).
fn is_deletion(raw: &[u8]) -> bool {
    let mut m = Message::new();
    let mut lifetime = rtc_turn::proto::lifetime::Lifetime::default();
    rtc_stun::message::is_stun_message(raw)
        && m.unmarshal_binary(raw).is_ok()
        && m.typ == rtc_stun::message::MessageType::new(METHOD_REFRESH, CLASS_REQUEST)
        && lifetime.get_from(&m).is_ok()
        && lifetime.0.is_zero()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc_stun::attributes::ATTR_NONCE;
    use rtc_stun::message::{CLASS_INDICATION, METHOD_ALLOCATE, METHOD_DATA, MessageType};
    use rtc_turn::proto::{
        data::Data, lifetime::Lifetime, peeraddr::PeerAddress, relayaddr::RelayedAddress,
    };

    const SOCK: &str = "192.0.2.1:4000";
    const SERVER: &str = "192.0.2.9:3478";
    const RELAYED: &str = "192.0.2.9:50000";

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn creds() -> TurnServer {
        TurnServer {
            addr: sa(SERVER),
            username: "u".into(),
            password: "p".into(),
            realm: String::new(),
        }
    }

    fn link(now: Instant) -> TurnLink {
        let provider = rtc_ice::crypto::default_provider().unwrap();
        TurnLink::new(
            now,
            LinkKind::Turn,
            sa(SOCK),
            sa(SERVER),
            Some(&creds()),
            None,
            provider,
        )
        .unwrap()
    }

    /// A server message answering `req` (or an indication when `req` is None).
    fn answer(
        req: Option<&[u8]>,
        typ: MessageType,
        attrs: Vec<Box<dyn Setter>>,
        signed: bool,
    ) -> Vec<u8> {
        let mut m = Message::new();
        m.write_header();
        typ.add_to(&mut m).unwrap();
        let id = req.map_or_else(TransactionId::new, |r| {
            TransactionId(r[8..20].try_into().unwrap())
        });
        id.add_to(&mut m).unwrap();
        for a in attrs {
            a.add_to(&mut m).unwrap();
        }
        if signed {
            let provider = rtc_ice::crypto::default_provider().unwrap();
            MessageIntegrity::new_long_term_integrity_with_provider(
                "u".into(),
                "sotto".into(),
                "p".into(),
                provider.crypto(),
            )
            .unwrap()
            .add_to(&mut m)
            .unwrap();
        }
        FINGERPRINT.add_to(&mut m).unwrap();
        m.raw
    }

    /// Runs the 401 challenge; returns the link and its authenticated Allocate.
    fn challenged(now: Instant) -> (TurnLink, Vec<u8>) {
        let mut l = link(now);
        let first = l.poll_write().unwrap();
        let challenge = answer(
            Some(&first),
            MessageType::new(METHOD_ALLOCATE, CLASS_ERROR_RESPONSE),
            vec![
                Box::new(ErrorCodeAttribute {
                    code: rtc_stun::error_code::CODE_UNAUTHORIZED,
                    reason: b"Unauthorized".to_vec(),
                }),
                Box::new(TextAttribute::new(ATTR_REALM, "sotto".into())),
                Box::new(TextAttribute::new(ATTR_NONCE, "n1".into())),
            ],
            false,
        );
        l.handle_read(now, &challenge).unwrap();
        let signed = l.poll_write().unwrap();
        assert!(l.poll_write().is_none());
        (l, signed)
    }

    fn allocated(req: &[u8], signed: bool) -> Vec<u8> {
        let relayed = sa(RELAYED);
        answer(
            Some(req),
            MessageType::new(METHOD_ALLOCATE, CLASS_SUCCESS_RESPONSE),
            vec![
                Box::new(RelayedAddress {
                    ip: relayed.ip(),
                    port: relayed.port(),
                }),
                Box::new(Lifetime(Duration::from_secs(600))),
            ],
            signed,
        )
    }

    /// RFC 8489 §9.2.5: a response to a request sent with long-term
    /// credentials counts only if its MESSAGE-INTEGRITY verifies; one that
    /// anybody could forge is discarded (the request is retransmitted).
    #[test]
    fn unauthenticated_allocate_success_is_discarded() {
        let now = Instant::now();
        let (mut l, req) = challenged(now);
        let _ = l.handle_read(now, &allocated(&req, false));
        assert!(l.poll_event().is_none(), "forged allocation accepted");
        assert_eq!(l.relayed, None);
        l.handle_read(now, &allocated(&req, true)).unwrap();
        assert!(matches!(l.poll_event(), Some(LinkEvent::Relayed(a)) if a == sa(RELAYED)));
    }

    /// The relay delivers data only from peers we permitted (RFC 8656
    /// §9); a Data indication from another peer is not from the relay.
    #[test]
    fn data_from_a_peer_without_permission_is_dropped() {
        let now = Instant::now();
        let (mut l, req) = challenged(now);
        l.handle_read(now, &allocated(&req, true)).unwrap();
        while l.poll_event().is_some() {}
        let peer = sa("198.51.100.5:6000");
        l.permit(now, peer).unwrap();
        let data = |from: SocketAddr| {
            answer(
                None,
                MessageType::new(METHOD_DATA, CLASS_INDICATION),
                vec![
                    Box::new(PeerAddress {
                        ip: from.ip(),
                        port: from.port(),
                    }),
                    Box::new(Data(vec![0x80, 0, 0, 1])),
                ],
                false,
            )
        };
        let _ = l.handle_read(now, &data(sa("203.0.113.66:6000")));
        assert!(
            matches!(l.poll_event(), Some(LinkEvent::Unpermitted)),
            "data from a stranger accepted"
        );
        // Permissions are per IP address (RFC 8656 §9): any port of the peer.
        l.handle_read(now, &data(sa("198.51.100.5:7000"))).unwrap();
        assert!(matches!(l.poll_event(), Some(LinkEvent::Data { .. })));
    }

    /// A relay that denies the peer's address answers the CreatePermission
    /// 403: the session hears of it once (media cannot flow to that peer
    /// through this relay), not again at each refresh.
    #[test]
    fn a_permission_refused_is_reported_once() {
        let now = Instant::now();
        let (mut l, req) = challenged(now);
        l.handle_read(now, &allocated(&req, true)).unwrap();
        while l.poll_event().is_some() {}
        while l.poll_write().is_some() {}
        let forbidden = |l: &mut TurnLink| {
            let ask = l.poll_write().expect("a CreatePermission");
            answer(
                Some(&ask),
                MessageType::new(METHOD_CREATE_PERMISSION, CLASS_ERROR_RESPONSE),
                vec![Box::new(ErrorCodeAttribute {
                    code: rtc_stun::error_code::CODE_FORBIDDEN,
                    reason: b"Forbidden".to_vec(),
                })],
                true,
            )
        };
        l.permit(now, sa("198.51.100.5:6000")).unwrap();
        let no = forbidden(&mut l);
        l.handle_read(now, &no).unwrap();
        assert!(
            matches!(l.poll_event(), Some(LinkEvent::Refused(r)) if r.contains("403")),
            "refusal not reported"
        );
        l.permit(now, sa("198.51.100.5:6000")).unwrap();
        let again = forbidden(&mut l);
        l.handle_read(now, &again).unwrap();
        assert!(l.poll_event().is_none(), "the same refusal reported twice");
    }

    fn mismatch(req: &[u8], method: Method, signed: bool) -> Vec<u8> {
        answer(
            Some(req),
            MessageType::new(method, CLASS_ERROR_RESPONSE),
            vec![Box::new(ErrorCodeAttribute {
                code: CODE_ALLOC_MISMATCH,
                reason: b"Allocation Mismatch".to_vec(),
            })],
            signed,
        )
    }

    /// RFC 8656 §7.3: a Refresh answered 437 means the server has no
    /// allocation for the 5-tuple any more (it restarted): the link says so,
    /// so that the session allocates again.
    #[test]
    fn a_refresh_answered_437_reports_the_allocation_lost() {
        let now = Instant::now();
        let (mut l, req) = challenged(now);
        l.handle_read(now, &allocated(&req, true)).unwrap();
        while l.poll_event().is_some() {}
        while l.poll_write().is_some() {}
        l.probe(now);
        let refresh = l.poll_write().expect("a Refresh");
        let _ = l.handle_read(now, &mismatch(&refresh, METHOD_REFRESH, true));
        assert!(matches!(l.poll_event(), Some(LinkEvent::Lost(a)) if a == sa(RELAYED)));
        assert_eq!(l.relayed, None);
    }

    /// A server may hold a just-deleted allocation's 5-tuple for a moment
    /// and refuse a new Allocate on it (437); it is asked again a second
    /// later, a bounded number of times, and only then is the link failed.
    #[test]
    fn an_allocate_refused_437_is_asked_again_later() {
        let start = Instant::now();
        let mut l = link(start);
        let mut req = l.poll_write().unwrap();
        for retry in 1..=MAX_MISMATCH_RETRIES {
            let at = l.poll_timeout().unwrap();
            l.handle_read(at, &mismatch(&req, METHOD_ALLOCATE, false))
                .unwrap();
            assert!(l.poll_event().is_none(), "failed at retry {retry}");
            assert!(l.poll_write().is_none());
            let again = at + MISMATCH_RETRY_AFTER;
            l.handle_timeout(again - Duration::from_millis(1));
            assert!(l.poll_write().is_none(), "asked again too early");
            l.handle_timeout(again);
            req = l.poll_write().expect("asked again");
            assert_eq!(req.get(..2), Some(&ALLOCATE_REQUEST[..]));
        }
        let _ = l.handle_read(start, &mismatch(&req, METHOD_ALLOCATE, false));
        assert!(matches!(l.poll_event(), Some(LinkEvent::Failed(_))));
        assert!(l.failed());
    }

    /// RFC 8489 §6.2.1: the first retransmission comes after an RTO of
    /// at least 500 ms, then twice that.
    #[test]
    fn requests_are_retransmitted_after_500_ms() {
        let start = Instant::now();
        let mut l = link(start);
        let first = l.poll_write().unwrap();
        let at = |l: &mut TurnLink, ms: u64| {
            l.handle_timeout(start + Duration::from_millis(ms));
            std::iter::from_fn(|| l.poll_write()).count()
        };
        assert_eq!(at(&mut l, 499), 0, "retransmitted before 500 ms");
        assert_eq!(at(&mut l, 500), 1);
        assert_eq!(at(&mut l, 1499), 0);
        assert_eq!(at(&mut l, 1500), 1);
        assert_eq!(first.get(..2), Some(&ALLOCATE_REQUEST[..]));
    }

    /// However many peer addresses signalling brings (the session bounds
    /// them per generation, not over a call), the permissions a link asks
    /// for, and refreshes in one CreatePermission, stay bounded.
    #[test]
    fn permissions_are_bounded() {
        let now = Instant::now();
        let (mut l, req) = challenged(now);
        l.handle_read(now, &allocated(&req, true)).unwrap();
        while l.poll_event().is_some() {}
        while l.poll_write().is_some() {}
        let mut asked = 0;
        for i in 0..1000u32 {
            let peer = SocketAddr::from(([10, (i >> 8) as u8, i as u8, 1], 5000));
            let _ = l.permit(now, peer);
            asked += std::iter::from_fn(|| l.poll_write()).count();
        }
        assert!(
            asked <= MAX_PERMISSIONS,
            "{asked} CreatePermission requests"
        );
    }
}
