//! Engine events as the C `SottoEvent` struct. Strings are owned by an
//! [`OwnedEvent`] and live for the duration of one callback.

use sotto_engine::call::{CallStats, EndReason, Event, PathKind};
use std::ffi::{CString, c_char};
use std::ptr;

/// Which event a `SottoEvent` is.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SottoEventKind {
    /// A phone rings: ours when `incoming` (answer or decline it), else the callee's.
    Ringing = 0,
    /// ICE selected a path for the first time.
    Connected = 1,
    /// ZRTP is Secure: `sas`, `algorithms` and `sas_verified` are set.
    SecureUp = 2,
    /// The ZID cache holds secrets retained from earlier calls with this
    /// peer, and the peer's did not match (it lost or reset its cache, or
    /// someone is in the middle). Comes before `SecureUp`, which then has
    /// `sas_verified` false. Warn the user loudly and have the SAS read out
    /// and confirmed again (`sotto_call_confirm_sas`): only a confirmed SAS
    /// stores this call's new secret; otherwise the cache keeps what it
    /// held, and the next call with this peer warns again.
    CacheMismatch = 3,
    /// The peer's ZRTP Hello did not match the zrtp-hash its signalling
    /// message carried: the media path is not talking to whoever sent the
    /// offer/answer (a man in the middle, or a broken signalling path).
    /// Warn the user; the call then ends with `SOTTO_END_REASON_HELLO_HASH_MISMATCH`.
    HelloHashMismatch = 4,
    /// The media path changed kind: `path` is set.
    PathChanged = 5,
    /// Statistics (every second while connected): `stats` and `stats_json` are set.
    Stats = 6,
    /// The call is over: `end_reason` and `detail` are set. Last event of a call.
    Ended = 7,
    /// The engine's ZID cache file could not be written (`detail` says
    /// why). The call goes on and the engine keeps the secrets in memory,
    /// but after a restart the peer will see a cache mismatch.
    ZidCacheError = 8,
    /// A STUN or TURN server did not answer or refused us (`detail` says
    /// which and why: a relay whose policy denies the peer's address, wrong
    /// TURN credentials). The call goes on; show it when a relayed path
    /// does not come up. At most a few per call.
    ServerFailed = 9,
}

/// Kind of media path.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SottoPath {
    /// No path (not a `PathChanged` event).
    None = 0,
    /// Straight to the peer.
    Direct = 1,
    /// Through a TURN relay.
    Relay = 2,
}

/// Why a call ended.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SottoEndReason {
    /// Not an `Ended` event.
    None = 0,
    /// We hung up.
    LocalHangup = 1,
    /// The peer hung up (or failed on its side).
    RemoteHangup = 2,
    /// We declined.
    Declined = 3,
    /// The callee declined.
    RemoteDeclined = 4,
    /// Nobody answered in time.
    NoAnswer = 5,
    /// We rejected the SAS.
    SasRejected = 6,
    /// The peer's Hello did not match the signalled zrtp-hash.
    HelloHashMismatch = 7,
    /// ZRTP failed (`detail` says how).
    ZrtpFailed = 8,
    /// The negotiated ZRTP suite has no SRTP profile.
    NoSrtpProfile = 9,
    /// ICE failed before the call was secure.
    ConnectionFailed = 10,
    /// Not secure within the setup timeout.
    SetupTimeout = 11,
    /// Secure, then nothing from the peer for the media timeout (it
    /// vanished without hanging up).
    MediaTimeout = 12,
}

/// A few statistics as numbers (all of them, with W3C names, are in `stats_json`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SottoStats {
    /// `inbound-rtp.packetsReceived`.
    pub packets_received: u64,
    /// `inbound-rtp.packetsLost` (may be negative with duplicates).
    pub packets_lost: i64,
    /// `outbound-rtp.packetsSent`.
    pub packets_sent: u64,
    /// `inbound-rtp.jitter`, seconds.
    pub jitter: f64,
    /// Mean jitter buffer delay per emitted sample, seconds.
    pub jitter_buffer_delay: f64,
    /// `inbound-rtp.concealedSamples`.
    pub concealed_samples: u64,
    /// `remote-inbound-rtp.roundTripTime` (from RTCP), seconds; negative
    /// when not measured yet.
    pub round_trip_time: f64,
    /// Whether the selected path goes through a TURN relay.
    pub relayed: bool,
}

