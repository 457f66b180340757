//! Helpers for tests that run the real `sotto-relay` binary and coturn's tools.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A scratch directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory under the system temp dir.
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("sotto-relay-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// Writes a file in the directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Addresses printed by a started relay.
pub struct Relay {
    /// The process.
    pub proc: Proc,
    /// UDP listen address.
    pub udp: Option<SocketAddr>,
    /// TCP listen address.
    pub tcp: Option<SocketAddr>,
    /// TLS listen address.
    pub tls: Option<SocketAddr>,
}

/// Starts `sotto-relay` with `args` and waits for its READY line.
pub fn start_relay(args: &[&str]) -> Relay {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sotto-relay"))
        .args(args)
        .env("SOTTO_RELAY_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start sotto-relay");
    let stdout = child.stdout.take().unwrap();
    let proc = Proc(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("sotto-relay did not become ready");
    let field = |name: &str| -> Option<SocketAddr> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.parse().ok())
    };
    assert!(line.starts_with("READY"), "unexpected first line: {line}");
    Relay {
        udp: field("udp"),
        tcp: field("tcp"),
        tls: field("tls"),
        proc,
    }
}

/// A free UDP port on `ip` (bound then released).
pub fn free_udp_port(ip: &str) -> u16 {
    UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Panics with a clear message if a coturn tool is missing: interop tests
/// are never skipped silently (install with `cargo xtask setup`).
pub fn require_tool(name: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{name} not found: install the Debian `coturn` package (cargo xtask setup)"
    );
}

/// Starts coturn's UDP echo peer and waits until it echoes.
pub fn start_echo_peer(ip: &str) -> (Proc, SocketAddr) {
    require_tool("turnutils_peer");
    let port = free_udp_port(ip);
    let child = Command::new("turnutils_peer")
        .args(["-L", ip, "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start turnutils_peer");
    let proc = Proc(child);
    let addr: SocketAddr = SocketAddr::new(ip.parse().unwrap(), port);
    let probe = UdpSocket::bind((ip, 0)).unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 16];
    for _ in 0..100 {
        let _ = probe.send_to(b"ping", addr);
        if probe.recv_from(&mut buf).is_ok() {
            return (proc, addr);
        }
    }
    panic!("turnutils_peer did not start");
}

/// What `turnutils_uclient` reported.
#[derive(Debug)]
pub struct UclientReport {
    /// Messages sent.
    pub sent: u64,
    /// Messages received back through the relay.
    pub received: u64,
    /// Reported lost packets.
    pub lost: u64,
    /// Whole output, for failure messages.
    pub output: String,
}

/// Runs `turnutils_uclient` with `args` and parses its summary.
pub fn uclient(args: &[&str]) -> UclientReport {
    require_tool("turnutils_uclient");
    let out = Command::new("timeout")
        .arg("60")
        .arg("turnutils_uclient")
        .args(args)
        .output()
        .expect("run turnutils_uclient");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let num_after = |key: &str| -> Option<u64> {
        output
            .lines()
            .rev()
            .find_map(|l| l.split(key).nth(1))
            .and_then(|rest| {
                rest.split(|c: char| !c.is_ascii_digit())
                    .find(|s| !s.is_empty())
            })
            .and_then(|s| s.parse().ok())
    };
    UclientReport {
        sent: num_after("tot_send_msgs=").unwrap_or(0),
        received: num_after("tot_recv_msgs=").unwrap_or(0),
        lost: num_after("Total lost packets ").unwrap_or(u64::MAX),
        output,
    }
}

/// A free TCP port on 127.0.0.1 (bound then released); the name
/// signalling's server helpers (`servers.rs`, shared by path) expect.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends a signal to a process with `kill`.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// Fetches the Prometheus text until `pred` holds for it (metrics are
/// published about once a second); gives up after about a minute.
pub fn metrics_until(addr: SocketAddr, pred: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..300 {
        if let Ok(mut c) = TcpStream::connect(addr) {
            let _ = c.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
            last.clear();
            let _ = c.read_to_string(&mut last);
            if pred(&last) {
                return last;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("metrics never matched; last scrape:\n{last}");
}

/// The sum of every sample of `name` (a metric name, with labels if given).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
