//! End-to-end sealing of call messages.
//!
//! A call payload is encrypted with HPKE (RFC 9180, base mode,
//! DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-128-GCM) to the
//! recipient device's X25519 key, then the envelope is signed by the
//! sender's Ed25519 device key. The routing header (message id, sender,
//! recipient, call id, kind, timestamp) is the HPKE AAD and part of the
//! HPKE info, and is covered by the signature: the server, which sees
//! only that header, can neither read nor re-address a payload.

use std::collections::HashMap;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hpke::aead::AesGcm128;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{ProtocolError, SealError};
use crate::protocol::{
    CallId, ClientFrame, DeviceId, Envelope, MAX_FRAME_BYTES, MessageId, MessageKind,
    PROTOCOL_VERSION, ServerFrame,
};
use crate::util::{b64, unb64};

type Kem = X25519HkdfSha256;
/// Domain separator prefixed to the HPKE info string.
const HPKE_INFO_PREFIX: &[u8] = b"sotto-signal v1 hpke";

/// What a call message carries, readable only by the recipient device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallPayload {
    /// Media description (SDP or Sotto's own), for offers and answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<String>,
    /// ICE username fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ice_ufrag: Option<String>,
    /// ICE password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ice_pwd: Option<String>,
    /// ICE candidates (RFC 8839 attribute values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<String>,
    /// The sender's ZRTP Hello hash (RFC 6189 §8.1 `zrtp-hash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zrtp_hash: Option<String>,
    /// Free-text reason for hang-up, busy or cancel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A device's public keys, as registered with the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePublic {
    /// Ed25519 key that signs the device's messages and session challenges.
    pub sign: VerifyingKey,
    /// X25519 key that call payloads are sealed to.
    pub seal: <Kem as hpke::Kem>::PublicKey,
}

impl DevicePublic {
    /// The device id derived from the signing key (see [`DeviceId`]).
    pub fn device_id(&self) -> DeviceId {
        device_id_for(&self.sign)
    }
    /// Parses both keys from URL-safe base64.
    pub fn from_b64(sign: &str, seal: &str) -> Result<Self, SealError> {
        let sign: [u8; 32] = unb64(sign)
            .and_then(|v| v.try_into().ok())
            .ok_or(SealError::Encoding)?;
        let sign = VerifyingKey::from_bytes(&sign).map_err(|_| SealError::Encoding)?;
        let seal = unb64(seal).ok_or(SealError::Encoding)?;
        let seal =
            <Kem as hpke::Kem>::PublicKey::from_bytes(&seal).map_err(|_| SealError::Encoding)?;
        Ok(Self { sign, seal })
    }
    /// The signing key as URL-safe base64.
    pub fn sign_b64(&self) -> String {
        b64(self.sign.as_bytes())
    }
    /// The sealing key as URL-safe base64.
    pub fn seal_b64(&self) -> String {
        b64(&self.seal.to_bytes())
    }
}

/// The device id for an Ed25519 public key.
pub fn device_id_for(key: &VerifyingKey) -> DeviceId {
    let digest = Sha256::digest(key.as_bytes());
    DeviceId::new(b64(&digest[..16])).expect("base64url of 16 bytes is a valid id")
}

/// A device's secret keys. Both are zeroized on drop: the X25519 one (hpke
/// wraps x25519-dalek's `StaticSecret`) because this crate turns on
/// x25519-dalek's `zeroize` feature, which hpke does not.
pub struct DeviceIdentity {
    sign: SigningKey,
    seal: <Kem as hpke::Kem>::PrivateKey,
    public: DevicePublic,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("id", &self.public.device_id())
            .finish_non_exhaustive()
    }
}

impl DeviceIdentity {
    /// Fresh random keys.
    pub fn generate() -> Self {
        let sign = SigningKey::generate(&mut OsRng);
        let (seal, _) = Kem::gen_keypair(&mut hpke_rng());
        Self::from_parts(sign, seal)
    }

    fn from_parts(sign: SigningKey, seal: <Kem as hpke::Kem>::PrivateKey) -> Self {
        let public = DevicePublic {
            sign: sign.verifying_key(),
            seal: Kem::sk_to_pk(&seal),
        };
        Self { sign, seal, public }
    }

