//! TURN over TCP and TLS (RFC 8656 §3.1): STUN messages and ChannelData
//! (padded to four bytes) framed back to back on the stream. Each
//! connection is one client 5-tuple, so it runs its own small core and at
//! most one relayed socket in a tokio task.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::core::{
    ClientId, Dest, Event, Family, Input, PEER_HEADROOM, Relay, RelayId, Reservation, Transport,
};
use crate::metrics::{self, Publisher};
use crate::relay_socket;
use crate::server::Ctx;
use crate::stun;

/// Largest frame accepted on a stream.
const MAX_FRAME: usize = stun::HEADER_LEN + 65_535 + 3;
/// Largest frame accepted before the connection has an allocation: enough
/// for any Allocate or Binding request, so an unauthenticated client
/// cannot make the relay hold a 64 KiB buffer.
const MAX_FRAME_UNALLOCATED: usize = 4096;
/// First size of a connection's read buffer; it grows to what frames need.
const INITIAL_READ_BUF: usize = 2048;
/// How long one write to a client may stall before the connection is
/// dropped: a client that stops reading must not hold its allocation (and
/// quota slot) past its lifetime, as timers do not run during a write.
pub const WRITE_STALL: Duration = Duration::from_secs(10);
/// Pause after a failed accept (EMFILE, ENFILE, ENOBUFS…): retrying at
/// once would spin at 100% CPU until a descriptor frees up.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Why a TCP/TLS connection was refused or closed by the relay; the label
/// is the `reason` of `turn_drops_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionDrop {
    /// `max_tcp_connections` reached.
    #[error("too many TCP/TLS connections")]
    TotalLimit,
    /// `max_tcp_connections_per_ip` reached for the source IP.
    #[error("too many TCP/TLS connections from one IP")]
    PerIpLimit,
    /// No allocation within `tcp_allocate_timeout`.
    #[error("no allocation in time")]
    NoAllocation,
    /// A frame too large before any allocation.
    #[error("oversized frame before allocation")]
    Oversized,
    /// Bytes that are neither STUN nor ChannelData.
    #[error("not a TURN stream")]
    NotTurn,
    /// The client did not drain what we wrote within [`WRITE_STALL`].
    #[error("client stopped reading")]
    WriteStalled,
    /// `accept` failed (out of descriptors, …).
    #[error("accept failed")]
    AcceptFailed,
}

impl ConnectionDrop {
    /// Label used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            ConnectionDrop::TotalLimit => "tcp_connection_limit",
            ConnectionDrop::PerIpLimit => "tcp_per_ip_limit",
            ConnectionDrop::NoAllocation => "tcp_no_allocation",
            ConnectionDrop::Oversized => "tcp_oversized",
            ConnectionDrop::NotTurn => "tcp_not_turn",
            ConnectionDrop::WriteStalled => "tcp_write_stalled",
            ConnectionDrop::AcceptFailed => "tcp_accept_failed",
        }
    }
}

/// Caps on concurrent TCP/TLS connections, in total and per source IP,
/// shared by every TCP and TLS listener (0 = no limit).
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; gives its place back when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    /// At most `max_total` connections, `max_per_ip` from one IP.
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        ConnectionLimits {
            max_total,
            max_per_ip,
            state: Mutex::new((0, HashMap::new())),
        }
    }

    /// Admits a connection from `ip`, or says which cap refuses it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, ConnectionDrop> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if self.max_total != 0 && s.0 >= self.max_total {
            return Err(ConnectionDrop::TotalLimit);
        }
        let from_ip = s.1.entry(ip).or_insert(0);
        if self.max_per_ip != 0 && *from_ip >= self.max_per_ip {
            return Err(ConnectionDrop::PerIpLimit);
        }
        *from_ip += 1;
        s.0 += 1;
        Ok(ConnectionSlot {
            limits: self.clone(),
            ip,
        })
    }

    /// Connections currently admitted.
    pub fn total(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut s = self.limits.state.lock().unwrap_or_else(|e| e.into_inner());
        s.0 = s.0.saturating_sub(1);
        if let Some(n) = s.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                s.1.remove(&self.ip);
            }
        }
    }
}

/// The stream carries something other than STUN or ChannelData.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a TURN stream")]
pub struct NotTurn;

/// Length of the next complete frame in `buf`: `Ok(None)` if more bytes
/// are needed.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, NotTurn> {
    Ok(declared_len(buf)?.filter(|&len| buf.len() >= len))
}

/// Length the next frame in `buf` declares, once its first four bytes are
/// in: `Ok(None)` before that.
pub fn declared_len(buf: &[u8]) -> Result<Option<usize>, NotTurn> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = match buf[0] & 0xc0 {
        0x00 => stun::stun_frame_len(buf).ok_or(NotTurn)?,
        0x40 => (4 + usize::from(u16::from_be_bytes([buf[2], buf[3]]))).div_ceil(4) * 4,
        _ => return Err(NotTurn),
    };
    Ok(Some(len))
}

