//! `sotto-jitter`: the audio jitter buffer and the tools to judge it.
#![forbid(unsafe_code)]

pub mod buffer;
pub mod config;
pub mod error;
pub mod estimator;
pub mod eval;
pub mod link;
pub mod packet;
pub mod packet_buffer;
pub mod pesq;
pub mod stats;
pub mod stretch;

pub use buffer::{JitterBuffer, Pulled, fuzz_insert_pull};
pub use config::JitterConfig;
pub use error::JitterError;
pub use packet::{DiscardReason, Event, Operation, Recovery, RtpPacket};
pub use stats::JitterStats;
