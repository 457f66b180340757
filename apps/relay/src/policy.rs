//! Which peer addresses a client may reach through the relay.
//!
//! Safe by default (the coturn CVE-2020-26262 class): special-purpose
//! ranges ([`sotto_addr`]) are refused unless the operator allows them
//! explicitly.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use ipnet::IpNet;
use sotto_addr::canonical;

/// Peer address policy: explicit deny, then explicit allow, then the
/// relay's own relayed addresses (for the ports of live allocations
/// only, [`Verdict::RelayedPortsOnly`]), then the built-in special-purpose
/// ranges and this host's own addresses.
///
/// Clones share the host's interface addresses
/// ([`PeerPolicy::set_host_addresses`]), so a refresh on SIGHUP reaches
/// every core built from one policy.
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    builtin: Vec<IpNet>,
    /// The relay's relayed addresses ([`PeerPolicy::add_relay_address`]).
    relay: Vec<RelayAddress>,
    /// Interface addresses, when the relay listens on a wildcard address
    /// (and so names none of them in its settings). Read only on the
    /// control path (CreatePermission, ChannelBind).
    host: Arc<RwLock<Vec<IpAddr>>>,
}

/// One relayed address of this relay: the address clients are told
/// (XOR-RELAYED-ADDRESS: `external_ip`, else `relay_ip`) and the one the
/// relayed sockets are bound to, where this host reaches them without
/// going out through a NAT (`relay_ip`; loopback when that is a wildcard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayAddress {
    /// What allocations are advertised as.
    pub advertised: IpAddr,
    /// Where this host delivers datagrams for them.
    pub local: IpAddr,
}

/// What [`PeerPolicy::verdict`] says about a peer IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Any port.
    Allowed,
    /// No port.
    Refused,
    /// One of the relay's own relayed addresses: only the ports of this
    /// relay's live allocations (two clients of one relay in relay-only
    /// mode), never its listeners or other services on the host.
    RelayedPortsOnly,
}

impl Default for PeerPolicy {
    fn default() -> Self {
        let builtin = sotto_addr::special_ranges().to_vec();
        PeerPolicy {
            allow: Vec::new(),
            deny: Vec::new(),
            builtin,
            relay: Vec::new(),
            host: Arc::default(),
        }
    }
}

