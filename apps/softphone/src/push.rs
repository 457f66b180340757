//! A local UnifiedPush-style distributor: an HTTP endpoint that takes the
//! Web Push requests (RFC 8030, aes128gcm body per RFC 8291) signald sends
//! for a sleeping device, decrypts each with its subscription's keys as
//! the device's user agent would, and hands it on to wake that device's
//! signalling client.
//!
//! Decryption uses *ring*'s P-256 ECDH, HKDF-SHA-256 and AES-128-GCM, the
//! primitives signald encrypts with (`sotto_signalling::push::webpush`).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::agreement::{ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey, agree_ephemeral};
use ring::hkdf::{self, HKDF_SHA256, KeyType, Salt};
use ring::rand::{SecureRandom as _, SystemRandom};
use sotto_signalling::util::b64;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// One push as received.
#[derive(Debug, Clone)]
pub struct Push {
    /// The subscription it was for (the endpoint's last path segment).
    pub subscription: String,
    /// `Topic` header (signald collapses by call id).
    pub topic: Option<String>,
    /// `TTL` header, seconds.
    pub ttl: Option<u64>,
    /// Encrypted body length.
    pub body_len: usize,
    /// The message, decrypted with the subscription's keys, or why it
    /// could not be.
    pub message: Result<Vec<u8>, DecryptError>,
}

/// What signald pushes to a device about a call (the JSON of its
/// `PushMessage::payload`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct CallPush {
    /// The call.
    pub call_id: String,
    /// `wake` (a call waits at signald) or `cancel` (it no longer does).
    pub kind: String,
}

impl CallPush {
    /// Parses a decrypted push.
    pub fn parse(message: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(message)
    }
}

/// A subscription's public keys, as a user agent registers them.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Endpoint URL the server posts to.
    pub endpoint: String,
    /// `p256dh`: the user agent's P-256 public key (base64url).
    pub p256dh: String,
    /// `auth`: 16 random bytes (base64url).
    pub auth: String,
}

/// Why a push could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// Shorter than the aes128gcm header it must start with.
    #[error("truncated aes128gcm header")]
    Header,
    /// The header's key id is not the sender's P-256 public key.
    #[error("the key id is not a P-256 public key")]
    KeyId,
    /// Not exactly one record within the header's record size.
    #[error("not a single aes128gcm record")]
    Record,
    /// Authentication failed: other keys, or altered on the way.
    #[error("does not open with this subscription's keys")]
    Open,
    /// The plaintext does not end as a last record must.
    #[error("bad record padding")]
    Padding,
    /// Our own key could not be used.
    #[error("subscription key")]
    Key,
}

/// A user agent's subscription keys: a P-256 key pair and the auth secret.
#[derive(Clone)]
pub struct UaKeys {
    /// Private scalar, big-endian.
    private: [u8; 32],
    /// Uncompressed public point.
    public: [u8; 65],
    auth: [u8; 16],
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
/// in this workspace.
#[allow(deprecated)]
fn p256_key(private: &[u8; 32]) -> Result<EphemeralPrivateKey, DecryptError> {
    let scalar = ring::test::rand::FixedSliceRandom { bytes: private };
    EphemeralPrivateKey::generate(&ECDH_P256, &scalar).map_err(|_| DecryptError::Key)
}

impl UaKeys {
    /// Fresh keys.
    pub fn generate() -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        let mut auth = [0u8; 16];
        rng.fill(&mut auth)
            .map_err(|_| anyhow::anyhow!("random auth secret"))?;
        // A random 256-bit string is a valid scalar but for about 2^-32 of
        // them; those are drawn again.
        for _ in 0..8 {
            let mut private = [0u8; 32];
            rng.fill(&mut private)
                .map_err(|_| anyhow::anyhow!("random P-256 key"))?;
            if let Ok(keys) = Self::from_private(private, auth) {
                return Ok(keys);
            }
        }
        Err(anyhow::anyhow!("P-256 key generation failed"))
    }

    /// The keys of the private scalar `private` (big-endian) and `auth`.
    pub fn from_private(private: [u8; 32], auth: [u8; 16]) -> Result<Self, DecryptError> {
        let public = p256_key(&private)?
            .compute_public_key()
            .map_err(|_| DecryptError::Key)?;
        Ok(Self {
            private,
            public: public.as_ref().try_into().map_err(|_| DecryptError::Key)?,
            auth,
        })
    }

    /// The uncompressed public point (`p256dh`).
    pub fn public(&self) -> &[u8; 65] {
        &self.public
    }

