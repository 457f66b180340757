//! UDP data plane: one worker thread per core, each with its own
//! SO_REUSEPORT listener, its own allocation core and its own relayed
//! sockets, all in one `mio` event loop. The kernel hashes a client's
//! 5-tuple to one listener, so a worker never needs another's state: the
//! ChannelData path takes no lock and allocates nothing. Datagrams are read
//! in batches with `recvmmsg` (and GRO where the kernel has it) through
//! `quinn-udp`; what one wakeup relays is queued and leaves in one
//! `sendmmsg` per socket through `rustix` (a run of same-size datagrams to
//! one destination as one GSO send through `quinn-udp`); both keep the
//! `unsafe` out of this crate.

use std::collections::HashSet;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
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
/// `recvmmsg` batches one visit of a socket reads at most. A socket that
/// always has more queued (overload, or a junk flood at a listener or a
/// relayed port) must not keep the worker from its other sockets, its
/// timers (expiries) and its metrics: what is left waits for the next turn
/// of the event loop ([`Worker::backlog`]).
const DRAIN_BATCHES: usize = 4;
/// Most datagrams handed to one `sendmmsg`.
const SEND_BATCH: usize = 64;
/// Largest datagram sent as part of a GSO train: a segment larger than
/// the path MTU makes the kernel refuse the whole train (and quinn-udp
/// then turns GSO off for good), and TURN media stays well below this.
const GSO_MAX_SEGMENT: usize = 1200;
/// Most bytes in one GSO train (an IP datagram's limit, with margin).
const GSO_MAX_BYTES: usize = 60_000;
/// Queued datagrams that force a flush before the wakeup ends.
const MAX_QUEUED: usize = 4 * SEND_BATCH;
/// Queued bytes that force a flush before the wakeup ends (a few
/// full-size datagrams, or a full batch of anything smaller).
const TX_ARENA: usize = 4 * SLOT;

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
    let (worker, waker) = Worker::new(setup)?;
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || worker.run())?;
    Ok(WorkerHandle { waker, thread })
}

impl Worker {
    fn new(setup: WorkerSetup) -> io::Result<(Worker, Arc<Waker>)> {
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
            backlog: Vec::new(),
            spare: Vec::new(),
            visited: HashSet::new(),
        };
        Ok((worker, waker))
    }
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
    /// Sockets whose last visit stopped at [`DRAIN_BATCHES`] with more
    /// possibly queued. Readiness is edge-triggered, so no event will come
    /// for what is already there: they are visited again on the next turn,
    /// which polls without sleeping while there are any.
    backlog: Vec<Source>,
    /// The previous turn's backlog, being visited (kept for its capacity).
    spare: Vec<Source>,
    /// Sockets visited in this turn (each at most once).
    visited: HashSet<Source>,
}

/// A worker's buffers, reused by every turn of its event loop.
struct Scratch {
    events: Events,
    bufs: Vec<u8>,
    metas: [RecvMeta; BATCH],
    tx: TxQueue,
    last_publish: Instant,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            events: Events::with_capacity(256),
            bufs: vec![0u8; BATCH * SLOT],
            metas: [RecvMeta::default(); BATCH],
            tx: TxQueue::new(),
            last_publish: Instant::now(),
        }
    }
}

/// Sockets and send state, split from the core so a flush can borrow the
/// sockets while the queue is borrowed elsewhere.
struct Out<'a> {
    listeners: &'a [UdpSocket],
    relays: &'a [Option<(RelayId, UdpSocket)>],
    publisher: &'a Publisher,
    /// Sends GSO trains (and knows whether the kernel can).
    gso: &'a UdpSocketState,
}

impl Out<'_> {
    /// The socket a datagram to `dest` leaves from, if it is still open.
    fn socket(&self, dest: Dest) -> Option<&UdpSocket> {
        match dest {
            Dest::Client(c) => self.listeners.get(c.listener as usize),
            Dest::Peer { relay, .. } => match self.relays.get(relay.index() as usize) {
                Some(Some((id, s))) if *id == relay => Some(s),
                _ => None,
            },
        }
    }
}

/// One queued datagram: its destination and its bytes in the arena.
#[derive(Clone, Copy)]
struct Queued {
    dest: Dest,
    /// Push order, so that sorting by socket keeps each flow in order.
    seq: u32,
    start: u32,
    len: u32,
}

