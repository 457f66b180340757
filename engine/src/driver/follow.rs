//! Following the network: a transport bound to "this machine's address"
//! (an unspecified bind address) moves to another one when that address
//! goes away (Wi-Fi to cellular, a new DHCP lease), and the ICE session
//! restarts there ([`crate::ice::IceSession::rehome`]).

use super::UdpIo;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How often a following transport looks at the interface addresses.
pub const NETWORK_POLL: Duration = Duration::from_secs(2);

/// Where a transport that follows the network finds this host's addresses
/// and binds its sockets.
pub trait NetworkView: Send + 'static {
    /// The socket type it binds.
    type Socket: UdpIo;
    /// This host's interface addresses now.
    fn addresses(&self) -> Vec<IpAddr>;
    /// The address this host sends from to the Internet now, of the
    /// family (the default route's source), if it has a route there.
    fn route_source(&self, v4: bool) -> Option<IpAddr>;
    /// Binds a socket on `addr` (inside a tokio runtime).
    fn bind(&self, addr: SocketAddr) -> io::Result<Self::Socket>;
}

/// The host's own interfaces, and tokio sockets.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostNetwork;

impl NetworkView for HostNetwork {
    type Socket = tokio::net::UdpSocket;

    fn addresses(&self) -> Vec<IpAddr> {
        crate::ice::host_addresses()
    }

    fn route_source(&self, v4: bool) -> Option<IpAddr> {
        route_source(v4)
    }

    fn bind(&self, addr: SocketAddr) -> io::Result<Self::Socket> {
        let s = std::net::UdpSocket::bind(addr)?;
        s.set_nonblocking(true)?;
        tokio::net::UdpSocket::from_std(s)
    }
}

/// The default route's source address of a family: what a UDP socket
/// connected to an address out there would send from. Connecting sends
/// nothing; it only asks the kernel for a route. The address is from the
/// documentation ranges (RFC 5737, RFC 3849): no host has it, so the route
/// found is the default one (or none).
pub fn route_source(v4: bool) -> Option<IpAddr> {
    let (any, out): (SocketAddr, SocketAddr) = if v4 {
        (([0, 0, 0, 0], 0).into(), ([198, 51, 100, 1], 9).into())
    } else {
        (
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
            ("2001:db8::1".parse::<std::net::Ipv6Addr>().ok()?, 9).into(),
        )
    };
    let s = std::net::UdpSocket::bind(any).ok()?;
    s.connect(out).ok()?;
    Some(s.local_addr().ok()?.ip()).filter(|ip| !ip.is_unspecified())
}

/// The address a family's sockets go on, among `ips`: the default route's
/// source `route` when it is one of them, else the first non-loopback
/// address, else loopback.
pub(super) fn pick(ips: &[IpAddr], route: Option<IpAddr>, v4: bool) -> Option<IpAddr> {
    let fam = |ip: &&IpAddr| ip.is_ipv4() == v4;
    route
        .filter(|r| r.is_ipv4() == v4 && !r.is_loopback() && ips.contains(r))
        .or_else(|| ips.iter().filter(fam).find(|ip| !ip.is_loopback()).copied())
        .or_else(|| ips.iter().find(fam).copied())
}

/// The families a transport follows, and how it looks.
pub(super) struct Follow<S> {
    view: Box<dyn NetworkView<Socket = S>>,
    /// (IPv4?, port asked for) of each followed family.
    families: Vec<(bool, u16)>,
}

impl<S: UdpIo> Follow<S> {
    pub(super) fn new(view: Box<dyn NetworkView<Socket = S>>, families: Vec<(bool, u16)>) -> Self {
        Self { view, families }
    }

