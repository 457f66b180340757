//! Shared helpers for the transport integration tests: a Debian coturn
//! started on loopback (IPv4 or IPv6), an in-process signalling channel,
//! and a call runner.
#![allow(dead_code)]

use sotto_engine::driver::{TransportEvent, TransportHandle};
use sotto_engine::ice::{IceEvent, SelectedPath, SignalMessage, Signaller, TurnServer};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A coturn `turnserver` on 127.0.0.1 or ::1, killed on drop.
pub struct Coturn {
    child: Child,
    pub addr: SocketAddr,
    dir: std::path::PathBuf,
    args: Vec<String>,
}

/// Credentials mode for coturn.
pub enum Auth {
    /// `--lt-cred-mech --user u:p`.
    LongTerm {
        user: &'static str,
        pass: &'static str,
    },
    /// `--use-auth-secret --static-auth-secret=...` (TURN REST).
    Secret(&'static str),
}

pub const REALM: &str = "sotto";

fn free_udp_port(ip: IpAddr) -> u16 {
    UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether this machine has the IPv6 loopback address (`::1` on `lo` in
/// `/proc/net/if_inet6`).
pub fn has_ipv6_loopback() -> bool {
    std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|t| {
        t.lines()
            .any(|l| l.starts_with("00000000000000000000000000000001 "))
    })
}

impl Coturn {
    /// Starts coturn on 127.0.0.1 on a free port and waits until it answers STUN.
    pub fn start(auth: Auth) -> Self {
        let v4 = Ipv4Addr::LOCALHOST.into();
        Self::start_at(auth, v4, v4, &[])
    }

    /// Like [`Coturn::start`] on ::1: it listens and relays on IPv6 only.
    pub fn start_v6(auth: Auth) -> Self {
        let v6 = Ipv6Addr::LOCALHOST.into();
        Self::start_at(auth, v6, v6, &[])
    }

    /// Listens on ::1 but relays on 127.0.0.1 only (refuses IPv6 relays).
    pub fn start_v6_relaying_v4(auth: Auth) -> Self {
        Self::start_at(
            auth,
            Ipv6Addr::LOCALHOST.into(),
            Ipv4Addr::LOCALHOST.into(),
            &[],
        )
    }

    /// This server in an ICE config, with `user`'s long-term credential.
    pub fn server(&self, user: &str, password: &str) -> TurnServer {
        TurnServer {
            addr: self.addr,
            username: user.into(),
            password: password.into(),
            realm: REALM.into(),
        }
    }

    /// Like [`Coturn::start`] with extra `turnserver` flags.
    pub fn start_with(auth: Auth, extra: &[&str]) -> Self {
        let v4 = Ipv4Addr::LOCALHOST.into();
        Self::start_at(auth, v4, v4, extra)
    }

    /// coturn listening on `ip` and relaying from `relay`.
    fn start_at(auth: Auth, ip: IpAddr, relay: IpAddr, extra: &[&str]) -> Self {
        let port = free_udp_port(ip);
        let family = if ip.is_ipv6() { "v6" } else { "v4" };
        let dir = std::env::temp_dir().join(format!(
            "sotto-coturn-{}-{family}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (ip_arg, relay_arg) = (ip.to_string(), relay.to_string());
        let mut args: Vec<String> = [
            "-n",
            "--listening-ip",
            &ip_arg,
            "--relay-ip",
            &relay_arg,
            "--allow-loopback-peers",
            "--no-tls",
            "--no-dtls",
            "--no-tcp",
            "--no-cli",
            "--realm",
            REALM,
            "--simple-log",
            "-v",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push("--listening-port".into());
        args.push(port.to_string());
        args.push("--db".into());
        args.push(dir.join("turndb").display().to_string());
        args.push("--log-file".into());
        args.push(dir.join("turn.log").display().to_string());
        args.push("--pidfile".into());
        args.push(dir.join("pid").display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        match auth {
            Auth::LongTerm { user, pass } => {
                args.push("--lt-cred-mech".into());
                args.push("--user".into());
                args.push(format!("{user}:{pass}"));
            }
            Auth::Secret(s) => {
                args.push("--use-auth-secret".into());
                args.push(format!("--static-auth-secret={s}"));
            }
        }
        let c = Self {
            child: spawn_turnserver(&args),
            addr: (ip, port).into(),
            dir,
            args,
        };
        c.wait_ready();
        c
    }

    /// coturn's verbose log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("turn.log")).unwrap_or_default()
    }

    /// How many lines of coturn's verbose log contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        std::fs::read_to_string(self.dir.join("turn.log"))
            .map_or(0, |l| l.lines().filter(|x| x.contains(needle)).count())
    }

    /// Kills and restarts the server on the same port (allocations are lost).
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn_turnserver(&self.args);
        self.wait_ready();
    }

    /// Polls with STUN Binding requests until the server answers (generous bound).
    fn wait_ready(&self) {
        let sock = UdpSocket::bind((self.addr.ip(), 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        // A minimal RFC 5389 Binding request: type 0x0001, length 0, cookie, txid.
        let mut req = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
        req.extend_from_slice(&[7u8; 12]);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 512];
        while Instant::now() < deadline {
            let _ = sock.send_to(&req, self.addr);
            if let Ok((n, _)) = sock.recv_from(&mut buf)
                && n >= 20
                && buf[0..2] == [0x01, 0x01]
            {
                return;
            }
        }
        panic!("coturn did not become ready on {}", self.addr);
    }
}

fn spawn_turnserver(args: &[String]) -> Child {
    Command::new("turnserver")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("coturn (`turnserver`) must be installed: run `cargo xtask setup`")
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Signalling over an in-process channel (the engine only sees the trait).
pub struct ChanSignaller(pub mpsc::UnboundedSender<SignalMessage>);

impl Signaller for ChanSignaller {
    fn send(&mut self, msg: SignalMessage) {
        let _ = self.0.send(msg);
    }
}

/// A signalling pair: what A sends arrives at `to_b`, and vice versa.
pub fn signalling() -> (
    ChanSignaller,
    mpsc::UnboundedReceiver<SignalMessage>,
    ChanSignaller,
    mpsc::UnboundedReceiver<SignalMessage>,
) {
    let (a_tx, a_rx) = mpsc::unbounded_channel();
    let (b_tx, b_rx) = mpsc::unbounded_channel();
    (ChanSignaller(a_tx), a_rx, ChanSignaller(b_tx), b_rx)
}

/// Two endpoints and their signalling, pumped together.
pub struct Call {
    pub a: TransportHandle,
    pub b: TransportHandle,
    from_a: mpsc::UnboundedReceiver<SignalMessage>,
    from_b: mpsc::UnboundedReceiver<SignalMessage>,
    /// Optional rewrite of B's candidates on their way to A (the fault proxy).
    pub rewrite_b: Option<Box<dyn FnMut(SignalMessage) -> Vec<SignalMessage> + Send>>,
    /// Whether A's candidates reach B (off: B learns A only from its checks).
    pub a_candidates_to_b: bool,
    pub a_selected: Option<SelectedPath>,
    pub b_selected: Option<SelectedPath>,
    pub a_media: Vec<Vec<u8>>,
    pub b_media: Vec<Vec<u8>>,
    /// A's ICE events with when the test saw them.
    pub a_events: Vec<(Instant, IceEvent)>,
    pub b_events: Vec<IceEvent>,
    /// Every signalling message A sent.
    pub a_signals: Vec<SignalMessage>,
}

impl Call {
    pub fn new(
        a: TransportHandle,
        from_a: mpsc::UnboundedReceiver<SignalMessage>,
        b: TransportHandle,
        from_b: mpsc::UnboundedReceiver<SignalMessage>,
    ) -> Self {
        Self {
            a,
            b,
            from_a,
            from_b,
            rewrite_b: None,
            a_candidates_to_b: true,
            a_selected: None,
            b_selected: None,
            a_media: vec![],
            b_media: vec![],
            a_events: vec![],
            a_signals: vec![],
            b_events: vec![],
        }
    }

    /// Pumps signalling and events until `done` holds or `limit` passes
    /// (a generous protocol bound, not a performance threshold).
    pub async fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Call) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if done(self) {
                return true;
            }
            tokio::select! {
                Some(m) = self.from_a.recv() => {
                    self.a_signals.push(m.clone());
                    if self.a_candidates_to_b || !matches!(m, SignalMessage::Candidate { .. }) {
                        self.b.signal(m).await.unwrap();
                    }
                }
                Some(m) = self.from_b.recv() => {
                    let msgs = match self.rewrite_b.as_mut() { Some(f) => f(m), None => vec![m] };
                    for m in msgs { self.a.signal(m).await.unwrap(); }
                }
                Some(e) = self.a.recv() => match e {
                    TransportEvent::Media(m) => self.a_media.push(m),
                    TransportEvent::Ice(IceEvent::Selected(p)) => { self.a_selected = Some(p); self.a_events.push((Instant::now(), IceEvent::Selected(p))); }
                    TransportEvent::Ice(e) => self.a_events.push((Instant::now(), e)),
                },
                Some(e) = self.b.recv() => match e {
                    TransportEvent::Media(m) => self.b_media.push(m),
                    TransportEvent::Ice(IceEvent::Selected(p)) => self.b_selected = Some(p),
                    TransportEvent::Ice(e) => self.b_events.push(e),
                },
                () = tokio::time::sleep_until(deadline) => return done(self),
            }
        }
    }

    /// Runs until both sides have selected a pair, or `limit` passes.
    pub async fn connect(&mut self, limit: Duration) -> bool {
        self.run_until(limit, |c| c.a_selected.is_some() && c.b_selected.is_some())
            .await
    }

    /// Exchanges `n` RTP-shaped datagrams each way, tagged by `tag`, and
    /// waits until at least `want` arrive at each side.
    pub async fn exchange(&mut self, tag: u8, n: usize, want: usize) -> bool {
        let (a0, b0) = (count_tag(&self.a_media, tag), count_tag(&self.b_media, tag));
        for i in 0..n {
            self.a.send_media(rtp_like(tag, i as u16)).await.unwrap();
            self.b.send_media(rtp_like(tag, i as u16)).await.unwrap();
        }
        self.run_until(Duration::from_secs(10), |c| {
            count_tag(&c.a_media, tag) - a0 >= want && count_tag(&c.b_media, tag) - b0 >= want
        })
        .await
    }
}

/// How A's failover after a fault at `cut` went: time to the ICE restart
/// (consent loss) and from the restart to the new selected pair.
#[derive(Debug, Clone, Copy)]
pub struct Failover {
    pub to_restart: Duration,
    pub restart_to_selected: Duration,
}

/// Asserts the protocol facts of a failover after a fault at `cut`: A
/// restarted ICE (a `Restarting` event, counted in its stats), offered
/// fresh credentials through signalling, B restarted in answer, and A's
/// next pair was selected only after that restart (the agent cannot move
/// to another pair without one; see `ice/session.rs`). Returns the timings.
pub async fn assert_failover_by_restart(call: &Call, cut: Instant) -> Failover {
    let restart = call
        .a_events
        .iter()
        .find(|(t, e)| *t >= cut && *e == IceEvent::Restarting)
        .map(|(t, _)| *t)
        .unwrap_or_else(|| panic!("A did not restart ICE: {:?}", call.a_events));
    let selected = call
        .a_events
        .iter()
        .find(|(t, e)| *t >= restart && matches!(e, IceEvent::Selected(_)))
        .map(|(t, _)| *t)
        .unwrap_or_else(|| panic!("no pair after the restart: {:?}", call.a_events));
    // No pair was selected between the fault and the restart.
    assert!(
        !call
            .a_events
            .iter()
            .any(|(t, e)| *t >= cut && *t < restart && matches!(e, IceEvent::Selected(_))),
        "a pair was selected without a restart: {:?}",
        call.a_events
    );
    let offers: Vec<&String> = call
        .a_signals
        .iter()
        .filter_map(|m| match m {
            SignalMessage::Offer { ufrag, .. } => Some(ufrag),
            _ => None,
        })
        .collect();
    assert!(
        offers.len() >= 2 && offers.first() != offers.last(),
        "A offered no fresh credentials: {offers:?}"
    );
    assert!(
        call.b_events.contains(&IceEvent::Restarting),
        "B did not restart: {:?}",
        call.b_events
    );
    let (stats, _, _) = call.a.stats().await.unwrap();
    assert!(stats.restarts >= 1, "{stats:?}");
    Failover {
        to_restart: restart - cut,
        restart_to_selected: selected - restart,
    }
}

/// An RTP-shaped datagram (what the SRTP layer above would hand down).
pub fn rtp_like(tag: u8, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 111];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, tag]);
    p.extend_from_slice(&[tag; 100]);
    p
}

