//! Our TURN client against Debian coturn: allocation with long-term and
//! with REST (use-auth-secret) credentials, and relay-only calls whose
//! media goes through the relay, over IPv4 and over IPv6.

mod transport_support;

use sotto_engine::driver::TransportHandle;
use sotto_engine::ice::creds::rest_credentials;
use sotto_engine::ice::{IceConfig, IceEvent, IceSession, TurnServer};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use transport_support::{Auth, Call, Coturn, REALM, has_ipv6_loopback, signalling};

/// One round of a session on its real socket: sends what it has to send
/// (always from that socket), feeds it every datagram that has arrived (a
/// socket with a read timeout waits that long for the first), and runs its
/// timers.
fn pump(s: &mut IceSession, sock: &std::net::UdpSocket) {
    let local = sock.local_addr().unwrap();
    while let Some(t) = s.poll_transmit() {
        assert_eq!(t.local, local);
        let _ = sock.send_to(&t.data, t.to);
    }
    let mut buf = [0u8; 2048];
    while let Ok((n, from)) = sock.recv_from(&mut buf) {
        let _ = s.handle_input(Instant::now(), local, from, &buf[..n]);
    }
    s.handle_timeout(Instant::now());
}

/// Sends what a session has to send (a closing session's deletions).
fn flush(s: &mut IceSession, sock: &std::net::UdpSocket) {
    while let Some(t) = s.poll_transmit() {
        let _ = sock.send_to(&t.data, t.to);
    }
}

