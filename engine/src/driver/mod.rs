//! The tokio driver: one task owns the UDP sockets (IPv4 and IPv6) and the
//! [`IceSession`] timers, and shuttles bytes between them and the app.
//!
//! The task sleeps until a socket is readable, a command arrives or the
//! core's `poll_timeout` deadline passes: no polling loop. Media in and out
//! is opaque (already SRTP-protected) datagrams.
//!
//! ```no_run
//! use sotto_engine::driver::{TransportEvent, TransportHandle, default_bind_addrs};
//! use sotto_engine::ice::{IceConfig, SignalMessage, Signaller};
//!
//! /// The app's signalling client (here: print what would go to the peer).
//! struct Print;
//! impl Signaller for Print {
//!     fn send(&mut self, msg: SignalMessage) {
//!         println!("to peer: {msg:?}");
//!     }
//! }
//!
//! # async fn run() -> Result<(), sotto_engine::driver::DriverError> {
//! let mut t = TransportHandle::bind(&default_bind_addrs(), IceConfig::default(), Box::new(Print)).await?;
//! // Hand over the peer's messages as they arrive: t.signal(msg).await?;
//! while let Some(ev) = t.recv().await {
//!     match ev {
//!         TransportEvent::Ice(e) => println!("{e:?}"),
//!         // An SRTP/SRTCP/ZRTP datagram from the selected path: to MediaStream::receive.
//!         TransportEvent::Media(datagram) => drop(datagram),
//!     }
//! }
//! t.shutdown().await;
//! # Ok(()) }
//! ```

mod follow;
mod io;

pub use follow::{HostNetwork, NETWORK_POLL, NetworkView, route_source};
pub use io::UdpIo;

use follow::Follow;

use crate::ice::{
    IceConfig, IceError, IceEvent, IceSession, IceStats, SelectedPath, SignalMessage, Signaller,
};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Commands queued to the driver task (bounded: the app is back-pressured).
const COMMAND_QUEUE: usize = 256;
/// Events queued to the app; media beyond this is dropped and counted.
const EVENT_QUEUE: usize = 1024;
/// Largest datagram we receive (no jumbo media on a call).
const MAX_DATAGRAM: usize = 2048;
/// How long a shutdown waits, at most, for the TURN server to answer the
/// deletion of its allocation: two round trips for a deletion answered 438
/// (Stale Nonce) and sent again, with room for a retransmission. Usually
/// the answer comes after one round trip and the task ends then.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Errors from starting or talking to the driver.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A socket could not be bound or queried.
    #[error("socket: {0}")]
    Io(std::io::Error),
    /// The ICE core refused to start.
    #[error(transparent)]
    Ice(#[from] IceError),
    /// The driver task has stopped.
    #[error("transport task stopped")]
    Stopped,
    /// Too many sockets (one IPv4 and one IPv6 at most).
    #[error("at most one IPv4 and one IPv6 socket")]
    TooManySockets,
    /// An unspecified bind address, and no interface address of its family.
    #[error("no {0} interface address to bind instead of the unspecified address")]
    NoInterfaceAddress(&'static str),
}

shown_from!(DriverError, DriverError::Io, std::io::Error);

/// One bind address per family for host candidates (RFC 8445 §5.1.1.1):
/// the address the default route sends from, else the first non-loopback
/// interface address of the family, else loopback. Port 0: the OS picks.
pub fn default_bind_addrs() -> Vec<SocketAddr> {
    let ips = crate::ice::host_addresses();
    [true, false]
        .map(|v4| follow::pick(&ips, follow::route_source(v4), v4))
        .into_iter()
        .flatten()
        .map(|ip| SocketAddr::new(ip, 0))
        .collect()
}

/// The unspecified address (`0.0.0.0:0`, `[::]:0`) of each family this
/// host has an address of: a transport bound on them uses the addresses
/// [`default_bind_addrs`] picks, and follows the network
/// ([`TransportHandle::bind`]).
pub fn following_bind_addrs() -> Vec<SocketAddr> {
    default_bind_addrs()
        .into_iter()
        .map(|a| {
            let any: IpAddr = if a.is_ipv4() {
                std::net::Ipv4Addr::UNSPECIFIED.into()
            } else {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            };
            SocketAddr::new(any, 0)
        })
        .collect()
}

/// `addr`, or, when its IP is unspecified (`0.0.0.0`, `::`), the address
/// [`default_bind_addrs`] picks for that family with `addr`'s port. A
/// socket on a wildcard address cannot name the host candidate it receives
/// on, so "any address" means "this machine's own".
pub fn concrete_bind_addr(addr: SocketAddr) -> Result<SocketAddr, DriverError> {
    if !addr.ip().is_unspecified() {
        return Ok(addr);
    }
    let v4 = addr.is_ipv4();
    let family = if v4 { "IPv4" } else { "IPv6" };
    follow::pick(&crate::ice::host_addresses(), follow::route_source(v4), v4)
        .map(|ip| SocketAddr::new(ip, addr.port()))
        .ok_or(DriverError::NoInterfaceAddress(family))
}

/// What the driver reports to the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEvent {
    /// An ICE event (state, selected path, restart).
    Ice(IceEvent),
    /// A media datagram (RTP, RTCP or ZRTP) that arrived on the selected path.
    Media(Vec<u8>),
}

