//! UDP data plane: one worker thread per core, each with its own
//! SO_REUSEPORT listener, its own allocation core and its own relayed
//! sockets, all in one `mio` event loop. The kernel hashes a client's
//! 5-tuple to one listener, so a worker never needs another's state: the
//! ChannelData path takes no lock and allocates nothing. Datagrams are read
//! in batches with `recvmmsg` (and GRO where the kernel has it) through
//! `quinn-udp`, which keeps the `unsafe` out of this crate.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use quinn_udp::{RecvMeta, UdpSocketState};
use socket2::{Domain, Protocol, Socket, Type};

use crate::core::{
    ClientId, Dest, Event, Family, Forward, Input, PEER_HEADROOM, Relay, RelayId, Reservation,
    Transport,
};
use crate::metrics::Publisher;
use crate::relay_socket::{self, ReservedSockets};

const WAKER: Token = Token(usize::MAX);
/// Tokens below this are listeners; relayed sockets follow.
const RELAY_BASE: usize = 1024;
const BATCH: usize = quinn_udp::BATCH_SIZE;
/// One receive slot: the largest datagram (or GRO train) plus headroom.
const SLOT: usize = 65_536 + PEER_HEADROOM;
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Turns port 0 into a port nobody holds. Linux may give an SO_REUSEPORT
/// socket bound to port 0 a port that another SO_REUSEPORT socket of the
/// same user already has, silently splitting that port's traffic between
/// the two (two relays in one test process did exactly that); a plain
/// socket only ever gets a free port.
pub fn resolve_port_zero(addr: SocketAddr) -> io::Result<SocketAddr> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    std::net::UdpSocket::bind(addr)?.local_addr()
}

/// Binds a UDP socket with SO_REUSEPORT (one per worker on the same
/// address), IPV6_V6ONLY for IPv6, and large buffers.
pub fn bind_reuseport(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    // Best effort: the kernel caps these at net.core.{r,w}mem_max.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// What a worker needs to run.
pub struct WorkerSetup {
    /// This worker's listeners (one per UDP listen address).
    pub listeners: Vec<std::net::UdpSocket>,
    /// Its allocation core.
    pub core: Relay,
    /// Where relayed sockets bind, per family.
    pub relay_ips: (Option<std::net::IpAddr>, Option<std::net::IpAddr>),
    /// Maps a bound relayed address to the advertised one.
    pub advertise: Arc<dyn Fn(SocketAddr) -> SocketAddr + Send + Sync>,
    /// Set to stop the worker.
    pub shutdown: Arc<AtomicBool>,
    /// Ports held for RESERVATION-TOKEN, shared by all drivers.
    pub reserved: Arc<ReservedSockets>,
}

/// A running worker.
pub struct WorkerHandle {
    /// Wakes the worker so it sees `shutdown`.
    pub waker: Arc<Waker>,
    /// The thread.
    pub thread: std::thread::JoinHandle<()>,
}

/// Starts a worker thread.
pub fn spawn(setup: WorkerSetup, name: String) -> io::Result<WorkerHandle> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let mut listeners = Vec::new();
    let mut states = Vec::new();
    for (i, l) in setup.listeners.into_iter().enumerate() {
        let mut l = UdpSocket::from_std(l);
        states.push(UdpSocketState::new((&l).into())?);
        poll.registry()
            .register(&mut l, Token(i), Interest::READABLE)?;
        listeners.push(l);
    }
    let relay_state = match states.first() {
        Some(_) => {
            let probe = std::net::UdpSocket::bind("127.0.0.1:0")?;
            UdpSocketState::new((&probe).into())?
        }
        None => return Err(io::Error::other("a worker needs a listener")),
    };
    let worker = Worker {
        poll,
        listeners,
        states,
        relay_state,
        relays: Vec::new(),
        core: setup.core,
        relay_ips: setup.relay_ips,
        advertise: setup.advertise,
        shutdown: setup.shutdown,
        reserved: setup.reserved,
        publisher: Publisher::new(),
    };
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || worker.run())?;
    Ok(WorkerHandle { waker, thread })
}

