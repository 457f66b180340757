//! Web Push (RFC 8030) and UnifiedPush: message encryption (RFC 8291,
//! `aes128gcm` content coding of RFC 8188) and VAPID (RFC 8292).
//!
//! Both ends of the message encryption are here. [`encrypt`] is the
//! application server's side, what signald does for each push. [`UaKeys`]
//! and [`decrypt`] are the user agent's: the keys a device registers with a
//! subscription (`p256dh` and `auth`), and opening the body a push service
//! delivers. The body comes from whoever learnt the endpoint, so
//! [`decrypt`] checks every length and offset before using it and returns
//! an error, never panics, on any input (the `webpush_decrypt` fuzz target
//! runs it).

use ring::aead::{self, AES_128_GCM, LessSafeKey, UnboundKey};
use ring::agreement::{self, ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey};
use ring::hkdf::{self, HKDF_SHA256, KeyType, Salt};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::json;
use zeroize::Zeroizing;

use super::jwt::JwtKey;
use super::{Attempt, PushError, PushMessage, classify};
use crate::store::PushEndpoint;
use crate::util::{b64, unb64};

/// Record size written in the RFC 8188 header; our payloads are one record.
const RECORD_SIZE: u32 = 4096;
/// RFC 8188 §2.1: the header's salt.
const SALT_LEN: usize = 16;
/// RFC 8188 §2.1: the smallest valid record size (a delimiter and a tag).
const MIN_RECORD_SIZE: u32 = 18;
/// AES-128-GCM's authentication tag, at the end of every record.
const TAG_LEN: usize = 16;
/// An uncompressed P-256 point: `p256dh`, and the key id (RFC 8291 §4).
const P256_POINT_LEN: usize = 65;
/// RFC 8188 §2: the padding delimiter that ends the last record's content.
const LAST_RECORD: u8 = 2;
/// The largest plaintext [`encrypt`] takes: one record of [`RECORD_SIZE`]
/// holds it, the delimiter and the tag.
const MAX_PLAINTEXT: usize = RECORD_SIZE as usize - 1 - TAG_LEN;

struct Len(usize);
impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand(prk: &hkdf::Prk, info: &[&[u8]], out: &mut [u8]) -> Result<(), ring::error::Unspecified> {
    prk.expand(info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
}

/// The content-encryption key and nonce of a message, from the ECDH secret
/// of the two public keys: RFC 8291 §3.3, §3.4 (the input keying material,
/// salted with the auth secret and bound to both public keys), then RFC
/// 8188 §2.2, §2.3 (CEK and NONCE; a single record's nonce is NONCE).
fn message_key(
    ecdh_secret: &[u8],
    auth_secret: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    salt: &[u8],
) -> Result<(LessSafeKey, [u8; 12]), ring::error::Unspecified> {
    let prk = Salt::new(HKDF_SHA256, auth_secret).extract(ecdh_secret);
    let mut ikm = Zeroizing::new([0u8; 32]);
    expand(
        &prk,
        &[b"WebPush: info\0", ua_public, as_public],
        &mut ikm[..],
    )?;
    let prk = Salt::new(HKDF_SHA256, salt).extract(&ikm[..]);
    let mut cek = Zeroizing::new([0u8; 16]);
    let mut nonce = [0u8; 12];
    expand(&prk, &[b"Content-Encoding: aes128gcm\0"], &mut cek[..])?;
    expand(&prk, &[b"Content-Encoding: nonce\0"], &mut nonce)?;
    Ok((
        LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek[..])?),
        nonce,
    ))
}

