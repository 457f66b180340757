//! The wire protocol: typed, versioned JSON frames exchanged over one
//! WebSocket per online device, and the envelope that carries a sealed
//! call message between two devices.
//!
//! The server reads only an [`Envelope`]'s routing header (who, to whom,
//! which call, what kind, when); the call payload itself is in `ct`,
//! sealed end to end (see [`crate::seal`]).

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;

/// Version carried in every frame; frames of another version are refused.
pub const PROTOCOL_VERSION: u16 = 1;
/// Largest WebSocket frame or HTTP body accepted, in bytes.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Longest device id, call id or message id, in characters.
pub const MAX_ID_LEN: usize = 64;

/// A device id: URL-safe base64 of the first 16 bytes of SHA-256 over the
/// device's Ed25519 public key, so an id cannot be claimed without its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(String);

/// A call id chosen by the caller (opaque, URL-safe).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CallId(String);

/// A message id chosen by the sender, unique per sender (opaque, URL-safe).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageId(String);

macro_rules! id_type {
    ($t:ident) => {
        impl $t {
            /// Validates `s`: 1..=[`MAX_ID_LEN`] characters of `[A-Za-z0-9_-]`.
            pub fn new(s: impl Into<String>) -> Result<Self, ProtocolError> {
                let s = s.into();
                let ok = !s.is_empty()
                    && s.len() <= MAX_ID_LEN
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if ok {
                    Ok(Self(s))
                } else {
                    Err(ProtocolError::BadId)
                }
            }
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// A fresh random id (128 bits).
            pub fn random() -> Self {
                Self(crate::util::random_token(16))
            }
        }
        impl TryFrom<String> for $t {
            type Error = ProtocolError;
            fn try_from(s: String) -> Result<Self, ProtocolError> {
                Self::new(s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
id_type!(DeviceId);
id_type!(CallId);
id_type!(MessageId);

/// What a call message means. Visible to the server, which uses it to
/// decide on wakeups (offers) and cancel pushes (cancel, hang-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Caller proposes a call (media description, ICE credentials, zrtp-hash).
    Offer,
    /// Callee accepts.
    Answer,
    /// Trickled ICE candidates.
    Ice,
    /// Callee's device is alerting.
    Ringing,
    /// Either side ends an established call.
    Hangup,
    /// Callee is in another call.
    Busy,
    /// Caller withdraws an offer (or it was answered on another device).
    Cancel,
}

impl MessageKind {
    /// The stable name bound into signatures and HPKE info.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offer => "offer",
            Self::Answer => "answer",
            Self::Ice => "ice",
            Self::Ringing => "ringing",
            Self::Hangup => "hangup",
            Self::Busy => "busy",
            Self::Cancel => "cancel",
        }
    }
    /// The kinds that end a ringing call.
    pub const ENDS_RINGING: [Self; 3] = [Self::Hangup, Self::Cancel, Self::Busy];

    /// Whether this message ends a ringing call, so an offer still queued
    /// for an offline device is withdrawn and a cancel push is sent.
    pub fn ends_ringing(self) -> bool {
        Self::ENDS_RINGING.contains(&self)
    }
}

/// A sealed, signed call message from one device to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Protocol version ([`PROTOCOL_VERSION`]).
    pub v: u16,
    /// Sender-chosen unique id (replay and duplicate detection, acks).
    pub id: MessageId,
    /// Sending device.
    pub from: DeviceId,
    /// Receiving device.
    pub to: DeviceId,
    /// The call this message belongs to.
    pub call_id: CallId,
    /// What it means.
    pub kind: MessageKind,
    /// Sender's clock, Unix milliseconds (replay window).
    pub ts_ms: u64,
    /// HPKE encapsulated key, URL-safe base64.
    pub enc: String,
    /// HPKE ciphertext of the [`crate::seal::CallPayload`], URL-safe base64.
    pub ct: String,
    /// Ed25519 signature by `from` over [`Envelope::signed_bytes`], URL-safe base64.
    pub sig: String,
}

impl Envelope {
    /// The routing header in a canonical, length-prefixed binary form. It
    /// is the HPKE AAD, and (with `enc` and `ct`) what the signature covers,
    /// so no field can be cut from one message and pasted into another.
    pub fn header_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        out.extend_from_slice(b"sotto-signal");
        out.extend_from_slice(&self.v.to_be_bytes());
        for field in [
            self.id.as_str(),
            self.from.as_str(),
            self.to.as_str(),
            self.call_id.as_str(),
            self.kind.as_str(),
        ] {
            push_lp(&mut out, field.as_bytes());
        }
        out.extend_from_slice(&self.ts_ms.to_be_bytes());
        out
    }

    /// Bytes covered by the sender's signature: header, `enc` and `ct`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = self.header_bytes();
        push_lp(&mut out, self.enc.as_bytes());
        push_lp(&mut out, self.ct.as_bytes());
        out
    }
}

