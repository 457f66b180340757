//! Interop: coturn's `turnutils_uclient` (Debian `coturn`) allocates and
//! relays through `sotto-relay` to coturn's `turnutils_peer` echo server,
//! in long-term and TURN REST modes, over UDP, TCP and TLS.

mod common;

use std::net::SocketAddr;

use common::*;

const SECRET: &str = "rest-secret-for-tests";
const MSGS: u64 = 40;
const CLIENTS: u64 = 3;

struct Setup {
    relay: Relay,
    peer: SocketAddr,
    _peer_proc: Proc,
    _dir: TempDir,
}

fn setup(extra: &[&str]) -> Setup {
    let dir = TempDir::new("uclient");
    let users = dir.write("users", "alice:wonderland\n");
    let (peer_proc, peer) = start_echo_peer("127.0.0.1");
    let mut args = vec![
        "--realm",
        "sotto.test",
        "--listen",
        "127.0.0.1:0",
        "--listen-tcp",
        "127.0.0.1:0",
        "--users-file",
        users.to_str().unwrap(),
        "--auth-secret",
        SECRET,
        "--workers",
        "2",
    ];
    args.extend_from_slice(extra);
    Setup {
        relay: start_relay(&args),
        peer,
        _peer_proc: peer_proc,
        _dir: dir,
    }
}

/// Runs uclient through `port` and asserts everything came back.
fn relay_ok(s: &Setup, port: u16, mode: &[&str]) {
    let peer_port = s.peer.port().to_string();
    let port = port.to_string();
    let (n, m) = (MSGS.to_string(), CLIENTS.to_string());
    let mut args = vec![
        "-c",
        "-n",
        &n,
        "-m",
        &m,
        "-l",
        "160",
        "-e",
        "127.0.0.1",
        "-r",
        &peer_port,
        "-p",
        &port,
    ];
    args.extend_from_slice(mode);
    args.push("127.0.0.1");
    let r = uclient(&args);
    assert_eq!(
        r.sent,
        MSGS * CLIENTS,
        "uclient did not send everything:\n{}",
        r.output
    );
    assert!(
        r.received * 100 >= r.sent * 99 && r.lost * 100 <= r.sent,
        "too much loss ({} of {} back, {} lost):\n{}",
        r.received,
        r.sent,
        r.lost,
        r.output
    );
}

#[test]
fn long_term_udp_channels() {
    let s = setup(&["--allow-loopback-peers", "true"]);
    relay_ok(
        &s,
        s.relay.udp.unwrap().port(),
        &["-u", "alice", "-w", "wonderland"],
    );
}

/// Without `-c`, uclient also allocates an RTCP relay: EVEN-PORT with the
/// R bit, then RESERVATION-TOKEN from a second 5-tuple (RFC 5766 style).
#[test]
fn rtp_rtcp_pairs_with_reservation_tokens() {
    let s = setup(&["--allow-loopback-peers", "true"]);
    let peer_port = s.peer.port().to_string();
    for (port, tcp) in [
        (s.relay.udp.unwrap().port(), false),
        (s.relay.tcp.unwrap().port(), true),
    ] {
        let port = port.to_string();
        let mut args = vec![
            "-n",
            "20",
            "-m",
            "2",
            "-l",
            "160",
            "-u",
            "alice",
            "-w",
            "wonderland",
        ];
        if tcp {
            args.push("-t");
        }
        args.extend_from_slice(&[
            "-e",
            "127.0.0.1",
            "-r",
            &peer_port,
            "-p",
            &port,
            "127.0.0.1",
        ]);
        let r = uclient(&args);
        assert_eq!(r.sent, 40, "{}", r.output);
        assert!(
            r.received >= 39 && r.lost <= 1,
            "RTP/RTCP pair mode lost packets:\n{}",
            r.output
        );
    }
}

#[test]
fn long_term_udp_send_indications() {
    let s = setup(&["--allow-loopback-peers", "true"]);
    relay_ok(
        &s,
        s.relay.udp.unwrap().port(),
        &["-s", "-u", "alice", "-w", "wonderland"],
    );
}

#[test]
fn rest_udp() {
    let s = setup(&["--allow-loopback-peers", "true"]);
    relay_ok(
        &s,
        s.relay.udp.unwrap().port(),
        &["-W", SECRET, "-u", "bob"],
    );
}

#[test]
fn long_term_tcp() {
    let s = setup(&["--allow-loopback-peers", "true"]);
    relay_ok(
        &s,
        s.relay.tcp.unwrap().port(),
        &["-t", "-u", "alice", "-w", "wonderland"],
    );
}