    /// The auth secret.
    pub fn auth(&self) -> &[u8; 16] {
        &self.auth
    }
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand(prk: &hkdf::Prk, info: &[&[u8]], out: &mut [u8]) -> Result<(), DecryptError> {
    prk.expand(info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| DecryptError::Key)
}

/// Decrypts a Web Push message body (RFC 8291 over the `aes128gcm`
/// content coding of RFC 8188) with the user agent's keys; returns the
/// plaintext without its padding.
pub fn decrypt(ua: &UaKeys, body: &[u8]) -> Result<Vec<u8>, DecryptError> {
    // RFC 8188 §2.1: salt (16) | rs (4, big-endian) | idlen (1) | keyid.
    let (salt, rest) = body.split_at_checked(16).ok_or(DecryptError::Header)?;
    let (rs, rest) = rest.split_at_checked(4).ok_or(DecryptError::Header)?;
    let rs = u32::from_be_bytes(rs.try_into().map_err(|_| DecryptError::Header)?);
    let (&idlen, rest) = rest.split_first().ok_or(DecryptError::Header)?;
    let (as_public, record) = rest
        .split_at_checked(usize::from(idlen))
        .ok_or(DecryptError::Header)?;
    // RFC 8291 §4: the key id is the application server's public key,
    // an uncompressed P-256 point.
    if as_public.len() != 65 {
        return Err(DecryptError::KeyId);
    }
    // RFC 8291 §4: one record; RFC 8188 §2.1: rs is at least 18, and a
    // record holds at least the padding delimiter and the 16-octet tag.
    if rs < 18 || record.len() > rs as usize || record.len() < 17 {
        return Err(DecryptError::Record);
    }
    // RFC 8291 §3.3, §3.4: ecdh_secret = ECDH(ua_private, as_public);
    // IKM = HKDF(salt = auth_secret, ikm = ecdh_secret,
    //            info = "WebPush: info" || 0x00 || ua_public || as_public, L = 32).
    let mut ikm = [0u8; 32];
    agree_ephemeral(
        p256_key(&ua.private)?,
        &UnparsedPublicKey::new(&ECDH_P256, as_public),
        |ecdh| {
            let prk = Salt::new(HKDF_SHA256, &ua.auth).extract(ecdh);
            expand(&prk, &[b"WebPush: info\0", &ua.public, as_public], &mut ikm)
        },
    )
    .map_err(|_| DecryptError::KeyId)??;
    // RFC 8188 §2.2, §2.3: CEK and NONCE from HKDF(salt, IKM); the first
    // (here only) record's nonce is NONCE itself.
    let prk = Salt::new(HKDF_SHA256, salt).extract(&ikm);
    let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
    expand(&prk, &[b"Content-Encoding: aes128gcm\0"], &mut cek)?;
    expand(&prk, &[b"Content-Encoding: nonce\0"], &mut nonce)?;
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek).map_err(|_| DecryptError::Key)?);
    let mut plain = record.to_vec();
    let len = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut plain,
        )
        .map_err(|_| DecryptError::Open)?
        .len();
    plain.truncate(len);
    // RFC 8188 §2: a last record's content ends with the delimiter 0x02,
    // then any number of zero octets of padding.
    let delimiter = plain
        .iter()
        .rposition(|&b| b != 0)
        .ok_or(DecryptError::Padding)?;
    if plain[delimiter] != 2 {
        return Err(DecryptError::Padding);
    }
    plain.truncate(delimiter);
    Ok(plain)
}

/// What the endpoint's handler shares: where pushes go, and each
/// subscription's keys.
#[derive(Clone)]
struct Shared {
    tx: mpsc::Sender<Push>,
    keys: Arc<Mutex<HashMap<String, UaKeys>>>,
}

/// The running endpoint; stops when dropped.
pub struct Distributor {
    addr: SocketAddr,
    keys: Arc<Mutex<HashMap<String, UaKeys>>>,
    task: JoinHandle<()>,
}

impl Distributor {
    /// Serves on `bind`; each accepted push goes to the returned receiver.
    pub async fn start(bind: SocketAddr) -> std::io::Result<(Self, mpsc::Receiver<Push>)> {
        let (tx, rx) = mpsc::channel(64);
        let keys = Arc::new(Mutex::new(HashMap::new()));
        let app = Router::new()
            .route("/push/{subscription}", post(receive))
            .with_state(Shared {
                tx,
                keys: Arc::clone(&keys),
            });
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((Self { addr, keys, task }, rx))
    }

    /// A new subscription named `name` with fresh keys (replacing any
    /// earlier one of that name).
    pub fn subscribe(&self, name: &str) -> anyhow::Result<Subscription> {
        let keys = UaKeys::generate()?;
        let sub = Subscription {
            endpoint: format!("http://{}/push/{name}", self.addr),
            p256dh: b64(keys.public()),
            auth: b64(keys.auth()),
        };
        self.keys
            .lock()
            .map_err(|_| anyhow::anyhow!("push keys poisoned"))?
            .insert(name.to_owned(), keys);
        Ok(sub)
    }
}

