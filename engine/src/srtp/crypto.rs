//! Per-session keys and the packet transforms of each profile family:
//! AES-CM + HMAC-SHA1 (RFC 3711 §4) and AES-GCM (RFC 7714 §8, §9).
//!
//! These functions hold no per-stream state: the context has already found
//! the packet index and checked the replay window, and updates both only
//! after a transform here has authenticated the packet.

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::aes_cm::{AesCm, Kdf, Label};
use super::{Error, Profile};
use crate::hmac_sha1::HmacSha1;

/// Fixed SRTCP header bytes that stay in the clear (RFC 3711 §3.4).
pub(crate) const RTCP_HEADER: usize = 8;
/// SRTCP E flag: the payload is encrypted.
const E_FLAG: u32 = 1 << 31;

/// The session keys of one direction, derived from a master key and salt.
// One per context, used on every packet: inline, not boxed.
#[allow(clippy::large_enum_variant)]
pub(crate) enum SessionKeys {
    Cm {
        rtp: CmKeys,
        rtcp: CmKeys,
        rtp_tag: usize,
    },
    Gcm {
        rtp: GcmKeys,
        rtcp: GcmKeys,
    },
}

pub(crate) struct CmKeys {
    cipher: AesCm,
    auth: HmacSha1,
    salt: [u8; 14],
}

pub(crate) struct GcmKeys {
    key: LessSafeKey,
    salt: [u8; 12],
}

impl Drop for CmKeys {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

impl Drop for GcmKeys {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

impl SessionKeys {
    /// Runs the key derivation (RFC 3711 §4.3, label per key) for `profile`.
    /// Lengths were checked by the caller.
    pub(crate) fn derive(profile: Profile, master_key: &[u8], master_salt: &[u8]) -> Self {
        let kdf = Kdf::new(master_key, master_salt);
        let key_len = profile.key_len();
        let mut key = [0u8; 32];
        let mut salt = [0u8; 14];
        let keys = if profile.is_aead() {
            let algorithm = if key_len == 16 {
                &aead::AES_128_GCM
            } else {
                &aead::AES_256_GCM
            };
            let mut gcm = |enc: Label, salt_label: Label| {
                kdf.derive(enc, &mut key[..key_len]);
                kdf.derive(salt_label, &mut salt[..12]);
                let unbound = UnboundKey::new(algorithm, &key[..key_len])
                    .expect("key length matches the algorithm");
                let mut s = [0u8; 12];
                s.copy_from_slice(&salt[..12]);
                GcmKeys {
                    key: LessSafeKey::new(unbound),
                    salt: s,
                }
            };
            SessionKeys::Gcm {
                rtp: gcm(Label::RtpEncryption, Label::RtpSalt),
                rtcp: gcm(Label::RtcpEncryption, Label::RtcpSalt),
            }
        } else {
            let mut auth = [0u8; 20];
            let mut cm = |enc: Label, auth_label: Label, salt_label: Label| {
                kdf.derive(enc, &mut key[..key_len]);
                kdf.derive(auth_label, &mut auth);
                kdf.derive(salt_label, &mut salt);
                CmKeys {
                    cipher: AesCm::new(&key[..key_len]),
                    auth: HmacSha1::new(&auth),
                    salt,
                }
            };
            let rtp = cm(Label::RtpEncryption, Label::RtpAuth, Label::RtpSalt);
            let rtcp = cm(Label::RtcpEncryption, Label::RtcpAuth, Label::RtcpSalt);
            auth.zeroize();
            SessionKeys::Cm {
                rtp,
                rtcp,
                rtp_tag: profile.rtp_tag_len(),
            }
        };
        key.zeroize();
        salt.zeroize();
        keys
    }