enum Command {
    Send(Vec<u8>),
    Signal(SignalMessage),
    Restart,
    NetworkChanged,
    Stats(oneshot::Sender<(IceStats, Option<SelectedPath>, u64)>),
    Shutdown,
}

/// The app's handle on a running transport. Dropping it stops the task;
/// [`TransportHandle::shutdown`] also waits for it to finish.
pub struct TransportHandle {
    cmd: mpsc::Sender<Command>,
    events: mpsc::Receiver<TransportEvent>,
    task: Option<JoinHandle<()>>,
    local: LocalAddrs,
}

/// The transport's socket addresses as they are now, kept by its task.
pub(crate) type LocalAddrs = Arc<Mutex<Vec<SocketAddr>>>;

impl TransportHandle {
    /// Binds a UDP socket on each of `bind` (port 0 for any) and starts the
    /// transport on them. An unspecified IP stands for this machine's own
    /// (see [`concrete_bind_addr`]), and that family follows the network:
    /// when its address goes away, the transport moves to the one
    /// [`default_bind_addrs`] picks then, and ICE restarts there (checked
    /// every [`NETWORK_POLL`], or at once on
    /// [`TransportHandle::network_changed`]).
    pub async fn bind(
        bind: &[SocketAddr],
        ice: IceConfig,
        signaller: Box<dyn Signaller>,
    ) -> Result<Self, DriverError> {
        Self::bind_on(HostNetwork, bind, ice, signaller)
    }

    /// [`TransportHandle::bind`], with `view`'s addresses and sockets.
    /// Must be called inside a tokio runtime.
    pub fn bind_on<V: NetworkView>(
        view: V,
        bind: &[SocketAddr],
        ice: IceConfig,
        signaller: Box<dyn Signaller>,
    ) -> Result<Self, DriverError> {
        let ips = view.addresses();
        let mut sockets = Vec::with_capacity(bind.len());
        let mut followed = Vec::new();
        for b in bind {
            let addr = if b.ip().is_unspecified() {
                let v4 = b.is_ipv4();
                followed.push((v4, b.port()));
                let ip = follow::pick(&ips, view.route_source(v4), v4).ok_or(
                    DriverError::NoInterfaceAddress(if v4 { "IPv4" } else { "IPv6" }),
                )?;
                SocketAddr::new(ip, b.port())
            } else {
                *b
            };
            sockets.push(view.bind(addr)?);
        }
        let follow = (!followed.is_empty()).then(|| Follow::new(Box::new(view), followed));
        Self::start_following(sockets, ice, signaller, follow)
    }

    /// Starts the transport on already bound sockets (at most one per family).
    /// Must be called inside a tokio runtime.
    pub fn start<S: UdpIo>(
        sockets: Vec<S>,
        ice: IceConfig,
        signaller: Box<dyn Signaller>,
    ) -> Result<Self, DriverError> {
        Self::start_following(sockets, ice, signaller, None)
    }

