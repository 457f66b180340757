//! Peers on UDP port 5353, which `rtc-ice` takes for mDNS, through a TURN
//! relay: sotto-relay's sans-IO core in memory, with virtual time. A is
//! relay-only and its relayed address is on port 5353; B's only socket is
//! on port 5353. Each side's agent sees the other on that port, and A's
//! relay sends B's datagrams to it from that port.

mod relay_support;

use relay_support::CoreRelay;
use sotto_engine::ice::{IceConfig, IceSession, SelectedPath};
use sotto_engine::sim::{Datagram, SimRelay};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A (relay-only, one socket) and B (direct, one socket) and the relay,
/// delivering every datagram at once.
struct World {
    a: IceSession,
    b: IceSession,
    a_sock: SocketAddr,
    b_sock: SocketAddr,
    relay: CoreRelay,
    now: Instant,
    /// Media B's session handed back, and media A's queued, as delivered.
    media_at_b: Vec<Vec<u8>>,
    media_at_a: Vec<Vec<u8>>,
}

impl World {
    fn new() -> Self {
        let now = Instant::now();
        // Its first relayed socket is on port 5353.
        let relay = CoreRelay::new(now, 5353);
        let (a_sock, b_sock) = (sa("10.0.0.1:40000"), sa("10.0.0.2:5353"));
        let timing = |controlling| IceConfig {
            controlling,
            consent_interval: Duration::from_millis(500),
            consent_timeout: Duration::from_secs(2),
            auto_restart: false,
            ..IceConfig::default()
        };
        let a_cfg = IceConfig {
            relay_only: true,
            turn_servers: vec![relay.turn_server()],
            ..timing(true)
        };
        let a = IceSession::new(now, a_cfg, &[a_sock]).unwrap();
        let b = IceSession::new(now, timing(false), &[b_sock]).unwrap();
        Self {
            a,
            b,
            a_sock,
            b_sock,
            relay,
            now,
            media_at_b: Vec::new(),
            media_at_a: Vec::new(),
        }
    }

    fn flush(&mut self, out: &mut VecDeque<Datagram>) {
        loop {
            for (s, sock) in [(&mut self.a, self.a_sock), (&mut self.b, self.b_sock)] {
                while let Some(t) = s.poll_transmit() {
                    assert_eq!(t.local, sock);
                    out.push_back(Datagram {
                        from: t.local,
                        to: t.to,
                        data: t.data,
                    });
                }
            }
            let Some(d) = out.pop_front() else { break };
            if d.to == self.a_sock {
                let _ = self.a.handle_input(self.now, d.to, d.from, &d.data);
            } else if d.to == self.b_sock {
                if let Some(m) = self.b.handle_input(self.now, d.to, d.from, &d.data) {
                    self.media_at_b.push(m.to_vec());
                }
            } else if self.relay.owns(d.to) {
                let mut sent = Vec::new();
                self.relay.handle(self.now, d, &mut sent);
                out.extend(sent);
            }
            while let Some(m) = self.a.poll_media() {
                self.media_at_a.push(m);
            }
        }
    }

    fn step(&mut self, dt: Duration) {
        self.now += dt;
        let now = self.now;
        while let Some(m) = self.a.poll_signal() {
            self.b.handle_signal(now, m).unwrap();
        }
        while let Some(m) = self.b.poll_signal() {
            self.a.handle_signal(now, m).unwrap();
        }
        self.a.handle_timeout(now);
        self.b.handle_timeout(now);
        let mut sent = Vec::new();
        if self.relay.poll_timeout().is_some_and(|t| t <= now) {
            self.relay.handle_timeout(now, &mut sent);
        }
        self.flush(&mut sent.into());
    }
}

#[test]
fn peers_on_port_5353_connect_through_a_relay_and_carry_media_both_ways() {
    let mut w = World::new();
    // 10 s virtual, well past the consent timeout (2 s).
    for _ in 0..1000 {
        w.step(Duration::from_millis(10));
    }
    let relayed = sa("10.0.0.3:5353");
    let a_path = w.a.selected().expect("A connected");
    assert_eq!(
        a_path,
        SelectedPath {
            socket: w.a_sock,
            local: relayed,
            remote: w.b_sock,
            relayed: true,
        }
    );
    let b_path = w.b.selected().expect("B connected");
    assert_eq!((b_path.remote, b_path.relayed), (relayed, false));
    assert!(w.a.current_round_trip_time(w.now).is_some());
    assert!(w.b.current_round_trip_time(w.now).is_some());
    for n in 0..3u8 {
        let rtp = |from: u8| vec![0x80, 111, 0, n, 0, 0, 0, 0, 0, 0, 0, from, 9];
        w.a.send_media(w.now, &rtp(1)).unwrap();
        w.b.send_media(w.now, &rtp(2)).unwrap();
        w.step(Duration::from_millis(20));
        assert_eq!(w.media_at_b.pop(), Some(rtp(1)), "A to B");
        assert_eq!(w.media_at_a.pop(), Some(rtp(2)), "B to A");
    }
    assert_eq!(w.a.stats().relayed_unpermitted, 0);
    assert_eq!(w.a.stats().stun_rejected, 0);
    assert_eq!(w.b.stats().stun_rejected, 0);
    // Nothing sent to the relay was refused (a permission, a channel or
    // a Send indication for an address other than the peer's).
    let counts = *w.relay.counts().borrow();
    assert!(counts.drops.iter().all(|&d| d == 0), "{:?}", counts.drops);
    assert!(counts.c2p > 0);
}