    /// Encrypts `buf[hdr..len]` and appends the tag; returns the new length.
    /// `buf` has room for the tag.
    pub(crate) fn protect_rtp(
        &self,
        buf: &mut [u8],
        hdr: usize,
        len: usize,
        ssrc: u32,
        index: u64,
    ) -> usize {
        match self {
            SessionKeys::Cm { rtp, rtp_tag, .. } => {
                rtp.cipher
                    .apply_keystream(&cm_iv(&rtp.salt, ssrc, index), &mut buf[hdr..len]);
                let roc = ((index >> 16) as u32).to_be_bytes();
                let tag = rtp.auth.mac(&[&buf[..len], &roc]);
                buf[len..len + rtp_tag].copy_from_slice(&tag[..*rtp_tag]);
                len + rtp_tag
            }
            SessionKeys::Gcm { rtp, .. } => {
                let (aad, body) = buf.split_at_mut(hdr);
                let nonce = rtp_nonce(&rtp.salt, ssrc, index);
                let tag = rtp
                    .key
                    .seal_in_place_separate_tag(nonce, Aad::from(&*aad), &mut body[..len - hdr])
                    .expect("SRTP packets are far below the GCM length limit");
                body[len - hdr..len - hdr + 16].copy_from_slice(tag.as_ref());
                len + 16
            }
        }
    }

    /// Verifies the tag of the SRTP packet `buf` (header of `hdr` bytes) and
    /// decrypts it in place; returns the RTP packet length.
    pub(crate) fn unprotect_rtp(
        &self,
        buf: &mut [u8],
        hdr: usize,
        ssrc: u32,
        index: u64,
    ) -> Result<usize, Error> {
        match self {
            SessionKeys::Cm { rtp, rtp_tag, .. } => {
                let end = buf.len() - rtp_tag;
                let roc = ((index >> 16) as u32).to_be_bytes();
                let tag = rtp.auth.mac(&[&buf[..end], &roc]);
                if !bool::from(tag[..*rtp_tag].ct_eq(&buf[end..])) {
                    return Err(Error::AuthFailed);
                }
                rtp.cipher
                    .apply_keystream(&cm_iv(&rtp.salt, ssrc, index), &mut buf[hdr..end]);
                Ok(end)
            }
            SessionKeys::Gcm { rtp, .. } => {
                let (aad, body) = buf.split_at_mut(hdr);
                let nonce = rtp_nonce(&rtp.salt, ssrc, index);
                let plain = rtp
                    .key
                    .open_in_place(nonce, Aad::from(&*aad), body)
                    .map_err(|_| Error::AuthFailed)?;
                Ok(hdr + plain.len())
            }
        }
    }

    /// Encrypts the RTCP packet `buf[..len]` under SRTCP `index` and
    /// appends E flag, index and tag; returns the new length.
    pub(crate) fn protect_rtcp(&self, buf: &mut [u8], len: usize, ssrc: u32, index: u32) -> usize {
        let trailer = (E_FLAG | index).to_be_bytes();
        match self {
            SessionKeys::Cm { rtcp, .. } => {
                rtcp.cipher.apply_keystream(
                    &cm_iv(&rtcp.salt, ssrc, u64::from(index)),
                    &mut buf[RTCP_HEADER..len],
                );
                buf[len..len + 4].copy_from_slice(&trailer);
                let tag = rtcp.auth.mac(&[&buf[..len + 4]]);
                buf[len + 4..len + 14].copy_from_slice(&tag[..10]);
                len + 14
            }
            SessionKeys::Gcm { rtcp, .. } => {
                let aad = rtcp_aad(&buf[..RTCP_HEADER], trailer);
                let tag = rtcp
                    .key
                    .seal_in_place_separate_tag(
                        rtcp_nonce(&rtcp.salt, ssrc, index),
                        Aad::from(aad),
                        &mut buf[RTCP_HEADER..len],
                    )
                    .expect("SRTCP packets are far below the GCM length limit");
                buf[len..len + 16].copy_from_slice(tag.as_ref());
                buf[len + 16..len + 20].copy_from_slice(&trailer);
                len + 20
            }
        }
    }

    /// The E flag and SRTCP index of a protected packet that is at least
    /// `RTCP_HEADER + overhead` bytes long (checked by the caller).
    pub(crate) fn rtcp_trailer(&self, buf: &[u8]) -> (bool, u32) {
        let at = match self {
            SessionKeys::Cm { .. } => buf.len() - 10 - 4,
            SessionKeys::Gcm { .. } => buf.len() - 4,
        };
        let word = u32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
        (word & E_FLAG != 0, word & !E_FLAG)
    }