impl PeerPolicy {
    /// The safe default.
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>) -> Self {
        PeerPolicy {
            allow,
            deny,
            ..Self::default()
        }
    }

    /// Refuses the relay host's own addresses (relayed, advertised and
    /// listen IPs) like a built-in range: a client must not reach the
    /// relay's own services, unless the operator's allow list names them.
    /// The relayed addresses declared with
    /// [`PeerPolicy::add_relay_address`] stay reachable on the ports of
    /// live allocations.
    pub fn deny_own(&mut self, ips: impl IntoIterator<Item = IpAddr>) {
        for ip in ips {
            let net = IpNet::from(canonical(ip));
            if !ip.is_unspecified() && !self.builtin.contains(&net) {
                self.builtin.push(net);
            }
        }
    }

    /// Replaces the host's interface addresses, refused like the built-in
    /// ranges (unless allowed) by this policy and every clone of it.
    pub fn set_host_addresses(&self, ips: impl IntoIterator<Item = IpAddr>) {
        let ips = ips
            .into_iter()
            .filter(|ip| !ip.is_unspecified())
            .map(canonical)
            .collect();
        *self.host.write().unwrap_or_else(|e| e.into_inner()) = ips;
    }

    /// Whether `ip` is one of the host's interface addresses as last set.
    pub fn is_host_address(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.host
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&ip)
    }

    /// Adds loopback (127.0.0.0/8, ::1) to the allow list, for tests.
    pub fn allow_loopback(&mut self) {
        self.allow.push("127.0.0.0/8".parse().expect("literal"));
        self.allow.push("::1/128".parse().expect("literal"));
    }

    /// Declares one of the relay's relayed addresses (one per family): as
    /// a peer it is reachable on the ports of live allocations only
    /// ([`Verdict::RelayedPortsOnly`]), and datagrams for it are sent to
    /// `local` (so two clients of one relay behind a 1:1 NAT reach each
    /// other without the NAT having to hairpin). An unspecified `local`
    /// (relay_ip 0.0.0.0 or ::) means loopback.
    pub fn add_relay_address(&mut self, advertised: IpAddr, local: IpAddr) {
        let local = match canonical(local) {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let a = RelayAddress {
            advertised: canonical(advertised),
            local,
        };
        if !self.relay.contains(&a) {
            self.relay.push(a);
        }
    }

    /// The relayed addresses declared with [`PeerPolicy::add_relay_address`].
    pub fn relay_addresses(&self) -> &[RelayAddress] {
        &self.relay
    }

    /// Whether some relayed address is reached at a local address other
    /// than the advertised one (1:1 NAT, or a wildcard relay_ip).
    pub fn translates(&self) -> bool {
        self.relay.iter().any(|a| a.advertised != a.local)
    }

    /// Where to send a datagram for `peer`, one of our own relayed
    /// addresses: its local address, same port. Other peers unchanged.
    pub fn local_of(&self, peer: SocketAddr) -> SocketAddr {
        let ip = canonical(peer.ip());
        match self.relay.iter().find(|a| a.advertised == ip) {
            Some(a) => SocketAddr::new(a.local, peer.port()),
            None => peer,
        }
    }

    /// The advertised address a datagram from `local` (the local address
    /// of one of our relayed addresses, see [`PeerPolicy::local_of`])
    /// came from, if it is one.
    pub fn advertised_of(&self, local: IpAddr) -> Option<IpAddr> {
        let ip = canonical(local);
        self.relay
            .iter()
            .find(|a| a.local == ip && a.advertised != a.local)
            .map(|a| a.advertised)
    }

    /// Which ports of `ip` a client may send to (and receive from).
    pub fn verdict(&self, ip: IpAddr) -> Verdict {
        let ip = canonical(ip);
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return Verdict::Refused;
        }
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return Verdict::Allowed;
        }
        if self.relay.iter().any(|a| a.advertised == ip) {
            return Verdict::RelayedPortsOnly;
        }
        if self.builtin.iter().any(|n| n.contains(&ip)) || self.is_host_address(ip) {
            return Verdict::Refused;
        }
        Verdict::Allowed
    }

    /// True if a client may send to (and receive from) every port of `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.verdict(ip) == Verdict::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn default_refuses_special_ranges() {
        let p = PeerPolicy::default();
        for bad in sotto_addr::examples::SPECIAL {
            assert!(!p.permits(ip(bad)), "{bad} should be refused");
        }
        for good in sotto_addr::examples::PUBLIC {
            assert!(p.permits(ip(good)), "{good} should be allowed");
        }
    }

    #[test]
    fn operator_lists_take_precedence() {
        let mut p = PeerPolicy::new(
            vec!["10.0.0.0/24".parse().unwrap()],
            vec!["8.8.8.0/24".parse().unwrap()],
        );
        assert!(p.permits(ip("10.0.0.5")));
        assert!(!p.permits(ip("10.0.1.5")));
        assert!(!p.permits(ip("8.8.8.8")));
        assert!(!p.permits(ip("127.0.0.1")));
        p.allow_loopback();
        assert!(p.permits(ip("127.0.0.1")));
        assert!(p.permits(ip("::1")));
        assert!(p.permits(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn own_addresses_are_refused_unless_allowed() {
        let mut p = PeerPolicy::new(vec!["198.18.0.0/15".parse().unwrap()], vec![]);
        p.deny_own([ip("8.8.4.4"), ip("2606:4700::1"), ip("198.18.0.1")]);
        assert!(!p.permits(ip("8.8.4.4")));
        assert!(!p.permits(ip("::ffff:8.8.4.4")));
        assert!(!p.permits(ip("2606:4700::1")));
        assert!(p.permits(ip("8.8.4.5")));
        // The operator's allow list still wins.
        assert!(p.permits(ip("198.18.0.1")));
    }

    /// The relay's own relayed address is a peer on relayed ports only
    /// (checked by the core), its other own addresses on no port; the
    /// operator's lists still win.
    #[test]
    fn own_relayed_addresses_are_for_relayed_ports_only() {
        let mut p = PeerPolicy::new(
            vec!["5.6.7.0/24".parse().unwrap()],
            vec!["9.9.9.9/32".parse().unwrap()],
        );
        p.add_relay_address(ip("1.2.3.4"), ip("127.0.0.1"));
        p.add_relay_address(ip("2606:4700::1"), ip("::"));
        p.add_relay_address(ip("9.9.9.9"), ip("9.9.9.9"));
        p.add_relay_address(ip("5.6.7.8"), ip("5.6.7.8"));
        p.deny_own([
            ip("1.2.3.4"),
            ip("127.0.0.1"),
            ip("8.8.4.4"),
            ip("2606:4700::1"),
        ]);
        p.set_host_addresses([ip("1.2.3.4")]);
        assert_eq!(p.verdict(ip("1.2.3.4")), Verdict::RelayedPortsOnly);
        assert_eq!(p.verdict(ip("::ffff:1.2.3.4")), Verdict::RelayedPortsOnly);
        assert_eq!(p.verdict(ip("2606:4700::1")), Verdict::RelayedPortsOnly);
        assert!(!p.permits(ip("1.2.3.4")), "not every port");
        assert_eq!(p.verdict(ip("8.8.4.4")), Verdict::Refused);
        assert_eq!(p.verdict(ip("127.0.0.1")), Verdict::Refused);
        assert_eq!(p.verdict(ip("9.9.9.9")), Verdict::Refused, "deny wins");
        assert_eq!(p.verdict(ip("5.6.7.8")), Verdict::Allowed, "allow wins");
        // Sent to the local address (no NAT hairpin), answers mapped back.
        let a: SocketAddr = "1.2.3.4:40000".parse().unwrap();
        assert_eq!(p.local_of(a), "127.0.0.1:40000".parse().unwrap());
        let v6: SocketAddr = "[2606:4700::1]:40000".parse().unwrap();
        assert_eq!(p.local_of(v6), "[::1]:40000".parse().unwrap());
        let other: SocketAddr = "1.2.3.5:40000".parse().unwrap();
        assert_eq!(p.local_of(other), other);
        assert!(p.translates());
        assert_eq!(p.advertised_of(ip("127.0.0.1")), Some(ip("1.2.3.4")));
        assert_eq!(p.advertised_of(ip("::1")), Some(ip("2606:4700::1")));
        assert_eq!(p.advertised_of(ip("9.9.9.9")), None, "not translated");
        assert_eq!(p.advertised_of(ip("1.2.3.4")), None);
    }

    #[test]
    fn host_addresses_are_refused_in_every_clone_and_replaced() {
        let p = PeerPolicy::new(vec!["198.18.0.0/15".parse().unwrap()], vec![]);
        let core = p.clone();
        assert!(core.permits(ip("8.8.4.4")));
        p.set_host_addresses([ip("8.8.4.4"), ip("2606:4700::1"), ip("198.18.0.1")]);
        for own in ["8.8.4.4", "::ffff:8.8.4.4", "2606:4700::1"] {
            assert!(!core.permits(ip(own)), "{own}");
            assert!(core.is_host_address(ip(own)), "{own}");
        }
        assert!(core.permits(ip("198.18.0.1")), "the allow list wins");
        // A refresh (SIGHUP) replaces the list: a removed address is a peer again.
        p.set_host_addresses([ip("1.1.1.1")]);
        assert!(core.permits(ip("8.8.4.4")));
        assert!(!core.permits(ip("1.1.1.1")));
    }
}
