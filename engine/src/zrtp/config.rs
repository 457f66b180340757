//! How an endpoint is configured: its role, policy and the keys a
//! multistream session starts from.

use super::algo::{HashAlgo, Policy};
use super::crypto::random;
use super::hello_hash::HelloHash;
use super::message::Zid;
use std::time::{Instant, SystemTime};
use zeroize::Zeroize;

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
/// stream's ZRTPSess, its hash and the peer it was agreed with.
#[derive(Clone, Zeroize)]
pub struct SessionKey {
    #[zeroize(skip)]
    pub(crate) hash: HashAlgo,
    #[zeroize(skip)]
    pub(crate) peer_zid: Zid,
    #[zeroize(skip)]
    pub(crate) sas: String,
    pub(crate) zrtp_sess: Vec<u8>,
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
    /// mismatch): see [`super::ZidCache::get_live`].
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
