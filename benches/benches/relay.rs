//! `cargo xtask bench relay`: sotto-relay against coturn (Debian
//! `turnserver`), same flags and one relay thread each, in the same run.
//!
//! For 160-byte ChannelData over 8 and 64 allocations (both directions:
//! clients send ChannelData, a peer sends raw UDP to the relayed
//! addresses; round robin, and for 8 allocations also in bursts of 4 to
//! one destination, as a video frame's packets go), both relays run side by side and get the same offered
//! rates in alternating 1 s steps (so that other load on this shared
//! 2-core machine hits both alike). The headline figure is relayed packets
//! per CPU-second of the relay process (scheduler runtime of all its
//! threads from /proc/<pid>/task/*/schedstat), summed over the steps both
//! relayed without loss; then a sweep for the highest offered rate with
//! < 0.1% loss, and the RSS growth per idle allocation at 10k allocations.
//! Not criterion-shaped: prints its own table and a final JSON line.
//!
//! `SOTTO_RELAY_BENCH_NET=veth` puts both relays in a network namespace
//! of their own, reached from the load generator over a veth pair whose
//! receive side runs in NAPI threads (`/sys/class/net/*/threaded`): a
//! relay's send then ends when the datagram is queued on the device, as
//! it does at a real NIC, instead of running the receiver's whole UDP
//! input path inside the relay's syscall as loopback does. GRO is on only
//! to give veth its NAPI mode; `gro_max_size 0` leaves it no room to merge
//! datagrams (sotto-relay asks for UDP GRO and coturn does not, and the
//! bench's per-flow rates are far above a call's). Needs root,
//! `iproute2` and `ethtool`.
//!
//! `SOTTO_RELAY_BENCH_RATES=40000` runs the CPU comparison at the given
//! rates only; `SOTTO_RELAY_BENCH_CPU_ONLY=1` skips the sweep and the
//! memory figure (both for profiling).
//!
//! The sotto side runs in a child process: this bench binary re-executes
//! itself with `SOTTO_RELAY_BENCH_SERVER` set and starts
//! `sotto_relay::server::Server` (the code the `sotto-relay` binary runs),
//! so its CPU and memory are measured apart from the load generator.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sotto_relay::auth::Key;
use sotto_relay::stun::{Builder, Class, Integrity, Message, attr, method};

const USER: &str = "bench";
const PASS: &str = "bench-password";
const REALM: &str = "sotto.bench";
const PAYLOAD: usize = 160;
/// Allocations, and datagrams sent back to back to one destination (1:
/// round robin over the allocations, the case; 4: a video frame's
/// packets, where a relay can batch per destination).
const CASES: [(usize, usize); 3] = [(8, 1), (64, 1), (8, 4)];
const STEP: Duration = Duration::from_millis(1000);
/// Offered rates (pkt/s, both directions together) of the CPU comparison:
/// low enough that both relays keep up while the generator shares the
/// machine's two cores with them.
const CPU_RATES: &[u64] = &[10_000, 20_000, 40_000, 80_000];
/// `CPU_RATES`, or a comma-separated list in `SOTTO_RELAY_BENCH_RATES`
/// (for profiling one load).
fn cpu_rates() -> Vec<u64> {
    std::env::var("SOTTO_RELAY_BENCH_RATES")
        .ok()
        .and_then(|v| v.split(',').map(|r| r.trim().parse().ok()).collect())
        .unwrap_or_else(|| CPU_RATES.to_vec())
}
/// Each CPU rate is run this many times per relay, alternating the order.
const REPS: usize = 2;
/// How often the (timer-driven) receiver drains its sockets; their 4 MiB
/// buffers hold far more than arrives in this time.
const RX_INTERVAL: Duration = Duration::from_micros(500);
/// Rates tried after the CPU comparison for the highest lossless rate.
const SWEEP_RATES: &[u64] = &[100_000, 130_000, 160_000, 200_000, 260_000];
const IDLE_ALLOCATIONS: usize = 10_000;

