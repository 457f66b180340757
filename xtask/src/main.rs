//! `cargo xtask`: the project's set-up, test, demo and benchmark commands.
//!
//! Every command first makes sure the Debian packages and the Python
//! virtual environment it needs are present, so that each one works on a
//! fresh Debian machine that has only Rust.
#![forbid(unsafe_code)]

mod bench_report;
mod setup;
mod test_summary;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Sotto project automation")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install missing system packages and the Python tools used by tests.
    Setup,
    /// Formatting, clippy and the whole test suite (interop tests included).
    Test {
        /// Extra arguments passed to `cargo test` (after `--workspace`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        cargo_args: Vec<String>,
    },
    /// The most end-to-end thing Sotto does today, with a plain report.
    Demo,
    /// Run one benchmark against its reference peer and report the ratio.
    Bench {
        /// Which benchmark: see `benches/RESULTS.md` for the list.
        name: String,
    },
    /// Fuzz one target with cargo-fuzz on the stable toolchain (`-s none`).
    Fuzz {
        /// A target in `fuzz/fuzz_targets/` (file name without `.rs`).
        target: String,
        /// How long to run, in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u32,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root()?;
    std::env::set_current_dir(&root)?;
    match cli.command {
        Cmd::Setup => setup::all(&root),
        Cmd::Test { cargo_args } => test(&root, &cargo_args),
        Cmd::Demo => demo(&root),
        Cmd::Bench { name } => bench(&root, &name),
        Cmd::Fuzz { target, seconds } => fuzz(&root, &target, seconds),
    }
}

/// The workspace root: the folder of the workspace's `Cargo.toml`.
///
/// Asked of cargo at run time rather than baked in at compile time, so that
/// a binary built for another checkout sharing the target directory (CI
/// keeps one outside the clone) never works on the wrong tree.
fn workspace_root() -> Result<PathBuf> {
    let out = cargo()
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .output()
        .context("cargo locate-project")?;
    if !out.status.success() {
        bail!("cargo locate-project failed: run cargo xtask inside the Sotto checkout");
    }
    let manifest = PathBuf::from(String::from_utf8(out.stdout)?.trim());
    Ok(manifest
        .parent()
        .context("workspace manifest has no parent folder")?
        .to_path_buf())
}

/// The cargo binary that invoked us (so toolchain overrides carry through).
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs a command to completion, failing with its description if it fails.
fn run(what: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {what}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start: {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Benchmarks `cargo xtask test` runs once each (see `test`).
const SMOKE_BENCHES: [&str; 6] = ["call", "echo", "jitter", "srtp", "transport", "zrtp"];

fn test(root: &Path, cargo_args: &[String]) -> Result<()> {
    setup::all(root)?;
    run(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--check"]),
    )?;
    run(
        "cargo clippy (workspace, all targets, warnings denied)",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    // The fuzz targets live in their own workspace (cargo-fuzz builds them
    // with its own flags); checking them here keeps them from rotting.
    run(
        "cargo check (fuzz targets)",
        cargo().args(["check", "--manifest-path", "fuzz/Cargo.toml", "--bins"]),
    )?;
    // Each benchmark once (criterion's test mode), so that a bench that no
    // longer runs is found here and not when results are due. The relay
    // and signalling benches are load runs that take minutes in any mode;
    // their code paths are their crates' tests.
    let mut smoke = cargo();
    smoke.args(["test", "--package", "sotto-benches"]);
    for bench in SMOKE_BENCHES {
        smoke.args(["--bench", bench]);
    }
    setup::python_env(root, &mut smoke);
    run("cargo test (benchmarks, each once)", &mut smoke)?;
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--no-fail-fast"])
        .args(cargo_args);
    setup::python_env(root, &mut cmd);
    let totals = test_summary::run_and_count(&mut cmd)?;
    // One closing line, in the form CI tooling reads.
    println!(
        "summary: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    if !totals.ok {
        bail!("the test suite failed");
    }
    Ok(())
}

/// `sotto demo`: a whole call (signald, push wake-up, relay, ZRTP, speech
/// over LTE traces). The earlier SRTP-only demo stays reachable as
/// `cargo run --release -p sotto-benches --example srtp_demo`.
fn demo(root: &Path) -> Result<()> {
    setup::all(root)?;
    let mut cmd = cargo();
    cmd.args(["run", "--quiet", "--release", "--package", "sotto"])
        .args(["--", "demo"]);
    // PESQ-WB scoring uses the venv that setup made.
    setup::python_env(root, &mut cmd);
    run("demo: a Sotto call end to end", &mut cmd)
}

fn bench(root: &Path, name: &str) -> Result<()> {
    setup::all(root)?;
    let mut cmd = cargo();
    cmd.args(["bench", "--package", "sotto-benches", "--bench", name]);
    setup::python_env(root, &mut cmd);
    run(&format!("cargo bench {name}"), &mut cmd)?;
    bench_report::print(&target_dir()?, name)
}

fn fuzz(root: &Path, target: &str, seconds: u32) -> Result<()> {
    setup::all(root)?;
    let has_cargo_fuzz = cargo()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_cargo_fuzz {
        run(
            "cargo install cargo-fuzz",
            cargo().args(["install", "--locked", "cargo-fuzz"]),
        )?;
    }
    // cargo-fuzz builds with its own RUSTFLAGS: keep its artefacts apart so
    // they do not invalidate the main build's.
    let fuzz_target_dir = target_dir()?.join("fuzz");
    run(
        &format!("cargo fuzz run {target} for {seconds} s"),
        cargo()
            .current_dir(root.join("fuzz"))
            .env("CARGO_TARGET_DIR", fuzz_target_dir)
            .args(["fuzz", "run", "-s", "none", target, "--"])
            .arg(format!("-max_total_time={seconds}")),
    )
}

/// Where cargo puts build output for this workspace.
fn target_dir() -> Result<PathBuf> {
    let out = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed");
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let dir = meta["target_directory"]
        .as_str()
        .context("cargo metadata has no target_directory")?;
    Ok(PathBuf::from(dir))
}
