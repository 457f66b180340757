//! Tests of the allocation core with a scripted client in virtual time.

use super::*;
use crate::auth::{Credentials, Nonces, rest_password};
use crate::shared::Quotas;

const REALM: &str = "sotto.test";
const UNIX0: u64 = 1_800_000_000;

struct Harness {
    relay: Relay,
    now: Instant,
    client: ClientId,
    nonce: String,
    user: String,
    key: Key,
    next_tid: u8,
    relayed: Option<RelayId>,
    /// Every [`Event::BindRelay`] answered so far.
    binds: Vec<Event>,
    /// The relayed address the (simulated) driver binds.
    bind_addr: SocketAddr,
    /// Every other event seen while answering requests.
    events: Vec<Event>,
}

fn shared(max_total: usize, per_user: usize) -> Arc<Shared> {
    Arc::new(state(max_total, per_user))
}

fn state(max_total: usize, per_user: usize) -> Shared {
    let mut c = Credentials::new();
    c.add_user("alice", REALM, "pw");
    c.add_user("bob", REALM, "pw");
    c.add_secret("old-secret").unwrap();
    c.add_secret("s3cret").unwrap();
    Shared::new(
        c,
        Nonces::new([9; 32], 600),
        Quotas::new(max_total, per_user),
    )
}

impl Harness {
    fn new() -> Self {
        Self::with(shared(100, 10), |_| {})
    }

    fn with(shared: Arc<Shared>, tweak: impl FnOnce(&mut Config)) -> Self {
        let now = Instant::now();
        let mut config = Config::new(REALM, now, UNIX0);
        config.policy.allow_loopback();
        tweak(&mut config);
        Harness {
            relay: Relay::new(config, shared),
            now,
            client: ClientId {
                transport: Transport::Udp,
                listener: 0,
                remote: "192.0.2.50:5000".parse().unwrap(),
            },
            nonce: String::new(),
            user: "alice".into(),
            key: Key::derive("alice", REALM, "pw"),
            next_tid: 0,
            relayed: None,
            binds: Vec::new(),
            bind_addr: "127.0.0.1:50000".parse().unwrap(),
            events: Vec::new(),
        }
    }

    fn tid(&mut self) -> [u8; 12] {
        self.next_tid += 1;
        [self.next_tid; 12]
    }

    fn send(&mut self, data: &[u8]) -> Result<Option<Forward>, DropReason> {
        self.relay.handle_input(
            self.now,
            Input::Client {
                client: self.client,
                data,
            },
        )
    }

    /// Sends a request built by `f` (authenticated if `auth`), returns the answer.
    fn request(&mut self, m: u16, auth: bool, f: impl FnOnce(&mut Builder)) -> Vec<u8> {
        let tid = self.tid();
        let mut b = Builder::new(m, Class::Request, tid);
        f(&mut b);
        if auth {
            b.attr(attr::USERNAME, self.user.as_bytes())
                .attr(attr::REALM, REALM.as_bytes())
                .attr(attr::NONCE, self.nonce.as_bytes())
                .integrity(Integrity::Sha1, &self.key.0);
        }
        let req = b.finish_with_fingerprint();
        assert_eq!(self.send(&req), Ok(None));
        self.bind_pending();
        let out = self.relay.poll_transmit().expect("an answer");
        assert_eq!(out.dest, Dest::Client(self.client));
        let m = Message::parse(&out.data).unwrap();
        assert_eq!(m.transaction_id, tid);
        if let Some(n) = m.get_str(attr::NONCE).unwrap() {
            self.nonce = n.to_owned();
        }
        out.data
    }

    fn bind_pending(&mut self) {
        while let Some(ev) = self.relay.poll_event() {
            if let Event::BindRelay { relay, .. } = ev {
                self.relay
                    .relay_bound(self.now, relay, Some(self.bind_addr));
                self.relayed = Some(relay);
                self.binds.push(ev);
            } else {
                self.events.push(ev);
            }
        }
    }

    fn allocate(&mut self) -> Vec<u8> {
        let first = self.request(method::ALLOCATE, false, |b| {
            b.u32(attr::REQUESTED_TRANSPORT, 17 << 24);
        });
        assert_eq!(code(&first), Some(401));
        self.request(method::ALLOCATE, true, |b| {
            b.u32(attr::REQUESTED_TRANSPORT, 17 << 24);
        })
    }

    fn channel_bind(&mut self, ch: u16, peer: SocketAddr) -> Vec<u8> {
        self.request(method::CHANNEL_BIND, true, |b| {
            b.u32(attr::CHANNEL_NUMBER, u32::from(ch) << 16)
                .xor_addr(attr::XOR_PEER_ADDRESS, peer);
        })
    }

    fn create_permission(&mut self, peer: IpAddr) -> Vec<u8> {
        self.request(method::CREATE_PERMISSION, true, |b| {
            b.xor_addr(attr::XOR_PEER_ADDRESS, SocketAddr::new(peer, 0));
        })
    }

