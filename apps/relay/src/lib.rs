//! `sotto-relay`: a TURN relay (RFC 8656, compatible with RFC 5766 clients).
//!
//! - [`stun`]: an allocation-free STUN/TURN codec.
//! - [`auth`]: long-term credentials, TURN REST secrets, stateless nonces,
//!   PASSWORD-ALGORITHMS; [`userdb`]: TURN users from the signalling database.
//! - [`policy`]: which peer addresses may be reached (safe by default).
//! - [`core`]: the sans-IO allocation core, one per worker.
//! - [`shared`]: quotas and credentials shared by the workers.
//! - [`udp`], [`tcp`], [`server`]: the drivers; [`config`], [`metrics`],
//!   [`tls`]: operations.
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod core;
pub mod metrics;
pub mod policy;
pub mod relay_socket;
pub mod server;
pub mod shared;
pub mod stun;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod userdb;

mod fuzz;
pub use fuzz::fuzz_input;
