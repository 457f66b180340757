//! `sotto listen` and `sotto call` as long-running processes: a listener
//! outlives its login session, declines a call it cannot take (and a
//! second caller during a call) and keeps listening, records each call to
//! its own file, and SIGTERM hangs up the call in progress so the peer
//! hears it. A stdin that is an open pipe with no data (a script driving
//! the phone) keeps neither alive, and its lines reach the call in
//! progress, the second as well as the first.

mod common;

use common::{A_SPEECH, B_SPEECH, Proc, SOTTO, World, field};
use sotto_engine::call::wav::load_48k_mono;

/// The rest of the last line starting with `prefix`.
fn last<'a>(lines: &'a [String], prefix: &str) -> Option<&'a str> {
    lines.iter().rev().find_map(|l| l.strip_prefix(prefix))
}

fn listen(w: &World, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec!["listen".into(), "--auto-answer".into()];
    a.extend(extra.iter().map(|s| s.to_string()));
    a.extend(w.args("bob", B_SPEECH));
    a
}

fn call(w: &World, who: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec!["call".into(), w.ids["bob"].clone()];
    a.extend(extra.iter().map(|s| s.to_string()));
    a.extend(w.args(who, A_SPEECH));
    a
}

/// Deletes every session from signald's database: each token expires now.
fn expire_sessions(w: &World) -> u64 {
    let url = format!("sqlite://{}", w.db().display());
    tokio::runtime::Handle::current().block_on(async {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let n = sqlx::query("DELETE FROM sessions")
            .execute(&pool)
            .await
            .unwrap()
            .rows_affected();
        pool.close().await;
        n
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_logs_in_again_once_its_session_expired() {
    let w = World::start().await;
    let w = tokio::task::spawn_blocking(move || {
        let mut bob = Proc::spawn(&listen(&w, &["--once"]));
        bob.wait_line("listening as");
        // What signald does once session_ttl_s has passed.
        assert!(expire_sessions(&w) >= 1, "bob's session was stored");
        let (ast, alines) = Proc::spawn(&call(&w, "alice", &["--seconds", "1"])).finish();
        assert!(ast.success(), "alice: {ast:?} {alines:?}");
        let (bst, blines) = bob.finish();
        assert!(bst.success(), "bob: {bst:?} {blines:?}");
        assert_eq!(field(&blines, "ended "), Some("RemoteHangup"));
        w
    })
    .await
    .unwrap();
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_fails_here_is_declined_and_listen_goes_on() {
    // No TURN at signald: a relay-only callee cannot take any call.
    let w = World::start_with(&["alice", "bob"], false).await;
    let w = tokio::task::spawn_blocking(move || {
        // A missing --input stops listen at start, not at the first call.
        let mut bad = listen(&w, &[]);
        let i = bad.iter().position(|a| a == "--input").unwrap();
        bad[i + 1] = w.dir.path().join("missing.wav").display().to_string();
        let (st, lines) = Proc::spawn(&bad).finish();
        assert!(!st.success(), "{lines:?}");
        assert!(
            !lines.iter().any(|l| l.starts_with("listening as")),
            "{lines:?}"
        );

        let mut bob = Proc::spawn(&listen(&w, &["--relay-only"]));
        bob.wait_line("listening as");
        let (ast, alines) = Proc::spawn(&call(&w, "alice", &[])).finish();
        assert!(!ast.success(), "{alines:?}");
        assert_eq!(field(&alines, "ended "), Some("RemoteDeclined"));
        let why = bob.wait_line("call from ");
        assert!(why.contains("TURN") && why.ends_with("declined"), "{why}");
        // Still listening: it ends only when told to.
        bob.terminate();
        let (bst, blines) = bob.finish();
        assert!(bst.success(), "bob: {bst:?} {blines:?}");
        assert!(
            blines.iter().any(|l| l == "SIGTERM: stopped listening"),
            "{blines:?}"
        );
        w
    })
    .await
    .unwrap();
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hangs_up_and_a_second_caller_hears_busy() {
    let w = World::start_with(&["alice", "bob", "carol"], true).await;
    let w = tokio::task::spawn_blocking(move || {
        let mut bob = Proc::spawn(&listen(&w, &[]));
        bob.wait_line("listening as");
        let mut alice = Proc::spawn(&call(&w, "alice", &[]));
        alice.wait_line("secure ");
        bob.wait_line("secure ");

        // Carol calls Bob during the call: declined, not left ringing.
        let (cst, clines) = Proc::spawn(&call(&w, "carol", &[])).finish();
        assert!(!cst.success(), "{clines:?}");
        assert_eq!(field(&clines, "ended "), Some("RemoteDeclined"));
        bob.wait_line("declined a call from");

        // SIGTERM to the caller: a hang-up Bob hears; Bob listens on.
        alice.terminate();
        let (ast, alines) = alice.finish();
        assert!(ast.success(), "alice: {ast:?} {alines:?}");
        assert_eq!(field(&alines, "ended "), Some("LocalHangup"));
        assert_eq!(bob.wait_line("ended "), "ended RemoteHangup");

        // SIGTERM to the listener mid-call: Alice hears the hang-up.
        let alice = Proc::spawn(&call(&w, "alice", &[]));
        bob.wait_line("secure ");
        bob.terminate();
        let (ast, alines) = alice.finish();
        assert_eq!(field(&alines, "ended "), Some("RemoteHangup"), "{alines:?}");
        assert!(ast.success(), "alice: {ast:?} {alines:?}");
        let (bst, blines) = bob.finish();
        assert!(bst.success(), "bob: {bst:?} {blines:?}");
        assert_eq!(last(&blines, "ended "), Some("LocalHangup"));
        w
    })
    .await
    .unwrap();
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_and_listen_once_exit_after_the_call_while_stdin_is_an_open_pipe() {
    let w = World::start().await;
    let w = tokio::task::spawn_blocking(move || {
        // Both driven by scripts whose pipes stay open and say nothing.
        let mut bob = Proc::spawn_piped(&listen(&w, &["--once"]));
        bob.wait_line("listening as");
        let alice = Proc::spawn_piped(&call(&w, "alice", &["--seconds", "1"]));
        // Hang guards: before, each printed `ended` and stayed alive until
        // its stdin had a line or closed.
        let (ast, alines) = alice.finish();
        assert!(ast.success(), "alice: {ast:?} {alines:?}");
        assert_eq!(field(&alines, "ended "), Some("LocalHangup"));
        let (bst, blines) = bob.finish();
        assert!(bst.success(), "bob: {bst:?} {blines:?}");
        assert_eq!(field(&blines, "ended "), Some("RemoteHangup"));
        w
    })
    .await
    .unwrap();
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_sent_during_the_second_call_is_acted_on_and_sigterm_ends_listen_while_stdin_is_open()
{
    let w = World::start().await;
    let w = tokio::task::spawn_blocking(move || {
        let mut bob = Proc::spawn_piped(&listen(&w, &[]));
        bob.wait_line("listening as");
        // A first call, over without a key.
        let (ast, alines) = Proc::spawn(&call(&w, "alice", &["--seconds", "1"])).finish();
        assert!(ast.success(), "alice: {ast:?} {alines:?}");
        assert_eq!(bob.wait_line("ended "), "ended RemoteHangup");
        // Bob hangs up the second with `q`. Before, a read left behind by
        // the first call took the line, and the call went on.
        let alice = Proc::spawn(&call(&w, "alice", &[]));
        bob.wait_line("secure ");
        bob.send_line("q");
        assert_eq!(bob.wait_line("ended "), "ended LocalHangup");
        let (ast, alines) = alice.finish();
        assert!(ast.success(), "alice: {ast:?} {alines:?}");
        assert_eq!(field(&alines, "ended "), Some("RemoteHangup"));
        // SIGTERM between calls, stdin still open: it exits (a hang guard).
        bob.terminate();
        let (bst, blines) = bob.finish();
        assert!(bst.success(), "bob: {bst:?} {blines:?}");
        assert_eq!(
            blines.last().map(String::as_str),
            Some("SIGTERM: stopped listening")
        );
        w
    })
    .await
    .unwrap();
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_records_each_call_to_its_own_file() {
    let w = World::start().await;
    let w = tokio::task::spawn_blocking(move || {
        let first = w.dir.path().join("bob_heard.wav");
        let second = w.dir.path().join("bob_heard-2.wav");
        let mut bob = Proc::spawn(&listen(&w, &[]));
        bob.wait_line("listening as");
        let mut kept = Vec::new();
        for (n, file) in [(1, &first), (2, &second)] {
            let (ast, alines) = Proc::spawn(&call(&w, "alice", &["--seconds", "1"])).finish();
            assert!(ast.success(), "call {n}: {ast:?} {alines:?}");
            let wrote = bob.wait_line("wrote ");
            assert!(
                wrote.starts_with(&format!("wrote {} (", file.display())),
                "call {n}: {wrote}"
            );
            kept.push(std::fs::read(&first).unwrap());
        }
        // The first call's recording is still there, untouched by the
        // second call, whose recording is beside it.
        assert!(kept[0] == kept[1], "the second call overwrote the first");
        for file in [&first, &second] {
            let heard = load_48k_mono(file).unwrap();
            assert!(!heard.is_empty(), "{}", file.display());
        }
        bob.terminate();
        let (bst, blines) = bob.finish();
        assert!(bst.success(), "bob: {bst:?} {blines:?}");
        w
    })
    .await
    .unwrap();
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_keeps_an_existing_device_unless_forced() {
    let w = World::start().await;
    let server = {
        let cfg = std::fs::read_to_string(w.side("bob").join("config.toml")).unwrap();
        cfg.lines()
            .find_map(|l| l.strip_prefix("server = "))
            .unwrap()
            .trim_matches('"')
            .to_owned()
    };
    let w = tokio::task::spawn_blocking(move || {
        let dir = w.side("bob");
        let cfg = dir.join("config.toml");
        let key = dir.join("device.key");
        let mut text = std::fs::read_to_string(&cfg).unwrap();
        for (from, to) in [
            ("[contacts]\n", "[contacts]\nalice = \"abc\"\n"),
            ("dtx = true", "dtx = false"),
        ] {
            assert!(text.contains(from), "{text}");
            text = text.replace(from, to);
        }
        std::fs::write(&cfg, &text).unwrap();
        let old_key = std::fs::read(&key).unwrap();
        let reg = |extra: &[&str]| {
            std::process::Command::new(SOTTO)
                .args(["register", "--server", &server, "--name", "bob2"])
                .args(extra)
                .arg("--config-dir")
                .arg(&dir)
                .output()
                .unwrap()
        };
        let out = reg(&[]);
        assert!(!out.status.success(), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--force"),
            "{out:?}"
        );
        assert_eq!(std::fs::read(&key).unwrap(), old_key);
        assert_eq!(std::fs::read_to_string(&cfg).unwrap(), text);

        let out = reg(&["--force"]);
        assert!(out.status.success(), "{out:?}");
        assert_ne!(std::fs::read(&key).unwrap(), old_key);
        let now = std::fs::read_to_string(&cfg).unwrap();
        assert!(now.contains("user = \"bob2\""), "{now}");
        assert!(now.contains("alice = \"abc\""), "{now}");
        assert!(now.contains("dtx = false"), "{now}");
        w
    })
    .await
    .unwrap();
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_a_callee_that_is_not_connected_ends_unanswered_when_its_offer_is_gone() {
    let w = World::start_tuned(&["alice", "bob"], true, |c| c.ring_timeout_s = 2).await;
    // Bob is registered but not listening: signald keeps the offer 2 s.
    let w = tokio::task::spawn_blocking(move || {
        let (ast, alines) = Proc::spawn(&call(&w, "alice", &[])).finish();
        // An unanswered call is a failed command.
        assert_eq!(ast.code(), Some(1), "alice: {ast:?} {alines:?}");
        assert!(
            alines
                .iter()
                .any(|l| l.starts_with("not connected: signald keeps the offer 2 s")),
            "{alines:?}"
        );
        assert_eq!(field(&alines, "ended "), Some("NoAnswer"));
        w
    })
    .await
    .unwrap();
    w.stop().await;
}
