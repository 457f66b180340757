//! Two `sotto` processes call each other on loopback through a real
//! signald and a real sotto-relay (both in this test process): register,
//! listen, call relay-only with WAV in and out, Secure on both with the
//! same SAS, the callee hears what the caller sent, both exit 0 after the
//! hang-up and their media ports can be bound again.

use sotto_engine::call::wav::load_48k_mono;
use sotto_engine::sim::audio::compare;
use sotto_engine::zrtp::ZidCache;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const SOTTO: &str = env!("CARGO_BIN_EXE_sotto");

fn speech(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/speech")
        .join(rel)
}

/// A child process killed on drop; its stdout lines arrive on a channel.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(args: &[String]) -> Self {
        let mut child = Command::new(SOTTO)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                println!("{l}");
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (a hang guard, not a timing check) for a line starting with `prefix`.
    fn wait_line(&mut self, prefix: &str) -> String {
        loop {
            let l = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no line {prefix:?}; saw {:?}", self.seen));
            self.seen.push(l.clone());
            if l.starts_with(prefix) {
                return l;
            }
        }
    }

    /// Waits for exit and returns the status and every remaining line.
    fn finish(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let status = wait_exit(&mut self.child);
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(l);
        }
        (status, std::mem::take(&mut self.seen))
    }
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..1200 {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("sotto did not exit within 60 s");
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn register(server: &str, name: &str, dir: &Path) -> String {
    let out = Command::new(SOTTO)
        .args([
            "register",
            "--server",
            server,
            "--name",
            name,
            "--config-dir",
        ])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim()
        .strip_prefix("registered device ")
        .unwrap()
        .to_owned()
}

fn field<'a>(lines: &'a [String], prefix: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| l.strip_prefix(prefix))
}

/// A real relay and signald on loopback, and two registered config dirs.
struct World {
    dir: tempfile::TempDir,
    relay: sotto_relay::server::Server,
    signald: sotto_signalling::server::Running,
    bob_id: String,
}

impl World {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let secret = "two-process-test-secret".to_owned();
        let relay = sotto_relay::server::Server::start(
            sotto_relay::config::Options {
                listen: vec![lo],
                auth_secrets: vec![secret.clone()],
                allow_loopback_peers: Some(true),
                workers: Some(1),
                ..Default::default()
            }
            .resolve()
            .unwrap(),
        )
        .await
        .unwrap();
        let mut cfg = sotto_signalling::config::Config {
            listen: lo,
            database_url: format!("sqlite://{}", dir.path().join("signald.db").display()),
            ..Default::default()
        };
        cfg.turn.secret = Some(secret);
        cfg.turn.uris = vec![format!("turn:{}?transport=udp", relay.udp_addrs[0])];
        let signald = sotto_signalling::server::start(cfg, None).await.unwrap();
        let srv = format!("http://{}", signald.addr);
        let (ad, bd) = (dir.path().join("alice"), dir.path().join("bob"));
        let bob_id = tokio::task::spawn_blocking(move || {
            register(&srv, "alice", &ad);
            register(&srv, "bob", &bd)
        })
        .await
        .unwrap();
        Self {
            dir,
            relay,
            signald,
            bob_id,
        }
    }

    fn side(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// One relay-only call of `seconds` after Secure; (status, lines) of alice and bob.
    async fn call(&self, seconds: u32) -> (Ran, Ran) {
        let p = |p: &Path| p.to_str().unwrap().to_owned();
        let common = |who: &str, input: &Path| {
            vec![
                "--config-dir".to_owned(),
                p(&self.side(who)),
                "--input".into(),
                p(input),
                "--output".into(),
                p(&self.dir.path().join(format!("{who}_heard.wav"))),
                "--bind".into(),
                "127.0.0.1:0".into(),
                "--relay-only".into(),
            ]
        };
        let mut bargs: Vec<String> = vec!["listen".into(), "--once".into(), "--auto-answer".into()];
        bargs.extend(common("bob", &speech(B_SPEECH)));
        let mut aargs: Vec<String> = vec![
            "call".into(),
            self.bob_id.clone(),
            "--seconds".into(),
            seconds.to_string(),
        ];
        aargs.extend(common("alice", &speech(A_SPEECH)));
        tokio::task::spawn_blocking(move || {
            let mut bob = Proc::spawn(&bargs);
            bob.wait_line("listening as");
            let alice = Proc::spawn(&aargs).finish();
            // A caller that failed leaves the callee listening: say why
            // now rather than after bob's 60 s guard.
            assert!(alice.0.success(), "alice: {:?} {:?}", alice.0, alice.1);
            (alice, bob.finish())
        })
        .await
        .unwrap()
    }

    async fn stop(self) {
        self.relay.shutdown().await;
        self.signald.shutdown().await;
    }
}

