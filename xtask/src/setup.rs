//! Installing what the build, the tests and the benchmarks need.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::run;

/// Debian packages: build tools, the C libraries of the reference peers,
/// and the servers that interop tests start on loopback.
const DEBIAN_PACKAGES: &[&str] = &[
    "cmake",
    "nasm",
    "pkg-config",
    "libasound2-dev",
    "libsrtp2-dev",
    "libbzrtp-dev",
    "libspeexdsp-dev",
    "libvpx-dev",
    "libsqlite3-dev",
    "libclang-dev",
    "coturn",
    "redis-server",
    "postgresql",
    "python3-venv",
    "openssl",
    "iproute2",
    "ethtool",
    "gstreamer1.0-tools",
    "gstreamer1.0-plugins-good",
];

/// PyPI packages used by test and evaluation scripts: PESQ scoring and
/// independent Web Push (RFC 8291 / RFC 8292) implementations.
const PYTHON_PACKAGES: &[&str] = &["numpy", "pesq", "http_ece", "py_vapid"];

/// Everything: Debian packages first, then the Python environment.
pub fn all(root: &Path) -> Result<()> {
    debian_packages()?;
    python_venv(root)?;
    Ok(())
}

/// Installs the packages in [`DEBIAN_PACKAGES`] that are missing, running
/// `apt-get update` first, and through `sudo` when we are not root.
fn debian_packages() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| !is_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    let as_root = |args: &[&str]| {
        let mut cmd = if is_root() {
            Command::new(args[0])
        } else {
            let mut c = Command::new("sudo");
            c.arg(args[0]);
            c
        };
        cmd.args(&args[1..])
            .env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    run("apt-get update", &mut as_root(&["apt-get", "update", "-q"]))?;
    let mut install = vec!["apt-get", "install", "-y", "-q", "--no-install-recommends"];
    install.extend(&missing);
    run("apt-get install", &mut as_root(&install))?;
    if let Some(p) = missing.iter().find(|p| !is_installed(p)) {
        bail!("package {p} is still missing after apt-get install");
    }
    Ok(())
}

fn is_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.ends_with(b"install ok installed"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// The virtual environment's folder (inside the target directory, so a
/// `cargo clean` removes it and it is never committed).
fn venv_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("py-venv")
}

/// Creates the venv and installs [`PYTHON_PACKAGES`] when any is missing.
fn python_venv(root: &Path) -> Result<()> {
    let venv = venv_dir(root);
    let python = venv.join("bin/python3");
    if !python.exists() {
        run(
            "python3 -m venv",
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
        )?;
    }
    let probe = "import importlib.util, sys; \
                 sys.exit(any(importlib.util.find_spec(m) is None for m in sys.argv[1:]))";
    // Each package here imports under its own name.
    let present = Command::new(&python)
        .args(["-c", probe])
        .args(PYTHON_PACKAGES)
        .status()
        .context("running the venv's python")?
        .success();
    if !present {
        let mut pip = Command::new(&python);
        pip.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PYTHON_PACKAGES);
        run("pip install (PESQ, Web Push checkers)", &mut pip)?;
    }
    Ok(())
}

/// Points a test or bench command at the venv's interpreter
/// (`SOTTO_PYTHON`), which scripts run by tests use.
pub fn python_env(root: &Path, cmd: &mut std::process::Command) {
    cmd.env("SOTTO_PYTHON", venv_dir(root).join("bin/python3"));
}
