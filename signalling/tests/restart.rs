//! The real `sotto-signald` binary, killed with SIGKILL and stopped with
//! SIGTERM, loses no queued offer: they arrive in order after restart.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use sotto_signalling::client::{ClientEvent, SignalClient};
use sotto_signalling::protocol::{CallId, MessageKind};
use sotto_signalling::seal::{CallPayload, DeviceIdentity};

/// A signald child process, killed if still running when dropped.
struct Signald {
    child: Child,
    base: String,
}

impl Signald {
    fn start(dir: &Path) -> Self {
        let addr_file = dir.join("addr");
        let _ = std::fs::remove_file(&addr_file);
        let child = Command::new(env!("CARGO_BIN_EXE_sotto-signald"))
            .arg("--listen=127.0.0.1:0")
            .arg(format!(
                "--database-url=sqlite://{}",
                dir.join("signald.db").display()
            ))
            .arg(format!("--addr-file={}", addr_file.display()))
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("spawning sotto-signald");
        let base = wait_for_file(&addr_file);
        Self {
            child,
            base: format!("http://{base}"),
        }
    }

    fn signal(&mut self, sig: &str) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Signald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_file(path: &PathBuf) -> String {
    for _ in 0..1500 {
        if let Ok(s) = std::fs::read_to_string(path) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("sotto-signald did not start");
}

async fn send_offer(alice: &SignalClient, bob: &SignalClient, call: &str) {
    let token = alice.login().await.unwrap();
    let bob_id = bob.device_id();
    let keys = alice.device_keys(&token, &bob_id).await.unwrap();
    let mut conn = alice.connect(true);
    let id = conn
        .send(
            (&bob_id, &keys),
            CallId::new(call).unwrap(),
            MessageKind::Offer,
            &CallPayload::default(),
        )
        .unwrap();
    // Accepted means committed to the database.
    common::wait_for(&mut conn, "offer accepted", |e| common::stored(e, &id)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_offers_survive_sigkill_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let alice_id = Arc::new(DeviceIdentity::generate());
    let bob_id = Arc::new(DeviceIdentity::generate());

    let mut node = Signald::start(dir.path());
    let alice = SignalClient::new(&node.base, alice_id.clone());
    let bob = SignalClient::new(&node.base, bob_id.clone());
    alice.register().await.unwrap();
    bob.register().await.unwrap();
    send_offer(&alice, &bob, "call-1").await;
    let status = node.signal("KILL");
    assert!(!status.success());

    let mut node = Signald::start(dir.path());
    let alice = SignalClient::new(&node.base, alice_id.clone());
    let bob_at = SignalClient::new(&node.base, bob_id.clone());
    send_offer(&alice, &bob_at, "call-2").await;
    let status = node.signal("TERM");
    assert!(status.success(), "graceful shutdown on SIGTERM exits 0");

    let node = Signald::start(dir.path());
    let bob = SignalClient::new(&node.base, bob_id);
    let mut conn = bob.connect(true);
    let mut calls = Vec::new();
    while calls.len() < 2 {
        let ev = common::wait_for(&mut conn, "queued offers", |e| {
            matches!(e, ClientEvent::Message { .. })
        })
        .await;
        if let ClientEvent::Message { envelope, .. } = ev {
            assert_eq!(envelope.kind, MessageKind::Offer);
            calls.push(envelope.call_id.to_string());
        }
    }
    assert_eq!(calls, ["call-1", "call-2"]);
}
