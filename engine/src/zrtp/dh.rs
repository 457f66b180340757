//! Key agreements (§5.1.5): X25519, X448, P-256, P-384 and the RFC 3526
//! MODP groups, each producing the public value and DHResult formats ZRTP
//! puts on the wire.

use super::algo::KeyAgreement;
use super::crypto::random;
use crypto_bigint::modular::{FixedMontyForm, FixedMontyParams};
use crypto_bigint::{Encoding, Odd, U256, U2048, U3072, Uint};
use ring::agreement;
use zeroize::{Zeroize, Zeroizing};

/// RFC 3526 §3, the 2048-bit MODP group (id 14), generator 2.
const P2048_HEX: &[&str] = &[
    "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74",
    "020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f1437",
    "4fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7ed",
    "ee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf05",
    "98da48361c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb",
    "9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3b",
    "e39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf695581718",
    "3995497cea956ae515d2261898fa051015728e5a8aacaa68ffffffffffffffff",
];

/// RFC 3526 §4, the 3072-bit MODP group (id 15), generator 2.
const P3072_HEX: &[&str] = &[
    "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74",
    "020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f1437",
    "4fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7ed",
    "ee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf05",
    "98da48361c55d39a69163fa8fd24cf5f83655d23dca3ad961c62f356208552bb",
    "9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3b",
    "e39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf695581718",
    "3995497cea956ae515d2261898fa051015728e5a8aaac42dad33170d04507a33",
    "a85521abdf1cba64ecfb850458dbef0a8aea71575d060c7db3970f85a6e1e4c7",
    "abf5ae8cdb0933d71e8c94e04a25619dcee3d2261ad2ee6bf12ffa06d98a0864",
    "d87602733ec86a64521f2b18177b200cbbe117577a615d6c770988c0bad946e2",
    "08e24fa074e5ab3143db5bfce0fd108e4b82d120a93ad2caffffffffffffffff",
];

fn hex_be<const N: usize>(parts: &[&str]) -> [u8; N] {
    let s: String = parts.concat();
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    out
}

/// Our half of a key agreement, consumed by [`KeyPair::agree`].
pub enum KeyPair {
    /// X25519 or ECDH on a NIST curve (ring).
    Ring(
        agreement::EphemeralPrivateKey,
        &'static agreement::Algorithm,
    ),
    /// X448.
    X448(Zeroizing<[u8; 56]>),
    /// DH2k: 256-bit exponent.
    Dh2k(Zeroizing<[u8; 32]>),
    /// DH3k: 256-bit exponent.
    Dh3k(Zeroizing<[u8; 32]>),
}

/// Why a peer's public value was refused (§5.9 code 0x61).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPublicValue;

fn modp<const L: usize>(p: &[u8], base: &Uint<L>, exp: &[u8; 32]) -> Uint<L>
where
    Uint<L>: Encoding,
{
    let modulus = Odd::new(Uint::<L>::from_be_slice(p)).expect("RFC 3526 primes are odd");
    let params = FixedMontyParams::new_vartime(modulus);
    let e = U256::from_be_slice(exp);
    FixedMontyForm::new(base, &params).pow(&e).retrieve()
}

fn modp_pv_ok<const L: usize>(p: &[u8], pv: &Uint<L>) -> bool
where
    Uint<L>: Encoding,
{
    // §4.4.1.1: reject 0, 1, p-1 and anything >= p.
    let p = Uint::<L>::from_be_slice(p);
    let p_minus_1 = p.wrapping_sub(&Uint::ONE);
    *pv > Uint::ONE && *pv < p_minus_1
}

/// A random 256-bit exponent and its public value 2^x mod p, for the
/// `N`-byte MODP group `p_hex`.
fn modp_generate<const L: usize, const N: usize>(p_hex: &[&str]) -> (Zeroizing<[u8; 32]>, Vec<u8>)
where
    Uint<L>: Encoding,
{
    let x = Zeroizing::new(random::<32>());
    let pv = modp::<L>(&hex_be::<N>(p_hex), &Uint::<L>::from_u8(2), &x);
    (x, pv.to_be_bytes().as_ref().to_vec())
}

/// DHResult = pv^x mod p for an `N`-byte public value, after the §4.4.1.1
/// range check.
fn modp_agree<const L: usize, const N: usize>(
    p_hex: &[&str],
    peer_pv: &[u8],
    x: &[u8; 32],
) -> Result<Zeroizing<Vec<u8>>, BadPublicValue>
where
    Uint<L>: Encoding,
{
    if peer_pv.len() != N {
        return Err(BadPublicValue);
    }
    let p = hex_be::<N>(p_hex);
    let pv = Uint::<L>::from_be_slice(peer_pv);
    if !modp_pv_ok::<L>(&p, &pv) {
        return Err(BadPublicValue);
    }
    let mut r = modp::<L>(&p, &pv, x);
    let out = Zeroizing::new(r.to_be_bytes().as_ref().to_vec());
    r.zeroize();
    Ok(out)
}