    /// Verifies and (when the E flag is set) decrypts an SRTCP packet in
    /// place; returns the RTCP packet length.
    pub(crate) fn unprotect_rtcp(&self, buf: &mut [u8], ssrc: u32) -> Result<usize, Error> {
        let (encrypted, index) = self.rtcp_trailer(buf);
        let len = buf.len();
        match self {
            SessionKeys::Cm { rtcp, .. } => {
                let end = len - 10;
                let tag = rtcp.auth.mac(&[&buf[..end]]);
                if !bool::from(tag[..10].ct_eq(&buf[end..])) {
                    return Err(Error::AuthFailed);
                }
                let end = end - 4;
                if encrypted {
                    rtcp.cipher.apply_keystream(
                        &cm_iv(&rtcp.salt, ssrc, u64::from(index)),
                        &mut buf[RTCP_HEADER..end],
                    );
                }
                Ok(end)
            }
            SessionKeys::Gcm { rtcp, .. } => {
                let nonce = rtcp_nonce(&rtcp.salt, ssrc, index);
                let trailer = (u32::from(encrypted) << 31 | index).to_be_bytes();
                if encrypted {
                    let aad = rtcp_aad(&buf[..RTCP_HEADER], trailer);
                    let (_, body) = buf.split_at_mut(RTCP_HEADER);
                    let plain = rtcp
                        .key
                        .open_in_place(nonce, Aad::from(aad), &mut body[..len - RTCP_HEADER - 4])
                        .map_err(|_| Error::AuthFailed)?;
                    Ok(RTCP_HEADER + plain.len())
                } else {
                    // Authenticated only (RFC 7714 §9.2): the AAD is the whole
                    // RTCP packet followed by E flag and index. Move the
                    // trailer before the tag so the AAD is one slice.
                    buf[len - 20..].rotate_right(4);
                    let (aad, tag) = buf.split_at_mut(len - 16);
                    let tag = aead::Tag::try_from(&*tag).map_err(|_| Error::AuthFailed)?;
                    rtcp.key
                        .open_in_place_separate_tag(nonce, Aad::from(&*aad), tag, &mut [], 0..)
                        .map_err(|_| Error::AuthFailed)?;
                    Ok(len - 20)
                }
            }
        }
    }
}

/// AES-CM IV: (salt·2^16) XOR (SSRC·2^64) XOR (index·2^16) (RFC 3711 §4.1.1).
fn cm_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *b ^= s;
    }
    for (b, i) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *b ^= i;
    }
    iv
}

/// GCM SRTP IV: 00 00 || SSRC || ROC || SEQ, XOR salt (RFC 7714 §8.1).
fn rtp_nonce(salt: &[u8; 12], ssrc: u32, index: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[2..6].copy_from_slice(&ssrc.to_be_bytes());
    n[6..12].copy_from_slice(&index.to_be_bytes()[2..]);
    xor_salt(n, salt)
}

/// GCM SRTCP IV: 00 00 || SSRC || 00 00 || 0 || index, XOR salt (RFC 7714 §9.1).
fn rtcp_nonce(salt: &[u8; 12], ssrc: u32, index: u32) -> Nonce {
    let mut n = [0u8; 12];
    n[2..6].copy_from_slice(&ssrc.to_be_bytes());
    n[8..12].copy_from_slice(&index.to_be_bytes());
    xor_salt(n, salt)
}

fn xor_salt(mut n: [u8; 12], salt: &[u8; 12]) -> Nonce {
    for (b, s) in n.iter_mut().zip(salt) {
        *b ^= s;
    }
    Nonce::assume_unique_for_key(n)
}

/// GCM SRTCP AAD when encrypted: the 8 header bytes, then E flag and index.
fn rtcp_aad(header: &[u8], trailer: [u8; 4]) -> [u8; 12] {
    let mut aad = [0u8; 12];
    aad[..8].copy_from_slice(header);
    aad[8..].copy_from_slice(&trailer);
    aad
}

