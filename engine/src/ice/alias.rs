//! The names `rtc-ice` knows remote addresses by.
//!
//! `rtc-ice` 0.21.1 takes every datagram whose peer port is 5353 for mDNS
//! (`handle_read` in `agent/agent_proto.rs`) and, with mDNS disabled, drops
//! it. A peer whose address is on that port (a host socket, or a NAT or
//! relay mapping that happened to land there) would never connect. So the
//! session presents every remote address on port 5353 to the agent as the
//! same IP on port 0, and maps it back wherever the agent's view meets the
//! network: remote candidates handed to it ([`candidate`]), datagrams fed
//! to it ([`to_agent`]), addresses it reports or writes to ([`from_agent`])
//! and the mapped address its answers tell the peer ([`answer_to`]).
//!
//! Port 0 is free for this: no UDP datagram comes from it and none can be
//! sent to it, so a remote candidate on it is refused and a datagram from
//! it dropped. The mapping is then one to one and needs no state.

use super::IceError;
use rtc_ice::candidate::{Candidate, unmarshal_candidate};
use rtc_ice::crypto::RTCCryptoProvider;
use rtc_stun::attributes::{ATTR_FINGERPRINT, ATTR_MESSAGE_INTEGRITY, ATTR_XORMAPPED_ADDRESS};
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::{BINDING_SUCCESS, Message, Setter};
use rtc_stun::xoraddr::XorMappedAddress;
use std::net::SocketAddr;

/// The port `rtc-ice` reserves for mDNS.
pub(super) const MDNS_PORT: u16 = 5353;
/// The port the agent knows [`MDNS_PORT`] by.
const ALIAS_PORT: u16 = 0;

/// The address the agent knows the real remote address `real` by; `None`
/// for one that cannot be real (port 0), whose datagrams are dropped.
pub(super) fn to_agent(real: SocketAddr) -> Option<SocketAddr> {
    match real.port() {
        ALIAS_PORT => None,
        MDNS_PORT => Some(SocketAddr::new(real.ip(), ALIAS_PORT)),
        _ => Some(real),
    }
}

/// The real address behind a remote address the agent uses.
pub(super) fn from_agent(seen: SocketAddr) -> SocketAddr {
    match seen.port() {
        ALIAS_PORT => SocketAddr::new(seen.ip(), MDNS_PORT),
        _ => seen,
    }
}

/// Parses a remote candidate line (without `candidate:`) for the agent:
/// on port 5353 it gets port 0, and one on port 0 is refused.
pub(super) fn candidate(line: &str) -> Result<Candidate, IceError> {
    let bad = |e: &dyn std::fmt::Display| IceError::BadCandidate(e.to_string());
    let c = unmarshal_candidate(line).map_err(|e| bad(&e))?;
    match c.port() {
        ALIAS_PORT => Err(bad(&"port 0")),
        MDNS_PORT => {
            // The port is the sixth field (RFC 8839 §5.1), as the parser reads it.
            let mut fields: Vec<&str> = line.split_whitespace().collect();
            fields[5] = "0";
            unmarshal_candidate(&fields.join(" ")).map_err(|e| bad(&e))
        }
        _ => Ok(c),
    }
}

/// A datagram the agent wrote to `real`, fixed for the wire: a Binding
/// success response tells the peer the address its request came from
/// (XOR-MAPPED-ADDRESS, RFC 8445 §7.3.1), and the agent wrote the alias
/// there. It is rebuilt with the real address and signed again with our
/// password `pwd`, which signed it (one that it did not sign goes as it is).
pub(super) fn answer_to(
    real: SocketAddr,
    data: Vec<u8>,
    pwd: &str,
    provider: &dyn RTCCryptoProvider,
) -> Vec<u8> {
    if real.port() != MDNS_PORT || data.get(..2) != Some(&[0x01, 0x01][..]) {
        return data;
    }
    let mut m = Message {
        raw: data,
        ..Message::default()
    };
    let ours = m.decode().is_ok()
        && MessageIntegrity::check(&mut m, pwd.as_bytes(), provider.crypto()).is_ok();
    if !ours {
        return m.raw;
    }
    let mut out = Message::new();
    let mut fixed = || -> Result<(), rtc_shared::error::Error> {
        // `Message` as a setter copies the transaction ID.
        out.build(&[Box::new(BINDING_SUCCESS), Box::new(m.clone())])?;
        for a in &m.attributes.0 {
            match a.typ {
                ATTR_XORMAPPED_ADDRESS => XorMappedAddress {
                    ip: real.ip(),
                    port: real.port(),
                }
                .add_to(&mut out)?,
                ATTR_MESSAGE_INTEGRITY | ATTR_FINGERPRINT => {}
                t => out.add(t, &a.value),
            }
        }
        MessageIntegrity::new_short_term_integrity_with_provider(pwd.to_owned(), provider.crypto())
            .add_to(&mut out)?;
        FINGERPRINT.add_to(&mut out)
    };
    match fixed() {
        Ok(()) => out.raw,
        Err(_) => m.raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn port_5353_is_port_0_to_the_agent_and_back() {
        for real in ["10.0.0.2:5353", "[2001:db8::1]:5353"].map(sa) {
            let seen = to_agent(real).unwrap();
            assert_eq!((seen.ip(), seen.port()), (real.ip(), 0));
            assert_eq!(from_agent(seen), real);
        }
        for real in ["10.0.0.2:5354", "[2001:db8::1]:1"].map(sa) {
            assert_eq!(to_agent(real), Some(real));
            assert_eq!(from_agent(real), real);
        }
        assert_eq!(to_agent(sa("10.0.0.2:0")), None);
    }

    #[test]
    fn candidates_on_5353_get_the_alias_and_on_0_are_refused() {
        let c = candidate("1 1 udp 2130706431 10.0.0.2 5353 typ srflx raddr 10.0.0.9 rport 5353")
            .unwrap();
        assert_eq!(c.addr(), sa("10.0.0.2:0"));
        assert_eq!(c.related_address().unwrap().port, 5353);
        let c = candidate("1 1 udp 2130706431 10.0.0.2 5000 typ host").unwrap();
        assert_eq!(c.addr(), sa("10.0.0.2:5000"));
        assert!(matches!(
            candidate("1 1 udp 2130706431 10.0.0.2 0 typ host"),
            Err(IceError::BadCandidate(_))
        ));
    }
}
