//! The connections the server holds: how many in all and per client
//! address, a deadline for each request, and a way to drop them all.
//!
//! axum's `serve` sets no timer on hyper, so hyper's header-read timeout
//! is off, and the per-IP rate limit (a middleware) runs only once a
//! request's headers are in: a client that never finishes its headers
//! would hold its socket for ever, unseen by every limit, and keep a
//! graceful shutdown waiting. Here the listener refuses connections past
//! the caps, and each connection's socket fails its reads and writes once
//! its deadline passes: a whole request (headers and body) must arrive
//! within `request_timeout_s` of the connection opening or of its previous
//! answer. A WebSocket, once upgraded, is exempt (its pings find dead
//! peers). [`Conns::drop_all`] ends every connection at once, for the end
//! of a shutdown's grace period.
//!
//! Connections from trusted proxies carry many clients, so the listener
//! does not cap them per address; a WebSocket through one takes a place in
//! its client's count instead ([`Conns::hold_client`]), the client being
//! the one the proxy names. Plain requests through a proxy end within the
//! deadline, and the per-IP rate limit paces them.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

use super::peer::{Cidr, ip_key};

/// Caps and the request deadline.
#[derive(Debug, Clone)]
pub(crate) struct ConnLimits {
    /// Connections open at once, in all.
    pub max_total: usize,
    /// Connections open at once from one client address (an IPv6 /64),
    /// except from trusted proxies.
    pub max_per_ip: usize,
    /// How long a connection has for a whole request.
    pub request_timeout: Duration,
    /// Peers exempt from the per-address cap (they carry many clients).
    pub trusted_proxies: Arc<[Cidr]>,
}

/// The connections of one server.
#[derive(Debug)]
pub(crate) struct Conns {
    limits: ConnLimits,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    next_id: u64,
    live: HashMap<u64, Weak<ConnState>>,
}

impl Conns {
    pub(crate) fn new(limits: ConnLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: Mutex::new(Open::default()),
        })
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection from `peer`, or refuses it (over a cap).
    fn admit(self: &Arc<Self>, peer: SocketAddr) -> Result<(Arc<ConnState>, Slot), &'static str> {
        let key = ip_key(peer.ip());
        let exempt = self
            .limits
            .trusted_proxies
            .iter()
            .any(|c| c.contains(peer.ip()));
        let mut open = self.open();
        if open.total >= self.limits.max_total {
            return Err("total");
        }
        open.total += 1;
        let id = open.next_id;
        open.next_id += 1;
        drop(open);
        // From here the slot gives back what it took, refused or not.
        let mut slot = Slot {
            conns: self.clone(),
            id: Some(id),
            key: None,
        };
        if !exempt {
            slot.count_client(key)?;
        }
        let mut open = self.open();
        let state = Arc::new(ConnState {
            timeout: self.limits.request_timeout,
            deadline: Mutex::new(Some(Instant::now() + self.limits.request_timeout)),
            dropped: AtomicBool::new(false),
            wakers: Mutex::new([None, None]),
        });
        open.live.insert(id, Arc::downgrade(&state));
        Ok((state, slot))
    }

    /// Counts a WebSocket that a trusted proxy carries for `client` among
    /// `client`'s connections, until the returned slot drops; `None` if
    /// `client` holds as many as it may already.
    pub(crate) fn hold_client(self: &Arc<Self>, client: IpAddr) -> Option<ClientSlot> {
        let mut slot = Slot {
            conns: self.clone(),
            id: None,
            key: None,
        };
        slot.count_client(ip_key(client)).ok()?;
        Some(ClientSlot { _slot: slot })
    }

    /// Connections open now.
    pub(crate) fn count(&self) -> usize {
        self.open().total
    }

    /// Fails every open connection's socket, WebSockets included: their
    /// tasks end at their next read or write.
    pub(crate) fn drop_all(&self) {
        let live: Vec<Arc<ConnState>> = self
            .open()
            .live
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for conn in live {
            conn.dropped.store(true, Ordering::Release);
            conn.wake();
        }
    }
}

/// A connection's place in the counts, given back when it drops: in the
/// total (a socket, `id`) and in a client's count (`key`), each if taken.
#[derive(Debug)]
struct Slot {
    conns: Arc<Conns>,
    id: Option<u64>,
    key: Option<IpAddr>,
}

impl Slot {
    /// Takes a place among the connections of the client keyed `key`, if
    /// it has one left.
    fn count_client(&mut self, key: IpAddr) -> Result<(), &'static str> {
        let mut open = self.conns.open();
        let n = open.per_ip.entry(key).or_insert(0);
        if *n >= self.conns.limits.max_per_ip {
            if *n == 0 {
                open.per_ip.remove(&key);
            }
            return Err("per_ip");
        }
        *n += 1;
        self.key = Some(key);
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.conns.open();
        if let Some(id) = self.id {
            open.total -= 1;
            open.live.remove(&id);
        }
        if let Some(key) = self.key
            && let Some(n) = open.per_ip.get_mut(&key)
        {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&key);
            }
        }
    }
}