#[cfg(test)]
mod tests {
    //! RFC 7714 §16 and §17 packet vectors. They are stated for session
    //! keys (below the KDF, which RFC 3711 B.3 pins in `aes_cm`).
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    const KEY_128: &str = "000102030405060708090a0b0c0d0e0f";
    const KEY_256: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    /// "Quid pro quo".
    const SALT: &str = "517569642070726f2071756f";
    /// §16: SSRC 0x5501a0b2, SEQ 0xf17b, "Gallia est omnis divisa in partes tres".
    const RTP: &str = "8040f17b8041f8d35501a0b247616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573";
    /// §17.1 to §17.3: an RTCP SR of SSRC "Mars" under SRTCP index 0x5d4.
    const RTCP: &str = "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";

    fn gcm(key: &str) -> SessionKeys {
        let algorithm = if key.len() == 32 {
            &aead::AES_128_GCM
        } else {
            &aead::AES_256_GCM
        };
        let keys = || GcmKeys {
            key: LessSafeKey::new(UnboundKey::new(algorithm, &h(key)).unwrap()),
            salt: h(SALT).try_into().unwrap(),
        };
        SessionKeys::Gcm {
            rtp: keys(),
            rtcp: keys(),
        }
    }

    fn rtp_vector(key: &str, expected: &str) {
        let keys = gcm(key);
        let plain = h(RTP);
        let mut buf = plain.clone();
        buf.resize(plain.len() + 16, 0);
        let n = keys.protect_rtp(&mut buf, 12, plain.len(), 0x5501a0b2, 0xf17b);
        assert_eq!(hex::encode(&buf[..n]), expected);
        let n = keys
            .unprotect_rtp(&mut buf, 12, 0x5501a0b2, 0xf17b)
            .unwrap();
        assert_eq!(buf[..n], plain[..]);
    }

    fn rtcp_vector(key: &str, expected: &str) {
        let keys = gcm(key);
        let plain = h(RTCP);
        let mut buf = plain.clone();
        buf.resize(plain.len() + 20, 0);
        let n = keys.protect_rtcp(&mut buf, plain.len(), 0x4d617273, 0x5d4);
        assert_eq!(hex::encode(&buf[..n]), expected);
        assert_eq!(keys.rtcp_trailer(&buf), (true, 0x5d4));
        let n = keys.unprotect_rtcp(&mut buf, 0x4d617273).unwrap();
        assert_eq!(buf[..n], plain[..]);
    }

    /// RFC 7714 §16.1.1 and §16.1.2.
    #[test]
    fn rfc7714_16_1_srtp_aes_128_gcm() {
        rtp_vector(
            KEY_128,
            "8040f17b8041f8d35501a0b2f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce",
        );
    }

    /// RFC 7714 §16.2.1 and §16.2.2.
    #[test]
    fn rfc7714_16_2_srtp_aes_256_gcm() {
        rtp_vector(
            KEY_256,
            "8040f17b8041f8d35501a0b232b1de78a822fe12ef9f78fa332e33aab18012389a58e2f3b50b2a0276ffae0f1ba63799b87b7aa3db36dfffd6b0f9bb7878d7a76c13",
        );
    }

    /// RFC 7714 §17.1.
    #[test]
    fn rfc7714_17_1_srtcp_aes_128_gcm() {
        rtcp_vector(
            KEY_128,
            "81c8000d4d61727363e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda4ce09b4686303ded0bb9275bc84aa45896cf4d2fc5abf87245d9eade800005d4",
        );
    }

    /// RFC 7714 §17.2.
    #[test]
    fn rfc7714_17_2_srtcp_aes_256_gcm() {
        rtcp_vector(
            KEY_256,
            "81c8000d4d617273d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1110555be8415f658c61de0476f1b6fad1d1eb30c4446839f57ff6f6cb26ac3be800005d4",
        );
    }

    /// RFC 7714 §17.3/§17.4: authenticated-only SRTCP (E flag clear).
    #[test]
    fn rfc7714_17_3_srtcp_tag_only() {
        let keys = gcm(KEY_128);
        let mut buf = h(
            "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef841dd9683dd78ec92ae58790125f62b3000005d4",
        );
        assert_eq!(keys.rtcp_trailer(&buf), (false, 0x5d4));
        let n = keys.unprotect_rtcp(&mut buf, 0x4d617273).unwrap();
        assert_eq!(hex::encode(&buf[..n]), RTCP);
    }
}
