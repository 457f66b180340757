//! `sotto zrtp probe` against bzrtp over UDP loopback: the binary must
//! reach Secure, exit 0 and print the same SAS and SRTP secrets bzrtp
//! derived; against a silent peer it must exit non-zero.

use sotto_peers::bzrtp::{Bzrtp, BzrtpConfig};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the probe with `args` against a bzrtp endpoint and returns the
/// probe's stdout, its exit status and bzrtp's secrets.
fn probe_vs_bzrtp(
    role: &str,
    extra: &[&str],
    bz: &BzrtpConfig,
) -> (String, bool, Option<sotto_peers::bzrtp::BzrtpSecrets>) {
    probe_vs(role, extra, Bzrtp::new(0x0b2b_0002, bz).unwrap())
}

fn probe_vs(
    role: &str,
    extra: &[&str],
    mut peer: Bzrtp,
) -> (String, bool, Option<sotto_peers::bzrtp::BzrtpSecrets>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let bz_addr = sock.local_addr().unwrap();
    let probe_addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_sotto"))
        .args([
            "zrtp",
            "probe",
            "--listen",
            &probe_addr,
            "--remote",
            &bz_addr.to_string(),
            "--role",
            role,
            "--timeout",
            "10",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sotto");
    assert_eq!(peer.start(), 0);
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    let probe_addr: std::net::SocketAddr = probe_addr.parse().unwrap();
    let status = loop {
        peer.iterate(start.elapsed().as_millis() as u64);
        while let Some(p) = peer.pop_packet() {
            let _ = sock.send_to(&p, probe_addr);
        }
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            peer.process(&buf[..n]);
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            break child.wait().unwrap();
        }
    };
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        status.success(),
        peer.secrets(),
    )
}

fn check(role: &str, extra: &[&str], bz: BzrtpConfig, ka: &str) {
    let (stdout, ok, secrets) = probe_vs_bzrtp(role, extra, &bz);
    assert!(ok, "probe failed: {stdout}");
    let b = secrets.expect("bzrtp secure");
    let line = stdout.lines().last().expect("a JSON line");
    let j: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(j["sas"], b.sas.as_str());
    assert_eq!(j["key_agreement"], ka);
    assert_eq!(j["role"], role);
    // bzrtp is the other role: its own key is the responder's if we initiate.
    let (ours, theirs) = if role == "initiator" {
        ("initiator", "responder")
    } else {
        ("responder", "initiator")
    };
    assert_eq!(j[format!("{ours}_key")], hex::encode(&b.peer_key));
    assert_eq!(j[format!("{ours}_salt")], hex::encode(&b.peer_salt));
    assert_eq!(j[format!("{theirs}_key")], hex::encode(&b.self_key));
    assert_eq!(j[format!("{theirs}_salt")], hex::encode(&b.self_salt));
}

#[test]
fn probe_x255_initiator_against_bzrtp() {
    check(
        "initiator",
        &["--ka", "X255", "--sas", "B32"],
        BzrtpConfig::default(),
        "X255",
    );
}

#[test]
fn probe_dh3k_responder_against_bzrtp() {
    let bz = BzrtpConfig::from_lists("S384", "AES3", "HS80", "DH3k", "B256");
    check(
        "responder",
        &[
            "--ka", "DH3k", "--hash", "S384", "--cipher", "AES3", "--auth", "HS80", "--sas", "B256",
        ],
        bz,
        "DH3k",
    );
}

#[test]
fn probe_exits_non_zero_without_a_peer() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let st = Command::new(env!("CARGO_BIN_EXE_sotto"))
        .args([
            "zrtp",
            "probe",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--remote",
            &silent.local_addr().unwrap().to_string(),
            "--timeout",
            "2",
        ])
        .output()
        .unwrap();
    assert!(!st.status.success());
    assert!(String::from_utf8_lossy(&st.stderr).contains("\"failed\""));
}

#[test]
fn probe_refuses_a_peer_with_the_wrong_zrtp_hash() {
    let wrong = format!("1.10 {}", "ef".repeat(32));
    let (stdout, ok, secrets) = probe_vs_bzrtp(
        "initiator",
        &["--peer-hello-hash", &wrong],
        &BzrtpConfig::default(),
    );
    assert!(!ok, "probe accepted a wrong hash: {stdout}");
    assert!(secrets.is_none());
}

#[test]
fn probe_cache_gives_continuity_with_bzrtp() {
    let dir = std::env::temp_dir().join(format!("sotto-probe-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ours, theirs) = (dir.join("probe.zrtpcache"), dir.join("bzrtp.sqlite"));
    let ours_s = ours.to_str().unwrap().to_string();
    let mut lines = vec![];
    for _ in 0..2 {
        let peer = Bzrtp::with_cache(
            0x0b2b_0003,
            &BzrtpConfig::default(),
            &theirs,
            "sip:b@t",
            "sip:a@t",
        )
        .unwrap();
        let (stdout, ok, secrets) = probe_vs("initiator", &["--cache", &ours_s], peer);
        assert!(ok, "{stdout}");
        assert!(!secrets.unwrap().cache_mismatch);
        lines.push(
            serde_json::from_str::<serde_json::Value>(stdout.lines().last().unwrap()).unwrap(),
        );
    }
    assert_eq!(lines[0]["peer_zid"], lines[1]["peer_zid"]);
    assert_eq!(lines[1]["cache_mismatch"], false);
    assert!(ours.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
