//! `sotto-signalling`: the signalling wire protocol, client and server.
//!
//! - [`protocol`]: typed, versioned JSON frames and the call [`protocol::Envelope`].
//! - [`seal`]: HPKE sealing and Ed25519 signing of call payloads, replay guard.
//! - [`replay_file`]: the replay guard's memory kept in a file across restarts.
//! - [`store`]: SQLite/PostgreSQL storage of devices, sessions and queues.
//! - [`push`]: Web Push, UnifiedPush, APNs and FCM wakeups.
//! - [`turn`]: TURN REST credentials.
//! - [`server`]: the `sotto-signald` node; [`client`]: the device side.
#![forbid(unsafe_code)]

pub mod auth;
pub mod client;
pub mod config;
pub mod error;
pub mod protocol;
pub mod push;
pub mod replay_file;
pub mod seal;
pub mod server;
pub mod store;
pub mod turn;
pub mod util;
