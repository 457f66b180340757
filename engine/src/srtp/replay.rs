//! Sliding replay window over packet indices (RFC 3711 §3.3.2), as a ring
//! bitmap: advancing by one index clears one bit, so a 1024-packet window
//! costs the same per packet as a 64-packet one.

use super::Error;

/// Smallest configurable SRTP window, in packets: the minimum RFC 3711
/// §3.3.2 requires (libsrtp2 refuses smaller ones too).
pub const MIN_REPLAY_WINDOW: usize = 64;

/// Largest configurable window, in packets.
pub const MAX_REPLAY_WINDOW: usize = 32_768;

/// Which indices within `size` of the highest one have been seen.
#[derive(Debug, Clone)]
pub(crate) struct ReplayWindow {
    /// Highest index accepted so far, if any.
    top: Option<u64>,
    /// Window size in packets.
    size: u64,
    /// Ring of bits, one per index modulo `bits.len() * 64` (a power of two
    /// not smaller than `size`).
    bits: Box<[u64]>,
}

impl ReplayWindow {
    /// A window of `size` packets (1..=[`MAX_REPLAY_WINDOW`], checked by
    /// the configuration).
    pub(crate) fn new(size: usize) -> Self {
        let words = size.next_power_of_two().div_ceil(64).max(1);
        ReplayWindow {
            top: None,
            size: size as u64,
            bits: vec![0; words].into_boxed_slice(),
        }
    }

    fn mask(&self) -> u64 {
        (self.bits.len() * 64 - 1) as u64
    }

    fn bit(&self, index: u64) -> (usize, u64) {
        let pos = index & self.mask();
        ((pos / 64) as usize, 1 << (pos % 64))
    }

    /// The highest accepted index, if any.
    pub(crate) fn top(&self) -> Option<u64> {
        self.top
    }

    /// Whether `index` may be accepted (it is new and not too old).
    pub(crate) fn check(&self, index: u64) -> Result<(), Error> {
        let Some(top) = self.top else { return Ok(()) };
        if index > top {
            return Ok(());
        }
        if top - index >= self.size {
            return Err(Error::TooOld);
        }
        let (word, bit) = self.bit(index);
        if self.bits[word] & bit != 0 {
            return Err(Error::Replayed);
        }
        Ok(())
    }

    /// Records `index` as received; call only after [`Self::check`] passed
    /// and the packet authenticated.
    pub(crate) fn accept(&mut self, index: u64) {
        match self.top {
            Some(top) if index <= top => {}
            Some(top) if index - top <= self.mask() => {
                for i in top + 1..index {
                    let (word, bit) = self.bit(i);
                    self.bits[word] &= !bit;
                }
                self.top = Some(index);
            }
            _ => {
                self.bits.fill(0);
                self.top = Some(index);
            }
        }
        let (word, bit) = self.bit(index);
        self.bits[word] |= bit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_edges() {
        for size in [64usize, 100, 1024] {
            let mut w = ReplayWindow::new(size);
            w.accept(5000);
            assert_eq!(w.check(5000), Err(Error::Replayed));
            assert_eq!(w.check(5001), Ok(()));
            let oldest = 5000 - size as u64 + 1;
            assert_eq!(w.check(oldest), Ok(()));
            assert_eq!(w.check(oldest - 1), Err(Error::TooOld));
            w.accept(oldest);
            assert_eq!(w.check(oldest), Err(Error::Replayed));
            // A jump clears the bits it passes over.
            w.accept(5000 + 3 * size as u64);
            assert_eq!(w.check(5000 + 3 * size as u64 - 1), Ok(()));
            assert_eq!(w.check(5000 + 2 * size as u64 + 1), Ok(()));
        }
    }

    /// Against a plain set of seen indices, for reordered input.
    #[test]
    fn matches_a_naive_model() {
        let mut w = ReplayWindow::new(128);
        let mut seen = std::collections::BTreeSet::new();
        let mut x = 12345u64;
        let mut top = 1000u64;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let step = (x >> 33) % 200;
            let index = if (x >> 20).is_multiple_of(3) {
                top + step / 20
            } else {
                top.saturating_sub(step)
            };
            let max = seen.last().copied();
            let expect = match max {
                Some(m) if index <= m && m - index >= 128 => Err(Error::TooOld),
                _ if seen.contains(&index) => Err(Error::Replayed),
                _ => Ok(()),
            };
            assert_eq!(w.check(index), expect, "index {index}");
            if expect.is_ok() {
                w.accept(index);
                seen.insert(index);
                top = top.max(index);
            }
        }
    }
}