    /// Sockets to move to, for each followed family whose bound address
    /// (`bound(v4)`) is gone or is loopback, or is no longer the default
    /// route's source while another address is; with `always` (the app
    /// said the network changed), whenever the address [`pick`] gives now
    /// is another one. Only a non-loopback address is moved to: a family
    /// with none left (between two networks) stays where it is until one
    /// comes. A transport that fell back to a secondary interface (a VPN,
    /// a bridge) thus goes back to the network that has the route once
    /// it returns.
    pub(super) fn moves(
        &self,
        bound: impl Fn(bool) -> Option<IpAddr>,
        always: bool,
    ) -> Vec<io::Result<(SocketAddr, S)>> {
        let ips = self.view.addresses();
        let mut out = Vec::new();
        for &(v4, port) in &self.families {
            let route = self.view.route_source(v4);
            let Some(pick) = pick(&ips, route, v4).filter(|ip| !ip.is_loopback()) else {
                continue;
            };
            let now = bound(v4);
            if now == Some(pick) {
                continue;
            }
            let stale = now.is_none_or(|ip| !ips.contains(&ip) || ip.is_loopback());
            let routed_elsewhere = route == Some(pick);
            if always || stale || routed_elsewhere {
                let addr = SocketAddr::new(pick, port);
                out.push(self.view.bind(addr).and_then(|s| Ok((s.local_addr()?, s))));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A socket that only knows its address.
    struct Named(SocketAddr);

    impl UdpIo for Named {
        fn local_addr(&self) -> io::Result<SocketAddr> {
            Ok(self.0)
        }
        async fn send_to(&self, buf: &[u8], _: SocketAddr) -> io::Result<usize> {
            Ok(buf.len())
        }
        async fn recv_from(&self, _: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
            std::future::pending().await
        }
    }

    /// Interface addresses the test sets, and the default route's source.
    struct Fake(Arc<Mutex<Vec<IpAddr>>>, Arc<Mutex<Option<IpAddr>>>);

    impl NetworkView for Fake {
        type Socket = Named;
        fn addresses(&self) -> Vec<IpAddr> {
            self.0.lock().unwrap().clone()
        }
        fn route_source(&self, v4: bool) -> Option<IpAddr> {
            self.1.lock().unwrap().filter(|ip| ip.is_ipv4() == v4)
        }
        fn bind(&self, addr: SocketAddr) -> io::Result<Named> {
            Ok(Named(addr))
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Where `follow` moves IPv4 from `bound`: the new socket's address.
    fn moved(follow: &Follow<Named>, bound: &str, always: bool) -> Vec<SocketAddr> {
        let bound = ip(bound);
        (follow.moves(|v4| v4.then_some(bound), always))
            .into_iter()
            .map(|m| m.unwrap().0)
            .collect()
    }

    #[test]
    fn a_family_moves_when_its_address_goes_but_never_to_loopback() {
        let ips = Arc::new(Mutex::new(vec![ip("127.0.0.1"), ip("192.0.2.1")]));
        let follow = Follow::new(
            Box::new(Fake(ips.clone(), Arc::default())),
            vec![(true, 5004)],
        );
        assert!(moved(&follow, "192.0.2.1", false).is_empty(), "still there");
        // Another address coming stays unused unless the app asks.
        ips.lock().unwrap().insert(0, ip("198.51.100.7"));
        assert!(moved(&follow, "192.0.2.1", false).is_empty());
        assert_eq!(
            moved(&follow, "192.0.2.1", true),
            ["198.51.100.7:5004".parse::<SocketAddr>().unwrap()],
            "the app said the network changed: the port asked for is kept"
        );
        // Between two networks only loopback is left: stay.
        *ips.lock().unwrap() = vec![ip("127.0.0.1")];
        assert!(moved(&follow, "192.0.2.1", false).is_empty());
        assert!(moved(&follow, "192.0.2.1", true).is_empty());
        // The next network comes.
        ips.lock().unwrap().push(ip("203.0.113.9"));
        assert_eq!(moved(&follow, "192.0.2.1", false).len(), 1);
        // A transport that started with no network leaves loopback.
        assert_eq!(moved(&follow, "127.0.0.1", false).len(), 1);
    }

    /// Wi-Fi lost: the transport falls back to a bridge that is always
    /// there (docker's, a VPN's). Wi-Fi back, with the default route: it
    /// goes back there. Before, the bridge's address never went away, so
    /// the call stayed on it (the review of session 27 found it).
    #[test]
    fn a_transport_goes_back_to_the_network_with_the_route() {
        let wifi = ip("192.0.2.1");
        let ips = Arc::new(Mutex::new(vec![ip("127.0.0.1"), wifi, ip("172.17.0.1")]));
        let route = Arc::new(Mutex::new(Some(wifi)));
        let follow = Follow::new(Box::new(Fake(ips.clone(), route.clone())), vec![(true, 0)]);
        assert!(moved(&follow, "192.0.2.1", false).is_empty());
        ips.lock().unwrap().retain(|a| *a != wifi);
        *route.lock().unwrap() = None;
        assert_eq!(
            moved(&follow, "192.0.2.1", false),
            ["172.17.0.1:0".parse::<SocketAddr>().unwrap()]
        );
        assert!(
            moved(&follow, "172.17.0.1", false).is_empty(),
            "no route yet"
        );
        ips.lock().unwrap().push(wifi);
        *route.lock().unwrap() = Some(wifi);
        assert_eq!(
            moved(&follow, "172.17.0.1", false),
            ["192.0.2.1:0".parse::<SocketAddr>().unwrap()]
        );
    }
}

#[cfg(test)]
mod route_tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_default_routes_source_is_picked_when_it_is_an_interfaces() {
        let ips = [ip("127.0.0.1"), ip("172.17.0.1"), ip("192.0.2.7")];
        assert_eq!(
            pick(&ips, Some(ip("192.0.2.7")), true),
            Some(ip("192.0.2.7"))
        );
        assert_eq!(
            pick(&ips, None, true),
            Some(ip("172.17.0.1")),
            "no route: the first"
        );
        assert_eq!(
            pick(&ips, Some(ip("10.9.9.9")), true),
            Some(ip("172.17.0.1"))
        );
        assert_eq!(pick(&[ip("127.0.0.1")], None, true), Some(ip("127.0.0.1")));
        assert_eq!(pick(&ips, None, false), None);
    }

    /// On this host: a route's source, when there is a route, is one of
    /// its addresses.
    #[test]
    fn the_hosts_route_source_is_its_own() {
        for v4 in [true, false] {
            if let Some(src) = route_source(v4) {
                assert!(crate::ice::host_addresses().contains(&src), "{src}");
            }
        }
    }
}
