//! `sotto-codecs`: codecs, resampling, sample formats and WAV I/O.
//!
//! The jitter buffer and the engine talk to codecs only through the
//! [`Encoder`] and [`Decoder`] traits, so a codec can be added without
//! touching them. Two codecs implement the traits: [`opus`] (the one Sotto
//! uses on the wire) and [`g711`] (mu-law, which proves the traits are
//! codec-agnostic).
//!
//! PCM everywhere is interleaved signed 16-bit at the codec's own rate;
//! [`samples`] converts to and from `f32`, [`resample`] converts between
//! device rates and the codec rate, and [`wav`] reads and writes files.
#![forbid(unsafe_code)]

pub mod codec;
pub mod error;
pub mod g711;
pub mod opus;
pub mod resample;
pub mod samples;
pub mod wav;

pub use codec::{Decoder, Encoder, FrameDuration};
pub use error::CodecError;