struct Worker {
    poll: Poll,
    listeners: Vec<UdpSocket>,
    states: Vec<UdpSocketState>,
    relay_state: UdpSocketState,
    relays: Vec<Option<(RelayId, UdpSocket)>>,
    core: Relay,
    relay_ips: (Option<std::net::IpAddr>, Option<std::net::IpAddr>),
    advertise: Arc<dyn Fn(SocketAddr) -> SocketAddr + Send + Sync>,
    shutdown: Arc<AtomicBool>,
    reserved: Arc<ReservedSockets>,
    publisher: Publisher,
}

/// Sockets and send state, split from the core so a forward can borrow
/// the receive buffer while the core is borrowed elsewhere.
struct Out<'a> {
    listeners: &'a [UdpSocket],
    relays: &'a [Option<(RelayId, UdpSocket)>],
    publisher: &'a Publisher,
}

impl Out<'_> {
    /// Sends with a plain `sendto`: one destination per datagram, so GSO
    /// cannot apply, and no ancillary data keeps the kernel path short.
    fn send(&self, dest: Dest, data: &[u8]) {
        let (sock, to) = match dest {
            Dest::Client(c) => match self.listeners.get(c.listener as usize) {
                Some(s) => (s, c.remote),
                None => return,
            },
            Dest::Peer { relay, addr } => match self.relays.get(relay.index() as usize) {
                Some(Some((_, s))) => (s, addr),
                _ => return,
            },
        };
        if sock.send_to(data, to).is_err() {
            self.publisher.send_dropped();
        }
    }
}

