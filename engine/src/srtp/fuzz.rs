//! The body of the `srtp_unprotect` fuzz target, shared with a unit test
//! that runs it over random inputs.

use super::{Config, Profile, SrtpContext};

/// Feeds arbitrary bytes to unprotect (SRTP and SRTCP, every profile) and
/// checks that a packet protected by a sender round-trips unchanged. The
/// first byte picks the profile and the window; it panics only on a bug.
pub fn fuzz_unprotect(data: &[u8]) {
    let Some((&selector, packet)) = data.split_first() else {
        return;
    };
    let profile = Profile::ALL[usize::from(selector) % Profile::ALL.len()];
    let config = Config {
        replay_window: if selector & 0x80 != 0 { 1024 } else { 64 },
        max_streams: 2,
        ..Config::default()
    };
    let key = [0x42u8; 32];
    let salt = [0x24u8; 14];
    let new = || {
        SrtpContext::with_config(
            profile,
            &key[..profile.key_len()],
            &salt[..profile.salt_len()],
            config.clone(),
        )
        .expect("valid key, salt and config")
    };
    let mut receiver = new();
    for rtcp in [false, true] {
        let mut buf = packet.to_vec();
        let _ = if rtcp {
            receiver.unprotect_rtcp(&mut buf)
        } else {
            receiver.unprotect_rtp(&mut buf)
        };
    }

    // Whatever a sender accepts, a receiver must give back byte for byte.
    let mut sender = new();
    let mut receiver = new();
    for rtcp in [false, true] {
        let mut buf = packet.to_vec();
        let protected = if rtcp {
            sender.protect_rtcp(&mut buf)
        } else {
            sender.protect_rtp(&mut buf)
        };
        if protected.is_ok() {
            let unprotected = if rtcp {
                receiver.unprotect_rtcp(&mut buf)
            } else {
                receiver.unprotect_rtp(&mut buf)
            };
            assert_eq!(unprotected, Ok(()), "own packet rejected");
            assert_eq!(buf, packet, "round trip changed the packet");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Random bytes, and random bytes shaped like RTP/RTCP headers.
        #[test]
        fn never_panics(mut data in proptest::collection::vec(any::<u8>(), 0..400), shape in 0u8..3) {
            if data.len() > 2 && shape > 0 {
                data[1] = 0x80 | (data[1] & 0x3f); // version 2
                if shape == 2 { data[1] &= 0xe0; } // no CSRC, no extension
            }
            fuzz_unprotect(&data);
        }
    }
}