    /// The 64-byte secret form (Ed25519 seed then X25519 scalar), for storage.
    pub fn to_secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(64));
        out.extend_from_slice(&self.sign.to_bytes());
        out.extend_from_slice(&self.seal.to_bytes());
        out
    }

    /// Restores keys from [`Self::to_secret_bytes`].
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        if bytes.len() != 64 {
            return Err(SealError::Encoding);
        }
        let seed: Zeroizing<[u8; 32]> =
            Zeroizing::new(bytes[..32].try_into().map_err(|_| SealError::Encoding)?);
        let sign = SigningKey::from_bytes(&seed);
        let seal = <Kem as hpke::Kem>::PrivateKey::from_bytes(&bytes[32..])
            .map_err(|_| SealError::Encoding)?;
        Ok(Self::from_parts(sign, seal))
    }

    /// This device's public keys.
    pub fn public(&self) -> &DevicePublic {
        &self.public
    }

    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        self.public.device_id()
    }

    /// Signs arbitrary bytes (session challenges, registrations).
    pub fn sign(&self, msg: &[u8]) -> String {
        b64(&self.sign.sign(msg).to_bytes())
    }

    /// Seals `payload` to `to` and signs the envelope. A payload whose
    /// frame would exceed [`MAX_FRAME_BYTES`] is refused
    /// ([`ProtocolError::TooLarge`]).
    pub fn seal(
        &self,
        to: (&DeviceId, &DevicePublic),
        call_id: CallId,
        kind: MessageKind,
        ts_ms: u64,
        payload: &CallPayload,
    ) -> Result<Envelope, SealError> {
        let mut env = Envelope {
            v: PROTOCOL_VERSION,
            id: MessageId::random(),
            from: self.device_id(),
            to: to.0.clone(),
            call_id,
            kind,
            ts_ms,
            enc: String::new(),
            ct: String::new(),
            sig: String::new(),
        };
        let header = env.header_bytes();
        let plaintext =
            Zeroizing::new(serde_json::to_vec(payload).map_err(|_| SealError::Encoding)?);
        let (enc, ct) = hpke::single_shot_seal::<AesGcm128, HkdfSha256, Kem, _>(
            &OpModeS::Base,
            &to.1.seal,
            &hpke_info(&header),
            &plaintext,
            &header,
            &mut hpke_rng(),
        )
        .map_err(|_| SealError::Hpke)?;
        env.enc = b64(&enc.to_bytes());
        env.ct = b64(&ct);
        env.sig = self.sign(&env.signed_bytes());
        // Refused here, where the caller can act on it: the server answers
        // an oversized frame with an error that names no message (or drops
        // the connection), so it would stay unacknowledged and be resent on
        // every reconnect. The recipient's `deliver` frame is the larger.
        if longest_frame_len(&env) > MAX_FRAME_BYTES {
            return Err(ProtocolError::TooLarge.into());
        }
        Ok(env)
    }

    /// Verifies `env` came from `sender` and was meant for this device,
    /// then opens its payload. Replay checks are the caller's
    /// ([`ReplayGuard`]), since they need a clock.
    pub fn open(&self, env: &Envelope, sender: &DevicePublic) -> Result<CallPayload, SealError> {
        if env.to != self.device_id() {
            return Err(SealError::Recipient);
        }
        verify_envelope(env, sender)?;
        let header = env.header_bytes();
        let enc = unb64(&env.enc).ok_or(SealError::Encoding)?;
        let enc =
            <Kem as hpke::Kem>::EncappedKey::from_bytes(&enc).map_err(|_| SealError::Encoding)?;
        let ct = unb64(&env.ct).ok_or(SealError::Encoding)?;
        let plaintext = Zeroizing::new(
            hpke::single_shot_open::<AesGcm128, HkdfSha256, Kem>(
                &OpModeR::Base,
                &self.seal,
                &enc,
                &hpke_info(&header),
                &ct,
                &header,
            )
            .map_err(|_| SealError::Hpke)?,
        );
        serde_json::from_slice(&plaintext).map_err(|_| SealError::Encoding)
    }
}

/// The OS RNG in the rand_core version hpke expects.
fn hpke_rng() -> rand_core_09::UnwrapErr<rand_core_09::OsRng> {
    use rand_core_09::TryRngCore as _;
    rand_core_09::OsRng.unwrap_err()
}

/// Length of the frame that delivers `env`, the longer of the `send` and
/// `deliver` frames that carry it.
fn longest_frame_len(env: &Envelope) -> usize {
    let send = ClientFrame::Send {
        v: PROTOCOL_VERSION,
        msg: env.clone(),
    };
    let deliver = ServerFrame::Deliver {
        v: PROTOCOL_VERSION,
        msg: env.clone(),
    };
    let len = |r: serde_json::Result<String>| r.map_or(usize::MAX, |t| t.len());
    len(serde_json::to_string(&send)).max(len(serde_json::to_string(&deliver)))
}