impl Worker {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut bufs = vec![0u8; BATCH * SLOT];
        let mut metas = [RecvMeta::default(); BATCH];
        let mut last_publish = Instant::now();
        loop {
            let now = Instant::now();
            let mut timeout = PUBLISH_EVERY.saturating_sub(now - last_publish);
            if let Some(t) = self.core.poll_timeout() {
                timeout = timeout.min(t.saturating_duration_since(now));
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                tracing::error!(error = %e, "poll failed; worker stops");
                return;
            }
            for ev in events.iter() {
                match ev.token() {
                    WAKER => {}
                    Token(i) if i < RELAY_BASE => {
                        self.drain(Source::Listener(i), &mut bufs, &mut metas)
                    }
                    Token(t) => self.drain(Source::Relay(t - RELAY_BASE), &mut bufs, &mut metas),
                }
            }
            let now = Instant::now();
            self.core.handle_timeout(now);
            self.control(now);
            if now - last_publish >= PUBLISH_EVERY {
                self.publisher
                    .publish(self.core.stats(), self.core.allocations());
                last_publish = now;
            }
            if self.shutdown.load(Ordering::Relaxed) {
                self.control(now);
                self.publisher.publish(self.core.stats(), 0);
                return;
            }
        }
    }

    /// Reads a socket until it would block, a batch at a time.
    fn drain(&mut self, src: Source, bufs: &mut [u8], metas: &mut [RecvMeta; BATCH]) {
        let head = match src {
            Source::Listener(_) => 0,
            Source::Relay(_) => PEER_HEADROOM,
        };
        loop {
            let n = {
                let mut chunks = bufs.chunks_mut(SLOT);
                let mut iovs: [IoSliceMut<'_>; BATCH] = std::array::from_fn(|_| {
                    IoSliceMut::new(&mut chunks.next().expect("BATCH slots")[head..])
                });
                let r = match src {
                    Source::Listener(i) => match self.listeners.get(i) {
                        Some(s) => self.states[i].recv(s.into(), &mut iovs, metas),
                        None => return,
                    },
                    Source::Relay(i) => match self.relays.get(i) {
                        Some(Some((_, s))) => self.relay_state.recv(s.into(), &mut iovs, metas),
                        _ => return,
                    },
                };
                match r {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::debug!(error = %e, "recv failed");
                        return;
                    }
                }
            };
            let now = Instant::now();
            for (k, meta) in metas.iter().enumerate().take(n) {
                let slot = &mut bufs[k * SLOT..(k + 1) * SLOT];
                match src {
                    Source::Listener(i) => {
                        let client = ClientId {
                            transport: Transport::Udp,
                            listener: i as u32,
                            remote: meta.addr,
                        };
                        let stride = meta.stride.max(1);
                        for seg in slot[..meta.len].chunks(stride) {
                            let r = self
                                .core
                                .handle_input(now, Input::Client { client, data: seg });
                            self.forward(r, seg);
                        }
                    }
                    Source::Relay(i) => {
                        let Some(Some((relay, _))) = self.relays.get(i) else {
                            return;
                        };
                        let relay = *relay;
                        let data = &mut slot[..PEER_HEADROOM + meta.len];
                        let r = self.core.handle_input(
                            now,
                            Input::Peer {
                                relay,
                                from: meta.addr,
                                data,
                            },
                        );
                        self.forward(r, &slot[..PEER_HEADROOM + meta.len]);
                    }
                }
                self.control(now);
            }
            // A short batch means the queue was empty: skip the extra
            // recvmmsg that would only return EAGAIN. Safe with edge
            // triggering because every later datagram raises a new edge.
            if n < BATCH {
                return;
            }
        }
    }

    fn out(&self) -> Out<'_> {
        Out {
            listeners: &self.listeners,
            relays: &self.relays,
            publisher: &self.publisher,
        }
    }

    fn forward<E>(&self, r: Result<Option<Forward>, E>, buf: &[u8]) {
        if let Ok(Some(f)) = r {
            self.out().send(f.dest, &buf[f.range]);
        }
    }

    /// Acts on the core's events and sends its control answers.
    fn control(&mut self, now: Instant) {
        loop {
            if let Some(ev) = self.core.poll_event() {
                match ev {
                    Event::BindRelay {
                        relay,
                        family,
                        even_port,
                        reservation,
                    } => {
                        let bound = self.bind_relay(relay, family, even_port, reservation);
                        if let Err(e) = &bound {
                            tracing::warn!(error = %e, "cannot bind a relayed socket");
                        }
                        self.core.relay_bound(now, relay, bound.ok());
                    }
                    Event::Closed { relay } => {
                        if let Some(slot) = self.relays.get_mut(relay.index() as usize)
                            && let Some((_, mut s)) = slot.take()
                        {
                            let _ = self.poll.registry().deregister(&mut s);
                        }
                    }
                }
                continue;
            }
            match self.core.poll_transmit() {
                Some(t) => self.out().send(t.dest, &t.data),
                None => return,
            }
        }
    }

    fn bind_relay(
        &mut self,
        relay: RelayId,
        family: Family,
        even_port: bool,
        reservation: Reservation,
    ) -> io::Result<SocketAddr> {
        let ip = match family {
            Family::V4 => self.relay_ips.0,
            Family::V6 => self.relay_ips.1,
        }
        .ok_or_else(|| io::Error::other("family not offered"))?;
        let sock = relay_socket::bind(ip, even_port, reservation, &self.reserved)?;
        let bound = sock.local_addr()?;
        let mut sock = UdpSocket::from_std(sock);
        let index = relay.index() as usize;
        self.poll
            .registry()
            .register(&mut sock, Token(RELAY_BASE + index), Interest::READABLE)?;
        if self.relays.len() <= index {
            self.relays.resize_with(index + 1, || None);
        }
        self.relays[index] = Some((relay, sock));
        Ok((self.advertise)(bound))
    }
}

#[derive(Clone, Copy)]
enum Source {
    Listener(usize),
    Relay(usize),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn port_zero_resolves_to_a_port_no_reuseport_socket_holds() {
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        // Other SO_REUSEPORT sockets of ours, as another relay would hold.
        let held: Vec<_> = (0..300).map(|_| bind_reuseport(lo).unwrap()).collect();
        let ports: HashSet<u16> = held
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        for _ in 0..300 {
            let addr = resolve_port_zero(lo).unwrap();
            assert_ne!(addr.port(), 0);
            assert!(!ports.contains(&addr.port()), "{addr} is already held");
        }
        let fixed: SocketAddr = "127.0.0.1:3478".parse().unwrap();
        assert_eq!(resolve_port_zero(fixed).unwrap(), fixed);
    }
}
