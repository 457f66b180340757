//! TURN over TCP under abuse, against the real `sotto-relay` binary on
//! loopback: connection caps, connections that never allocate, and a client
//! that stops reading while its peer keeps sending. Each closure is counted
//! in `turn_drops_total` by reason.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use sotto_relay::auth::Key;
use sotto_relay::stun::{Builder, Class, Integrity, Message, attr, method};

const REALM: &str = "tcp.test";

/// A relay with TCP only, user alice:pw, loopback peers and metrics.
fn start(extra: &[&str]) -> (Relay, SocketAddr, TempDir) {
    let dir = TempDir::new("tcp");
    let users = dir.write("users", "alice:pw\n");
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut args = vec![
        "--realm",
        REALM,
        "--listen-tcp",
        "127.0.0.1:0",
        "--users-file",
        users.to_str().unwrap(),
        "--allow-loopback-peers",
        "true",
    ];
    let m = metrics.to_string();
    args.extend(["--metrics-listen", &m]);
    args.extend(extra);
    (start_relay(&args), metrics, dir)
}

fn connect(relay: &Relay) -> TcpStream {
    let s = TcpStream::connect(relay.tcp.unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

/// Reads one framed STUN message.
fn read_msg(s: &mut TcpStream) -> Vec<u8> {
    let mut m = vec![0u8; 20];
    s.read_exact(&mut m).unwrap();
    let len = usize::from(u16::from_be_bytes([m[2], m[3]]));
    m.resize(20 + len, 0);
    s.read_exact(&mut m[20..]).unwrap();
    m
}

fn error_code(m: &Message<'_>) -> Option<u16> {
    let e = m.get(attr::ERROR_CODE)?;
    Some(u16::from(e.value[2]) * 100 + u16::from(e.value[3]))
}

/// Waits (generously) until the relay closes `s`: EOF or a reset, not a
/// read timeout. Whatever was still in flight is read and discarded.
fn assert_closed_by_relay(s: &mut TcpStream) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the relay did not close the connection")
            }
            Err(_) => return,
        }
    }
}

fn binding(s: &mut TcpStream) {
    let b = Builder::new(method::BINDING, Class::Request, [7; 12]);
    s.write_all(&b.finish()).unwrap();
    let raw = read_msg(s);
    assert_eq!(Message::parse(&raw).unwrap().class, Class::Success);
}

fn drops(text: &str, reason: &str) -> f64 {
    metric(text, &format!("turn_drops_total{{reason=\"{reason}\"}}"))
}

#[test]
fn connections_over_the_per_ip_cap_are_closed_and_counted() {
    let (relay, metrics, _dir) = start(&[
        "--max-tcp-connections-per-ip",
        "2",
        "--tcp-allocate-timeout",
        "3600",
    ]);
    let mut first = connect(&relay);
    let _second = connect(&relay);
    let mut third = connect(&relay);
    assert_closed_by_relay(&mut third);
    metrics_until(metrics, |t| drops(t, "tcp_per_ip_limit") >= 1.0);
    // The admitted ones still work.
    binding(&mut first);
}

#[test]
fn connections_without_an_allocation_are_closed_and_counted() {
    let (relay, metrics, _dir) = start(&["--tcp-allocate-timeout", "1"]);
    let mut idle = connect(&relay);
    // Unauthenticated requests do not keep it open.
    binding(&mut idle);
    assert_closed_by_relay(&mut idle);
    metrics_until(metrics, |t| drops(t, "tcp_no_allocation") >= 1.0);
}

#[test]
fn a_client_that_stops_reading_loses_its_connection_and_allocation() {
    let (relay, metrics, _dir) = start(&[]);
    // A small receive window so the relay's writes back up quickly.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&relay.tcp.unwrap().into()).unwrap();
    let mut c: TcpStream = sock.into();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();

    // Allocate (401 first), then permit the peer.
    let mut b = Builder::new(method::ALLOCATE, Class::Request, [1; 12]);
    b.u32(attr::REQUESTED_TRANSPORT, 17 << 24);
    c.write_all(&b.finish()).unwrap();
    let raw = read_msg(&mut c);
    let m = Message::parse(&raw).unwrap();
    assert_eq!(error_code(&m), Some(401));
    let nonce = m.get_str(attr::NONCE).unwrap().unwrap().to_owned();
    let key = Key::derive("alice", REALM, "pw");
    let signed = |m: u16, tid: u8, f: &dyn Fn(&mut Builder)| {
        let mut b = Builder::new(m, Class::Request, [tid; 12]);
        f(&mut b);
        b.attr(attr::USERNAME, b"alice")
            .attr(attr::REALM, REALM.as_bytes())
            .attr(attr::NONCE, nonce.as_bytes())
            .integrity(Integrity::Sha1, &key.0);
        b.finish()
    };
    c.write_all(&signed(method::ALLOCATE, 2, &|b| {
        b.u32(attr::REQUESTED_TRANSPORT, 17 << 24);
    }))
    .unwrap();
    let raw = read_msg(&mut c);
    let m = Message::parse(&raw).unwrap();
    assert_eq!(error_code(&m), None, "Allocate refused");
    let relayed = m.get_xor_addr(attr::XOR_RELAYED_ADDRESS).unwrap().unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer_addr = peer.local_addr().unwrap();
    c.write_all(&signed(method::CREATE_PERMISSION, 3, &|b| {
        b.xor_addr(attr::XOR_PEER_ADDRESS, peer_addr);
    }))
    .unwrap();
    let raw = read_msg(&mut c);
    assert_eq!(error_code(&Message::parse(&raw).unwrap()), None);

    // The peer floods; the client reads nothing more.
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let payload = [0x5a; 1200];
            while !stop.load(Ordering::Relaxed) {
                // Refused once the relayed socket is gone: keep going until told.
                let _ = peer.send_to(&payload, relayed);
            }
        })
    };
    let text = metrics_until(metrics, |t| drops(t, "tcp_write_stalled") >= 1.0);
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    // The allocation went with the connection.
    assert!(
        metric(&text, "turn_allocations_closed_total") >= 1.0,
        "{text}"
    );
    assert_closed_by_relay(&mut c);
}
