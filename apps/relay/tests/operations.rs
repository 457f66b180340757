//! Operations: `--check-config`, credential reload on SIGHUP, graceful
//! shutdown on SIGTERM, environment overrides.

mod common;

use std::process::Command;

use common::*;

fn relay_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sotto-relay"))
}

#[test]
fn check_config_accepts_and_rejects() {
    let dir = TempDir::new("check");
    let users = dir.write("users", "alice:pw\n");
    let good = dir.write(
        "good.toml",
        &format!(
            "realm = \"r\"\nlisten = [\"127.0.0.1:3478\"]\nusers_file = \"{}\"\n",
            users.display()
        ),
    );
    let out = relay_cmd()
        .args(["--check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("config ok") && text.contains("users=1"),
        "{text}"
    );
    // An environment override wins over the file.
    let out = relay_cmd()
        .args(["--check-config", "--config"])
        .arg(&good)
        .env("SOTTO_RELAY_REALM", "from-env")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("realm=from-env"));
    let unknown = dir.write("bad.toml", "realm = \"r\"\nlisten_udp = []\n");
    let out = relay_cmd()
        .args(["--check-config", "--config"])
        .arg(&unknown)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let bad_users = dir.write("bad-users", "no-colon-here\n");
    let out = relay_cmd()
        .args([
            "--check-config",
            "--listen",
            "127.0.0.1:3478",
            "--users-file",
        ])
        .arg(&bad_users)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"));
}