/// Accepts connections until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    ctx: Arc<Ctx>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut next_conn: u32 = 1;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                metrics::count_drop(ConnectionDrop::AcceptFailed.label());
                tokio::select! {
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        };
        // Refused connections are closed at once, before TLS or buffers.
        let slot = match ctx.tcp_connections.admit(remote.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                tracing::debug!(%remote, %why, "connection refused");
                metrics::count_drop(why.label());
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = next_conn;
        next_conn = next_conn.wrapping_add(1);
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        match tls.clone() {
            None => {
                tokio::spawn(connection(
                    stream,
                    remote,
                    Transport::Tcp,
                    conn,
                    ctx,
                    shutdown,
                    slot,
                ));
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => {
                            connection(s, remote, Transport::Tls, conn, ctx, shutdown, slot).await
                        }
                        _ => tracing::debug!(%remote, "TLS handshake failed"),
                    }
                });
            }
        }
    }
}

enum Wake {
    Client(std::io::Result<usize>),
    Peer(std::io::Result<(usize, SocketAddr)>),
    Timer,
    Shutdown,
}

async fn recv_relay(
    sock: &Option<(RelayId, UdpSocket)>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match sock {
        Some((_, s)) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn connection<S>(
    stream: S,
    remote: SocketAddr,
    transport: Transport,
    conn: u32,
    ctx: Arc<Ctx>,
    mut shutdown: watch::Receiver<bool>,
    _slot: ConnectionSlot,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut core = Relay::new(ctx.core_config(), ctx.shared.clone());
    let client = ClientId {
        transport,
        listener: conn,
        remote,
    };
    let mut relay: Option<(RelayId, UdpSocket)> = None;
    // Buffers start small and grow only as frames and a relayed socket
    // need them: an unauthenticated connection holds a few KiB, not 260.
    let mut inbuf = vec![0u8; INITIAL_READ_BUF];
    let mut filled = 0;
    let mut peer_buf: Vec<u8> = Vec::new();
    let mut publisher = Publisher::new();
    // Reused for every write so relayed data costs no allocation.
    let mut out: Vec<u8> = Vec::new();
    let mut last_publish = Instant::now();
    let allocate_timeout = ctx.settings.tcp_allocate_timeout;
    // Since when the connection has had no allocation (from the start).
    let mut bare_since = Some(Instant::now());
    let why = loop {
        let bare_deadline = bare_since.map(|t| t + allocate_timeout);
        let deadline = core
            .poll_timeout()
            .into_iter()
            .chain(bare_deadline)
            .min()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(1));
        if filled == inbuf.len() {
            // Only a frame longer than the buffer fills it (complete ones
            // are consumed), and frames are checked against MAX_FRAME.
            inbuf.resize((2 * inbuf.len()).min(2 * MAX_FRAME), 0);
        }
        let wake = tokio::select! {
            r = rd.read(&mut inbuf[filled..]) => Wake::Client(r),
            r = recv_relay(&relay, peer_buf.get_mut(PEER_HEADROOM..).unwrap_or_default()) => Wake::Peer(r),
            _ = tokio::time::sleep_until(deadline) => Wake::Timer,
            _ = shutdown.changed() => Wake::Shutdown,
        };
        let now = Instant::now();
        // Read per wakeup: REST expiry follows a stepped system clock.
        core.set_wall_clock(now, std::time::SystemTime::now());
        out.clear();
        match wake {
            Wake::Client(Ok(0)) | Wake::Client(Err(_)) | Wake::Shutdown => break None,
            Wake::Client(Ok(n)) => {
                filled += n;
                let mut start = 0;
                let limit = if core.allocations() == 0 {
                    MAX_FRAME_UNALLOCATED
                } else {
                    MAX_FRAME
                };
                let refused = loop {
                    let len = match declared_len(&inbuf[start..filled]) {
                        Ok(Some(len)) if len > limit => break Some(ConnectionDrop::Oversized),
                        Ok(Some(len)) if start + len <= filled => len,
                        Ok(_) => break None,
                        Err(NotTurn) => break Some(ConnectionDrop::NotTurn),
                    };
                    let frame = &inbuf[start..start + len];
                    if let Ok(Some(f)) = core.handle_input(
                        now,
                        Input::Client {
                            client,
                            data: frame,
                        },
                    ) && let (Dest::Peer { addr, .. }, Some((_, s))) = (f.dest, &relay)
                    {
                        let _ = s.try_send_to(&frame[f.range], addr);
                    }
                    start += len;
                };
                if refused.is_some() {
                    break refused;
                }
                inbuf.copy_within(start..filled, 0);
                filled -= start;
            }
            Wake::Peer(Ok((n, from))) => {
                if let Some((id, _)) = relay {
                    let data = &mut peer_buf[..PEER_HEADROOM + n];
                    if let Ok(Some(f)) = core.handle_input(
                        now,
                        Input::Peer {
                            relay: id,
                            from,
                            data,
                        },
                    ) {
                        out.extend_from_slice(&peer_buf[f.range]);
                        pad4(&mut out);
                    }
                }
            }
            Wake::Peer(Err(_)) => {}
            Wake::Timer => {
                core.handle_timeout(now);
                if bare_deadline.is_some_and(|d| d <= now) && core.allocations() == 0 {
                    break Some(ConnectionDrop::NoAllocation);
                }
            }
        }
        // Control: bind/close the relayed socket, write answers.
        loop {
            if let Some(ev) = core.poll_event() {
                match ev {
                    Event::BindRelay {
                        relay: id,
                        family,
                        even_port,
                        reservation,
                        dont_fragment,
                    } => {
                        let bound = bind_relay(&ctx, family, even_port, reservation, dont_fragment);
                        let addr = bound.as_ref().ok().and_then(|s| s.local_addr().ok());
                        if let Ok(s) = bound {
                            relay = Some((id, s));
                            peer_buf.resize(PEER_HEADROOM + 65_535, 0);
                        }
                        core.relay_bound(now, id, addr.map(|a| ctx.settings.advertised(a)));
                    }
                    Event::Closed { .. } => relay = None,
                    Event::Unreserve { token } => ctx.reserved.release(&token),
                }
                continue;
            }
            match core.poll_transmit() {
                Some(t) => match t.dest {
                    Dest::Client(_) => {
                        out.extend_from_slice(&t.data);
                        pad4(&mut out);
                    }
                    Dest::Peer { addr, .. } => {
                        if let Some((_, s)) = &relay {
                            let _ = s.try_send_to(&t.data, addr);
                        }
                    }
                },
                None => break,
            }
        }
        bare_since = match (core.allocations(), bare_since) {
            (0, None) => Some(now),
            (0, since) => since,
            _ => None,
        };
        if !out.is_empty() {
            match tokio::time::timeout(WRITE_STALL, wr.write_all(&out)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break None,
                Err(_) => break Some(ConnectionDrop::WriteStalled),
            }
        }
        if now - last_publish >= Duration::from_secs(1) {
            publisher.publish(core.stats(), core.allocations());
            last_publish = now;
        }
    };
    if let Some(why) = why {
        tracing::debug!(%remote, %why, "connection closed");
        metrics::count_drop(why.label());
    }
    core.client_gone(client);
    // This core goes with the connection: nothing would expire its
    // reservations later, so they end now.
    core.release_reservations();
    while let Some(ev) = core.poll_event() {
        if let Event::Unreserve { token } = ev {
            ctx.reserved.release(&token);
        }
    }
    publisher.publish(core.stats(), 0);
    // Bounded too: a client that does not read must not hold the task.
    let _ = tokio::time::timeout(WRITE_STALL, wr.shutdown()).await;
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn bind_relay(
    ctx: &Ctx,
    family: Family,
    even_port: bool,
    reservation: Reservation,
    dont_fragment: bool,
) -> std::io::Result<UdpSocket> {
    let ip = match family {
        Family::V4 => ctx.settings.relay_v4,
        Family::V6 => ctx.settings.relay_v6,
    }
    .ok_or_else(|| std::io::Error::other("family not offered"))?;
    let sock = relay_socket::bind(ip, even_port, reservation, &ctx.reserved)?;
    if dont_fragment {
        relay_socket::set_dont_fragment(&sock)?;
    }
    UdpSocket::from_std(sock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limits_count_total_and_per_ip_and_free_on_drop() {
        let limits = Arc::new(ConnectionLimits::new(3, 2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), ConnectionDrop::PerIpLimit);
        let _b1 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).unwrap_err(), ConnectionDrop::TotalLimit);
        drop(a1);
        assert_eq!(limits.total(), 2);
        assert!(limits.admit(a).is_ok());
        let unlimited = Arc::new(ConnectionLimits::new(0, 0));
        let held: Vec<_> = (0..100).map(|_| unlimited.admit(a).unwrap()).collect();
        assert_eq!(unlimited.total(), held.len());
    }

    #[test]
    fn framing() {
        assert_eq!(frame_len(&[0x40, 0x00, 0x00]), Ok(None));
        assert_eq!(
            frame_len(&[0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5]),
            Ok(None)
        );
        assert_eq!(
            frame_len(&[0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0]),
            Ok(Some(12))
        );
        assert_eq!(frame_len(&[0x80, 0, 0, 0]), Err(NotTurn));
        let mut stun = vec![0u8; 28];
        stun[3] = 8;
        assert_eq!(frame_len(&stun), Ok(Some(28)));
        assert_eq!(frame_len(&stun[..27]), Ok(None));
        assert_eq!(declared_len(&stun[..4]), Ok(Some(28)));
        assert_eq!(declared_len(&[0x7f, 0, 0xff, 0xff]), Ok(Some(65_540)));
    }
}
