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
///   (anyone can register devices) could fill it, so a full guard makes
///   room where the flood is: each sender holding at least the mean
///   (and two or more) lets go of its oldest half, and from then on that
///   sender's messages as old are refused as [`SealError::Stale`] (its
///   *floor*). A sender with a few ids, such as a contact calling, keeps
///   them, and its new messages get in. Only when every sender holds a
///   single id (a flood from `capacity` devices) are newcomers refused as
///   [`SealError::Full`].
#[derive(Debug)]
pub struct ReplayGuard {
    /// What is remembered of each sender.
    seen: HashMap<DeviceId, Sender>,
    /// Ids in `seen`, all senders together.
    len: usize,
    /// Entries in `seen` with a floor and no id: each takes a place of
    /// the capacity like an id, so that floors cannot pile up unbounded.
    floor_only: usize,
    /// Senders holding two ids or more: with none, making room can free
    /// nothing (every sender holds one id), and a full guard says so at
    /// once instead of after a pass over every sender on each message.
    multi: usize,
    /// No id in `seen` has an older timestamp than this (a lower bound),
    /// so that a full guard is not scanned on every message for nothing.
    oldest_ms: u64,
    /// How many times a full guard has let ids go (see
    /// [`Self::let_go_passes`]).
    let_go_passes: u64,
    max_age_ms: u64,
    max_future_ms: u64,
    capacity: usize,
    per_sender: usize,
}

/// One sender's ids and floor.
#[derive(Debug, Default)]
struct Sender {
    /// Message ids and their timestamps.
    ids: HashMap<MessageId, u64>,
    /// This sender's ids older than this were let go to make room, and
    /// are refused as stale; 0 if none was. At most the oldest timestamp
    /// in `ids`, so the window passes the floor before it passes the ids,
    /// and the entry can go with its last id. An entry whose last id was
    /// [forgotten](ReplayGuard::forget) keeps its floor alone until the
    /// window passes it.
    floor_ms: u64,
}

