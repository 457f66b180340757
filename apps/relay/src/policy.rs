//! Which peer addresses a client may reach through the relay.
//!
//! Safe by default (the coturn CVE-2020-26262 class): special-purpose
//! ranges ([`sotto_addr`]) are refused unless the operator allows them
//! explicitly.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use ipnet::IpNet;
use sotto_addr::canonical;

/// Peer address policy: explicit deny, then explicit allow, then the
/// built-in special-purpose ranges and this host's own addresses.
///
/// Clones share the host's interface addresses
/// ([`PeerPolicy::set_host_addresses`]), so a refresh on SIGHUP reaches
/// every core built from one policy.
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    builtin: Vec<IpNet>,
    /// Interface addresses, when the relay listens on a wildcard address
    /// (and so names none of them in its settings). Read only on the
    /// control path (CreatePermission, ChannelBind).
    host: Arc<RwLock<Vec<IpAddr>>>,
}

impl Default for PeerPolicy {
    fn default() -> Self {
        let builtin = sotto_addr::special_ranges().to_vec();
        PeerPolicy {
            allow: Vec::new(),
            deny: Vec::new(),
            builtin,
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
    /// relay's own services, or loop data through it, unless the
    /// operator's allow list names them.
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

    /// True if a client may send to (and receive from) `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return true;
        }
        !self.builtin.iter().any(|n| n.contains(&ip)) && !self.is_host_address(ip)
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
