//! Following the network: a transport bound to "this machine's address"
//! (an unspecified bind address) moves to another one when that address
//! goes away (Wi-Fi to cellular, a new DHCP lease), and the ICE session
//! restarts there ([`crate::ice::IceSession::rehome`]).

use super::{UdpIo, default_ip};
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

    fn bind(&self, addr: SocketAddr) -> io::Result<Self::Socket> {
        let s = std::net::UdpSocket::bind(addr)?;
        s.set_nonblocking(true)?;
        tokio::net::UdpSocket::from_std(s)
    }
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
    /// (`bound(v4)`) is gone or is loopback; with `always` (the app said
    /// the network changed), whenever the address
    /// [`super::default_bind_addrs`] would pick now is another one. Only a
    /// non-loopback address is moved to: a family with none left (between
    /// two networks) stays where it is until one comes.
    pub(super) fn moves(
        &self,
        bound: impl Fn(bool) -> Option<IpAddr>,
        always: bool,
    ) -> Vec<io::Result<(SocketAddr, S)>> {
        let ips = self.view.addresses();
        let mut out = Vec::new();
        for &(v4, port) in &self.families {
            let Some(pick) = default_ip(&ips, v4).filter(|ip| !ip.is_loopback()) else {
                continue;
            };
            let now = bound(v4);
            if now == Some(pick) {
                continue;
            }
            let stale = now.is_none_or(|ip| !ips.contains(&ip) || ip.is_loopback());
            if always || stale {
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

    /// Interface addresses the test sets.
    struct Fake(Arc<Mutex<Vec<IpAddr>>>);

    impl NetworkView for Fake {
        type Socket = Named;
        fn addresses(&self) -> Vec<IpAddr> {
            self.0.lock().unwrap().clone()
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
        let follow = Follow::new(Box::new(Fake(ips.clone())), vec![(true, 5004)]);
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
}