impl Sender {
    /// Whether only a floor is kept (every id let go or forgotten).
    fn is_floor_only(&self) -> bool {
        self.ids.is_empty() && self.floor_ms > 0
    }
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
            floor_only: 0,
            multi: 0,
            oldest_ms: u64::MAX,
            let_go_passes: 0,
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
            .is_some_and(|s| s.ids.contains_key(&env.id))
    }

    /// Looks at `env` without remembering it: [`SealError::Stale`] if its
    /// timestamp is outside the window at `now_ms` (or under its sender's
    /// floor), [`SealError::Replay`] if its id was accepted before.
    pub fn check(&self, now_ms: u64, env: &Envelope) -> Result<(), SealError> {
        if env.ts_ms.saturating_add(self.max_age_ms) < now_ms
            || env.ts_ms < self.floor_of(&env.from)
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
    /// in all first makes room (see the type's doc). Call it only once
    /// `env`'s signature has verified.
    pub fn accept(&mut self, now_ms: u64, env: &Envelope) -> Result<(), SealError> {
        self.check(now_ms, env)?;
        if !self.has_room(&env.from) {
            self.prune(now_ms);
            if self.sender_len(&env.from) >= self.per_sender {
                // Its sender's share is full of live ids: refuse rather
                // than grow unbounded, or let others' ids go for it.
                return Err(SealError::Full);
            }
            if self.full_for(&env.from) {
                self.let_go_heaviest();
                // `env`'s own sender may have let go of ids as old.
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
        !self.full_for(from) && self.sender_len(from) < self.per_sender
    }

    /// Whether an id from `from` would take a place the guard has not got
    /// (one into a floor kept alone takes that floor's place).
    fn full_for(&self, from: &DeviceId) -> bool {
        self.slots() >= self.capacity && !self.seen.get(from).is_some_and(Sender::is_floor_only)
    }

    /// Places of the capacity taken: ids, and floors kept alone.
    pub(crate) fn slots(&self) -> usize {
        self.len + self.floor_only
    }

    /// How many ids from `from` are remembered.
    fn sender_len(&self, from: &DeviceId) -> usize {
        self.seen.get(from).map_or(0, |s| s.ids.len())
    }

    /// `from`'s floor (0: none).
    pub(crate) fn floor_of(&self, from: &DeviceId) -> u64 {
        self.seen.get(from).map_or(0, |s| s.floor_ms)
    }

    fn insert(&mut self, from: DeviceId, id: MessageId, ts_ms: u64) {
        let sender = self.seen.entry(from).or_default();
        let was_floor_only = sender.is_floor_only();
        if sender.ids.insert(id, ts_ms).is_none() {
            self.len += 1;
            if sender.ids.len() == 2 {
                self.multi += 1;
            }
        }
        if was_floor_only {
            self.floor_only -= 1;
        }
        self.oldest_ms = self.oldest_ms.min(ts_ms);
    }

    fn remove(&mut self, from: &DeviceId, id: &MessageId) {
        let Some(sender) = self.seen.get_mut(from) else {
            return;
        };
        if sender.ids.remove(id).is_none() {
            return;
        }
        self.len -= 1;
        if sender.ids.len() == 1 {
            self.multi -= 1;
        }
        if sender.is_floor_only() {
            // The floor still refuses what was let go; `prune` must see
            // it to give its place back once the window has passed it.
            self.floor_only += 1;
            self.oldest_ms = self.oldest_ms.min(sender.floor_ms);
        } else if sender.ids.is_empty() {
            self.seen.remove(from);
        }
    }

    /// Forgets the ids whose timestamp has left the window at `now_ms`
    /// (a message that old is refused as stale, so it needs no memory),
    /// and the floors the window has passed.
    pub fn prune(&mut self, now_ms: u64) {
        let oldest_ok = now_ms.saturating_sub(self.max_age_ms);
        if self.oldest_ms >= oldest_ok {
            return;
        }
        let mut oldest = u64::MAX;
        self.seen.retain(|_, sender| {
            sender.ids.retain(|_, ts| *ts >= oldest_ok);
            oldest = sender.ids.values().fold(oldest, |o, ts| o.min(*ts));
            // A floor-only entry counts as old as its floor.
            if sender.ids.is_empty() && sender.floor_ms >= oldest_ok {
                oldest = oldest.min(sender.floor_ms);
                return true;
            }
            !sender.ids.is_empty()
        });
        self.len = self.seen.values().map(|s| s.ids.len()).sum();
        self.floor_only = self.seen.values().filter(|s| s.is_floor_only()).count();
        self.multi = self.seen.values().filter(|s| s.ids.len() >= 2).count();
        self.oldest_ms = oldest;
    }

    /// Makes room in a guard full of live ids, in one pass: each sender
    /// holding two ids or more, and at least the mean, lets go of its
    /// oldest half and [raises its floor](Self::raise_floor) past them.
    /// That frees about a quarter of the guard at least, so the pass is
    /// paid once per many messages, not on each; it frees nothing only
    /// when every sender holds one id.
    fn let_go_heaviest(&mut self) {
        if self.multi == 0 {
            return;
        }
        let Some(mean) = self.len.checked_div(self.seen.len()) else {
            return;
        };
        let mut raised = Vec::new();
        let mut stamps = Vec::new();
        for (from, sender) in &self.seen {
            let n = sender.ids.len();
            if n < 2.max(mean) {
                continue;
            }
            stamps.clear();
            stamps.extend(sender.ids.values().copied());
            let (_, &mut newest_let_go, _) = stamps.select_nth_unstable(n / 2 - 1);
            raised.push((from.clone(), newest_let_go.saturating_add(1)));
        }
        if raised.is_empty() {
            return;
        }
        self.let_go_passes += 1;
        for (from, floor_ms) in raised {
            self.raise_floor(from, floor_ms);
        }
    }

    /// Refuses as stale, from now on, `from`'s ids with a timestamp older
    /// than `floor_ms`, and forgets those remembered (a lower floor than
    /// the present one changes nothing).
    pub(crate) fn raise_floor(&mut self, from: DeviceId, floor_ms: u64) {
        let sender = self.seen.entry(from).or_default();
        if floor_ms <= sender.floor_ms {
            return;
        }
        let was_floor_only = sender.is_floor_only();
        sender.floor_ms = floor_ms;
        let before = sender.ids.len();
        sender.ids.retain(|_, ts| *ts >= floor_ms);
        self.len -= before - sender.ids.len();
        if before >= 2 && sender.ids.len() < 2 {
            self.multi -= 1;
        }
        if sender.is_floor_only() && !was_floor_only {
            self.floor_only += 1;
        }
        self.oldest_ms = self.oldest_ms.min(floor_ms);
    }

    /// [`Self::raise_floor`] for a floor read back from a file, unless the
    /// window has passed it at `now_ms` (it then refuses nothing the
    /// window does not, and would only take a place). Like a restored id,
    /// a live floor is kept beyond the capacity if need be: it may be all
    /// that is left of ids let go.
    pub(crate) fn restore_floor(&mut self, now_ms: u64, from: DeviceId, floor_ms: u64) {
        let takes_a_place = !self.seen.contains_key(&from);
        if floor_ms.saturating_add(self.max_age_ms) >= now_ms
            && !(takes_a_place && self.slots() >= self.restore_limit())
        {
            self.raise_floor(from, floor_ms);
        }
    }

    /// Places [`Self::restore`] and [`Self::restore_floor`] may fill:
    /// twice the capacity.
    fn restore_limit(&self) -> usize {
        self.capacity.saturating_mul(2)
    }

    /// How many times a full guard has let ids go: when it changes, the
    /// senders' floors did ([`Self::floors`]).
    pub(crate) fn let_go_passes(&self) -> u64 {
        self.let_go_passes
    }

    /// The senders with a floor, and their floors.
    pub(crate) fn floors(&self) -> impl Iterator<Item = (&DeviceId, u64)> {
        self.seen
            .iter()
            .filter(|(_, s)| s.floor_ms > 0)
            .map(|(from, s)| (from, s.floor_ms))
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
    /// window at `now_ms` or is under its sender's floor, or is so far
    /// ahead that no clock stepped back since could explain it (a damaged
    /// line, which would otherwise hold a slot for ever). No live id is
    /// left out, as it would then be accepted again: not for its sender's
    /// share (whoever accepted it applied that), nor for want of room — a
    /// guard full in all makes room as [`Self::accept`] does, and if that
    /// frees nothing, takes the id beyond its capacity (and refuses new
    /// ones as [`SealError::Full`] until the window frees places). That
    /// happens only when processes sharing a journal disagree on what to
    /// let go, so the excess is what the others accepted; a file that
    /// claims more than twice the capacity (damage, or many processes)
    /// has the rest left out, so that memory stays bounded. No pruning:
    /// the caller prunes at `now_ms` first, so a full guard is full of
    /// live ids.
    pub(crate) fn restore(&mut self, now_ms: u64, from: DeviceId, id: MessageId, ts_ms: u64) {
        // A clock stepped back by up to the window still keeps what it
        // accepted before: until then a redelivery could pass again.
        let horizon = self.max_future_ms.saturating_add(self.max_age_ms);
        if ts_ms.saturating_add(self.max_age_ms) < now_ms
            || ts_ms < self.floor_of(&from)
            || ts_ms > now_ms.saturating_add(horizon)
        {
            return;
        }
        let known = self
            .seen
            .get(&from)
            .is_some_and(|s| s.ids.contains_key(&id));
        if !known && self.full_for(&from) {
            self.let_go_heaviest();
            if ts_ms < self.floor_of(&from) || self.slots() >= self.restore_limit() {
                return;
            }
        }
        self.insert(from, id, ts_ms);
    }

    /// [`Self::forget`] by key.
    pub(crate) fn forget_id(&mut self, from: &DeviceId, id: &MessageId) {
        self.remove(from, id);
    }

    /// Forgets every id, and the floors.
    pub(crate) fn clear(&mut self) {
        self.seen.clear();
        self.len = 0;
        self.floor_only = 0;
        self.multi = 0;
        self.oldest_ms = u64::MAX;
    }

    /// Checks the guard's bookkeeping against its contents: the counts,
    /// no empty entry, every id at or over its sender's floor and over
    /// `oldest_ms`, and places within `limit`.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self, limit: usize) -> Result<(), String> {
        let len: usize = self.seen.values().map(|s| s.ids.len()).sum();
        let floor_only = self.seen.values().filter(|s| s.is_floor_only()).count();
        let multi = self.seen.values().filter(|s| s.ids.len() >= 2).count();
        if (len, floor_only, multi) != (self.len, self.floor_only, self.multi) {
            return Err(format!(
                "counts ({}, {}, {}), contents ({len}, {floor_only}, {multi})",
                self.len, self.floor_only, self.multi
            ));
        }
        for (from, s) in &self.seen {
            if s.ids.is_empty() && s.floor_ms == 0 {
                return Err(format!("{from}: an empty entry"));
            }
            if let Some(&oldest) = s.ids.values().min()
                && (oldest < self.oldest_ms || oldest < s.floor_ms)
            {
                return Err(format!("{from}: an id under oldest_ms or the floor"));
            }
        }
        if self.slots() > limit || self.seen.len() > limit {
            return Err(format!(
                "{} places, {} entries",
                self.slots(),
                self.seen.len()
            ));
        }
        Ok(())
    }

    /// The remembered ids with their message timestamps.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&DeviceId, &MessageId, u64)> {
        self.seen
            .iter()
            .flat_map(|(from, s)| s.ids.iter().map(move |(id, ts)| (from, id, *ts)))
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
    fn a_full_guard_makes_room_where_the_flood_is() {
        let now = 1_000_000;
        let mut g = ReplayGuard::new(60_000, 1_000, 16, 8);
        let from = |who: &str, n: u64| -> Vec<Envelope> {
            (0..n).map(|i| unsigned(who, now + i)).collect()
        };
        let (mallory, eve, alice) = (from("mallory", 8), from("eve", 7), from("alice", 1));
        for e in mallory.iter().chain(&eve).chain(&alice) {
            assert_eq!(g.accept(now, e), Ok(()));
        }
        // Full: a newcomer gets in, as the senders holding the mean or more
        // let go of their oldest half; Alice, with one id, keeps it.
        let bob = unsigned("bob", now + 100);
        assert_eq!(g.accept(now, &bob), Ok(()));
        assert_eq!(g.len(), 16 - 4 - 3 + 1);
        for e in mallory[..4].iter().chain(&eve[..3]) {
            assert_eq!(
                g.accept(now, e),
                Err(SealError::Stale),
                "let go, so refused"
            );
        }
        for e in mallory[4..].iter().chain(&eve[3..]).chain(&alice) {
            assert_eq!(g.accept(now, e), Err(SealError::Replay));
        }
        // A fresh id stamped under its sender's floor is refused as well;
        // other senders' are not.
        assert_eq!(
            g.accept(now, &unsigned("mallory", now)),
            Err(SealError::Stale)
        );
        assert_eq!(g.accept(now, &unsigned("alice", now)), Ok(()));
        // Restoring into a full guard makes room alike.
        let mut restored = ReplayGuard::new(60_000, 1_000, 16, 8);
        for e in mallory.iter().chain(&eve).chain(&alice).chain([&bob]) {
            restored.restore(now, e.from.clone(), e.id.clone(), e.ts_ms);
        }
        assert_eq!(restored.check(now, &mallory[0]), Err(SealError::Stale));
        assert_eq!(restored.check(now, &bob), Err(SealError::Replay));
        assert_eq!(restored.check(now, &alice[0]), Err(SealError::Replay));
    }

    #[test]
    fn a_flood_stamped_ahead_cannot_shut_out_a_contact() {
        // Senders may stamp up to a minute ahead; the floors a flood earns
        // are its own senders', so they never refuse anyone else's.
        let now = 1_000_000_000;
        let mut g = ReplayGuard::new(300_000, 60_000, 1_000, 100);
        for sender in 0..10 {
            for i in 0..100 {
                let flood = unsigned(&format!("flood{sender}"), now + 59_000 + i);
                assert_eq!(g.accept(now, &flood), Ok(()));
            }
        }
        let offer = unsigned("alice", now);
        assert_eq!(g.accept(now, &offer), Ok(()));
        assert_eq!(g.accept(now, &offer), Err(SealError::Replay));
    }

    #[test]
    fn a_floor_kept_alone_gives_its_place_back_once_the_window_passes_it() {
        let n = 1_000_000;
        let mut g = ReplayGuard::new(10_000, 1_000, 3, 3);
        let x2 = unsigned("x", n + 3_000);
        for e in [&unsigned("x", n + 100), &x2, &unsigned("y", n + 3_000)] {
            assert_eq!(g.accept(n + 3_000, e), Ok(()));
        }
        // Full: X lets go of its first (floor n + 101).
        assert_eq!(g.accept(n + 3_000, &unsigned("z", n + 3_000)), Ok(()));
        // Nothing has left the window yet.
        let t = n + 10_101;
        assert_eq!(g.accept(t, &unsigned("q", t)), Err(SealError::Full));
        // X's last id is forgotten: its floor is kept alone, in a place,
        // until the window has passed it.
        g.forget(&x2);
        let t = n + 10_200;
        assert_eq!(
            g.accept(t, &unsigned("q", t)),
            Ok(()),
            "slots {}",
            g.slots()
        );
    }

    #[test]
    fn floors_kept_alone_take_places_of_the_capacity() {
        let now = 1_000_000;
        let mut g = ReplayGuard::new(60_000, 1_000, 4, 4);
        // Mallory stamps three ids alike: all go at once, her floor stays.
        let mallory: Vec<_> = (0..3).map(|_| unsigned("mallory", now)).collect();
        let alice = unsigned("alice", now);
        for e in mallory.iter().chain([&alice]) {
            assert_eq!(g.accept(now, e), Ok(()));
        }
        assert_eq!(g.accept(now, &unsigned("bob", now)), Ok(()));
        assert_eq!(g.len(), 2);
        assert_eq!(g.slots(), 3, "Alice's, Bob's and Mallory's floor");
        for e in &mallory {
            assert_eq!(g.accept(now, e), Err(SealError::Stale));
        }
        // An id into a floor kept alone takes the floor's place.
        assert_eq!(g.accept(now, &unsigned("carol", now + 1)), Ok(()));
        assert_eq!(g.slots(), 4);
        assert_eq!(g.accept(now, &unsigned("mallory", now + 1)), Ok(()));
        assert_eq!(g.slots(), 4);
        // A forgotten last id leaves its floor alone, in its place.
        let late = unsigned("mallory", now + 2);
        g.forget(&unsigned("mallory", now + 1));
        assert_eq!(g.slots(), 4, "forgetting an unknown id changes nothing");
        // However many senders come and go, the places stay bounded.
        for i in 0..1_000 {
            let e = unsigned(&format!("s{}", i % 50), now + 3 + i);
            let _ = g.accept(now + 3 + i, &e);
            if i % 7 == 0 {
                g.forget(&e);
            }
            assert!(g.slots() <= 4 && g.seen.len() <= 4, "{i}: {}", g.slots());
        }
        assert!(g.accept(now + 2_000, &late).is_err());
    }

    #[test]
    fn a_guard_full_of_single_ids_keeps_count_of_senders_with_more() {
        // Four senders of one id each fill the guard: nothing can be let
        // go, and the guard knows it from its count, not from a pass over
        // every sender on each message (100 000 of them by default).
        let now = 1_000_000;
        let mut g = ReplayGuard::new(60_000, 1_000, 4, 8);
        let first = ["a", "b", "c", "d"].map(|who| unsigned(who, now));
        for e in &first {
            assert_eq!(g.accept(now, e), Ok(()));
        }
        assert_eq!(g.multi, 0);
        assert_eq!(g.accept(now, &unsigned("e", now)), Err(SealError::Full));
        assert_eq!(g.let_go_passes(), 0);
        g.check_invariants(4).unwrap();
        // One of them with a second id: room is made where it is.
        g.forget(&first[3]);
        assert_eq!(g.accept(now, &unsigned("a", now + 1)), Ok(()));
        assert_eq!(g.multi, 1);
        assert_eq!(g.accept(now, &unsigned("e", now)), Ok(()));
        assert_eq!(g.let_go_passes(), 1);
        assert_eq!(g.multi, 0);
        g.check_invariants(4).unwrap();
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
