//! Packet index estimation from a 16-bit sequence number (RFC 3711 §3.3.1
//! and Appendix A).

/// Indices are 48 bits: ROC (32) || SEQ (16).
pub(crate) const INDEX_LIMIT: u64 = 1 << 48;

/// Guesses the index of `seq` given the highest index accepted so far on
/// the stream. Like libsrtp, the rollover counter is taken as 0 while the
/// highest index is at most 2^15 (the first packet of a stream included),
/// so a stream that starts near 65535 is not guessed into ROC −1.
/// The result may reach [`INDEX_LIMIT`] when the ROC would wrap.
pub(crate) fn estimate(top: Option<u64>, seq: u16) -> u64 {
    const HALF: u64 = 1 << 15;
    let s = u64::from(seq);
    let top = match top {
        Some(top) if top > HALF => top,
        _ => return s,
    };
    let roc = top >> 16;
    let s_l = top & 0xffff;
    let v = if s_l < HALF {
        // top > 2^15 and s_l < 2^15 imply roc >= 1.
        if s > s_l + HALF { roc - 1 } else { roc }
    } else if s_l - HALF > s {
        roc + 1
    } else {
        roc
    };
    v << 16 | s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn around_the_wrap() {
        let top = 65_534; // ROC 0
        assert_eq!(estimate(Some(top), 65_535), 65_535);
        assert_eq!(estimate(Some(top), 0), 65_536);
        assert_eq!(estimate(Some(top), 3), 65_539);
        let top = 65_537; // ROC 1, seq 1: a late packet from before the wrap
        assert_eq!(estimate(Some(top), 65_530), 65_530);
        assert_eq!(estimate(Some(top), 2), 65_538);
        assert_eq!(estimate(None, 65_530), 65_530);
        assert_eq!(estimate(Some(10), 65_530), 65_530);
        let last = INDEX_LIMIT - 1;
        assert_eq!(estimate(Some(last), 0), INDEX_LIMIT);
    }
}
