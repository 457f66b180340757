//! Binding relayed sockets, including EVEN-PORT and RESERVATION-TOKEN
//! (RFC 8656 §7.2): an even port whose odd neighbour is held for a later
//! Allocate, which RFC 5766 clients use for RTP/RTCP pairs.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::core::Reservation;

/// How long a reserved port is held (RFC 8656 §7.2: about 30 s).
pub const RESERVATION_HOLD: Duration = Duration::from_secs(30);

/// Reserved sockets, shared by all drivers: the Allocate that redeems a
/// token may arrive on another worker.
#[derive(Debug, Default)]
pub struct ReservedSockets(Mutex<HashMap<[u8; 8], (Instant, UdpSocket)>>);

impl ReservedSockets {
    fn put(&self, token: [u8; 8], sock: UdpSocket, now: Instant) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, (t, _)| now.saturating_duration_since(*t) < RESERVATION_HOLD);
        m.insert(token, (now, sock));
    }

    fn take(&self, token: &[u8; 8]) -> Option<UdpSocket> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(token).map(|(_, s)| s)
    }
}

/// Binds a non-blocking relayed socket on `ip` as the core asked.
pub fn bind(
    ip: IpAddr,
    even_port: bool,
    reservation: Reservation,
    reserved: &ReservedSockets,
) -> io::Result<UdpSocket> {
    let sock = match reservation {
        Reservation::Redeem(token) => reserved
            .take(&token)
            .ok_or_else(|| io::Error::other("reservation expired"))?,
        Reservation::ReserveNext(token) => {
            let mut found = None;
            for _ in 0..64 {
                let s = bind_even(ip)?;
                let next = SocketAddr::new(ip, s.local_addr()?.port() + 1);
                if let Ok(odd) = UdpSocket::bind(next) {
                    found = Some((s, odd));
                    break;
                }
            }
            let (s, odd) = found.ok_or_else(|| io::Error::other("no even/odd port pair"))?;
            reserved.put(token, odd, Instant::now());
            s
        }
        Reservation::None if even_port => bind_even(ip)?,
        Reservation::None => UdpSocket::bind(SocketAddr::new(ip, 0))?,
    };
    sock.set_nonblocking(true)?;
    Ok(sock)
}

fn bind_even(ip: IpAddr) -> io::Result<UdpSocket> {
    for _ in 0..64 {
        let s = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        let port = s.local_addr()?.port();
        if port.is_multiple_of(2) && port < u16::MAX {
            return Ok(s);
        }
    }
    Err(io::Error::other("no even port"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_then_redeem_the_odd_neighbour() {
        let r = ReservedSockets::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let even = bind(ip, true, Reservation::ReserveNext([7; 8]), &r).unwrap();
        let port = even.local_addr().unwrap().port();
        assert_eq!(port % 2, 0);
        let odd = bind(ip, false, Reservation::Redeem([7; 8]), &r).unwrap();
        assert_eq!(odd.local_addr().unwrap().port(), port + 1);
        assert!(
            bind(ip, false, Reservation::Redeem([7; 8]), &r).is_err(),
            "a token is used once"
        );
    }
}
