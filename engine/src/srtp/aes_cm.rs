//! AES in counter mode as SRTP uses it (RFC 3711 §4.1.1), and the AES-CM
//! key derivation function built on it (RFC 3711 §4.3).
//!
//! The key schedule is expanded once per session; each packet only fills a
//! small stack buffer with counter blocks and encrypts them in batches, so
//! AES-NI pipelines eight blocks at a time and nothing is allocated.

use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use aes::{Aes128Enc, Aes256Enc};
use zeroize::Zeroize;

/// Counter blocks encrypted per batch (a multiple of AES-NI's 8-way pipeline).
const BATCH: usize = 16;

/// An expanded AES encryption key of either size. The `aes` crate (feature
/// `zeroize`) wipes the round keys on drop.
// Held once per session and used on every packet: inline, not boxed.
#[allow(clippy::large_enum_variant)]
pub(crate) enum AesCm {
    A128(Aes128Enc),
    A256(Aes256Enc),
}

impl AesCm {
    /// Expands a 16- or 32-byte key; other lengths are a programming error
    /// prevented by [`super::Profile`] checks.
    pub(crate) fn new(key: &[u8]) -> Self {
        match key.len() {
            16 => AesCm::A128(Aes128Enc::new(GenericArray::from_slice(key))),
            32 => AesCm::A256(Aes256Enc::new(GenericArray::from_slice(key))),
            n => unreachable!("AES key of {n} bytes passed profile checks"),
        }
    }

    /// XORs the counter-mode keystream starting at `iv` into `data`.
    pub(crate) fn apply_keystream(&self, iv: &[u8; 16], data: &mut [u8]) {
        match self {
            AesCm::A128(c) => ctr_xor(c, iv, data),
            AesCm::A256(c) => ctr_xor(c, iv, data),
        }
    }
}

fn ctr_xor<C>(cipher: &C, iv: &[u8; 16], data: &mut [u8])
where
    C: BlockEncrypt + aes::cipher::BlockSizeUser<BlockSize = aes::cipher::consts::U16>,
{
    let mut counter = u128::from_be_bytes(*iv);
    let mut blocks = [GenericArray::<u8, aes::cipher::consts::U16>::default(); BATCH];
    for chunk in data.chunks_mut(BATCH * 16) {
        let n = chunk.len().div_ceil(16);
        for block in &mut blocks[..n] {
            *block = counter.to_be_bytes().into();
            counter = counter.wrapping_add(1);
        }
        cipher.encrypt_blocks(&mut blocks[..n]);
        for (bytes, ks) in chunk.chunks_mut(16).zip(&blocks[..n]) {
            if bytes.len() == 16 {
                let mut word = [0u8; 16];
                word.copy_from_slice(bytes);
                let x = u128::from_ne_bytes(word) ^ u128::from_ne_bytes((*ks).into());
                bytes.copy_from_slice(&x.to_ne_bytes());
            } else {
                for (b, k) in bytes.iter_mut().zip(ks.iter()) {
                    *b ^= k;
                }
            }
        }
    }
    // The last keystream batch is key-derived material: do not leave it on the stack.
    for block in &mut blocks {
        block.as_mut_slice().zeroize();
    }
}

/// SRTP key-derivation labels (RFC 3711 §4.3.1 and §4.3.2).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Label {
    RtpEncryption = 0,
    RtpAuth = 1,
    RtpSalt = 2,
    RtcpEncryption = 3,
    RtcpAuth = 4,
    RtcpSalt = 5,
}

/// The AES-CM PRF keyed with the master key (key derivation rate 0).
pub(crate) struct Kdf {
    prf: AesCm,
    /// The master salt, zero-padded to 112 bits (GCM salts are 96 bits;
    /// RFC 7714 §12 keeps the AES-CM KDF with the label at the same octet).
    salt: [u8; 14],
}

impl Kdf {
    pub(crate) fn new(master_key: &[u8], master_salt: &[u8]) -> Self {
        let mut salt = [0u8; 14];
        salt[..master_salt.len()].copy_from_slice(master_salt);
        Kdf {
            prf: AesCm::new(master_key),
            salt,
        }
    }

    /// Fills `out` with the session key for `label`:
    /// AES-CM(master key, IV = (master_salt XOR label·2^48)·2^16).
    pub(crate) fn derive(&self, label: Label, out: &mut [u8]) {
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.salt);
        iv[7] ^= label as u8;
        out.fill(0);
        self.prf.apply_keystream(&iv, out);
        iv.zeroize();
    }
}