fn hpke_info(header: &[u8]) -> Vec<u8> {
    [HPKE_INFO_PREFIX, header].concat()
}

/// Checks that `env` is signed by `sender` and that `from` is `sender`'s
/// id. The server runs this too, so a device can send only as itself.
pub fn verify_envelope(env: &Envelope, sender: &DevicePublic) -> Result<(), SealError> {
    if env.from != sender.device_id() {
        return Err(SealError::Signature);
    }
    verify_b64(&sender.sign, &env.signed_bytes(), &env.sig)
}

/// Verifies a URL-safe base64 Ed25519 signature (strict: no malleability).
pub fn verify_b64(key: &VerifyingKey, msg: &[u8], sig: &str) -> Result<(), SealError> {
    let sig = unb64(sig).ok_or(SealError::Signature)?;
    let sig = Signature::from_slice(&sig).map_err(|_| SealError::Signature)?;
    key.verify_strict(msg, &sig)
        .map_err(|_| SealError::Signature)
}

/// How far behind the present a full [`ReplayGuard`]'s floor stays: ids
/// stamped since are never let go, so messages sent now, and those a
/// signalling round trip or a clock a few seconds slow delays, are never
/// refused by it.
const FLOOR_LAG_MS: u64 = 10_000;

/// Remembers recent (sender, message id) pairs and refuses repeats and
/// messages whose timestamp is outside the window. Sans-IO: the caller
/// passes the current Unix time. Its memory is lost with the process;
/// [`crate::replay_file::ReplayFile`] keeps it in a file across restarts.
///
/// Looking and remembering are separate steps. [`Self::check`] only looks
/// (stale, or seen before); [`Self::accept`] takes a slot for the id, and
/// is for a message whose signature has verified: an id in the guard is
/// then one its sender signed, so no one who cannot sign as a device (a
/// server, anyone on the path) can fill the guard with forgeries. Its
/// memory is bounded twice:
/// - at most `per_sender` ids from any one sender: a genuine device
///   flooding this one gets no more, and its next message is refused as
///   [`SealError::Full`] (for want of room, not as a repeat);
/// - at most `capacity` in all. Many genuine devices flooding at once
///   (anyone can register devices) could fill it, so a full guard lets go
///   of its oldest ids and refuses anything as old from then on as
///   [`SealError::Stale`]: the window shrinks under such a flood instead
///   of shutting out every other sender's calls. It shrinks to 10 s at
///   least ([`FLOOR_LAG_MS`]); ids stamped since are never let go, so a
///   flood of more than `capacity` in 10 s, or one stamped ahead of the
///   present (senders' clocks may run up to `max_future_ms` ahead), still
///   fills it, and then new senders are refused as [`SealError::Full`].
#[derive(Debug)]
pub struct ReplayGuard {
    /// Message ids and their timestamps, by sender.
    seen: HashMap<DeviceId, HashMap<MessageId, u64>>,
    /// Ids in `seen`, all senders together.
    len: usize,
    /// No id in `seen` has an older timestamp than this (a lower bound),
    /// so that a full guard is not scanned on every message for nothing.
    oldest_ms: u64,
    /// Ids older than this were let go to make room, and are refused as
    /// stale; 0 until the guard first fills.
    floor_ms: u64,
    max_age_ms: u64,
    max_future_ms: u64,
    capacity: usize,
    per_sender: usize,
}

impl Default for ReplayGuard {
    /// Older than 5 minutes or 1 minute ahead is refused (queued messages
    /// live at most a ring timeout, 45 s by default); 100 000 ids in all,
    /// at most 1 000 from one sender — a call takes a few dozen, and the
    /// server lets a device send 20 a second.
    fn default() -> Self {
        Self::new(300_000, 60_000, 100_000, 1_000)
    }
}

impl ReplayGuard {
    /// A guard with the given window, a bound on remembered ids, and a
    /// bound on those from any one sender.
    pub fn new(max_age_ms: u64, max_future_ms: u64, capacity: usize, per_sender: usize) -> Self {
        Self {
            seen: HashMap::new(),
            len: 0,
            oldest_ms: u64::MAX,
            floor_ms: 0,
            max_age_ms,
            max_future_ms,
            capacity,
            per_sender,
        }
    }

    /// Forgets `env`'s id, so that a redelivery is accepted again (its
    /// processing failed for a passing reason and it was not acknowledged).
    pub fn forget(&mut self, env: &Envelope) {
        self.remove(&env.from, &env.id);
    }

    /// Whether `env`'s id is remembered, i.e. it was accepted before.
    pub fn remembers(&self, env: &Envelope) -> bool {
        self.seen
            .get(&env.from)
            .is_some_and(|ids| ids.contains_key(&env.id))
    }