impl Queued {
    /// Groups datagrams by the socket they leave from, then by
    /// destination (so that a train to one destination is adjacent), in
    /// push order within each.
    fn sort_key(&self) -> (u8, u32, SocketAddr, u32) {
        match self.dest {
            Dest::Client(c) => (0, c.listener, c.remote, self.seq),
            Dest::Peer { relay, addr } => (1, relay.index(), addr, self.seq),
        }
    }

    /// Whether two datagrams leave from the same socket.
    fn same_socket(&self, other: &Queued) -> bool {
        match (self.dest, other.dest) {
            (Dest::Client(a), Dest::Client(b)) => a.listener == b.listener,
            (Dest::Peer { relay: a, .. }, Dest::Peer { relay: b, .. }) => a == b,
            _ => false,
        }
    }

    fn to(&self) -> SocketAddr {
        match self.dest {
            Dest::Client(c) => c.remote,
            Dest::Peer { addr, .. } => addr,
        }
    }
}

/// Datagrams a wakeup relays, copied out of the receive buffers (which the
/// next `recvmmsg` reuses) so that they leave together: one `sendmmsg`
/// per socket instead of one `sendto` per datagram. The arena and the
/// entry list keep their capacity, so queuing allocates nothing.
struct TxQueue {
    arena: Vec<u8>,
    entries: Vec<Queued>,
    /// A GSO train's datagrams, back to back.
    train: Vec<u8>,
    /// Destination addresses in the kernel's form, reused by every batch.
    addrs: Box<[SocketAddrAny; SEND_BATCH]>,
}

impl TxQueue {
    fn new() -> Self {
        TxQueue {
            arena: Vec::with_capacity(TX_ARENA),
            entries: Vec::with_capacity(MAX_QUEUED),
            train: Vec::with_capacity(GSO_MAX_BYTES),
            addrs: Box::new(std::array::from_fn(|_| {
                SocketAddrAny::from(SocketAddr::from(([0, 0, 0, 0], 0)))
            })),
        }
    }

    /// Whether `len` more bytes fit without a flush.
    fn has_room(&self, len: usize) -> bool {
        self.arena.is_empty() || self.arena.len() + len <= TX_ARENA
    }

    fn push(&mut self, dest: Dest, data: &[u8], pad: usize) {
        let start = self.arena.len();
        self.arena.extend_from_slice(data);
        self.arena.resize(start + data.len() + pad, 0);
        self.entries.push(Queued {
            dest,
            seq: self.entries.len() as u32,
            start: start as u32,
            len: (data.len() + pad) as u32,
        });
    }

    /// Sends everything queued, in push order per destination.
    fn flush(&mut self, out: &Out<'_>) {
        let TxQueue {
            arena,
            entries,
            train,
            addrs,
        } = self;
        entries.sort_unstable_by_key(Queued::sort_key);
        let mut rest = &entries[..];
        while let Some(first) = rest.first() {
            let run = rest.iter().take_while(|e| e.same_socket(first)).count();
            let (group, tail) = rest.split_at(run);
            rest = tail;
            let dropped = match out.socket(first.dest) {
                Some(sock) => send_group(sock, arena, group, out.gso, train, addrs),
                None => group.len(),
            };
            for _ in 0..dropped {
                out.publisher.send_dropped();
            }
        }
        entries.clear();
        arena.clear();
    }
}

/// Sends one socket's datagrams (sorted by destination): a run of
/// same-size datagrams to one destination as one GSO `sendmsg` where the
/// kernel can segment it (one trip through the stack instead of one per
/// datagram), the rest in `sendmmsg` batches. Returns how many were dropped.
fn send_group(
    sock: &UdpSocket,
    arena: &[u8],
    group: &[Queued],
    gso: &UdpSocketState,
    train: &mut Vec<u8>,
    addrs: &mut [SocketAddrAny; SEND_BATCH],
) -> usize {
    let max_segments = gso.max_gso_segments();
    let bytes = |e: &Queued| &arena[e.start as usize..(e.start + e.len) as usize];
    let mut dropped = 0;
    // Start of the datagrams not yet sent nor part of a train.
    let mut pending = 0;
    let mut i = 0;
    while i < group.len() {
        let e = group[i];
        let len = e.len as usize;
        // Empty datagrams never form a train: a segment size of 0 makes
        // the kernel refuse it, and quinn-udp would turn GSO off for good.
        let run = if max_segments > 1 && (1..=GSO_MAX_SEGMENT).contains(&len) {
            group[i..]
                .iter()
                .take(max_segments.min(GSO_MAX_BYTES / len))
                .take_while(|o| o.to() == e.to() && o.len == e.len)
                .count()
        } else {
            1
        };
        if run < 2 {
            i += 1;
            continue;
        }
        // Datagrams before the train go first: order per destination holds.
        for batch in group[pending..i].chunks(SEND_BATCH) {
            dropped += send_batch(sock, arena, batch, addrs);
        }
        train.clear();
        for d in &group[i..i + run] {
            train.extend_from_slice(bytes(d));
        }
        let t = Transmit {
            destination: e.to(),
            ecn: None,
            contents: train,
            segment_size: Some(len),
            src_ip: None,
        };
        if gso.try_send(sock.into(), &t).is_err() {
            dropped += run;
        }
        i += run;
        pending = i;
    }
    for batch in group[pending..].chunks(SEND_BATCH) {
        dropped += send_batch(sock, arena, batch, addrs);
    }
    dropped
}

