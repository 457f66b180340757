//! ICE (RFC 8445) over direct and TURN-relayed paths, as a sans-IO core.
//!
//! [`IceSession`] wraps `rtc-ice`'s agent for checks and nomination and
//! `rtc-turn`'s client for server-reflexive and relayed candidates. It owns
//! no socket: the driver hands it datagrams with the local socket they
//! arrived on and sends what [`IceSession::poll_transmit`] returns.
//! Candidates and credentials travel through [`Signaller`], so the engine
//! knows nothing of a particular signalling server.
//!
//! Two sessions connecting in memory, with virtual time:
//!
//! ```
//! use sotto_engine::ice::{IceConfig, IceSession};
//! use std::net::SocketAddr;
//! use std::time::{Duration, Instant};
//!
//! let mut now = Instant::now();
//! let (a_sock, b_sock): (SocketAddr, SocketAddr) = ("127.0.0.1:1000".parse().unwrap(), "127.0.0.1:2000".parse().unwrap());
//! let cfg = |controlling| IceConfig { controlling, ..IceConfig::default() };
//! let mut a = IceSession::new(now, cfg(true), &[a_sock]).unwrap();
//! let mut b = IceSession::new(now, cfg(false), &[b_sock]).unwrap();
//! for _ in 0..100 {
//!     now += Duration::from_millis(10);
//!     while let Some(m) = a.poll_signal() { b.handle_signal(now, m).unwrap(); }
//!     while let Some(m) = b.poll_signal() { a.handle_signal(now, m).unwrap(); }
//!     a.handle_timeout(now);
//!     b.handle_timeout(now);
//!     while let Some(t) = a.poll_transmit() { b.handle_input(now, t.to, t.local, &t.data); }
//!     while let Some(t) = b.poll_transmit() { a.handle_input(now, t.to, t.local, &t.data); }
//! }
//! assert_eq!(a.selected().unwrap().remote, b_sock);
//! assert_eq!(b.selected().unwrap().remote, a_sock);
//! ```

mod alias;
pub mod creds;
mod pace;
mod session;
mod signal;
mod turn;

pub use session::{
    IceConfig, IceEvent, IceSession, IceState, IceStats, SelectedPath, Transmit, TurnServer,
    host_addresses,
};
pub use signal::{SignalMessage, Signaller};

/// Errors from the ICE/TURN layer.
#[derive(Debug, thiserror::Error)]
pub enum IceError {
    /// The ICE agent or TURN client rejected an operation.
    #[error("ICE: {0}")]
    Agent(String),
    /// No selected candidate pair yet: media cannot be sent.
    #[error("no selected candidate pair")]
    NotConnected,
    /// A datagram was not well-formed STUN.
    #[error("malformed STUN: {0}")]
    Stun(String),
    /// A candidate line from signalling did not parse.
    #[error("bad remote candidate: {0}")]
    BadCandidate(String),
    /// A candidate message from signalling is longer than any well-formed
    /// one: its line (`what` = "line") or its ufrag (`what` = "ufrag").
    #[error("remote candidate {what} of {len} bytes (at most {max})")]
    CandidateTooLong {
        /// Which part: "line" or "ufrag".
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A remote candidate names an address no check may go to.
    #[error("remote candidate on {addr}: {why}")]
    ForbiddenAddress {
        /// The address.
        addr: std::net::IpAddr,
        /// What kind of address it is.
        why: &'static str,
    },
    /// The configuration cannot work.
    #[error("bad ICE configuration: {0}")]
    Config(String),
}

impl From<rtc_shared::error::Error> for IceError {
    fn from(e: rtc_shared::error::Error) -> Self {
        IceError::Agent(e.to_string())
    }
}

/// Decodes a STUN message fully (header, attributes, fingerprint layout). Never panics.
pub fn stun_peek(buf: &[u8]) -> Result<(), IceError> {
    if !rtc_stun::message::is_stun_message(buf) {
        return Err(IceError::Stun("not STUN".into()));
    }
    let mut m = rtc_stun::message::Message {
        raw: buf.to_vec(),
        ..Default::default()
    };
    m.decode().map_err(|e| IceError::Stun(e.to_string()))
}

/// Fuzz entry point for the STUN decoder and the session's inbound path.
pub fn fuzz_stun(data: &[u8]) {
    let _ = stun_peek(data);
    session::fuzz_session_input(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_peek_random_input() {
        let mut x: u64 = 0x0BAD_F00D_DEAD_BEEF;
        for len in 0..800 {
            let mut buf = vec![0u8; 20 + len % 100];
            for b in &mut buf {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            buf[0] = 0;
            buf[1] = 1;
            // Magic cookie, so the decoder goes past the header.
            buf[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
            let body = (buf.len() - 20) as u16 & !3;
            buf[2..4].copy_from_slice(&body.to_be_bytes());
            fuzz_stun(&buf);
        }
    }
}
