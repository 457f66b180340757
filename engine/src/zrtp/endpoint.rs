//! The sans-IO ZRTP endpoint (RFC 6189 §4, §6, §7).
//!
//! Feed it every ZRTP datagram with [`Endpoint::handle_input`], call
//! [`Endpoint::handle_timeout`] when [`Endpoint::poll_timeout`] says so, send
//! what [`Endpoint::poll_transmit`] returns and act on
//! [`Endpoint::poll_event`]. It owns no socket and reads no clock.
//!
//! Only the initiator retransmits on a timer (Commit, DHPart2, Confirm2);
//! the responder answers a repeated message with its previous answer, as
//! §6 prescribes. Every MAC and hash-chain link is checked in constant
//! time before a message changes any state.

use super::algo::{AuthTagAlgo, CipherAlgo, HashAlgo, KeyAgreement, Offer, SasAlgo, Suite, Tag};
use super::cache::ZidCache;
use super::config::SessionNonces;
pub use super::config::{Config, Role, SessionKey};
use super::crypto::{self, ct_eq, hash, mac64, random, sha256};
use super::dh::KeyPair;
use super::error::{Error, ProtocolError};
pub use super::event::{Event, Failure, SecureInfo};
use super::hello_hash::HelloHash;
use super::keys::{self, Derived};
use super::message::{
    Commit, CommitMode, Confirm, ConfirmBody, DhPart, Hello, Message, Ping, PingAck, Zid,
};
use super::packet;
use super::sas;
use super::timer::{self, Due, Retransmit};
use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};
use zeroize::{Zeroize, Zeroizing};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Discovery,
    SentCommit,
    SentDhPart2,
    SentConfirm2,
    SentDhPart1,
    SentConfirm1,
    Secure,
    Failed,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Discovery => "Discovery",
            State::SentCommit => "SentCommit",
            State::SentDhPart2 => "SentDHPart2",
            State::SentConfirm2 => "SentConfirm2",
            State::SentDhPart1 => "SentDHPart1",
            State::SentConfirm1 => "SentConfirm1",
            State::Secure => "Secure",
            State::Failed => "Failed",
        }
    }
}

/// Counters for drops, for diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams accepted.
    pub accepted: u64,
    /// Datagrams dropped (bad frame, replay, unexpected, bad MAC).
    pub dropped: u64,
    /// Datagrams sent.
    pub sent: u64,
}

/// Hash chain H0..H3 (§9): H(i+1) = SHA-256(H(i)).
struct Chain([[u8; 32]; 4]);

