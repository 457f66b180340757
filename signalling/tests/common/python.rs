//! The Python interpreter with PyPI http_ece and py_vapid (the independent
//! Web Push implementation). Never skipped: a missing one fails the test.

use std::io::Write as _;
use std::process::{Command, Stdio};

fn script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/webpush_check.py")
}

/// `SOTTO_PYTHON` (set by `cargo xtask test`), else `python3` if it has the modules.
pub fn interpreter() -> String {
    let candidate = std::env::var("SOTTO_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&candidate)
        .args(["-c", "import http_ece, py_vapid"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{candidate} lacks PyPI http_ece/py_vapid, the independent Web Push checker: \
         run `cargo xtask setup` and `cargo xtask test`, or set SOTTO_PYTHON to a Python that has them"
    );
    candidate
}

/// Runs the checker with `args` and JSON `input`, returning its JSON answer.
pub fn run(args: &[&str], input: &serde_json::Value) -> serde_json::Value {
    let mut child = Command::new(interpreter())
        .arg(script())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "webpush_check.py {args:?} failed");
    serde_json::from_slice(&out.stdout).unwrap()
}
