//! Special-purpose IP addresses: the ranges of the IANA IPv4 and IPv6
//! Special-Purpose Address Registries (RFC 6890 and its updates), plus
//! well-known cloud metadata addresses. Nothing outside should be able to
//! make a Sotto server reach these: the relay refuses them as peers (the
//! coturn CVE-2020-26262 class), signald as push endpoints.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::LazyLock;

use ipnet::IpNet;

/// IPv4 special-purpose ranges, with why each is one.
pub const SPECIAL_V4: &[(&str, &str)] = &[
    ("0.0.0.0/8", "this network / unspecified"),
    ("10.0.0.0/8", "RFC 1918 private"),
    (
        "100.64.0.0/10",
        "CGNAT shared space (also Alibaba metadata 100.100.100.200)",
    ),
    ("127.0.0.0/8", "loopback"),
    (
        "169.254.0.0/16",
        "link-local (cloud metadata 169.254.169.254)",
    ),
    ("172.16.0.0/12", "RFC 1918 private"),
    (
        "192.0.0.0/24",
        "IETF protocol assignments (Oracle metadata 192.0.0.192)",
    ),
    ("192.0.2.0/24", "documentation TEST-NET-1"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "RFC 1918 private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation TEST-NET-2"),
    ("203.0.113.0/24", "documentation TEST-NET-3"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved and limited broadcast"),
];

/// IPv6 special-purpose ranges, with why each is one. IPv4-mapped and
/// NAT64 addresses are judged by the IPv4 address they embed instead
/// ([`canonical`]).
pub const SPECIAL_V6: &[(&str, &str)] = &[
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible (deprecated)"),
    ("100::/64", "discard-only"),
    ("2001::/32", "Teredo"),
    ("2001:10::/28", "ORCHID"),
    ("2001:db8::/32", "documentation"),
    ("2002::/16", "6to4"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing SIDs"),
    ("fc00::/7", "unique local (ULA; AWS metadata fd00:ec2::254)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
];

/// Every special-purpose range, parsed once.
pub fn special_ranges() -> &'static [IpNet] {
    static RANGES: LazyLock<Vec<IpNet>> = LazyLock::new(|| {
        SPECIAL_V4
            .iter()
            .chain(SPECIAL_V6)
            .map(|(net, _)| net.parse().expect("built-in ranges parse"))
            .collect()
    });
    &RANGES
}

/// Whether `ip`, or the IPv4 address it embeds, is in a special-purpose
/// range: not a public unicast address.
pub fn is_special(ip: IpAddr) -> bool {
    let ip = canonical(ip);
    special_ranges().iter().any(|n| n.contains(&ip))
}

/// Maps IPv4-mapped (`::ffff:a.b.c.d`) and NAT64 well-known-prefix
/// (`64:ff9b::a.b.c.d`, RFC 6052) addresses to the IPv4 address they reach.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let o = v6.octets();
                return IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            // NAT64 local-use prefix 64:ff9b:1::/48 (RFC 8215): embedded v4 at the end.
            if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
                let o = v6.octets();
                return IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// Example addresses for tests, here and in users of this crate (the
/// relay's peer policy): ones the table covers, from every range kind and
/// every embedding [`canonical`] sees through, and public ones it does not.
#[doc(hidden)]
pub mod examples {
    /// Special-purpose addresses.
    pub const SPECIAL: &[&str] = &[
        "127.0.0.1",
        "10.1.2.3",
        "172.31.255.255",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "0.1.2.3",
        "255.255.255.255",
        "224.0.0.251",
        "192.0.2.10",
        "198.51.100.1",
        "203.0.113.9",
        "192.0.0.192",
        "100.100.100.200",
        "::",
        "::1",
        "fe80::1",
        "fd00:ec2::254",
        "fc00::1",
        "ff02::1",
        "2001:db8::5",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::a00:1",
        "::127.0.0.1",
        "2002:c0a8:101::1",
    ];
    /// Public addresses, bare and embedded.
    pub const PUBLIC: &[&str] = &[
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_and_public_addresses() {
        for special in examples::SPECIAL {
            assert!(is_special(special.parse().unwrap()), "{special}");
        }
        for public in examples::PUBLIC {
            assert!(!is_special(public.parse().unwrap()), "{public}");
        }
    }
}