impl Drop for Chain {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// A stored message as received or sent, with its parsed form.
struct Stored<T> {
    bytes: Vec<u8>,
    msg: T,
}

/// The retained-secret match of one exchange (§4.3).
struct SharedSecrets {
    s1: Option<[u8; 32]>,
    s2: Option<Vec<u8>>,
    mismatch: bool,
}

impl Drop for SharedSecrets {
    fn drop(&mut self) {
        self.s1.zeroize();
        self.s2.zeroize();
    }
}

/// The cache update a session with a cache mismatch would have made (its
/// new rs1 and when that expires), held back until the user verifies the
/// SAS (§4.6.1.1). Wiped when dropped.
struct HeldUpdate {
    rs1: Zeroizing<[u8; 32]>,
    expires: Option<SystemTime>,
}

/// One ZRTP stream's endpoint.
pub struct Endpoint {
    cfg: Config,
    cache: ZidCache,
    zid: Zid,
    chain: Chain,
    state: State,
    our_hello: Vec<u8>,
    peer_hello: Option<Stored<Hello>>,
    peer_offer: Offer,
    hello_acked: bool,
    role: Role,
    suite: Option<Suite>,
    keypair: Option<KeyPair>,
    our_commit: Option<Stored<Commit>>,
    our_dhpart: Option<Vec<u8>>,
    peer_commit: Option<Stored<Commit>>,
    peer_dhpart: Option<Stored<DhPart>>,
    derived: Option<Derived>,
    shared: Option<SharedSecrets>,
    peer_verified: bool,
    /// The cache expiration interval of the peer's Confirm (§5.7).
    peer_cache_expiration: u32,
    /// The wall-clock time of the input being handled (see
    /// [`Config::wall_clock`]), for the retained secrets' expiry.
    wall_now: SystemTime,
    /// The multistream nonces used under the ZRTPSess this stream derives
    /// (DH mode), handed out with it by [`Endpoint::session_key`].
    session_nonces: std::sync::Arc<SessionNonces>,
    /// The peer's cache entry before this session updated it, put back if
    /// the session turns out to be with the wrong peer.
    cache_before: Option<(Option<super::cache::CacheEntry>, bool)>,
    /// The session had a cache mismatch (a multistream stream: the session
    /// it was keyed from) and the user has not verified the SAS yet: the
    /// cache is left as it was before the call (§4.6.1.1).
    awaiting_sas: bool,
    /// While `awaiting_sas`, the new retained secret, if this stream made
    /// one and both sides let it be cached (§5.7).
    held_update: Option<HeldUpdate>,
    /// The responder's last (trigger, answer), resent on a repeat.
    last_answer: Option<(Vec<u8>, Vec<u8>)>,
    hello_timer: Option<Retransmit>,
    msg_timer: Option<Retransmit>,
    next_seq: u16,
    last_peer_seq: Option<u16>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    stats: Stats,
}

impl Endpoint {
    /// Creates an endpoint using `cache` for its ZID and retained secrets.
    pub fn new(mut cfg: Config, cache: ZidCache) -> Self {
        // A multistream stream needs Mult offered and accepted whatever the
        // policy lists (Policy::key_agreements: "added when needed").
        if cfg.multistream.is_some() && !cfg.policy.key_agreements.contains(&KeyAgreement::Mult) {
            cfg.policy.key_agreements.push(KeyAgreement::Mult);
        }
        let h0: [u8; 32] = random();
        let h1 = sha256(&h0);
        let h2 = sha256(&h1);
        let h3 = sha256(&h2);
        let chain = Chain([h0, h1, h2, h3]);
        let zid = cache.self_zid();
        let p = &cfg.policy;
        let tags = |v: Vec<Tag>| {
            v.into_iter()
                .take(super::message::MAX_ALGOS)
                .collect::<Vec<_>>()
        };
        let kas: Vec<Tag> = p.key_agreements.iter().map(|k| k.tag()).collect();
        let hello = Hello {
            version: *b"1.10",
            client_id: cfg.client_id,
            h3: chain.0[3],
            zid,
            s: false,
            m: false,
            p: false,
            hashes: tags(p.hashes.iter().map(|a| a.tag()).collect()),
            ciphers: tags(p.ciphers.iter().map(|a| a.tag()).collect()),
            auth_tags: tags(p.auth_tags.iter().map(|a| a.tag()).collect()),
            key_agreements: tags(kas),
            sas: tags(p.sas.iter().map(|a| a.tag()).collect()),
            mac: [0; 8],
        };
        let mut our_hello = Message::Hello(hello).encode();
        crypto::seal_message_mac(&mut our_hello, &chain.0[2]);
        let role = cfg.role;
        let wall_now = cfg.wall_clock.1;
        Endpoint {
            cfg,
            cache,
            zid,
            chain,
            state: State::Idle,
            our_hello,
            peer_hello: None,
            peer_offer: Offer::default(),
            hello_acked: false,
            role,
            suite: None,
            keypair: None,
            our_commit: None,
            our_dhpart: None,
            peer_commit: None,
            peer_dhpart: None,
            derived: None,
            shared: None,
            peer_verified: false,
            peer_cache_expiration: u32::MAX,
            wall_now,
            session_nonces: Default::default(),
            cache_before: None,
            awaiting_sas: false,
            held_update: None,
            last_answer: None,
            hello_timer: None,
            msg_timer: None,
            next_seq: u16::from_be_bytes(random()) & 0x3fff,
            last_peer_seq: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// Our Hello hash for signalling (§8.1), `"1.10 <hex>"`.
    pub fn hello_hash(&self) -> HelloHash {
        HelloHash::of_message(&self.our_hello)
    }

    /// Sets the peer's Hello hash from signalling (§8.1) when it arrives
    /// after the endpoint was created (the caller learns it from the
    /// answer). It is checked against the peer's Hello when that arrives,
    /// or at once if it already has: a mismatch raises
    /// [`Event::HelloHashMismatch`] and fails the session, even one that
    /// is already secure (its keys were agreed with someone else).
    pub fn set_peer_hello_hash(&mut self, hash: HelloHash) {
        let mismatch = self
            .peer_hello
            .as_ref()
            .is_some_and(|h| !hash.matches(&h.bytes));
        self.cfg.peer_hello_hash = Some(hash);
        if mismatch && self.state != State::Failed {
            self.hello_hash_mismatch();
        }
    }

    /// The peer's Hello is not the one signalled: stop, loudly, and forget
    /// every key agreed with that Hello's sender.
    fn hello_hash_mismatch(&mut self) {
        self.state = State::Failed;
        self.hello_timer = None;
        self.msg_timer = None;
        self.wipe_secrets();
        if let (Some(before), Some(h)) = (self.cache_before.take(), &self.peer_hello) {
            self.cache.restore(h.msg.zid, before);
        }
        self.events.push_back(Event::HelloHashMismatch);
        self.events
            .push_back(Event::Failed(Failure::HelloHashMismatch));
    }

    /// Our ZID.
    pub fn zid(&self) -> Zid {
        self.zid
    }

    /// The cache, updated when a session becomes secure (after a cache
    /// mismatch, only once the SAS is verified: see
    /// [`Endpoint::set_sas_verified`]); persist it with [`ZidCache::save`].
    pub fn cache(&self) -> &ZidCache {
        &self.cache
    }

    /// Mutable cache access. To record the user's SAS verdict use
    /// [`Endpoint::set_sas_verified`]: after a cache mismatch, setting the
    /// flag here would vouch for the old secret, which the peer lacked.
    pub fn cache_mut(&mut self) -> &mut ZidCache {
        &mut self.cache
    }

    /// Records the user's verdict on the SAS of the current peer. Only a
    /// secure session has a SAS and a peer ZID that the handshake
    /// authenticated; otherwise (still negotiating, failed) nothing changes
    /// and this returns false.
    ///
    /// Normally this sets the cache's SAS-verified flag for the peer (false
    /// if the cache holds nothing for it). After a cache mismatch the cache
    /// still holds what it did before the call (RFC 6189 §4.6.1.1): `true`
    /// stores this session's new retained secret and marks it verified,
    /// `false` throws that secret away and leaves the cache as it was (and
    /// returns true). Either way a SAS nobody verified never replaces the
    /// retained secret, and the next call with the same impostor raises the
    /// mismatch again. `true` returns false, changing nothing, if there is
    /// no new secret to store: rejected before, not cached (§5.7), or a
    /// multistream stream (verify on the stream that did the DH exchange).
    pub fn set_sas_verified(&mut self, verified: bool) -> bool {
        let zid = match &self.peer_hello {
            Some(h) if self.state == State::Secure => h.msg.zid,
            _ => return false,
        };
        if !self.awaiting_sas {
            return self.cache.set_verified(&zid, verified);
        }
        if !verified {
            self.held_update = None;
            return true;
        }
        let Some(u) = self.held_update.take() else {
            return false;
        };
        // "verified" is not carried over from the old secret (which the
        // peer did not have): it is set for the new one.
        self.cache
            .update(zid, *u.rs1, u.expires, false, self.wall_now);
        self.awaiting_sas = false;
        self.cache.set_verified(&zid, true)
    }

    /// Keys to start a multistream session with the same peer, once secure:
    /// the call's ZRTPSess, which only the DH-mode stream derives (§4.4.3,
    /// §4.5.2). A multistream stream hands out the key it was given.
    pub fn session_key(&self) -> Option<SessionKey> {
        let (Some(d), Some(s), Some(h)) = (&self.derived, &self.suite, &self.peer_hello) else {
            return None;
        };
        if self.state != State::Secure {
            return None;
        }
        if let Some(parent) = &self.cfg.multistream {
            return Some(parent.clone());
        }
        Some(SessionKey {
            hash: s.hash,
            peer_zid: h.msg.zid,
            sas: sas::render(s.sas, d.sas_value),
            zrtp_sess: d.zrtp_sess.clone(),
            nonces: self.session_nonces.clone(),
            cache_mismatch: self.awaiting_sas,
        })
    }

    /// Drop counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether the session is secure.
    pub fn is_secure(&self) -> bool {
        self.state == State::Secure
    }

    /// Whether the session failed.
    pub fn is_failed(&self) -> bool {
        self.state == State::Failed
    }

    /// Starts discovery: sends Hello and arms its timer.
    pub fn start(&mut self, now: Instant) {
        if self.state != State::Idle {
            return;
        }
        self.state = State::Discovery;
        let hello = self.our_hello.clone();
        self.send(&hello);
        self.hello_timer = Some(Retransmit::new(now, hello, timer::HELLO));
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [&self.hello_timer, &self.msg_timer]
            .into_iter()
            .flatten()
            .map(|t| t.at)
            .min()
    }

    /// Fires due retransmissions.
    pub fn handle_timeout(&mut self, now: Instant) {
        for slot in 0..2 {
            let timer = if slot == 0 {
                &mut self.hello_timer
            } else {
                &mut self.msg_timer
            };
            let Some(t) = timer.as_mut() else { continue };
            if t.at > now {
                continue;
            }
            match t.fire(now) {
                Due::Resend => {
                    let m = t.message.clone();
                    self.send(&m);
                }
                Due::Exhausted => {
                    *timer = None;
                    if !matches!(self.state, State::Failed | State::Secure) {
                        self.state = State::Failed;
                        self.hello_timer = None;
                        self.msg_timer = None;
                        self.wipe_secrets();
                        self.events.push_back(Event::Failed(Failure::Timeout));
                    }
                }
            }
        }
    }

    /// Processes one received ZRTP datagram.
    pub fn handle_input(&mut self, now: Instant, datagram: &[u8]) -> Result<(), Error> {
        let r = self.input(now, datagram);
        match &r {
            Ok(()) => self.stats.accepted += 1,
            Err(_) => self.stats.dropped += 1,
        }
        r
    }

    fn input(&mut self, now: Instant, datagram: &[u8]) -> Result<(), Error> {
        let raw = packet::parse(datagram)?;
        // Sequence numbers are a 16-bit counter the peer may start anywhere,
        // so compare them in serial-number arithmetic (RFC 1982): newer
        // means less than half the space ahead, across the wrap to 0.
        if let Some(last) = self.last_peer_seq
            && !matches!(raw.seq.wrapping_sub(last), 1..0x8000)
        {
            return Err(Error::Replay(raw.seq));
        }
        let msg = Message::parse(raw.message)?;
        if self.state == State::Idle {
            return Err(Error::Unexpected("message", "Idle"));
        }
        self.wall_now = self.wall(now);
        let before = self.state;
        let r = self.dispatch(now, raw.message, raw.ssrc, msg);
        if r.is_ok() && self.state != before {
            // Only input that moved the handshake on (checked against the
            // hash chain and MACs) moves the replay floor. A repeat that is
            // answered or ignored does not: replayed with a forged high
            // sequence number, it would otherwise block the peer's real
            // packets that follow.
            self.last_peer_seq = Some(raw.seq);
        }
        if let Err(Error::Protocol(e)) = &r {
            self.fail(now, *e);
        }
        r
    }

    fn dispatch(
        &mut self,
        now: Instant,
        bytes: &[u8],
        ssrc: u32,
        msg: Message,
    ) -> Result<(), Error> {
        if self.state == State::Failed {
            return match msg {
                Message::ErrorAck => {
                    self.msg_timer = None;
                    Ok(())
                }
                Message::Error(_) => {
                    self.send_message(&Message::ErrorAck);
                    Ok(())
                }
                _ => Err(Error::Closed),
            };
        }
        match msg {
            Message::Hello(h) => self.on_hello(now, bytes, h),
            Message::HelloAck => self.on_hello_ack(now),
            Message::Commit(c) => self.on_commit(bytes, c),
            Message::DhPart1(p) => self.on_dhpart1(now, bytes, p),
            Message::DhPart2(p) => self.on_dhpart2(bytes, p),
            Message::Confirm1(c) => self.on_confirm1(now, c),
            Message::Confirm2(c) => self.on_confirm2(bytes, c),
            Message::Conf2Ack => self.on_conf2ack(),
            Message::Error(code) => {
                self.send_message(&Message::ErrorAck);
                self.hello_timer = None;
                self.msg_timer = None;
                if self.state != State::Secure {
                    self.state = State::Failed;
                    self.wipe_secrets();
                    self.events.push_back(Event::Failed(Failure::Peer(code)));
                }
                Ok(())
            }
            Message::ErrorAck => {
                self.msg_timer = None;
                Ok(())
            }
            Message::GoClear(_) => {
                // Policy: media never goes clear. Refuse with 0x100 but keep
                // the secure session (the peer must keep encrypting).
                if self.state != State::Secure {
                    return Err(Error::Unexpected("GoClear", self.state.name()));
                }
                self.send_message(&Message::Error(ProtocolError::GoClear.code()));
                self.events.push_back(Event::GoClearRefused);
                Ok(())
            }
            Message::SasRelay(_) => {
                // We never trust a PBX (no M flag, no enrollment): acknowledge
                // so the peer stops retransmitting, and ignore the SAS.
                if self.state != State::Secure {
                    return Err(Error::Unexpected("SASrelay", self.state.name()));
                }
                self.send_message(&Message::RelayAck);
                self.events.push_back(Event::SasRelayIgnored);
                Ok(())
            }
            Message::Ping(p) => {
                self.on_ping(ssrc, p);
                Ok(())
            }
            Message::ClearAck | Message::RelayAck | Message::PingAck(_) => {
                Err(Error::Unexpected("unsolicited ACK", self.state.name()))
            }
        }
    }

    // ----- sending -----

    fn send(&mut self, message: &[u8]) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.stats.sent += 1;
        self.transmits
            .push_back(packet::build(seq, self.cfg.ssrc, message));
    }

    fn send_message(&mut self, m: &Message) {
        let bytes = m.encode();
        self.send(&bytes);
    }

    /// The wall-clock time of `now`, from [`Config::wall_clock`].
    fn wall(&self, now: Instant) -> SystemTime {
        let (at, wall) = self.cfg.wall_clock;
        let moved = match now.checked_duration_since(at) {
            Some(ahead) => wall.checked_add(ahead),
            None => wall.checked_sub(at - now),
        };
        moved.unwrap_or(wall)
    }

    fn send_with_timer(&mut self, now: Instant, message: Vec<u8>) {
        self.send(&message);
        self.msg_timer = Some(Retransmit::new(now, message, timer::MESSAGE));
    }

    fn fail(&mut self, now: Instant, e: ProtocolError) {
        if self.state == State::Failed {
            return;
        }
        self.state = State::Failed;
        self.hello_timer = None;
        self.wipe_secrets();
        let err = Message::Error(e.code()).encode();
        self.send_with_timer(now, err);
        self.events.push_back(Event::Failed(Failure::Local(e)));
    }

    /// Drops (zeroizing) every secret of this exchange: the DH private
    /// key, the keys derived from s0 and the retained secrets it used.
    fn wipe_secrets(&mut self) {
        self.keypair = None;
        self.derived = None;
        self.shared = None;
        self.held_update = None;
    }

    // ----- discovery -----

    fn on_hello(&mut self, now: Instant, bytes: &[u8], h: Hello) -> Result<(), Error> {
        if let Some(prev) = &self.peer_hello {
            if prev.bytes != bytes {
                return Err(Error::Unexpected("different Hello", self.state.name()));
            }
            // A repeat: the peer has not seen our HelloACK yet.
            if self.state == State::Discovery && self.our_commit.is_none() {
                self.send_message(&Message::HelloAck);
            }
            return Ok(());
        }
        // §4.1.1: a Hello of a newer version than ours is ignored (the peer
        // falls back to a Hello of our version, which is the one the
        // signalled hash is for); an older one we cannot speak is fatal.
        if h.version[..3] != *b"1.1" {
            if h.version[..3] > b"1.1"[..] {
                return Err(Error::Unexpected("Hello of a newer version", "any"));
            }
            return Err(ProtocolError::Version.into());
        }
        if let Some(expected) = &self.cfg.peer_hello_hash
            && !expected.matches(bytes)
        {
            self.hello_hash_mismatch();
            return Ok(());
        }
        if h.zid == self.zid {
            return Err(ProtocolError::EqualZid.into());
        }
        if let Some(ms) = &self.cfg.multistream
            && ms.peer_zid != h.zid
        {
            return Err(ProtocolError::HelloMismatch.into());
        }
        self.peer_offer = Offer {
            hashes: h
                .hashes
                .iter()
                .filter_map(|t| HashAlgo::from_tag(*t))
                .collect(),
            ciphers: h
                .ciphers
                .iter()
                .filter_map(|t| CipherAlgo::from_tag(*t))
                .collect(),
            auth_tags: h
                .auth_tags
                .iter()
                .filter_map(|t| AuthTagAlgo::from_tag(*t))
                .collect(),
            key_agreements: h
                .key_agreements
                .iter()
                .filter_map(|t| KeyAgreement::from_tag(*t))
                .collect(),
            sas: h.sas.iter().filter_map(|t| SasAlgo::from_tag(*t)).collect(),
        }
        .with_mandatory();
        self.events.push_back(Event::PeerHello { zid: h.zid });
        self.peer_hello = Some(Stored {
            bytes: bytes.to_vec(),
            msg: h,
        });
        if self.cfg.role == Role::Initiator
            && (self.hello_acked || !self.cfg.commit_after_hello_ack)
        {
            self.send_commit(now)
        } else {
            self.send_message(&Message::HelloAck);
            Ok(())
        }
    }

    fn on_hello_ack(&mut self, now: Instant) -> Result<(), Error> {
        // A late HelloACK (after our Commit went out) still stops our Hello.
        self.hello_acked = true;
        self.hello_timer = None;
        if self.state == State::Discovery
            && self.cfg.role == Role::Initiator
            && self.peer_hello.is_some()
            && self.our_commit.is_none()
        {
            return self.send_commit(now);
        }
        Ok(())
    }

    // ----- initiator -----

    fn send_commit(&mut self, now: Instant) -> Result<(), Error> {
        let multistream = self.cfg.multistream.clone();
        let suite = match &multistream {
            Some(ms) => {
                let mut s = self
                    .cfg
                    .policy
                    .negotiate_multistream(&self.peer_offer)
                    .map_err(ProtocolError::Negotiation)?;
                s.hash = ms.hash;
                s
            }
            None => self
                .cfg
                .policy
                .negotiate(&self.peer_offer)
                .map_err(ProtocolError::Negotiation)?,
        };
        let peer_hello_bytes = self
            .peer_hello
            .as_ref()
            .map(|h| h.bytes.clone())
            .unwrap_or_default();
        let mode = if let Some(ms) = &multistream {
            let nonce = random();
            if !ms.nonces.use_once(nonce) {
                return Err(ProtocolError::NonceReuse.into());
            }
            CommitMode::Multistream { nonce }
        } else {
            let (kp, pv) = KeyPair::generate(suite.key_agreement).ok_or(
                ProtocolError::Negotiation(super::algo::NegotiationError::KeyAgreement),
            )?;
            self.keypair = Some(kp);
            self.suite = Some(suite);
            let dhpart2 = self.build_dhpart(&suite, false, pv);
            let hvi_full = hash(suite.hash, &[&dhpart2, &peer_hello_bytes]);
            let mut hvi = [0u8; 32];
            hvi.copy_from_slice(&hvi_full[..32]);
            self.our_dhpart = Some(dhpart2);
            CommitMode::Dh { hvi }
        };
        let commit = Commit {
            h2: self.chain.0[2],
            zid: self.zid,
            hash: suite.hash.tag(),
            cipher: suite.cipher.tag(),
            auth: suite.auth.tag(),
            key_agreement: suite.key_agreement.tag(),
            sas: suite.sas.tag(),
            mode,
            mac: [0; 8],
        };
        let mut bytes = Message::Commit(commit.clone()).encode();
        crypto::seal_message_mac(&mut bytes, &self.chain.0[1]);
        self.suite = Some(suite);
        self.role = Role::Initiator;
        self.state = State::SentCommit;
        self.our_commit = Some(Stored {
            bytes: bytes.clone(),
            msg: commit,
        });
        self.send_with_timer(now, bytes);
        Ok(())
    }

    /// Builds our DHPart1 (responder) or DHPart2 (initiator).
    fn build_dhpart(&self, suite: &Suite, responder: bool, pv: Vec<u8>) -> Vec<u8> {
        let label: &[u8] = if responder {
            b"Responder"
        } else {
            b"Initiator"
        };
        let peer_zid = self
            .peer_hello
            .as_ref()
            .map(|h| h.msg.zid)
            .unwrap_or_default();
        let entry = self.cache.get_live(&peer_zid, self.wall_now);
        let id = |s: Option<[u8; 32]>| s.map_or_else(random, |s| mac64(suite.hash, &s, label));
        let rs1_id = id(entry.as_ref().and_then(|e| e.rs1));
        let rs2_id = id(entry.as_ref().and_then(|e| e.rs2));
        // auxsecretID = MAC(auxsecret, our own H3) (§4.3.1).
        let aux_id = self
            .cfg
            .aux_secret
            .as_ref()
            .map_or_else(random, |a| mac64(suite.hash, a, &self.chain.0[3]));
        let part = DhPart {
            h1: self.chain.0[1],
            rs1_id,
            rs2_id,
            aux_id,
            pbx_id: random(),
            pv,
            mac: [0; 8],
        };
        let mut bytes = if responder {
            Message::DhPart1(part)
        } else {
            Message::DhPart2(part)
        }
        .encode();
        crypto::seal_message_mac(&mut bytes, &self.chain.0[0]);
        bytes
    }

    fn on_dhpart1(&mut self, now: Instant, bytes: &[u8], p: DhPart) -> Result<(), Error> {
        if self.state != State::SentCommit || self.cfg.multistream.is_some() {
            return Err(Error::Unexpected("DHPart1", self.state.name()));
        }
        let hello = self
            .peer_hello
            .as_ref()
            .ok_or(Error::Unexpected("DHPart1", "no Hello"))?;
        // H1 -> H2 -> H3 must reach the Hello's H3, and H2 keys its MAC.
        let h2 = sha256(&p.h1);
        check_link(
            ct_eq(&sha256(&h2), &hello.msg.h3),
            crypto::check_message_mac(&hello.bytes, &h2),
            "DHPart1 hash chain",
            ProtocolError::HelloMismatch,
        )?;
        let suite = self.suite.ok_or(Error::Unexpected("DHPart1", "no suite"))?;
        if Some(p.pv.len()) != suite.key_agreement.pv_len() {
            return Err(ProtocolError::Malformed.into());
        }
        let kp = self
            .keypair
            .take()
            .ok_or(Error::Unexpected("DHPart1", "no key pair"))?;
        let dh = kp.agree(&p.pv).map_err(|_| ProtocolError::BadPublicValue)?;
        let dhpart2 = self.our_dhpart.clone().unwrap_or_default();
        let commit = self
            .our_commit
            .as_ref()
            .map(|c| c.bytes.clone())
            .unwrap_or_default();
        let total = hash(suite.hash, &[&hello.bytes, &commit, bytes, &dhpart2]);
        let peer_zid = hello.msg.zid;
        let peer_h3 = hello.msg.h3;
        let shared = self.match_secrets(&suite, &peer_zid, &p, b"Responder", &peer_h3);
        let (zidi, zidr) = (self.zid, peer_zid);
        self.key_from_dh(&suite, &dh, (&zidi, &zidr), &total, shared, bytes, p);
        self.hello_timer = None;
        self.state = State::SentDhPart2;
        self.send_with_timer(now, dhpart2);
        Ok(())
    }

    /// DH-mode keys (§4.4.1.4, §4.5), the same for both roles but for the
    /// order of the ZIDs (initiator's first); keeps the peer's DHPart for
    /// the Confirm checks.
    #[allow(clippy::too_many_arguments)]
    fn key_from_dh(
        &mut self,
        suite: &Suite,
        dh: &[u8],
        (zidi, zidr): (&Zid, &Zid),
        total: &[u8],
        shared: SharedSecrets,
        bytes: &[u8],
        p: DhPart,
    ) {
        let ctx = keys::kdf_context(zidi, zidr, total);
        let s0 = keys::s0_dh(
            suite,
            dh,
            zidi,
            zidr,
            total,
            [
                shared.s1.as_ref().map(|s| &s[..]),
                shared.s2.as_deref(),
                None,
            ],
        );
        self.derived = Some(keys::derive(suite, &s0, &ctx));
        self.shared = Some(shared);
        self.peer_dhpart = Some(Stored {
            bytes: bytes.to_vec(),
            msg: p,
        });
    }

    fn on_confirm1(&mut self, now: Instant, c: Confirm) -> Result<(), Error> {
        if self.state != State::SentDhPart2
            && !(self.state == State::SentCommit && self.cfg.multistream.is_some())
        {
            return Err(Error::Unexpected("Confirm1", self.state.name()));
        }
        if self.cfg.multistream.is_some() {
            self.derive_multistream()?;
        }
        let body = self.open_confirm(&c, Role::Responder)?;
        let h1 = sha256(&body.h0);
        if self.cfg.multistream.is_some() {
            let hello = self
                .peer_hello
                .as_ref()
                .ok_or(Error::Unexpected("Confirm1", "no Hello"))?;
            let h2 = sha256(&h1);
            let link = check_link(
                ct_eq(&sha256(&h2), &hello.msg.h3),
                crypto::check_message_mac(&hello.bytes, &h2),
                "Confirm1 hash chain",
                ProtocolError::HelloMismatch,
            );
            if link.is_err() {
                self.derived = None;
            }
            link?;
        } else {
            let dh1 = self
                .peer_dhpart
                .as_ref()
                .ok_or(Error::Unexpected("Confirm1", "no DHPart1"))?;
            check_link(
                ct_eq(&h1, &dh1.msg.h1),
                crypto::check_message_mac(&dh1.bytes, &body.h0),
                "Confirm1 hash chain",
                ProtocolError::MessageMac,
            )?;
        }
        self.peer_verified = body.v;
        self.peer_cache_expiration = body.cache_expiration;
        let confirm2 = self.seal_confirm(Role::Initiator)?;
        self.hello_timer = None;
        self.state = State::SentConfirm2;
        self.send_with_timer(now, confirm2);
        Ok(())
    }

    fn on_conf2ack(&mut self) -> Result<(), Error> {
        if self.state != State::SentConfirm2 {
            return Err(Error::Unexpected("Conf2ACK", self.state.name()));
        }
        self.msg_timer = None;
        self.go_secure();
        Ok(())
    }

    // ----- responder -----

    fn on_commit(&mut self, bytes: &[u8], c: Commit) -> Result<(), Error> {
        if let Some(prev) = &self.peer_commit {
            if prev.bytes == bytes {
                return self.resend_answer(bytes);
            }
            return Err(Error::Unexpected("different Commit", self.state.name()));
        }
        if !matches!(self.state, State::Discovery | State::SentCommit) {
            return Err(Error::Unexpected("Commit", self.state.name()));
        }
        let hello = self
            .peer_hello
            .as_ref()
            .ok_or(Error::Unexpected("Commit", "no Hello"))?;
        check_link(
            ct_eq(&sha256(&c.h2), &hello.msg.h3),
            crypto::check_message_mac(&hello.bytes, &c.h2),
            "Commit hash chain",
            ProtocolError::HelloMismatch,
        )?;
        if c.zid != hello.msg.zid {
            return Err(ProtocolError::HelloMismatch.into());
        }
        let suite = commit_suite(&c)?;
        self.cfg
            .policy
            .accepts(&suite)
            .map_err(ProtocolError::Negotiation)?;
        let multistream = matches!(c.mode, CommitMode::Multistream { .. });
        match (&c.mode, &self.cfg.multistream) {
            (CommitMode::Preshared { .. }, _) => {
                return Err(ProtocolError::Negotiation(
                    super::algo::NegotiationError::KeyAgreement,
                )
                .into());
            }
            (CommitMode::Multistream { .. }, None) => {
                return Err(ProtocolError::Negotiation(
                    super::algo::NegotiationError::KeyAgreement,
                )
                .into());
            }
            (CommitMode::Multistream { .. }, Some(ms)) if ms.hash != suite.hash => {
                return Err(ProtocolError::Negotiation(super::algo::NegotiationError::Hash).into());
            }
            (CommitMode::Dh { .. }, Some(_)) => {
                return Err(ProtocolError::Negotiation(
                    super::algo::NegotiationError::KeyAgreement,
                )
                .into());
            }
            _ => {}
        }
        // Commit contention (§4.2): the larger hvi (or nonce) stays
        // initiator; both compared as big-endian unsigned integers.
        if let Some(ours) = &self.our_commit {
            let key = |m: &CommitMode| match m {
                CommitMode::Dh { hvi } => hvi.to_vec(),
                CommitMode::Multistream { nonce } | CommitMode::Preshared { nonce, .. } => {
                    nonce.to_vec()
                }
            };
            if key(&ours.msg.mode) > key(&c.mode) {
                return Ok(());
            }
        }
        // §4.4.3, §5.4: a nonce is used once per ZRTPSess, by any stream of
        // the call and either side (one of ours reflected back included).
        if let (CommitMode::Multistream { nonce }, Some(ms)) = (&c.mode, &self.cfg.multistream)
            && !ms.nonces.use_once(*nonce)
        {
            return Err(ProtocolError::NonceReuse.into());
        }
        if self.our_commit.is_some() {
            self.our_commit = None;
            self.our_dhpart = None;
            self.keypair = None;
            self.msg_timer = None;
        }
        self.hello_timer = None;
        self.role = Role::Responder;
        self.suite = Some(suite);
        self.peer_commit = Some(Stored {
            bytes: bytes.to_vec(),
            msg: c,
        });
        if multistream {
            self.derive_multistream()?;
            let confirm1 = self.seal_confirm(Role::Responder)?;
            self.state = State::SentConfirm1;
            self.answer(bytes, confirm1);
            return Ok(());
        }
        let (kp, pv) = KeyPair::generate(suite.key_agreement).ok_or(ProtocolError::Negotiation(
            super::algo::NegotiationError::KeyAgreement,
        ))?;
        self.keypair = Some(kp);
        let dhpart1 = self.build_dhpart(&suite, true, pv);
        self.our_dhpart = Some(dhpart1.clone());
        self.state = State::SentDhPart1;
        self.answer(bytes, dhpart1);
        Ok(())
    }

    fn on_dhpart2(&mut self, bytes: &[u8], p: DhPart) -> Result<(), Error> {
        if self.state != State::SentDhPart1 {
            if self.peer_dhpart.as_ref().is_some_and(|d| d.bytes == bytes) {
                return self.resend_answer(bytes);
            }
            return Err(Error::Unexpected("DHPart2", self.state.name()));
        }
        let commit = self
            .peer_commit
            .as_ref()
            .ok_or(Error::Unexpected("DHPart2", "no Commit"))?;
        check_link(
            ct_eq(&sha256(&p.h1), &commit.msg.h2),
            crypto::check_message_mac(&commit.bytes, &p.h1),
            "DHPart2 hash chain",
            ProtocolError::MessageMac,
        )?;
        let suite = self.suite.ok_or(Error::Unexpected("DHPart2", "no suite"))?;
        let CommitMode::Dh { hvi } = commit.msg.mode else {
            return Err(Error::Unexpected("DHPart2", "multistream"));
        };
        // §4.4.1.1: hvi must be hash(DHPart2 || our Hello), first 256 bits.
        let expect = hash(suite.hash, &[bytes, &self.our_hello]);
        if !ct_eq(&expect[..32], &hvi) {
            return Err(ProtocolError::HviMismatch.into());
        }
        if Some(p.pv.len()) != suite.key_agreement.pv_len() {
            return Err(ProtocolError::Malformed.into());
        }
        let kp = self
            .keypair
            .take()
            .ok_or(Error::Unexpected("DHPart2", "no key pair"))?;
        let dh = kp.agree(&p.pv).map_err(|_| ProtocolError::BadPublicValue)?;
        let hello = self
            .peer_hello
            .as_ref()
            .ok_or(Error::Unexpected("DHPart2", "no Hello"))?;
        let peer_zid = hello.msg.zid;
        let peer_h3 = hello.msg.h3;
        let dhpart1 = self.our_dhpart.clone().unwrap_or_default();
        let total = hash(
            suite.hash,
            &[&self.our_hello, &commit.bytes, &dhpart1, bytes],
        );
        let shared = self.match_secrets(&suite, &peer_zid, &p, b"Initiator", &peer_h3);
        let (zidi, zidr) = (peer_zid, self.zid);
        self.key_from_dh(&suite, &dh, (&zidi, &zidr), &total, shared, bytes, p);
        let confirm1 = self.seal_confirm(Role::Responder)?;
        self.state = State::SentConfirm1;
        self.answer(bytes, confirm1);
        Ok(())
    }

    fn on_confirm2(&mut self, bytes: &[u8], c: Confirm) -> Result<(), Error> {
        if self.state == State::Secure && self.role == Role::Responder {
            return self.resend_answer(bytes);
        }
        if self.state != State::SentConfirm1 {
            return Err(Error::Unexpected("Confirm2", self.state.name()));
        }
        let body = self.open_confirm(&c, Role::Initiator)?;
        let h1 = sha256(&body.h0);
        if self.cfg.multistream.is_some() {
            let commit = self
                .peer_commit
                .as_ref()
                .ok_or(Error::Unexpected("Confirm2", "no Commit"))?;
            check_link(
                ct_eq(&sha256(&h1), &commit.msg.h2),
                crypto::check_message_mac(&commit.bytes, &h1),
                "Confirm2 hash chain",
                ProtocolError::MessageMac,
            )?;
        } else {
            let dh2 = self
                .peer_dhpart
                .as_ref()
                .ok_or(Error::Unexpected("Confirm2", "no DHPart2"))?;
            check_link(
                ct_eq(&h1, &dh2.msg.h1),
                crypto::check_message_mac(&dh2.bytes, &body.h0),
                "Confirm2 hash chain",
                ProtocolError::MessageMac,
            )?;
        }
        self.peer_verified = body.v;
        self.peer_cache_expiration = body.cache_expiration;
        self.answer(bytes, Message::Conf2Ack.encode());
        self.go_secure();
        Ok(())
    }

    fn answer(&mut self, trigger: &[u8], answer: Vec<u8>) {
        self.send(&answer);
        self.last_answer = Some((trigger.to_vec(), answer));
    }

    fn resend_answer(&mut self, trigger: &[u8]) -> Result<(), Error> {
        match self.last_answer.clone() {
            Some((t, a)) if t == trigger => {
                self.send(&a);
                Ok(())
            }
            _ => Err(Error::Unexpected("repeated message", self.state.name())),
        }
    }

    // ----- shared -----

    /// Matches the peer's retained-secret IDs against ours (§4.3.1):
    /// `label` is the peer's role.
    fn match_secrets(
        &self,
        suite: &Suite,
        peer_zid: &Zid,
        p: &DhPart,
        label: &[u8],
        peer_h3: &[u8; 32],
    ) -> SharedSecrets {
        // Expired secrets are absent, not mismatched (§4.9).
        let entry = self.cache.get_live(peer_zid, self.wall_now);
        let ours = [
            entry.as_ref().and_then(|e| e.rs1),
            entry.as_ref().and_then(|e| e.rs2),
        ];
        let mut s1 = None;
        'outer: for theirs in [&p.rs1_id, &p.rs2_id] {
            for rs in ours.iter().flatten() {
                if ct_eq(&mac64(suite.hash, rs, label), theirs) {
                    s1 = Some(*rs);
                    break 'outer;
                }
            }
        }
        let had_secret = ours.iter().any(Option::is_some) || self.cache.is_corrupt(peer_zid);
        let s2 = self
            .cfg
            .aux_secret
            .as_ref()
            .filter(|a| ct_eq(&mac64(suite.hash, a, peer_h3), &p.aux_id))
            .cloned();
        SharedSecrets {
            s1,
            s2,
            mismatch: had_secret && s1.is_none(),
        }
    }