/// A WebSocket's place in its client's count ([`Conns::hold_client`]).
#[derive(Debug)]
pub(crate) struct ClientSlot {
    _slot: Slot,
}

/// One connection's deadline, shared between its socket and its requests.
#[derive(Debug)]
pub(crate) struct ConnState {
    timeout: Duration,
    /// When reads and writes start failing; none once upgraded.
    deadline: Mutex<Option<Instant>>,
    /// Dropped by [`Conns::drop_all`].
    dropped: AtomicBool,
    /// The tasks waiting on the socket (read, write), woken to be dropped.
    wakers: Mutex<[Option<Waker>; 2]>,
}

impl ConnState {
    /// A request arrived or was answered: the next one has a full period.
    pub(crate) fn extend(&self) {
        let mut deadline = self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        if deadline.is_some() {
            *deadline = Some(Instant::now() + self.timeout);
        }
    }

    /// The connection became a WebSocket: no deadline from now on.
    pub(crate) fn upgraded(&self) {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn park(&self, slot: usize, waker: &Waker) {
        let mut wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
        match &wakers[slot] {
            Some(w) if w.will_wake(waker) => {}
            _ => wakers[slot] = Some(waker.clone()),
        }
    }

    fn wake(&self) {
        let wakers = std::mem::take(&mut *self.wakers.lock().unwrap_or_else(|e| e.into_inner()));
        for w in wakers.into_iter().flatten() {
            w.wake();
        }
    }

    fn dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }
}

/// What handlers learn of their connection (axum `ConnectInfo<Peer>`).
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    /// The socket's remote address (a proxy's, behind one).
    pub addr: SocketAddr,
    /// The connection's deadline.
    pub conn: Arc<ConnState>,
}

impl Connected<IncomingStream<'_, ConnListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, ConnListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A TCP listener that admits connections under [`ConnLimits`].
#[derive(Debug)]
pub(crate) struct ConnListener {
    inner: TcpListener,
    conns: Arc<Conns>,
}

impl ConnListener {
    pub(crate) fn new(inner: TcpListener, conns: Arc<Conns>) -> Self {
        Self { inner, conns }
    }
}

impl axum::serve::Listener for ConnListener {
    type Io = ConnIo;
    type Addr = Peer;

    async fn accept(&mut self) -> (ConnIo, Peer) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little
                    // rather than spin. A connection reset before it was
                    // accepted concerns that connection only.
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionRefused
                    ) {
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            };
            match self.conns.admit(addr) {
                Ok((conn, slot)) => {
                    let _ = stream.set_nodelay(true);
                    let io = ConnIo {
                        stream,
                        conn: conn.clone(),
                        timer: Box::pin(tokio::time::sleep_until(Instant::now())),
                        _slot: slot,
                    };
                    return (io, Peer { addr, conn });
                }
                Err(reason) => {
                    metrics::counter!("signald_connections_refused_total", "reason" => reason)
                        .increment(1);
                    tracing::debug!(%addr, reason, "connection refused: over the cap");
                    drop(stream);
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Peer> {
        // Only a type to satisfy the trait; axum does not call it.
        let addr = self.inner.local_addr()?;
        let conn = Arc::new(ConnState {
            timeout: Duration::ZERO,
            deadline: Mutex::new(None),
            dropped: AtomicBool::new(false),
            wakers: Mutex::new([None, None]),
        });
        Ok(Peer { addr, conn })
    }
}

/// A connection's socket, failing once its deadline passes or it is dropped.
#[derive(Debug)]
pub(crate) struct ConnIo {
    stream: TcpStream,
    conn: Arc<ConnState>,
    timer: Pin<Box<Sleep>>,
    _slot: Slot,
}

impl ConnIo {
    /// An error when the connection must end now; else arms the timer (and
    /// the drop waker) for when it must.
    fn check(&mut self, slot: usize, cx: &mut Context<'_>) -> Result<(), io::Error> {
        if self.conn.dropped() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "server shutting down",
            ));
        }
        self.conn.park(slot, cx.waker());
        if self.conn.dropped() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "server shutting down",
            ));
        }
        if let Some(deadline) = self.conn.deadline() {
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            if self.timer.as_mut().poll(cx).is_ready() {
                metrics::counter!("signald_connections_timed_out_total").increment(1);
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no whole request in time",
                ));
            }
        }
        Ok(())
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Checked before every read: a client trickling a byte at a time
        // is always ready, and must not outlast its deadline.
        this.check(0, cx)?;
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check(1, cx)?;
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Middleware: a request whose headers are in gets a full period for the
/// rest of it and its answer, the next request a full period from the
/// answer; a WebSocket upgrade ends the deadline.
pub(crate) async fn request_deadline(
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<Peer>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    peer.conn.extend();
    let res = next.run(req).await;
    if res.status() == axum::http::StatusCode::SWITCHING_PROTOCOLS {
        peer.conn.upgraded();
    } else {
        peer.conn.extend();
    }
    res
}
