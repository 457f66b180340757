//! [`CallSignal`]s as JSON, the form the application carries over its own
//! signalling. One object per message, tagged by `"type"`:
//!
//! ```json
//! {"type":"offer","ice_ufrag":"..","ice_pwd":"..","candidates":["1 1 udp ..."],
//!  "zrtp_hash":"1.10 <hex>","codec":{"payload_type":111,"clock_rate":48000,"ptime_ms":20,"fec":true,"dtx":true},
//!  "video":{"payload_type":96,"nack":true}}   ("video" only when the sender takes video;
//!                                             "nack" absent from SDKs before it: false)
//! {"type":"ringing"}  {"type":"answer",...as offer}  {"type":"decline"}  {"type":"hangup"}
//! {"type":"ice_offer","ufrag":"..","pwd":".."}  {"type":"ice_answer",...}
//! {"type":"ice_candidate","ufrag":"..","candidate":".."}
//! ```

use crate::error::Error;
use serde::{Deserialize, Serialize};
use sotto_engine::call::{CallSignal, CodecParams, SessionDescription, VideoParams};
use sotto_engine::ice::SignalMessage;

/// Largest message accepted (a description with the engine's 32 candidates is far smaller).
pub const SOTTO_MAX_SIGNAL_BYTES: usize = 65536;

#[derive(Serialize, Deserialize)]
struct Codec {
    payload_type: u8,
    clock_rate: u32,
    ptime_ms: u32,
    fec: bool,
    dtx: bool,
}

#[derive(Serialize, Deserialize)]
struct Video {
    payload_type: u8,
    #[serde(default)]
    nack: bool,
}

#[derive(Serialize, Deserialize)]
struct Description {
    ice_ufrag: String,
    ice_pwd: String,
    candidates: Vec<String>,
    zrtp_hash: String,
    codec: Codec,
    // Absent from audio-only descriptions and from older SDKs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    video: Option<Video>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Wire {
    Offer(Description),
    Ringing,
    Answer(Description),
    Decline,
    Hangup,
    IceOffer { ufrag: String, pwd: String },
    IceAnswer { ufrag: String, pwd: String },
    IceCandidate { ufrag: String, candidate: String },
}

impl From<&SessionDescription> for Description {
    fn from(d: &SessionDescription) -> Self {
        let c = &d.codec;
        Self {
            ice_ufrag: d.ice_ufrag.clone(),
            ice_pwd: d.ice_pwd.clone(),
            candidates: d.candidates.clone(),
            zrtp_hash: d.zrtp_hash.clone(),
            codec: Codec {
                payload_type: c.payload_type,
                clock_rate: c.clock_rate,
                ptime_ms: c.ptime_ms,
                fec: c.fec,
                dtx: c.dtx,
            },
            video: d.video.as_ref().map(|v| Video {
                payload_type: v.payload_type,
                nack: v.nack,
            }),
        }
    }
}

impl From<Description> for SessionDescription {
    fn from(d: Description) -> Self {
        let c = d.codec;
        Self {
            ice_ufrag: d.ice_ufrag,
            ice_pwd: d.ice_pwd,
            candidates: d.candidates,
            zrtp_hash: d.zrtp_hash,
            codec: CodecParams {
                payload_type: c.payload_type,
                clock_rate: c.clock_rate,
                ptime_ms: c.ptime_ms,
                fec: c.fec,
                dtx: c.dtx,
            },
            video: d.video.map(|v| VideoParams {
                payload_type: v.payload_type,
                nack: v.nack,
            }),
        }
    }
}

/// The JSON text of `s`.
pub fn encode(s: &CallSignal) -> String {
    let w = match s {
        CallSignal::Offer(d) => Wire::Offer(d.into()),
        CallSignal::Ringing => Wire::Ringing,
        CallSignal::Answer(d) => Wire::Answer(d.into()),
        CallSignal::Decline => Wire::Decline,
        CallSignal::Hangup => Wire::Hangup,
        CallSignal::Ice(SignalMessage::Offer { ufrag, pwd }) => Wire::IceOffer {
            ufrag: ufrag.clone(),
            pwd: pwd.clone(),
        },
        CallSignal::Ice(SignalMessage::Answer { ufrag, pwd }) => Wire::IceAnswer {
            ufrag: ufrag.clone(),
            pwd: pwd.clone(),
        },
        CallSignal::Ice(SignalMessage::Candidate { ufrag, candidate }) => Wire::IceCandidate {
            ufrag: ufrag.clone(),
            candidate: candidate.clone(),
        },
    };
    // Plain structs of strings, numbers and bools always serialize.
    serde_json::to_string(&w).unwrap_or_default()
}

