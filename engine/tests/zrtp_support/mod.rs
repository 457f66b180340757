//! Shared harness for the ZRTP integration tests: a Sotto endpoint and a
//! bzrtp endpoint talking over real UDP sockets on 127.0.0.1, and an
//! in-process virtual network for Sotto-to-Sotto runs.
#![allow(dead_code)]

use sotto_engine::zrtp::message::{self, MessageType};
use sotto_engine::zrtp::{Config, Endpoint, Event, SecureInfo, ZidCache, packet};
use sotto_peers::bzrtp::{Bzrtp, BzrtpConfig, BzrtpSecrets};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// Milliseconds on one monotonic clock for every bzrtp channel.
pub fn epoch_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// Message type of a framed packet, if it parses.
pub fn packet_type(p: &[u8]) -> Option<MessageType> {
    packet::parse(p)
        .ok()
        .and_then(|r| message::peek_type(r.message).ok())
}

/// What one interop run produced.
pub struct Outcome {
    pub sotto: Option<Box<SecureInfo>>,
    pub sotto_events: Vec<Event>,
    pub bzrtp: Option<BzrtpSecrets>,
    pub bzrtp_packets: Vec<Vec<u8>>,
    pub sotto_packets: Vec<Vec<u8>>,
    pub endpoint: Endpoint,
}

/// Options of a run.
#[derive(Default, Clone)]
pub struct RunOpts {
    /// Hold bzrtp's Commit until Sotto has sent its own (forces contention).
    pub force_contention: bool,
    /// Give bzrtp Sotto's Hello hash; or this wrong one instead.
    pub bzrtp_gets_hello_hash: bool,
    pub bzrtp_wrong_hello_hash: Option<String>,
    /// Give Sotto bzrtp's real Hello hash.
    pub sotto_gets_hello_hash: bool,
}

/// Runs Sotto (`cfg`) against bzrtp (`bz`) over UDP loopback until both are
/// secure, either fails, or 10 s pass.
pub fn run_udp(mut cfg: Config, cache: ZidCache, bz: &BzrtpConfig, opts: RunOpts) -> Outcome {
    let mut peer = Bzrtp::new(0xb2b2_0001, bz).expect("bzrtp context");
    assert_eq!(peer.start(), 0);
    if opts.sotto_gets_hello_hash {
        let h = peer.self_hello_hash().expect("bzrtp hello hash");
        cfg.peer_hello_hash = Some(h.parse().expect("bzrtp hello hash parses"));
    }
    let ep = Endpoint::new(cfg, cache);
    if opts.bzrtp_gets_hello_hash {
        assert_eq!(peer.set_peer_hello_hash(&ep.hello_hash().to_string()), 0);
    }
    if let Some(w) = &opts.bzrtp_wrong_hello_hash {
        assert_eq!(peer.set_peer_hello_hash(w), 0);
    }
    drive(ep, peer, &opts).0
}