    fn peer_datagram(
        &mut self,
        from: SocketAddr,
        payload: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<Option<Forward>, DropReason> {
        buf.clear();
        buf.extend_from_slice(&[0; PEER_HEADROOM]);
        buf.extend_from_slice(payload);
        self.relay.handle_input(
            self.now,
            Input::Peer {
                relay: self.relayed.unwrap(),
                from,
                data: buf,
            },
        )
    }
}

fn code(raw: &[u8]) -> Option<u16> {
    let m = Message::parse(raw).unwrap();
    if m.class == Class::Success {
        return None;
    }
    let e = m.get(attr::ERROR_CODE).expect("error code");
    Some(u16::from(e.value[2]) * 100 + u16::from(e.value[3]))
}

const PEER: &str = "127.0.0.1:7000";

#[test]
fn allocate_bind_and_relay_both_ways() {
    let mut h = Harness::new();
    let ok = h.allocate();
    assert_eq!(code(&ok), None);
    let m = Message::parse(&ok).unwrap();
    assert_eq!(m.check_integrity(&h.key.0), Some(Integrity::Sha1));
    assert_eq!(
        m.get_xor_addr(attr::XOR_RELAYED_ADDRESS).unwrap(),
        Some("127.0.0.1:50000".parse().unwrap())
    );
    assert_eq!(
        m.get_xor_addr(attr::XOR_MAPPED_ADDRESS).unwrap(),
        Some(h.client.remote)
    );
    assert_eq!(m.get_u32(attr::LIFETIME).unwrap(), Some(600));
    assert_eq!(h.relay.allocations(), 1);

    let peer: SocketAddr = PEER.parse().unwrap();
    // No permission yet: ChannelData is dropped, peer data too.
    assert_eq!(
        h.send(&[0x40, 0x00, 0, 1, 7, 0, 0, 0]),
        Err(DropReason::NoChannel)
    );
    let mut buf = Vec::new();
    assert_eq!(
        h.peer_datagram(peer, b"hi", &mut buf),
        Err(DropReason::NoPermission)
    );

    assert_eq!(code(&h.channel_bind(0x4001, peer)), None);
    let f = h
        .send(&[0x40, 0x01, 0, 3, b'a', b'b', b'c', 0])
        .unwrap()
        .unwrap();
    assert_eq!(f.range, 4..7);
    assert_eq!(
        f.dest,
        Dest::Peer {
            relay: h.relayed.unwrap(),
            addr: peer
        }
    );

    let f = h.peer_datagram(peer, b"pong", &mut buf).unwrap().unwrap();
    assert_eq!(f.dest, Dest::Client(h.client));
    assert_eq!(&buf[f.range], &[0x40, 0x01, 0, 4, b'p', b'o', b'n', b'g']);

    // A permitted peer without a channel gets a Data indication, built in
    // the headroom (nothing queued on the control path).
    let other: SocketAddr = "127.0.0.1:7001".parse().unwrap();
    let f = h.peer_datagram(other, b"x", &mut buf).unwrap().unwrap();
    assert_eq!(f.dest, Dest::Client(h.client));
    assert!(h.relay.poll_transmit().is_none());
    let mut sent = buf[f.range].to_vec();
    sent.resize(sent.len() + f.pad, 0);
    let m = Message::parse(&sent).unwrap();
    assert_eq!((m.method, m.class), (method::DATA, Class::Indication));
    assert_eq!(m.get_xor_addr(attr::XOR_PEER_ADDRESS).unwrap(), Some(other));
    assert_eq!(m.get(attr::DATA).unwrap().value, b"x");

    // Send indication to the peer.
    let mut b = Builder::new(method::SEND, Class::Indication, [1; 12]);
    b.xor_addr(attr::XOR_PEER_ADDRESS, peer)
        .attr(attr::DATA, b"hello");
    let ind = b.finish();
    let f = h.send(&ind).unwrap().unwrap();
    assert_eq!(&ind[f.range], b"hello");

    let s = h.relay.stats();
    assert_eq!(
        (s.c2p_packets, s.c2p_bytes, s.p2c_packets, s.p2c_bytes),
        (2, 8, 2, 5)
    );
}

#[test]
fn permissions_and_channels_expire() {
    let mut h = Harness::new();
    h.allocate();
    let peer: SocketAddr = PEER.parse().unwrap();
    assert_eq!(code(&h.channel_bind(0x4000, peer)), None);
    h.now += Duration::from_secs(301);
    h.relay.handle_timeout(h.now);
    // Permission (300 s) is gone although the channel (600 s) is not.
    assert_eq!(
        h.send(&[0x40, 0, 0, 1, 1, 0, 0, 0]),
        Err(DropReason::NoPermission)
    );
    h.now += Duration::from_secs(300);
    h.relay.handle_timeout(h.now);
    // The allocation itself (600 s) has expired too.
    assert_eq!(h.relay.allocations(), 0);
    assert!(matches!(h.relay.poll_event(), Some(Event::Closed { .. })));
}

#[test]
fn wrong_password_is_401_and_counted() {
    let mut h = Harness::new();
    h.allocate();
    h.key = Key::derive("alice", REALM, "not-pw");
    let r = h.request(method::REFRESH, true, |_| {});
    assert_eq!(code(&r), Some(401));
    assert_eq!(h.relay.stats().auth_failures, 1);
    // No MESSAGE-INTEGRITY on an answer we could not key.
    assert!(
        Message::parse(&r)
            .unwrap()
            .get(attr::MESSAGE_INTEGRITY)
            .is_none()
    );
}

#[test]
fn stale_nonce_is_438_with_a_fresh_nonce() {
    let mut h = Harness::new();
    h.allocate();
    let old = h.nonce.clone();
    h.now += Duration::from_secs(601);
    let r = h.request(method::REFRESH, true, |_| {});
    assert_eq!(code(&r), Some(438));
    assert_ne!(h.nonce, old);
    let r = h.request(method::REFRESH, true, |_| {});
    assert_eq!(code(&r), None);
}

#[test]
fn refresh_zero_deletes_and_other_user_is_441() {
    let mut h = Harness::new();
    h.allocate();
    h.user = "bob".into();
    h.key = Key::derive("bob", REALM, "pw");
    assert_eq!(code(&h.request(method::REFRESH, true, |_| {})), Some(441));
    h.user = "alice".into();
    h.key = Key::derive("alice", REALM, "pw");
    let r = h.request(method::REFRESH, true, |b| {
        b.u32(attr::LIFETIME, 0);
    });
    assert_eq!(code(&r), None);
    assert_eq!(h.relay.allocations(), 0);
    assert_eq!(code(&h.request(method::REFRESH, true, |_| {})), Some(437));
}

#[test]
fn denied_peers_get_403() {
    let mut h = Harness::with(shared(10, 10), |_| {});
    h.allocate();
    for p in ["10.0.0.1:80", "169.254.169.254:80", "192.168.0.1:80"] {
        let peer: SocketAddr = p.parse().unwrap();
        let r = h.request(method::CREATE_PERMISSION, true, |b| {
            b.xor_addr(attr::XOR_PEER_ADDRESS, peer);
        });
        assert_eq!(code(&r), Some(403), "{p}");
    }
    assert_eq!(h.relay.stats().denied_peers, 3);
    let r = h.channel_bind(0x4000, "[2001:db8::1]:80".parse().unwrap());
    assert_eq!(code(&r), Some(443));
    let mut strict = Harness::with(shared(10, 10), |c| c.policy = PeerPolicy::default());
    strict.allocate();
    assert_eq!(
        code(&strict.channel_bind(0x4000, PEER.parse().unwrap())),
        Some(403)
    );
}

#[test]
fn quotas_give_486() {
    let s = shared(10, 1);
    let mut a = Harness::with(s.clone(), |_| {});
    assert_eq!(code(&a.allocate()), None);
    let mut b = Harness::with(s.clone(), |_| {});
    b.client.remote = "192.0.2.51:5000".parse().unwrap();
    assert_eq!(code(&b.allocate()), Some(486));
    // Deleting the first frees the slot.
    a.request(method::REFRESH, true, |b| {
        b.u32(attr::LIFETIME, 0);
    });
    assert_eq!(
        code(&b.request(method::ALLOCATE, true, |b| {
            b.u32(attr::REQUESTED_TRANSPORT, 17 << 24);
        })),
        None
    );
    assert_eq!(s.quotas.total(), 1);
}

#[test]
fn rest_credentials_expire_for_the_life_of_the_allocation() {
    let mut h = Harness::new();
    let expiry = UNIX0 + 100;
    h.user = format!("{expiry}:carol");
    let password = rest_password("s3cret", &h.user);
    h.key = Key::derive(&h.user, REALM, &password);
    let ok = h.allocate();
    assert_eq!(code(&ok), None);
    // Lifetime is capped by the credential expiry.
    assert_eq!(
        Message::parse(&ok)
            .unwrap()
            .get_u32(attr::LIFETIME)
            .unwrap(),
        Some(100)
    );
    h.now += Duration::from_secs(50);
    assert_eq!(code(&h.request(method::REFRESH, true, |_| {})), None);
    h.now += Duration::from_secs(51);
    assert_eq!(code(&h.request(method::REFRESH, true, |_| {})), Some(401));
    // An expired username cannot allocate either.
    let mut late = Harness::new();
    late.now += Duration::from_secs(200);
    late.user = h.user.clone();
    late.key = h.key.clone();
    assert_eq!(code(&late.allocate()), Some(401));
}

/// signald mints `<now+ttl>:<user>` on every credential fetch: all of one
/// user's REST usernames share one quota, while static users keep theirs.
#[test]
fn rest_quota_is_per_user_not_per_username() {
    let s = shared(10, 1);
    let rest = |h: &mut Harness, expiry: u64, user: &str| {
        h.user = format!("{expiry}:{user}");
        h.key = Key::derive(&h.user, REALM, &rest_password("s3cret", &h.user));
    };
    let mut first = Harness::with(s.clone(), |_| {});
    rest(&mut first, UNIX0 + 1000, "carol");
    assert_eq!(code(&first.allocate()), None);
    let mut refetched = Harness::with(s.clone(), |_| {});
    refetched.client.remote = "192.0.2.51:5000".parse().unwrap();
    rest(&mut refetched, UNIX0 + 1001, "carol");
    assert_eq!(code(&refetched.allocate()), Some(486));
    // Another REST user, and a static user, have quotas of their own.
    let mut other = Harness::with(s.clone(), |_| {});
    other.client.remote = "192.0.2.52:5000".parse().unwrap();
    rest(&mut other, UNIX0 + 1001, "dave");
    assert_eq!(code(&other.allocate()), None);
    let mut alice = Harness::with(s.clone(), |_| {});
    alice.client.remote = "192.0.2.53:5000".parse().unwrap();
    assert_eq!(code(&alice.allocate()), None);
    // Deleting carol's first allocation frees carol's slot.
    first.request(method::REFRESH, true, |b| {
        b.u32(attr::LIFETIME, 0);
    });
    let again = refetched.request(method::ALLOCATE, true, |b| {
        b.u32(attr::REQUESTED_TRANSPORT, 17 << 24);
    });
    assert_eq!(code(&again), None);
    assert_eq!(s.quotas.total(), 3);
}

#[test]
fn rest_old_secret_still_works_during_rotation() {
    let mut h = Harness::new();
    h.user = format!("{}:dave", UNIX0 + 1000);
    h.key = Key::derive(&h.user, REALM, &rest_password("old-secret", &h.user));
    assert_eq!(code(&h.allocate()), None);
}

#[test]
fn allocate_with_lifetime_zero_gets_the_default() {
    let mut h = Harness::new();
    h.request(method::ALLOCATE, false, |_| {});
    let ok = h.request(method::ALLOCATE, true, |b| {
        b.u32(attr::REQUESTED_TRANSPORT, 17 << 24)
            .u32(attr::LIFETIME, 0);
    });
    assert_eq!(
        code(&ok),
        None,
        "RFC 8656 §7.2: below the minimum, use the default"
    );
    let m = Message::parse(&ok).unwrap();
    assert_eq!(m.get_u32(attr::LIFETIME).unwrap(), Some(600));
    assert_eq!(h.relay.allocations(), 1);
}

/// The 401 challenge has a fixed size whatever the request's: ERROR-CODE,
/// REALM, a 29-byte nonce and PASSWORD-ALGORITHMS (RFC 8489 §9.2). For the
/// smallest request (a bare 20-byte header) that is more than 4x, so what
/// bounds reflection is its fixed size and the per-IP rate limit, not a
/// ratio to the request.
#[test]
fn unauthenticated_answers_have_a_fixed_size_and_are_rate_limited() {
    let mut h = Harness::with(shared(10, 10), |c| c.unauth_per_ip_per_s = 5);
    let bare = Builder::new(method::ALLOCATE, Class::Request, [1; 12]).finish();
    assert_eq!(bare.len(), stun::HEADER_LEN);
    let mut b = Builder::new(method::ALLOCATE, Class::Request, [2; 12]);
    b.u32(attr::REQUESTED_TRANSPORT, 17 << 24);
    let req = b.finish();
    let padded = |n: usize| 4 + n.div_ceil(4) * 4;
    let challenge = stun::HEADER_LEN
        + padded(4) // ERROR-CODE 401, empty reason
        + padded(REALM.len())
        + padded(crate::auth::NONCE_COOKIE.len() + 16)
        + padded(8); // PASSWORD-ALGORITHMS: MD5, SHA-256
    for r in [&bare, &req] {
        assert_eq!(h.send(r), Ok(None));
        let t = h.relay.poll_transmit().unwrap();
        assert_eq!(t.data.len(), challenge, "for a {}-byte request", r.len());
    }
    let mut answered = 2;
    for _ in 0..18 {
        if h.send(&req).is_ok() {
            h.relay.poll_transmit().unwrap();
            answered += 1;
        }
    }
    assert_eq!(answered, 10); // burst of twice the rate
    assert_eq!(h.relay.stats().drops[DropReason::RateLimited.index()], 10);
    h.now += Duration::from_secs(1);
    assert!(h.send(&req).is_ok());
}

#[test]
fn bad_requests() {
    let mut h = Harness::new();
    h.allocate();
    // Channel number out of range.
    assert_eq!(
        code(&h.channel_bind(0x8000, PEER.parse().unwrap())),
        Some(400)
    );
    // Unknown comprehension-required attribute.
    let r = h.request(method::REFRESH, true, |b| {
        b.attr(0x0777, b"x");
    });
    assert_eq!(code(&r), Some(420));
    // UDP only.
    h.client.remote = "192.0.2.60:1".parse().unwrap();
    h.nonce.clear();
    h.request(method::ALLOCATE, false, |_| {});
    let r = h.request(method::ALLOCATE, true, |b| {
        b.u32(attr::REQUESTED_TRANSPORT, 6 << 24);
    });
    assert_eq!(code(&r), Some(442));
    // A second Allocate on the same 5-tuple.
    let r = h.request(method::ALLOCATE, true, |b| {
        b.u32(attr::REQUESTED_TRANSPORT, 17 << 24);
    });
    assert_eq!(code(&r), None);
    let r = h.request(method::ALLOCATE, true, |b| {
        b.u32(attr::REQUESTED_TRANSPORT, 17 << 24);
    });
    assert_eq!(code(&r), Some(437));
}

#[test]
fn failed_bind_answers_508_and_frees_quota() {
    let s = shared(10, 10);
    let mut h = Harness::with(s.clone(), |_| {});
    h.request(method::ALLOCATE, false, |_| {});
    let tid = h.tid();
    let mut b = Builder::new(method::ALLOCATE, Class::Request, tid);
    b.u32(attr::REQUESTED_TRANSPORT, 17 << 24)
        .attr(attr::USERNAME, b"alice")
        .attr(attr::REALM, REALM.as_bytes())
        .attr(attr::NONCE, h.nonce.as_bytes())
        .integrity(Integrity::Sha1, &h.key.0);
    h.send(&b.finish()).unwrap();
    let Some(Event::BindRelay { relay, .. }) = h.relay.poll_event() else {
        panic!("no bind request")
    };
    h.relay.relay_bound(h.now, relay, None);
    assert_eq!(code(&h.relay.poll_transmit().unwrap().data), Some(508));
    assert_eq!(s.quotas.total(), 0);
}

#[test]
fn random_input_never_panics() {
    use proptest::prelude::*;
    let mut h = Harness::new();
    h.allocate();
    h.channel_bind(0x4000, PEER.parse().unwrap());
    let h = std::cell::RefCell::new(h);
    proptest!(ProptestConfig::with_cases(2000), |(data in proptest::collection::vec(any::<u8>(), 0..200))| {
        crate::fuzz_input(&data);
        let mut h = h.borrow_mut();
        let _ = h.send(&data);
        let mut buf = data.clone();
        let (now, relay) = (h.now, h.relayed.unwrap());
        let _ = h.relay.handle_input(now, Input::Peer { relay, from: PEER.parse().unwrap(), data: &mut buf });
        while h.relay.poll_transmit().is_some() {}
    });
}

#[test]
fn even_port_reservation_token_round_trip() {
    let mut h = Harness::new();
    h.request(method::ALLOCATE, false, |_| {});
    let tid = h.tid();
    let mut b = Builder::new(method::ALLOCATE, Class::Request, tid);
    b.u32(attr::REQUESTED_TRANSPORT, 17 << 24)
        .attr(attr::EVEN_PORT, &[0x80])
        .attr(attr::USERNAME, b"alice")
        .attr(attr::REALM, REALM.as_bytes())
        .attr(attr::NONCE, h.nonce.as_bytes())
        .integrity(Integrity::Sha1, &h.key.0);
    h.send(&b.finish()).unwrap();
    let Some(Event::BindRelay {
        relay,
        even_port: true,
        reservation: Reservation::ReserveNext(token),
        ..
    }) = h.relay.poll_event()
    else {
        panic!("expected a reserving bind")
    };
    h.relay
        .relay_bound(h.now, relay, Some("127.0.0.1:50000".parse().unwrap()));
    let ok = h.relay.poll_transmit().unwrap().data;
    let m = Message::parse(&ok).unwrap();
    assert_eq!(m.get(attr::RESERVATION_TOKEN).unwrap().value, token);
    // A second client redeems it once.
    let mut other = Harness::with(h.relay.shared.clone(), |_| {});
    other.client.remote = "192.0.2.99:6000".parse().unwrap();
    other.request(method::ALLOCATE, false, |_| {});
    let redeem = |o: &mut Harness| {
        o.request(method::ALLOCATE, true, |b| {
            b.u32(attr::REQUESTED_TRANSPORT, 17 << 24)
                .attr(attr::RESERVATION_TOKEN, &token);
        })
    };
    assert_eq!(code(&redeem(&mut other)), None);
    other.client.remote = "192.0.2.99:6001".parse().unwrap();
    other.nonce.clear();
    other.request(method::ALLOCATE, false, |_| {});
    assert_eq!(code(&redeem(&mut other)), Some(508));
}

/// An Allocate asking for a port pair (EVEN-PORT with R); returns the
/// answer and the RESERVATION-TOKEN it carries, if any.
fn allocate_pair(h: &mut Harness, family: u8) -> (Vec<u8>, Option<[u8; 8]>) {
    let r = h.request(method::ALLOCATE, true, |b| {
        b.u32(attr::REQUESTED_TRANSPORT, 17 << 24)
            .u32(attr::REQUESTED_ADDRESS_FAMILY, u32::from(family) << 24)
            .attr(attr::EVEN_PORT, &[0x80]);
    });
    let token = Message::parse(&r)
        .unwrap()
        .get(attr::RESERVATION_TOKEN)
        .map(|t| t.value.try_into().unwrap());
    (r, token)
}

/// Allocate with EVEN-PORT (R) then Refresh 0, over and over: each cycle
/// leaves a port held. Held ports count against the user's quota, and end
/// on the core's timer when they expire, freeing the quota and the port.
#[test]
fn reservations_count_against_the_quota_and_expire_on_the_timer() {
    let s = shared(100, 3);
    let mut h = Harness::with(s.clone(), |_| {});
    h.request(method::ALLOCATE, false, |_| {});
    let delete = |h: &mut Harness| {
        let r = h.request(method::REFRESH, true, |b| {
            b.u32(attr::LIFETIME, 0);
        });
        assert_eq!(code(&r), None);
    };
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let (r, token) = allocate_pair(&mut h, 1);
        assert_eq!(code(&r), None);
        tokens.push(token.unwrap());
        delete(&mut h);
    }
    assert_eq!((s.quotas.total(), s.reservations()), (2, 2));
    // The third pair would be a fourth slot: refused, and nothing leaks.
    assert_eq!(code(&allocate_pair(&mut h, 1).0), Some(486));
    assert_eq!((s.quotas.total(), s.reservations()), (2, 2));
    // A lone allocation still fits in the one slot left.
    assert_eq!(code(&h.allocate()), None);
    delete(&mut h);
    // No allocation is left, yet the timer runs for the held ports.
    assert_eq!(h.relay.allocations(), 0);
    let due = h
        .relay
        .poll_timeout()
        .expect("a timer while ports are held");
    h.now += crate::shared::RESERVATION_LIFETIME;
    assert!(due <= h.now);
    h.relay.handle_timeout(h.now);
    let mut released = Vec::new();
    while let Some(ev) = h.relay.poll_event() {
        if let Event::Unreserve { token } = ev {
            released.push(token);
        }
    }
    assert_eq!(released, tokens);
    assert_eq!((s.quotas.total(), s.reservations()), (0, 0));
    h.nonce.clear();
    h.request(method::ALLOCATE, false, |_| {});
    assert_eq!(code(&allocate_pair(&mut h, 1).0), None);
}

