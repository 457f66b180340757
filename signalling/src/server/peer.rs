//! Who a request comes from: the socket's peer, or behind trusted proxies
//! the rightmost untrusted hop of `X-Forwarded-For` or `Forwarded`
//! (RFC 7239), keyed for limits by address (IPv4) or /64 (IPv6).

use std::net::{IpAddr, Ipv6Addr};

use axum::http::HeaderMap;
use serde::Deserialize;

/// An address block, `192.0.2.0/24` or `2001:db8::/32` (a bare address
/// is the block of that address alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    len: u8,
}

impl Cidr {
    /// Parses `addr/len` or `addr`; host bits set are an error.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let net = unmap(addr.trim().parse::<IpAddr>().map_err(|e| e.to_string())?);
        let max = if net.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("prefix length {l:?} is not 0..={max}"))?,
            None => max,
        };
        let cidr = Self { net, len };
        if mask(net, len) != net {
            return Err(format!("{text} has bits set past /{len}"));
        }
        Ok(cidr)
    }

    /// Whether `ip` is in the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = unmap(ip);
        ip.is_ipv4() == self.net.is_ipv4() && mask(ip, self.len) == self.net
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.len)
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & m))
        }
    }
}

/// The key limits count a client under: its IPv4 address, or its IPv6
/// /64 (one subscriber's usual allocation, which it can draw addresses
/// from at will).
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match unmap(ip) {
        IpAddr::V6(v6) => mask(IpAddr::V6(v6), 64),
        v4 => v4,
    }
}

/// Which header trusted proxies name the client in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …` (each proxy appends its peer).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

/// The client's address: the socket's `peer` unless it is a trusted
/// proxy, and then the rightmost hop of `header` that is not a trusted
/// proxy (hops to its left were written by whoever sent the request, and
/// prove nothing). A hop that is not an address (`unknown`, an obfuscated
/// name) ends the walk at the trusted proxy that wrote it.
pub fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[Cidr],
    header: ForwardedHeader,
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let name = match header {
        ForwardedHeader::XForwardedFor => "x-forwarded-for",
        ForwardedHeader::Forwarded => "forwarded",
    };
    // Split the raw bytes: a client may put non-ASCII bytes in the part
    // it writes, and that must not void the hops the proxies appended.
    let mut hops: Vec<&[u8]> = Vec::new();
    for value in headers.get_all(name) {
        hops.extend(value.as_bytes().split(|b| *b == b','));
    }
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(hop) = std::str::from_utf8(hop) else {
            return client;
        };
        let parsed = match header {
            ForwardedHeader::XForwardedFor => parse_node(hop),
            ForwardedHeader::Forwarded => hop
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, v)| parse_node(v.trim().trim_matches('"'))),
        };
        let Some(ip) = parsed else {
            return client;
        };
        client = ip;
        if !is_trusted(ip) {
            return ip;
        }
    }
    client
}

/// `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(unmap(ip));
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        return inside.parse::<Ipv6Addr>().ok().map(|v6| unmap(v6.into()));
    }
    let (host, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_contain() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.1.2.3")));
        assert!(c.contains(ip("::ffff:10.1.2.3")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(!c.contains(ip("::a00:1")));
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("192.0.2.1")));
        for bad in ["10.0.0.1/8", "10.0.0.0/33", "x/8", "::/129", ""] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(ip_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            ip_key(ip("2001:db8:1:2:bbbb::9")),
            ip_key(ip("2001:db8:1:2::1"))
        );
        assert_ne!(ip_key(ip("2001:db8:1:3::1")), ip_key(ip("2001:db8:1:2::1")));
        assert_eq!(ip_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(ip_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop_behind_trusted_proxies() {
        let trusted = [
            Cidr::parse("127.0.0.0/8").unwrap(),
            Cidr::parse("10.0.0.0/8").unwrap(),
        ];
        let xff = |v: &[&str]| {
            let mut h = HeaderMap::new();
            for v in v {
                h.append("x-forwarded-for", v.parse().unwrap());
            }
            h
        };
        let x = ForwardedHeader::XForwardedFor;
        let proxy = ip("127.0.0.1");
        // Not from a trusted proxy: the header is anyone's to write.
        let h = xff(&["198.51.100.1"]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), &h, &trusted, x),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(proxy, &h, &trusted, x), ip("198.51.100.1"));
        // A client's own spoofed entries are to the left of what the proxy added.
        let h = xff(&["1.2.3.4, 198.51.100.1"]);
        assert_eq!(client_ip(proxy, &h, &trusted, x), ip("198.51.100.1"));
        // Through two trusted proxies, over two header lines.
        let h = xff(&["1.2.3.4, 198.51.100.1", "10.0.0.5"]);
        assert_eq!(client_ip(proxy, &h, &trusted, x), ip("198.51.100.1"));
        assert_eq!(
            client_ip(proxy, &xff(&["[2001:db8::1]:4711"]), &trusted, x),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_ip(proxy, &xff(&["198.51.100.1:4711"]), &trusted, x),
            ip("198.51.100.1")
        );
        // Bytes a client put in its own part do not void what the proxy
        // appended (before, the whole header was dropped, and the request
        // was charged to the proxy's own address).
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            axum::http::HeaderValue::from_bytes(b"\xff, 198.51.100.1").unwrap(),
        );
        assert_eq!(client_ip(proxy, &h, &trusted, x), ip("198.51.100.1"));
        // Garbage or nothing: the last trusted hop is all that is known.
        assert_eq!(client_ip(proxy, &xff(&["unknown"]), &trusted, x), proxy);
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted, x), proxy);
        assert_eq!(
            client_ip(proxy, &xff(&["1.2.3.4, garbage, 10.0.0.5"]), &trusted, x),
            ip("10.0.0.5")
        );
        // RFC 7239.
        let mut h = HeaderMap::new();
        h.append(
            "forwarded",
            "for=1.2.3.4, for=\"[2001:db8:cafe::17]:4711\";proto=https"
                .parse()
                .unwrap(),
        );
        let f = ForwardedHeader::Forwarded;
        assert_eq!(client_ip(proxy, &h, &trusted, f), ip("2001:db8:cafe::17"));
        // The header not configured is ignored.
        assert_eq!(client_ip(proxy, &h, &trusted, x), proxy);
    }
}