/// Encrypts `plaintext` for a user agent (RFC 8291 §3.4): ECDH with a fresh
/// P-256 key, keys derived with the UA's auth secret, one `aes128gcm` record.
pub fn encrypt(
    ua_public: &[u8],
    auth_secret: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, PushError> {
    if ua_public.len() != P256_POINT_LEN || auth_secret.len() != 16 {
        return Err(PushError::Key("bad p256dh or auth"));
    }
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(PushError::TooLarge);
    }
    let rng = SystemRandom::new();
    let eph = EphemeralPrivateKey::generate(&ECDH_P256, &rng).map_err(|_| PushError::Crypto)?;
    let mut salt = [0u8; SALT_LEN];
    rng.fill(&mut salt).map_err(|_| PushError::Crypto)?;
    // Padding delimiter 0x02 marks the last (only) record (RFC 8188 §2).
    let mut content = Vec::with_capacity(plaintext.len() + 1);
    content.extend_from_slice(plaintext);
    content.push(LAST_RECORD);
    seal(eph, &salt, RECORD_SIZE, ua_public, auth_secret, &content)
}

/// Seals `content` (a record's plaintext with its padding delimiter and any
/// padding already appended) as one `aes128gcm` record from the application
/// server key `eph` and `salt`, behind a header giving the record size
/// `rs`. Sizes are the caller's to check: tests and the fuzz target seal
/// records a user agent must refuse.
fn seal(
    eph: EphemeralPrivateKey,
    salt: &[u8; SALT_LEN],
    rs: u32,
    ua_public: &[u8],
    auth_secret: &[u8],
    content: &[u8],
) -> Result<Vec<u8>, PushError> {
    let as_public = eph.compute_public_key().map_err(|_| PushError::Crypto)?;
    let as_public = as_public.as_ref();
    let idlen = u8::try_from(as_public.len()).map_err(|_| PushError::Crypto)?;
    let (key, nonce) = agreement::agree_ephemeral(
        eph,
        &UnparsedPublicKey::new(&ECDH_P256, ua_public),
        |ecdh| message_key(ecdh, auth_secret, ua_public, as_public, salt),
    )
    .map_err(|_| PushError::Key("p256dh is not a P-256 point"))?
    .map_err(|_| PushError::Crypto)?;
    // RFC 8188 §2.1: salt | rs | idlen | keyid, then the record.
    let mut body = Vec::with_capacity(SALT_LEN + 4 + 1 + as_public.len() + content.len() + TAG_LEN);
    body.extend_from_slice(salt);
    body.extend_from_slice(&rs.to_be_bytes());
    body.push(idlen);
    body.extend_from_slice(as_public);
    let header_len = body.len();
    body.extend_from_slice(content);
    let tag = key
        .seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::empty(),
            &mut body[header_len..],
        )
        .map_err(|_| PushError::Crypto)?;
    body.extend_from_slice(tag.as_ref());
    Ok(body)
}

/// Why a Web Push message body does not decrypt ([`decrypt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// Shorter than the `aes128gcm` header it must start with (RFC 8188
    /// §2.1), or than the key id its header announces.
    #[error("truncated aes128gcm header")]
    Header,
    /// The header's key id is not the sender's P-256 public key (RFC 8291
    /// §4: an uncompressed point on the curve).
    #[error("the key id is not a P-256 public key")]
    KeyId,
    /// Not exactly one record within the header's record size, or a record
    /// size below RFC 8188's minimum of 18, or a record too short to hold
    /// a padding delimiter and the tag.
    #[error("not a single aes128gcm record")]
    Record,
    /// Authentication failed: encrypted for other keys (or another auth
    /// secret), or altered on the way.
    #[error("does not open with this subscription's keys")]
    Open,
    /// The decrypted record does not end as a last record must (RFC 8188
    /// §2: its last non-zero octet is the delimiter 2).
    #[error("bad record padding")]
    Padding,
    /// The subscription's own key could not be made or used (a scalar
    /// that is not a P-256 private key, a failed random source).
    #[error("subscription key")]
    Key,
}

/// A user agent's keys for one push subscription (RFC 8291 §2, §3.2): a
/// P-256 key pair, whose public point it registers as `p256dh`, and the
/// 16-octet auth secret it registers as `auth`. [`decrypt`] opens the
/// pushes sent to the subscription with them.
#[derive(Clone)]
pub struct UaKeys {
    /// Private scalar, big-endian.
    private: Zeroizing<[u8; 32]>,
    /// Uncompressed public point.
    public: [u8; P256_POINT_LEN],
    /// The auth secret.
    auth: Zeroizing<[u8; 16]>,
}

