//! Ctrl-C (SIGINT) stops `sotto call` at every stage: while signald is
//! hung before any call exists, the process exits at once with a message
//! and 130 (not after the client's timeouts, nor killed without a word);
//! once the offer is out, the callee hears a hang-up and stops ringing.
//! A call hung up before it was Secure never took place: a failure for
//! both sides, and nothing is recorded.

mod common;

use common::{A_SPEECH, B_SPEECH, Proc, World, field, set_server};
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// Hang guard for a readiness event (not a timing check).
const GUARD: Duration = Duration::from_secs(60);

/// A TCP proxy in front of signald that forwards both ways until a
/// request contains `stall_at`; that request is never forwarded, its
/// connection is held open unanswered, and [`Stall::stalled`] fires.
/// It listens from [`Stall::bind`] on, so that signald can be told its
/// origin (a login names the origin the device signed it for), and
/// forwards from [`Stall::forward_to`] on.
struct Stall {
    addr: SocketAddr,
    listener: Option<TcpListener>,
    stall_at: &'static [u8],
    stalled: mpsc::Receiver<()>,
    tx: mpsc::Sender<()>,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

/// A `stall_at` no request contains: a proxy that only forwards.
const NEVER: &[u8] = b"\0never\0";

impl Stall {
    fn bind(stall_at: &'static [u8]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (tx, stalled) = mpsc::channel();
        Self {
            addr: listener.local_addr().unwrap(),
            listener: Some(listener),
            stall_at,
            stalled,
            tx,
            held: Arc::default(),
        }
    }

