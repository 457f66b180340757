//! The `sotto-signald` binary as an operator runs it: environment,
//! signals, logs.

mod common;
#[path = "common/push_sink.rs"]
mod push_sink;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sotto_signalling::client::ClientEvent;
use sotto_signalling::protocol::{CallId, MessageKind};
use sotto_signalling::seal::CallPayload;

/// A running `sotto-signald`, killed on drop.
struct Signald {
    child: Child,
    base: String,
    stderr: PathBuf,
}

impl Drop for Signald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Signald {
    /// Starts it with `config` (TOML) and extra environment; waits (hang
    /// guard only) until it listens.
    fn start(dir: &Path, config: &str, env: &[(&str, &str)]) -> Self {
        match Self::try_start(dir, config, env, &[]) {
            Ok(s) => s,
            Err((status, stderr)) => panic!("sotto-signald exited ({status}): {stderr}"),
        }
    }

    /// Starts it with extra `args` too: running, or how it exited and
    /// what it said.
    fn try_start(
        dir: &Path,
        config: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Result<Self, (std::process::ExitStatus, String)> {
        let cfg = dir.join("signald.toml");
        let db = dir.join("signald.db");
        std::fs::write(
            &cfg,
            format!(
                "listen = \"127.0.0.1:0\"\ndatabase_url = \"sqlite://{}\"\n{config}",
                db.display()
            ),
        )
        .unwrap();
        let addr_file = dir.join("addr");
        let stderr = dir.join("stderr");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sotto-signald"));
        cmd.arg("--config")
            .arg(&cfg)
            .arg("--addr-file")
            .arg(&addr_file)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("SOTTO_SIGNALD_TURN_SECRET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut tries = 0;
        let addr = loop {
            if let Ok(a) = std::fs::read_to_string(&addr_file) {
                break a;
            }
            if let Some(status) = child.try_wait().unwrap() {
                return Err((status, std::fs::read_to_string(&stderr).unwrap_or_default()));
            }
            tries += 1;
            assert!(tries < 600, "sotto-signald did not start within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        };
        Ok(Self {
            child,
            base: format!("http://{addr}"),
            stderr,
        })
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits (hang guard only) for the process to exit.
    fn wait(&mut self) -> std::process::ExitStatus {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("sotto-signald did not exit within 30 s");
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// A proxy from the environment is not used for pushes to devices: it
/// would resolve the endpoint's name itself, past the resolver that
/// refuses special-purpose addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_to_devices_ignore_proxies_in_the_environment() {
    let (sink, mut pushes, _) = push_sink::start().await;
    // A "proxy" that counts who connects to it and answers nothing.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let (proxied_tx, mut proxied) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = proxy.accept().await {
            let _ = proxied_tx.send(());
            drop(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let vapid = dir.path().join("vapid.der");
    let config = format!(
        "[push]\nvapid_key_file = \"{}\"\nretry_base_ms = 10\nendpoint_allow_hosts = [\"127.0.0.1\"]\n",
        vapid.display()
    );
    let env = [
        ("HTTPS_PROXY", proxy_url.as_str()),
        ("HTTP_PROXY", proxy_url.as_str()),
        ("ALL_PROXY", proxy_url.as_str()),
        ("https_proxy", proxy_url.as_str()),
        ("http_proxy", proxy_url.as_str()),
        ("all_proxy", proxy_url.as_str()),
        ("NO_PROXY", ""),
        ("no_proxy", ""),
    ];
    let srv = Signald::start(dir.path(), &config, &env);
    let (alice, atok) = common::device(&srv.base).await;
    let (carol, ctok) = common::device(&srv.base).await;
    let (p256dh, auth) = push_sink::ua_keys();
    carol
        .put_push(&ctok, "webpush", &format!("{sink}/carol"), &p256dh, &auth)
        .await
        .unwrap();
    let carol_id = carol.device_id();
    let keys = alice.device_keys(&atok, &carol_id).await.unwrap();
    let mut conn = alice.connect(true);
    common::wait_for(&mut conn, "connected", |e| *e == ClientEvent::Connected).await;
    let id = conn
        .send(
            (&carol_id, &keys),
            CallId::new("c1").unwrap(),
            MessageKind::Offer,
            &CallPayload::default(),
        )
        .unwrap();
    common::wait_for(&mut conn, "queued", |e| common::queued(e, &id)).await;
    let got = tokio::time::timeout(Duration::from_secs(30), pushes.recv()).await;
    assert!(
        matches!(got, Ok(Some(_))),
        "the wake did not reach the push service; stderr: {}",
        srv.stderr()
    );
    assert!(
        proxied.try_recv().is_err(),
        "the push went through the proxy"
    );
}

/// SIGHUP is logged and changes nothing; SIGTERM still stops the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_does_not_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Signald::start(dir.path(), "", &[]);
    srv.signal("HUP");
    // Logged once handled; then it must still answer.
    for _ in 0..600 {
        if srv.stderr().contains("SIGHUP") {
            break;
        }
        if let Some(status) = srv.child.try_wait().unwrap() {
            panic!("SIGHUP ended sotto-signald: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let res = reqwest::get(format!("{}/healthz", srv.base)).await.unwrap();
    assert_eq!(res.status(), 200);
    srv.signal("TERM");
    assert!(srv.wait().success());
}

/// A login, a connection and its end are logged at info on standard
/// error, without colour codes when that is not a terminal; no secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_are_logged_without_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Signald::start(dir.path(), "", &[]);
    let (alice, token) = common::device(&srv.base).await;
    let mut conn = alice.connect(true);
    common::wait_for(&mut conn, "connected", |e| *e == ClientEvent::Connected).await;
    drop(conn);
    let id = alice.device_id().to_string();
    let mut log = String::new();
    for _ in 0..600 {
        log = srv.stderr();
        if log.contains("disconnected") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    srv.signal("TERM");
    assert!(srv.wait().success());
    for what in ["registered", "login", " connected", "disconnected"] {
        assert!(
            log.lines().any(|l| l.contains(what) && l.contains(&id)),
            "no {what:?} line for {id} in:\n{log}"
        );
    }
    assert!(!log.contains('\u{1b}'), "colour codes in:\n{log}");
    assert!(!log.contains(&token), "the session token was logged");
}

/// TURN settings that cannot work are refused at start, naming the
/// setting; a secret is never taken from the command line.
#[test]
fn unusable_turn_settings_are_refused() {
    let cases: [(&str, &[&str], &str); 4] = [
        ("[turn]\nsecret = \"\"\n", &[], "turn.secret"),
        (
            "[turn]\nsecret = \"0123456789abcdef\"\nuris = [\"http://nope\"]\n",
            &[],
            "turn.uris",
        ),
        ("", &["--turn-secret", "s3cret-on-argv"], "--turn-secret"),
        (
            "[turn]\nsecret_file = \"/nonexistent/turn-secret\"\n",
            &[],
            "/nonexistent/turn-secret",
        ),
    ];
    for (config, args, named) in cases {
        let dir = tempfile::tempdir().unwrap();
        match Signald::try_start(dir.path(), config, &[], args) {
            Ok(_) => panic!("started with {config:?} {args:?}"),
            Err((status, stderr)) => {
                assert!(!status.success());
                assert!(stderr.contains(named), "{named:?} not in: {stderr}");
            }
        }
    }
}

/// The secret from the environment or a file; a short one is warned about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_turn_secret_comes_from_the_environment_or_a_file() {
    let uris = "[turn]\nuris = [\"turn:relay.example.org:3478\"]\n";
    let dir = tempfile::tempdir().unwrap();
    let srv = Signald::start(dir.path(), uris, &[("SOTTO_SIGNALD_TURN_SECRET", "short")]);
    let (alice, token) = common::device(&srv.base).await;
    let creds = alice.turn_credentials(&token).await.unwrap();
    assert_eq!(creds.uris, ["turn:relay.example.org:3478"]);
    assert!(
        srv.stderr().contains("turn.secret is 5 bytes"),
        "{}",
        srv.stderr()
    );
    drop(srv);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("turn-secret");
    std::fs::write(&file, "0123456789abcdef0123\n").unwrap();
    let srv = Signald::try_start(
        dir.path(),
        uris,
        &[],
        &["--turn-secret-file", file.to_str().unwrap()],
    )
    .unwrap_or_else(|(s, e)| panic!("{s}: {e}"));
    let (alice, token) = common::device(&srv.base).await;
    let creds = alice.turn_credentials(&token).await.unwrap();
    // Signed with the file's secret, its newline left out.
    let expected = sotto_signalling::turn::credentials(
        b"0123456789abcdef0123",
        alice.device_id().as_str(),
        creds
            .username
            .split(':')
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            - creds.ttl,
        creds.ttl,
        creds.uris.clone(),
    );
    assert_eq!(creds.password, expected.password);
    assert!(!srv.stderr().contains("bytes: use 16"), "{}", srv.stderr());
}