fn push_lp(out: &mut Vec<u8>, field: &[u8]) {
    // Fields are bounded by MAX_FRAME_BYTES, so u32 cannot overflow.
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

/// Frames a device sends to the server over its WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Send a call message to another device.
    Send {
        /// Protocol version.
        v: u16,
        /// The message.
        msg: Envelope,
    },
    /// Confirms a delivered message so the server deletes it.
    Ack {
        /// Protocol version.
        v: u16,
        /// The delivered message's id.
        id: MessageId,
        /// The delivered message's sender (ids are unique per sender).
        from: DeviceId,
    },
}

/// Frames the server sends to a device over its WebSocket. Unlike what
/// the server accepts, a client ignores fields it does not know, so that
/// a server can add one (as `queued_s` was) without cutting off the
/// clients already installed; the envelope inside stays strict, as it is
/// signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// A message for this device; answer with [`ClientFrame::Ack`].
    Deliver {
        /// Protocol version.
        v: u16,
        /// The message.
        msg: Envelope,
    },
    /// The server stored a sent message; the client may forget it.
    Accepted {
        /// Protocol version.
        v: u16,
        /// The accepted message's id.
        id: MessageId,
        /// Set when the recipient was not connected: the message waits
        /// this many seconds for it to connect (an offer also wakes it by
        /// push, if it registered an endpoint), then is dropped.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queued_s: Option<u64>,
    },
    /// A frame was refused.
    Error {
        /// Protocol version.
        v: u16,
        /// Why, as a stable code.
        code: ErrorCode,
        /// The refused message's id, when it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<MessageId>,
    },
}

/// Why the server refused a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not valid JSON for this protocol, or a field out of range.
    Malformed,
    /// Larger than [`MAX_FRAME_BYTES`].
    TooLarge,
    /// Another protocol version.
    Version,
    /// `from` is not the authenticated device, or the signature is bad.
    Forbidden,
    /// Unknown recipient.
    UnknownDevice,
    /// The message id was seen before: the server already stored it (an
    /// earlier `accepted` was lost), so the sender may treat it as accepted.
    Replay,
    /// The message's timestamp is outside the server's window (older than
    /// 5 minutes or more than 1 minute ahead of its clock): it was NOT
    /// stored now. A resend after a long outage, or a sender whose clock
    /// is off, gets this; the message must be sealed again with a current
    /// timestamp, if it still means anything.
    Stale,
    /// Too many messages; slow down.
    RateLimited,
    /// The server could not store the message; resend later.
    Unavailable,
    /// The recipient has as many messages waiting for it as the server
    /// keeps (in all, or from this sender): not stored. They wait at most
    /// the ring timeout; resend later, if it still matters.
    QueueFull,
    /// A code this client does not know (a newer server's).
    #[serde(other)]
    Unknown,
}

impl ClientFrame {
    /// Parses a frame from untrusted text, checking size and version.
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        if text.len() > MAX_FRAME_BYTES {
            return Err(ProtocolError::TooLarge);
        }
        let frame: Self = serde_json::from_str(text).map_err(|_| ProtocolError::Malformed)?;
        let v = match &frame {
            Self::Send { v, msg } => {
                if msg.v != *v {
                    return Err(ProtocolError::Version);
                }
                *v
            }
            Self::Ack { v, .. } => *v,
        };
        if v != PROTOCOL_VERSION {
            return Err(ProtocolError::Version);
        }
        Ok(frame)
    }
}

impl ServerFrame {
    /// Parses a frame from untrusted text, checking size and version.
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        if text.len() > MAX_FRAME_BYTES {
            return Err(ProtocolError::TooLarge);
        }
        let frame: Self = serde_json::from_str(text).map_err(|_| ProtocolError::Malformed)?;
        let v = match &frame {
            // As for `send`: the envelope is of the frame's version, so a
            // client never reads a header laid out by another version.
            Self::Deliver { v, msg } => {
                if msg.v != *v {
                    return Err(ProtocolError::Version);
                }
                *v
            }
            Self::Accepted { v, .. } | Self::Error { v, .. } => *v,
        };
        if v != PROTOCOL_VERSION {
            return Err(ProtocolError::Version);
        }
        Ok(frame)
    }
}