/// A core that goes away (a TCP/TLS connection closing) ends the
/// reservations it made: nothing would expire them later.
#[test]
fn a_closing_core_releases_its_reservations() {
    let s = shared(100, 10);
    let mut h = Harness::with(s.clone(), |_| {});
    h.request(method::ALLOCATE, false, |_| {});
    let token = allocate_pair(&mut h, 1).1.unwrap();
    h.relay.client_gone(h.client);
    h.relay.release_reservations();
    let events: Vec<Event> = std::iter::from_fn(|| h.relay.poll_event()).collect();
    assert!(events.contains(&Event::Unreserve { token }), "{events:?}");
    assert_eq!((s.quotas.total(), s.reservations()), (0, 0));
}

/// RFC 8656 §7.2: the allocation that redeems a token gets the reserved
/// port's family; an IPv6 reservation used to come back as IPv4.
#[test]
fn a_redeemed_reservation_keeps_its_family() {
    let mut h = Harness::new();
    h.request(method::ALLOCATE, false, |_| {});
    let (r, token) = allocate_pair(&mut h, 2);
    assert_eq!(code(&r), None);
    let token = token.unwrap();
    assert!(matches!(
        h.binds.last(),
        Some(Event::BindRelay { family: Family::V6, reservation: Reservation::ReserveNext(t), .. }) if *t == token
    ));
    let mut other = Harness::with(h.relay.shared.clone(), |_| {});
    other.client.remote = "192.0.2.99:6000".parse().unwrap();
    other.request(method::ALLOCATE, false, |_| {});
    let with_family = other.request(method::ALLOCATE, true, |b| {
        b.u32(attr::REQUESTED_TRANSPORT, 17 << 24)
            .u32(attr::REQUESTED_ADDRESS_FAMILY, 2 << 24)
            .attr(attr::RESERVATION_TOKEN, &token);
    });
    assert_eq!(code(&with_family), Some(400));
    let ok = other.request(method::ALLOCATE, true, |b| {
        b.u32(attr::REQUESTED_TRANSPORT, 17 << 24)
            .attr(attr::RESERVATION_TOKEN, &token);
    });
    assert_eq!(code(&ok), None);
    assert!(matches!(
        other.binds.last(),
        Some(Event::BindRelay { family: Family::V6, reservation: Reservation::Redeem(t), .. }) if *t == token
    ));
    // IPv6 peers are this allocation's peers, IPv4 ones are not.
    assert_eq!(
        code(&other.channel_bind(0x4000, "[::1]:7000".parse().unwrap())),
        None
    );
    assert_eq!(
        code(&other.channel_bind(0x4001, PEER.parse().unwrap())),
        Some(443)
    );
}

