//! `cargo xtask bench relay`: sotto-relay against coturn (Debian
//! `turnserver`), same flags and one relay thread each, in the same run.
//!
//! For 160-byte ChannelData over 8 and 64 allocations (both directions:
//! clients send ChannelData, a peer sends raw UDP to the relayed
//! addresses), it sweeps the offered rate and reports relayed packets per
//! CPU-second of the relay process (utime+stime from /proc/<pid>/stat) and
//! the highest offered rate with < 0.1% loss; then the RSS growth per idle
//! allocation at 10k allocations. Not criterion-shaped: prints its own
//! table and a final JSON line.
//!
//! The sotto side runs in a child process: this bench binary re-executes
//! itself with `SOTTO_RELAY_BENCH_SERVER` set and starts
//! `sotto_relay::server::Server` (the code the `sotto-relay` binary runs),
//! so its CPU and memory are measured apart from the load generator.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sotto_relay::auth::Key;
use sotto_relay::stun::{Builder, Class, Integrity, Message, attr, method};

const USER: &str = "bench";
const PASS: &str = "bench-password";
const REALM: &str = "sotto.bench";
const PAYLOAD: usize = 160;
const STEP: Duration = Duration::from_millis(1000);
const RATES: &[u64] = &[
    5_000, 10_000, 20_000, 40_000, 60_000, 80_000, 100_000, 130_000, 160_000, 200_000, 260_000,
];
const IDLE_ALLOCATIONS: usize = 10_000;

fn main() {
    if std::env::var_os("SOTTO_RELAY_BENCH_SERVER").is_some() {
        return sotto_server_child();
    }
    assert!(
        which("turnserver"),
        "turnserver (Debian coturn) not found: the relay bench needs it (cargo xtask setup)"
    );
    let clk_tck: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);

    let mut rows = Vec::new();
    for allocations in [8usize, 64] {
        let mut per_impl = Vec::new();
        for imp in [Impl::Sotto, Impl::Coturn] {
            let server = Server::start(imp);
            let r = throughput(&server, allocations, clk_tck);
            println!(
                "relay/{allocations}_allocations {:>7}: {:>9.0} relayed pkt per CPU-s, max rate with <0.1% loss {:>7} pkt/s",
                imp.name(),
                r.per_cpu_s,
                r.max_lossless
            );
            per_impl.push(r);
        }
        rows.push((allocations, per_impl));
    }
    let mut memory = Vec::new();
    for imp in [Impl::Sotto, Impl::Coturn] {
        let server = Server::start(imp);
        let bytes = idle_memory(&server);
        println!(
            "relay/idle_{IDLE_ALLOCATIONS} {:>7}: {:>7.0} bytes RSS per idle allocation",
            imp.name(),
            bytes
        );
        memory.push(bytes);
    }

    println!();
    println!(
        "{:<22} {:>14} {:>14} {:>7} {:>14} {:>14}",
        "case", "sotto pkt/CPU-s", "coturn pkt/CPU-s", "ratio", "sotto max pps", "coturn max pps"
    );
    let mut cases = Vec::new();
    for (n, r) in &rows {
        let ratio = r[0].per_cpu_s / r[1].per_cpu_s;
        println!(
            "{:<22} {:>14.0} {:>14.0} {:>6.2}x {:>14} {:>14}",
            format!("{n}_allocations"),
            r[0].per_cpu_s,
            r[1].per_cpu_s,
            ratio,
            r[0].max_lossless,
            r[1].max_lossless
        );
        cases.push(format!(
            "{{\"case\":\"{n}_allocations\",\"sotto_per_cpu_s\":{:.0},\"coturn_per_cpu_s\":{:.0},\"ratio\":{ratio:.3},\"sotto_max_lossless_pps\":{},\"coturn_max_lossless_pps\":{}}}",
            r[0].per_cpu_s, r[1].per_cpu_s, r[0].max_lossless, r[1].max_lossless
        ));
    }
    println!(
        "{:<22} {:>14.0} {:>14.0} (bytes RSS per idle allocation at {IDLE_ALLOCATIONS})",
        "idle_memory", memory[0], memory[1]
    );
    println!(
        "{{\"bench\":\"relay\",\"cases\":[{}],\"idle_allocations\":{IDLE_ALLOCATIONS},\"sotto_bytes_per_idle_allocation\":{:.0},\"coturn_bytes_per_idle_allocation\":{:.0}}}",
        cases.join(","),
        memory[0],
        memory[1]
    );
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Impl {
    Sotto,
    Coturn,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::Sotto => "sotto",
            Impl::Coturn => "coturn",
        }
    }
}

