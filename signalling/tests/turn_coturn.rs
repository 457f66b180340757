//! TURN credentials issued by signald allocate on a real coturn
//! (`--use-auth-secret`), and a forged password does not.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sotto_signalling::server;

/// A coturn on loopback, killed on drop.
struct Coturn(Child);

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_coturn(port: u16, secret: &str, dir: &std::path::Path) -> Coturn {
    // A relay port range of our own, derived from the listening port.
    let min = 40_000 + (port % 200) * 100;
    let coturn = Command::new("turnserver")
        .args([
            "-n",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--allow-loopback-peers",
        ])
        .args([
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            "--realm=sotto.test",
        ])
        .arg(format!("--listening-port={port}"))
        .arg(format!("--min-port={min}"))
        .arg(format!("--max-port={}", min + 99))
        .arg("--use-auth-secret")
        .arg(format!("--static-auth-secret={secret}"))
        .arg(format!("--pidfile={}", dir.join("turn.pid").display()))
        .arg(format!("--log-file={}", dir.join("turn.log").display()))
        .arg("--simple-log")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("coturn's turnserver is installed (cargo xtask setup)");
    // Owned at once, so a failed start still kills it.
    let coturn = Coturn(coturn);
    // Ready once it answers a STUN Binding request (RFC 5389 §6: type
    // 0x0001, length 0, magic cookie, 12-byte transaction id).
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut req = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    req.extend_from_slice(b"sotto-ready!");
    let mut buf = [0u8; 1500];
    for _ in 0..100 {
        let _ = sock.send_to(&req, ("127.0.0.1", port));
        if let Ok((n, _)) = sock.recv_from(&mut buf)
            && n >= 20
            && buf[0..2] == [0x01, 0x01]
        {
            return coturn;
        }
    }
    panic!("coturn did not start");
}

fn allocate(port: u16, user: &str, password: &str) -> (bool, String) {
    let out = Command::new("turnutils_uclient")
        .args(["-y", "-n", "5", "-m", "1"])
        .args([
            "-u",
            user,
            "-w",
            password,
            "-p",
            &port.to_string(),
            "127.0.0.1",
        ])
        .output()
        .expect("turnutils_uclient is installed with coturn");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_allocate_on_coturn() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let secret = "signald-turn-secret";
    let _coturn = start_coturn(port, secret, dir.path());
    let mut cfg = common::config(dir.path());
    cfg.turn.secret = Some(secret.into());
    cfg.turn.ttl_s = 600;
    cfg.turn.uris = vec![format!("turn:127.0.0.1:{port}?transport=udp")];
    let srv = server::start(cfg, None).await.unwrap();
    let (alice, token) = common::device(&format!("http://{}", srv.addr)).await;
    let creds = alice.turn_credentials(&token).await.unwrap();
    assert!(creds.username.ends_with(&format!(":{}", alice.device_id())));
    assert_eq!(creds.uris.len(), 1);

    let (ok, log) =
        tokio::task::spawn_blocking(move || allocate(port, &creds.username, &creds.password))
            .await
            .unwrap();
    assert!(
        ok && log.contains("Total lost packets 0"),
        "allocation with issued credentials failed:\n{log}"
    );
    let user = format!("{}:mallory", sotto_signalling::util::unix_ms() / 1000 + 600);
    let (ok, _) =
        tokio::task::spawn_blocking(move || allocate(port, &user, "bm90IHRoZSBwYXNzd29yZA=="))
            .await
            .unwrap();
    assert!(!ok, "a forged password must not allocate");
    srv.shutdown().await;
}
