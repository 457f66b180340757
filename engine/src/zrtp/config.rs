//! How an endpoint is configured: its role, policy and the keys a
//! multistream session starts from.

use super::algo::{HashAlgo, Policy};
use super::crypto::random;
use super::hello_hash::HelloHash;
use super::message::Zid;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};
use zeroize::Zeroize;

/// Multistream Commit nonces one ZRTPSess has seen, at most this many: far
/// more streams than a call has. Beyond it no nonce can be shown unused,
/// so every further multistream Commit is refused as a reuse.
pub(crate) const MAX_SESSION_NONCES: usize = 256;

/// Which side sends the Commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends Commit (and DHPart2, Confirm2).
    Initiator,
    /// Answers a Commit (DHPart1, Confirm1, Conf2ACK).
    Responder,
}

impl Role {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Initiator => "initiator",
            Role::Responder => "responder",
        }
    }
}

/// Keys a multistream session is derived from (§4.4.3): the first
/// stream's ZRTPSess, its hash and the peer it was agreed with, and the
/// Commit nonces used under it so far, shared by every clone (every
/// stream of the call).
#[derive(Clone, Zeroize)]
pub struct SessionKey {
    #[zeroize(skip)]
    pub(crate) hash: HashAlgo,
    #[zeroize(skip)]
    pub(crate) peer_zid: Zid,
    #[zeroize(skip)]
    pub(crate) sas: String,
    pub(crate) zrtp_sess: Vec<u8>,
    #[zeroize(skip)]
    pub(crate) nonces: Arc<SessionNonces>,
    /// The first stream had a cache mismatch whose SAS the user had not
    /// verified when this key was handed out: a stream keyed from it is
    /// no better authenticated, so it must not claim "verified" either.
    #[zeroize(skip)]
    pub(crate) cache_mismatch: bool,
}

/// The multistream Commit nonces used under one ZRTPSess (§4.4.3, §5.4: a
/// nonce is used once per ZRTPSess, Error 0x80 otherwise), by any stream
/// in either direction; at most [`MAX_SESSION_NONCES`].
#[derive(Debug, Default)]
pub(crate) struct SessionNonces(Mutex<HashSet<[u8; 16]>>);

impl SessionNonces {
    /// Records `nonce`; false if it was used before or no more fit.
    pub(crate) fn use_once(&self, nonce: [u8; 16]) -> bool {
        // The set stays whole whatever panicked while holding it.
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        seen.len() < MAX_SESSION_NONCES && seen.insert(nonce)
    }
}

impl Drop for SessionKey {
    fn drop(&mut self) {
        self.zrtp_sess.zeroize();
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKey")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// How an endpoint behaves.
#[derive(Clone)]
pub struct Config {
    /// Whether we try to send the Commit.
    pub role: Role,
    /// When initiator, wait for the peer's HelloACK before committing
    /// (the RFC's sequence) instead of sending Commit in place of HelloACK
    /// as soon as the peer's Hello arrives.
    pub commit_after_hello_ack: bool,
    /// Algorithms offered and accepted.
    pub policy: Policy,
    /// Our SSRC, put in every packet header.
    pub ssrc: u32,
    /// Client identifier in our Hello.
    pub client_id: [u8; 16],
    /// The peer's Hello hash from signalling (§8.1), if known.
    pub peer_hello_hash: Option<HelloHash>,
    /// Auxiliary shared secret (§4.3), if the application has one.
    pub aux_secret: Option<Vec<u8>>,
    /// Key this stream in multistream mode from an established session.
    pub multistream: Option<SessionKey>,
    /// Cache expiration interval sent in our Confirm (§5.7), in seconds:
    /// how long the new retained secret may be kept. `u32::MAX` (the
    /// default) is forever, 0 is not at all; the smaller of both sides'
    /// values applies. Past it, the secret counts as absent (not as a
    /// mismatch): see [`super::ZidCache::get_live`]. Each side dates it by
    /// its own clock, so a call placed within the two clocks' difference
    /// of the expiry finds the secret on one side only and warns of a
    /// cache mismatch, as RFC 6189 has it.
    pub cache_expiration: u32,
    /// An `Instant` and the wall-clock time it was: how the endpoint, which
    /// is only ever given `Instant`s, tells the date of its input, to judge
    /// and set retained secrets' expiry. [`Config::new`] reads both clocks
    /// once; the endpoint never reads a clock.
    pub wall_clock: (Instant, SystemTime),
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("role", &self.role)
            .field("commit_after_hello_ack", &self.commit_after_hello_ack)
            .field("policy", &self.policy)
            .field("ssrc", &self.ssrc)
            .field("peer_hello_hash", &self.peer_hello_hash)
            .field(
                "aux_secret",
                &self.aux_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("multistream", &self.multistream)
            .field("cache_expiration", &self.cache_expiration)
            .field("wall_clock", &self.wall_clock)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Defaults for `role`: full policy, a random SSRC, the wall clock
    /// read now.
    pub fn new(role: Role) -> Self {
        Config {
            role,
            commit_after_hello_ack: false,
            policy: Policy::default(),
            ssrc: u32::from_be_bytes(random()),
            client_id: *b"Sotto ZRTP 0.1  ",
            peer_hello_hash: None,
            aux_secret: None,
            multistream: None,
            cache_expiration: u32::MAX,
            wall_clock: (Instant::now(), SystemTime::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_nonces_are_used_once_and_bounded() {
        let nonces = SessionNonces::default();
        let nonce = |i: usize| {
            let mut n = [0u8; 16];
            n[..8].copy_from_slice(&(i as u64).to_be_bytes());
            n
        };
        assert!(nonces.use_once(nonce(0)));
        assert!(!nonces.use_once(nonce(0)), "used twice");
        for i in 1..MAX_SESSION_NONCES {
            assert!(nonces.use_once(nonce(i)));
        }
        assert!(
            !nonces.use_once(nonce(MAX_SESSION_NONCES)),
            "past the bound"
        );
        assert_eq!(nonces.0.lock().unwrap().len(), MAX_SESSION_NONCES);
    }
}