/// One event, passed to `SottoEventCallback`. Pointers are valid only
/// during the callback; copy what you keep. Fields not used by `kind` are
/// zero/NULL.
#[repr(C)]
#[derive(Debug)]
pub struct SottoEvent {
    /// Which event.
    pub kind: SottoEventKind,
    /// `Ringing`: whether this is an incoming call.
    pub incoming: bool,
    /// `SecureUp`: the SAS to read out (NUL-terminated), else NULL.
    pub sas: *const c_char,
    /// `SecureUp`: the agreed algorithms, e.g. `"S256 AES1 HS32 X255 B32"`, else NULL.
    pub algorithms: *const c_char,
    /// `SecureUp`: both sides verified this peer's SAS before and the cache matched.
    pub sas_verified: bool,
    /// `PathChanged`: the new path kind.
    pub path: SottoPath,
    /// `Ended`: why.
    pub end_reason: SottoEndReason,
    /// `Ended`, `ZidCacheError`, `ServerFailed`: a human-readable reason, else NULL.
    pub detail: *const c_char,
    /// `Stats`: numbers.
    pub stats: SottoStats,
    /// `Stats`: a JSON object of W3C-named statistics, else NULL.
    pub stats_json: *const c_char,
}

/// A [`SottoEvent`] with the strings it points into.
pub struct OwnedEvent {
    strings: Vec<CString>,
    /// The C view; valid while `self` lives and is not moved out of.
    pub raw: SottoEvent,
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

fn end_reason(r: EndReason) -> SottoEndReason {
    match r {
        EndReason::LocalHangup => SottoEndReason::LocalHangup,
        EndReason::RemoteHangup => SottoEndReason::RemoteHangup,
        EndReason::Declined => SottoEndReason::Declined,
        EndReason::RemoteDeclined => SottoEndReason::RemoteDeclined,
        EndReason::NoAnswer => SottoEndReason::NoAnswer,
        EndReason::SasRejected => SottoEndReason::SasRejected,
        EndReason::HelloHashMismatch => SottoEndReason::HelloHashMismatch,
        EndReason::ZrtpFailed(_) => SottoEndReason::ZrtpFailed,
        EndReason::NoSrtpProfile => SottoEndReason::NoSrtpProfile,
        EndReason::ConnectionFailed => SottoEndReason::ConnectionFailed,
        EndReason::SetupTimeout => SottoEndReason::SetupTimeout,
        EndReason::MediaTimeout => SottoEndReason::MediaTimeout,
    }
}

/// Numbers and a W3C-named JSON object of `s`.
pub fn stats(s: &CallStats) -> (SottoStats, String) {
    let i = &s.inbound;
    let n = SottoStats {
        packets_received: i.packets_received,
        packets_lost: i.packets_lost,
        packets_sent: s.outbound.packets_sent,
        jitter: i.jitter,
        jitter_buffer_delay: i.jitter_buffer.mean_delay_ms() / 1000.0,
        concealed_samples: i.jitter_buffer.concealed_samples,
        round_trip_time: s
            .remote_inbound
            .round_trip_time
            .map_or(-1.0, |d| d.as_secs_f64()),
        relayed: s.candidate_pair.relayed,
    };
    let mut m = serde_json::Map::new();
    for (k, v) in s.w3c() {
        // Non-finite numbers have no JSON form.
        if let Some(x) = serde_json::Number::from_f64(v) {
            m.insert(k, x.into());
        }
    }
    m.insert(
        "candidate-pair.relayed".into(),
        s.candidate_pair.relayed.into(),
    );
    (n, serde_json::Value::Object(m).to_string())
}

impl OwnedEvent {
    /// An event of `kind` with every other field zero/NULL.
    fn blank(kind: SottoEventKind) -> Self {
        OwnedEvent {
            strings: Vec::new(),
            raw: SottoEvent {
                kind,
                incoming: false,
                sas: ptr::null(),
                algorithms: ptr::null(),
                sas_verified: false,
                path: SottoPath::None,
                end_reason: SottoEndReason::None,
                detail: ptr::null(),
                stats: SottoStats::default(),
                stats_json: ptr::null(),
            },
        }
    }

    /// A [`SottoEventKind::ZidCacheError`] saying `why`.
    pub fn zid_cache_error(why: &str) -> Self {
        let mut o = Self::blank(SottoEventKind::ZidCacheError);
        o.raw.detail = keep(&mut o.strings, why);
        o
    }