/// Drives one session on a real socket (on the server's loopback address)
/// until it reports a relayed candidate.
fn allocate(server: TurnServer) -> Result<String, String> {
    let sock = std::net::UdpSocket::bind((server.addr.ip(), 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let local = sock.local_addr().unwrap();
    let cfg = IceConfig {
        relay_only: true,
        turn_servers: vec![server],
        ..IceConfig::default()
    };
    let mut s = IceSession::new(Instant::now(), cfg, &[local]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        pump(&mut s, &sock);
        if let Some(c) = s
            .local_candidates()
            .into_iter()
            .find(|c| c.contains("typ relay"))
        {
            s.close(Instant::now());
            flush(&mut s, &sock);
            return Ok(c);
        }
        while let Some(e) = s.poll_event() {
            if let IceEvent::ServerFailed { reason, .. } = e {
                return Err(reason);
            }
        }
    }
    Err("no allocation before the deadline".into())
}

#[test]
fn allocates_with_long_term_credentials() {
    let turn = Coturn::start(Auth::LongTerm {
        user: "u",
        pass: "p",
    });
    let ok = turn.server("u", "p");
    let cand = allocate(ok).expect("allocation");
    assert!(cand.contains("127.0.0.1"), "{cand}");
    // In relay-only mode the relayed candidate must not reveal our host address.
    assert!(cand.contains("raddr 0.0.0.0 rport 0"), "{cand}");
    let bad = turn.server("u", "wrong");
    assert!(
        allocate(bad).is_err(),
        "coturn must refuse a wrong password"
    );
}

#[test]
fn allocates_with_rest_credentials() {
    let turn = Coturn::start(Auth::Secret("north-wind"));
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let c = rest_credentials(b"north-wind", "alice", expiry);
    let ok = TurnServer {
        addr: turn.addr,
        username: c.username.clone(),
        password: c.password.clone(),
        realm: REALM.into(),
    };
    allocate(ok).expect("allocation with REST credentials");
    // Expired credentials are refused by coturn.
    let old = rest_credentials(b"north-wind", "alice", expiry - 7200);
    let expired = TurnServer {
        addr: turn.addr,
        username: old.username.clone(),
        password: old.password.clone(),
        realm: REALM.into(),
    };
    assert!(allocate(expired).is_err());
    let wrong = rest_credentials(b"other-secret", "alice", expiry);
    let wrong = TurnServer {
        addr: turn.addr,
        username: wrong.username.clone(),
        password: wrong.password.clone(),
        realm: REALM.into(),
    };
    assert!(allocate(wrong).is_err());
}

fn relay_cfg(controlling: bool, turn: &Coturn) -> IceConfig {
    IceConfig {
        controlling,
        relay_only: true,
        turn_servers: vec![turn.server("u", "p")],
        ..IceConfig::default()
    }
}

/// A relay-only call between two endpoints on `turn`'s loopback address:
/// both select a relayed pair and media flows through coturn, which bound
/// channels for it. Returns the pair A selected.
async fn relay_only_call(turn: &Coturn) -> sotto_engine::ice::SelectedPath {
    let (sa, from_a, sb, from_b) = signalling();
    let bind: [SocketAddr; 1] = [(turn.addr.ip(), 0).into()];
    let a = TransportHandle::bind(&bind, relay_cfg(true, turn), Box::new(sa))
        .await
        .unwrap();
    let b = TransportHandle::bind(&bind, relay_cfg(false, turn), Box::new(sb))
        .await
        .unwrap();
    let mut call = Call::new(a, from_a, b, from_b);
    assert!(
        call.connect(Duration::from_secs(30)).await,
        "relay-only ICE did not connect: {:?}",
        call.a_events
    );
    let pa = call.a_selected.unwrap();
    let pb = call.b_selected.unwrap();
    assert!(pa.relayed && pb.relayed, "{pa:?} {pb:?}");
    assert!(
        call.exchange(7, 50, 45).await,
        "media did not flow through the relay"
    );
    // coturn's own account: both clients got permissions and bound channels
    // (media then travels as ChannelData, RFC 8656 §12).
    for what in ["CREATE_PERMISSION", "CHANNEL_BIND"] {
        let ok = turn.log_count(&format!("incoming packet {what} processed, success"));
        assert!(ok >= 2, "coturn accepted {ok} {what}");
    }
    let Call { a, b, .. } = call;
    a.shutdown().await;
    b.shutdown().await;
    pa
}

#[tokio::test]
async fn relay_only_call_through_coturn() {
    let turn = Coturn::start(Auth::LongTerm {
        user: "u",
        pass: "p",
    });
    let path = relay_only_call(&turn).await;
    assert!(path.local.is_ipv4() && path.remote.is_ipv4(), "{path:?}");
}

/// TURN over IPv6: coturn listens and relays on ::1 only; the allocation's
/// relayed address is IPv6 and a relay-only call carries media through it.
#[tokio::test]
async fn relay_only_call_through_coturn_over_ipv6() {
    if !has_ipv6_loopback() {
        println!("SKIPPED: no IPv6 loopback (::1 missing from /proc/net/if_inet6)");
        return;
    }
    let turn = Coturn::start_v6(Auth::LongTerm {
        user: "u",
        pass: "p",
    });
    let server = turn.server("u", "p");
    let cand = allocate(server).expect("IPv6 allocation");
    assert!(
        cand.contains(" ::1 ") && cand.contains("typ relay"),
        "{cand}"
    );
    assert!(cand.contains("raddr :: rport 0"), "{cand}");
    let path = relay_only_call(&turn).await;
    // Our relayed address and the peer's are both IPv6 on coturn.
    assert_eq!(path.socket.ip(), turn.addr.ip());
    assert!(path.local.is_ipv6() && path.remote.is_ipv6(), "{path:?}");
    assert_eq!(path.local.ip(), turn.addr.ip(), "{path:?}");
    println!("IPv6 relayed path: {path:?}");
}

/// A server reached over IPv6 that relays only on IPv4 refuses the IPv6
/// request (440, which ends the allocation without the fallback); the
/// client asks again without it and gets an IPv4 relay.
#[test]
fn ipv6_client_falls_back_to_an_ipv4_relay() {
    if !has_ipv6_loopback() {
        println!("SKIPPED: no IPv6 loopback (::1 missing from /proc/net/if_inet6)");
        return;
    }
    let turn = Coturn::start_v6_relaying_v4(Auth::LongTerm {
        user: "u",
        pass: "p",
    });
    let cand = allocate(turn.server("u", "p")).expect("allocation after the 440");
    assert!(
        cand.contains(" 127.0.0.1 ") && cand.contains("typ relay"),
        "{cand}"
    );
}

/// Refresh (RFC 8656 §7): coturn allocations do not expire during a call.
/// coturn always grants its default lifetime to a client that asks for none,
/// so the refresh interval is capped at 1 s here and coturn's own log must
/// show refreshes it accepted while media keeps flowing on the same path.
#[tokio::test]
async fn allocation_is_refreshed() {
    let turn = Coturn::start(Auth::LongTerm {
        user: "u",
        pass: "p",
    });
    let cfg = |controlling| IceConfig {
        auto_restart: false,
        turn_refresh_interval: Some(Duration::from_secs(1)),
        ..relay_cfg(controlling, &turn)
    };
    let (sa, from_a, sb, from_b) = signalling();
    let v4: [SocketAddr; 1] = ["127.0.0.1:0".parse().unwrap()];
    let a = TransportHandle::bind(&v4, cfg(true), Box::new(sa))
        .await
        .unwrap();
    let b = TransportHandle::bind(&v4, cfg(false), Box::new(sb))
        .await
        .unwrap();
    let mut call = Call::new(a, from_a, b, from_b);
    assert!(call.connect(Duration::from_secs(30)).await);
    let first = call.a_selected.unwrap();
    const ACCEPTED: &str = "incoming packet REFRESH processed, success";
    let mut round = 0u8;
    // Both clients refresh (2 per interval); wait for several each.
    while turn.log_count(ACCEPTED) < 6 {
        round += 1;
        assert!(
            round < 60,
            "coturn saw only {} refreshes",
            turn.log_count(ACCEPTED)
        );
        assert!(
            call.exchange(round, 5, 4).await,
            "media stopped in round {round}"
        );
        call.run_until(Duration::from_millis(500), |_| false).await;
    }
    assert_eq!(call.a_selected, Some(first), "the path changed");
    let Call { a, b, .. } = call;
    a.shutdown().await;
    b.shutdown().await;
}

/// Server-reflexive gathering: a STUN Binding to coturn yields our mapped
/// address (on loopback, the socket itself) as a `srflx` candidate.
#[test]
fn gathers_server_reflexive_candidate() {
    let turn = Coturn::start(Auth::LongTerm {
        user: "u",
        pass: "p",
    });
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let local = sock.local_addr().unwrap();
    let cfg = IceConfig {
        stun_servers: vec![turn.addr],
        ..IceConfig::default()
    };
    let mut s = IceSession::new(Instant::now(), cfg, &[local]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let srflx = loop {
        assert!(
            Instant::now() < deadline,
            "no srflx candidate: {:?}",
            s.local_candidates()
        );
        pump(&mut s, &sock);
        if let Some(c) = s
            .local_candidates()
            .into_iter()
            .find(|c| c.contains("typ srflx"))
        {
            break c;
        }
    };
    let want = format!(
        "{} {} typ srflx raddr {} rport {}",
        local.ip(),
        local.port(),
        local.ip(),
        local.port()
    );
    assert!(srflx.ends_with(&want), "{srflx}");
}

/// One coturn as both STUN and TURN server (the usual deployment): the
/// session gets a server-reflexive and a relayed candidate from it, both
/// links sharing one local socket and one server address.
#[test]
fn one_server_for_stun_and_turn_gives_both_candidates() {
    let turn = Coturn::start(Auth::LongTerm {
        user: "u",
        pass: "p",
    });
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let local = sock.local_addr().unwrap();
    let cfg = IceConfig {
        stun_servers: vec![turn.addr],
        turn_servers: vec![turn.server("u", "p")],
        ..IceConfig::default()
    };
    let mut s = IceSession::new(Instant::now(), cfg, &[local]).unwrap();
    let has = |s: &IceSession, typ: &str| s.local_candidates().iter().any(|c| c.contains(typ));
    // A generous protocol bound (the TURN client gives up after ~8 s).
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(has(&s, "typ srflx") && has(&s, "typ relay")) {
        assert!(
            Instant::now() < deadline,
            "candidates: {:?}",
            s.local_candidates()
        );
        pump(&mut s, &sock);
        while let Some(e) = s.poll_event() {
            assert!(
                !matches!(e, IceEvent::ServerFailed { .. }),
                "{e:?}; candidates: {:?}",
                s.local_candidates()
            );
        }
    }
    s.close(Instant::now());
    flush(&mut s, &sock);
}

/// A relay-only endpoint and a direct one, driven on real loopback sockets
/// in this thread, with B's candidates held back until `release` says so.
struct SyncPair {
    a: IceSession,
    b: IceSession,
    a_sock: std::net::UdpSocket,
    b_sock: std::net::UdpSocket,
    held: Vec<sotto_engine::ice::SignalMessage>,
}

impl SyncPair {
    fn new(turn: &Coturn) -> Self {
        let bind = || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            s
        };
        let (a_sock, b_sock) = (bind(), bind());
        let now = Instant::now();
        let a = IceSession::new(now, relay_cfg(true, turn), &[a_sock.local_addr().unwrap()]);
        let b_cfg = IceConfig {
            controlling: false,
            ..IceConfig::default()
        };
        let b = IceSession::new(now, b_cfg, &[b_sock.local_addr().unwrap()]);
        Self {
            a: a.unwrap(),
            b: b.unwrap(),
            a_sock,
            b_sock,
            held: Vec::new(),
        }
    }

    /// One round of signalling, datagrams and timers.
    fn step(&mut self, release: bool) {
        use sotto_engine::ice::SignalMessage;
        let now = Instant::now();
        while let Some(m) = self.a.poll_signal() {
            self.b.handle_signal(now, m).unwrap();
        }
        while let Some(m) = self.b.poll_signal() {
            match m {
                SignalMessage::Candidate { .. } => self.held.push(m),
                m => self.a.handle_signal(now, m).unwrap(),
            }
        }
        if release {
            for m in std::mem::take(&mut self.held) {
                self.a.handle_signal(now, m).unwrap();
            }
        }
        pump(&mut self.a, &self.a_sock);
        pump(&mut self.b, &self.b_sock);
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// coturn with `--stale-nonce=1` answers 438 (Stale Nonce) with a fresh
/// NONCE to a CreatePermission sent with an older one (RFC 8656 §9.2,
/// RFC 8489 §9.2.5). The permission must be asked again with the new
/// nonce, or the relay never lets the peer in and the call cannot connect.
#[test]
fn permission_refused_for_a_stale_nonce_is_asked_again() {
    let turn = Coturn::start_with(
        Auth::LongTerm {
            user: "u",
            pass: "p",
        },
        &["--stale-nonce=1"],
    );
    let mut p = SyncPair::new(&turn);
    let deadline = Instant::now() + Duration::from_secs(20);
    // Allocate first, then let the nonce go stale before the peer's
    // candidates (and so the permissions for them) arrive.
    while !p
        .a
        .local_candidates()
        .iter()
        .any(|c| c.contains("typ relay"))
    {
        assert!(Instant::now() < deadline, "no allocation");
        p.step(false);
    }
    let stale = Instant::now() + Duration::from_secs(3);
    while Instant::now() < stale {
        p.step(false);
    }
    while p.a.selected().is_none() || p.b.selected().is_none() {
        assert!(
            Instant::now() < deadline,
            "no pair; coturn sent {} stale-nonce answers; A: {:?}",
            turn.log_count("438"),
            p.a.stats()
        );
        p.step(true);
    }
    assert!(p.a.selected().unwrap().relayed);
}

/// coturn with `--stale-nonce=1` answers each Refresh sent more than a
/// second after the nonce was issued with 438 and a fresh NONCE. With a
/// refresh every 2 s, a client that waits for its next timer to use the
/// new nonce never gets a Refresh accepted and loses the allocation; it
/// must send the Refresh again at once.
#[test]
fn refresh_refused_for_a_stale_nonce_is_sent_again() {
    let turn = Coturn::start_with(
        Auth::LongTerm {
            user: "u",
            pass: "p",
        },
        &["--stale-nonce=1"],
    );
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let local = sock.local_addr().unwrap();
    let cfg = IceConfig {
        turn_refresh_interval: Some(Duration::from_secs(2)),
        ..relay_cfg(true, &turn)
    };
    let mut s = IceSession::new(Instant::now(), cfg, &[local]).unwrap();
    const ACCEPTED: &str = "incoming packet REFRESH processed, success";
    // A generous protocol bound: several refresh intervals.
    let deadline = Instant::now() + Duration::from_secs(20);
    while turn.log_count(ACCEPTED) < 2 {
        assert!(
            Instant::now() < deadline,
            "coturn accepted {} refreshes and answered 438 to {}",
            turn.log_count(ACCEPTED),
            turn.log_count("438")
        );
        pump(&mut s, &sock);
    }
}

/// Two relay-only endpoints on real loopback sockets, driven in this
/// thread, each side's signalling held back while `hold_to_a`/`hold_to_b`.
struct RelayPair {
    a: IceSession,
    b: IceSession,
    a_sock: std::net::UdpSocket,
    b_sock: std::net::UdpSocket,
    hold_to_a: bool,
    hold_to_b: bool,
    to_a: Vec<sotto_engine::ice::SignalMessage>,
    to_b: Vec<sotto_engine::ice::SignalMessage>,
    a_media: Vec<Vec<u8>>,
    b_media: Vec<Vec<u8>>,
    a_events: Vec<IceEvent>,
    b_events: Vec<IceEvent>,
}

impl RelayPair {
    fn new(turn: &Coturn) -> Self {
        let bind = || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            s
        };
        let (a_sock, b_sock) = (bind(), bind());
        let now = Instant::now();
        let a = IceSession::new(now, relay_cfg(true, turn), &[a_sock.local_addr().unwrap()]);
        let b = IceSession::new(now, relay_cfg(false, turn), &[b_sock.local_addr().unwrap()]);
        Self {
            a: a.unwrap(),
            b: b.unwrap(),
            a_sock,
            b_sock,
            hold_to_a: false,
            hold_to_b: false,
            to_a: Vec::new(),
            to_b: Vec::new(),
            a_media: Vec::new(),
            b_media: Vec::new(),
            a_events: Vec::new(),
            b_events: Vec::new(),
        }
    }

    /// One round of signalling, datagrams and timers.
    fn step(&mut self) {
        let now = Instant::now();
        self.to_b
            .extend(std::iter::from_fn(|| self.a.poll_signal()));
        self.to_a
            .extend(std::iter::from_fn(|| self.b.poll_signal()));
        if !self.hold_to_b {
            for m in std::mem::take(&mut self.to_b) {
                let _ = self.b.handle_signal(now, m);
            }
        }
        if !self.hold_to_a {
            for m in std::mem::take(&mut self.to_a) {
                let _ = self.a.handle_signal(now, m);
            }
        }
        let sides = [
            (
                &mut self.a,
                &self.a_sock,
                &mut self.a_media,
                &mut self.a_events,
            ),
            (
                &mut self.b,
                &self.b_sock,
                &mut self.b_media,
                &mut self.b_events,
            ),
        ];
        for (s, sock, media, events) in sides {
            pump(s, sock);
            media.extend(std::iter::from_fn(|| s.poll_media()));
            events.extend(std::iter::from_fn(|| s.poll_event()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }

    /// Steps until `done` holds; false after a generous protocol bound.
    fn until(&mut self, mut done: impl FnMut(&Self) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !done(self) {
            if Instant::now() > deadline {
                return false;
            }
            self.step();
        }
        true
    }

    /// Sends one datagram tagged `tag` each way (a few times, as a call
    /// would) and steps until both arrive; the error says what failed.
    fn media_flows(&mut self, tag: u8) -> Result<(), String> {
        for seq in 0..3 {
            let rtp = transport_support::rtp_like(tag, seq);
            let now = Instant::now();
            self.a
                .send_media(now, &rtp)
                .map_err(|e| format!("A cannot send: {e}"))?;
            self.b
                .send_media(now, &rtp)
                .map_err(|e| format!("B cannot send: {e}"))?;
            self.step();
        }
        let got = |m: &[Vec<u8>]| transport_support::count_tag(m, tag) > 0;
        if self.until(|p| got(&p.a_media) && got(&p.b_media)) {
            Ok(())
        } else {
            Err(format!(
                "media {tag} reached A: {}, B: {}",
                got(&self.a_media),
                got(&self.b_media)
            ))
        }
    }
}

/// RFC 8445 §9: during an ICE restart the old path keeps carrying media
/// until the new one is selected. On a relayed path that means keeping the
/// allocation with its permission and channel (a second allocation on the
/// same 5-tuple is refused with 437, RFC 8656 §7.2), on both sides: while
/// A's offer is held, after B restarted in answer, and once the new pair is
/// selected, media flows through coturn without a new allocation.
#[test]
fn relayed_path_carries_media_through_an_ice_restart() {
    let turn = Coturn::start(Auth::LongTerm {
        user: "u",
        pass: "p",
    });
    let mut p = RelayPair::new(&turn);
    assert!(
        p.until(|p| p.a.selected().is_some() && p.b.selected().is_some()),
        "no pair: {:?}",
        p.a_events
    );
    let (a_path, b_path) = (p.a.selected().unwrap(), p.b.selected().unwrap());
    assert!(a_path.relayed && b_path.relayed);
    p.media_flows(1).expect("before the restart");

    // A restarts; its new credentials and candidates do not reach B yet.
    p.hold_to_a = true;
    p.hold_to_b = true;
    p.a.restart(Instant::now()).unwrap();
    p.media_flows(2).expect("while A's restart is in flight");
    // B gets the offer and restarts too; its answer does not reach A yet.
    p.hold_to_b = false;
    assert!(p.until(|p| p.b_events.contains(&IceEvent::Restarting)));
    p.media_flows(3).expect("after B restarted");
    // Both sides select a pair of the new generation.
    let (a_seen, b_seen) = (p.a_events.len(), p.b_events.len());
    p.hold_to_a = false;
    let selected = |e: &[IceEvent]| e.iter().any(|e| matches!(e, IceEvent::Selected(_)));
    assert!(
        p.until(|p| selected(&p.a_events[a_seen..]) && selected(&p.b_events[b_seen..])),
        "no pair after the restart: {:?}",
        p.a_events
    );
    p.media_flows(4).expect("on the new pair");
    // The allocations carried over into the new generation.
    assert_eq!(p.a.selected().map(|s| s.local), Some(a_path.local));
    assert_eq!(p.b.selected().map(|s| s.local), Some(b_path.local));
    assert_eq!(
        turn.log_count("incoming packet ALLOCATE processed, success"),
        2,
        "an allocation was replaced"
    );
}

/// A restart renews an allocation whose permissions leave no room for
/// another generation of remote candidates (`rtc-turn` never drops one):
/// the old allocation is deleted (Refresh with LIFETIME 0) before a new one
/// is asked for on the same 5-tuple. coturn with `--stale-nonce=1` answers
/// the deletion 438 with a fresh nonce; it must be sent again (RFC 8489
/// §9.2.5), or the old allocation stays and the new Allocate is refused
/// (437). coturn also refuses an Allocate on the 5-tuple for a moment after
/// a deletion (437); the client asks again.
#[test]
fn deletion_refused_for_a_stale_nonce_is_sent_again() {
    use sotto_engine::ice::SignalMessage;
    let turn = Coturn::start_with(
        Auth::LongTerm {
            user: "u",
            pass: "p",
        },
        &["--stale-nonce=1"],
    );
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_nonblocking(true).unwrap();
    let local = sock.local_addr().unwrap();
    let mut s = IceSession::new(Instant::now(), relay_cfg(true, &turn), &[local]).unwrap();
    let mut failed = Vec::new();
    let mut step = |s: &mut IceSession| {
        pump(s, &sock);
        while let Some(e) = s.poll_event() {
            if let IceEvent::ServerFailed { reason, .. } = e {
                failed.push(reason);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let relayed = |s: &IceSession| {
        s.local_candidates()
            .into_iter()
            .find(|c| c.contains("typ relay"))
    };
    // A peer generation of `n` host candidates on 127.0.<g>.x: each asks
    // the relay for a permission.
    let generation = |s: &mut IceSession, g: u8, n: u8| {
        let ufrag = format!("peer{g}");
        let now = Instant::now();
        s.handle_signal(
            now,
            SignalMessage::Answer {
                ufrag: ufrag.clone(),
                pwd: "0123456789abcdefghijklmn".into(),
            },
        )
        .unwrap();
        for i in 1..=n {
            let candidate = format!("{i} 1 udp 2130706431 127.0.{g}.{i} 5000 typ host");
            let ufrag = ufrag.clone();
            s.handle_signal(now, SignalMessage::Candidate { ufrag, candidate })
                .unwrap();
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while relayed(&s).is_none() {
        assert!(Instant::now() < deadline, "no allocation");
        step(&mut s);
    }
    let first = relayed(&s).unwrap();
    // 32 permissions: room for one more full generation, so the first
    // restart keeps the allocation; 33 after it: the second renews it.
    generation(&mut s, 1, 32);
    step(&mut s);
    s.restart(Instant::now()).unwrap();
    generation(&mut s, 2, 1);
    // Let the nonce go stale, then restart.
    let stale = Instant::now() + Duration::from_secs(3);
    while Instant::now() < stale {
        step(&mut s);
    }
    assert_eq!(relayed(&s), Some(first.clone()), "renewed too early");
    s.restart(Instant::now()).unwrap();
    const ALLOCATED: &str = "incoming packet ALLOCATE processed, success";
    const DELETED: &str = "lifetime=0";
    while turn.log_count(ALLOCATED) < 2 || relayed(&s).is_none() {
        assert!(
            Instant::now() < deadline,
            "coturn deleted {} allocations, answered 438 to {} requests, allocated {} times; failures: {failed:?}\n{}",
            turn.log_count(DELETED),
            turn.log_count("438"),
            turn.log_count(ALLOCATED),
            turn.log()
        );
        step(&mut s);
    }
    assert!(turn.log_count("438") >= 1, "the nonce did not go stale");
    assert_eq!(turn.log_count(DELETED), 1, "the deletion was not accepted");
    assert_ne!(relayed(&s).unwrap(), first);
    assert!(failed.is_empty(), "{failed:?}");
}

/// A call that ends after its nonce went stale: coturn (`--stale-nonce=1`)
/// answers each deletion 438, and the transport, shut down, still reads
/// that answer and sends the deletion again, so no allocation outlives the
/// call (it would hold a relay port, and a slot of the user's quota, for
/// its lifetime).
#[tokio::test]
async fn a_call_that_ends_after_its_nonce_went_stale_still_deletes_its_allocations() {
    let turn = Coturn::start_with(
        Auth::LongTerm {
            user: "u",
            pass: "p",
        },
        &["--stale-nonce=1"],
    );
    let (sa, from_a, sb, from_b) = signalling();
    let bind: [SocketAddr; 1] = [(turn.addr.ip(), 0).into()];
    let a = TransportHandle::bind(&bind, relay_cfg(true, &turn), Box::new(sa))
        .await
        .unwrap();
    let b = TransportHandle::bind(&bind, relay_cfg(false, &turn), Box::new(sb))
        .await
        .unwrap();
    let mut call = Call::new(a, from_a, b, from_b);
    assert!(
        call.connect(Duration::from_secs(30)).await,
        "{:?}",
        call.a_events
    );
    // Idle past the nonce's second of life.
    call.run_until(Duration::from_secs(3), |_| false).await;
    let stale_before = turn.log_count("438");
    let Call { a, b, .. } = call;
    a.shutdown().await;
    b.shutdown().await;
    const DELETED: &str = "lifetime=0";
    // coturn writes its log on its own time: wait for it (a hang guard).
    let deadline = Instant::now() + Duration::from_secs(5);
    while turn.log_count(DELETED) < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        turn.log_count("438") > stale_before,
        "the deletions did not meet a stale nonce:\n{}",
        turn.log()
    );
    assert_eq!(
        turn.log_count(DELETED),
        2,
        "coturn did not take both deletions:\n{}",
        turn.log()
    );
}