impl Drop for Distributor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(shared): State<Shared>,
    Path(subscription): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    // RFC 8291 is the only encoding a Web Push user agent accepts.
    if h("content-encoding") != Some("aes128gcm") || body.is_empty() {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE;
    }
    let keys = shared
        .keys
        .lock()
        .ok()
        .and_then(|k| k.get(&subscription).cloned());
    // No such subscription: gone, as a push service says (RFC 8030 §7.3).
    let Some(keys) = keys else {
        return StatusCode::GONE;
    };
    // A push service would deliver it as it is; this one is also the user
    // agent, so it decrypts, and says what it found (a push that does not
    // decrypt is still accepted, to fail the demo rather than be retried).
    let push = Push {
        subscription,
        topic: h("topic").map(str::to_owned),
        ttl: h("ttl").and_then(|t| t.parse().ok()),
        body_len: body.len(),
        message: decrypt(&keys, &body),
    };
    match shared.tx.try_send(push) {
        Ok(()) => StatusCode::CREATED,
        Err(_) => StatusCode::TOO_MANY_REQUESTS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sotto_signalling::util::unb64;

    /// RFC 8291 §5 ("Push Message Encryption Example") and Appendix A:
    /// the user agent's keys, and the message the application server sent.
    const RFC8291_UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
    const RFC8291_UA_PUBLIC: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const RFC8291_AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
    /// RFC 8291 §5: the application server's public key (the key id).
    const RFC8291_AS_PUBLIC: &str =
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
    /// RFC 8291 §5: the salt.
    const RFC8291_SALT: &str = "DGv6ra1nlYgDCS1FRnbzlw";
    /// RFC 8291 §5: the whole push message body.
    const RFC8291_BODY: &str = concat!(
        "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml",
        "mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT",
        "pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
    );
    /// RFC 8291 §5: the plaintext.
    const RFC8291_PLAINTEXT: &str = "When I grow up, I want to be a watermelon";

    fn rfc_keys() -> UaKeys {
        let private = unb64(RFC8291_UA_PRIVATE).unwrap().try_into().unwrap();
        let auth = unb64(RFC8291_AUTH).unwrap().try_into().unwrap();
        UaKeys::from_private(private, auth).unwrap()
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
    fn a_push_for_other_keys_or_altered_does_not_open() {
        let body = unb64(RFC8291_BODY).unwrap();
        let ua = rfc_keys();
        let other = UaKeys::generate().unwrap();
        assert_eq!(decrypt(&other, &body), Err(DecryptError::Open));
        let wrong_auth = UaKeys::from_private(ua.private, [0; 16]).unwrap();
        assert_eq!(decrypt(&wrong_auth, &body), Err(DecryptError::Open));
        for i in [0, 30, 90, body.len() - 1] {
            let mut bad = body.clone();
            bad[i] ^= 1;
            assert!(decrypt(&ua, &bad).is_err(), "byte {i} altered");
        }
        for n in [0, 15, 20, 85, 86, 100] {
            assert!(decrypt(&ua, &body[..n]).is_err(), "cut to {n}");
        }
        // A record larger than the header's record size.
        let mut big_record = body.clone();
        big_record[16..20].copy_from_slice(&18u32.to_be_bytes());
        assert_eq!(decrypt(&ua, &big_record), Err(DecryptError::Record));
        // A key id that is not a point.
        let mut short_id = body.clone();
        short_id[20] = 64;
        assert_eq!(decrypt(&ua, &short_id), Err(DecryptError::KeyId));
    }

    #[test]
    fn decrypts_what_signald_encrypts_for_a_wake() {
        use sotto_signalling::protocol::CallId;
        use sotto_signalling::push::{PushKind, PushMessage, webpush};
        let ua = UaKeys::generate().unwrap();
        let msg = PushMessage {
            call_id: CallId::random(),
            kind: PushKind::Wake,
            ttl_s: 30,
        };
        let body = webpush::encrypt(ua.public(), ua.auth(), msg.payload().as_bytes()).unwrap();
        let push = CallPush::parse(&decrypt(&ua, &body).unwrap()).unwrap();
        assert_eq!(
            push,
            CallPush {
                call_id: msg.call_id.as_str().to_owned(),
                kind: "wake".into(),
            }
        );
        // Another subscription's keys open nothing.
        let other = UaKeys::generate().unwrap();
        assert_eq!(decrypt(&other, &body), Err(DecryptError::Open));
        // Zeros of the content are not taken for padding (RFC 8188 §2:
        // padding follows the delimiter).
        let body = webpush::encrypt(ua.public(), ua.auth(), b"ab\0\0").unwrap();
        assert_eq!(decrypt(&ua, &body).unwrap(), b"ab\0\0");
    }
}
