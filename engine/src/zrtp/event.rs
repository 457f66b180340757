//! What an endpoint tells the application.

use super::algo::Suite;
use super::config::Role;
use super::error::ProtocolError;
use super::keys::SrtpSecrets;
use super::message::Zid;
use zeroize::Zeroizing;

/// What an application learns when the session is secure.
#[derive(Debug, Clone)]
pub struct SecureInfo {
    /// Our role in the exchange that succeeded.
    pub role: Role,
    /// The algorithms agreed.
    pub suite: Suite,
    /// The rendered SAS (the parent session's SAS for multistream).
    pub sas: String,
    /// The 32-bit SAS value (0 for multistream).
    pub sas_value: u32,
    /// Both sides had marked this peer's SAS verified and the cache
    /// matched.
    pub sas_verified: bool,
    /// A retained secret was expected but did not match.
    pub cache_mismatch: bool,
    /// SRTP master keys and salts for both directions.
    pub srtp: SrtpSecrets,
    /// Exported key (§4.5.2) for applications.
    pub exported_key: Zeroizing<Vec<u8>>,
    /// The peer's ZID.
    pub peer_zid: Zid,
}

impl SecureInfo {
    /// Our sending key and salt.
    pub fn local_key_salt(&self) -> (&[u8], &[u8]) {
        match self.role {
            Role::Initiator => (&self.srtp.initiator_key, &self.srtp.initiator_salt),
            Role::Responder => (&self.srtp.responder_key, &self.srtp.responder_salt),
        }
    }

    /// The SRTP profile these keys are for (§5.1.3, §5.1.4): see
    /// [`Suite::srtp_profile`].
    pub fn srtp_profile(&self) -> Option<crate::srtp::Profile> {
        self.suite.srtp_profile()
    }

    /// The peer's sending key and salt (what we decrypt with).
    pub fn remote_key_salt(&self) -> (&[u8], &[u8]) {
        match self.role {
            Role::Initiator => (&self.srtp.responder_key, &self.srtp.responder_salt),
            Role::Responder => (&self.srtp.initiator_key, &self.srtp.initiator_salt),
        }
    }
}

/// Why a session ended without keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// We detected a violation and sent this Error.
    Local(ProtocolError),
    /// The peer sent an Error with this §5.9 code.
    Peer(u32),
    /// Retransmissions ran out (Hello: the peer may not speak ZRTP).
    Timeout,
    /// The peer's Hello does not hash to the signalled zrtp-hash.
    HelloHashMismatch,
}

/// Something the application should know.
#[derive(Debug, Clone)]
pub enum Event {
    /// The peer's Hello arrived and names this ZID.
    PeerHello {
        /// The peer's ZID.
        zid: Zid,
    },
    /// The peer's Hello does not match the signalled zrtp-hash (§8.1); the
    /// handshake stops, or the session ends if the hash was learnt after it
    /// became secure. A [`Event::Failed`] follows.
    HelloHashMismatch,
    /// We held retained secrets for this peer and they did not match (or
    /// our entry was corrupt): the SAS must be compared (§4.3.2).
    CacheMismatch {
        /// The peer's ZID.
        peer_zid: Zid,
    },
    /// Keys are ready.
    Secure(Box<SecureInfo>),
    /// The handshake failed.
    Failed(Failure),
    /// The peer asked to go clear; we refused (policy: never clear).
    GoClearRefused,
    /// The peer relayed a SAS (PBX); we acknowledged and ignored it.
    SasRelayIgnored,
}