impl std::fmt::Debug for UaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UaKeys")
            .field("public", &b64(&self.public))
            .finish_non_exhaustive()
    }
}

/// *ring* makes ECDH private keys only from its random source and for one
/// agreement; a subscription's key is long-lived and decrypts every push,
/// so it is rebuilt for each from its scalar, given as the random source's
/// output (with *ring*'s fixed-output source, which *ring* 0.17 keeps under
/// a deprecated name). The `p256` crate takes a scalar directly, but is not
/// in this workspace. A scalar that is not a private key (0, or not below
/// the group order) is refused: *ring* draws again, gets the same bytes,
/// and gives up.
#[allow(deprecated)]
fn p256_key(private: &[u8; 32]) -> Result<EphemeralPrivateKey, DecryptError> {
    let scalar = ring::test::rand::FixedSliceRandom { bytes: private };
    EphemeralPrivateKey::generate(&ECDH_P256, &scalar).map_err(|_| DecryptError::Key)
}

impl UaKeys {
    /// Fresh keys, from the system's random source.
    pub fn generate() -> Result<Self, DecryptError> {
        let rng = SystemRandom::new();
        let mut auth = [0u8; 16];
        rng.fill(&mut auth).map_err(|_| DecryptError::Key)?;
        // A random 256-bit string is a valid scalar but for about 2^-32 of
        // them; those are drawn again.
        for _ in 0..8 {
            let mut private = Zeroizing::new([0u8; 32]);
            rng.fill(&mut private[..]).map_err(|_| DecryptError::Key)?;
            if let Ok(keys) = Self::from_private(*private, auth) {
                return Ok(keys);
            }
        }
        Err(DecryptError::Key)
    }

    /// The keys of the private scalar `private` (big-endian) and the auth
    /// secret `auth`; [`DecryptError::Key`] if `private` is not a P-256
    /// private key.
    pub fn from_private(private: [u8; 32], auth: [u8; 16]) -> Result<Self, DecryptError> {
        let private = Zeroizing::new(private);
        let public = p256_key(&private)?
            .compute_public_key()
            .map_err(|_| DecryptError::Key)?;
        Ok(Self {
            public: public.as_ref().try_into().map_err(|_| DecryptError::Key)?,
            private,
            auth: Zeroizing::new(auth),
        })
    }

    /// The uncompressed public point (`p256dh`).
    pub fn public(&self) -> &[u8; P256_POINT_LEN] {
        &self.public
    }

    /// The auth secret (`auth`).
    pub fn auth(&self) -> &[u8; 16] {
        &self.auth
    }
}

/// Decrypts a Web Push message body (RFC 8291 over the `aes128gcm` content
/// coding of RFC 8188) with the user agent's keys, and returns the
/// plaintext without its padding.
///
/// RFC 8291 §4 sends a push as a single record, so a body of more than one
/// record is refused ([`DecryptError::Record`]), as is a record whose
/// padding is not a last record's ([`DecryptError::Padding`]). The record
/// size in the header is not authenticated (RFC 8188 §2.2 derives no key
/// from it): a body whose record size was changed still opens if its one
/// record fits the new size.
pub fn decrypt(ua: &UaKeys, body: &[u8]) -> Result<Vec<u8>, DecryptError> {
    // RFC 8188 §2.1: salt (16) | rs (4, big-endian) | idlen (1) | keyid.
    let (salt, rest) = body
        .split_first_chunk::<SALT_LEN>()
        .ok_or(DecryptError::Header)?;
    let (rs, rest) = rest.split_first_chunk::<4>().ok_or(DecryptError::Header)?;
    let rs = u32::from_be_bytes(*rs);
    let (&idlen, rest) = rest.split_first().ok_or(DecryptError::Header)?;
    let (as_public, record) = rest
        .split_at_checked(usize::from(idlen))
        .ok_or(DecryptError::Header)?;
    // RFC 8291 §4: the key id is the application server's public key,
    // an uncompressed P-256 point.
    if as_public.len() != P256_POINT_LEN {
        return Err(DecryptError::KeyId);
    }
    // RFC 8291 §4: one record, so no longer than rs; RFC 8188 §2.1: rs is
    // at least 18, and a record holds at least the delimiter and the tag.
    let within_rs = u32::try_from(record.len()).is_ok_and(|len| len <= rs);
    if rs < MIN_RECORD_SIZE || !within_rs || record.len() < 1 + TAG_LEN {
        return Err(DecryptError::Record);
    }
    let (key, nonce) = agreement::agree_ephemeral(
        p256_key(&ua.private)?,
        &UnparsedPublicKey::new(&ECDH_P256, as_public),
        |ecdh| message_key(ecdh, &ua.auth[..], &ua.public, as_public, salt),
    )
    .map_err(|_| DecryptError::KeyId)?
    .map_err(|_| DecryptError::Key)?;
    let mut plain = record.to_vec();
    let len = key
        .open_in_place(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::empty(),
            &mut plain,
        )
        .map_err(|_| DecryptError::Open)?
        .len();
    plain.truncate(len);
    // RFC 8188 §2: the delimiter is the last non-zero octet (none is an
    // error), and a last record's is 2; the zeros after it are padding.
    let delimiter = plain
        .iter()
        .rposition(|&b| b != 0)
        .filter(|&i| plain.get(i) == Some(&LAST_RECORD))
        .ok_or(DecryptError::Padding)?;
    plain.truncate(delimiter);
    Ok(plain)
}

