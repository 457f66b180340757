//! `sotto-engine`: one encrypted call.
//!
//! Every protocol here is a sans-IO state machine (see `DESIGN.md`): it owns
//! no socket, thread or clock; a thin driver feeds it datagrams and the time.
#![forbid(unsafe_code)]

/// `From<$source>` for an error variant that shows `$source` in its own
/// message: such a variant does not also return it as `source()`, or a
/// printed cause chain (anyhow's `{:#}`) would say it twice.
macro_rules! shown_from {
    ($error:ty, $variant:path, $source:ty) => {
        impl From<$source> for $error {
            fn from(e: $source) -> Self {
                $variant(e)
            }
        }
    };
}

pub mod srtp;

// HMAC-SHA1 for SRTP's packet authentication and TURN REST passwords.
mod hmac_sha1;

// ZRTP key agreement (RFC 6189).
pub mod zrtp;

// Media transport: first-byte demux, RTP/RTCP, ICE + TURN client, tokio driver.
pub mod demux;
pub mod driver;
pub mod ice;
pub mod rtcp;
pub mod rtp;

// Video over the same SRTP session: VP8 RTP payload (RFC 7741), frame assembly.
pub mod video;

// One call end to end (signalling, ZRTP, SRTP, audio) and its simulator.
pub mod call;
pub mod sim;

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    /// What a cause chain prints (as anyhow's `{:#}` does): each error's
    /// message, then its sources'.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut out = e.to_string();
        let mut next = e.source();
        while let Some(s) = next {
            out += &format!(": {s}");
            next = s.source();
        }
        out
    }

    #[test]
    fn a_wrapped_error_is_said_once() {
        let io = || std::io::Error::other("disk on fire");
        let driver = crate::driver::DriverError::from(io());
        assert_eq!(chain(&driver), "socket: disk on fire");
        let cache = crate::zrtp::CacheError::from(io());
        assert_eq!(chain(&cache), "ZID cache I/O: disk on fire");
        assert!(cache.source().is_none());
    }
}