#[test]
fn bandwidth_caps_drop_and_refill() {
    let mut h = Harness::with(shared(10, 10), |c| c.bps_per_allocation = 1000);
    h.allocate();
    h.channel_bind(0x4000, PEER.parse().unwrap());
    let mut cd = vec![0x40, 0x00, 0x00, 160];
    cd.extend_from_slice(&[0u8; 160]);
    let passed = (0..10)
        .filter(|_| h.send(&cd).is_ok_and(|f| f.is_some()))
        .count();
    assert_eq!(
        passed, 6,
        "1000 bytes of budget carry six 160-byte payloads"
    );
    assert_eq!(h.relay.stats().drops[DropReason::Bandwidth.index()], 4);
    h.now += Duration::from_secs(1);
    assert!(h.send(&cd).unwrap().is_some(), "the bucket refills");
}

/// The server-wide cap is one budget for every core (UDP workers and each
/// TCP/TLS connection run their own), not a budget per core.
#[test]
fn server_wide_cap_is_shared_by_all_cores() {
    let s = Arc::new(state(10, 10).with_bps_total(480));
    let mut cores: Vec<Harness> = (0..3)
        .map(|i| {
            let mut h = Harness::with(s.clone(), |_| {});
            h.client.remote = SocketAddr::new(h.client.remote.ip(), 6000 + i);
            h.allocate();
            h.channel_bind(0x4000, PEER.parse().unwrap());
            h
        })
        .collect();
    let mut cd = vec![0x40, 0x00, 0x00, 160];
    cd.extend_from_slice(&[0u8; 160]);
    let passed: Vec<bool> = cores
        .iter_mut()
        .flat_map(|h| [h.send(&cd), h.send(&cd)])
        .map(|r| r.is_ok_and(|f| f.is_some()))
        .collect();
    assert_eq!(
        passed.iter().filter(|p| **p).count(),
        3,
        "480 bytes/s carry three 160-byte payloads across all cores: {passed:?}"
    );
    for h in &mut cores {
        h.now += Duration::from_secs(1);
    }
    assert!(cores[2].send(&cd).unwrap().is_some(), "the budget refills");
}

