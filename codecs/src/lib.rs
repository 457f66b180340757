//! `sotto-codecs`: codecs, resampling, sample formats and WAV I/O.
//!
//! The jitter buffer and the engine talk to codecs only through the
//! [`Encoder`] and [`Decoder`] traits, so a codec can be added without
//! touching them. Two codecs implement the traits: [`opus`] (the one Sotto
//! uses on the wire) and [`g711`] (mu-law, which proves the traits are
//! codec-agnostic).
//!
//! Video has its own pair of traits, [`VideoEncoder`] and
//! [`VideoDecoder`], over I420 pictures ([`VideoFrame`], in [`video`]);
//! [`vp8`] implements them with libvpx, tuned for real-time calls.
//!
//! PCM everywhere is interleaved signed 16-bit at the codec's own rate;
//! [`samples`] converts to and from `f32`, [`resample`] converts between
//! device rates and the codec rate ([`bridge`] does it for 10 ms mono
//! frames on an audio tick), [`resampled`] puts a decoder's output at a
//! higher rate (G.711 into the 48 kHz jitter buffer), and [`wav`] reads
//! and writes files.
//!
//! ```
//! use sotto_codecs::opus::{OpusConfig, OpusDecoder, OpusEncoder};
//! use sotto_codecs::{Decoder, Encoder};
//!
//! let mut enc = OpusEncoder::new(OpusConfig { fec: true, packet_loss_pct: 10, ..Default::default() })?;
//! let mut dec = OpusDecoder::new(48_000, 1)?;
//! let frame = vec![0i16; enc.frame_samples()]; // 20 ms at 48 kHz
//! let mut payload = Vec::new();
//! enc.encode(&frame, &mut payload)?;
//! assert_eq!(dec.decode(&payload)?.len(), 960);
//! // A lost packet: recover it from the next one's FEC, else conceal.
//! let pcm = match dec.decode_fec(&payload)? {
//!     Some(pcm) => pcm,
//!     None => dec.conceal(960)?,
//! };
//! assert_eq!(pcm.len(), 960);
//! # Ok::<(), sotto_codecs::CodecError>(())
//! ```
// Denied everywhere but `vp8`, the FFI boundary to libvpx.
#![deny(unsafe_code)]

pub mod bridge;
pub mod codec;
pub mod error;
pub mod g711;
pub mod opus;
pub mod resample;
pub mod resampled;
pub mod samples;
pub mod video;
// The FFI boundary to libvpx: the only module allowed `unsafe`, each block
// with a `// SAFETY:` note.
#[allow(unsafe_code)]
pub mod vp8;
pub mod wav;

pub use codec::{Decoder, Encoder, FrameDuration};
pub use error::CodecError;
pub use video::{EncodedVideo, VideoDecoder, VideoEncoder, VideoFrame};