/// RFC 8291 §5 ("Push Message Encryption Example") and Appendix A: the
/// user agent's private key and auth secret, the application server's
/// private key, and the salt. The fuzz target and the tests use them.
const RFC8291_UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
const RFC8291_AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
const RFC8291_AS_PRIVATE: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
const RFC8291_SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";

/// One of the fixed keys above, decoded.
fn rfc8291<const N: usize>(b64: &str) -> [u8; N] {
    unb64(b64)
        .and_then(|bytes| bytes.try_into().ok())
        .expect("an RFC 8291 §5 value")
}

/// Fuzz entry point for [`decrypt`] (the `webpush_decrypt` target); panics
/// only on a bug. `data` is decrypted as a body with fixed keys (RFC 8291
/// §5's), and, past a 32-octet scalar and a 16-octet auth secret, with keys
/// of its own. Then, past a 4-octet record size, it is taken as a record's
/// content and sealed for the fixed keys, so that it authenticates: it must
/// decrypt to what RFC 8188 §2 says such a record holds, and the same body
/// altered anywhere but in its (unauthenticated) record size must not open.
#[doc(hidden)]
pub fn fuzz_decrypt(data: &[u8]) {
    static UA: std::sync::OnceLock<UaKeys> = std::sync::OnceLock::new();
    let ua = UA.get_or_init(|| {
        UaKeys::from_private(rfc8291(RFC8291_UA_PRIVATE), rfc8291(RFC8291_AUTH))
            .expect("RFC 8291 §5's keys")
    });
    let _ = decrypt(ua, data);
    if let Some((private, rest)) = data.split_first_chunk::<32>()
        && let Some((auth, body)) = rest.split_first_chunk::<16>()
        && let Ok(keys) = UaKeys::from_private(*private, *auth)
    {
        let _ = decrypt(&keys, body);
    }

    let Some((rs, content)) = data.split_first_chunk::<4>() else {
        return;
    };
    let rs = u32::from_be_bytes(*rs);
    let as_key = p256_key(&rfc8291(RFC8291_AS_PRIVATE)).expect("RFC 8291 §5's key");
    let salt = rfc8291(RFC8291_SALT);
    let mut body = seal(as_key, &salt, rs, ua.public(), ua.auth(), content).expect("sealing");
    let fits = u64::try_from(content.len() + TAG_LEN).is_ok_and(|len| len <= u64::from(rs));
    let expected = if rs < MIN_RECORD_SIZE || !fits || content.is_empty() {
        Err(DecryptError::Record)
    } else {
        match content.iter().rposition(|&b| b != 0) {
            Some(i) if content[i] == LAST_RECORD => Ok(content[..i].to_vec()),
            _ => Err(DecryptError::Padding),
        }
    };
    assert_eq!(decrypt(ua, &body), expected, "rs {rs}, content {content:?}");
    if let (Ok(_), Some(&first)) = (&expected, content.first()) {
        let i = (usize::from(first) << 8 | content.len()) % body.len();
        if !(SALT_LEN..SALT_LEN + 4).contains(&i) {
            body[i] ^= 1 << (content.len() % 8);
            assert!(decrypt(ua, &body).is_err(), "altered at {i}: opened");
        }
    }
}

