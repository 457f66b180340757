//! Shared harness for the ZRTP integration tests: a Sotto endpoint and a
//! bzrtp endpoint talking over real UDP sockets on 127.0.0.1, and an
//! in-process virtual network for Sotto-to-Sotto runs.
#![allow(dead_code)]

use sotto_engine::zrtp::message::{self, MessageType};
use sotto_engine::zrtp::{Config, Endpoint, Event, SecureInfo, ZidCache, packet};
use sotto_peers::bzrtp::{Bzrtp, BzrtpConfig, BzrtpSecrets};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

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
    let s_sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let b_sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let (s_addr, b_addr) = (s_sock.local_addr().unwrap(), b_sock.local_addr().unwrap());
    for s in [&s_sock, &b_sock] {
        s.set_nonblocking(true).unwrap();
    }
    let mut peer = Bzrtp::new(0xb2b2_0001, bz).expect("bzrtp context");
    let start = Instant::now();
    assert_eq!(peer.start(), 0);
    if opts.sotto_gets_hello_hash {
        let h = peer.self_hello_hash().expect("bzrtp hello hash");
        cfg.peer_hello_hash = Some(h.parse().expect("bzrtp hello hash parses"));
    }
    let mut ep = Endpoint::new(cfg, cache);
    if opts.bzrtp_gets_hello_hash {
        assert_eq!(peer.set_peer_hello_hash(&ep.hello_hash().to_string()), 0);
    }
    if let Some(w) = &opts.bzrtp_wrong_hello_hash {
        assert_eq!(peer.set_peer_hello_hash(w), 0);
    }
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
        peer.iterate(now.duration_since(start).as_millis() as u64);
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
        if sotto_done && !out.sotto.is_some() && start.elapsed() > Duration::from_secs(2) {
            break;
        }
        if idle {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    out.bzrtp = peer.secrets();
    out.endpoint = ep;
    out
}

/// Asserts both sides derived the same SAS, algorithms and SRTP secrets.
pub fn assert_agree(o: &Outcome, ka: &str) -> (String, String) {
    let s = o
        .sotto
        .as_ref()
        .unwrap_or_else(|| panic!("Sotto not secure: {:?}", o.sotto_events));
    let b = o.bzrtp.as_ref().expect("bzrtp not secure");
    assert_eq!(s.sas, b.sas, "SAS");
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