/// Runs an already configured Sotto endpoint against a started bzrtp
/// channel over a fresh pair of loopback UDP sockets; hands bzrtp back.
pub fn drive(mut ep: Endpoint, mut peer: Bzrtp, opts: &RunOpts) -> (Outcome, Bzrtp) {
    let s_sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let b_sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let (s_addr, b_addr) = (s_sock.local_addr().unwrap(), b_sock.local_addr().unwrap());
    for s in [&s_sock, &b_sock] {
        s.set_nonblocking(true).unwrap();
    }
    let start = Instant::now();
    ep.start(start);
    let mut out = Outcome {
        sotto: None,
        sotto_events: vec![],
        bzrtp: None,
        bzrtp_packets: vec![],
        sotto_packets: vec![],
        endpoint: Endpoint::new(
            Config::new(sotto_engine::zrtp::Role::Responder),
            ZidCache::new(),
        ),
    };
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut sotto_committed = false;
    let mut buf = [0u8; 4096];
    let mut sotto_done = false;
    while start.elapsed() < Duration::from_secs(10) {
        let now = Instant::now();
        peer.iterate(epoch_ms());
        ep.handle_timeout(now);
        while let Some(p) = ep.poll_transmit() {
            if packet_type(&p) == Some(MessageType::Commit) {
                sotto_committed = true;
            }
            out.sotto_packets.push(p.clone());
            s_sock.send_to(&p, b_addr).unwrap();
        }
        while let Some(p) = peer.pop_packet() {
            out.bzrtp_packets.push(p.clone());
            if opts.force_contention
                && !sotto_committed
                && packet_type(&p) == Some(MessageType::Commit)
            {
                held.push(p);
                continue;
            }
            b_sock.send_to(&p, s_addr).unwrap();
        }
        if sotto_committed {
            for p in held.drain(..) {
                b_sock.send_to(&p, s_addr).unwrap();
            }
        }
        let mut idle = true;
        while let Ok((n, _)) = s_sock.recv_from(&mut buf) {
            idle = false;
            let _ = ep.handle_input(Instant::now(), &buf[..n]);
        }
        while let Ok((n, _)) = b_sock.recv_from(&mut buf) {
            idle = false;
            peer.process(&buf[..n]);
        }
        while let Some(e) = ep.poll_event() {
            match e {
                Event::Secure(info) => {
                    out.sotto = Some(info);
                    sotto_done = true;
                }
                Event::Failed(_) => {
                    sotto_done = true;
                    out.sotto_events.push(e);
                }
                other => out.sotto_events.push(other),
            }
        }
        let bz_done = peer.is_secure() || peer.status() == 0x1008;
        if sotto_done && bz_done {
            break;
        }
        if sotto_done && out.sotto.is_none() && start.elapsed() > Duration::from_secs(2) {
            break;
        }
        if idle {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    out.bzrtp = peer.secrets();
    out.endpoint = ep;
    (out, peer)
}

/// Asserts both sides derived the same SAS, algorithms and SRTP secrets.
pub fn assert_agree(o: &Outcome, ka: &str) -> (String, String) {
    let s = o
        .sotto
        .as_ref()
        .unwrap_or_else(|| panic!("Sotto not secure: {:?}", o.sotto_events));
    let b = o.bzrtp.as_ref().expect("bzrtp not secure");
    // bzrtp reports no SAS on a multistream channel (the SAS belongs to
    // the first stream); everything else must match.
    if !(ka == "Mult" && b.sas.is_empty()) {
        assert_eq!(s.sas, b.sas, "SAS");
    }
    assert_eq!(s.suite.key_agreement.name(), b.key_agreement);
    assert_eq!(b.key_agreement, ka);
    assert_eq!(s.suite.hash.name(), b.hash);
    assert_eq!(s.suite.cipher.name(), b.cipher);
    assert_eq!(s.suite.auth.name(), b.auth_tag);
    assert_eq!(s.suite.sas.name(), b.sas_algo);
    let (lk, ls) = s.local_key_salt();
    let (rk, rs) = s.remote_key_salt();
    assert_eq!(
        lk,
        &b.peer_key[..],
        "our sending key is bzrtp's receiving key"
    );
    assert_eq!(ls, &b.peer_salt[..]);
    assert_eq!(
        rk,
        &b.self_key[..],
        "bzrtp's sending key is our receiving key"
    );
    assert_eq!(rs, &b.self_salt[..]);
    assert_eq!(lk.len(), s.suite.cipher.key_len());
    assert_eq!(ls.len(), 14);
    eprintln!(
        "{ka}: sotto {} sas {:?} key {}",
        s.role.name(),
        s.sas,
        hex::encode(lk)
    );
    (s.sas.clone(), s.role.name().to_string())
}

/// Deterministic xorshift64* generator for loss decisions.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// Direction of a packet in the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    AtoB,
    BtoA,
}

/// What the network does with a packet: deliver these datagrams (possibly
/// none, possibly altered, possibly several).
pub type Network<'a> = dyn FnMut(Dir, usize, Vec<u8>) -> Vec<Vec<u8>> + 'a;

/// Result of a simulated run.
pub struct SimOutcome {
    pub a: Endpoint,
    pub b: Endpoint,
    pub a_events: Vec<Event>,
    pub b_events: Vec<Event>,
    pub a_secure: Option<Box<SecureInfo>>,
    pub b_secure: Option<Box<SecureInfo>>,
    pub delivered: usize,
    pub virtual_elapsed: Duration,
}

impl SimOutcome {
    pub fn failed(&self, which: Dir) -> bool {
        let ev = if which == Dir::AtoB {
            &self.a_events
        } else {
            &self.b_events
        };
        ev.iter().any(|e| matches!(e, Event::Failed(_)))
    }
}

/// Runs two Sotto endpoints in virtual time (zero latency); `net` sees
/// every packet with a running index. Stops when both are done or after
/// 120 virtual seconds.
pub fn simulate(mut a: Endpoint, mut b: Endpoint, net: &mut Network<'_>) -> SimOutcome {
    let t0 = Instant::now();
    let mut now = t0;
    a.start(now);
    b.start(now);
    let mut out = SimOutcome {
        a: Endpoint::new(
            Config::new(sotto_engine::zrtp::Role::Responder),
            ZidCache::new(),
        ),
        b: Endpoint::new(
            Config::new(sotto_engine::zrtp::Role::Responder),
            ZidCache::new(),
        ),
        a_events: vec![],
        b_events: vec![],
        a_secure: None,
        b_secure: None,
        delivered: 0,
        virtual_elapsed: Duration::ZERO,
    };
    let mut index = 0usize;
    let done = |o: &SimOutcome| {
        let a_done = o.a_secure.is_some() || o.failed(Dir::AtoB);
        let b_done = o.b_secure.is_some() || o.failed(Dir::BtoA);
        a_done && b_done
    };
    for _ in 0..100_000 {
        let mut moved = false;
        while let Some(p) = a.poll_transmit() {
            moved = true;
            for d in net(Dir::AtoB, index, p) {
                out.delivered += 1;
                let _ = b.handle_input(now, &d);
            }
            index += 1;
        }
        while let Some(p) = b.poll_transmit() {
            moved = true;
            for d in net(Dir::BtoA, index, p) {
                out.delivered += 1;
                let _ = a.handle_input(now, &d);
            }
            index += 1;
        }
        for (ep, events, secure) in [
            (&mut a, &mut out.a_events, &mut out.a_secure),
            (&mut b, &mut out.b_events, &mut out.b_secure),
        ] {
            while let Some(e) = ep.poll_event() {
                match e {
                    Event::Secure(info) => *secure = Some(info),
                    other => events.push(other),
                }
            }
        }
        if done(&out) && !moved {
            break;
        }
        if moved {
            continue;
        }
        let next = [a.poll_timeout(), b.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) if t.duration_since(t0) < Duration::from_secs(120) => {
                now = now.max(t);
                a.handle_timeout(now);
                b.handle_timeout(now);
            }
            _ => break,
        }
    }
    out.virtual_elapsed = now.duration_since(t0);
    out.a = a;
    out.b = b;
    out
}