    /// Looks at `env` without remembering it: [`SealError::Stale`] if its
    /// timestamp is outside the window at `now_ms` (or older than the ids
    /// a full guard let go), [`SealError::Replay`] if its id was accepted
    /// before.
    pub fn check(&self, now_ms: u64, env: &Envelope) -> Result<(), SealError> {
        if env.ts_ms.saturating_add(self.max_age_ms) < now_ms
            || env.ts_ms < self.floor_ms
            || env.ts_ms > now_ms.saturating_add(self.max_future_ms)
        {
            return Err(SealError::Stale);
        }
        if self.remembers(env) {
            return Err(SealError::Replay);
        }
        Ok(())
    }

    /// Accepts `env` once: [`Self::check`], then remembers its id —
    /// unless its sender has as many live ids in the guard as it may, and
    /// then refuses it with [`SealError::Full`]. A guard full of live ids
    /// in all lets go of its oldest eighth first (see the type's doc). Call
    /// it only once `env`'s signature has verified.
    pub fn accept(&mut self, now_ms: u64, env: &Envelope) -> Result<(), SealError> {
        self.check(now_ms, env)?;
        if !self.has_room(&env.from) {
            self.prune(now_ms);
            if self.sender_len(&env.from) >= self.per_sender {
                // Its sender's share is full of live ids: refuse rather
                // than grow unbounded, or let others' ids go for it.
                return Err(SealError::Full);
            }
            if self.len >= self.capacity {
                self.let_go_oldest(now_ms);
                // `env` may be as old as what was let go.
                self.check(now_ms, env)?;
                if !self.has_room(&env.from) {
                    return Err(SealError::Full);
                }
            }
        }
        self.insert(env.from.clone(), env.id.clone(), env.ts_ms);
        Ok(())
    }

    /// Whether one more id from `from` fits.
    fn has_room(&self, from: &DeviceId) -> bool {
        self.len < self.capacity && self.sender_len(from) < self.per_sender
    }

    /// How many ids from `from` are remembered.
    fn sender_len(&self, from: &DeviceId) -> usize {
        self.seen.get(from).map_or(0, HashMap::len)
    }

    fn insert(&mut self, from: DeviceId, id: MessageId, ts_ms: u64) {
        if self
            .seen
            .entry(from)
            .or_default()
            .insert(id, ts_ms)
            .is_none()
        {
            self.len += 1;
        }
        self.oldest_ms = self.oldest_ms.min(ts_ms);
    }

    fn remove(&mut self, from: &DeviceId, id: &MessageId) {
        let Some(ids) = self.seen.get_mut(from) else {
            return;
        };
        if ids.remove(id).is_some() {
            self.len -= 1;
        }
        if ids.is_empty() {
            self.seen.remove(from);
        }
    }

    /// Forgets the ids whose timestamp has left the window at `now_ms`
    /// (a message that old is refused as stale, so it needs no memory).
    pub fn prune(&mut self, now_ms: u64) {
        self.forget_older_than(now_ms.saturating_sub(self.max_age_ms));
    }

    /// Makes room in a guard full of live ids: lets go of the oldest eighth
    /// of them (at least one) by [raising the floor](Self::raise_floor)
    /// past them. An eighth at a time, so the scan this takes is paid once
    /// per `capacity / 8` messages, not on each. Only ids stamped more than
    /// [`FLOOR_LAG_MS`] before `now_ms` may go: the floor must never catch
    /// up with the messages being sent now (a flood stamped ahead, as
    /// senders may, would otherwise push it past them); if there are none,
    /// nothing is let go.
    fn let_go_oldest(&mut self, now_ms: u64) {
        let newest_ok = now_ms.saturating_sub(FLOOR_LAG_MS);
        let mut stamps: Vec<u64> = self
            .seen
            .values()
            .flat_map(|ids| ids.values().copied())
            .filter(|ts| *ts < newest_ok)
            .collect();
        if stamps.is_empty() {
            return;
        }
        let nth = (self.len / 8).clamp(1, stamps.len()) - 1;
        let (_, &mut newest_let_go, _) = stamps.select_nth_unstable(nth);
        self.raise_floor(newest_let_go.saturating_add(1));
    }

    /// Refuses as stale, from now on, ids with a timestamp older than
    /// `floor_ms`, and forgets those remembered (a lower floor than the
    /// present one changes nothing).
    pub(crate) fn raise_floor(&mut self, floor_ms: u64) {
        if floor_ms > self.floor_ms {
            self.floor_ms = floor_ms;
            self.forget_older_than(floor_ms);
        }
    }