/// The Web Push / UnifiedPush sender, identified to push services by VAPID.
#[derive(Debug)]
pub struct WebPush {
    vapid: JwtKey,
    subject: String,
    http: reqwest::Client,
    allow_hosts: Vec<String>,
}

impl WebPush {
    /// A sender signing with `vapid` (P-256) and naming `subject`
    /// (`mailto:` or `https:` contact, RFC 8292 §2.1).
    /// Endpoints must pass [`super::check_endpoint`] with `allow_hosts`;
    /// give it an `http` client that resolves with [`super::PublicResolver`]
    /// and follows no redirects.
    pub fn new(
        vapid: JwtKey,
        subject: String,
        http: reqwest::Client,
        allow_hosts: Vec<String>,
    ) -> Self {
        Self {
            vapid,
            subject,
            http,
            allow_hosts,
        }
    }

    /// The VAPID public key (base64url), the `applicationServerKey` apps use.
    pub fn public_key_b64(&self) -> String {
        b64(&self.vapid.public_key())
    }

    /// `Authorization: vapid t=…,k=…` for a push resource (RFC 8292 §3).
    pub fn authorization(&self, endpoint: &str, now_s: u64) -> Result<String, PushError> {
        let url = reqwest::Url::parse(endpoint).map_err(|_| PushError::Endpoint)?;
        let aud = url.origin().ascii_serialization();
        // At most 24 h ahead (RFC 8292 §2); 12 h leaves room for skew.
        let claims = json!({"aud": aud, "exp": now_s + 12 * 3600, "sub": self.subject});
        let jwt = self.vapid.sign(json!({}), &claims)?;
        Ok(format!("vapid t={jwt},k={}", self.public_key_b64()))
    }

