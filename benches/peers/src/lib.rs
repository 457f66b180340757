//! `sotto-peers`: safe Rust wrappers over the independent implementations
//! Sotto is checked and measured against. Each peer sits behind a cargo
//! feature so that a crate links only the C libraries it needs.
//!
//! These are test and benchmark dependencies, never part of a product.

#[cfg(feature = "libsrtp2")]
pub mod libsrtp2;

#[cfg(feature = "bzrtp")]
pub mod bzrtp;

#[cfg(feature = "speexdsp")]
pub mod speexdsp;

#[cfg(feature = "speexdsp")]
pub mod speex_echo;
