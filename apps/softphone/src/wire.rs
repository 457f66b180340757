//! The engine's [`CallSignal`]s as sealed signalling messages: each maps to
//! a [`MessageKind`] (visible to the server, which uses it for wakeups and
//! cancel pushes) and a [`CallPayload`] (sealed to the peer device).

use sotto_engine::call::{CallSignal, CodecParams, SessionDescription, VideoParams};
use sotto_engine::ice::SignalMessage;
use sotto_signalling::protocol::MessageKind;
use sotto_signalling::seal::CallPayload;

/// `media` tags of [`MessageKind::Ice`] messages.
const ICE_OFFER: &str = "ice-offer";
const ICE_ANSWER: &str = "ice-answer";
const ICE_CANDIDATE: &str = "candidate";
/// `reason` of a declined call (sent as [`MessageKind::Busy`]).
const DECLINED: &str = "declined";

/// Why a message could not be turned back into a [`CallSignal`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// A field the message kind needs is missing.
    #[error("{0} message without {1}")]
    Missing(&'static str, &'static str),
    /// The codec description did not parse.
    #[error("bad media description: {0}")]
    Media(String),
}

/// The kind and payload carrying `signal`.
pub fn encode(signal: &CallSignal) -> (MessageKind, CallPayload) {
    let ice = |tag: &str, ufrag: &str, pwd: Option<&str>, cands: Vec<String>| CallPayload {
        media: Some(tag.to_owned()),
        ice_ufrag: Some(ufrag.to_owned()),
        ice_pwd: pwd.map(str::to_owned),
        candidates: cands,
        ..CallPayload::default()
    };
    match signal {
        CallSignal::Offer(sd) => (MessageKind::Offer, describe(sd)),
        CallSignal::Answer(sd) => (MessageKind::Answer, describe(sd)),
        CallSignal::Ringing => (MessageKind::Ringing, CallPayload::default()),
        CallSignal::Decline => (
            MessageKind::Busy,
            CallPayload {
                reason: Some(DECLINED.into()),
                ..CallPayload::default()
            },
        ),
        CallSignal::Hangup => (MessageKind::Hangup, CallPayload::default()),
        CallSignal::Ice(SignalMessage::Offer { ufrag, pwd }) => {
            (MessageKind::Ice, ice(ICE_OFFER, ufrag, Some(pwd), vec![]))
        }
        CallSignal::Ice(SignalMessage::Answer { ufrag, pwd }) => {
            (MessageKind::Ice, ice(ICE_ANSWER, ufrag, Some(pwd), vec![]))
        }
        CallSignal::Ice(SignalMessage::Candidate { ufrag, candidate }) => (
            MessageKind::Ice,
            ice(ICE_CANDIDATE, ufrag, None, vec![candidate.clone()]),
        ),
    }
}

/// The [`CallSignal`] a received message carries.
pub fn decode(kind: MessageKind, p: &CallPayload) -> Result<CallSignal, WireError> {
    Ok(match kind {
        MessageKind::Offer => CallSignal::Offer(session(p, "offer")?),
        MessageKind::Answer => CallSignal::Answer(session(p, "answer")?),
        MessageKind::Ringing => CallSignal::Ringing,
        MessageKind::Busy => CallSignal::Decline,
        // A withdrawn offer ends the call on our side like a hang-up.
        MessageKind::Hangup | MessageKind::Cancel => CallSignal::Hangup,
        MessageKind::Ice => {
            let ufrag = p
                .ice_ufrag
                .clone()
                .ok_or(WireError::Missing("ice", "ufrag"))?;
            let pwd = || p.ice_pwd.clone().ok_or(WireError::Missing("ice", "pwd"));
            CallSignal::Ice(match p.media.as_deref() {
                Some(ICE_OFFER) => SignalMessage::Offer { ufrag, pwd: pwd()? },
                Some(ICE_ANSWER) => SignalMessage::Answer { ufrag, pwd: pwd()? },
                Some(ICE_CANDIDATE) => SignalMessage::Candidate {
                    ufrag,
                    candidate: p
                        .candidates
                        .first()
                        .cloned()
                        .ok_or(WireError::Missing("ice", "candidate"))?,
                },
                _ => return Err(WireError::Missing("ice", "tag")),
            })
        }
    })
}

