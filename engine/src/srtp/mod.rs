//! SRTP and SRTCP (RFC 3711, RFC 6188, RFC 7714) as a sans-IO context keyed
//! from outside: ZRTP (or anything else) hands over a master key and salt
//! per direction, the media path protects and unprotects packets in place.
//!
//! Profiles: AES_CM_128_HMAC_SHA1_80 and _32, AES_256_CM_HMAC_SHA1_80 and
//! _32, AEAD_AES_128_GCM and AEAD_AES_256_GCM. Per SSRC the context keeps the
//! rollover counter (index estimation across wrap and reordering), a
//! replay window (64 packets by default, up to 32768), the SRTCP index and
//! the SRTCP replay window (128 packets, as libsrtp2's).
//! A stream's state changes only after its packet has authenticated.
//!
//! Built over `ring` (AES-GCM) and RustCrypto (`aes` with AES-NI for the
//! counter mode, the `sha1` compression function with SHA-NI for a
//! precomputed HMAC): no allocation per packet, key schedules expanded once.
//! Session keys and salts are zeroized on drop; `ring`'s GCM key schedule
//! is the one copy this module cannot wipe.
//!
//! ```
//! use sotto_engine::srtp::{Error, Profile, SrtpContext};
//!
//! # fn main() -> Result<(), Error> {
//! // One context per direction, from that direction's master key and salt
//! // (ZRTP: srtpkeyI/srtpsaltI for the initiator's media, R for the responder's).
//! let (key, salt) = ([7u8; 16], [9u8; 14]);
//! let mut sender = SrtpContext::new(Profile::AesCm128HmacSha1_80, &key, &salt)?;
//! let mut receiver = SrtpContext::new(Profile::AesCm128HmacSha1_80, &key, &salt)?;
//!
//! let rtp = [0x80, 0, 0x12, 0x34, 0, 0, 0, 1, 0xca, 0xfe, 0xba, 0xbe, 1, 2, 3, 4];
//! let mut packet = Vec::with_capacity(1500); // room for the tag: no allocation
//! packet.extend_from_slice(&rtp);
//! sender.protect_rtp(&mut packet)?; // encrypts and appends the 10-byte tag
//! assert_eq!(packet.len(), rtp.len() + 10);
//! let srtp = packet.clone();
//! receiver.unprotect_rtp(&mut packet)?; // verifies, decrypts, strips the tag
//! assert_eq!(packet, rtp);
//! // The same SRTP packet again is refused, and counted.
//! assert_eq!(receiver.unprotect_rtp(&mut srtp.clone()), Err(Error::Replayed));
//! assert_eq!(receiver.stats().replays, 1);
//! # Ok(()) }
//! ```

mod aes_cm;
mod context;
mod crypto;
mod error;
mod fuzz;
mod header;
mod index;
mod profile;
mod replay;

pub use context::{
    Config, Event, MAX_PACKET_LEN, MAX_RETIRED_STREAMS, SRTCP_REPLAY_WINDOW, SrtpContext, Stats,
};
pub use error::{Error, PacketKind};
pub use fuzz::fuzz_unprotect;
pub use profile::Profile;
pub use replay::{MAX_REPLAY_WINDOW, MIN_REPLAY_WINDOW};
