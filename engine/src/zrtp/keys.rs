//! Key derivation (RFC 6189 §4.4.1.4, §4.4.3, §4.5).

use super::algo::Suite;
use super::crypto::{hash, kdf};
use super::message::Zid;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// SRTP master keys and salts for both directions.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SrtpSecrets {
    /// Key the initiator encrypts with.
    pub initiator_key: Vec<u8>,
    /// Salt the initiator encrypts with (112 bits).
    pub initiator_salt: Vec<u8>,
    /// Key the responder encrypts with.
    pub responder_key: Vec<u8>,
    /// Salt the responder encrypts with.
    pub responder_salt: Vec<u8>,
}

impl std::fmt::Debug for SrtpSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SrtpSecrets(..)")
    }
}

/// Everything derived from s0.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct Derived {
    pub(crate) srtp: SrtpSecrets,
    pub(crate) mackey_i: Vec<u8>,
    pub(crate) mackey_r: Vec<u8>,
    pub(crate) zrtpkey_i: Vec<u8>,
    pub(crate) zrtpkey_r: Vec<u8>,
    pub(crate) zrtp_sess: Vec<u8>,
    pub(crate) exported: Vec<u8>,
    pub(crate) new_rs1: Vec<u8>,
    #[zeroize(skip)]
    pub(crate) sas_value: u32,
}

/// KDF_Context = ZIDi || ZIDr || total_hash.
pub(crate) fn kdf_context(zidi: &Zid, zidr: &Zid, total_hash: &[u8]) -> Vec<u8> {
    [&zidi[..], &zidr[..], total_hash].concat()
}

/// s0 in DH mode (§4.4.1.4): hash(counter || DHResult || "ZRTP-HMAC-KDF"
/// || ZIDi || ZIDr || total_hash || len(s1) || s1 || len(s2) || s2 ||
/// len(s3) || s3), an absent secret counting as length 0.
pub(crate) fn s0_dh(
    suite: &Suite,
    dh_result: &[u8],
    zidi: &Zid,
    zidr: &Zid,
    total_hash: &[u8],
    secrets: [Option<&[u8]>; 3],
) -> Zeroizing<Vec<u8>> {
    let lens: Vec<[u8; 4]> = secrets
        .iter()
        .map(|s| (s.map_or(0, |s| s.len()) as u32).to_be_bytes())
        .collect();
    let mut parts: Vec<&[u8]> = vec![
        &[0, 0, 0, 1],
        dh_result,
        b"ZRTP-HMAC-KDF",
        zidi,
        zidr,
        total_hash,
    ];
    for (len, s) in lens.iter().zip(secrets) {
        parts.push(len);
        if let Some(s) = s {
            parts.push(s);
        }
    }
    Zeroizing::new(hash(suite.hash, &parts))
}

/// s0 in multistream mode (§4.4.3.2): KDF(ZRTPSess, "ZRTP MSK", KDF_Context, hash length).
pub(crate) fn s0_multistream(
    suite: &Suite,
    zrtp_sess: &[u8],
    context: &[u8],
) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(kdf(
        suite.hash,
        zrtp_sess,
        b"ZRTP MSK",
        context,
        suite.hash.output_len(),
    ))
}

/// All session keys from s0 (§4.5.2, §4.5.3, §4.6.1).
pub(crate) fn derive(suite: &Suite, s0: &[u8], context: &[u8]) -> Derived {
    let h = suite.hash;
    let hl = h.output_len();
    let kl = suite.cipher.key_len();
    let k = |label: &[u8], len: usize| kdf(h, s0, label, context, len);
    let sashash = k(b"SAS", 32);
    Derived {
        srtp: SrtpSecrets {
            initiator_key: k(b"Initiator SRTP master key", kl),
            initiator_salt: k(b"Initiator SRTP master salt", 14),
            responder_key: k(b"Responder SRTP master key", kl),
            responder_salt: k(b"Responder SRTP master salt", 14),
        },
        mackey_i: k(b"Initiator HMAC key", hl),
        mackey_r: k(b"Responder HMAC key", hl),
        zrtpkey_i: k(b"Initiator ZRTP key", kl),
        zrtpkey_r: k(b"Responder ZRTP key", kl),
        zrtp_sess: k(b"ZRTP Session Key", hl),
        exported: k(b"Exported key", hl),
        new_rs1: k(b"retained secret", 32),
        sas_value: u32::from_be_bytes([sashash[0], sashash[1], sashash[2], sashash[3]]),
    }
}
