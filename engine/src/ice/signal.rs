//! What ICE sends through signalling, and the trait a signalling client implements.

/// One ICE message for the peer, carried by whatever signalling the app uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalMessage {
    /// Our ICE credentials, starting a session or an ICE restart (RFC 8445 §9).
    Offer {
        /// Username fragment.
        ufrag: String,
        /// Password.
        pwd: String,
    },
    /// Our credentials in reply to an [`SignalMessage::Offer`].
    Answer {
        /// Username fragment.
        ufrag: String,
        /// Password.
        pwd: String,
    },
    /// A trickled candidate (`a=candidate` value), tagged with the sender's
    /// ufrag so candidates of an older generation are ignored after a restart.
    Candidate {
        /// Sender's ufrag for this generation.
        ufrag: String,
        /// The candidate line, e.g. `1 1 udp 2130706431 127.0.0.1 5000 typ host`.
        candidate: String,
    },
}

/// Carries [`SignalMessage`]s to the peer; implemented by the app's signalling client.
pub trait Signaller: Send + 'static {
    /// Sends one message to the peer. Must not block.
    fn send(&mut self, msg: SignalMessage);
}
