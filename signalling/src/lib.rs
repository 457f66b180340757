//! `sotto-signalling`: the signalling wire protocol, client and server.
//!
//! - [`protocol`]: typed, versioned JSON frames and the call [`protocol::Envelope`].
//! - [`seal`]: HPKE sealing and Ed25519 signing of call payloads, replay guard.
#![forbid(unsafe_code)]

pub mod error;
pub mod protocol;
pub mod seal;
pub mod util;