    /// One delivery attempt.
    pub async fn send(&self, ep: &PushEndpoint, msg: &PushMessage, now_s: u64) -> Attempt {
        // Stored before the checks existed, or the allow list changed.
        if super::check_endpoint(&ep.endpoint, &self.allow_hosts).is_err() {
            return Attempt::Gone;
        }
        let (Some(p256dh), Some(auth)) = (unb64(&ep.p256dh), unb64(&ep.auth)) else {
            return Attempt::Gone;
        };
        let body = match encrypt(&p256dh, &auth, msg.payload().as_bytes()) {
            Ok(b) => b,
            Err(_) => return Attempt::Gone,
        };
        let authz = match self.authorization(&ep.endpoint, now_s) {
            Ok(a) => a,
            Err(_) => return Attempt::Gone,
        };
        let res = self
            .http
            .post(&ep.endpoint)
            .header("TTL", msg.ttl_s.to_string())
            .header("Urgency", "high")
            .header("Topic", msg.topic())
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .header("Authorization", authz)
            .body(body)
            .send()
            .await;
        classify(res, |_, _| false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 8291 §5: the user agent's public key.
    const RFC8291_UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    /// RFC 8291 §5: the application server's public key (the key id).
    const RFC8291_AS_PUBLIC: &str =
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    /// RFC 8291 §5: the whole push message body.
    const RFC8291_BODY: &str = concat!(
        "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml",
        "mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT",
        "pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
    );
    /// RFC 8291 §5: the plaintext.
    const RFC8291_PLAINTEXT: &str = "When I grow up, I want to be a watermelon";
    /// Where the record starts in a body with a P-256 key id.
    const RECORD_AT: usize = SALT_LEN + 4 + 1 + P256_POINT_LEN;

    fn rfc_keys() -> UaKeys {
        UaKeys::from_private(rfc8291(RFC8291_UA_PRIVATE), rfc8291(RFC8291_AUTH)).unwrap()
    }

    /// `content` sealed for `ua` as one record under record size `rs`,
    /// with a fresh application server key and salt.
    fn seal_for(ua: &UaKeys, rs: u32, content: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        let eph = EphemeralPrivateKey::generate(&ECDH_P256, &rng).unwrap();
        let mut salt = [0u8; SALT_LEN];
        rng.fill(&mut salt).unwrap();
        seal(eph, &salt, rs, ua.public(), ua.auth(), content).unwrap()
    }

    #[test]
    fn rejects_bad_keys_and_oversize() {
        assert!(encrypt(&[4; 10], &[0; 16], b"x").is_err());
        assert!(encrypt(&[4; 65], &[0; 16], b"x").is_err()); // not on the curve
        assert!(matches!(
            encrypt(&[4; 65], &[0; 16], &[0; 5000]),
            Err(PushError::TooLarge)
        ));
        let ua = UaKeys::generate().unwrap();
        let most = vec![7; MAX_PLAINTEXT];
        let body = encrypt(ua.public(), ua.auth(), &most).unwrap();
        assert_eq!(
            body.len() - RECORD_AT,
            RECORD_SIZE as usize,
            "a full record"
        );
        assert_eq!(decrypt(&ua, &body).unwrap(), most);
        assert!(matches!(
            encrypt(ua.public(), ua.auth(), &[7; MAX_PLAINTEXT + 1]),
            Err(PushError::TooLarge)
        ));
    }

    #[test]
    fn decrypts_the_rfc_8291_example() {
        let ua = rfc_keys();
        // The scalar taken as ring's key gives the RFC's public key.
        assert_eq!(ua.public().as_slice(), unb64(RFC8291_UA_PUBLIC).unwrap());
        let body = unb64(RFC8291_BODY).unwrap();
        // The header as RFC 8291 §5 lays it out: salt, rs 4096, the key id.
        assert_eq!(body[..16], unb64(RFC8291_SALT).unwrap());
        assert_eq!(body[16..20], 4096u32.to_be_bytes());
        assert_eq!(body[20], 65);
        assert_eq!(body[21..86], unb64(RFC8291_AS_PUBLIC).unwrap());
        assert_eq!(decrypt(&ua, &body).unwrap(), RFC8291_PLAINTEXT.as_bytes());
    }

    #[test]
    fn encrypts_the_rfc_8291_example() {
        // With the RFC's application server key and salt, sealing gives
        // the RFC's body octet for octet.
        let ua = rfc_keys();
        let as_key = p256_key(&rfc8291(RFC8291_AS_PRIVATE)).unwrap();
        let mut content = RFC8291_PLAINTEXT.as_bytes().to_vec();
        content.push(LAST_RECORD);
        let body = seal(
            as_key,
            &rfc8291(RFC8291_SALT),
            RECORD_SIZE,
            ua.public(),
            ua.auth(),
            &content,
        )
        .unwrap();
        assert_eq!(b64(&body), RFC8291_BODY);
    }

    #[test]
    fn a_push_for_other_keys_or_altered_does_not_open() {
        let body = unb64(RFC8291_BODY).unwrap();
        let ua = rfc_keys();
        let other = UaKeys::generate().unwrap();
        assert_eq!(decrypt(&other, &body), Err(DecryptError::Open));
        let wrong_auth = UaKeys::from_private(*ua.private, [0; 16]).unwrap();
        assert_eq!(decrypt(&wrong_auth, &body), Err(DecryptError::Open));
        for i in [0, 30, 90, body.len() - 1] {
            let mut bad = body.clone();
            bad[i] ^= 1;
            assert!(decrypt(&ua, &bad).is_err(), "byte {i} altered");
        }
        for n in 0..body.len() {
            assert!(decrypt(&ua, &body[..n]).is_err(), "cut to {n}");
        }
        // A record larger than the header's record size.
        let mut big_record = body.clone();
        big_record[16..20].copy_from_slice(&18u32.to_be_bytes());
        assert_eq!(decrypt(&ua, &big_record), Err(DecryptError::Record));
        // Key ids that are not a point, or longer than the body.
        for (idlen, error) in [
            (0, DecryptError::KeyId),
            (64, DecryptError::KeyId),
            (66, DecryptError::KeyId),
            (255, DecryptError::Header),
        ] {
            let mut bad = body.clone();
            bad[20] = idlen;
            assert_eq!(decrypt(&ua, &bad), Err(error), "idlen {idlen}");
        }
        // 65 octets, but not on the curve.
        let mut off_curve = body.clone();
        off_curve[21..86].fill(4);
        assert_eq!(decrypt(&ua, &off_curve), Err(DecryptError::KeyId));
    }

    #[test]
    fn every_altered_octet_is_refused_but_the_record_size() {
        let ua = UaKeys::generate().unwrap();
        let body = encrypt(ua.public(), ua.auth(), b"wake for call 1234").unwrap();
        let record_len = body.len() - RECORD_AT;
        for i in 0..body.len() {
            for bit in 0..8 {
                let mut bad = body.clone();
                bad[i] ^= 1 << bit;
                let opened = decrypt(&ua, &bad);
                if !(16..20).contains(&i) {
                    assert!(opened.is_err(), "octet {i} bit {bit} altered: opened");
                    continue;
                }
                // RFC 8188 derives no key from rs: a changed one is only
                // a different bound on the one record.
                let rs = u32::from_be_bytes(bad[16..20].try_into().unwrap());
                if rs as usize >= record_len {
                    assert_eq!(opened.unwrap(), b"wake for call 1234", "rs {rs}");
                } else {
                    assert_eq!(opened, Err(DecryptError::Record), "rs {rs}");
                }
            }
        }
    }

    #[test]
    fn another_auth_secret_or_key_does_not_open() {
        let ua = UaKeys::generate().unwrap();
        let body = encrypt(ua.public(), ua.auth(), b"hello").unwrap();
        let mut auth = *ua.auth();
        auth[15] ^= 1;
        let wrong_auth = UaKeys::from_private(*ua.private, auth).unwrap();
        assert_eq!(decrypt(&wrong_auth, &body), Err(DecryptError::Open));
        // Encrypted with the wrong auth secret, for the right key.
        let body = encrypt(ua.public(), &auth, b"hello").unwrap();
        assert_eq!(decrypt(&ua, &body), Err(DecryptError::Open));
        let other = UaKeys::generate().unwrap();
        assert_eq!(decrypt(&other, &body), Err(DecryptError::Open));
    }

    #[test]
    fn records_with_wrong_padding_are_refused() {
        let ua = UaKeys::generate().unwrap();
        for (content, opened) in [
            // RFC 8188 §2: the delimiter is the last non-zero octet, and
            // zeros of the content before it are content.
            (&b"\x02"[..], Ok(&b""[..])),
            (b"hi\x02", Ok(b"hi")),
            (b"hi\x02\0\0\0", Ok(b"hi")),
            (b"\0\0\x02\0", Ok(b"\0\0")),
            (b"ab\0\0\x02", Ok(b"ab\0\0")),
            // A delimiter of a record that is not the last.
            (b"hi\x01", Err(DecryptError::Padding)),
            (b"hi\x01\0\0", Err(DecryptError::Padding)),
            // No delimiter: other octets end it, or none is non-zero.
            (b"hi", Err(DecryptError::Padding)),
            (b"hi\x03", Err(DecryptError::Padding)),
            (b"\0", Err(DecryptError::Padding)),
            (b"\0\0\0\0", Err(DecryptError::Padding)),
            // Not even a delimiter: only the tag.
            (b"", Err(DecryptError::Record)),
        ] {
            let body = seal_for(&ua, RECORD_SIZE, content);
            assert_eq!(
                decrypt(&ua, &body),
                opened.map(<[u8]>::to_vec),
                "{content:?}"
            );
        }
    }

    #[test]
    fn the_record_size_is_checked() {
        let ua = UaKeys::generate().unwrap();
        let content = b"0123456789\x02";
        let record_len = (content.len() + TAG_LEN) as u32;
        for (rs, fits) in [
            (0, false),
            (17, false),
            (record_len - 1, false),
            (record_len, true),
            (record_len + 1, true),
            (RECORD_SIZE, true),
            (u32::MAX, true),
        ] {
            let body = seal_for(&ua, rs, content);
            let opened = decrypt(&ua, &body);
            if fits {
                assert_eq!(opened.unwrap(), b"0123456789", "rs {rs}");
            } else {
                assert_eq!(opened, Err(DecryptError::Record), "rs {rs}");
            }
        }
        // The smallest record size holds the smallest record.
        let body = seal_for(&ua, MIN_RECORD_SIZE, b"a\x02");
        assert_eq!(decrypt(&ua, &body).unwrap(), b"a");
        let body = seal_for(&ua, MIN_RECORD_SIZE, b"\x02");
        assert_eq!(decrypt(&ua, &body).unwrap(), b"");
        assert_eq!(
            decrypt(&ua, &seal_for(&ua, MIN_RECORD_SIZE, b"ab\x02")),
            Err(DecryptError::Record)
        );
        // Two records, each within rs: a push is one (RFC 8291 §4).
        let mut two = seal_for(&ua, 20, b"ab\x01");
        two.extend_from_slice(&[0; 19]);
        assert_eq!(decrypt(&ua, &two), Err(DecryptError::Record));
    }

    #[test]
    fn keys_are_p256_scalars() {
        assert_eq!(
            UaKeys::from_private([0; 32], [1; 16]).unwrap_err(),
            DecryptError::Key
        );
        // Not below the group order.
        assert_eq!(
            UaKeys::from_private([0xff; 32], [1; 16]).unwrap_err(),
            DecryptError::Key
        );
        let a = UaKeys::generate().unwrap();
        let b = UaKeys::generate().unwrap();
        assert_ne!(a.public(), b.public());
        assert_ne!(a.auth(), b.auth());
        let again = UaKeys::from_private(*a.private, *a.auth()).unwrap();
        assert_eq!(again.public(), a.public());
        assert_eq!(a.public()[0], 4, "uncompressed");
        assert!(!format!("{a:?}").contains(&b64(&a.private[..])));
    }

    #[test]
    fn the_fuzz_entry_point_takes_hostile_bodies() {
        let rfc = unb64(RFC8291_BODY).unwrap();
        let mut with_keys = rfc8291::<32>(RFC8291_UA_PRIVATE).to_vec();
        with_keys.extend_from_slice(&rfc8291::<16>(RFC8291_AUTH));
        with_keys.extend_from_slice(&rfc);
        for data in [
            &b""[..],
            b"\0\0\0",
            b"\0\0\x10\0hi\x02",
            b"\0\0\0\x12\x02",
            b"\xff\xff\xff\xffhi\x02\0\0",
            b"\0\0\x10\0\0\0",
            &rfc,
            &with_keys,
            &[0xff; 200],
        ] {
            fuzz_decrypt(data);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn what_signald_encrypts_decrypts(
            plaintext in proptest::collection::vec(any::<u8>(), 0..=MAX_PLAINTEXT),
        ) {
            let ua = UaKeys::generate().unwrap();
            let body = encrypt(ua.public(), ua.auth(), &plaintext).unwrap();
            prop_assert_eq!(decrypt(&ua, &body).unwrap(), plaintext);
        }

        #[test]
        fn any_record_size_and_padding_decrypt(
            plaintext in proptest::collection::vec(any::<u8>(), 0..600),
            padding in 0usize..100,
            slack in prop_oneof![Just(0u32), 1u32..64, Just(u32::MAX)],
        ) {
            let ua = UaKeys::generate().unwrap();
            let mut content = plaintext.clone();
            content.push(LAST_RECORD);
            content.resize(content.len() + padding, 0);
            let record_len = u32::try_from(content.len() + TAG_LEN).unwrap();
            let rs = record_len.saturating_add(slack);
            let body = seal_for(&ua, rs, &content);
            prop_assert_eq!(decrypt(&ua, &body).unwrap(), plaintext);
        }

        #[test]
        fn decrypt_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            fuzz_decrypt(&data);
        }
    }
}