    fn derive_multistream(&mut self) -> Result<(), Error> {
        if self.derived.is_some() {
            return Ok(());
        }
        let ms = self
            .cfg
            .multistream
            .clone()
            .ok_or(Error::Unexpected("multistream", "no session"))?;
        let suite = self
            .suite
            .ok_or(Error::Unexpected("multistream", "no suite"))?;
        let (hello_r, commit, zidi, zidr) = match self.role {
            Role::Initiator => (
                self.peer_hello.as_ref().map(|h| h.bytes.clone()),
                self.our_commit.as_ref().map(|c| c.bytes.clone()),
                self.zid,
                ms.peer_zid,
            ),
            Role::Responder => (
                Some(self.our_hello.clone()),
                self.peer_commit.as_ref().map(|c| c.bytes.clone()),
                ms.peer_zid,
                self.zid,
            ),
        };
        let (Some(hello_r), Some(commit)) = (hello_r, commit) else {
            return Err(Error::Unexpected("multistream", "missing Hello/Commit"));
        };
        // §4.4.3.2: total_hash = hash(responder's Hello || Commit).
        let total = hash(suite.hash, &[&hello_r, &commit]);
        let ctx = keys::kdf_context(&zidi, &zidr, &total);
        let s0 = keys::s0_multistream(&suite, &ms.zrtp_sess, &ctx);
        self.derived = Some(keys::derive(&suite, &s0, &ctx));
        // No retained secret is used here, but a mismatch in the session
        // this stream is keyed from carries over: the v flag and
        // `SecureInfo` must not claim a verified SAS.
        self.shared = Some(SharedSecrets {
            s1: None,
            s2: None,
            mismatch: ms.cache_mismatch,
        });
        Ok(())
    }

