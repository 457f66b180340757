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
