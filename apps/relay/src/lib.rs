//! `sotto-relay`: a TURN relay (RFC 8656, compatible with RFC 5766 clients).
//!
//! - [`stun`]: an allocation-free STUN/TURN codec.
//! - [`auth`]: long-term credentials, TURN REST secrets, stateless nonces.
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
pub mod server;
pub mod shared;
pub mod stun;
pub mod tcp;
pub mod tls;
pub mod udp;

use std::sync::Arc;
use std::time::Instant;

/// Feeds arbitrary bytes to the codec and to a fresh core as client and
/// peer input; used by the `relay_stun` fuzz target and by unit tests.
/// Must never panic.
pub fn fuzz_input(data: &[u8]) {
    if let Ok(m) = stun::Message::parse(data) {
        for a in m.attributes().flatten() {
            let _ = stun::decode_xor_addr(a.value, &m.transaction_id);
        }
        let _ = m.check_integrity(b"key");
        let _ = m.fingerprint_ok();
        let _ = m.get_str(stun::attr::USERNAME);
    }
    let _ = stun::ChannelData::parse(data);
    let now = Instant::now();
    let shared = Arc::new(shared::Shared::new(
        auth::Credentials::new(),
        auth::Nonces::new([0; 32], 600),
        shared::Quotas::new(1, 1),
    ));
    let mut relay = core::Relay::new(core::Config::new("fuzz", now, 0), shared);
    let client = core::ClientId {
        transport: core::Transport::Udp,
        listener: 0,
        remote: std::net::SocketAddr::from(([192, 0, 2, 1], 1)),
    };
    let _ = relay.handle_input(now, core::Input::Client { client, data });
    while relay.poll_transmit().is_some() {}
}
