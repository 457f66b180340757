//! What the process tests share: `sotto` child processes, and a real
//! signald and sotto-relay on loopback with registered config dirs.
// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const SOTTO: &str = env!("CARGO_BIN_EXE_sotto");

pub const A_SPEECH: &str = "asterisk_en_16k_g722dec/dir-intro.wav";
pub const B_SPEECH: &str = "asterisk_en_8k/demo-nogo.wav";

pub fn speech(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/speech")
        .join(rel)
}

/// A child process killed on drop; its stdout lines arrive on a channel,
/// its stderr is echoed and kept for [`Proc::finish_with_stderr`].
pub struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// Its stdin, when it is a pipe: open (with no data) until dropped.
    stdin: Option<ChildStdin>,
}

impl Proc {
    /// `sotto ARGS` with stdin at its end (/dev/null).
    pub fn spawn(args: &[String]) -> Self {
        Self::spawn_with(args, Stdio::null())
    }

    /// `sotto ARGS` with stdin a pipe that this keeps open, with no data
    /// but what [`Proc::send_line`] writes: a script driving the phone.
    pub fn spawn_piped(args: &[String]) -> Self {
        Self::spawn_with(args, Stdio::piped())
    }

    fn spawn_with(args: &[String], stdin: Stdio) -> Self {
        let mut child = Command::new(SOTTO)
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("{l}");
                all.push_str(&l);
                all.push('\n');
            }
            all
        });
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
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// Writes `line` to its stdin pipe (see [`Proc::spawn_piped`]).
    pub fn send_line(&mut self, line: &str) {
        let pipe = self.stdin.as_mut().expect("spawned with a stdin pipe");
        writeln!(pipe, "{line}").unwrap();
        pipe.flush().unwrap();
    }

    /// Waits (a hang guard, not a timing check) for a line starting with
    /// `prefix`. The guard is on the whole wait, so that other lines
    /// (statistics every few seconds) cannot keep it waiting for ever.
    pub fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let l = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no line {prefix:?}; saw {:?}", self.seen));
            self.seen.push(l.clone());
            if l.starts_with(prefix) {
                return l;
            }
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        kill(self.child.id(), "TERM");
    }

    /// Sends SIGINT (what Ctrl-C sends).
    pub fn interrupt(&self) {
        kill(self.child.id(), "INT");
    }

    /// Waits for exit and returns the status and every remaining line.
    pub fn finish(mut self) -> Ran {
        let status = wait_exit(&mut self.child);
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(l);
        }
        (status, std::mem::take(&mut self.seen))
    }

    /// [`Proc::finish`], and everything it wrote to stderr.
    pub fn finish_with_stderr(mut self) -> (std::process::ExitStatus, Vec<String>, String) {
        let err = self.stderr.take().unwrap();
        let (status, lines) = self.finish();
        (status, lines, err.join().unwrap())
    }
}

/// Sends process `pid` the signal `sig` (`TERM`, `INT`…).
pub fn kill(pid: u32, sig: &str) {
    let st = Command::new("sh")
        .args(["-c", "kill -\"$0\" \"$1\""])
        .args([sig.to_owned(), pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
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

/// Runs `sotto register`; returns the device id.
pub fn register(server: &str, name: &str, dir: &Path) -> String {
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

/// Points `side`'s config at `server` instead of the real signald.
pub fn set_server(side: &Path, server: &str) {
    let cfg = side.join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("server = "))
        .unwrap()
        .to_owned();
    std::fs::write(&cfg, text.replace(&line, &format!("server = \"{server}\""))).unwrap();
}

/// The rest of the first line starting with `prefix`.
pub fn field<'a>(lines: &'a [String], prefix: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| l.strip_prefix(prefix))
}

/// Exit status and stdout lines of a finished `sotto`.
pub type Ran = (std::process::ExitStatus, Vec<String>);

/// A real relay and signald on loopback, and registered config dirs.
pub struct World {
    pub dir: tempfile::TempDir,
    relay: sotto_relay::server::Server,
    signald: sotto_signalling::server::Running,
    /// Device ids by name.
    pub ids: BTreeMap<String, String>,
}

impl World {
    /// Alice and Bob, with TURN.
    pub async fn start() -> Self {
        Self::start_with(&["alice", "bob"], true).await
    }

    /// `names` registered; signald hands out TURN credentials if `turn`.
    pub async fn start_with(names: &[&str], turn: bool) -> Self {
        Self::start_tuned(names, turn, |_| {}).await
    }

    /// [`World::start_with`], with signald's config changed by `tune`.
    pub async fn start_tuned(
        names: &[&str],
        turn: bool,
        tune: impl FnOnce(&mut sotto_signalling::config::Config),
    ) -> Self {
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
        if turn {
            cfg.turn.secret = Some(secret);
            cfg.turn.uris = vec![format!("turn:{}?transport=udp", relay.udp_addrs[0])];
        }
        tune(&mut cfg);
        let signald = sotto_signalling::server::start(cfg, None).await.unwrap();
        let srv = format!("http://{}", signald.addr);
        let sides: Vec<_> = names
            .iter()
            .map(|n| (n.to_string(), dir.path().join(n)))
            .collect();
        let ids = tokio::task::spawn_blocking(move || {
            sides
                .into_iter()
                .map(|(n, d)| {
                    let id = register(&srv, &n, &d);
                    (n, id)
                })
                .collect()
        })
        .await
        .unwrap();
        Self {
            dir,
            relay,
            signald,
            ids,
        }
    }

    pub fn side(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// signald's SQLite database.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("signald.db")
    }

    /// Arguments of `who` for a headless call: config dir, `input` WAV in,
    /// `<who>_heard.wav` out, loopback media.
    pub fn args(&self, who: &str, input: &str) -> Vec<String> {
        let p = |p: &Path| p.to_str().unwrap().to_owned();
        vec![
            "--config-dir".to_owned(),
            p(&self.side(who)),
            "--input".into(),
            p(&speech(input)),
            "--output".into(),
            p(&self.dir.path().join(format!("{who}_heard.wav"))),
            "--bind".into(),
            "127.0.0.1:0".into(),
        ]
    }

    /// One relay-only call of `seconds` after Secure; (status, lines) of alice and bob.
    pub async fn call(&self, seconds: u32) -> (Ran, Ran) {
        let mut bargs: Vec<String> = vec!["listen".into(), "--once".into(), "--auto-answer".into()];
        bargs.extend(self.args("bob", B_SPEECH));
        bargs.push("--relay-only".into());
        let mut aargs: Vec<String> = vec![
            "call".into(),
            self.ids["bob"].clone(),
            "--seconds".into(),
            seconds.to_string(),
        ];
        aargs.extend(self.args("alice", A_SPEECH));
        aargs.push("--relay-only".into());
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

    pub async fn stop(self) {
        self.relay.shutdown().await;
        self.signald.shutdown().await;
    }
}
