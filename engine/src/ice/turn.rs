//! One STUN/TURN client per (local socket, server): server-reflexive
//! discovery and a relayed allocation with its permissions and channels.

use super::{IceError, TurnServer};
use rtc_ice::crypto::{HashAlgorithm, RTCCryptoProvider};
use rtc_shared::TransportProtocol;
use rtc_stun::attributes::{ATTR_FINGERPRINT, ATTR_MESSAGE_INTEGRITY, ATTR_REALM};
use rtc_stun::error_code::{CODE_STALE_NONCE, CODE_UNAUTHORIZED, ErrorCode, ErrorCodeAttribute};
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::{
    CLASS_ERROR_RESPONSE, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, Getter, METHOD_CREATE_PERMISSION,
    METHOD_REFRESH, Message, Method, Setter, TransactionId,
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
    /// The server did not answer or refused.
    Failed(String),
}

/// STUN message type of an Allocate request (RFC 8656 §7.1).
const ALLOCATE_REQUEST: [u8; 2] = [0x00, 0x03];
/// Requests sent again in a row after 438 (Stale Nonce) answers; a server
/// that keeps calling a fresh nonce stale is broken, not slow.
const MAX_STALE_NONCE_RETRIES: u32 = 3;
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
const MAX_PERMISSIONS: usize = 64;

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
    /// Our latest signed requests: transaction ID and realm.
    signed: VecDeque<([u8; 12], String)>,
}

impl TurnLink {
    pub(crate) fn new(
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
        let mut client = Client::new(cfg, provider.clone())?;
        match kind {
            LinkKind::Stun => {
                client.send_binding_request(now)?;
            }
            LinkKind::Turn => {
                client.allocate(now)?;
            }
        }
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
            signed: VecDeque::new(),
        })
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
        self.client.handle_read(msg)?;
        match answer {
            Some((_, None)) => self.stale_retries = 0,
            Some((method, Some(CODE_STALE_NONCE))) => self.after_stale_nonce(now, method),
            _ => {}
        }
        Ok(())
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
            let _ = match self.closing {
                Some(relayed) => self.client.relay(relayed).and_then(|mut r| r.close(now)),
                None => self.client.refresh_allocations(now),
            };
        } else if method == METHOD_CREATE_PERMISSION {
            self.stale_retries += 1;
            // Only the refused (now forgotten) permissions are sent again.
            for peer in self.peers.clone() {
                let _ = self.permit(now, peer);
            }
        }
    }

    /// Whether `data`, from this link's server, is for this link: a
    /// response to one of its transactions, or anything else (indications,
    /// ChannelData) when it is a TURN link. A STUN link and a TURN link on
    /// one socket often share a server (one coturn for both), and each
    /// drops the other's responses as unknown transactions.
    pub(crate) fn claims(&self, data: &[u8]) -> bool {
        // Response classes have the C1 bit (0x0100) of the type set (RFC 5389 §6).
        let response = rtc_stun::message::is_stun_message(data) && data[0] & 0x01 != 0;
        if !response {
            return self.kind == LinkKind::Turn;
        }
        data.get(8..20)
            .and_then(|id| <[u8; 12]>::try_from(id).ok())
            .is_some_and(|id| self.client.has_transaction(&TransactionId(id)))
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
    }

    pub(crate) fn poll_timeout(&mut self) -> Option<Instant> {
        self.client.poll_timeout()
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
        loop {
            let ev = self.client.poll_event()?;
            let out = match ev {
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
                Event::TransactionTimeout(_) => LinkEvent::Failed("timeout".into()),
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
                        Err(e) => LinkEvent::Failed(e.to_string()),
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
                        Err(e) => LinkEvent::Failed(e.to_string()),
                    }
                }
                Event::AllocateError(_, e) | Event::BindingError(_, e) => {
                    LinkEvent::Failed(e.to_string())
                }
                Event::CreatePermissionResponse(..) | Event::CreatePermissionError(..) => continue,
                _ => continue,
            };
            return Some(out);
        }
    }

    /// Deletes the allocation (Refresh with lifetime 0).
    pub(crate) fn close(&mut self, now: Instant) {
        if let Some(relayed) = self.relayed.take()
            && let Ok(mut r) = self.client.relay(relayed)
        {
            let _ = r.close(now);
            self.closing = Some(relayed);
        }
    }
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
