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
            .env_remove("RUST_LOG")
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
                panic!(
                    "sotto-signald exited ({status}): {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
            tries += 1;
            assert!(tries < 600, "sotto-signald did not start within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        };
        Self {
            child,
            base: format!("http://{addr}"),
            stderr,
        }
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