fn main() {
    if std::env::var_os("SOTTO_RELAY_BENCH_SERVER").is_some() {
        return sotto_server_child();
    }
    assert!(
        which("turnserver"),
        "turnserver (Debian coturn) not found: the relay bench needs it (cargo xtask setup)"
    );
    let only_cpu = std::env::var_os("SOTTO_RELAY_BENCH_CPU_ONLY").is_some();
    let net = Net::from_env();
    println!("relay bench over {}", net.describe());
    // Deletes the namespace (if any) when main ends or panics.
    let _netns = net.netns.clone().map(NetnsGuard);
    let _ = NET.set(net);
    let mut rows = Vec::new();
    for (allocations, burst) in CASES {
        let case = match burst {
            1 => format!("{allocations}_allocations"),
            b => format!("{allocations}_allocations_burst{b}"),
        };
        let servers = [Server::start(Impl::Sotto), Server::start(Impl::Coturn)];
        let r = throughput(&servers, allocations, burst, !only_cpu);
        for (imp, r) in servers.iter().map(|s| s.imp).zip(&r) {
            println!(
                "relay/{case} {:>7}: {:>9.0} relayed pkt per CPU-s ({:.2} us, {:.2} context switches per packet), max rate with <0.1% loss {:>7} pkt/s",
                imp.name(),
                r.per_cpu_s,
                r.ns_per_packet / 1e3,
                r.switches_per_packet,
                r.max_lossless
            );
        }
        rows.push((case, r));
    }
    let mut memory = vec![0.0; 2];
    if !only_cpu {
        for (imp, m) in [Impl::Sotto, Impl::Coturn].into_iter().zip(&mut memory) {
            let server = Server::start(imp);
            *m = idle_memory(&server);
            println!(
                "relay/idle_{IDLE_ALLOCATIONS} {:>7}: {:>7.0} bytes RSS per idle allocation",
                imp.name(),
                *m
            );
        }
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
            n, r[0].per_cpu_s, r[1].per_cpu_s, ratio, r[0].max_lossless, r[1].max_lossless
        );
        cases.push(format!(
            "{{\"case\":\"{n}\",\"sotto_per_cpu_s\":{:.0},\"coturn_per_cpu_s\":{:.0},\"ratio\":{ratio:.3},\"sotto_switches_per_pkt\":{:.3},\"coturn_switches_per_pkt\":{:.3},\"sotto_max_lossless_pps\":{},\"coturn_max_lossless_pps\":{}}}",
            r[0].per_cpu_s,
            r[1].per_cpu_s,
            r[0].switches_per_packet,
            r[1].switches_per_packet,
            r[0].max_lossless,
            r[1].max_lossless
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

/// Where the relays and the load generator meet: loopback, or a veth pair
/// into a namespace of the relays' own (see the module comment).
struct Net {
    /// The relays' listening and relayed address.
    relay_ip: IpAddr,
    /// The load generator's clients and peer.
    generator_ip: IpAddr,
    /// The relays' network namespace.
    netns: Option<String>,
}

static NET: OnceLock<Net> = OnceLock::new();

fn net() -> &'static Net {
    NET.get().expect("network set up in main")
}

impl Net {
    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    /// RFC 2544's benchmarking range (198.18.0.0/15), which sotto-relay
    /// refuses as a peer unless allowed.
    const VETH_GENERATOR: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    const VETH_RELAY: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));

    fn from_env() -> Net {
        match std::env::var("SOTTO_RELAY_BENCH_NET").as_deref() {
            Ok("veth") => Net::veth(),
            Ok("loopback") | Err(_) => Net {
                relay_ip: Net::LOOPBACK,
                generator_ip: Net::LOOPBACK,
                netns: None,
            },
            Ok(other) => panic!("SOTTO_RELAY_BENCH_NET={other}: expected loopback or veth"),
        }
    }

    fn veth() -> Net {
        let pid = std::process::id();
        let ns = format!("sotto-bench-{pid}");
        let (outer, inner) = (format!("sbg{pid}"), format!("sbr{pid}"));
        let net = Net {
            relay_ip: Net::VETH_RELAY,
            generator_ip: Net::VETH_GENERATOR,
            netns: Some(ns.clone()),
        };
        run(&["ip", "netns", "add", &ns]);
        run(&[
            "ip", "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ]);
        run(&["ip", "link", "set", &inner, "netns", &ns]);
        let ends = [
            (None, &outer, Net::VETH_GENERATOR),
            (Some(ns.as_str()), &inner, Net::VETH_RELAY),
        ];
        for (ns, dev, ip) in ends {
            let inside = |args: &[&str]| {
                let mut all = ns.map_or(vec![], |n| vec!["ip", "netns", "exec", n]);
                all.extend_from_slice(args);
                run(&all);
            };
            inside(&["ip", "addr", "add", &format!("{ip}/30"), "dev", dev]);
            inside(&["ip", "link", "set", dev, "up", "gro_max_size", "0"]);
            inside(&["ip", "link", "set", "lo", "up"]);
            // veth hands a UDP datagram to the peer's NAPI only when the
            // sending end has no TSO (or the peer forwards UDP GRO).
            inside(&["ethtool", "-K", dev, "gro", "on", "tso", "off"]);
            inside(&[
                "sh",
                "-c",
                &format!("echo 1 > /sys/class/net/{dev}/threaded"),
            ]);
        }
        net
    }

    fn describe(&self) -> String {
        match &self.netns {
            None => "loopback".into(),
            Some(ns) => format!(
                "veth {} -> {} (namespace {ns}, threaded NAPI)",
                self.generator_ip, self.relay_ip
            ),
        }
    }

    /// A command running `program`, inside the relays' namespace if they
    /// have one.
    fn relay_command(&self, program: &std::path::Path) -> Command {
        match &self.netns {
            None => Command::new(program),
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(program);
                c
            }
        }
    }
}

/// Deletes a network namespace (and the veth end inside it) on drop.
struct NetnsGuard(String);

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Runs a set-up command, failing the bench loudly if it fails.
fn run(args: &[&str]) {
    let status = Command::new(args[0])
        .args(&args[1..])
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the veth bench needs iproute2 and ethtool)",
                args[0]
            )
        });
    assert!(
        status.success(),
        "`{}` failed (the veth bench needs root)",
        args.join(" ")
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
    imp: Impl,
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
                let mut child = net()
                    .relay_command(&std::env::current_exe().unwrap())
                    .env("SOTTO_RELAY_BENCH_SERVER", net().relay_ip.to_string())
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
                    imp,
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
                let ip = net().relay_ip.to_string();
                let child = net()
                    .relay_command("turnserver".as_ref())
                    .args([
                        "-n",
                        "--listening-ip",
                        &ip,
                        "--listening-port",
                        &port.to_string(),
                    ])
                    .args([
                        "--relay-ip",
                        &ip,
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
                let addr = SocketAddr::new(net().relay_ip, port);
                wait_binding(addr);
                Server {
                    imp,
                    child,
                    addr,
                    _dir: dir,
                }
            }
        }
    }

    /// CPU time (ns) and context switches of every thread of the relay
    /// process so far. The scheduler's runtime is exact, where the
    /// utime/stime of /proc/<pid>/stat are sampled at the tick; both
    /// include the softirq work (loopback delivery) done on the process's
    /// behalf, as this kernel does not account IRQ time apart.
    fn cpu(&self) -> (u64, u64) {
        let (mut ns, mut switches) = (0, 0);
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id())).unwrap();
        for t in tasks.flatten() {
            let p = t.path();
            if let Ok(s) = std::fs::read_to_string(p.join("schedstat")) {
                ns += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
            if let Ok(s) = std::fs::read_to_string(p.join("status")) {
                switches += s
                    .lines()
                    .filter(|l| l.contains("ctxt_switches:"))
                    .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .sum::<u64>();
            }
        }
        (ns, switches)
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

/// The sotto side: one UDP worker (as coturn gets one relay thread),
/// listening on the address in `SOTTO_RELAY_BENCH_SERVER`.
fn sotto_server_child() {
    let ip: IpAddr = std::env::var("SOTTO_RELAY_BENCH_SERVER")
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("SOTTO_RELAY_BENCH_SERVER is the address to listen on");
    let dir = std::env::temp_dir().join(format!("sotto-relay-bench-child-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users");
    std::fs::write(&users, format!("{USER}:{PASS}\n")).unwrap();
    let options = sotto_relay::config::Options {
        realm: Some(REALM.into()),
        listen: vec![SocketAddr::new(ip, 0)],
        users_file: Some(users),
        allow_loopback_peers: Some(true),
        allow_peers: vec![Net::VETH_GENERATOR.into()],
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

/// A load generator's UDP socket with a 4 MiB receive buffer, so that the load
/// generator's own scheduling gaps do not show up as relay loss.
fn bench_socket() -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&SocketAddr::new(net().generator_ip, 0).into())
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
    let s = UdpSocket::bind((net().generator_ip, 0)).unwrap();
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

/// One allocation count's load against one relay: the clients, the peer,
/// and a receiver thread counting what comes back in each direction.
struct Load {
    frames: Vec<(usize, SocketAddr, Vec<u8>)>,
    senders: Vec<UdpSocket>,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    receiver: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.receiver.take() {
            let _ = r.join();
        }
    }
}

/// What one step at a fixed offered rate measured.
#[derive(Clone, Copy, Default)]
struct Step {
    sent: u64,
    received: u64,
    cpu_ns: u64,
    switches: u64,
}

impl Step {
    fn loss(&self) -> f64 {
        1.0 - self.received as f64 / self.sent.max(1) as f64
    }

    /// What the generator actually offered, per second: on a shared
    /// 2-core machine it cannot always reach the nominal rate.
    fn offered(&self) -> u64 {
        self.sent * 1000 / STEP.as_millis() as u64
    }
}

impl Load {
    /// `n` allocations on `server`, each with a channel to one peer socket.
    fn new(server: &Server, n: usize, burst: usize) -> Load {
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
        // Datagrams in round-robin order: ChannelData from each client,
        // then raw data from the peer to that client's relayed address.
        let mut frames = Vec::new();
        for (i, c) in clients.iter().enumerate() {
            let mut cd = vec![0u8; 4 + PAYLOAD];
            cd[..2].copy_from_slice(&(0x4000 + i as u16).to_be_bytes());
            cd[2..4].copy_from_slice(&(PAYLOAD as u16).to_be_bytes());
            for _ in 0..burst {
                frames.push((i + 1, server.addr, cd.clone()));
            }
            for _ in 0..burst {
                frames.push((0, c.relayed, vec![0xab; PAYLOAD]));
            }
        }
        let senders: Vec<UdpSocket> = std::iter::once(peer)
            .chain(clients.into_iter().map(|c| c.sock))
            .collect();
        let received = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let rx: Vec<UdpSocket> = senders
            .iter()
            .map(|s| {
                let clone = s.try_clone().unwrap();
                clone.set_nonblocking(true).unwrap();
                clone
            })
            .collect();
        let receiver = {
            let (count, stop) = (received.clone(), stop.clone());
            std::thread::spawn(move || receive(&rx, &count, &stop))
        };
        Load {
            frames,
            senders,
            received,
            stop,
            receiver: Some(receiver),
        }
    }

    /// Offers `rate` datagrams per second for `STEP`, then waits for
    /// stragglers and reads what the relay process spent.
    fn step(&self, server: &Server, rate: u64) -> Step {
        let r0 = self.received.load(Ordering::Relaxed);
        let (cpu0, sw0) = server.cpu();
        let start = Instant::now();
        let mut sent = 0u64;
        let mut k = 0;
        while start.elapsed() < STEP {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            while sent < due {
                let (s, to, data) = &self.frames[k];
                let _ = self.senders[*s].send_to(data, to);
                k = (k + 1) % self.frames.len();
                sent += 1;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(Duration::from_millis(300));
        let (cpu1, sw1) = server.cpu();
        Step {
            sent,
            received: self.received.load(Ordering::Relaxed) - r0,
            cpu_ns: cpu1 - cpu0,
            switches: sw1 - sw0,
        }
    }
}

/// Counts what the relay delivers until `stop`. By default it wakes on a
/// timer and drains every socket, so that no datagram the relay sends has
/// to wake a sleeping receiver: on loopback that wakeup (an IPI on this
/// VM) would be charged to the relay's CPU, which a relay sending onto a
/// real network never pays. `SOTTO_RELAY_BENCH_RX=epoll` waits in epoll
/// instead (the receiver is then woken by the relay's sends).
fn receive(rx: &[UdpSocket], count: &AtomicU64, stop: &AtomicBool) {
    let epoll = std::env::var("SOTTO_RELAY_BENCH_RX").is_ok_and(|v| v == "epoll");
    let mut poll = mio::Poll::new().unwrap();
    // Registered only when used: a registered socket costs the sender a
    // callback per datagram even when nobody waits.
    for (i, s) in rx.iter().enumerate().filter(|_| epoll) {
        use std::os::fd::AsRawFd;
        poll.registry()
            .register(
                &mut mio::unix::SourceFd(&s.as_raw_fd()),
                mio::Token(i),
                mio::Interest::READABLE,
            )
            .unwrap();
    }
    let mut events = mio::Events::with_capacity(256);
    let mut buf = [0u8; 2048];
    let mut drain = |i: usize, s: &UdpSocket| {
        while let Ok(len) = s.recv(&mut buf) {
            // The peer gets the bare payload; a client gets it as ChannelData.
            let ok = if i == 0 {
                len == PAYLOAD
            } else {
                len == PAYLOAD + 4 && buf[0] & 0xc0 == 0x40
            };
            if ok {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    while !stop.load(Ordering::Relaxed) {
        if epoll {
            let _ = poll.poll(&mut events, Some(Duration::from_millis(50)));
            for ev in events.iter() {
                drain(ev.token().0, &rx[ev.token().0]);
            }
        } else {
            std::thread::sleep(RX_INTERVAL);
            for (i, s) in rx.iter().enumerate() {
                drain(i, s);
            }
        }
    }
}

/// Per-relay result of one allocation count.
#[derive(Default)]
struct Throughput {
    per_cpu_s: f64,
    ns_per_packet: f64,
    switches_per_packet: f64,
    max_lossless: u64,
}

/// Measures both relays with `n` allocations each. The CPU comparison
/// alternates the two relays step by step at the same offered rates, so
/// that other load on the machine hits both alike, and counts only the
/// steps both relayed without loss; the lossless-rate sweep follows.
fn throughput(servers: &[Server; 2], n: usize, burst: usize, sweep: bool) -> [Throughput; 2] {
    let loads = [
        Load::new(&servers[0], n, burst),
        Load::new(&servers[1], n, burst),
    ];
    let mut sums = [Step::default(); 2];
    let mut out: [Throughput; 2] = Default::default();
    for (i, &rate) in cpu_rates().iter().enumerate() {
        for rep in 0..REPS {
            let order = if (i + rep) % 2 == 0 { [0, 1] } else { [1, 0] };
            let mut steps = [Step::default(); 2];
            for j in order {
                steps[j] = loads[j].step(&servers[j], rate);
            }
            let both_lossless = steps.iter().all(|s| s.loss() < 0.001);
            for (j, s) in steps.iter().enumerate() {
                println!(
                    "  {n:>2} alloc {:>6} offered {rate:>6}/s sent {:>6} received {:>6} loss {:>6.3}% CPU {:>6.1} ms = {:>5.2} us/pkt, {:.2} switches/pkt{}",
                    servers[j].imp.name(),
                    s.sent,
                    s.received,
                    s.loss() * 100.0,
                    s.cpu_ns as f64 / 1e6,
                    s.cpu_ns as f64 / 1e3 / s.received.max(1) as f64,
                    s.switches as f64 / s.received.max(1) as f64,
                    if both_lossless { "" } else { " (not counted)" }
                );
                if s.loss() < 0.001 {
                    out[j].max_lossless = out[j].max_lossless.max(s.offered());
                }
                if both_lossless {
                    sums[j].received += s.received;
                    sums[j].cpu_ns += s.cpu_ns;
                    sums[j].switches += s.switches;
                }
            }
        }
    }
    for j in 0..2 {
        let s = sums[j];
        out[j].per_cpu_s = s.received as f64 * 1e9 / s.cpu_ns.max(1) as f64;
        out[j].ns_per_packet = s.cpu_ns as f64 / s.received.max(1) as f64;
        out[j].switches_per_packet = s.switches as f64 / s.received.max(1) as f64;
        for &rate in SWEEP_RATES.iter().take(if sweep { usize::MAX } else { 0 }) {
            let s = loads[j].step(&servers[j], rate);
            println!(
                "  {n:>2} alloc {:>6} sweep {rate:>7}/s sent {:>7} received {:>7} loss {:>6.3}%",
                servers[j].imp.name(),
                s.sent,
                s.received,
                s.loss() * 100.0
            );
            if s.loss() < 0.001 {
                out[j].max_lossless = out[j].max_lossless.max(s.offered());
            }
            if s.loss() > 0.05 {
                break;
            }
        }
    }
    out
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