    /// Builds our Confirm1 (responder) or Confirm2 (initiator).
    fn seal_confirm(&self, as_role: Role) -> Result<Vec<u8>, Error> {
        let d = self
            .derived
            .as_ref()
            .ok_or(Error::Unexpected("Confirm", "no keys"))?;
        let suite = self.suite.ok_or(Error::Unexpected("Confirm", "no suite"))?;
        let (key, mackey) = match as_role {
            Role::Initiator => (&d.zrtpkey_i, &d.mackey_i),
            Role::Responder => (&d.zrtpkey_r, &d.mackey_r),
        };
        let verified = self
            .peer_hello
            .as_ref()
            .and_then(|h| self.cache.get_live(&h.msg.zid, self.wall_now))
            .is_some_and(|e| e.verified)
            && !self.shared.as_ref().is_some_and(|s| s.mismatch);
        let body = ConfirmBody {
            h0: self.chain.0[0],
            e: false,
            v: verified,
            a: false,
            d: false,
            cache_expiration: self.cfg.cache_expiration,
            signature: Vec::new(),
        };
        let mut encrypted = Zeroizing::new(body.encode());
        let iv: [u8; 16] = random();
        crypto::cfb_encrypt(suite.cipher, key, &iv, &mut encrypted);
        let confirm_mac = mac64(suite.hash, mackey, &encrypted);
        let c = Confirm {
            confirm_mac,
            iv,
            encrypted: encrypted.to_vec(),
        };
        Ok(match as_role {
            Role::Initiator => Message::Confirm2(c),
            Role::Responder => Message::Confirm1(c),
        }
        .encode())
    }