impl KeyPair {
    /// Generates a fresh key pair and returns it with its public value.
    pub fn generate(ka: KeyAgreement) -> Option<(KeyPair, Vec<u8>)> {
        let rng = ring::rand::SystemRandom::new();
        let ring_alg = match ka {
            KeyAgreement::X255 => Some(&agreement::X25519),
            KeyAgreement::Ec25 => Some(&agreement::ECDH_P256),
            KeyAgreement::Ec38 => Some(&agreement::ECDH_P384),
            _ => None,
        };
        if let Some(alg) = ring_alg {
            let sk = agreement::EphemeralPrivateKey::generate(alg, &rng).ok()?;
            let pk = sk.compute_public_key().ok()?;
            let pv = match ka {
                // ZRTP carries x || y, without SEC1's 0x04 prefix (§5.1.5).
                KeyAgreement::Ec25 | KeyAgreement::Ec38 => pk.as_ref()[1..].to_vec(),
                _ => pk.as_ref().to_vec(),
            };
            return Some((KeyPair::Ring(sk, alg), pv));
        }
        match ka {
            KeyAgreement::X448 => {
                let sk = Zeroizing::new(random::<56>());
                let secret = x448::Secret::from_bytes(&sk[..])?;
                let pv = x448::PublicKey::from(&secret).as_bytes().to_vec();
                Some((KeyPair::X448(sk), pv))
            }
            KeyAgreement::Dh2k => {
                let (x, pv) = modp_generate::<{ U2048::LIMBS }, 256>(P2048_HEX);
                Some((KeyPair::Dh2k(x), pv))
            }
            KeyAgreement::Dh3k => {
                let (x, pv) = modp_generate::<{ U3072::LIMBS }, 384>(P3072_HEX);
                Some((KeyPair::Dh3k(x), pv))
            }
            _ => None,
        }
    }

    /// Computes DHResult from the peer's public value.
    pub fn agree(self, peer_pv: &[u8]) -> Result<Zeroizing<Vec<u8>>, BadPublicValue> {
        match self {
            KeyPair::Ring(sk, alg) => {
                let mut peer = Vec::with_capacity(peer_pv.len() + 1);
                if alg != &agreement::X25519 {
                    peer.push(0x04);
                }
                peer.extend_from_slice(peer_pv);
                let expected = if alg == &agreement::X25519 {
                    32
                } else if alg == &agreement::ECDH_P256 {
                    65
                } else {
                    97
                };
                if peer.len() != expected {
                    return Err(BadPublicValue);
                }
                // ring checks the point is on the curve; for X25519 it
                // rejects the all-zero (low order) result.
                agreement::agree_ephemeral(sk, &agreement::UnparsedPublicKey::new(alg, peer), |s| {
                    Zeroizing::new(s.to_vec())
                })
                .map_err(|_| BadPublicValue)
            }
            KeyPair::X448(sk) => {
                let secret = x448::Secret::from_bytes(&sk[..]).ok_or(BadPublicValue)?;
                let pk = x448::PublicKey::from_bytes(peer_pv).ok_or(BadPublicValue)?;
                let shared = secret.as_diffie_hellman(&pk).ok_or(BadPublicValue)?;
                Ok(Zeroizing::new(shared.as_bytes().to_vec()))
            }
            KeyPair::Dh2k(x) => modp_agree::<{ U2048::LIMBS }, 256>(P2048_HEX, peer_pv, &x),
            KeyPair::Dh3k(x) => modp_agree::<{ U3072::LIMBS }, 384>(P3072_HEX, peer_pv, &x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_agreement_agrees_with_itself() {
        for ka in [
            KeyAgreement::X255,
            KeyAgreement::X448,
            KeyAgreement::Ec25,
            KeyAgreement::Ec38,
            KeyAgreement::Dh2k,
            KeyAgreement::Dh3k,
        ] {
            let (a, pa) = KeyPair::generate(ka).unwrap();
            let (b, pb) = KeyPair::generate(ka).unwrap();
            assert_eq!(Some(pa.len()), ka.pv_len(), "{ka}");
            let sa = a.agree(&pb).unwrap();
            let sb = b.agree(&pa).unwrap();
            assert_eq!(*sa, *sb, "{ka}");
        }
    }

    #[test]
    fn primes_match_rfc_3526_shape() {
        // Both primes start and end with 64 one-bits (RFC 3526 §2–§4).
        for p in [&hex_be::<256>(P2048_HEX)[..], &hex_be::<384>(P3072_HEX)[..]] {
            assert!(
                p[..8].iter().all(|b| *b == 0xff) && p[p.len() - 8..].iter().all(|b| *b == 0xff)
            );
        }
    }

    #[test]
    fn degenerate_dh_values_are_refused() {
        let mut one = vec![0u8; 384];
        one[383] = 1;
        let (kp, _) = KeyPair::generate(KeyAgreement::Dh3k).unwrap();
        assert_eq!(kp.agree(&one).unwrap_err(), BadPublicValue);
        let mut pm1 = hex_be::<384>(P3072_HEX).to_vec();
        pm1[383] -= 1;
        let (kp, _) = KeyPair::generate(KeyAgreement::Dh3k).unwrap();
        assert_eq!(kp.agree(&pm1).unwrap_err(), BadPublicValue);
        let (kp, _) = KeyPair::generate(KeyAgreement::X255).unwrap();
        assert!(kp.agree(&[0u8; 32]).is_err());
    }
}