/// An empty TURN REST secret would let anyone compute the passwords
/// (HMAC-SHA1 under an empty key): every way of giving one fails the check.
#[test]
fn check_config_refuses_empty_secrets() {
    let dir = TempDir::new("empty-secret");
    let toml = dir.write("empty.toml", "auth_secrets = [\"\"]\n");
    let users = dir.write("users", "alice:\n");
    let cases: Vec<(Vec<&str>, Option<&str>)> = vec![
        (vec!["--auth-secret", ""], None),
        (vec!["--auth-secret", "a-long-enough-secret,,b"], None),
        (vec![], Some("")),
        (vec![], Some(",")),
        (vec!["--config", toml.to_str().unwrap()], None),
        (vec!["--users-file", users.to_str().unwrap()], None),
    ];
    for (args, env) in cases {
        let mut cmd = relay_cmd();
        cmd.args(["--check-config", "--listen", "127.0.0.1:3478"])
            .args(&args)
            .env_remove("SOTTO_RELAY_AUTH_SECRET");
        if let Some(v) = env {
            cmd.env("SOTTO_RELAY_AUTH_SECRET", v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{args:?} env={env:?} passed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            stderr.contains("empty TURN REST secret")
                || stderr.contains("empty password")
                || stderr.contains("no credentials"),
            "{args:?} env={env:?}: {stderr}"
        );
    }
}

/// Values that would silently mean something else (every nonce stale, a
/// cap that drops every packet) fail the check with the setting named.
#[test]
fn check_config_refuses_values_that_change_meaning() {
    for (flag, value, setting) in [
        ("--nonce-lifetime", "0", "nonce_lifetime"),
        ("--bps-per-allocation", "1", "bps_per_allocation"),
        ("--bps-total", "2", "bps_total"),
    ] {
        let out = relay_cmd()
            .args(["--check-config", "--listen", "127.0.0.1:3478"])
            .args(["--auth-secret", "a-long-enough-secret", flag, value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {value} passed");
        assert!(stderr.contains(setting), "{flag} {value}: {stderr}");
    }
}

#[test]
fn sighup_reloads_credentials_and_sigterm_stops() {
    let dir = TempDir::new("reload");
    let users = dir.write("users", "alice:old-password\n");
    let (_peer, peer) = start_echo_peer("127.0.0.1");
    let mut relay = start_relay(&[
        "--realm",
        "r",
        "--listen",
        "127.0.0.1:0",
        "--users-file",
        users.to_str().unwrap(),
        "--allow-loopback-peers",
        "true",
        "--workers",
        "1",
    ]);
    let port = relay.udp.unwrap().port().to_string();
    let peer_port = peer.port().to_string();
    let run = |pw: &str| {
        uclient(&[
            "-c",
            "-n",
            "5",
            "-u",
            "alice",
            "-w",
            pw,
            "-e",
            "127.0.0.1",
            "-r",
            &peer_port,
            "-p",
            &port,
            "127.0.0.1",
        ])
    };
    assert_eq!(run("new-password").received, 0);
    std::fs::write(&users, "alice:new-password\n").unwrap();
    signal(relay.proc.0.id(), "-HUP");
    // The reload is asynchronous to this test: retry until it took effect.
    let mut back = 0;
    for _ in 0..20 {
        back = run("new-password").received;
        if back == 5 {
            break;
        }
    }
    assert_eq!(back, 5, "new password not accepted after SIGHUP");
    signal(relay.proc.0.id(), "-TERM");
    let status = relay.proc.0.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

/// `--check-config` (the unit's ExecStartPre) fails on what would fail or
/// misbehave at start: the TLS certificate and key are loaded (a missing
/// key, or a certificate file without a certificate, used to pass; the
/// latter then failed at start as "peer sent no certificates"), each
/// relay_ip is bound (one this host does not have used to pass, and then
/// every Allocate got 508), and a second relay_ip or external_ip of one
/// family is refused instead of ignored.
#[test]
fn check_config_loads_tls_and_binds_relay_ips() {
    let dir = TempDir::new("preflight");
    let users = dir.write("users", "alice:pw\n");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = dir.write("cert.pem", &ck.cert.pem());
    let key = dir.write("key.pem", &ck.signing_key.serialize_pem());
    let not_pem = dir.write("not-pem.pem", "not a pem\n");
    let missing = dir.0.join("missing-key.pem");
    let p = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let tls = |cert: &str, key: &str| {
        vec![
            "--listen-tls".to_owned(),
            "127.0.0.1:5349".to_owned(),
            "--tls-cert".to_owned(),
            cert.to_owned(),
            "--tls-key".to_owned(),
            key.to_owned(),
        ]
    };
    let check = |args: &[String]| {
        let out = relay_cmd()
            .args([
                "--check-config",
                "--listen",
                "127.0.0.1:3478",
                "--users-file",
            ])
            .arg(&users)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stderr) = check(&tls(&p(&cert), &p(&key)));
    assert!(ok, "{stderr}");
    let refused: Vec<(Vec<String>, Vec<String>)> = vec![
        (
            tls(&p(&cert), &p(&missing)),
            vec![p(&missing), "tls_key".into()],
        ),
        (
            tls(&p(&not_pem), &p(&key)),
            vec![p(&not_pem), "tls_cert".into(), "relay's own".into()],
        ),
        (
            vec!["--relay-ip".into(), "192.0.2.99".into()],
            vec!["relay_ip 192.0.2.99".into()],
        ),
        (
            vec!["--relay-ip".into(), "127.0.0.1,127.0.0.2".into()],
            vec!["relay_ip".into(), "127.0.0.2".into()],
        ),
        (
            vec!["--external-ip".into(), "1.2.3.4,5.6.7.8".into()],
            vec!["external_ip".into(), "5.6.7.8".into()],
        ),
    ];
    for (args, want) in refused {
        let (ok, stderr) = check(&args);
        assert!(!ok, "{args:?} passed the check");
        for w in want {
            assert!(stderr.contains(&w), "{args:?}: no {w:?} in {stderr}");
        }
        assert!(!stderr.contains("peer sent"), "{args:?}: {stderr}");
    }
    // Started anyway, the relay refuses to run rather than report READY
    // and fail every Allocate.
    let out = relay_cmd()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--relay-ip",
            "192.0.2.99",
            "--users-file",
        ])
        .arg(&users)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("READY"));
    assert!(stderr.contains("relay_ip 192.0.2.99"), "{stderr}");
}

/// One HTTP request to `addr`; the status code and the body.
fn http(addr: std::net::SocketAddr, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    c.write_all(request.as_bytes()).unwrap();
    let mut text = String::new();
    let _ = c.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// The metrics endpoint serves GET /metrics and /healthz only; it used
/// to answer every path and method with the metrics.
#[test]
fn metrics_endpoint_serves_metrics_and_health_only() {
    let dir = TempDir::new("metrics");
    let users = dir.write("users", "alice:pw\n");
    let metrics: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _relay = start_relay(&[
        "--listen",
        "127.0.0.1:0",
        "--users-file",
        users.to_str().unwrap(),
        "--metrics-listen",
        &metrics.to_string(),
    ]);
    let text = metrics_until(metrics, |t| t.contains("turn_allocations"));
    assert!(
        text.lines().next().unwrap_or("").contains(" 200 "),
        "{text}"
    );
    let get = |path: &str| http(metrics, &format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n"));
    assert_eq!(get("/healthz"), (200, "ok\n".into()));
    assert_eq!(get("/foo").0, 404);
    assert_eq!(get("/").0, 404);
    let (status, body) = http(metrics, "POST /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    assert_eq!(status, 405, "{body}");
    assert!(!body.contains("turn_"), "{body}");
}

/// Warnings an operator must see: loopback peers allowed, and a reload
/// that leaves TURN REST without a secret (every REST client refused). In
/// plain text when stderr is not a terminal (journald, files), and an
/// error's cause once.
#[test]
fn operator_warnings_in_plain_text() {
    let dir = TempDir::new("warnings");
    let users = dir.write("users", "alice:pw\n");
    let out = relay_cmd()
        .args(["--check-config", "--listen", "127.0.0.1:3478"])
        .args(["--allow-loopback-peers", "--users-file"])
        .arg(&users)
        .env("SOTTO_RELAY_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(stderr.contains("allow_loopback_peers"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "colour codes: {stderr:?}");

    let empty_password = dir.write("bad-users", "alice:\n");
    let out = relay_cmd()
        .args([
            "--check-config",
            "--listen",
            "127.0.0.1:3478",
            "--users-file",
        ])
        .arg(&empty_password)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.matches("empty password").count(), 1, "{stderr}");

    let secrets = dir.write("secrets", "a-long-enough-secret\n");
    let (relay, log) = start_relay_logged(&[
        "--listen",
        "127.0.0.1:0",
        "--users-file",
        users.to_str().unwrap(),
        "--auth-secrets-file",
        secrets.to_str().unwrap(),
    ]);
    std::fs::write(&secrets, "# rotated away\n").unwrap();
    signal(relay.proc.0.id(), "-HUP");
    let warning = loop {
        let line = log
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("no warning after the reload");
        if line.contains("without any TURN REST secret") {
            break line;
        }
    };
    assert!(warning.contains("WARN"), "{warning}");
    assert!(!warning.contains('\u{1b}'), "colour codes: {warning:?}");
}