    /// Checks and decrypts the peer's Confirm (`from` is the peer's role).
    fn open_confirm(&self, c: &Confirm, from: Role) -> Result<ConfirmBody, Error> {
        let d = self
            .derived
            .as_ref()
            .ok_or(Error::Unexpected("Confirm", "no keys"))?;
        let suite = self.suite.ok_or(Error::Unexpected("Confirm", "no suite"))?;
        let (key, mackey) = match from {
            Role::Initiator => (&d.zrtpkey_i, &d.mackey_i),
            Role::Responder => (&d.zrtpkey_r, &d.mackey_r),
        };
        if !ct_eq(&mac64(suite.hash, mackey, &c.encrypted), &c.confirm_mac) {
            return Err(ProtocolError::ConfirmMac.into());
        }
        let mut plain = Zeroizing::new(c.encrypted.clone());
        crypto::cfb_decrypt(suite.cipher, key, &c.iv, &mut plain);
        ConfirmBody::parse(&plain).map_err(|_| ProtocolError::Malformed.into())
    }

    fn go_secure(&mut self) {
        let (Some(d), Some(suite), Some(hello)) = (&self.derived, self.suite, &self.peer_hello)
        else {
            return;
        };
        let peer_zid = hello.msg.zid;
        let mismatch = self.shared.as_ref().is_some_and(|s| s.mismatch);
        let (sas, sas_value) = match &self.cfg.multistream {
            Some(ms) => (ms.sas.clone(), 0),
            None => (sas::render(suite.sas, d.sas_value), d.sas_value),
        };
        let local_verified = self
            .cache
            .get_live(&peer_zid, self.wall_now)
            .is_some_and(|e| e.verified);
        let info = SecureInfo {
            role: self.role,
            suite,
            sas,
            sas_value,
            sas_verified: local_verified && self.peer_verified && !mismatch,
            cache_mismatch: mismatch,
            srtp: d.srtp.clone(),
            exported_key: Zeroizing::new(d.exported.clone()),
            peer_zid,
        };
        // §5.7: the smaller expiration interval applies; 0 means the new
        // rs1 is not cached (the entry stays as it was, on both sides),
        // 0xFFFFFFFF that it never expires.
        let interval = self.cfg.cache_expiration.min(self.peer_cache_expiration);
        let cache_it = interval != 0;
        let expires = match interval {
            u32::MAX => None,
            secs => self.wall_now.checked_add(Duration::from_secs(secs.into())),
        };
        if self.cfg.multistream.is_none() {
            self.cache_before = Some(self.cache.snapshot(&peer_zid));
            if cache_it {
                let mut rs1 = Zeroizing::new([0u8; 32]);
                rs1.copy_from_slice(&d.new_rs1);
                if mismatch {
                    // §4.6.1.1: the peer may be an impostor. Its secret
                    // replaces ours only once the user verifies the SAS;
                    // until then the cache stays as it was (our genuine
                    // rs1 too), so the next call with it warns again.
                    self.held_update = Some(HeldUpdate { rs1, expires });
                } else {
                    self.cache
                        .update(peer_zid, *rs1, expires, true, self.wall_now);
                }
            }
            if mismatch {
                self.events.push_back(Event::CacheMismatch { peer_zid });
            }
        }
        self.awaiting_sas = mismatch;
        self.state = State::Secure;
        self.hello_timer = None;
        self.keypair = None;
        // The keys now belong to the application (SecureInfo) and the
        // cache: wipe our copies, keeping only ZRTPSess and the SAS value
        // for a multistream session (§4.4.3), and drop the retained
        // secrets this exchange used.
        if let Some(d) = self.derived.as_mut() {
            d.srtp.zeroize();
            for k in [
                &mut d.mackey_i,
                &mut d.mackey_r,
                &mut d.zrtpkey_i,
                &mut d.zrtpkey_r,
                &mut d.exported,
                &mut d.new_rs1,
            ] {
                k.zeroize();
            }
        }
        self.shared = None;
        self.events.push_back(Event::Secure(Box::new(info)));
    }

