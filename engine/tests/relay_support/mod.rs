//! sotto-relay's sans-IO core as an in-memory TURN relay for tests in
//! virtual time: it listens on 10.0.0.3:3478 and binds relayed sockets on
//! 10.0.0.3 from a given port up. It plugs into the simulator
//! ([`SimRelay`]) and serves tests that move datagrams themselves.
#![allow(dead_code)]

use sotto_engine::ice::TurnServer;
use sotto_engine::sim::{Datagram, SimRelay};
use sotto_relay::auth::{Credentials, Nonces};
use sotto_relay::core::{ClientId, Dest, Event as RelayEvent, Input, PEER_HEADROOM, Relay};
use sotto_relay::core::{Config as RelayConfig, RelayId, Transport};
use sotto_relay::policy::PeerPolicy;
use sotto_relay::shared::{Quotas, Shared};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

const REALM: &str = "sim.sotto";

/// What the relay did, shared with the test.
#[derive(Debug, Default, Clone, Copy)]
pub struct RelayCounts {
    /// Allocations the core created.
    pub allocations: u64,
    /// Datagrams it relayed client to peer and peer to client.
    pub c2p: u64,
    pub p2c: u64,
    /// Datagrams it dropped, by `DropReason::index`.
    pub drops: [u64; sotto_relay::core::DropReason::ALL.len()],
}

/// The relay host.
pub struct CoreRelay {
    core: Relay,
    server: SocketAddr,
    relayed: HashMap<SocketAddr, RelayId>,
    next_port: u16,
    counts: Rc<RefCell<RelayCounts>>,
}

impl CoreRelay {
    /// A relay whose first relayed socket is on `first_port`.
    pub fn new(t0: Instant, first_port: u16) -> Self {
        // The simulated hosts live in 10/8, which the default policy refuses.
        let policy = PeerPolicy::new(vec!["10.0.0.0/8".parse().unwrap()], vec![]);
        Self::with_policy(t0, first_port, policy)
    }

    /// As [`Self::new`], with `policy` deciding which peers it relays to.
    pub fn with_policy(t0: Instant, first_port: u16, policy: PeerPolicy) -> Self {
        let mut users = Credentials::new();
        users.add_user("sim", REALM, "secret");
        let shared = Shared::new(users, Nonces::new([7; 32], 600), Quotas::new(16, 16));
        let mut cfg = RelayConfig::new(REALM, t0, 1_800_000_000);
        cfg.policy = policy;
        Self {
            core: Relay::new(cfg, Arc::new(shared)),
            server: "10.0.0.3:3478".parse().unwrap(),
            relayed: HashMap::new(),
            next_port: first_port,
            counts: Rc::default(),
        }
    }

    /// What it did so far, updated as it works (also once the simulator
    /// owns it).
    pub fn counts(&self) -> Rc<RefCell<RelayCounts>> {
        Rc::clone(&self.counts)
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

    /// Binds requested relayed sockets, then collects control answers.
    fn drain(&mut self, now: Instant, out: &mut Vec<Datagram>) {
        while let Some(e) = self.core.poll_event() {
            match e {
                RelayEvent::BindRelay { relay, .. } => {
                    let addr = SocketAddr::from(([10, 0, 0, 3], self.next_port));
                    self.next_port += 1;
                    self.relayed.insert(addr, relay);
                    self.core.relay_bound(now, relay, Some(addr));
                }
                RelayEvent::Closed { relay } => self.relayed.retain(|_, r| *r != relay),
                // The engine's TURN client reserves no ports.
                RelayEvent::Unreserve { .. } => {}
            }
        }
        while let Some(t) = self.core.poll_transmit() {
            out.extend(self.datagram(t.dest, t.data));
        }
        let s = self.core.stats();
        *self.counts.borrow_mut() = RelayCounts {
            allocations: s.allocations_created,
            c2p: s.c2p_packets,
            p2c: s.p2c_packets,
            drops: s.drops,
        };
    }
}

impl SimRelay for CoreRelay {
    fn turn_server(&self) -> TurnServer {
        TurnServer {
            addr: self.server,
            username: "sim".into(),
            password: "secret".into(),
            realm: String::new(),
        }
    }

    fn owns(&self, addr: SocketAddr) -> bool {
        addr == self.server || self.relayed.contains_key(&addr)
    }

    fn handle(&mut self, now: Instant, d: Datagram, out: &mut Vec<Datagram>) {
        // The fast path answers with a byte range of the input to forward.
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
                // A Data indication's padding follows the payload.
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

    fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Datagram>) {
        self.core.handle_timeout(now);
        self.drain(now, out);
    }
}