    /// The floor below which ids are refused (0: none).
    pub(crate) fn floor_ms(&self) -> u64 {
        self.floor_ms
    }

    /// Forgets the ids with a timestamp older than `oldest_ok`.
    fn forget_older_than(&mut self, oldest_ok: u64) {
        if self.oldest_ms >= oldest_ok {
            return;
        }
        let mut oldest = u64::MAX;
        self.seen.retain(|_, ids| {
            ids.retain(|_, ts| *ts >= oldest_ok);
            oldest = ids.values().fold(oldest, |o, ts| o.min(*ts));
            !ids.is_empty()
        });
        self.len = self.seen.values().map(HashMap::len).sum();
        self.oldest_ms = oldest;
    }

    /// How many ids are remembered (at most the capacity).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Remembers an id accepted earlier (read back from a file, perhaps
    /// written by another process) unless its timestamp has left the
    /// window at `now_ms` or is under the floor, or is so far ahead that no
    /// clock stepped back since could explain it (a damaged line, which
    /// would otherwise hold a slot for ever). Its sender's share is not
    /// applied: whoever accepted the id applied it, and an id left out
    /// here would be accepted again. A guard full in all lets go of its
    /// oldest as [`Self::accept`] does, and leaves the id out only if that
    /// frees nothing. No pruning: the caller prunes at `now_ms` first, so a
    /// full guard is full of live ids.
    pub(crate) fn restore(&mut self, now_ms: u64, from: DeviceId, id: MessageId, ts_ms: u64) {
        // A clock stepped back by up to the window still keeps what it
        // accepted before: until then a redelivery could pass again.
        let horizon = self.max_future_ms.saturating_add(self.max_age_ms);
        if ts_ms.saturating_add(self.max_age_ms) < now_ms
            || ts_ms < self.floor_ms
            || ts_ms > now_ms.saturating_add(horizon)
        {
            return;
        }
        let known = self
            .seen
            .get(&from)
            .is_some_and(|ids| ids.contains_key(&id));
        if !known && self.len >= self.capacity {
            self.let_go_oldest(now_ms);
            if ts_ms < self.floor_ms || self.len >= self.capacity {
                return;
            }
        }
        self.insert(from, id, ts_ms);
    }

    /// [`Self::forget`] by key.
    pub(crate) fn forget_id(&mut self, from: &DeviceId, id: &MessageId) {
        self.remove(from, id);
    }

    /// Forgets every id, and the floor.
    pub(crate) fn clear(&mut self) {
        self.seen.clear();
        self.len = 0;
        self.oldest_ms = u64::MAX;
        self.floor_ms = 0;
    }

