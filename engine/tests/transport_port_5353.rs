//! Peers on UDP port 5353, which `rtc-ice` takes for mDNS, through a TURN
//! relay: sotto-relay's sans-IO core in memory, with virtual time. A is
//! relay-only and its relayed address is on port 5353; B's only socket is
//! on port 5353. Each side's agent sees the other on that port, and A's
//! relay sends B's datagrams to it from that port.

use sotto_engine::ice::{IceConfig, IceSession, SelectedPath, TurnServer};
use sotto_relay::auth::{Credentials, Nonces};
use sotto_relay::core::{ClientId, Dest, Event as RelayEvent, Input, PEER_HEADROOM, Relay};
use sotto_relay::core::{Config as RelayConfig, RelayId, Transport};
use sotto_relay::policy::PeerPolicy;
use sotto_relay::shared::{Quotas, Shared};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const REALM: &str = "port5353.sotto";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A datagram in flight.
struct Datagram {
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

/// sotto-relay's core listening on 10.0.0.3:3478; relayed sockets are
/// bound on 10.0.0.3 from port 5353 up.
struct CoreRelay {
    core: Relay,
    server: SocketAddr,
    relayed: HashMap<SocketAddr, RelayId>,
    next_port: u16,
}

impl CoreRelay {
    fn new(t0: Instant) -> Self {
        let mut users = Credentials::new();
        users.add_user("user", REALM, "secret");
        let shared = Shared::new(users, Nonces::new([7; 32], 600), Quotas::new(16, 16));
        let mut cfg = RelayConfig::new(REALM, t0, 1_800_000_000);
        // The hosts live in 10/8, which the default policy refuses.
        cfg.policy = PeerPolicy::new(vec!["10.0.0.0/8".parse().unwrap()], vec![]);
        Self {
            core: Relay::new(cfg, Arc::new(shared)),
            server: sa("10.0.0.3:3478"),
            relayed: HashMap::new(),
            next_port: 5353,
        }
    }

    fn turn_server(&self) -> TurnServer {
        TurnServer {
            addr: self.server,
            username: "user".into(),
            password: "secret".into(),
            realm: String::new(),
        }
    }

    fn owns(&self, addr: SocketAddr) -> bool {
        addr == self.server || self.relayed.contains_key(&addr)
    }

    fn datagram(&self, dest: Dest, data: Vec<u8>) -> Option<Datagram> {
        Some(match dest {
            Dest::Client(c) => Datagram {
                from: self.server,
                to: c.remote,
                data,
            },
            Dest::Peer { relay, addr } => Datagram {
                from: self.core.relayed_addr(relay)?,
                to: addr,
                data,
            },
        })
    }

    fn drain(&mut self, now: Instant, out: &mut VecDeque<Datagram>) {
        while let Some(e) = self.core.poll_event() {
            match e {
                RelayEvent::BindRelay { relay, .. } => {
                    let addr = SocketAddr::from(([10, 0, 0, 3], self.next_port));
                    self.next_port += 1;
                    self.relayed.insert(addr, relay);
                    self.core.relay_bound(now, relay, Some(addr));
                }
                RelayEvent::Closed { relay } => self.relayed.retain(|_, r| *r != relay),
                RelayEvent::Unreserve { .. } => {}
            }
        }
        while let Some(t) = self.core.poll_transmit() {
            out.extend(self.datagram(t.dest, t.data));
        }
    }

    fn handle(&mut self, now: Instant, d: Datagram, out: &mut VecDeque<Datagram>) {
        let forwarded = if d.to == self.server {
            let client = ClientId {
                transport: Transport::Udp,
                listener: 0,
                remote: d.from,
            };
            let input = Input::Client {
                client,
                data: &d.data,
            };
            let f = self.core.handle_input(now, input).ok().flatten();
            f.map(|f| (f.dest, d.data[f.range].to_vec()))
        } else if let Some(&relay) = self.relayed.get(&d.to) {
            let mut buf = vec![0; PEER_HEADROOM];
            buf.extend_from_slice(&d.data);
            let input = Input::Peer {
                relay,
                from: d.from,
                data: &mut buf,
            };
            let f = self.core.handle_input(now, input).ok().flatten();
            f.map(|f| {
                let mut v = buf[f.range].to_vec();
                v.resize(v.len() + f.pad, 0);
                (f.dest, v)
            })
        } else {
            None
        };
        if let Some((dest, data)) = forwarded {
            out.extend(self.datagram(dest, data));
        }
        self.drain(now, out);
    }

    fn handle_timeout(&mut self, now: Instant, out: &mut VecDeque<Datagram>) {
        if self.core.poll_timeout().is_some_and(|t| t <= now) {
            self.core.handle_timeout(now);
        }
        self.drain(now, out);
    }
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
        let relay = CoreRelay::new(now);
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
                self.relay.handle(self.now, d, out);
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
        let mut out = VecDeque::new();
        self.relay.handle_timeout(now, &mut out);
        self.flush(&mut out);
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
    assert_eq!(w.relay.core.stats().drops, [0; 7]);
    assert!(w.relay.core.stats().c2p_packets > 0);
}
