//! Hash, HMAC, KDF (§4.5.1) and the AES-CFB used by Confirm.

use super::algo::{CipherAlgo, HashAlgo};
use cfb_mode::cipher::{AsyncStreamCipher, KeyIvInit};
use ring::{digest, hmac};
use subtle::ConstantTimeEq;

fn digest_alg(h: HashAlgo) -> &'static digest::Algorithm {
    match h {
        HashAlgo::S256 => &digest::SHA256,
        HashAlgo::S384 => &digest::SHA384,
    }
}

fn hmac_alg(h: HashAlgo) -> hmac::Algorithm {
    match h {
        HashAlgo::S256 => hmac::HMAC_SHA256,
        HashAlgo::S384 => hmac::HMAC_SHA384,
    }
}

/// Hash of the concatenation of `parts`.
pub fn hash(h: HashAlgo, parts: &[&[u8]]) -> Vec<u8> {
    let mut ctx = digest::Context::new(digest_alg(h));
    for p in parts {
        ctx.update(p);
    }
    ctx.finish().as_ref().to_vec()
}

/// SHA-256, the implicit hash of the hash chain and the Hello/Commit/DHPart
/// MACs (§9).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

/// HMAC of the concatenation of `parts`.
pub fn mac(h: HashAlgo, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let key = hmac::Key::new(hmac_alg(h), key);
    let mut ctx = hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(p);
    }
    ctx.sign().as_ref().to_vec()
}

/// First 64 bits of an HMAC.
pub fn mac64(h: HashAlgo, key: &[u8], data: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&mac(h, key, &[data])[..8]);
    out
}

/// Constant-time equality.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Writes the implicit (HMAC-SHA256, 64-bit) MAC over `message` minus its
/// last 8 bytes into those 8 bytes.
pub fn seal_message_mac(message: &mut [u8], key: &[u8]) {
    let n = message.len() - 8;
    let tag = mac64(HashAlgo::S256, key, &message[..n]);
    message[n..].copy_from_slice(&tag);
}

/// Checks the implicit MAC of a stored message.
pub fn check_message_mac(message: &[u8], key: &[u8]) -> bool {
    message.len() >= 8 && {
        let n = message.len() - 8;
        ct_eq(&mac64(HashAlgo::S256, key, &message[..n]), &message[n..])
    }
}

/// KDF(KI, Label, Context, L) of §4.5.1: HMAC(KI, 1 || Label || 0x00 ||
/// Context || L) truncated to `len` bytes (L is in bits).
pub fn kdf(h: HashAlgo, ki: &[u8], label: &[u8], context: &[u8], len: usize) -> Vec<u8> {
    let bits = ((len * 8) as u32).to_be_bytes();
    let mut out = mac(h, ki, &[&1u32.to_be_bytes(), label, &[0], context, &bits]);
    out.truncate(len);
    out
}

/// AES-CFB (128-bit segments) encryption in place, as Confirm and SASrelay
/// use.
pub fn cfb_encrypt(c: CipherAlgo, key: &[u8], iv: &[u8; 16], buf: &mut [u8]) {
    match c {
        CipherAlgo::Aes1 => {
            if let Ok(e) = cfb_mode::Encryptor::<aes::Aes128>::new_from_slices(key, iv) {
                e.encrypt(buf);
            }
        }
        CipherAlgo::Aes3 => {
            if let Ok(e) = cfb_mode::Encryptor::<aes::Aes256>::new_from_slices(key, iv) {
                e.encrypt(buf);
            }
        }
    }
}

/// AES-CFB decryption in place.
pub fn cfb_decrypt(c: CipherAlgo, key: &[u8], iv: &[u8; 16], buf: &mut [u8]) {
    match c {
        CipherAlgo::Aes1 => {
            if let Ok(d) = cfb_mode::Decryptor::<aes::Aes128>::new_from_slices(key, iv) {
                d.decrypt(buf);
            }
        }
        CipherAlgo::Aes3 => {
            if let Ok(d) = cfb_mode::Decryptor::<aes::Aes256>::new_from_slices(key, iv) {
                d.decrypt(buf);
            }
        }
    }
}

/// Fills a buffer from the OS CSPRNG.
pub fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The OS RNG failing is not recoverable and not input-driven.
    getrandom::fill(&mut out).expect("OS random number generator failed");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_rfc4231_case_2() {
        // RFC 4231 §4.3, test case 2.
        let out = mac(
            HashAlgo::S256,
            b"Jefe",
            &[b"what do ya want ", b"for nothing?"],
        );
        assert_eq!(
            out,
            hex_lit("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    #[test]
    fn cfb_round_trip_and_nist_vector() {
        // NIST SP 800-38A F.3.13 CFB128-AES128.Encrypt, first block.
        let key = hex_lit("2b7e151628aed2a6abf7158809cf4f3c");
        let iv: [u8; 16] = hex_lit("000102030405060708090a0b0c0d0e0f")
            .try_into()
            .unwrap();
        let mut buf = hex_lit("6bc1bee22e409f96e93d7e117393172a");
        cfb_encrypt(CipherAlgo::Aes1, &key, &iv, &mut buf);
        assert_eq!(buf, hex_lit("3b3fd92eb72dad20333449f8e83cfb4a"));
        cfb_decrypt(CipherAlgo::Aes1, &key, &iv, &mut buf);
        assert_eq!(buf, hex_lit("6bc1bee22e409f96e93d7e117393172a"));
    }

    fn hex_lit(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