/// The [`CallSignal`] in `bytes` (UTF-8 JSON, at most [`SOTTO_MAX_SIGNAL_BYTES`]).
pub fn decode(bytes: &[u8]) -> Result<CallSignal, Error> {
    if bytes.len() > SOTTO_MAX_SIGNAL_BYTES {
        return Err(Error::BadSignal(format!(
            "{} bytes, at most {SOTTO_MAX_SIGNAL_BYTES}",
            bytes.len()
        )));
    }
    let w: Wire = serde_json::from_slice(bytes).map_err(|e| Error::BadSignal(e.to_string()))?;
    Ok(match w {
        Wire::Offer(d) => CallSignal::Offer(d.into()),
        Wire::Ringing => CallSignal::Ringing,
        Wire::Answer(d) => CallSignal::Answer(d.into()),
        Wire::Decline => CallSignal::Decline,
        Wire::Hangup => CallSignal::Hangup,
        Wire::IceOffer { ufrag, pwd } => CallSignal::Ice(SignalMessage::Offer { ufrag, pwd }),
        Wire::IceAnswer { ufrag, pwd } => CallSignal::Ice(SignalMessage::Answer { ufrag, pwd }),
        Wire::IceCandidate { ufrag, candidate } => {
            CallSignal::Ice(SignalMessage::Candidate { ufrag, candidate })
        }
    })
}

/// Fuzz entry point (`fuzz/fuzz_targets/sdk_signal.rs`): whatever the
/// bytes, decoding returns instead of panicking, and what decodes
/// re-encodes to the same message.
pub fn fuzz_signal(data: &[u8]) {
    if let Ok(s) = decode(data) {
        let again = decode(encode(&s).as_bytes()).ok();
        assert_eq!(again.as_ref(), Some(&s), "JSON signal did not round-trip");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc() -> SessionDescription {
        SessionDescription {
            ice_ufrag: "uf".into(),
            ice_pwd: "pw".into(),
            candidates: vec!["1 1 udp 2130706431 127.0.0.1 5000 typ host".into()],
            zrtp_hash: "1.10 00ff".into(),
            codec: CodecParams::default(),
            video: None,
        }
    }

    #[test]
    fn every_signal_round_trips() {
        let all = [
            CallSignal::Offer(desc()),
            CallSignal::Offer(SessionDescription {
                video: Some(VideoParams::default()),
                ..desc()
            }),
            CallSignal::Ringing,
            CallSignal::Answer(desc()),
            CallSignal::Decline,
            CallSignal::Hangup,
            CallSignal::Ice(SignalMessage::Offer {
                ufrag: "a".into(),
                pwd: "b".into(),
            }),
            CallSignal::Ice(SignalMessage::Answer {
                ufrag: "a".into(),
                pwd: "b".into(),
            }),
            CallSignal::Ice(SignalMessage::Candidate {
                ufrag: "a".into(),
                candidate: "c".into(),
            }),
        ];
        for s in all {
            let j = encode(&s);
            assert_eq!(decode(j.as_bytes()).unwrap(), s, "{j}");
        }
        assert_eq!(encode(&CallSignal::Hangup), r#"{"type":"hangup"}"#);
    }

    #[test]
    fn video_from_an_sdk_before_nack_takes_no_nack() {
        let mut j = encode(&CallSignal::Offer(SessionDescription {
            video: Some(VideoParams::default()),
            ..desc()
        }));
        assert!(
            j.contains(r#""video":{"payload_type":96,"nack":true}"#),
            "{j}"
        );
        j = j.replace(r#","nack":true"#, "");
        let Ok(CallSignal::Offer(d)) = decode(j.as_bytes()) else {
            panic!("{j}")
        };
        assert_eq!(
            d.video,
            Some(VideoParams {
                nack: false,
                ..VideoParams::default()
            })
        );
    }

    #[test]
    fn garbage_and_oversized_input_is_a_typed_error() {
        for bad in [
            &b""[..],
            b"{",
            b"{\"type\":\"nope\"}",
            b"{\"type\":\"offer\"}",
            b"\xff\xfe",
            b"[1,2]",
        ] {
            assert!(matches!(decode(bad), Err(Error::BadSignal(_))));
        }
        let big = vec![b' '; SOTTO_MAX_SIGNAL_BYTES + 1];
        assert!(matches!(decode(&big), Err(Error::BadSignal(_))));
    }

    #[test]
    fn random_bytes_never_panic() {
        fuzz_signal(encode(&CallSignal::Offer(desc())).as_bytes());
        // A small deterministic generator (xorshift) over JSON-ish bytes.
        let alphabet = br#"{}[]":,0123456789abcdefghijklmnopqrstuvwxyz_ "#;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..5_000 {
            let mut buf = Vec::new();
            let len = (x % 200) as usize;
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            fuzz_signal(&buf);
            x = x.wrapping_add(1);
        }
    }
}
