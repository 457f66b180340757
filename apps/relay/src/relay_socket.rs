//! Binding relayed sockets, including EVEN-PORT and RESERVATION-TOKEN
//! (RFC 8656 §7.2): an even port whose odd neighbour is held for a later
//! Allocate, which RFC 5766 clients use for RTP/RTCP pairs.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Mutex;

use crate::core::Reservation;

/// Bind calls one relayed socket may cost at most. Each try binds an
/// ephemeral port and then its even/odd neighbour, so a search that keeps
/// failing (ports nearly exhausted) gives up with 508 after a few dozen
/// system calls instead of thousands.
pub const BIND_BUDGET: usize = 32;

/// Ports held under RESERVATION-TOKENs, shared by all drivers: the
/// Allocate that redeems a token may arrive on another worker. The core
/// decides when a reservation ends ([`crate::core::Event::Unreserve`]);
/// this only holds the sockets.
#[derive(Debug, Default)]
pub struct ReservedSockets(Mutex<HashMap<[u8; 8], UdpSocket>>);

impl ReservedSockets {
    fn put(&self, token: [u8; 8], sock: UdpSocket) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(token, sock);
    }

    fn take(&self, token: &[u8; 8]) -> Option<UdpSocket> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(token)
    }

    /// Closes the port held under `token`, if any (the core's
    /// [`crate::core::Event::Unreserve`]).
    pub fn release(&self, token: &[u8; 8]) {
        drop(self.take(token));
    }

    /// Ports held now.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no port is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        Reservation::Redeem(token) => {
            let sock = reserved
                .take(&token)
                .ok_or_else(|| io::Error::other("reservation expired"))?;
            // The core asks for the reserved family; never relay from a
            // socket of the other one.
            if sock.local_addr()?.is_ipv4() != ip.is_ipv4() {
                return Err(io::Error::other("reserved port is of the other family"));
            }
            sock
        }
        Reservation::ReserveNext(token) => {
            let (even, odd) = even_port_with(ip, true, UdpSocket::bind)?;
            if let Some(odd) = odd {
                reserved.put(token, odd);
            }
            even
        }
        Reservation::None if even_port => even_port_with(ip, false, UdpSocket::bind)?.0,
        Reservation::None => UdpSocket::bind(SocketAddr::new(ip, 0))?,
    };
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// Has the kernel set the DF bit on what `sock` sends and never fragment
/// it (DONT-FRAGMENT, RFC 8656 §7.2): a datagram over the path MTU is
/// dropped instead.
pub fn set_dont_fragment(sock: &UdpSocket) -> io::Result<()> {
    use rustix::net::sockopt;
    if sock.local_addr()?.is_ipv4() {
        sockopt::set_ip_mtu_discover(sock, sockopt::Ipv4PathMtuDiscovery::DO)?;
    } else {
        sockopt::set_ipv6_mtu_discover(sock, sockopt::Ipv6PathMtuDiscovery::DO)?;
    }
    Ok(())
}