fn describe(sd: &SessionDescription) -> CallPayload {
    let c = &sd.codec;
    let mut media = format!(
        "opus pt={} rate={} ptime={} fec={} dtx={}",
        c.payload_type,
        c.clock_rate,
        c.ptime_ms,
        u8::from(c.fec),
        u8::from(c.dtx)
    );
    // A peer that knows no video ignores the parameter, and answers audio only.
    if let Some(v) = &sd.video {
        media += &format!(" vp8={} nack={}", v.payload_type, u8::from(v.nack));
    }
    CallPayload {
        media: Some(media),
        ice_ufrag: Some(sd.ice_ufrag.clone()),
        ice_pwd: Some(sd.ice_pwd.clone()),
        candidates: sd.candidates.clone(),
        zrtp_hash: Some(sd.zrtp_hash.clone()),
        reason: None,
    }
}

fn session(p: &CallPayload, what: &'static str) -> Result<SessionDescription, WireError> {
    let need = |v: &Option<String>, field| v.clone().ok_or(WireError::Missing(what, field));
    let (codec, video) = media(
        p.media
            .as_deref()
            .ok_or(WireError::Missing(what, "media"))?,
    )?;
    Ok(SessionDescription {
        ice_ufrag: need(&p.ice_ufrag, "ufrag")?,
        ice_pwd: need(&p.ice_pwd, "pwd")?,
        candidates: p.candidates.clone(),
        zrtp_hash: need(&p.zrtp_hash, "zrtp-hash")?,
        codec,
        video,
    })
}

/// The audio codec and the video, if any, of a `media` line.
fn media(media: &str) -> Result<(CodecParams, Option<VideoParams>), WireError> {
    let bad = || WireError::Media(media.chars().take(80).collect());
    let mut words = media.split_ascii_whitespace();
    if words.next() != Some("opus") {
        return Err(bad());
    }
    let mut c = CodecParams::default();
    let mut video = None;
    // Peers from before NACK do not say it: they do not take it.
    let mut nack = false;
    for w in words {
        let (k, v) = w.split_once('=').ok_or_else(bad)?;
        let n: u32 = v.parse().map_err(|_| bad())?;
        match k {
            "pt" => c.payload_type = u8::try_from(n).map_err(|_| bad())?,
            "rate" => c.clock_rate = n,
            "ptime" => c.ptime_ms = n,
            "fec" => c.fec = n != 0,
            "dtx" => c.dtx = n != 0,
            "vp8" => video = Some(u8::try_from(n).map_err(|_| bad())?),
            "nack" => nack = n != 0,
            _ => {} // unknown parameters from newer peers are ignored
        }
    }
    let video = video.map(|payload_type| VideoParams { payload_type, nack });
    Ok((c, video))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd() -> SessionDescription {
        SessionDescription {
            ice_ufrag: "uf".into(),
            ice_pwd: "pw".into(),
            candidates: vec!["1 1 udp 1 127.0.0.1 5000 typ relay".into()],
            zrtp_hash: "1.10 abcd".into(),
            codec: CodecParams {
                fec: false,
                ptime_ms: 10,
                ..CodecParams::default()
            },
            video: Some(VideoParams::default()),
        }
    }

    #[test]
    fn every_signal_round_trips() {
        let all = [
            CallSignal::Offer(sd()),
            CallSignal::Answer(sd()),
            CallSignal::Answer(SessionDescription {
                video: None,
                ..sd()
            }),
            CallSignal::Ringing,
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
            let (k, p) = encode(&s);
            assert_eq!(decode(k, &p).unwrap(), s);
        }
    }

    #[test]
    fn video_from_a_peer_before_nack_takes_no_nack() {
        let (k, mut p) = encode(&CallSignal::Offer(sd()));
        let media = p.media.clone().unwrap();
        assert!(media.ends_with(" vp8=96 nack=1"), "{media}");
        p.media = Some(media.replace(" nack=1", ""));
        let Ok(CallSignal::Offer(d)) = decode(k, &p) else {
            panic!("{p:?}")
        };
        assert_eq!(d.video.map(|v| v.nack), Some(false));
    }

    #[test]
    fn incomplete_or_foreign_messages_are_refused() {
        let (k, mut p) = encode(&CallSignal::Offer(sd()));
        p.zrtp_hash = None;
        assert_eq!(decode(k, &p), Err(WireError::Missing("offer", "zrtp-hash")));
        let (k, mut p) = encode(&CallSignal::Answer(sd()));
        p.media = Some("pcmu pt=0".into());
        assert!(matches!(decode(k, &p), Err(WireError::Media(_))));
        let p = CallPayload {
            ice_ufrag: Some("u".into()),
            ..CallPayload::default()
        };
        assert!(decode(MessageKind::Ice, &p).is_err());
        assert_eq!(
            decode(MessageKind::Cancel, &CallPayload::default()),
            Ok(CallSignal::Hangup)
        );
    }
}
