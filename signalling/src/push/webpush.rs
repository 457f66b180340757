//! Web Push (RFC 8030) and UnifiedPush: message encryption (RFC 8291,
//! `aes128gcm` content coding of RFC 8188) and VAPID (RFC 8292).

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

struct Len(usize);
impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand(prk: &hkdf::Prk, info: &[&[u8]], out: &mut [u8]) -> Result<(), PushError> {
    prk.expand(info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| PushError::Crypto)
}

/// Encrypts `plaintext` for a user agent (RFC 8291 §3.4): ECDH with a fresh
/// P-256 key, keys derived with the UA's auth secret, one `aes128gcm` record.
pub fn encrypt(
    ua_public: &[u8],
    auth_secret: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, PushError> {
    if ua_public.len() != 65 || auth_secret.len() != 16 {
        return Err(PushError::Key("bad p256dh or auth"));
    }
    if plaintext.len() + 1 + 16 > RECORD_SIZE as usize {
        return Err(PushError::TooLarge);
    }
    let rng = SystemRandom::new();
    let eph = EphemeralPrivateKey::generate(&ECDH_P256, &rng).map_err(|_| PushError::Crypto)?;
    let as_public = eph.compute_public_key().map_err(|_| PushError::Crypto)?;
    let as_public = as_public.as_ref().to_vec();
    let mut ikm = Zeroizing::new([0u8; 32]);
    agreement::agree_ephemeral(
        eph,
        &UnparsedPublicKey::new(&ECDH_P256, ua_public),
        |ecdh| {
            let prk_key = Salt::new(HKDF_SHA256, auth_secret).extract(ecdh);
            expand(
                &prk_key,
                &[b"WebPush: info\0", ua_public, &as_public],
                &mut ikm[..],
            )
        },
    )
    .map_err(|_| PushError::Key("p256dh is not a P-256 point"))??;
    let mut salt = [0u8; 16];
    rng.fill(&mut salt).map_err(|_| PushError::Crypto)?;
    let prk = Salt::new(HKDF_SHA256, &salt).extract(&ikm[..]);
    let mut cek = Zeroizing::new([0u8; 16]);
    let mut nonce = [0u8; 12];
    expand(&prk, &[b"Content-Encoding: aes128gcm\0"], &mut cek[..])?;
    expand(&prk, &[b"Content-Encoding: nonce\0"], &mut nonce)?;
    let key =
        LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek[..]).map_err(|_| PushError::Crypto)?);
    // Padding delimiter 0x02 marks the last (only) record (RFC 8188 §2).
    let mut record = Vec::with_capacity(plaintext.len() + 17);
    record.extend_from_slice(plaintext);
    record.push(2);
    key.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(nonce),
        aead::Aad::empty(),
        &mut record,
    )
    .map_err(|_| PushError::Crypto)?;
    let mut body = Vec::with_capacity(16 + 4 + 1 + 65 + record.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(as_public.len() as u8);
    body.extend_from_slice(&as_public);
    body.extend_from_slice(&record);
    Ok(body)
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

    #[test]
    fn rejects_bad_keys_and_oversize() {
        assert!(encrypt(&[4; 10], &[0; 16], b"x").is_err());
        assert!(encrypt(&[4; 65], &[0; 16], b"x").is_err()); // not on the curve
        assert!(matches!(
            encrypt(&[4; 65], &[0; 16], &[0; 5000]),
            Err(PushError::TooLarge)
        ));
    }
}
