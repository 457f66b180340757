//! Two clients of one relay, both relay-only (the topology that hides
//! both users' addresses): each one's peer is the other's relayed address,
//! an address of the relay itself. Against the real binary with the
//! default peer policy (no `--allow-loopback-peers`): calls connect both
//! ways, while the relay host's other ports stay out of reach.

mod common;

use std::net::{SocketAddr, UdpSocket};

use common::*;

const REALM: &str = "own.test";

fn start(extra: &[&str]) -> (Relay, TempDir) {
    let dir = TempDir::new("own");
    let users = dir.write("users", "alice:alicepw\nbob:bobpw\n");
    let mut args = vec![
        "--realm",
        REALM,
        "--listen",
        "127.0.0.1:0",
        "--relay-ip",
        "127.0.0.1",
        "--users-file",
        users.to_str().unwrap(),
        "--workers",
        "1",
    ];
    args.extend(extra);
    (start_relay(&args), dir)
}

fn two_clients_talk(extra: &[&str], advertised: &str) {
    let (relay, _dir) = start(extra);
    let server = relay.udp.unwrap();
    let mut alice = TurnClient::new(server, "alice", "alicepw", REALM);
    let mut bob = TurnClient::new(server, "bob", "bobpw", REALM);
    let ra = alice.allocate();
    let rb = bob.allocate();
    assert_eq!(ra.ip().to_string(), advertised);
    assert_eq!(alice.create_permission(rb.ip()), None, "alice's permission");
    assert_eq!(bob.create_permission(ra.ip()), None, "bob's permission");

    alice.send_indication(rb, b"hello bob");
    assert_eq!(bob.recv(), Relayed::Data(ra, b"hello bob".to_vec()));
    bob.send_indication(ra, b"hello alice");
    assert_eq!(alice.recv(), Relayed::Data(rb, b"hello alice".to_vec()));
    assert_eq!(alice.channel_bind(0x4000, rb), None);
    assert_eq!(bob.channel_bind(0x4001, ra), None);
    alice.channel_data(0x4000, b"on a channel");
    assert_eq!(
        bob.recv(),
        Relayed::Channel(0x4001, b"on a channel".to_vec())
    );
    bob.channel_data(0x4001, b"and back");
    assert_eq!(alice.recv(), Relayed::Channel(0x4000, b"and back".to_vec()));

    // A UDP service of the relay host (ssh, a resolver, metrics…) and the
    // relay's own listener are not peers.
    let service = UdpSocket::bind("127.0.0.1:0").unwrap();
    service.set_nonblocking(true).unwrap();
    for port in [service.local_addr().unwrap().port(), server.port()] {
        let target = SocketAddr::new(ra.ip(), port);
        assert_eq!(alice.channel_bind(0x4002, target), Some(403), "{target}");
        alice.send_indication(target, b"probe");
    }
    // One worker handles alice's datagrams in order: once bob has this,
    // the probes were refused or sent.
    alice.channel_data(0x4000, b"after the probes");
    assert_eq!(
        bob.recv(),
        Relayed::Channel(0x4001, b"after the probes".to_vec())
    );
    let mut buf = [0u8; 64];
    assert!(
        service.recv_from(&mut buf).is_err(),
        "a probe reached a service of the relay host"
    );
}

/// relay_ip 127.0.0.1, advertised as is.
#[test]
fn relay_only_clients_of_one_relay_reach_each_other() {
    two_clients_talk(&[], "127.0.0.1");
}

/// Behind a 1:1 NAT (external_ip): data for the advertised address goes
/// to the relayed socket's local address, so the NAT need not hairpin
/// (203.0.113.7 is not this host: nothing would come back through it).
#[test]
fn relay_only_clients_of_one_relay_behind_a_nat_reach_each_other() {
    two_clients_talk(&["--external-ip", "203.0.113.7"], "203.0.113.7");
}