#[test]
fn rest_tcp() {
    let s = setup(&["--allow-loopback-peers", "true"]);
    relay_ok(
        &s,
        s.relay.tcp.unwrap().port(),
        &["-t", "-W", SECRET, "-u", "bob"],
    );
}

#[test]
fn long_term_tls() {
    let dir = TempDir::new("tls");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = dir.write("cert.pem", &ck.cert.pem());
    let key = dir.write("key.pem", &ck.signing_key.serialize_pem());
    let s = setup(&[
        "--allow-loopback-peers",
        "true",
        "--listen-tls",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    relay_ok(
        &s,
        s.relay.tls.unwrap().port(),
        &["-t", "-S", "-u", "alice", "-w", "wonderland"],
    );
}

#[test]
fn long_term_udp_and_tcp_over_ipv6() {
    let dir = TempDir::new("v6");
    let users = dir.write("users", "alice:wonderland\n");
    let (_peer_proc, peer) = start_echo_peer("::1");
    let relay = start_relay(&[
        "--realm",
        "sotto.test",
        "--listen",
        "[::1]:0",
        "--listen-tcp",
        "[::1]:0",
        "--relay-ip",
        "::1",
        "--users-file",
        users.to_str().unwrap(),
        "--allow-loopback-peers",
        "true",
    ]);
    let peer_port = peer.port().to_string();
    for (port, tcp) in [
        (relay.udp.unwrap().port(), false),
        (relay.tcp.unwrap().port(), true),
    ] {
        let port = port.to_string();
        let mut args = vec![
            "-x",
            "-c",
            "-n",
            "20",
            "-l",
            "160",
            "-u",
            "alice",
            "-w",
            "wonderland",
        ];
        if tcp {
            args.push("-t");
        }
        args.extend_from_slice(&["-e", "::1", "-r", &peer_port, "-p", &port, "::1"]);
        let r = uclient(&args);
        assert_eq!(r.sent, 20, "{}", r.output);
        assert!(
            r.received >= 19 && r.lost <= 1,
            "IPv6 relay lost packets:\n{}",
            r.output
        );
    }
}

#[test]
fn wrong_password_and_denied_peer_are_refused_and_counted() {
    let mport = free_port();
    let maddr: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    // Safe defaults: loopback peers are refused.
    let s = setup(&["--metrics-listen", &maddr.to_string()]);
    let port = s.relay.udp.unwrap().port().to_string();
    let peer_port = s.peer.port().to_string();
    let bad = uclient(&[
        "-c",
        "-n",
        "3",
        "-u",
        "alice",
        "-w",
        "nope",
        "-e",
        "127.0.0.1",
        "-r",
        &peer_port,
        "-p",
        &port,
        "127.0.0.1",
    ]);
    assert_eq!(bad.received, 0, "{}", bad.output);
    let denied = uclient(&[
        "-c",
        "-n",
        "3",
        "-u",
        "alice",
        "-w",
        "wonderland",
        "-e",
        "127.0.0.1",
        "-r",
        &peer_port,
        "-p",
        &port,
        "127.0.0.1",
    ]);
    assert_eq!(
        denied.received, 0,
        "loopback peer must be refused:\n{}",
        denied.output
    );
    let text = metrics_until(maddr, |t| {
        metric(t, "turn_auth_failures_total") >= 1.0 && metric(t, "turn_denied_peers_total") >= 1.0
    });
    assert!(
        metric(&text, "turn_allocations_created_total") >= 1.0,
        "{text}"
    );
}

#[test]
fn metrics_are_live_during_allocations() {
    let mport = free_port();
    let maddr: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    let s = setup(&[
        "--allow-loopback-peers",
        "true",
        "--metrics-listen",
        &maddr.to_string(),
    ]);
    let port = s.relay.udp.unwrap().port().to_string();
    let peer_port = s.peer.port().to_string();
    // -h keeps the allocation open after the last packet.
    let mut child = std::process::Command::new("turnutils_uclient")
        .args([
            "-c",
            "-h",
            "-n",
            "20",
            "-u",
            "alice",
            "-w",
            "wonderland",
            "-e",
            "127.0.0.1",
            "-r",
            &peer_port,
            "-p",
            &port,
            "127.0.0.1",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("turnutils_uclient");
    let text = metrics_until(maddr, |t| {
        metric(t, "turn_allocations ") >= 1.0
            && metric(
                t,
                "turn_relayed_packets_total{direction=\"peer_to_client\"}",
            ) >= 20.0
    });
    assert!(
        metric(
            &text,
            "turn_relayed_bytes_total{direction=\"client_to_peer\"}"
        ) >= 20.0 * 100.0,
        "{text}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