/// The in-place Data indication is byte for byte what the STUN builder
/// makes, for both address families and every padding length.
#[test]
fn data_indication_in_place_matches_the_builder() {
    let peers: [SocketAddr; 2] = [
        "198.51.100.7:5004".parse().unwrap(),
        "[2001:db8::7]:5004".parse().unwrap(),
    ];
    for peer in peers {
        for len in 0..9usize {
            let payload: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
            let tid = indication_tid(len as u64);
            let mut buf = vec![0xaa; PEER_HEADROOM];
            buf.extend_from_slice(&payload);
            let (start, pad) = data_indication(&mut buf, peer, tid).unwrap();
            let mut in_place = buf[start..].to_vec();
            in_place.resize(in_place.len() + pad, 0);
            let mut b = Builder::new(method::DATA, Class::Indication, tid);
            b.xor_addr(attr::XOR_PEER_ADDRESS, peer)
                .attr(attr::DATA, &payload);
            assert_eq!(in_place, b.finish(), "{peer} with {len} bytes");
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn send_indication(peer: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut b = Builder::new(method::SEND, Class::Indication, [7; 12]);
    b.xor_addr(attr::XOR_PEER_ADDRESS, peer)
        .attr(attr::DATA, data);
    b.finish()
}

fn channel_data(number: u16, data: &[u8]) -> Vec<u8> {
    let mut v = stun::channel_header(number, data.len() as u16).to_vec();
    v.extend_from_slice(data);
    v
}

/// What a Forward to a client carries: the peer and payload of a Data
/// indication, or the channel and payload of ChannelData.
fn to_client(buf: &[u8], f: &Forward) -> (Option<SocketAddr>, Option<u16>, Vec<u8>) {
    let mut bytes = buf[f.range.clone()].to_vec();
    bytes.resize(bytes.len() + f.pad, 0);
    if bytes[0] & 0xc0 == 0x40 {
        let cd = ChannelData::parse(&bytes).unwrap();
        return (None, Some(cd.channel), cd.data.to_vec());
    }
    let m = Message::parse(&bytes).unwrap();
    assert_eq!((m.method, m.class), (method::DATA, Class::Indication));
    let peer = m.get_xor_addr(attr::XOR_PEER_ADDRESS).unwrap();
    (peer, None, m.get(attr::DATA).unwrap().value.to_vec())
}

/// Two clients of one relay, both relay-only: each one's peer is the
/// other's relayed address, an address of the relay itself (relay_ip
/// 127.0.0.1, advertised as external_ip 1.2.3.4). With the default
/// policy they reach each other both ways, through Send/Data indications
/// and channels, sent to the local address (no NAT hairpin); every other
/// port of the relay's address (a listener, ssh, a free port) stays
/// refused, and so does a port whose allocation has gone.
#[test]
fn two_clients_of_one_relay_reach_each_other_and_nothing_else() {
    let s = shared(10, 10);
    let policy = || {
        let mut p = PeerPolicy::default();
        p.add_relay_address(ip("1.2.3.4"), ip("127.0.0.1"));
        p.deny_own([ip("1.2.3.4"), ip("127.0.0.1")]);
        p
    };
    let mut a = Harness::with(s.clone(), |c| c.policy = policy());
    a.bind_addr = "1.2.3.4:40000".parse().unwrap();
    let mut b = Harness::with(s.clone(), |c| c.policy = policy());
    b.bind_addr = "1.2.3.4:40002".parse().unwrap();
    b.client.remote = "192.0.2.51:5000".parse().unwrap();
    b.user = "bob".into();
    b.key = Key::derive("bob", REALM, "pw");
    assert_eq!(code(&a.allocate()), None);
    assert_eq!(code(&b.allocate()), None);
    let (ra, rb) = (a.bind_addr, b.bind_addr);
    // Permissions are per IP: the relay's own address is a peer.
    assert_eq!(code(&a.create_permission(rb.ip())), None);
    assert_eq!(code(&b.create_permission(ra.ip())), None);
    let mut buf = Vec::new();

    // A to B by Send indication: to B's relayed socket at its local
    // address; B's client gets a Data indication from A's relayed address.
    let f = a.send(&send_indication(rb, b"hello")).unwrap().unwrap();
    let (ra_local, rb_local): (SocketAddr, SocketAddr) = (
        "127.0.0.1:40000".parse().unwrap(),
        "127.0.0.1:40002".parse().unwrap(),
    );
    assert_eq!(
        f.dest,
        Dest::Peer {
            relay: a.relayed.unwrap(),
            addr: rb_local
        }
    );
    let f = b
        .peer_datagram(ra_local, b"hello", &mut buf)
        .unwrap()
        .unwrap();
    assert_eq!(f.dest, Dest::Client(b.client));
    assert_eq!(to_client(&buf, &f), (Some(ra), None, b"hello".to_vec()));

    // B to A on a channel, A answering on one of its own.
    assert_eq!(code(&b.channel_bind(0x4000, ra)), None);
    let f = b.send(&channel_data(0x4000, b"pong")).unwrap().unwrap();
    assert_eq!(
        f.dest,
        Dest::Peer {
            relay: b.relayed.unwrap(),
            addr: ra_local
        }
    );
    let f = a
        .peer_datagram(rb_local, b"pong", &mut buf)
        .unwrap()
        .unwrap();
    assert_eq!(to_client(&buf, &f), (Some(rb), None, b"pong".to_vec()));
    assert_eq!(code(&a.channel_bind(0x4001, rb)), None);
    let f = a.send(&channel_data(0x4001, b"ping")).unwrap().unwrap();
    assert!(matches!(f.dest, Dest::Peer { addr, .. } if addr == rb_local));
    let f = b
        .peer_datagram(ra_local, b"ping", &mut buf)
        .unwrap()
        .unwrap();
    assert_eq!(to_client(&buf, &f), (None, Some(0x4000), b"ping".to_vec()));
    // Sent to the advertised address (a hairpinning NAT), it is accepted too.
    let f = b.peer_datagram(ra, b"nat", &mut buf).unwrap().unwrap();
    assert_eq!(to_client(&buf, &f), (None, Some(0x4000), b"nat".to_vec()));

    // The relay's listener, ssh, and a port no allocation holds: refused
    // to ChannelBind (403), dropped as Send indications, and nothing from
    // them reaches the client.
    let denied = a.relay.stats().denied_peers;
    for port in [3478, 22, 40004] {
        let other = SocketAddr::new(ra.ip(), port);
        assert_eq!(code(&a.channel_bind(0x4002, other)), Some(403), "{port}");
        assert_eq!(
            a.send(&send_indication(other, b"x")),
            Err(DropReason::NoPermission),
            "{port}"
        );
        for from in [other, SocketAddr::new(ip("127.0.0.1"), port)] {
            assert_eq!(
                a.peer_datagram(from, b"x", &mut buf),
                Err(DropReason::NoPermission),
                "{from}"
            );
        }
    }
    assert_eq!(a.relay.stats().denied_peers, denied + 3);

    // Once B's allocation is gone, its port is refused again, channel or not.
    let r = b.request(method::REFRESH, true, |m| {
        m.u32(attr::LIFETIME, 0);
    });
    assert_eq!(code(&r), None);
    assert!(!s.relayed_port_live(Family::V4, rb.port()));
    assert_eq!(
        a.send(&channel_data(0x4001, b"late")),
        Err(DropReason::NoPermission)
    );
    assert_eq!(
        a.send(&send_indication(rb, b"late")),
        Err(DropReason::NoPermission)
    );
    assert_eq!(
        a.peer_datagram(rb_local, b"late", &mut buf),
        Err(DropReason::NoPermission)
    );
}

/// CreatePermission and ChannelBind succeed whole or change nothing: a
/// CreatePermission whose peers do not all fit installs none of them, and
/// a ChannelBind whose permission does not fit leaves no channel behind.
#[test]
fn permission_requests_are_all_or_nothing() {
    let mut h = Harness::with(shared(10, 10), |c| c.max_permissions = 2);
    h.allocate();
    assert_eq!(code(&h.create_permission(ip("5.5.5.1"))), None);
    let r = h.request(method::CREATE_PERMISSION, true, |b| {
        b.xor_addr(attr::XOR_PEER_ADDRESS, "5.5.5.2:0".parse().unwrap())
            .xor_addr(attr::XOR_PEER_ADDRESS, "5.5.5.3:0".parse().unwrap());
    });
    assert_eq!(code(&r), Some(508));
    let mut buf = Vec::new();
    assert_eq!(
        h.peer_datagram("5.5.5.2:9".parse().unwrap(), b"x", &mut buf),
        Err(DropReason::NoPermission),
        "a failed request installed a permission"
    );
    // Refreshing held permissions fits; a new one fills the table.
    let r = h.request(method::CREATE_PERMISSION, true, |b| {
        b.xor_addr(attr::XOR_PEER_ADDRESS, "5.5.5.1:0".parse().unwrap())
            .xor_addr(attr::XOR_PEER_ADDRESS, "5.5.5.2:0".parse().unwrap())
            .xor_addr(attr::XOR_PEER_ADDRESS, "5.5.5.1:0".parse().unwrap());
    });
    assert_eq!(code(&r), None);
    // A third peer does not fit: 508, and channel 0x4000 stays free.
    assert_eq!(
        code(&h.channel_bind(0x4000, "5.5.5.3:7".parse().unwrap())),
        Some(508)
    );
    assert_eq!(
        code(&h.channel_bind(0x4000, "5.5.5.1:7".parse().unwrap())),
        None,
        "the failed ChannelBind left its channel bound"
    );
}

/// An expired RESERVATION-TOKEN redeemed before its core's sweep: 508,
/// and its held port is closed (Event::Unreserve). It used to stay open
/// for good, the reservation gone and nothing left to close it.
#[test]
fn redeeming_an_expired_token_closes_its_port() {
    let s = shared(100, 10);
    let mut h = Harness::with(s.clone(), |_| {});
    h.request(method::ALLOCATE, false, |_| {});
    let token = allocate_pair(&mut h, 1).1.unwrap();
    let mut other = Harness::with(s.clone(), |_| {});
    other.client.remote = "192.0.2.99:6000".parse().unwrap();
    other.now += crate::shared::RESERVATION_LIFETIME;
    other.request(method::ALLOCATE, false, |_| {});
    let r = other.request(method::ALLOCATE, true, |b| {
        b.u32(attr::REQUESTED_TRANSPORT, 17 << 24)
            .attr(attr::RESERVATION_TOKEN, &token);
    });
    assert_eq!(code(&r), Some(508));
    let unreserve = Event::Unreserve { token };
    assert!(other.events.contains(&unreserve), "{:?}", other.events);
    // The reserving core's sweep then has nothing left to do, and the
    // quota slot was freed once.
    h.now = other.now;
    h.relay.handle_timeout(h.now);
    assert!(
        std::iter::from_fn(|| h.relay.poll_event()).all(|e| !matches!(e, Event::Unreserve { .. }))
    );
    assert_eq!((s.quotas.total(), s.reservations()), (1, 0));
}

/// A relayed socket that could not be registered after its odd neighbour
/// was held (the driver answers None): the held port is closed too.
#[test]
fn a_failed_bind_closes_the_reserved_port() {
    let s = shared(100, 10);
    let mut h = Harness::with(s.clone(), |_| {});
    h.request(method::ALLOCATE, false, |_| {});
    h.request(method::ALLOCATE, false, |_| {});
    let tid = h.tid();
    let mut b = Builder::new(method::ALLOCATE, Class::Request, tid);
    b.u32(attr::REQUESTED_TRANSPORT, 17 << 24)
        .attr(attr::EVEN_PORT, &[0x80])
        .attr(attr::USERNAME, b"alice")
        .attr(attr::REALM, REALM.as_bytes())
        .attr(attr::NONCE, h.nonce.as_bytes())
        .integrity(Integrity::Sha1, &h.key.0);
    h.send(&b.finish()).unwrap();
    let Some(Event::BindRelay {
        relay,
        reservation: Reservation::ReserveNext(token),
        ..
    }) = h.relay.poll_event()
    else {
        panic!("expected a reserving bind")
    };
    h.relay.relay_bound(h.now, relay, None);
    assert_eq!(code(&h.relay.poll_transmit().unwrap().data), Some(508));
    let events: Vec<Event> = std::iter::from_fn(|| h.relay.poll_event()).collect();
    assert!(events.contains(&Event::Unreserve { token }), "{events:?}");
    assert_eq!((s.quotas.total(), s.reservations()), (0, 0));
}

/// RFC 8489 §14.5: attributes after MESSAGE-INTEGRITY are not covered by
/// it and are ignored. An attacker on the path who appends
/// XOR-PEER-ADDRESSes to a captured CreatePermission must not open the
/// allocation to them, nor turn the request into a 420 by appending an
/// unknown comprehension-required attribute.
#[test]
fn attributes_after_message_integrity_are_ignored() {
    let mut h = Harness::new();
    h.allocate();
    let signed =
        |h: &mut Harness, m: u16, f: &dyn Fn(&mut Builder), after: &dyn Fn(&mut Builder)| {
            let tid = h.tid();
            let mut b = Builder::new(m, Class::Request, tid);
            f(&mut b);
            b.attr(attr::USERNAME, h.user.as_bytes())
                .attr(attr::REALM, REALM.as_bytes())
                .attr(attr::NONCE, h.nonce.as_bytes())
                .integrity(Integrity::Sha1, &h.key.0);
            after(&mut b);
            assert_eq!(h.send(&b.finish_with_fingerprint()), Ok(None));
            h.relay.poll_transmit().expect("an answer").data
        };
    let r = signed(
        &mut h,
        method::CREATE_PERMISSION,
        &|b| {
            b.xor_addr(attr::XOR_PEER_ADDRESS, "5.5.5.1:0".parse().unwrap());
        },
        &|b| {
            b.xor_addr(attr::XOR_PEER_ADDRESS, "5.5.5.66:0".parse().unwrap());
        },
    );
    assert_eq!(code(&r), None);
    let mut buf = Vec::new();
    assert!(
        h.peer_datagram("5.5.5.1:9".parse().unwrap(), b"x", &mut buf)
            .is_ok()
    );
    assert_eq!(
        h.peer_datagram("5.5.5.66:9".parse().unwrap(), b"x", &mut buf),
        Err(DropReason::NoPermission),
        "an appended peer was permitted"
    );
    let r = signed(&mut h, method::REFRESH, &|_| {}, &|b| {
        b.attr(0x0777, b"x");
    });
    assert_eq!(code(&r), None, "an appended attribute made it a 420");
}

/// REST expiry is judged by the wall clock the driver passes in with the
/// time, not by the clock at start advanced by the monotonic one: a relay
/// that started before NTP stepped the clock kept the offset for good.
#[test]
fn rest_expiry_follows_the_wall_clock_passed_in() {
    use std::time::UNIX_EPOCH;
    let mut h = Harness::new();
    h.user = format!("{}:carol", UNIX0 + 100);
    h.key = Key::derive(&h.user, REALM, &rest_password("s3cret", &h.user));
    // The clock was stepped 1000 s forward since the epoch: expired.
    let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
    h.relay.set_wall_clock(h.now, at(UNIX0 + 1000));
    assert_eq!(code(&h.allocate()), Some(401));
    // Stepped back: 50 s left, which bound the lifetime.
    h.relay.set_wall_clock(h.now, at(UNIX0 + 50));
    let ok = h.request(method::ALLOCATE, true, |b| {
        b.u32(attr::REQUESTED_TRANSPORT, 17 << 24);
    });
    assert_eq!(code(&ok), None);
    let life = Message::parse(&ok)
        .unwrap()
        .get_u32(attr::LIFETIME)
        .unwrap();
    assert_eq!(life, Some(50));
    // Later inputs advance it by the monotonic clock until the next read.
    h.now += Duration::from_secs(51);
    assert_eq!(code(&h.request(method::REFRESH, true, |_| {})), Some(401));
}

/// RFC 8656 §7.2: REQUESTED-ADDRESS-FAMILY with ADDITIONAL-ADDRESS-FAMILY
/// is 400 (it was allocated, the second family ignored).
#[test]
fn requested_and_additional_address_family_is_400() {
    let mut h = Harness::new();
    h.request(method::ALLOCATE, false, |_| {});
    let r = h.request(method::ALLOCATE, true, |b| {
        b.u32(attr::REQUESTED_TRANSPORT, 17 << 24)
            .u32(attr::REQUESTED_ADDRESS_FAMILY, 1 << 24)
            .u32(attr::ADDITIONAL_ADDRESS_FAMILY, 2 << 24);
    });
    assert_eq!(code(&r), Some(400));
    assert_eq!(h.relay.allocations(), 0);
}

/// DONT-FRAGMENT reaches the driver, which sets DF on the relayed socket
/// (it was accepted and ignored).
#[test]
fn dont_fragment_reaches_the_driver() {
    let mut h = Harness::new();
    h.request(method::ALLOCATE, false, |_| {});
    let r = h.request(method::ALLOCATE, true, |b| {
        b.u32(attr::REQUESTED_TRANSPORT, 17 << 24)
            .attr(attr::DONT_FRAGMENT, &[]);
    });
    assert_eq!(code(&r), None);
    assert!(
        matches!(
            h.binds.last(),
            Some(Event::BindRelay {
                dont_fragment: true,
                ..
            })
        ),
        "{:?}",
        h.binds
    );
}

/// An IPv4-mapped IPv6 XOR-PEER-ADDRESS is of the IPv6 family: an IPv4
/// allocation answers 443 (RFC 8656 §9.1, §11.2); it was taken for IPv4.
#[test]
fn an_ipv4_mapped_peer_of_an_ipv4_allocation_is_443() {
    let mut h = Harness::new();
    h.allocate();
    let mapped: SocketAddr = "[::ffff:5.5.5.1]:7000".parse().unwrap();
    assert_eq!(code(&h.create_permission(mapped.ip())), Some(443));
    assert_eq!(code(&h.channel_bind(0x4000, mapped)), Some(443));
    let v4: SocketAddr = "5.5.5.1:7000".parse().unwrap();
    assert_eq!(code(&h.channel_bind(0x4000, v4)), None);
    // Nor is it a peer of an IPv6 allocation: it reaches an IPv4 host.
    let mut v6 = Harness::new();
    v6.request(method::ALLOCATE, false, |_| {});
    let r = v6.request(method::ALLOCATE, true, |b| {
        b.u32(attr::REQUESTED_TRANSPORT, 17 << 24)
            .u32(attr::REQUESTED_ADDRESS_FAMILY, 2 << 24);
    });
    assert_eq!(code(&r), None);
    assert_eq!(code(&v6.create_permission(mapped.ip())), Some(443));
    assert_eq!(code(&v6.channel_bind(0x4000, mapped)), Some(443));
}

/// The unauthenticated rate limiter forgets the least recently used
/// sources when it tracks too many: a source that keeps sending stays
/// limited through a flood from more sources than the table holds (the
/// table used to be cleared whole, handing it a fresh burst).
#[test]
fn unauthenticated_rate_limit_survives_a_flood_of_sources() {
    let mut h = Harness::with(shared(10, 10), |c| c.unauth_per_ip_per_s = 5);
    let now = h.now;
    let limited = ip("192.0.2.7");
    let mut burst = 0;
    while h.relay.rate_ok(now, limited) {
        burst += 1;
    }
    assert_eq!(burst, 10);
    for i in 0..(MAX_TRACKED_IPS as u32 + 2000) {
        let source = IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + i));
        assert!(h.relay.rate_ok(now, source));
        if i % 1000 == 0 {
            assert!(
                !h.relay.rate_ok(now, limited),
                "a fresh burst after {i} sources"
            );
        }
    }
    assert!(h.relay.unauth.buckets.len() <= MAX_TRACKED_IPS);
}

/// IPv6 sources count by /64, which one host or site has all of: a new
/// address of the same /64 gets no fresh burst.
#[test]
fn unauthenticated_rate_limit_counts_ipv6_by_64() {
    let mut h = Harness::with(shared(10, 10), |c| c.unauth_per_ip_per_s = 5);
    let now = h.now;
    let (a, b, other) = (
        ip("2001:db8:1:2::1"),
        ip("2001:db8:1:2:ffff::9"),
        ip("2001:db8:1:3::1"),
    );
    for _ in 0..10 {
        assert!(h.relay.rate_ok(now, a));
    }
    assert!(!h.relay.rate_ok(now, b), "another address of the same /64");
    assert!(h.relay.rate_ok(now, other), "another /64");
}

/// A Send indication asking for DF is relayed only by an allocation whose
/// socket sets DF; elsewhere it is discarded, as is one with any other
/// attribute we must understand and do not (RFC 8656 §11.2). Both were
/// relayed, DF unset, before.
#[test]
fn a_send_indication_we_cannot_honour_is_discarded() {
    let peer: SocketAddr = PEER.parse().unwrap();
    let with = |kind: u16| {
        let mut b = Builder::new(method::SEND, Class::Indication, [7; 12]);
        b.xor_addr(attr::XOR_PEER_ADDRESS, peer)
            .attr(kind, &[])
            .attr(attr::DATA, b"x");
        b.finish()
    };
    let mut h = Harness::new();
    h.allocate();
    h.create_permission(peer.ip());
    assert!(h.send(&send_indication(peer, b"x")).unwrap().is_some());
    assert_eq!(
        h.send(&with(attr::DONT_FRAGMENT)),
        Err(DropReason::UnknownAttribute)
    );
    assert_eq!(h.send(&with(0x7f01)), Err(DropReason::UnknownAttribute));
    // Comprehension-optional attributes are ignored.
    assert!(h.send(&with(0x8f01)).unwrap().is_some());
    assert_eq!(
        h.relay.stats().drops[DropReason::UnknownAttribute.index()],
        2
    );

    let mut h = Harness::new();
    h.request(method::ALLOCATE, false, |_| {});
    h.request(method::ALLOCATE, true, |b| {
        b.u32(attr::REQUESTED_TRANSPORT, 17 << 24)
            .attr(attr::DONT_FRAGMENT, &[]);
    });
    h.create_permission(peer.ip());
    let f = h.send(&with(attr::DONT_FRAGMENT)).unwrap().unwrap();
    assert_eq!(
        f.dest,
        Dest::Peer {
            relay: h.relayed.unwrap(),
            addr: peer
        }
    );
}
