//! What `sotto call` and `sotto listen` refuse, or warn about, before any
//! call: an `--output` they could not write after it, an empty `--input`,
//! a call to the device's own id, a callee that is not there (with a
//! `[contacts]` line that is valid TOML), and a signald that is down
//! (said as logging in, which is what the user is doing). What goes
//! wrong is said once.

mod common;

use common::{A_SPEECH, SOTTO, World, set_server, speech};
use sotto_engine::call::wav::save_48k_mono;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

/// `sotto ARGS`, stdin at its end: (success, stdout, stderr).
fn run<S: AsRef<OsStr>>(args: &[S]) -> (bool, String, String) {
    let out = Command::new(SOTTO).args(args).output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    let (stdout, stderr) = (text(out.stdout), text(out.stderr));
    println!("sotto {:?}: {stdout}{stderr}", out.status);
    (out.status.success(), stdout, stderr)
}

/// No cause is said twice (`wav: X: X`, `http: X: X`).
fn said_once(err: &str) {
    let parts: Vec<&str> = err.trim().split(": ").collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(!parts[i + 1..].contains(p), "{p:?} twice in {err}");
    }
}

/// `call bob` and `listen` with `--input input --output output`, from a
/// config dir that does not exist.
fn both(dir: &Path, input: &Path, output: &Path) -> [Vec<String>; 2] {
    let tail = [
        "--input".to_owned(),
        input.display().to_string(),
        "--output".into(),
        output.display().to_string(),
        "--config-dir".into(),
        dir.join("no-config").display().to_string(),
    ];
    let mut call = vec!["call".to_owned(), "bob".into()];
    call.extend(tail.clone());
    let mut listen = vec!["listen".to_owned()];
    listen.extend(tail);
    [call, listen]
}

#[test]
fn an_output_that_cannot_be_written_is_refused_before_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    let input = speech(A_SPEECH);
    let missing = dir.path().join("no-such-dir");
    let cases = [
        (
            missing.join("heard.wav"),
            format!("no directory {}", missing.display()),
        ),
        (dir.path().to_path_buf(), "it is a directory".to_owned()),
        // Opens for writing (as root) but takes no bytes.
        ("/proc/version".into(), String::new()),
    ];
    for (output, why) in cases {
        for args in both(dir.path(), &input, &output) {
            let (ok, stdout, err) = run(&args);
            assert!(!ok, "{args:?}");
            // Before, this came only after the call, its audio lost.
            let says = format!("sotto: cannot write --output {}", output.display());
            assert!(
                err.starts_with(&says) && err.contains(&why),
                "{args:?}: {err}"
            );
            assert!(stdout.is_empty(), "{args:?}: {stdout}");
        }
    }
}

#[test]
fn an_empty_input_is_a_warning_and_a_broken_one_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.wav");
    save_48k_mono(&empty, &[]).unwrap();
    let out = dir.path().join("heard.wav");
    for args in both(dir.path(), &empty, &out) {
        // It goes on (to the missing config here), having said so.
        let (ok, stdout, err) = run(&args);
        assert!(!ok && err.contains("run `sotto register` first"), "{err}");
        let warning = format!(
            "warning: --input {} holds no audio (an empty WAV): the call sends silence",
            empty.display()
        );
        assert!(stdout.lines().any(|l| l == warning), "{stdout}");
    }

    // A data chunk shorter than its header says (a truncated recording):
    // what is there is played, with a warning (it was refused before).
    let cut = dir.path().join("cut.wav");
    save_48k_mono(&cut, &[1000; 4800]).unwrap();
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    for args in both(dir.path(), &cut, &out) {
        let (ok, stdout, err) = run(&args);
        assert!(!ok && err.contains("run `sotto register` first"), "{err}");
        let warning = format!(
            "warning: --input {} ends early: read 0.05 s of the 0.10 s its header declares",
            cut.display()
        );
        assert!(stdout.lines().any(|l| l == warning), "{stdout}");
    }

    // A broken one is refused, the reader's reason said once.
    let broken = dir.path().join("broken.wav");
    std::fs::write(&broken, &bytes[..30]).unwrap();
    for args in both(dir.path(), &broken, &out) {
        let (ok, _, err) = run(&args);
        assert!(!ok, "{err}");
        assert!(
            err.starts_with(&format!("sotto: --input {}: wav: ", broken.display())),
            "{err}"
        );
        said_once(&err);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_cannot_be_placed_is_refused_at_once_saying_what_to_do() {
    // A short ring: before, calling oneself rang nothing until NoAnswer.
    let w = World::start_tuned(&["alice", "bob"], false, |c| c.ring_timeout_s = 2).await;
    let w = tokio::task::spawn_blocking(move || {
        let alice = w.side("alice");
        let call = |who: &str| {
            run(&[
                OsStr::new("call"),
                who.as_ref(),
                "--config-dir".as_ref(),
                alice.as_os_str(),
            ])
        };

        let own = &w.ids["alice"];
        let (ok, stdout, err) = call(own);
        assert!(!ok);
        assert!(
            err.contains(&format!(
                "{own} is this device's own id: a device cannot call itself"
            )),
            "{err}"
        );
        assert!(!stdout.contains("calling"), "{stdout}");

        // A name that needs quoting in TOML: the line offered is valid.
        let (ok, _, err) = call("no such!");
        assert!(!ok);
        let line = err
            .split("add it under [contacts] as ")
            .nth(1)
            .and_then(|l| l.split(" (").next())
            .unwrap_or_else(|| panic!("{err}"));
        assert_eq!(line, r#""no such!" = "DEVICE_ID""#);
        let toml: toml::Table = format!("[contacts]\n{line}\n").parse().unwrap();
        assert_eq!(toml["contacts"]["no such!"].as_str(), Some("DEVICE_ID"));

        // An id nobody registered: no contact line for it.
        let nobody = "AAAAAAAAAAAAAAAAAAAAAA";
        let (ok, _, err) = call(nobody);
        assert!(!ok);
        assert!(
            err.contains(&format!("no device {nobody} is registered at")),
            "{err}"
        );
        assert!(!err.contains("[contacts]"), "{err}");

        // signald is down: the user, registered long ago, is logging in.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let down = format!("http://{}", port.local_addr().unwrap());
        drop(port);
        set_server(&alice, &down);
        let (ok, _, err) = call(&w.ids["bob"]);
        assert!(!ok);
        assert!(
            err.starts_with(&format!("sotto: logging in to signald at {down}: ")),
            "{err}"
        );
        said_once(&err);
        w
    })
    .await
    .unwrap();
    w.stop().await;
}