/// The relay under test, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    _dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

impl Server {
    fn start(imp: Impl) -> Server {
        let dir = std::env::temp_dir().join(format!(
            "sotto-relay-bench-{}-{}",
            imp.name(),
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        match imp {
            Impl::Sotto => {
                let mut child = Command::new(std::env::current_exe().unwrap())
                    .env("SOTTO_RELAY_BENCH_SERVER", "1")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .unwrap();
                let mut line = String::new();
                BufReader::new(child.stdout.take().unwrap())
                    .read_line(&mut line)
                    .unwrap();
                let addr = line
                    .trim()
                    .strip_prefix("READY udp=")
                    .expect("READY line")
                    .parse()
                    .unwrap();
                Server {
                    child,
                    addr,
                    _dir: dir,
                }
            }
            Impl::Coturn => {
                let port = UdpSocket::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                let d = dir.to_str().unwrap();
                let child = Command::new("turnserver")
                    .args([
                        "-n",
                        "--listening-ip",
                        "127.0.0.1",
                        "--listening-port",
                        &port.to_string(),
                    ])
                    .args([
                        "--relay-ip",
                        "127.0.0.1",
                        "--min-port",
                        "20000",
                        "--max-port",
                        "60000",
                    ])
                    .args([
                        "--lt-cred-mech",
                        "--user",
                        &format!("{USER}:{PASS}"),
                        "--realm",
                        REALM,
                    ])
                    .args([
                        "--allow-loopback-peers",
                        "--no-tls",
                        "--no-dtls",
                        "--no-cli",
                        "--relay-threads",
                        "1",
                    ])
                    .args(["--no-rfc5780", "--no-stun-backward-compatibility"])
                    .args([
                        "--log-file",
                        &format!("{d}/log"),
                        "--userdb",
                        &format!("{d}/db.sqlite"),
                    ])
                    .args(["--pidfile", &format!("{d}/pid")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
                wait_binding(addr);
                Server {
                    child,
                    addr,
                    _dir: dir,
                }
            }
        }
    }

    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }

    fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap();
        kb * 1024
    }
}

/// The sotto side: one UDP worker (as coturn gets one relay thread).
fn sotto_server_child() {
    let dir = std::env::temp_dir().join(format!("sotto-relay-bench-child-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users");
    std::fs::write(&users, format!("{USER}:{PASS}\n")).unwrap();
    let options = sotto_relay::config::Options {
        realm: Some(REALM.into()),
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        users_file: Some(users),
        allow_loopback_peers: Some(true),
        workers: Some(1),
        unauth_rate: Some(0),
        max_allocations_per_user: Some(0),
        ..Default::default()
    };
    let settings = options.resolve().unwrap();
    let rt = tokio_runtime();
    rt.block_on(async {
        let server = sotto_relay::server::Server::start(settings).await.unwrap();
        println!("READY udp={}", server.udp_addrs[0]);
        std::future::pending::<()>().await;
    });
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn which(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

/// A loopback UDP socket with a 4 MiB receive buffer, so that the load
/// generator's own scheduling gaps do not show up as relay loss.
fn bench_socket() -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s.into()
}

fn tid(n: u64) -> [u8; 12] {
    let mut t = [0u8; 12];
    t[..4].copy_from_slice(b"BNCH");
    t[4..].copy_from_slice(&n.to_be_bytes());
    t
}

fn transact(sock: &UdpSocket, to: SocketAddr, req: &[u8], t: [u8; 12]) -> Vec<u8> {
    let mut buf = [0u8; 1500];
    for _ in 0..20 {
        sock.send_to(req, to).unwrap();
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            if let Ok((n, _)) = sock.recv_from(&mut buf)
                && let Ok(m) = Message::parse(&buf[..n])
                && m.transaction_id == t
            {
                return buf[..n].to_vec();
            }
        }
    }
    panic!("no answer from the relay at {to}");
}

fn wait_binding(addr: SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let b = Builder::new(method::BINDING, Class::Request, tid(0));
    let _ = transact(&s, addr, &b.finish(), tid(0));
}

fn is_success(raw: &[u8]) -> bool {
    Message::parse(raw).is_ok_and(|m| m.class == Class::Success)
}

/// One authenticated client allocation.
struct Client {
    sock: UdpSocket,
    relayed: SocketAddr,
    key: Key,
    nonce: String,
    counter: u64,
}

impl Client {
    fn allocate(server: SocketAddr, seq: u64) -> Client {
        let sock = bench_socket();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut b = Builder::new(method::ALLOCATE, Class::Request, tid(seq << 8));
        b.u32(attr::REQUESTED_TRANSPORT, 17 << 24);
        let r = transact(&sock, server, &b.finish_with_fingerprint(), tid(seq << 8));
        let m = Message::parse(&r).unwrap();
        let nonce = m
            .get_str(attr::NONCE)
            .unwrap()
            .expect("401 with a nonce")
            .to_owned();
        let key = Key::derive(USER, REALM, PASS);
        let mut c = Client {
            sock,
            relayed: server,
            key,
            nonce,
            counter: seq << 8 | 1,
        };
        let r = c.request(server, method::ALLOCATE, |b| {
            b.u32(attr::REQUESTED_TRANSPORT, 17 << 24);
        });
        let m = Message::parse(&r).unwrap();
        c.relayed = m
            .get_xor_addr(attr::XOR_RELAYED_ADDRESS)
            .unwrap()
            .expect("allocation succeeded");
        c
    }

    fn request(&mut self, server: SocketAddr, meth: u16, f: impl FnOnce(&mut Builder)) -> Vec<u8> {
        self.counter += 1;
        let t = tid(self.counter);
        let mut b = Builder::new(meth, Class::Request, t);
        f(&mut b);
        b.attr(attr::USERNAME, USER.as_bytes())
            .attr(attr::REALM, REALM.as_bytes())
            .attr(attr::NONCE, self.nonce.as_bytes())
            .integrity(Integrity::Sha1, &self.key.0);
        let r = transact(&self.sock, server, &b.finish_with_fingerprint(), t);
        assert!(is_success(&r), "request {meth:#x} refused");
        r
    }
}

struct Throughput {
    per_cpu_s: f64,
    max_lossless: u64,
}

fn throughput(server: &Server, n: usize, clk_tck: f64) -> Throughput {
    let peer = bench_socket();
    let peer_addr = peer.local_addr().unwrap();
    let mut clients: Vec<Client> = (0..n)
        .map(|i| Client::allocate(server.addr, i as u64 + 1))
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        let ch = 0x4000 + i as u16;
        c.request(server.addr, method::CHANNEL_BIND, |b| {
            b.u32(attr::CHANNEL_NUMBER, u32::from(ch) << 16)
                .xor_addr(attr::XOR_PEER_ADDRESS, peer_addr);
        });
    }
    // Receivers: mio over the client sockets and the peer socket.
    let recv_c2p = Arc::new(AtomicU64::new(0));
    let recv_p2c = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut poll = mio::Poll::new().unwrap();
    let mut rx: Vec<mio::net::UdpSocket> = Vec::new();
    for (i, s) in std::iter::once(&peer)
        .chain(clients.iter().map(|c| &c.sock))
        .enumerate()
    {
        let clone = s.try_clone().unwrap();
        clone.set_nonblocking(true).unwrap();
        let mut m = mio::net::UdpSocket::from_std(clone);
        poll.registry()
            .register(&mut m, mio::Token(i), mio::Interest::READABLE)
            .unwrap();
        rx.push(m);
    }
    let receiver = {
        let (c2p, p2c, stop) = (recv_c2p.clone(), recv_p2c.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut events = mio::Events::with_capacity(256);
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let _ = poll.poll(&mut events, Some(Duration::from_millis(50)));
                for ev in events.iter() {
                    let i = ev.token().0;
                    while let Ok(len) = rx[i].recv(&mut buf) {
                        if i == 0 && len == PAYLOAD {
                            c2p.fetch_add(1, Ordering::Relaxed);
                        } else if i > 0 && len == PAYLOAD + 4 && buf[0] & 0xc0 == 0x40 {
                            p2c.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        })
    };
    // Datagrams to send, in round-robin order: ChannelData from each client,
    // then raw data from the peer to each relayed address.
    let mut frames: Vec<(usize, SocketAddr, Vec<u8>)> = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let mut cd = vec![0u8; 4 + PAYLOAD];
        cd[..2].copy_from_slice(&(0x4000 + i as u16).to_be_bytes());
        cd[2..4].copy_from_slice(&(PAYLOAD as u16).to_be_bytes());
        frames.push((i + 1, server.addr, cd));
        frames.push((0, c.relayed, vec![0xab; PAYLOAD]));
    }
    let senders: Vec<&UdpSocket> = std::iter::once(&peer)
        .chain(clients.iter().map(|c| &c.sock))
        .collect();

    let (mut relayed_total, mut cpu_total) = (0u64, 0f64);
    let mut max_lossless = 0;
    for &rate in RATES {
        let (c0, p0) = (
            recv_c2p.load(Ordering::Relaxed),
            recv_p2c.load(Ordering::Relaxed),
        );
        let cpu0 = server.cpu_ticks();
        let start = Instant::now();
        let mut sent = 0u64;
        let mut k = 0;
        while start.elapsed() < STEP {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            while sent < due {
                let (s, to, data) = &frames[k];
                let _ = senders[*s].send_to(data, to);
                k = (k + 1) % frames.len();
                sent += 1;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(Duration::from_millis(300));
        let cpu = (server.cpu_ticks() - cpu0) as f64 / clk_tck;
        let received =
            recv_c2p.load(Ordering::Relaxed) - c0 + recv_p2c.load(Ordering::Relaxed) - p0;
        let loss = 1.0 - received as f64 / sent as f64;
        println!(
            "  {:>6} {n:>2} alloc offered {rate:>7}/s sent {sent:>7} received {received:>7} loss {:>6.3}% relay CPU {cpu:.2}s",
            "",
            loss * 100.0
        );
        // Count what the generator actually offered: on a shared 2-core
        // machine it cannot always reach the nominal rate.
        let offered = (sent as f64 / STEP.as_secs_f64()) as u64;
        if loss < 0.001 {
            max_lossless = max_lossless.max(offered);
            relayed_total += received;
            cpu_total += cpu;
        }
        if loss > 0.05 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    receiver.join().unwrap();
    Throughput {
        per_cpu_s: relayed_total as f64 / cpu_total.max(1.0 / clk_tck),
        max_lossless,
    }
}

fn idle_memory(server: &Server) -> f64 {
    // Warm up with one allocation so lazy one-off structures are counted out.
    let warm = Client::allocate(server.addr, 1);
    std::thread::sleep(Duration::from_millis(200));
    let before = server.rss_bytes();
    let clients: Vec<Client> = (0..IDLE_ALLOCATIONS)
        .map(|i| Client::allocate(server.addr, i as u64 + 2))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let after = server.rss_bytes();
    drop((warm, clients));
    after.saturating_sub(before) as f64 / IDLE_ALLOCATIONS as f64
}