/// Sends up to [`SEND_BATCH`] datagrams from one socket, with `sendmmsg`
/// when there are several; returns how many were dropped. A full send
/// buffer drops the rest of the batch (as a `sendto` would have dropped
/// each); any other error drops only the datagram the kernel stopped at.
fn send_batch(
    sock: &UdpSocket,
    arena: &[u8],
    batch: &[Queued],
    addrs: &mut [SocketAddrAny; SEND_BATCH],
) -> usize {
    let bytes = |e: &Queued| &arena[e.start as usize..(e.start + e.len) as usize];
    if let [one] = batch {
        // A lone datagram: plain sendto, no headers to build.
        return usize::from(sock.send_to(bytes(one), one.to()).is_err());
    }
    for (a, e) in addrs.iter_mut().zip(batch) {
        *a = SocketAddrAny::from(e.to());
    }
    let iovs: [[IoSlice<'_>; 1]; SEND_BATCH] =
        std::array::from_fn(|i| [IoSlice::new(batch.get(i).map_or(&[][..], bytes))]);
    let mut control: [SendAncillaryBuffer<'_, '_, '_>; SEND_BATCH] =
        std::array::from_fn(|_| SendAncillaryBuffer::default());
    let mut msgs: [MMsgHdr<'_>; SEND_BATCH] = {
        let mut parts = addrs.iter().zip(&iovs).zip(control.iter_mut());
        std::array::from_fn(|_| {
            let ((addr, iov), control) = parts.next().expect("SEND_BATCH of each");
            MMsgHdr::new_with_addr(addr, iov, control)
        })
    };
    let n = batch.len();
    let (mut done, mut dropped) = (0, 0);
    while done < n {
        match rustix::net::sendmmsg(sock, &mut msgs[done..n], SendFlags::empty()) {
            Ok(0) | Err(rustix::io::Errno::AGAIN) => return dropped + n - done,
            Ok(k) => done += k,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => {
                dropped += 1;
                done += 1;
            }
        }
    }
    dropped
}

impl Worker {
    fn run(mut self) {
        let mut scratch = Scratch::new();
        while self.turn(&mut scratch) {}
    }

    /// One turn of the event loop: waits for readiness (not at all while
    /// the backlog holds sockets), reads a bounded share from each ready
    /// or backlogged socket, runs the timers, sends, publishes metrics.
    /// False once the worker is to stop.
    fn turn(&mut self, scratch: &mut Scratch) -> bool {
        let Scratch {
            events,
            bufs,
            metas,
            tx,
            last_publish,
        } = scratch;
        let now = Instant::now();
        let mut timeout = PUBLISH_EVERY.saturating_sub(now - *last_publish);
        if let Some(t) = self.core.poll_timeout() {
            timeout = timeout.min(t.saturating_duration_since(now));
        }
        if !self.backlog.is_empty() {
            timeout = Duration::ZERO;
        }
        if let Err(e) = self.poll.poll(events, Some(timeout))
            && e.kind() != io::ErrorKind::Interrupted
        {
            tracing::error!(error = %e, "poll failed; worker stops");
            return false;
        }
        self.visited.clear();
        std::mem::swap(&mut self.backlog, &mut self.spare);
        for ev in events.iter() {
            let src = match ev.token() {
                WAKER => continue,
                Token(i) if i < RELAY_BASE => Source::Listener(i),
                Token(t) => Source::Relay(t - RELAY_BASE),
            };
            self.visit(src, bufs, metas, tx);
        }
        let mut spare = std::mem::take(&mut self.spare);
        for src in spare.drain(..) {
            self.visit(src, bufs, metas, tx);
        }
        self.spare = spare;
        let now = Instant::now();
        self.core.handle_timeout(now);
        self.control(now, tx);
        tx.flush(&self.out());
        if now - *last_publish >= PUBLISH_EVERY {
            self.publisher
                .publish(self.core.stats(), self.core.allocations());
            *last_publish = now;
        }
        if self.shutdown.load(Ordering::Relaxed) {
            self.control(now, tx);
            tx.flush(&self.out());
            self.publisher.publish(self.core.stats(), 0);
            return false;
        }
        true
    }

    /// Drains a bounded share of `src`, once per turn; backlogs it if it
    /// may have more.
    fn visit(
        &mut self,
        src: Source,
        bufs: &mut [u8],
        metas: &mut [RecvMeta; BATCH],
        tx: &mut TxQueue,
    ) {
        if self.visited.insert(src) && self.drain(src, bufs, metas, tx) {
            self.backlog.push(src);
        }
    }

    /// Reads a socket a batch at a time until it would block, or for at
    /// most [`DRAIN_BATCHES`] batches: true if it stopped there, with
    /// more possibly queued.
    fn drain(
        &mut self,
        src: Source,
        bufs: &mut [u8],
        metas: &mut [RecvMeta; BATCH],
        tx: &mut TxQueue,
    ) -> bool {
        let head = match src {
            Source::Listener(_) => 0,
            Source::Relay(_) => PEER_HEADROOM,
        };
        for _ in 0..DRAIN_BATCHES {
            let n = {
                let mut chunks = bufs.chunks_mut(SLOT);
                let mut iovs: [IoSliceMut<'_>; BATCH] = std::array::from_fn(|_| {
                    IoSliceMut::new(&mut chunks.next().expect("BATCH slots")[head..])
                });
                let r = match src {
                    Source::Listener(i) => match self.listeners.get(i) {
                        Some(s) => self.states[i].recv(s.into(), &mut iovs, metas),
                        None => return false,
                    },
                    Source::Relay(i) => match self.relays.get(i) {
                        Some(Some((_, s))) => self.relay_state.recv(s.into(), &mut iovs, metas),
                        _ => return false,
                    },
                };
                match r {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                    // Counts as a batch: the bound holds even so.
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::debug!(error = %e, "recv failed");
                        return false;
                    }
                }
            };
            let now = Instant::now();
            // Read per batch: REST expiry follows a stepped system clock.
            self.core.set_wall_clock(now, SystemTime::now());
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
                            self.forward(r, seg, tx);
                        }
                    }
                    Source::Relay(i) => {
                        let Some(Some((relay, _))) = self.relays.get(i) else {
                            return false;
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
                        self.forward(r, &slot[..PEER_HEADROOM + meta.len], tx);
                    }
                }
                self.control(now, tx);
            }
            // A short batch means the queue was empty: skip the extra
            // recvmmsg that would only return EAGAIN. Safe with edge
            // triggering because every later datagram raises a new edge.
            if n < BATCH {
                return false;
            }
        }
        true
    }

    fn out(&self) -> Out<'_> {
        Out {
            listeners: &self.listeners,
            relays: &self.relays,
            publisher: &self.publisher,
            gso: &self.relay_state,
        }
    }

    fn forward<E>(&self, r: Result<Option<Forward>, E>, buf: &[u8], tx: &mut TxQueue) {
        if let Ok(Some(f)) = r {
            self.queue(tx, f.dest, &buf[f.range], f.pad);
        }
    }

    /// Queues a datagram (`data` and `pad` zero bytes), flushing first if
    /// the queue is full.
    fn queue(&self, tx: &mut TxQueue, dest: Dest, data: &[u8], pad: usize) {
        if !tx.has_room(data.len() + pad) || tx.entries.len() >= MAX_QUEUED {
            tx.flush(&self.out());
        }
        tx.push(dest, data, pad);
    }

    /// Acts on the core's events and queues its control answers.
    fn control(&mut self, now: Instant, tx: &mut TxQueue) {
        loop {
            if let Some(ev) = self.core.poll_event() {
                match ev {
                    Event::BindRelay {
                        relay,
                        family,
                        even_port,
                        reservation,
                        dont_fragment,
                    } => {
                        let bound =
                            self.bind_relay(relay, family, even_port, reservation, dont_fragment);
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
                    Event::Unreserve { token } => self.reserved.release(&token),
                }
                continue;
            }
            match self.core.poll_transmit() {
                Some(t) => self.queue(tx, t.dest, &t.data, 0),
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
        dont_fragment: bool,
    ) -> io::Result<SocketAddr> {
        let ip = match family {
            Family::V4 => self.relay_ips.0,
            Family::V6 => self.relay_ips.1,
        }
        .ok_or_else(|| io::Error::other("family not offered"))?;
        let sock = relay_socket::bind(ip, even_port, reservation, &self.reserved)?;
        if dont_fragment {
            relay_socket::set_dont_fragment(&sock)?;
        }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    Listener(usize),
    Relay(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A worker with two listeners on loopback and an empty core.
    fn test_worker() -> (Worker, Vec<SocketAddr>) {
        test_worker_with(crate::auth::Credentials::new(), 0)
    }

    /// The same with `credentials`, its core told the wall clock at start
    /// was `unix_at_start`.
    fn test_worker_with(
        credentials: crate::auth::Credentials,
        unix_at_start: u64,
    ) -> (Worker, Vec<SocketAddr>) {
        use crate::auth::Nonces;
        use crate::core::Config;
        use crate::shared::{Quotas, Shared};
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let listeners: Vec<std::net::UdpSocket> = (0..2)
            .map(|_| bind_reuseport(resolve_port_zero(lo).unwrap()).unwrap())
            .collect();
        let addrs = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let shared = Shared::new(credentials, Nonces::new([1; 32], 600), Quotas::new(0, 0));
        let config = Config::new("t", Instant::now(), unix_at_start);
        let setup = WorkerSetup {
            listeners,
            core: Relay::new(config, Arc::new(shared)),
            relay_ips: (Some(lo.ip()), None),
            advertise: Arc::new(|a| a),
            shutdown: Arc::default(),
            reserved: Arc::default(),
        };
        (Worker::new(setup).unwrap().0, addrs)
    }

    /// A socket with more queued than one visit reads (a junk flood at a
    /// listener) gets a bounded share of each turn of the event loop: the
    /// other listener is served in the same turn, and the rest of the
    /// flood, which raises no new readiness edge, is read on the following
    /// turns. The worker used to read such a socket for as long as it had
    /// 32 datagrams queued, starving every other socket and its timers.
    #[test]
    fn a_flooded_socket_gets_a_bounded_share_of_each_turn() {
        let (mut w, addrs) = test_worker();
        let share = (DRAIN_BATCHES * BATCH) as u64;
        let flood = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let queued = 3 * share;
        for k in 0..queued {
            // Sizes alternate so that no GRO train forms: one slot each.
            let junk = [0xff; 9];
            flood
                .send_to(&junk[..8 + (k % 2) as usize], addrs[0])
                .unwrap();
        }
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let binding = crate::stun::Builder::new(
            crate::stun::method::BINDING,
            crate::stun::Class::Request,
            [3; 12],
        )
        .finish();
        client.send_to(&binding, addrs[1]).unwrap();

        let junk_read =
            |w: &Worker| w.core.stats().drops[crate::core::DropReason::Malformed.index()];
        let mut s = Scratch::new();
        assert!(w.turn(&mut s));
        assert_eq!(
            junk_read(&w),
            share,
            "the first turn read more than a share"
        );
        assert_eq!(w.backlog, [Source::Listener(0)]);
        let mut buf = [0u8; 128];
        let (n, from) = client.recv_from(&mut buf).expect("listener 1 served");
        assert_eq!(from, addrs[1]);
        let answer = crate::stun::Message::parse(&buf[..n]).unwrap();
        assert_eq!(answer.class, crate::stun::Class::Success);
        let mut turns = 1;
        while !w.backlog.is_empty() {
            let before = junk_read(&w);
            assert!(w.turn(&mut s));
            assert!(junk_read(&w) - before <= share);
            turns += 1;
            assert!(turns <= 5, "the backlog does not drain");
        }
        assert_eq!(junk_read(&w), queued);
    }

    /// The worker passes the wall clock it reads with each batch: a REST
    /// credential that expired by the system clock is refused although
    /// the clock the core was started with (here 1000 s slow, as before
    /// NTP stepped it) says otherwise.
    #[test]
    fn rest_expiry_uses_the_clock_read_with_the_input() {
        use crate::auth::{Credentials, Key, rest_password};
        use crate::stun::{Builder, Class, Integrity, Message, attr, method};
        let real = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut credentials = Credentials::new();
        credentials.add_secret("a-long-enough-secret").unwrap();
        let (mut w, addrs) = test_worker_with(credentials, real - 1000);
        let user = format!("{}:carol", real - 10);
        let key = Key::derive(&user, "t", &rest_password("a-long-enough-secret", &user));
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut s = Scratch::new();
        let mut exchange = |w: &mut Worker, req: Vec<u8>| {
            client.send_to(&req, addrs[0]).unwrap();
            assert!(w.turn(&mut s));
            let mut buf = [0u8; 512];
            let (n, _) = client.recv_from(&mut buf).expect("an answer");
            buf[..n].to_vec()
        };
        let mut b = Builder::new(method::ALLOCATE, Class::Request, [1; 12]);
        b.u32(attr::REQUESTED_TRANSPORT, 17 << 24);
        let challenge = exchange(&mut w, b.finish());
        let nonce = Message::parse(&challenge)
            .unwrap()
            .get_str(attr::NONCE)
            .unwrap()
            .unwrap()
            .to_owned();
        let mut b = Builder::new(method::ALLOCATE, Class::Request, [2; 12]);
        b.u32(attr::REQUESTED_TRANSPORT, 17 << 24)
            .attr(attr::USERNAME, user.as_bytes())
            .attr(attr::REALM, b"t")
            .attr(attr::NONCE, nonce.as_bytes())
            .integrity(Integrity::Sha1, &key.0);
        let answer = exchange(&mut w, b.finish());
        let m = Message::parse(&answer).unwrap();
        assert_eq!(m.class, Class::Error, "an expired credential allocated");
        let e = m.get(attr::ERROR_CODE).unwrap().value;
        assert_eq!(u16::from(e[2]) * 100 + u16::from(e[3]), 401);
    }

    fn client(listener: u32, remote: SocketAddr) -> Dest {
        Dest::Client(ClientId {
            transport: Transport::Udp,
            listener,
            remote,
        })
    }

    /// A flush turns queued datagrams into exactly those datagrams at each
    /// destination, in push order per destination, whether they leave as
    /// a GSO train, in a sendmmsg batch or alone.
    #[test]
    fn flush_delivers_each_datagram_in_order_per_destination() {
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let listener = UdpSocket::bind(lo).unwrap();
        let state = UdpSocketState::new((&listener).into()).unwrap();
        let rx: Vec<std::net::UdpSocket> = (0..3)
            .map(|_| {
                let s = std::net::UdpSocket::bind(lo).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                s
            })
            .collect();
        let to: Vec<SocketAddr> = rx.iter().map(|s| s.local_addr().unwrap()).collect();
        // rx[0]: a train of 5 equal sizes broken by one odd size, then 3
        // more; rx[1]: two alone-sized datagrams interleaved; rx[2]: one,
        // then two empty ones.
        let mut expected: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 3];
        let mut plan = Vec::new();
        for k in 0..9u8 {
            let len = if k == 5 { 30 } else { 100 };
            plan.push((0, vec![k; len]));
            if k % 4 == 1 {
                plan.push((1, vec![0x80 | k; 50 + usize::from(k)]));
            }
        }
        plan.push((2, vec![0xee; 7]));
        // Empty datagrams (a ChannelData with no payload relays as one).
        plan.push((2, Vec::new()));
        plan.push((2, Vec::new()));
        let mut tx = TxQueue::new();
        for (r, data) in &plan {
            tx.push(client(0, to[*r]), data, 0);
            expected[*r].push(data.clone());
        }
        // A listener that does not exist: dropped, not sent elsewhere.
        tx.push(client(9, to[2]), b"nowhere", 0);
        let publisher = Publisher::new();
        let out = Out {
            listeners: std::slice::from_ref(&listener),
            relays: &[],
            publisher: &publisher,
            gso: &state,
        };
        let gso_before = state.max_gso_segments();
        tx.flush(&out);
        assert!(tx.entries.is_empty() && tx.arena.is_empty());
        println!("GSO segments available: {gso_before}");
        assert_eq!(state.max_gso_segments(), gso_before, "GSO was turned off");
        let mut buf = [0u8; 2048];
        for (r, want) in expected.iter().enumerate() {
            for w in want {
                let (n, from) = rx[r].recv_from(&mut buf).unwrap();
                assert_eq!(from, listener.local_addr().unwrap());
                assert_eq!(&buf[..n], &w[..], "receiver {r}");
            }
            rx[r].set_nonblocking(true).unwrap();
            assert!(
                rx[r].recv_from(&mut buf).is_err(),
                "receiver {r}: extra datagram"
            );
        }
    }
}