    fn start_following<S: UdpIo>(
        sockets: Vec<S>,
        ice: IceConfig,
        signaller: Box<dyn Signaller>,
        follow: Option<Follow<S>>,
    ) -> Result<Self, DriverError> {
        let mut v4 = None;
        let mut v6 = None;
        let mut local = Vec::new();
        for s in sockets {
            let addr = s.local_addr()?;
            let slot = if addr.is_ipv4() { &mut v4 } else { &mut v6 };
            if slot.is_some() {
                return Err(DriverError::TooManySockets);
            }
            local.push(addr);
            *slot = Some((addr, s));
        }
        let session = IceSession::new(Instant::now(), ice, &local)?;
        let local = LocalAddrs::new(Mutex::new(local));
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
        let task = Task {
            session,
            v4,
            v6,
            signaller,
            events: ev_tx,
            dropped_events: 0,
            follow,
            left: [None, None],
            left_until: None,
            local: Arc::clone(&local),
        };
        let task = tokio::spawn(task.run(cmd_rx));
        Ok(Self {
            cmd: cmd_tx,
            events: ev_rx,
            task: Some(task),
            local,
        })
    }

    /// The local socket addresses now: after a move to a new network
    /// (see [`TransportHandle::bind`]), the new ones.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        lock(&self.local).clone()
    }

    /// The same addresses, shared, for a handle that outlives this one's borrow.
    pub(crate) fn shared_local_addrs(&self) -> LocalAddrs {
        Arc::clone(&self.local)
    }

    /// Sends one media datagram on the selected path (dropped while unconnected).
    pub async fn send_media(&self, data: Vec<u8>) -> Result<(), DriverError> {
        self.cmd
            .send(Command::Send(data))
            .await
            .map_err(|_| DriverError::Stopped)
    }

    /// Delivers a message from the peer's signalling.
    pub async fn signal(&self, msg: SignalMessage) -> Result<(), DriverError> {
        self.cmd
            .send(Command::Signal(msg))
            .await
            .map_err(|_| DriverError::Stopped)
    }

    /// Starts an ICE restart.
    pub async fn restart(&self) -> Result<(), DriverError> {
        self.cmd
            .send(Command::Restart)
            .await
            .map_err(|_| DriverError::Stopped)
    }

    /// Tells the transport that the network changed (the app heard so from
    /// the OS): a family that follows the network moves to the address
    /// [`default_bind_addrs`] picks now if that is another one, and ICE
    /// restarts either way.
    pub async fn network_changed(&self) -> Result<(), DriverError> {
        self.cmd
            .send(Command::NetworkChanged)
            .await
            .map_err(|_| DriverError::Stopped)
    }

    /// Counters, the selected path, and how many events the app failed to take.
    pub async fn stats(&self) -> Result<(IceStats, Option<SelectedPath>, u64), DriverError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Stats(tx))
            .await
            .map_err(|_| DriverError::Stopped)?;
        rx.await.map_err(|_| DriverError::Stopped)
    }

    /// Next event; `None` once the task has stopped.
    pub async fn recv(&mut self) -> Option<TransportEvent> {
        self.events.recv().await
    }

    /// Deletes TURN allocations (waiting up to `CLOSE_LINGER` for the
    /// server to take the deletions), closes the sockets and waits for the
    /// task to end.
    pub async fn shutdown(mut self) {
        let _ = self.cmd.send(Command::Shutdown).await;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

struct Task<S> {
    session: IceSession,
    v4: Option<(SocketAddr, S)>,
    v6: Option<(SocketAddr, S)>,
    signaller: Box<dyn Signaller>,
    events: mpsc::Sender<TransportEvent>,
    dropped_events: u64,
    follow: Option<Follow<S>>,
    /// Sockets a move left, per family, kept for [`CLOSE_LINGER`] so that
    /// the deletions of their TURN allocations get out (and a 438 answer
    /// can be retried) while their address still works.
    left: [Option<(SocketAddr, S)>; 2],
    left_until: Option<tokio::time::Instant>,
    /// What [`TransportHandle::local_addrs`] reports.
    local: LocalAddrs,
}

/// Locks `m`; a panic elsewhere leaves the addresses whole (each update is
/// one assignment), so a poisoned lock is taken as it is.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sleeps until `at` (for ever when `None`).
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Receives on the sockets a move left (see `Task::left`): which one, and
/// what; never completes when there are none.
async fn recv_left<S: UdpIo>(
    left: &[Option<(SocketAddr, S)>; 2],
    buf: &mut [u8],
) -> (usize, std::io::Result<(usize, SocketAddr)>) {
    match left {
        [Some((_, a)), Some((_, b))] => {
            // One buffer: take whichever is readable first.
            let mut other = [0u8; MAX_DATAGRAM];
            tokio::select! {
                r = a.recv_from(buf) => (0, r),
                r = b.recv_from(&mut other) => {
                    let r = r.map(|(n, from)| {
                        buf[..n].copy_from_slice(&other[..n]);
                        (n, from)
                    });
                    (1, r)
                }
            }
        }
        [Some((_, a)), None] => (0, a.recv_from(buf).await),
        [None, Some((_, b))] => (1, b.recv_from(buf).await),
        [None, None] => std::future::pending().await,
    }
}

/// Receives on an optional socket; never completes when there is none.
async fn recv_on<S: UdpIo>(
    sock: &Option<(SocketAddr, S)>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match sock {
        Some((_, s)) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

impl<S: UdpIo> Task<S> {
    async fn run(mut self, mut cmd: mpsc::Receiver<Command>) {
        let mut buf4 = vec![0u8; MAX_DATAGRAM];
        let mut buf6 = vec![0u8; MAX_DATAGRAM];
        let mut buf_left = vec![0u8; MAX_DATAGRAM];
        // Set at shutdown: the session is closed and only answers to its
        // TURN deletions are awaited, until then at the latest.
        let mut closing_until: Option<Instant> = None;
        let mut next_look = tokio::time::Instant::now() + NETWORK_POLL;
        self.flush().await;
        loop {
            if let Some(until) = closing_until
                && (self.session.deletions_done() || Instant::now() >= until)
            {
                return;
            }
            // Far future when the core has nothing scheduled.
            let mut deadline = self
                .session
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            if let Some(until) = closing_until {
                deadline = deadline.min(until);
            }
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
            let look = tokio::time::sleep_until(next_look);
            tokio::select! {
                () = look, if self.follow.is_some() && closing_until.is_none() => {
                    next_look = tokio::time::Instant::now() + NETWORK_POLL;
                    self.follow_network(false);
                }
                r = recv_on(&self.v4, &mut buf4) => {
                    if let (Ok((n, from)), Some((local, _))) = (r, &self.v4) {
                        let local = *local;
                        self.input(local, from, &buf4[..n]);
                    }
                }
                r = recv_on(&self.v6, &mut buf6) => {
                    if let (Ok((n, from)), Some((local, _))) = (r, &self.v6) {
                        let local = *local;
                        self.input(local, from, &buf6[..n]);
                    }
                }
                (i, r) = recv_left(&self.left, &mut buf_left) => {
                    if let (Ok((n, from)), Some((local, _))) = (r, &self.left[i]) {
                        let local = *local;
                        self.input(local, from, &buf_left[..n]);
                    }
                }
                () = sleep_until(self.left_until), if self.left_until.is_some() => {
                    self.left = [None, None];
                    self.left_until = None;
                }
                c = cmd.recv(), if closing_until.is_none() => match c {
                    Some(Command::Send(data)) => {
                        // Dropped while unconnected, like a lost packet.
                        let _ = self.session.send_media(Instant::now(), &data);
                    }
                    Some(Command::Signal(m)) => {
                        let _ = self.session.handle_signal(Instant::now(), m);
                    }
                    Some(Command::Restart) => {
                        let _ = self.session.restart(Instant::now());
                    }
                    Some(Command::NetworkChanged) => self.follow_network(true),
                    Some(Command::Stats(tx)) => {
                        let _ = tx.send((self.session.stats(), self.session.selected(), self.dropped_events));
                    }
                    Some(Command::Shutdown) | None => {
                        // Answers to the deletions may still need a retry
                        // (438 Stale Nonce): read them for a moment.
                        let now = Instant::now();
                        self.session.close(now);
                        closing_until = Some(now + CLOSE_LINGER);
                    }
                },
                () = sleep => self.session.handle_timeout(Instant::now()),
            }
            self.flush().await;
        }
    }

    /// Moves followed families whose address went away (with `always`,
    /// whose pick changed) to new sockets, and rehomes the session there;
    /// with `always`, ICE restarts even if nothing moved.
    fn follow_network(&mut self, always: bool) {
        let now = Instant::now();
        let Some(follow) = &self.follow else {
            if always {
                let _ = self.session.restart(now);
            }
            return;
        };
        let bound = |slot: &Option<(SocketAddr, S)>| slot.as_ref().map(|(a, _)| a.ip());
        let (v4, v6) = (bound(&self.v4), bound(&self.v6));
        let mut moved = false;
        for m in follow.moves(|is_v4| if is_v4 { v4 } else { v6 }, always) {
            match m {
                Ok((addr, sock)) => {
                    tracing::info!(%addr, "network changed: moving the call's socket");
                    let (slot, left) = if addr.is_ipv4() {
                        (&mut self.v4, &mut self.left[0])
                    } else {
                        (&mut self.v6, &mut self.left[1])
                    };
                    *left = slot.replace((addr, sock));
                    self.left_until = Some(tokio::time::Instant::now() + CLOSE_LINGER);
                    moved = true;
                }
                Err(e) => tracing::warn!("network changed, but no socket on the new address: {e}"),
            }
        }
        if moved || always {
            let local: Vec<SocketAddr> = [&self.v4, &self.v6]
                .into_iter()
                .filter_map(|s| s.as_ref().map(|(a, _)| *a))
                .collect();
            if let Err(e) = self.session.rehome(now, &local) {
                tracing::warn!("network changed, ICE not restarted: {e}");
            }
            *lock(&self.local) = local;
        }
    }

    fn input(&mut self, local: SocketAddr, from: SocketAddr, data: &[u8]) {
        if let Some(media) = self.session.handle_input(Instant::now(), local, from, data) {
            let media = media.to_vec();
            self.emit(TransportEvent::Media(media));
        }
    }

    fn emit(&mut self, ev: TransportEvent) {
        if self.events.try_send(ev).is_err() {
            self.dropped_events += 1;
        }
    }

    /// Sends queued datagrams, signalling and events.
    async fn flush(&mut self) {
        while let Some(t) = self.session.poll_transmit() {
            let [v4, v6] = [&self.v4, &self.v6];
            let [l4, l6] = &self.left;
            let Some((_, sock)) = [v4, v6, l4, l6]
                .into_iter()
                .flatten()
                .find(|(a, _)| *a == t.local)
            else {
                continue;
            };
            // A send error (unreachable peer, full buffer) is a lost datagram.
            let _ = sock.send_to(&t.data, t.to).await;
        }
        while let Some(m) = self.session.poll_signal() {
            self.signaller.send(m);
        }
        while let Some(m) = self.session.poll_media() {
            self.emit(TransportEvent::Media(m));
        }
        while let Some(e) = self.session.poll_event() {
            self.emit(TransportEvent::Ice(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addrs_are_concrete_and_one_per_family() {
        let addrs = default_bind_addrs();
        assert!(!addrs.is_empty(), "no interface address at all");
        assert!(
            addrs
                .iter()
                .all(|a| !a.ip().is_unspecified() && a.port() == 0)
        );
        assert!(addrs.iter().filter(|a| a.is_ipv4()).count() <= 1);
        assert!(addrs.iter().filter(|a| a.is_ipv6()).count() <= 1);
        // Loopback is always among the interface addresses.
        assert!(crate::ice::host_addresses().contains(&std::net::Ipv4Addr::LOCALHOST.into()));
    }

    #[test]
    fn an_unspecified_bind_address_is_this_machines_own_with_its_port() {
        let v4 = default_bind_addrs()[0];
        assert!(v4.is_ipv4());
        let any: SocketAddr = ([0, 0, 0, 0], 5004).into();
        assert_eq!(
            concrete_bind_addr(any).unwrap(),
            SocketAddr::new(v4.ip(), 5004)
        );
        let given: SocketAddr = ([127, 0, 0, 1], 0).into();
        assert_eq!(concrete_bind_addr(given).unwrap(), given);
    }

    #[tokio::test]
    async fn a_transport_bound_to_the_unspecified_address_starts_on_a_concrete_one() {
        struct Quiet;
        impl Signaller for Quiet {
            fn send(&mut self, _: SignalMessage) {}
        }
        let any: SocketAddr = ([0, 0, 0, 0], 0).into();
        let t = TransportHandle::bind(&[any], IceConfig::default(), Box::new(Quiet))
            .await
            .unwrap();
        let local = t.local_addrs();
        assert_eq!(local.len(), 1);
        assert_eq!(local[0].ip(), default_bind_addrs()[0].ip());
        assert_ne!(local[0].port(), 0);
        t.shutdown().await;
    }
}
