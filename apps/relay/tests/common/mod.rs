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
    let child = Command::new(env!("CARGO_BIN_EXE_sotto-relay"))
        .args(args)
        .env("SOTTO_RELAY_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start sotto-relay");
    wait_ready(child)
}

/// Starts `sotto-relay` with `args` (logging at INFO) and waits for its
/// READY line; its log lines (stderr, not a terminal) come out of the
/// receiver, and are echoed to this test's stderr.
pub fn start_relay_logged(args: &[&str]) -> (Relay, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sotto-relay"))
        .args(args)
        .env("SOTTO_RELAY_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sotto-relay");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("relay: {line}");
            let _ = tx.send(line);
        }
    });
    (wait_ready(child), rx)
}

fn wait_ready(mut child: Child) -> Relay {
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

/// What a [`TurnClient`] received other than a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relayed {
    /// A Data indication: the peer and the payload.
    Data(SocketAddr, Vec<u8>),
    /// ChannelData: the channel and the payload.
    Channel(u16, Vec<u8>),
}

/// A minimal blocking TURN client over UDP (long-term credentials, MD5).
pub struct TurnClient {
    /// Its socket.
    pub sock: UdpSocket,
    server: SocketAddr,
    user: String,
    realm: String,
    key: sotto_relay::auth::Key,
    nonce: Option<String>,
    next_tid: u64,
    /// Relayed data that arrived while waiting for a response.
    pending: std::collections::VecDeque<Relayed>,
}