    /// The URL a device reaches signald at through this proxy.
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn forward_to(&mut self, upstream: SocketAddr) {
        let listener = self.listener.take().expect("forwarding once");
        let (tx, keep, stall_at) = (self.tx.clone(), Arc::clone(&self.held), self.stall_at);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(upstream) else {
                    return;
                };
                let (mut from_server, mut to_client) =
                    (server.try_clone().unwrap(), client.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_server, &mut to_client);
                    let _ = to_client.shutdown(Shutdown::Write);
                });
                let (tx, keep) = (tx.clone(), Arc::clone(&keep));
                std::thread::spawn(move || {
                    let (mut client, mut server) = (client, server);
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match client.read(&mut buf) {
                            Ok(0) | Err(_) => {
                                let _ = server.shutdown(Shutdown::Write);
                                return;
                            }
                            Ok(n) => n,
                        };
                        if buf[..n].windows(stall_at.len()).any(|w| w == stall_at) {
                            keep.lock().unwrap().extend([client, server]);
                            let _ = tx.send(());
                            return;
                        }
                        if server.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }
}

/// Alice and Bob (with TURN if `turn`), each reaching signald through
/// one of `proxies`, in that order; signald answers to their origins.
async fn world_behind(proxies: [&mut Stall; 2], turn: bool) -> World {
    let origins = proxies.iter().map(|p| p.url()).collect();
    let w = World::start_tuned(&["alice", "bob"], turn, |c| c.public_origins = origins).await;
    let signald = server_addr(&w);
    for (side, proxy) in ["alice", "bob"].into_iter().zip(proxies) {
        proxy.forward_to(signald);
        set_server(&w.side(side), &proxy.url());
    }
    w
}

/// The real signald's address, from Alice's config.
fn server_addr(w: &World) -> SocketAddr {
    let cfg = std::fs::read_to_string(w.side("alice").join("config.toml")).unwrap();
    let url = cfg
        .lines()
        .find_map(|l| l.strip_prefix("server = "))
        .unwrap()
        .trim_matches('"');
    url.strip_prefix("http://").unwrap().parse().unwrap()
}

fn call_args(w: &World) -> Vec<String> {
    let mut a = vec!["call".to_owned(), w.ids["bob"].clone()];
    a.extend(w.args("alice", A_SPEECH));
    a
}

/// SIGINT to a `sotto call` stuck on a signald that never answers:
/// exits 130 with a message naming what it was doing.
fn interrupted_while_stuck(w: &World, proc_ready: impl FnOnce(), doing: &str) {
    let alice = Proc::spawn(&call_args(w));
    // The request is in flight (the handler was installed before it).
    proc_ready();
    alice.interrupt();
    let (st, lines, err) = alice.finish_with_stderr();
    assert_eq!(st.code(), Some(130), "{st:?} {lines:?} {err}");
    assert!(
        err.contains(&format!("sotto: SIGINT: stopped while {doing}"))
            && err.contains("before the call was placed"),
        "{err}"
    );
    assert!(!lines.iter().any(|l| l.starts_with("ended ")), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_signald_never_answers_exits_at_once() {
    let w = World::start_with(&["alice", "bob"], false).await;
    let w = tokio::task::spawn_blocking(move || {
        // A server that accepts the connection and never says a word.
        let hung = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", hung.local_addr().unwrap());
        set_server(&w.side("alice"), &url);
        let (tx, accepted) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok((conn, _)) = hung.accept() {
                let _ = tx.send(conn);
            }
        });
        let mut held = None;
        interrupted_while_stuck(
            &w,
            || held = Some(accepted.recv_timeout(GUARD).expect("sotto connected")),
            // What the user sees: logging in (it registers again first).
            &format!("logging in to signald at {url}"),
        );
        drop(held);
        w
    })
    .await
    .unwrap();
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_fetching_the_callees_keys_exits_at_once() {
    // Logged in and connected through the proxy; the key lookup hangs.
    let mut proxy = Stall::bind(b"GET /v1/devices/");
    let w = world_behind([&mut proxy, &mut Stall::bind(NEVER)], false).await;
    let w = tokio::task::spawn_blocking(move || {
        let url = proxy.url();
        interrupted_while_stuck(
            &w,
            || proxy.stalled.recv_timeout(GUARD).expect("keys requested"),
            &format!("fetching the callee's keys from signald at {url}"),
        );
        w
    })
    .await
    .unwrap();
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_fetching_turn_credentials_exits_at_once() {
    // Before, the stop waited for the request's timeout and was then
    // taken for a hang-up of a call placed after all.
    let mut proxy = Stall::bind(b"GET /v1/turn");
    let w = world_behind([&mut proxy, &mut Stall::bind(NEVER)], true).await;
    let w = tokio::task::spawn_blocking(move || {
        let url = proxy.url();
        interrupted_while_stuck(
            &w,
            || proxy.stalled.recv_timeout(GUARD).expect("TURN requested"),
            &format!("fetching TURN credentials from signald at {url}"),
        );
        w
    })
    .await
    .unwrap();
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_the_callee_rings_hangs_up_and_it_stops_ringing() {
    let w = World::start().await;
    let w = tokio::task::spawn_blocking(move || {
        // Bob does not answer: his phone rings until told otherwise.
        let mut bargs = vec!["listen".to_owned(), "--once".to_owned()];
        bargs.extend(w.args("bob", B_SPEECH));
        let mut bob = Proc::spawn(&bargs);
        bob.wait_line("listening as");
        let alice = Proc::spawn(&call_args(&w));
        // Bob rings: Alice's offer is out.
        bob.wait_line("ringing: a answer");
        alice.interrupt();
        // Stopped before the call took place: it exits as a shell
        // reports SIGINT, as a stop before the offer went out does.
        let (ast, alines, aerr) = alice.finish_with_stderr();
        assert_eq!(ast.code(), Some(130), "alice: {ast:?} {alines:?}");
        assert!(
            aerr.contains("sotto: SIGINT: stopped while connecting the call, before it was secure"),
            "{aerr}"
        );
        assert_eq!(field(&alines, "ended "), Some("LocalHangup"));
        // The cancel reached Bob: no longer ringing, and (--once) done,
        // with a call that never took place.
        assert_eq!(bob.wait_line("ended "), "ended RemoteHangup");
        let (bst, blines, berr) = bob.finish_with_stderr();
        assert_eq!(bst.code(), Some(1), "bob: {bst:?} {blines:?}");
        assert!(
            berr.contains("the call never connected: the other side hung up before it was secure"),
            "{berr}"
        );
        w
    })
    .await
    .unwrap();
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_the_callee_hangs_up_while_ringing_fails_and_records_nothing() {
    let w = World::start().await;
    let w = tokio::task::spawn_blocking(move || {
        let mut bargs = vec!["listen".to_owned(), "--once".to_owned()];
        bargs.extend(w.args("bob", B_SPEECH));
        let mut bob = Proc::spawn(&bargs);
        bob.wait_line("listening as");
        let heard = w.dir.path().join("alice_heard.wav");
        std::fs::write(&heard, "an earlier recording").unwrap();
        let alice = Proc::spawn(&call_args(&w));
        bob.wait_line("ringing: a answer");
        // Bob hangs up instead of answering: listen's stop, a clean exit.
        bob.terminate();
        let (bst, blines) = bob.finish();
        assert!(bst.success(), "bob: {bst:?} {blines:?}");
        // Before, Alice exited 0 after `ended RemoteHangup` and wrote an
        // empty recording over the file.
        let (ast, alines, aerr) = alice.finish_with_stderr();
        assert_eq!(field(&alines, "ended "), Some("RemoteHangup"));
        assert_eq!(ast.code(), Some(1), "alice: {ast:?} {alines:?}");
        assert!(
            aerr.contains("the call never connected: the other side hung up before it was secure"),
            "{aerr}"
        );
        assert_eq!(
            std::fs::read_to_string(&heard).unwrap(),
            "an earlier recording"
        );
        w
    })
    .await
    .unwrap();
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_listen_sets_up_a_call_declines_it_and_exits() {
    // Bob's TURN lookup for the incoming call never comes back.
    let (mut plain, mut proxy) = (Stall::bind(NEVER), Stall::bind(b"GET /v1/turn"));
    let w = world_behind([&mut plain, &mut proxy], true).await;
    let w = tokio::task::spawn_blocking(move || {
        let _plain = plain;
        let mut bargs = vec!["listen".to_owned(), "--auto-answer".to_owned()];
        bargs.extend(w.args("bob", B_SPEECH));
        let mut bob = Proc::spawn(&bargs);
        bob.wait_line("listening as");
        let alice = Proc::spawn(&call_args(&w));
        proxy.stalled.recv_timeout(GUARD).expect("TURN requested");
        bob.terminate();
        let (bst, blines) = bob.finish();
        assert!(bst.success(), "bob: {bst:?} {blines:?}");
        assert!(
            blines
                .iter()
                .any(|l| l.starts_with("SIGTERM: declining the call from")),
            "{blines:?}"
        );
        assert_eq!(
            blines.last().map(String::as_str),
            Some("SIGTERM: stopped listening")
        );
        // Alice's phone stops ringing: the decline reached her.
        let (ast, alines) = alice.finish();
        assert!(!ast.success(), "{alines:?}");
        assert_eq!(field(&alines, "ended "), Some("RemoteDeclined"));
        w
    })
    .await
    .unwrap();
    w.stop().await;
}