type Ran = (std::process::ExitStatus, Vec<String>);

const A_SPEECH: &str = "asterisk_en_16k_g722dec/dir-intro.wav";
const B_SPEECH: &str = "asterisk_en_8k/demo-nogo.wav";

fn sas(l: &[String]) -> String {
    field(l, "secure sas=")
        .map(|s| s.split_whitespace().next().unwrap().to_owned())
        .unwrap_or_else(|| panic!("never secure: {l:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sotto_processes_call_through_signald_and_relay() {
    let w = World::start().await;
    let ((ast, alines), (bst, blines)) = w.call(4).await;
    assert!(ast.success(), "alice: {ast:?} {alines:?}");
    assert!(bst.success(), "bob: {bst:?} {blines:?}");
    assert_eq!(sas(&alines), sas(&blines));
    assert_eq!(field(&alines, "path "), Some("Relay"));
    assert_eq!(field(&blines, "path "), Some("Relay"));
    assert_eq!(field(&alines, "ended "), Some("LocalHangup"));
    assert_eq!(field(&blines, "ended "), Some("RemoteHangup"));

    // Bob heard Alice's speech. Each recording starts when its side went
    // Secure, so 500 ms of leading silence turns any lead into a lag.
    let sent = load_48k_mono(speech(A_SPEECH)).unwrap();
    let mut heard = vec![0i16; 24_000];
    heard.extend(load_48k_mono(w.dir.path().join("bob_heard.wav")).unwrap());
    let sim = compare(&sent, &heard, Duration::from_millis(1500));
    println!("alice -> bob through two processes: {sim:?}");
    // Measured on loopback: envelope about 0.9; unrelated audio about 0.3.
    assert!(sim.windows >= 5, "{sim:?}");
    assert!(sim.median_envelope_correlation > 0.6, "{sim:?}");

    // No socket left behind: every media port binds again.
    for l in alines.iter().chain(&blines) {
        if let Some(a) = l.strip_prefix("media socket ") {
            std::net::UdpSocket::bind(a.parse::<SocketAddr>().unwrap())
                .expect("media port still held after exit");
        }
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_retained_secret_is_a_cache_mismatch_warning() {
    let w = World::start().await;
    // First call: both caches learn the retained secret; no warning.
    let ((ast, alines), (bst, _)) = w.call(1).await;
    assert!(ast.success() && bst.success());
    assert!(
        !alines.iter().any(|l| l.contains("cache mismatch")),
        "{alines:?}"
    );
    let a_cache = ZidCache::load(&w.side("alice").join("zid.cache")).unwrap();
    let b_path = w.side("bob").join("zid.cache");
    let mut b_cache = ZidCache::load(&b_path).unwrap();
    assert_eq!((a_cache.len(), b_cache.len()), (1, 1), "caches persisted");
    // Bob loses his secret for Alice (a reinstalled phone, or someone
    // else presenting Bob's ZID): Alice expected one and must say so.
    b_cache.remove(&a_cache.self_zid());
    b_cache.save(&b_path).unwrap();
    let ((_, alines), _) = w.call(1).await;
    assert!(
        alines
            .iter()
            .any(|l| l.starts_with("warning: cache mismatch")),
        "{alines:?}"
    );
    assert!(
        field(&alines, "secure sas=")
            .unwrap()
            .contains("verified=false")
    );
    w.stop().await;
}
