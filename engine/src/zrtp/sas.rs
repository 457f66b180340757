//! SAS rendering (RFC 6189 §5.1.6).

use super::algo::SasAlgo;
use super::pgp_words::{EVEN, ODD};

/// The z-base-32 alphabet of §5.1.6.
const B32_ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

/// Renders the 32-bit SAS value: B32 uses its leftmost 20 bits as four
/// characters, B256 its leftmost 16 bits as two PGP words joined by `:`
/// (bzrtp's presentation).
pub fn render(algo: SasAlgo, sas_value: u32) -> String {
    match algo {
        SasAlgo::B32 => (0..4)
            .map(|i| B32_ALPHABET[((sas_value >> (27 - 5 * i)) & 31) as usize] as char)
            .collect(),
        SasAlgo::B256 => {
            format!(
                "{}:{}",
                EVEN[(sas_value >> 24) as usize],
                ODD[((sas_value >> 16) & 0xff) as usize]
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b32_uses_the_leftmost_20_bits() {
        assert_eq!(render(SasAlgo::B32, 0), "yyyy");
        assert_eq!(render(SasAlgo::B32, 0xffff_f000), "9999");
        // Low 12 bits do not matter.
        assert_eq!(
            render(SasAlgo::B32, 0x1234_5000),
            render(SasAlgo::B32, 0x1234_5fff)
        );
    }

    #[test]
    fn b256_words() {
        assert_eq!(render(SasAlgo::B256, 0x0000_0000), "aardvark:adroitness");
        assert_eq!(render(SasAlgo::B256, 0xffff_0000), "Zulu:Yucatan");
    }
}
