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
use super::hmac_sha1::HmacSha1;
use super::{Error, Profile};

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