    /// The C form of `e`; `None` for events the C API does not carry
    /// (signals, which go to the signal callback).
    pub fn new(e: &Event) -> Option<Self> {
        let mut o = Self::blank(SottoEventKind::Connected);
        let OwnedEvent { strings, raw: r } = &mut o;
        match e {
            Event::Signal(_) => return None,
            Event::Ringing { incoming } => {
                r.kind = SottoEventKind::Ringing;
                r.incoming = *incoming;
            }
            Event::Connected => r.kind = SottoEventKind::Connected,
            Event::SecureUp {
                sas,
                algorithms: suite,
                sas_verified,
            } => {
                r.kind = SottoEventKind::SecureUp;
                r.sas_verified = *sas_verified;
                r.sas = keep(strings, sas);
                r.algorithms = keep(strings, &suite.to_string());
            }
            Event::CacheMismatch => r.kind = SottoEventKind::CacheMismatch,
            Event::HelloHashMismatch => r.kind = SottoEventKind::HelloHashMismatch,
            Event::PathChanged(p) => {
                r.kind = SottoEventKind::PathChanged;
                r.path = match p {
                    PathKind::Direct => SottoPath::Direct,
                    PathKind::Relay => SottoPath::Relay,
                };
            }
            Event::Stats(s) => {
                r.kind = SottoEventKind::Stats;
                let (n, json) = stats(s);
                r.stats = n;
                r.stats_json = keep(strings, &json);
            }
            Event::ServerFailed { server, reason } => {
                r.kind = SottoEventKind::ServerFailed;
                r.detail = keep(strings, &format!("{server}: {reason}"));
            }
            Event::Ended { reason } => {
                r.kind = SottoEventKind::Ended;
                r.end_reason = end_reason(*reason);
                r.detail = keep(strings, &format!("{reason:?}"));
            }
        }
        Some(o)
    }
}

/// Keeps `s` alive in `strings` and returns its C pointer (a `CString`'s
/// heap buffer does not move when the vector grows).
fn keep(strings: &mut Vec<CString>, s: &str) -> *const c_char {
    let c = cstring(s);
    let p = c.as_ptr();
    strings.push(c);
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn text(p: *const c_char) -> String {
        assert!(!p.is_null());
        // SAFETY: non-null pointers of an OwnedEvent point at its CStrings.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    #[test]
    fn events_carry_their_fields() {
        let suite = sotto_engine::zrtp::Suite {
            hash: sotto_engine::zrtp::HashAlgo::S256,
            cipher: sotto_engine::zrtp::CipherAlgo::Aes1,
            auth: sotto_engine::zrtp::AuthTagAlgo::Hs32,
            key_agreement: sotto_engine::zrtp::KeyAgreement::X255,
            sas: sotto_engine::zrtp::SasAlgo::B32,
        };
        let e = OwnedEvent::new(&Event::SecureUp {
            sas: "ab12".into(),
            algorithms: suite,
            sas_verified: false,
        })
        .unwrap();
        assert_eq!(e.raw.kind, SottoEventKind::SecureUp);
        assert_eq!(text(e.raw.sas), "ab12");
        assert_eq!(text(e.raw.algorithms), "S256 AES1 HS32 X255 B32");

        let e = OwnedEvent::new(&Event::Ended {
            reason: EndReason::RemoteHangup,
        })
        .unwrap();
        assert_eq!(e.raw.end_reason, SottoEndReason::RemoteHangup);
        assert_eq!(text(e.raw.detail), "RemoteHangup");

        let e = OwnedEvent::new(&Event::Stats(Box::default())).unwrap();
        assert!(e.raw.stats.round_trip_time < 0.0);
        let v: serde_json::Value = serde_json::from_str(&text(e.raw.stats_json)).unwrap();
        assert_eq!(v["inbound-rtp.packetsReceived"], 0.0);
        assert!(OwnedEvent::new(&Event::Signal(sotto_engine::call::CallSignal::Hangup)).is_none());

        let e = OwnedEvent::new(&Event::ServerFailed {
            server: "192.0.2.9:3478".parse().unwrap(),
            reason: "permission for a peer refused: 403".into(),
        })
        .unwrap();
        assert_eq!(e.raw.kind, SottoEventKind::ServerFailed);
        assert_eq!(
            text(e.raw.detail),
            "192.0.2.9:3478: permission for a peer refused: 403"
        );

        let e = OwnedEvent::zid_cache_error("disk full");
        assert_eq!(e.raw.kind, SottoEventKind::ZidCacheError);
        assert_eq!(text(e.raw.detail), "disk full");
        assert!(e.raw.sas.is_null());
    }
}