/// Fuzz entry point: parses arbitrary bytes as client and server frames;
/// must never panic.
pub fn fuzz_parse(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(ClientFrame::Send { msg, .. }) = ClientFrame::parse(text) {
            let _ = msg.signed_bytes();
        }
        let _ = ServerFrame::parse(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_error_code_still_parses() {
        let f = ServerFrame::parse(r#"{"type":"error","v":1,"code":"from_the_future","id":"m1"}"#);
        assert!(matches!(
            f,
            Ok(ServerFrame::Error {
                code: ErrorCode::Unknown,
                ..
            })
        ));
        let f = ServerFrame::parse(r#"{"type":"error","v":1,"code":"queue_full"}"#);
        assert!(matches!(
            f,
            Ok(ServerFrame::Error {
                code: ErrorCode::QueueFull,
                ..
            })
        ));
    }

    #[test]
    fn ids_are_validated() {
        assert!(DeviceId::new("abc_-09").is_ok());
        assert!(DeviceId::new("").is_err());
        assert!(DeviceId::new("a b").is_err());
        assert!(DeviceId::new("x".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(serde_json::from_str::<CallId>("\"../etc\"").is_err());
    }

    #[test]
    fn frames_reject_bad_version_size_and_unknown_fields() {
        let ack = r#"{"type":"ack","v":1,"id":"m1","from":"d1"}"#;
        assert!(ClientFrame::parse(ack).is_ok());
        let v2 = r#"{"type":"ack","v":2,"id":"m1","from":"d1"}"#;
        assert_eq!(ClientFrame::parse(v2), Err(ProtocolError::Version));
        let extra = r#"{"type":"ack","v":1,"id":"m1","from":"d1","x":1}"#;
        assert_eq!(ClientFrame::parse(extra), Err(ProtocolError::Malformed));
        let big = format!(
            r#"{{"type":"ack","v":1,"id":"{}"}}"#,
            "a".repeat(MAX_FRAME_BYTES)
        );
        assert_eq!(ClientFrame::parse(&big), Err(ProtocolError::TooLarge));
        assert_eq!(ClientFrame::parse("{"), Err(ProtocolError::Malformed));
    }

    #[test]
    fn a_client_ignores_server_frame_fields_it_does_not_know() {
        let later = r#"{"type":"accepted","v":1,"id":"m1","queued_s":45,"added_later":true}"#;
        assert_eq!(
            ServerFrame::parse(later),
            Ok(ServerFrame::Accepted {
                v: 1,
                id: MessageId::new("m1").unwrap(),
                queued_s: Some(45),
            })
        );
        // The signed envelope inside a delivery stays strict.
        let env = r#"{"v":1,"id":"m","from":"a","to":"b","call_id":"c","kind":"offer","ts_ms":1,"enc":"","ct":"","sig":"","x":1}"#;
        let deliver = |env: &str| format!(r#"{{"type":"deliver","v":1,"msg":{env}}}"#);
        assert_eq!(
            ServerFrame::parse(&deliver(env)),
            Err(ProtocolError::Malformed)
        );
        assert!(ServerFrame::parse(&deliver(&env.replace(r#","x":1"#, ""))).is_ok());
    }

    #[test]
    fn a_delivered_envelope_of_another_version_is_refused() {
        let env = Envelope {
            v: 2,
            id: MessageId::new("m").unwrap(),
            from: DeviceId::new("a").unwrap(),
            to: DeviceId::new("b").unwrap(),
            call_id: CallId::new("c").unwrap(),
            kind: MessageKind::Offer,
            ts_ms: 1,
            enc: String::new(),
            ct: String::new(),
            sig: String::new(),
        };
        let frame = serde_json::to_string(&ServerFrame::Deliver { v: 1, msg: env }).unwrap();
        assert_eq!(ServerFrame::parse(&frame), Err(ProtocolError::Version));
    }

    #[test]
    fn header_is_unambiguous() {
        let mk = |from: &str, to: &str| Envelope {
            v: 1,
            id: MessageId::new("m").unwrap(),
            from: DeviceId::new(from).unwrap(),
            to: DeviceId::new(to).unwrap(),
            call_id: CallId::new("c").unwrap(),
            kind: MessageKind::Offer,
            ts_ms: 1,
            enc: String::new(),
            ct: String::new(),
            sig: String::new(),
        };
        // Length prefixes keep "ab"+"c" apart from "a"+"bc".
        assert_ne!(mk("ab", "c").header_bytes(), mk("a", "bc").header_bytes());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            fuzz_parse(&data);
        }
    }
}