impl TurnClient {
    /// A client of `server` as `user`/`password` in `realm`.
    pub fn new(server: SocketAddr, user: &str, password: &str, realm: &str) -> Self {
        let sock = UdpSocket::bind(SocketAddr::new(server.ip(), 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        TurnClient {
            sock,
            server,
            user: user.into(),
            realm: realm.into(),
            key: sotto_relay::auth::Key::derive(user, realm, password),
            nonce: None,
            next_tid: 0,
            pending: Default::default(),
        }
    }

    fn tid(&mut self) -> [u8; 12] {
        self.next_tid += 1;
        let mut t = [0x5a; 12];
        t[4..].copy_from_slice(&self.next_tid.to_be_bytes());
        t
    }

    /// Sends a request built by `f`, authenticated once a nonce is known
    /// (a 401 or 438 answer is retried with the new one); returns the
    /// response's bytes.
    pub fn request(&mut self, m: u16, f: impl Fn(&mut sotto_relay::stun::Builder)) -> Vec<u8> {
        use sotto_relay::stun::{Builder, Class, Integrity, Message, attr};
        for _ in 0..3 {
            let tid = self.tid();
            let mut b = Builder::new(m, Class::Request, tid);
            f(&mut b);
            if let Some(nonce) = &self.nonce {
                b.attr(attr::USERNAME, self.user.as_bytes())
                    .attr(attr::REALM, self.realm.as_bytes())
                    .attr(attr::NONCE, nonce.as_bytes())
                    .integrity(Integrity::Sha1, &self.key.0);
            }
            self.sock
                .send_to(&b.finish_with_fingerprint(), self.server)
                .unwrap();
            let answer = self.wait_response(tid);
            let msg = Message::parse(&answer).unwrap();
            if matches!(error_code_of(&answer), Some(401 | 438))
                && let Some(n) = msg.get_str(attr::NONCE).unwrap()
            {
                let retry = self.nonce.as_deref() != Some(n);
                self.nonce = Some(n.to_owned());
                if retry {
                    continue;
                }
            }
            return answer;
        }
        panic!("no answer but challenges");
    }

    fn wait_response(&mut self, tid: [u8; 12]) -> Vec<u8> {
        loop {
            let mut buf = vec![0u8; 2048];
            let (n, from) = self.sock.recv_from(&mut buf).expect("an answer");
            assert_eq!(from, self.server);
            buf.truncate(n);
            match parse_relayed(&buf) {
                Some(r) => self.pending.push_back(r),
                None => {
                    let m = sotto_relay::stun::Message::parse(&buf).unwrap();
                    if m.transaction_id == tid {
                        return buf;
                    }
                }
            }
        }
    }

    /// Allocates; returns the relayed address.
    pub fn allocate(&mut self) -> SocketAddr {
        use sotto_relay::stun::{Message, attr, method};
        let r = self.request(method::ALLOCATE, |b| {
            b.u32(attr::REQUESTED_TRANSPORT, 17 << 24);
        });
        assert_eq!(error_code_of(&r), None, "Allocate failed");
        Message::parse(&r)
            .unwrap()
            .get_xor_addr(attr::XOR_RELAYED_ADDRESS)
            .unwrap()
            .unwrap()
    }

    /// CreatePermission for `ip`; the error code if refused.
    pub fn create_permission(&mut self, ip: std::net::IpAddr) -> Option<u16> {
        use sotto_relay::stun::{attr, method};
        let r = self.request(method::CREATE_PERMISSION, |b| {
            b.xor_addr(attr::XOR_PEER_ADDRESS, SocketAddr::new(ip, 0));
        });
        error_code_of(&r)
    }

    /// ChannelBind of `number` to `peer`; the error code if refused.
    pub fn channel_bind(&mut self, number: u16, peer: SocketAddr) -> Option<u16> {
        use sotto_relay::stun::{attr, method};
        let r = self.request(method::CHANNEL_BIND, |b| {
            b.u32(attr::CHANNEL_NUMBER, u32::from(number) << 16)
                .xor_addr(attr::XOR_PEER_ADDRESS, peer);
        });
        error_code_of(&r)
    }

    /// A Send indication of `data` to `peer`.
    pub fn send_indication(&mut self, peer: SocketAddr, data: &[u8]) {
        use sotto_relay::stun::{Builder, Class, attr, method};
        let tid = self.tid();
        let mut b = Builder::new(method::SEND, Class::Indication, tid);
        b.xor_addr(attr::XOR_PEER_ADDRESS, peer)
            .attr(attr::DATA, data);
        self.sock.send_to(&b.finish(), self.server).unwrap();
    }

    /// ChannelData of `data` on `number`.
    pub fn channel_data(&mut self, number: u16, data: &[u8]) {
        let mut v = number.to_be_bytes().to_vec();
        v.extend_from_slice(&(data.len() as u16).to_be_bytes());
        v.extend_from_slice(data);
        self.sock.send_to(&v, self.server).unwrap();
    }

    /// The next relayed datagram (Data indication or ChannelData).
    pub fn recv(&mut self) -> Relayed {
        if let Some(r) = self.pending.pop_front() {
            return r;
        }
        loop {
            let mut buf = vec![0u8; 2048];
            let (n, _) = self.sock.recv_from(&mut buf).expect("relayed data");
            if let Some(r) = parse_relayed(&buf[..n]) {
                return r;
            }
        }
    }
}

/// The ERROR-CODE of a STUN response, `None` for a success.
pub fn error_code_of(raw: &[u8]) -> Option<u16> {
    let m = sotto_relay::stun::Message::parse(raw).unwrap();
    let e = m.get(sotto_relay::stun::attr::ERROR_CODE)?;
    Some(u16::from(e.value[2]) * 100 + u16::from(e.value[3]))
}

fn parse_relayed(buf: &[u8]) -> Option<Relayed> {
    use sotto_relay::stun::{ChannelData, Class, Message, attr, method};
    if buf.first().is_some_and(|b| b & 0xc0 == 0x40) {
        let cd = ChannelData::parse(buf)?;
        return Some(Relayed::Channel(cd.channel, cd.data.to_vec()));
    }
    let m = Message::parse(buf).ok()?;
    if (m.method, m.class) != (method::DATA, Class::Indication) {
        return None;
    }
    let peer = m.get_xor_addr(attr::XOR_PEER_ADDRESS).ok()??;
    Some(Relayed::Data(peer, m.get(attr::DATA)?.value.to_vec()))
}