/// Binds an even port on `ip` and, with `pair`, holds the odd port after
/// it too, in at most [`BIND_BUDGET`] calls of `bind`. An ephemeral port
/// of either parity is tried with its neighbour (`port ^ 1`), so an odd
/// port is not wasted.
fn even_port_with(
    ip: IpAddr,
    pair: bool,
    mut bind: impl FnMut(SocketAddr) -> io::Result<UdpSocket>,
) -> io::Result<(UdpSocket, Option<UdpSocket>)> {
    let mut calls = 0;
    while calls < BIND_BUDGET {
        let first = bind(SocketAddr::new(ip, 0))?;
        calls += 1;
        let port = first.local_addr()?.port();
        let first_even = port.is_multiple_of(2);
        if first_even && !pair {
            return Ok((first, None));
        }
        let other = port ^ 1;
        if other == 0 || calls == BIND_BUDGET {
            continue;
        }
        calls += 1;
        let Ok(second) = bind(SocketAddr::new(ip, other)) else {
            continue;
        };
        let (even, odd) = if first_even {
            (first, second)
        } else {
            (second, first)
        };
        return Ok((even, pair.then_some(odd)));
    }
    Err(io::Error::other("no even port within the bind budget"))
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
        let plain = bind(ip, true, Reservation::None, &r).unwrap();
        assert_eq!(plain.local_addr().unwrap().port() % 2, 0);
        assert!(r.is_empty());
    }

    /// An IPv6 reservation is redeemed as IPv6, never handed to an IPv4
    /// allocation (whose sends would all fail).
    #[test]
    fn a_reserved_port_keeps_its_family() {
        let r = ReservedSockets::default();
        let v6: IpAddr = "::1".parse().unwrap();
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        if UdpSocket::bind(SocketAddr::new(v6, 0)).is_err() {
            eprintln!("no IPv6 loopback here: skipped");
            return;
        }
        bind(v6, true, Reservation::ReserveNext([1; 8]), &r).unwrap();
        let odd = bind(v6, false, Reservation::Redeem([1; 8]), &r).unwrap();
        assert!(odd.local_addr().unwrap().is_ipv6());
        bind(v6, true, Reservation::ReserveNext([2; 8]), &r).unwrap();
        assert!(bind(v4, false, Reservation::Redeem([2; 8]), &r).is_err());
    }

    /// When no neighbour port can be had, the search gives up after
    /// [`BIND_BUDGET`] bind calls (it was up to 64 x 64).
    #[test]
    fn pair_search_is_bounded() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for pair in [true, false] {
            let mut calls = 0;
            let taken = |a: SocketAddr| {
                calls += 1;
                if a.port() == 0 {
                    // An odd port each time, so even a plain EVEN-PORT
                    // needs its neighbour.
                    loop {
                        let s = UdpSocket::bind(a)?;
                        if s.local_addr()?.port() % 2 == 1 {
                            return Ok(s);
                        }
                    }
                }
                Err(io::Error::from(io::ErrorKind::AddrInUse))
            };
            assert!(even_port_with(ip, pair, taken).is_err());
            assert_eq!(calls, BIND_BUDGET, "pair = {pair}");
        }
    }

    /// DONT-FRAGMENT is acted on: the relayed socket sets DF (it used to
    /// be accepted and ignored).
    #[test]
    fn dont_fragment_sets_df() {
        use rustix::net::sockopt;
        let r = ReservedSockets::default();
        let v4 = bind("127.0.0.1".parse().unwrap(), false, Reservation::None, &r).unwrap();
        assert_ne!(
            sockopt::ip_mtu_discover(&v4).unwrap(),
            sockopt::Ipv4PathMtuDiscovery::DO
        );
        set_dont_fragment(&v4).unwrap();
        assert_eq!(
            sockopt::ip_mtu_discover(&v4).unwrap(),
            sockopt::Ipv4PathMtuDiscovery::DO
        );
        match bind("::1".parse().unwrap(), false, Reservation::None, &r) {
            Ok(v6) => {
                set_dont_fragment(&v6).unwrap();
                assert_eq!(
                    sockopt::ipv6_mtu_discover(&v6).unwrap(),
                    sockopt::Ipv6PathMtuDiscovery::DO
                );
            }
            Err(_) => eprintln!("no IPv6 loopback here: IPv6 skipped"),
        }
    }

    #[test]
    fn release_closes_the_held_port() {
        let r = ReservedSockets::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let even = bind(ip, true, Reservation::ReserveNext([3; 8]), &r).unwrap();
        let odd = SocketAddr::new(ip, even.local_addr().unwrap().port() + 1);
        assert!(UdpSocket::bind(odd).is_err(), "held");
        assert_eq!(r.len(), 1);
        r.release(&[3; 8]);
        assert!(r.is_empty());
        UdpSocket::bind(odd).expect("released");
    }
}