/// A perfect network.
pub fn perfect() -> impl FnMut(Dir, usize, Vec<u8>) -> Vec<Vec<u8>> {
    |_, _, p| vec![p]
}

/// Asserts two Sotto endpoints derived matching keys.
pub fn assert_sim_agree(o: &SimOutcome) -> (&SecureInfo, &SecureInfo) {
    let a = o
        .a_secure
        .as_deref()
        .unwrap_or_else(|| panic!("A not secure: {:?}", o.a_events));
    let b = o
        .b_secure
        .as_deref()
        .unwrap_or_else(|| panic!("B not secure: {:?}", o.b_events));
    assert_eq!(a.sas, b.sas);
    assert_eq!(a.sas_value, b.sas_value);
    assert_eq!(a.srtp, b.srtp);
    assert_eq!(a.suite, b.suite);
    assert_ne!(a.role, b.role);
    assert_eq!(*a.exported_key, *b.exported_key);
    (a, b)
}

/// Damages the retained secret stored for `peer` in the SQLite cache at
/// `path`, as disk corruption or a stray edit would (its row MAC no longer
/// matches).
pub fn corrupt_cache_row(path: &std::path::Path, peer: &[u8; 12]) {
    let changed = rusqlite::Connection::open(path)
        .unwrap()
        .execute(
            "UPDATE zrtp_peers SET rs1 = zeroblob(32) WHERE zid = ?1",
            [&peer[..]],
        )
        .unwrap();
    assert_eq!(changed, 1, "no cache row for that peer");
}

/// Rewrites a packet's CRC after tampering, as an on-path attacker can.
pub fn fix_crc(p: &mut [u8]) {
    let n = p.len() - 4;
    let c = crc32c_ref(&p[..n]);
    p[n..].copy_from_slice(&c);
}

/// Reference bitwise CRC-32C (RFC 3309 polynomial, reflected 0x82F63B78)
/// in ZRTP's byte order, independent of the crate the codec uses.
pub fn crc32c_ref(data: &[u8]) -> [u8; 4] {
    let mut crc = !0u32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    (!crc).to_le_bytes()
}