    fn on_ping(&mut self, ssrc: u32, p: Ping) {
        let mut sender_hash = [0u8; 8];
        sender_hash.copy_from_slice(&sha256(&self.zid)[..8]);
        self.send_message(&Message::PingAck(PingAck {
            version: *b"1.10",
            sender_hash,
            received_hash: p.endpoint_hash,
            ssrc,
        }));
    }
}

/// Checks one hash-chain link (§9) and the MAC of the earlier message it
/// keys. A broken link means the new message is not from the peer whose
/// chain we hold (forged or stray): it is dropped. A sound link with a
/// failing MAC means the key is genuine but the stored message is not what
/// the peer sent, i.e. it was altered in transit: a man-in-the-middle
/// sign, so the session fails loudly with `altered` instead of stalling
/// into a timeout.
fn check_link(
    link_ok: bool,
    mac_ok: bool,
    what: &'static str,
    altered: ProtocolError,
) -> Result<(), Error> {
    if !link_ok {
        return Err(Error::Auth(what));
    }
    if !mac_ok {
        return Err(altered.into());
    }
    Ok(())
}

/// Maps a Commit's tags to a suite, with the §5.9 code for an unknown one.
fn commit_suite(c: &Commit) -> Result<Suite, ProtocolError> {
    use super::algo::NegotiationError as N;
    Ok(Suite {
        hash: HashAlgo::from_tag(c.hash).ok_or(ProtocolError::Negotiation(N::Hash))?,
        cipher: CipherAlgo::from_tag(c.cipher).ok_or(ProtocolError::Negotiation(N::Cipher))?,
        auth: AuthTagAlgo::from_tag(c.auth).ok_or(ProtocolError::Negotiation(N::AuthTag))?,
        key_agreement: KeyAgreement::from_tag(c.key_agreement)
            .ok_or(ProtocolError::Negotiation(N::KeyAgreement))?,
        sas: SasAlgo::from_tag(c.sas).ok_or(ProtocolError::Negotiation(N::Sas))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs two endpoints on a perfect network until neither has more to
    /// send; returns whether both are secure.
    fn run(a: &mut Endpoint, b: &mut Endpoint) -> bool {
        let now = Instant::now();
        a.start(now);
        b.start(now);
        for _ in 0..50 {
            while let Some(p) = a.poll_transmit() {
                let _ = b.handle_input(now, &p);
            }
            while let Some(p) = b.poll_transmit() {
                let _ = a.handle_input(now, &p);
            }
        }
        a.is_secure() && b.is_secure()
    }

    #[test]
    fn a_peer_sequence_number_that_wraps_is_accepted() {
        // The sequence number is a 16-bit counter that a peer may start
        // anywhere: its wrap from 0xffff to 0 is not a replay.
        for start in [0xfffd, 0xfffe, 0xffff] {
            let mut a = Endpoint::new(Config::new(Role::Initiator), ZidCache::new());
            let mut b = Endpoint::new(Config::new(Role::Responder), ZidCache::new());
            b.next_seq = start;
            a.next_seq = start;
            assert!(run(&mut a, &mut b), "start {start:#x}");
        }
    }

    #[test]
    fn stale_sequence_numbers_are_still_replays() {
        let mut a = Endpoint::new(Config::new(Role::Initiator), ZidCache::new());
        a.last_peer_seq = Some(5);
        a.start(Instant::now());
        for seq in [5u16, 4, 0, 0x8006] {
            let p = packet::build(seq, 1, &Message::HelloAck.encode());
            assert_eq!(
                a.handle_input(Instant::now(), &p),
                Err(Error::Replay(seq)),
                "{seq:#x}"
            );
        }
        let p = packet::build(6, 1, &Message::HelloAck.encode());
        assert_eq!(a.handle_input(Instant::now(), &p), Ok(()));
    }
    #[test]
    fn a_hello_of_a_newer_version_is_ignored_not_fatal() {
        // §4.1.1: a Hello with a higher version than ours is ignored; the
        // peer falls back to a Hello of our version.
        let now = Instant::now();
        let mut a = Endpoint::new(Config::new(Role::Initiator), ZidCache::new());
        let mut b = Endpoint::new(Config::new(Role::Responder), ZidCache::new());
        a.start(now);
        b.start(now);
        let hello = b.poll_transmit().unwrap();
        let raw = packet::parse(&hello).unwrap();
        let mut newer = raw.message.to_vec();
        newer[12..16].copy_from_slice(b"2.00");
        let newer = packet::build(raw.seq, raw.ssrc, &newer);
        assert!(a.handle_input(now, &newer).is_err());
        assert!(!a.is_failed());
        // An older version we do not speak is still a failure (0x30).
        let mut c = Endpoint::new(Config::new(Role::Initiator), ZidCache::new());
        c.start(now);
        let mut older = raw.message.to_vec();
        older[12..16].copy_from_slice(b"1.00");
        let older = packet::build(raw.seq, raw.ssrc, &older);
        assert_eq!(
            c.handle_input(now, &older),
            Err(Error::Protocol(ProtocolError::Version))
        );
        // The real Hello still gets through.
        assert_eq!(a.handle_input(now, &hello), Ok(()));
        assert!(run(&mut a, &mut b));
    }
    #[test]
    fn the_sas_can_only_be_marked_verified_on_a_secure_session() {
        let (mut a, mut b) = (
            Endpoint::new(Config::new(Role::Initiator), ZidCache::new()),
            Endpoint::new(Config::new(Role::Responder), ZidCache::new()),
        );
        assert!(run(&mut a, &mut b));
        let bob = b.zid();
        // Next call: Bob's Hello (unauthenticated until the hash chain and
        // the Confirm check it) names a ZID we know, but there is no SAS yet.
        let now = Instant::now();
        let mut a2 = Endpoint::new(Config::new(Role::Initiator), a.cache().clone());
        let mut b2 = Endpoint::new(Config::new(Role::Responder), b.cache().clone());
        a2.start(now);
        b2.start(now);
        let hello = b2.poll_transmit().unwrap();
        a2.handle_input(now, &hello).unwrap();
        assert!(!a2.set_sas_verified(true));
        assert!(!a2.cache().get(&bob).unwrap().verified);
        // Once secure, it can.
        assert!(run(&mut a2, &mut b2));
        assert!(a2.set_sas_verified(true));
        assert!(a2.cache().get(&bob).unwrap().verified);
        // A session that failed (here: the signalled hash is not Bob's
        // Hello's) cannot either.
        a2.set_peer_hello_hash(HelloHash::of_message(b"not this Hello"));
        assert!(a2.is_failed());
        assert!(!a2.set_sas_verified(false));
    }
    #[test]
    fn key_material_is_wiped_once_handed_over() {
        // Once secure, the SRTP keys, exported key, Confirm keys, new rs1
        // and the retained secrets used are with the application and the
        // cache: the endpoint (which lives as long as the call) keeps only
        // what a multistream session needs.
        let mut a = Endpoint::new(Config::new(Role::Initiator), ZidCache::new());
        let mut b = Endpoint::new(Config::new(Role::Responder), ZidCache::new());
        assert!(run(&mut a, &mut b));
        let (mut a, mut b) = (
            Endpoint::new(Config::new(Role::Initiator), a.cache().clone()),
            Endpoint::new(Config::new(Role::Responder), b.cache().clone()),
        );
        assert!(run(&mut a, &mut b));
        for ep in [&a, &b] {
            let d = ep.derived.as_ref().unwrap();
            for k in [
                &d.srtp.initiator_key,
                &d.srtp.initiator_salt,
                &d.srtp.responder_key,
                &d.srtp.responder_salt,
                &d.mackey_i,
                &d.mackey_r,
                &d.zrtpkey_i,
                &d.zrtpkey_r,
                &d.exported,
                &d.new_rs1,
            ] {
                assert!(k.is_empty());
            }
            assert!(ep.shared.is_none(), "retained secret s1 kept");
            assert!(ep.session_key().is_some());
        }

        // A handshake that times out after the keys were derived (the
        // initiator's Confirm2 is never acknowledged) wipes them too.
        let now = Instant::now();
        let mut a = Endpoint::new(Config::new(Role::Initiator), ZidCache::new());
        let mut b = Endpoint::new(Config::new(Role::Responder), ZidCache::new());
        a.start(now);
        b.start(now);
        while a.state != State::SentConfirm2 {
            while let Some(p) = a.poll_transmit() {
                let _ = b.handle_input(now, &p);
            }
            while let Some(p) = b.poll_transmit() {
                let _ = a.handle_input(now, &p);
            }
        }
        assert!(a.derived.is_some());
        while let Some(t) = a.poll_timeout() {
            a.handle_timeout(t);
        }
        assert!(a.is_failed());
        assert!(a.derived.is_none() && a.keypair.is_none() && a.shared.is_none());
    }
}
