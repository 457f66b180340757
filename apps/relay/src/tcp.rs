//! TURN over TCP and TLS (RFC 8656 §3.1): STUN messages and ChannelData
//! (padded to four bytes) framed back to back on the stream. Each
//! connection is one client 5-tuple, so it runs its own small core and at
//! most one relayed socket in a tokio task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::core::{
    ClientId, Dest, Event, Family, Input, PEER_HEADROOM, Relay, RelayId, Reservation, Transport,
};
use crate::metrics::Publisher;
use crate::relay_socket;
use crate::server::Ctx;
use crate::stun;

/// Largest frame accepted on a stream.
const MAX_FRAME: usize = stun::HEADER_LEN + 65_535 + 3;

/// The stream carries something other than STUN or ChannelData.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a TURN stream")]
pub struct NotTurn;

/// Length of the next complete frame in `buf`: `Ok(None)` if more bytes
/// are needed.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, NotTurn> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = match buf[0] & 0xc0 {
        0x00 => stun::stun_frame_len(buf).ok_or(NotTurn)?,
        0x40 => (4 + usize::from(u16::from_be_bytes([buf[2], buf[3]]))).div_ceil(4) * 4,
        _ => return Err(NotTurn),
    };
    Ok((buf.len() >= len).then_some(len))
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
                ));
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => {
                            connection(s, remote, Transport::Tls, conn, ctx, shutdown).await
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
    let mut inbuf = vec![0u8; MAX_FRAME * 2];
    let mut filled = 0;
    let mut peer_buf = vec![0u8; PEER_HEADROOM + 65_535];
    let mut publisher = Publisher::new();
    // Reused for every write so relayed data costs no allocation.
    let mut out: Vec<u8> = Vec::with_capacity(PEER_HEADROOM + 65_535 + 3);
    let mut last_publish = Instant::now();
    loop {
        let deadline = core
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(1));
        let wake = tokio::select! {
            r = rd.read(&mut inbuf[filled..]) => Wake::Client(r),
            r = recv_relay(&relay, &mut peer_buf[PEER_HEADROOM..]) => Wake::Peer(r),
            _ = tokio::time::sleep_until(deadline) => Wake::Timer,
            _ = shutdown.changed() => Wake::Shutdown,
        };
        let now = Instant::now();
        out.clear();
        match wake {
            Wake::Client(Ok(0)) | Wake::Client(Err(_)) | Wake::Shutdown => break,
            Wake::Client(Ok(n)) => {
                filled += n;
                let mut start = 0;
                loop {
                    match frame_len(&inbuf[start..filled]) {
                        Ok(Some(len)) => {
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
                        }
                        Ok(None) => break,
                        Err(NotTurn) => {
                            core.client_gone(client);
                            publisher.publish(core.stats(), 0);
                            return;
                        }
                    }
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
            Wake::Timer => core.handle_timeout(now),
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
                    } => {
                        let bound = bind_relay(&ctx, family, even_port, reservation);
                        let addr = bound.as_ref().ok().and_then(|s| s.local_addr().ok());
                        if let Ok(s) = bound {
                            relay = Some((id, s));
                        }
                        core.relay_bound(now, id, addr.map(|a| ctx.settings.advertised(a)));
                    }
                    Event::Closed { .. } => relay = None,
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
        if !out.is_empty() && wr.write_all(&out).await.is_err() {
            break;
        }
        if now - last_publish >= Duration::from_secs(1) {
            publisher.publish(core.stats(), core.allocations());
            last_publish = now;
        }
    }
    core.client_gone(client);
    publisher.publish(core.stats(), 0);
    let _ = wr.shutdown().await;
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
) -> std::io::Result<UdpSocket> {
    let ip = match family {
        Family::V4 => ctx.settings.relay_v4,
        Family::V6 => ctx.settings.relay_v6,
    }
    .ok_or_else(|| std::io::Error::other("family not offered"))?;
    UdpSocket::from_std(relay_socket::bind(
        ip,
        even_port,
        reservation,
        &ctx.reserved,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
