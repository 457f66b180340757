//! ZRTP key agreement (RFC 6189) as a sans-IO endpoint.
//!
//! [`Endpoint`] runs one stream's handshake: Hello/HelloACK discovery,
//! Commit (with contention), DHPart1/DHPart2 and Confirm1/Confirm2/Conf2ACK,
//! or multistream mode keyed from an earlier session. On success it emits
//! [`Event::Secure`] with the SAS and the SRTP master keys and salts of both
//! directions. Interoperability is checked against bzrtp (Linphone) in
//! `engine/tests/zrtp_*.rs`.
//!
//! ```
//! use sotto_engine::zrtp::{Config, Endpoint, Event, Role, ZidCache};
//! use std::time::Instant;
//!
//! let now = Instant::now();
//! let mut alice = Endpoint::new(Config::new(Role::Initiator), ZidCache::new());
//! let mut bob = Endpoint::new(Config::new(Role::Responder), ZidCache::new());
//! alice.start(now);
//! bob.start(now);
//! for _ in 0..20 {
//!     while let Some(p) = alice.poll_transmit() { let _ = bob.handle_input(now, &p); }
//!     while let Some(p) = bob.poll_transmit() { let _ = alice.handle_input(now, &p); }
//! }
//! let sas = |e: &mut Endpoint| loop {
//!     match e.poll_event() {
//!         Some(Event::Secure(info)) => break info.sas,
//!         Some(_) => continue,
//!         None => panic!("not secure"),
//!     }
//! };
//! assert_eq!(sas(&mut alice), sas(&mut bob));
//! ```

pub mod algo;
pub mod cache;
mod config;
pub mod crypto;
mod dh;
pub mod endpoint;
pub mod error;
mod event;
pub mod hello_hash;
mod keys;
pub mod message;
pub mod packet;
mod pgp_words;
pub mod sas;
pub mod timer;

pub use algo::{AuthTagAlgo, CipherAlgo, HashAlgo, KeyAgreement, Policy, SasAlgo, Suite};
pub use cache::{CacheEntry, CacheError, ZidCache};
pub use endpoint::{Config, Endpoint, Event, Failure, Role, SecureInfo, SessionKey, Stats};
pub use error::{Error, ProtocolError};
pub use hello_hash::HelloHash;
pub use keys::SrtpSecrets;
pub use message::Zid;

/// Fuzz entry point for the packet and message parsers.
pub fn fuzz_parse(data: &[u8]) {
    let _ = message::fuzz_parse(data);
}

/// Fuzz entry point for the state machine: the input is split into
/// datagrams (2-byte big-endian length prefixes) and fed, after a real
/// Hello exchange prefix, to a responder and an initiator.
pub fn fuzz_endpoint(data: &[u8]) {
    let now = std::time::Instant::now();
    let mut eps = [
        Endpoint::new(Config::new(Role::Responder), ZidCache::new()),
        Endpoint::new(Config::new(Role::Initiator), ZidCache::new()),
    ];
    for ep in eps.iter_mut() {
        ep.start(now);
    }
    let mut rest = data;
    let mut i = 0usize;
    while rest.len() >= 2 {
        let n = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let (d, r) = rest[2..].split_at(n);
        let ep = &mut eps[i % 2];
        let _ = ep.handle_input(now, d);
        ep.handle_timeout(now + std::time::Duration::from_millis(10 * i as u64));
        while ep.poll_transmit().is_some() {}
        while ep.poll_event().is_some() {}
        rest = r;
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuzz_entry_points_take_random_input() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for len in (0..2000usize).step_by(7) {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            super::fuzz_parse(&data);
            super::fuzz_endpoint(&data);
        }
    }
}