impl Drop for Kdf {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    /// RFC 3711 Appendix B.2: AES-CM keystream segments.
    #[test]
    fn rfc3711_b2_keystream() {
        let key = h("2B7E151628AED2A6ABF7158809CF4F3C");
        let salt = h("F0F1F2F3F4F5F6F7F8F9FAFBFCFD");
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&salt);
        let mut ks = vec![0u8; 0xff02 * 16];
        AesCm::new(&key).apply_keystream(&iv, &mut ks);
        assert_eq!(ks[..16], h("E03EAD0935C95E80E166B16DD92B4EB4")[..]);
        assert_eq!(ks[16..32], h("D23513162B02D0F72A43A2FE4A5F97AB")[..]);
        assert_eq!(ks[32..48], h("41E95B3BB0A2E8DD477901E4FCA894C0")[..]);
        let at = |block: usize| &ks[block * 16..block * 16 + 16];
        assert_eq!(at(0xfeff), &h("EC8CDF7398607CB0F2D21675EA9EA1E4")[..]);
        assert_eq!(at(0xff00), &h("362B7C3C6773516318A077D7FC5073AE")[..]);
        assert_eq!(at(0xff01), &h("6A2CC3787889374FBEB4C81B17BA6C44")[..]);
    }

    /// RFC 3711 Appendix B.3: key derivation (encryption, salt and the
    /// first 32 bytes of the authentication key).
    #[test]
    fn rfc3711_b3_key_derivation() {
        let kdf = Kdf::new(
            &h("E1F97A0D3E018BE0D64FA32C06DE4139"),
            &h("0EC675AD498AFEEBB6960B3AABE6"),
        );
        let mut enc = [0u8; 16];
        kdf.derive(Label::RtpEncryption, &mut enc);
        assert_eq!(enc[..], h("C61E7A93744F39EE10734AFE3FF7A087")[..]);
        let mut salt = [0u8; 14];
        kdf.derive(Label::RtpSalt, &mut salt);
        assert_eq!(salt[..], h("30CBBC08863D8C85D49DB34A9AE1")[..]);
        let mut auth = [0u8; 94];
        kdf.derive(Label::RtpAuth, &mut auth);
        assert_eq!(
            auth[..32],
            h("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCE")[..]
        );
    }

    /// RFC 6188 §7.1: AES-256-CM keystream, first and last three blocks of
    /// the 0xff02 blocks for packet index 0.
    #[test]
    fn rfc6188_7_1_aes256_keystream() {
        let key = h("57f82fe3613fd170a85ec93c40b1f0922ec4cb0dc025b58272147cc438944a98");
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&h("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"));
        let mut ks = vec![0u8; 0xff02 * 16];
        AesCm::new(&key).apply_keystream(&iv, &mut ks);
        assert_eq!(
            ks[..48],
            h(
                "92bdd28a93c3f52511c677d08b5515a49da71b2378a854f67050756ded165bac63c4868b7096d88421b563b8c94c9a31"
            )[..]
        );
        assert_eq!(
            ks[ks.len() - 48..],
            h(
                "cea518c90fd91ced9cbb18c078a547113dbc4814f4da5f00a08772b63c6a046d6eb246913062a16891433e97dd01a57f"
            )[..]
        );
    }

    /// RFC 6188 §7.2: AES-256 key derivation (encryption key, salt and the
    /// 160-bit authentication key).
    #[test]
    fn rfc6188_7_2_aes256_key_derivation() {
        let kdf = Kdf::new(
            &h("f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6"),
            &h("3b04803de51ee7c96423ab5b78d2"),
        );
        let mut enc = [0u8; 32];
        kdf.derive(Label::RtpEncryption, &mut enc);
        assert_eq!(
            enc[..],
            h("5ba1064e30ec51613cad926c5a28ef731ec7fb397f70a960653caf06554cd8c4")[..]
        );
        let mut salt = [0u8; 14];
        kdf.derive(Label::RtpSalt, &mut salt);
        assert_eq!(salt[..], h("fa31791685ca444a9e07c6c64e93")[..]);
        let mut auth = [0u8; 20];
        kdf.derive(Label::RtpAuth, &mut auth);
        assert_eq!(auth[..], h("fd9c32d39ed5fbb5a9dc96b30818454d1313dc05")[..]);
    }
}
