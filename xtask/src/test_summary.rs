//! Running `cargo test` while adding up its per-binary result lines.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

/// Totals over every test binary and doc-test run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
    /// `cargo test` itself exited successfully.
    pub ok: bool,
}

/// Runs `cmd` (a `cargo test`), echoing its output, and sums the
/// `test result:` lines it prints.
pub fn run_and_count(cmd: &mut Command) -> Result<Totals> {
    eprintln!("xtask: cargo test (workspace)");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .context("could not start cargo test")?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut totals = Totals::default();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        add_result_line(&mut totals, &line);
    }
    totals.ok = child.wait()?.success();
    Ok(totals)
}

/// Adds one libtest line such as
/// `test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s`.
fn add_result_line(totals: &mut Totals, line: &str) {
    let Some(rest) = line.trim().strip_prefix("test result: ") else {
        return;
    };
    for part in rest.split(';') {
        let mut words = part.split_whitespace().rev();
        let (Some(kind), Some(count)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = count.parse::<u64>() else {
            continue;
        };
        match kind {
            "passed" => totals.passed += n,
            "failed" => totals.failed += n,
            "ignored" => totals.ignored += n,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_result_lines_and_skips_others() {
        let mut t = Totals::default();
        add_result_line(
            &mut t,
            "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s",
        );
        add_result_line(
            &mut t,
            "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        add_result_line(&mut t, "test foo ... ok");
        assert_eq!((t.passed, t.failed, t.ignored), (15, 2, 1));
    }
}