    /// The remembered ids with their message timestamps.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&DeviceId, &MessageId, u64)> {
        self.seen
            .iter()
            .flat_map(|(from, ids)| ids.iter().map(move |(id, ts)| (from, id, *ts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restored_ids_outside_the_window_are_left_out() {
        let mut g = ReplayGuard::new(10_000, 1_000, 10, 10);
        let now = 1_000_000;
        let dev = || DeviceId::new("dev").unwrap();
        let id = |s: &str| MessageId::new(s).unwrap();
        g.restore(now, dev(), id("live"), now - 5_000);
        g.restore(now, dev(), id("old"), now - 20_000);
        // Accepted before the clock stepped back by 5 s.
        g.restore(now, dev(), id("ahead"), now + 5_000);
        g.restore(now, dev(), id("far-ahead"), now + 20_000);
        g.restore(now, dev(), id("damaged"), u64::MAX);
        let mut kept: Vec<_> = g.entries().map(|(_, i, _)| i.as_str().to_owned()).collect();
        kept.sort();
        assert_eq!(kept, ["ahead", "live"]);
    }

    #[test]
    fn the_x25519_keys_hpke_uses_are_wiped_on_drop() {
        // Compiles only with x25519-dalek's `zeroize` feature on, which
        // derives `Zeroize` for these together with `#[zeroize(drop)]`.
        fn wiped_on_drop<T: zeroize::Zeroize>() {}
        wiped_on_drop::<x25519_dalek::StaticSecret>();
        wiped_on_drop::<x25519_dalek::SharedSecret>();
    }

    fn call() -> CallId {
        CallId::new("call1").unwrap()
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let alice = DeviceIdentity::generate();
        let bob = DeviceIdentity::generate();
        let payload = CallPayload {
            media: Some("m=audio".into()),
            zrtp_hash: Some("1.10 abcd".into()),
            ..Default::default()
        };
        let to = (&bob.device_id(), bob.public());
        let env = alice
            .seal(to, call(), MessageKind::Offer, 1000, &payload)
            .unwrap();
        assert_eq!(bob.open(&env, alice.public()).unwrap(), payload);
        // Not for Alice.
        assert_eq!(alice.open(&env, alice.public()), Err(SealError::Recipient));
        // Any header field changed breaks the signature.
        let mut t = env.clone();
        t.kind = MessageKind::Answer;
        assert_eq!(bob.open(&t, alice.public()), Err(SealError::Signature));
        let mut t = env.clone();
        t.call_id = CallId::new("other").unwrap();
        assert_eq!(bob.open(&t, alice.public()), Err(SealError::Signature));
        // Signed by someone else claiming to be Alice.
        let mallory = DeviceIdentity::generate();
        let mut t = env.clone();
        t.sig = mallory.sign(&t.signed_bytes());
        assert_eq!(bob.open(&t, alice.public()), Err(SealError::Signature));
    }

    #[test]
    fn cut_and_paste_into_another_header_fails_to_open() {
        // Mallory (a valid device) re-wraps Alice's ciphertext under her own
        // header and signature: HPKE info/AAD no longer match.
        let alice = DeviceIdentity::generate();
        let bob = DeviceIdentity::generate();
        let mallory = DeviceIdentity::generate();
        let to = (&bob.device_id(), bob.public());
        let env = alice
            .seal(
                to,
                call(),
                MessageKind::Offer,
                1000,
                &CallPayload::default(),
            )
            .unwrap();
        let mut t = env.clone();
        t.from = mallory.device_id();
        t.call_id = CallId::new("other").unwrap();
        t.sig = mallory.sign(&t.signed_bytes());
        assert_eq!(bob.open(&t, mallory.public()), Err(SealError::Hpke));
    }

    #[test]
    fn a_payload_too_large_for_one_frame_is_refused_when_sealed() {
        // The server refuses (or drops the connection on) a frame over the
        // limit without naming the message, so an oversized envelope would
        // sit in the outbox and be resent on every reconnect.
        let alice = DeviceIdentity::generate();
        let bob = DeviceIdentity::generate();
        let to = (&bob.device_id(), bob.public());
        let big = CallPayload {
            // Base64 makes the ciphertext 4/3 of this: over the limit.
            media: Some("a".repeat(MAX_FRAME_BYTES * 3 / 4)),
            ..Default::default()
        };
        let sealed = alice.seal(to, call(), MessageKind::Offer, 1000, &big);
        assert!(
            matches!(sealed, Err(SealError::Protocol(ProtocolError::TooLarge))),
            "an oversized payload was sealed"
        );
        let fits = CallPayload {
            media: Some("a".repeat(MAX_FRAME_BYTES / 2)),
            ..Default::default()
        };
        let env = alice
            .seal(to, call(), MessageKind::Offer, 1000, &fits)
            .unwrap();
        let send = serde_json::to_string(&ClientFrame::Send {
            v: PROTOCOL_VERSION,
            msg: env.clone(),
        })
        .unwrap();
        assert!(ClientFrame::parse(&send).is_ok());
        let deliver = serde_json::to_string(&ServerFrame::Deliver {
            v: PROTOCOL_VERSION,
            msg: env,
        })
        .unwrap();
        assert!(ServerFrame::parse(&deliver).is_ok());
    }

    #[test]
    fn replay_guard_window_and_repeats() {
        let alice = DeviceIdentity::generate();
        let bob = DeviceIdentity::generate();
        let to = (&bob.device_id(), bob.public());
        let env = alice
            .seal(
                to,
                call(),
                MessageKind::Offer,
                1_000_000,
                &CallPayload::default(),
            )
            .unwrap();
        let mut g = ReplayGuard::new(10_000, 1_000, 2, 2);
        assert!(g.check(1_000_500, &env).is_ok());
        assert!(
            g.check(1_000_500, &env).is_ok(),
            "looking remembers nothing"
        );
        assert!(g.accept(1_000_500, &env).is_ok());
        assert_eq!(g.check(1_000_500, &env), Err(SealError::Replay));
        assert_eq!(g.accept(1_000_500, &env), Err(SealError::Replay));
        let mut g = ReplayGuard::new(10_000, 1_000, 2, 2);
        assert_eq!(g.check(1_010_001, &env), Err(SealError::Stale));
        assert_eq!(g.accept(1_010_001, &env), Err(SealError::Stale));
        assert_eq!(g.check(998_999, &env), Err(SealError::Stale));
        assert!(g.is_empty());
    }

    /// An envelope from `from` (unsigned: the guard never looks at that).
    fn unsigned(from: &str, ts_ms: u64) -> Envelope {
        Envelope {
            v: PROTOCOL_VERSION,
            id: MessageId::random(),
            from: DeviceId::new(from).unwrap(),
            to: DeviceId::new("me").unwrap(),
            call_id: call(),
            kind: MessageKind::Ice,
            ts_ms,
            enc: String::new(),
            ct: String::new(),
            sig: String::new(),
        }
    }

    #[test]
    fn a_full_replay_guard_tells_new_ids_from_repeats() {
        let mk = || unsigned("alice", 1_000_000);
        let (a, b) = (mk(), mk());
        let mut g = ReplayGuard::new(10_000, 1_000, 1, 1);
        assert!(g.accept(1_000_000, &a).is_ok());
        assert_eq!(g.accept(1_000_000, &b), Err(SealError::Full));
        assert!(!g.remembers(&b), "refused for want of room, not a repeat");
        assert_eq!(g.check(1_000_000, &b), Ok(()), "and not taken for one");
        assert_eq!(g.accept(1_000_000, &a), Err(SealError::Replay));
        assert!(g.remembers(&a));
        // Once the remembered id has aged out of the window, there is room.
        assert!(
            g.accept(1_010_001, &b).is_err(),
            "b itself is stale by then"
        );
        let mut late = mk();
        late.ts_ms = 1_010_001;
        assert!(g.accept(1_010_001, &late).is_ok());
    }

    #[test]
    fn one_sender_cannot_fill_the_default_guard() {
        // A genuine device floods us with signed messages, as many as fit
        // in the window: it gets its share, and others still get through.
        let now = 1_000_000_000;
        let mut g = ReplayGuard::default();
        let mut refused = 0;
        for _ in 0..100_000 {
            if g.accept(now, &unsigned("flood", now)) == Err(SealError::Full) {
                refused += 1;
            }
        }
        let other = unsigned("alice", now);
        assert_eq!(g.accept(now, &other), Ok(()), "another sender was shut out");
        assert_eq!(g.accept(now, &other), Err(SealError::Replay));
        assert_eq!(refused, 100_000 - 1_000, "the flood's share");
    }

    #[test]
    fn each_sender_has_a_share_of_the_guard() {
        let now = 1_000_000;
        let mut g = ReplayGuard::new(10_000, 1_000, 4, 2);
        let (m1, m2, m3) = (
            unsigned("mallory", now),
            unsigned("mallory", now),
            unsigned("mallory", now),
        );
        assert_eq!(g.accept(now, &m1), Ok(()));
        assert_eq!(g.accept(now, &m2), Ok(()));
        assert_eq!(g.accept(now, &m3), Err(SealError::Full));
        assert_eq!(g.accept(now, &m1), Err(SealError::Replay), "still a repeat");
        // A forgotten id frees its sender's slot.
        g.forget(&m1);
        assert_eq!(g.accept(now, &m3), Ok(()));
        // Restored ids were accepted within the share where they were
        // (another process, say, with a forgotten id): all are kept, or
        // one would be accepted again here.
        let mut g = ReplayGuard::new(10_000, 1_000, 4, 2);
        for m in [&m1, &m2, &m3] {
            g.restore(now, m.from.clone(), m.id.clone(), m.ts_ms);
        }
        assert_eq!(g.len(), 3);
        assert_eq!(g.accept(now, &m3), Err(SealError::Replay));
        // The window frees a sender's slots.
        let later = now + 10_001;
        assert_eq!(g.accept(later, &unsigned("mallory", later)), Ok(()));
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn a_guard_full_in_all_lets_go_of_its_oldest_ids() {
        let now = 1_000_000;
        let mut g = ReplayGuard::new(60_000, 1_000, 16, 2);
        // Sixteen senders fill it, an id each, a millisecond apart.
        let first: Vec<_> = (0..16)
            .map(|i| unsigned(&format!("s{i}"), now + i))
            .collect();
        for e in &first {
            assert_eq!(g.accept(now, e), Ok(()));
        }
        // Another sender is refused for want of room: none of the ids is
        // 10 s old yet, so none may go.
        assert_eq!(g.accept(now, &unsigned("alice", now)), Err(SealError::Full));
        // 20 s on, it does: the oldest eighth is let go.
        let later = now + 20_000;
        assert_eq!(g.accept(later, &unsigned("alice", later)), Ok(()));
        assert_eq!(g.len(), 15);
        // What was let go, and anything as old, is refused, as stale: it
        // can never be accepted twice.
        for e in [&first[0], &first[1], &unsigned("bob", now + 1)] {
            assert_eq!(g.accept(later, e), Err(SealError::Stale));
        }
        assert_eq!(g.accept(later, &first[2]), Err(SealError::Replay));
        // A sender at its share makes no room by letting others go.
        let m = unsigned("s15", later);
        assert_eq!(g.accept(later, &m), Ok(()));
        assert_eq!(
            g.accept(later, &unsigned("s15", later)),
            Err(SealError::Full)
        );
        assert_eq!(g.accept(later, &first[2]), Err(SealError::Replay));
        // Restoring into a full guard lets go alike.
        let mut restored = ReplayGuard::new(60_000, 1_000, 16, 2);
        for e in first.iter().chain([&m]) {
            restored.restore(later, e.from.clone(), e.id.clone(), e.ts_ms);
        }
        assert_eq!(restored.len(), 15);
        assert_eq!(restored.check(later, &first[0]), Err(SealError::Stale));
        assert_eq!(restored.check(later, &m), Err(SealError::Replay));
    }

    #[test]
    fn a_flood_stamped_ahead_never_lifts_the_floor_over_the_present() {
        // Senders may stamp up to a minute ahead. A flood that does fills
        // the guard with ids it may not let go: newcomers are refused for
        // want of room, never taken for stale.
        let now = 1_000_000_000;
        let mut g = ReplayGuard::new(300_000, 60_000, 1_000, 100);
        for sender in 0..10 {
            for i in 0..100 {
                let flood = unsigned(&format!("flood{sender}"), now + 59_000 + i);
                assert_eq!(g.accept(now, &flood), Ok(()));
            }
        }
        let offer = unsigned("alice", now);
        assert_eq!(g.accept(now, &offer), Err(SealError::Full));
        assert_eq!(g.floor_ms(), 0);
        // Once they are 10 s old, they may go.
        let later = now + 70_000;
        let offer = unsigned("alice", later);
        assert_eq!(g.accept(later, &offer), Ok(()));
        assert!(g.floor_ms() <= later - FLOOR_LAG_MS);
    }

    #[test]
    fn many_senders_cannot_fill_the_default_guard() {
        // A hundred genuine devices (anyone can register some) each send
        // their share, inside the window: a contact's offer still gets in.
        let now = 1_000_000_000;
        let mut g = ReplayGuard::default();
        for sender in 0..100 {
            for i in 0..1_000 {
                let flood = unsigned(&format!("flood{sender}"), now - 60_000 + i);
                assert_eq!(g.accept(now, &flood), Ok(()));
            }
        }
        let offer = unsigned("alice", now);
        assert_eq!(g.accept(now, &offer), Ok(()), "a contact was shut out");
        assert_eq!(g.accept(now, &offer), Err(SealError::Replay));
        assert!(g.len() <= 100_000);
    }

    #[test]
    fn identity_round_trips_through_secret_bytes() {
        let a = DeviceIdentity::generate();
        let b = DeviceIdentity::from_secret_bytes(&a.to_secret_bytes()).unwrap();
        assert_eq!(a.public(), b.public());
        assert!(DeviceIdentity::from_secret_bytes(&[0u8; 10]).is_err());
    }

    /// RFC 9180 Appendix A.1.1 (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
    /// AES-128-GCM, base mode), sequence number 0: the suite we use opens
    /// the RFC's ciphertext with the RFC's recipient key.
    #[test]
    fn rfc9180_a1_base_vector_opens() {
        let h = |s: &str| hex::decode(s).unwrap();
        let ikm_r = h("6db9df30aa07dd42ee5e8181afdb977e538f5e1fec8a06223f33f7013e525037");
        let (sk_r, pk_r) = Kem::derive_keypair(&ikm_r);
        assert_eq!(
            pk_r.to_bytes().to_vec(),
            h("3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d")
        );
        assert_eq!(
            sk_r.to_bytes().to_vec(),
            h("4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8")
        );
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&h(
            "37fda3567bdbd628e88668c3c8d7e97d1d1253b6d4ea6d44c150f741f1bf4431",
        ))
        .unwrap();
        let info = h("4f6465206f6e2061204772656369616e2055726e");
        let aad = h("436f756e742d30");
        let ct = h(
            "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a",
        );
        let pt = hpke::single_shot_open::<AesGcm128, HkdfSha256, Kem>(
            &OpModeR::Base,
            &sk_r,
            &enc,
            &info,
            &ct,
            &aad,
        )
        .unwrap();
        assert_eq!(
            pt,
            h("4265617574792069732074727574682c20747275746820626561757479")
        );
    }
}