pub fn count_tag(media: &[Vec<u8>], tag: u8) -> usize {
    media
        .iter()
        .filter(|m| m.len() > 12 && m[11] == tag)
        .count()
}

/// An in-process UDP proxy standing in for one network path: A talks to
/// `front`, the proxy relays to `target` from its own `back` socket. It can
/// be cut (the path dies) or rebind its back socket (a NAT mapping change).
pub struct Proxy {
    pub front: SocketAddr,
    alive: std::sync::Arc<std::sync::atomic::AtomicBool>,
    rebind: std::sync::Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let front = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let front_addr = front.local_addr().unwrap();
        let alive = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let rebind = std::sync::Arc::new(tokio::sync::Notify::new());
        let (al, rb) = (alive.clone(), rebind.clone());
        let task = tokio::spawn(async move {
            let mut back = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut client: Option<SocketAddr> = None;
            let (mut b1, mut b2) = (vec![0u8; 2048], vec![0u8; 2048]);
            let ok = || al.load(std::sync::atomic::Ordering::SeqCst);
            loop {
                tokio::select! {
                    Ok((n, from)) = front.recv_from(&mut b1) => if ok() {
                        client = Some(from);
                        let _ = back.send_to(&b1[..n], target).await;
                    },
                    Ok((n, from)) = back.recv_from(&mut b2) => if ok() && from == target && let Some(c) = client {
                        let _ = front.send_to(&b2[..n], c).await;
                    },
                    () = rb.notified() => {
                        back = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                    }
                }
            }
        });
        Self {
            front: front_addr,
            alive,
            rebind,
            task,
        }
    }

    /// Drops everything from now on, both ways.
    pub fn cut(&self) {
        self.alive.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Moves the peer-facing side to a new port, as a NAT rebinding would.
    pub fn rebind(&self) {
        self.rebind.notify_one();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Rewrites B's trickled candidates into host candidates at the proxies'
/// front addresses (distinct priorities), so A reaches B only via proxies.
pub fn via_proxies(
    fronts: Vec<SocketAddr>,
) -> Box<dyn FnMut(SignalMessage) -> Vec<SignalMessage> + Send> {
    Box::new(move |m| match m {
        SignalMessage::Candidate { ufrag, candidate } if candidate.contains("typ host") => fronts
            .iter()
            .enumerate()
            .map(|(i, f)| SignalMessage::Candidate {
                ufrag: ufrag.clone(),
                candidate: format!(
                    "p{i} 1 udp {} {} {} typ host",
                    2_000_000_000 - i as u32 * 1000,
                    f.ip(),
                    f.port()
                ),
            })
            .collect(),
        SignalMessage::Candidate { .. } => vec![],
        other => vec![other],
    })
}
