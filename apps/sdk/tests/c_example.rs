//! Builds `examples/call.c` with the system C compiler against the static
//! library cargo built for this test run, runs it, and checks what it
//! prints: both calls reached Secure with the same SAS, each side heard the
//! other's tone (by its frequency), and the hang-up ended both calls;
//! directly, and relay-only through a real coturn. Also `tests/c/teardown.c`:
//! SDK calls from an `atexit` handler and a thread's key destructor.

// The engine's coturn-on-loopback helper (free port, readiness, kill on drop).
#[path = "../../../engine/tests/transport_support/mod.rs"]
mod transport_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The directory (`target/<profile>/deps`) holding this test binary and the
/// `libsotto.a` cargo built with it: `cargo test` leaves the static library
/// there and copies it up to `target/<profile>` only on `cargo build`, so a
/// cold target directory has it here alone.
fn deps_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .expect("test binary under <target>/<profile>/deps")
        .to_path_buf()
}

/// Compiles `source` (relative to the crate) into `out`.
fn compile(source: &str, out: &Path) {
    let sdk = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let lib = deps_dir().join("libsotto.a");
    assert!(lib.exists(), "{} not built", lib.display());
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let st = Command::new(&cc)
        .args([
            "-std=c11",
            "-D_DEFAULT_SOURCE",
            "-Wall",
            "-Wextra",
            "-Werror",
        ])
        .arg(sdk.join(source))
        .arg("-I")
        .arg(sdk.join("include"))
        .arg(&lib)
        // The system SQLite (the ZID cache), libvpx (VP8) and what the Rust standard
        // library needs from libc (libopus is inside libsotto.a).
        .args(["-lsqlite3", "-lvpx", "-lpthread", "-ldl", "-lm", "-o"])
        .arg(out)
        .status()
        .unwrap_or_else(|e| panic!("running {cc}: {e}"));
    assert!(st.success(), "compiling {source} failed");
}

/// The value after `prefix` on the line that starts with it.
fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{out}"))
}

/// `(frames, hz)` from "<who> heard N loud frames at F Hz".
fn heard(out: &str, who: &str) -> (u32, f64) {
    let rest = line(out, &format!("{who} heard "));
    let w: Vec<&str> = rest.split_whitespace().collect();
    (w[0].parse().unwrap(), w[4].parse().unwrap())
}

/// Compiles (once per test) and runs the example with `args`; its stdout.
fn run_example(name: &str, args: &[&str]) -> String {
    run_c("examples/call.c", name, args)
}

/// Compiles `source` as `name` and runs it with `args`: its stdout, once
/// it has exited 0.
fn run_c(source: &str, name: &str, args: &[&str]) -> String {
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    compile(source, &exe);
    let mut child = Command::new(&exe)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A hang guard, not a timing assertion: the program itself needs ~2 s.
    let give_up = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > give_up {
            let _ = child.kill();
            panic!("call example hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    println!("{out}{err}");
    assert!(o.status.success(), "exit {:?}:\n{out}\n{err}", o.status);
    out.into_owned()
}

/// What every run must show: equal SAS, each tone heard, both ended.
fn check_call(out: &str) {
    assert_eq!(line(out, "null call: "), "argument `call` is NULL");
    let sas_a = line(out, "alice SAS: ");
    let sas_b = line(out, "bob SAS: ");
    assert_eq!(sas_a, sas_b);
    assert_eq!(
        sas_a.split(' ').next().unwrap().len(),
        4,
        "B32 SAS: {sas_a}"
    );

    // Alice's audio is at 48 kHz, Bob's at 16 kHz.
    assert_eq!(line(out, "frames: "), "alice 480, bob 160 samples");
    // Alice sends 440 Hz, Bob 660 Hz, for a second each.
    let (frames_b, hz_b) = heard(out, "bob");
    let (frames_a, hz_a) = heard(out, "alice");
    assert!(frames_b >= 30 && frames_a >= 30, "{out}");
    assert!((hz_b - 440.0).abs() < 40.0, "bob heard {hz_b} Hz");
    assert!((hz_a - 660.0).abs() < 40.0, "alice heard {hz_a} Hz");

    assert_eq!(line(out, "alice: ended "), "(LocalHangup)");
    assert_eq!(line(out, "bob: ended "), "(RemoteHangup)");
    assert!(out.lines().any(|l| l == "done"));
}

#[test]
fn c_example_places_a_secure_call_and_talks() {
    let out = run_example("sotto-call-example", &[]);
    check_call(&out);
    assert_eq!(line(&out, "alice: path "), "direct");
}

#[test]
fn c_example_relay_only_through_coturn() {
    use transport_support::{Auth, Coturn};
    let turn = Coturn::start(Auth::LongTerm {
        user: "u",
        pass: "p",
    });
    let addr = turn.addr.to_string();
    let out = run_example("sotto-call-example-relay", &[&addr, "u", "p"]);
    check_call(&out);
    assert_eq!(line(&out, "alice: path "), "relay");
    assert_eq!(line(&out, "bob: path "), "relay");
}

#[test]
fn sdk_calls_during_thread_and_process_teardown_return_statuses() {
    // Before, the first SDK call after the thread's locals were gone
    // panicked across `extern "C"`: the process aborted.
    let out = run_c("tests/c/teardown.c", "sotto-teardown", &[]);
    assert_eq!(line(&out, "thread exit: hang_up(NULL) = "), "1");
    assert_eq!(line(&out, "at exit: engine_destroy = "), "0");
}
