//! Typed codecs for every RFC 6189 §5 message.
//!
//! A message is `0x505a | length (32-bit words) | 8-byte type | body`.
//! Parsing never panics and never allocates more than the input's size;
//! lengths are checked against the type before any field is read.
//! MACs and hash-chain checks happen in the endpoint, which knows the keys.

use super::algo::Tag;
use super::error::MessageError;

/// Message preamble.
pub const PREAMBLE: [u8; 2] = [0x50, 0x5a];
/// Preamble, length and type.
pub const MESSAGE_HEADER_LEN: usize = 12;
/// Longest algorithm list a Hello can carry (the counts are 4-bit, §5.2
/// caps them at 7).
pub const MAX_ALGOS: usize = 7;

/// A ZID: the 96-bit endpoint identifier.
pub type Zid = [u8; 12];

/// The message types of §5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// `Hello   `
    Hello,
    /// `HelloACK`
    HelloAck,
    /// `Commit  `
    Commit,
    /// `DHPart1 `
    DhPart1,
    /// `DHPart2 `
    DhPart2,
    /// `Confirm1`
    Confirm1,
    /// `Confirm2`
    Confirm2,
    /// `Conf2ACK`
    Conf2Ack,
    /// `Error   `
    Error,
    /// `ErrorACK`
    ErrorAck,
    /// `GoClear `
    GoClear,
    /// `ClearACK`
    ClearAck,
    /// `SASrelay`
    SasRelay,
    /// `RelayACK`
    RelayAck,
    /// `Ping    `
    Ping,
    /// `PingACK `
    PingAck,
}

const TYPES: &[(MessageType, &[u8; 8])] = &[
    (MessageType::Hello, b"Hello   "),
    (MessageType::HelloAck, b"HelloACK"),
    (MessageType::Commit, b"Commit  "),
    (MessageType::DhPart1, b"DHPart1 "),
    (MessageType::DhPart2, b"DHPart2 "),
    (MessageType::Confirm1, b"Confirm1"),
    (MessageType::Confirm2, b"Confirm2"),
    (MessageType::Conf2Ack, b"Conf2ACK"),
    (MessageType::Error, b"Error   "),
    (MessageType::ErrorAck, b"ErrorACK"),
    (MessageType::GoClear, b"GoClear "),
    (MessageType::ClearAck, b"ClearACK"),
    (MessageType::SasRelay, b"SASrelay"),
    (MessageType::RelayAck, b"RelayACK"),
    (MessageType::Ping, b"Ping    "),
    (MessageType::PingAck, b"PingACK "),
];

impl MessageType {
    /// The 8-byte type block.
    pub fn block(self) -> &'static [u8; 8] {
        TYPES
            .iter()
            .find(|(t, _)| *t == self)
            .map(|(_, b)| *b)
            .unwrap_or(b"????????")
    }

    fn from_block(block: &[u8]) -> Option<Self> {
        TYPES.iter().find(|(_, b)| &b[..] == block).map(|(t, _)| *t)
    }
}

/// Hello (§5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version, `"1.10"`.
    pub version: [u8; 4],
    /// Client identifier (16 bytes, free text).
    pub client_id: [u8; 16],
    /// H3 of the sender's hash chain.
    pub h3: [u8; 32],
    /// Sender's ZID.
    pub zid: Zid,
    /// Signature-capable flag.
    pub s: bool,
    /// MiTM (PBX) flag.
    pub m: bool,
    /// Passive flag.
    pub p: bool,
    /// Hash tags.
    pub hashes: Vec<Tag>,
    /// Cipher tags.
    pub ciphers: Vec<Tag>,
    /// Auth tag tags.
    pub auth_tags: Vec<Tag>,
    /// Key agreement tags.
    pub key_agreements: Vec<Tag>,
    /// SAS tags.
    pub sas: Vec<Tag>,
    /// HMAC-SHA256 keyed by H2, first 64 bits.
    pub mac: [u8; 8],
}

/// What a Commit commits to (§5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitMode {
    /// DH mode: hash of the initiator's DHPart2 and the responder's Hello.
    Dh {
        /// hvi.
        hvi: [u8; 32],
    },
    /// Multistream mode.
    Multistream {
        /// Random nonce.
        nonce: [u8; 16],
    },
    /// Preshared mode (parsed, never used by us).
    Preshared {
        /// Random nonce.
        nonce: [u8; 16],
        /// Key ID.
        key_id: [u8; 8],
    },
}

/// Commit (§5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// H2 of the sender's chain.
    pub h2: [u8; 32],
    /// Sender's ZID.
    pub zid: Zid,
    /// Chosen hash.
    pub hash: Tag,
    /// Chosen cipher.
    pub cipher: Tag,
    /// Chosen auth tag.
    pub auth: Tag,
    /// Chosen key agreement.
    pub key_agreement: Tag,
    /// Chosen SAS rendering.
    pub sas: Tag,
    /// hvi or nonce.
    pub mode: CommitMode,
    /// HMAC-SHA256 keyed by H1, first 64 bits.
    pub mac: [u8; 8],
}

/// DHPart1 / DHPart2 (§5.5, §5.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhPart {
    /// H1 of the sender's chain.
    pub h1: [u8; 32],
    /// rs1 ID.
    pub rs1_id: [u8; 8],
    /// rs2 ID.
    pub rs2_id: [u8; 8],
    /// auxsecret ID.
    pub aux_id: [u8; 8],
    /// PBX secret ID.
    pub pbx_id: [u8; 8],
    /// Public value.
    pub pv: Vec<u8>,
    /// HMAC-SHA256 keyed by H0, first 64 bits.
    pub mac: [u8; 8],
}

/// Confirm1 / Confirm2 (§5.7) as on the wire: MAC, IV, ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    /// HMAC over the ciphertext with mackeyi/mackeyr, first 64 bits.
    pub confirm_mac: [u8; 8],
    /// CFB IV.
    pub iv: [u8; 16],
    /// Encrypted part.
    pub encrypted: Vec<u8>,
}

/// The decrypted part of a Confirm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmBody {
    /// H0, revealing the whole chain.
    pub h0: [u8; 32],
    /// PBX enrollment flag.
    pub e: bool,
    /// SAS verified flag.
    pub v: bool,
    /// Allow clear flag.
    pub a: bool,
    /// Disclosure flag.
    pub d: bool,
    /// Cache expiration interval in seconds (0xffffffff: never).
    pub cache_expiration: u32,
    /// Signature block (type word included), empty if none.
    pub signature: Vec<u8>,
}

/// SASrelay (§5.13) as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SasRelay {
    /// MAC over the ciphertext.
    pub mac: [u8; 8],
    /// CFB IV.
    pub iv: [u8; 16],
    /// Encrypted part (flags, rendering scheme, trusted SAS hash, signature).
    pub encrypted: Vec<u8>,
}

/// Ping (§5.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    /// Version.
    pub version: [u8; 4],
    /// Endpoint hash.
    pub endpoint_hash: [u8; 8],
}

/// PingACK (§5.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingAck {
    /// Version.
    pub version: [u8; 4],
    /// Our endpoint hash.
    pub sender_hash: [u8; 8],
    /// The hash from the Ping we answer.
    pub received_hash: [u8; 8],
    /// SSRC of the Ping we answer.
    pub ssrc: u32,
}

/// Any ZRTP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Hello.
    Hello(Hello),
    /// HelloACK.
    HelloAck,
    /// Commit.
    Commit(Commit),
    /// DHPart1.
    DhPart1(DhPart),
    /// DHPart2.
    DhPart2(DhPart),
    /// Confirm1.
    Confirm1(Confirm),
    /// Confirm2.
    Confirm2(Confirm),
    /// Conf2ACK.
    Conf2Ack,
    /// Error with its §5.9 code.
    Error(u32),
    /// ErrorACK.
    ErrorAck,
    /// GoClear with its clear_mac.
    GoClear([u8; 8]),
    /// ClearACK.
    ClearAck,
    /// SASrelay.
    SasRelay(SasRelay),
    /// RelayACK.
    RelayAck,
    /// Ping.
    Ping(Ping),
    /// PingACK.
    PingAck(PingAck),
}

/// Bounds-checked reader over a message body.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MessageError> {
        if self.buf.len() < n {
            return Err(MessageError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], MessageError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn tag(&mut self) -> Result<Tag, MessageError> {
        self.arr::<4>().map(Tag)
    }
    fn tags(&mut self, n: usize) -> Result<Vec<Tag>, MessageError> {
        (0..n).map(|_| self.tag()).collect()
    }
    fn u32(&mut self) -> Result<u32, MessageError> {
        self.arr::<4>().map(u32::from_be_bytes)
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
    fn end(&self) -> Result<(), MessageError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(MessageError::Length)
        }
    }
}

/// Reads the type of a message without parsing its body.
pub fn peek_type(message: &[u8]) -> Result<MessageType, MessageError> {
    check_header(message).map(|(t, _)| t)
}

fn check_header(message: &[u8]) -> Result<(MessageType, &[u8]), MessageError> {
    if message.len() < MESSAGE_HEADER_LEN {
        return Err(MessageError::Truncated);
    }
    if message[..2] != PREAMBLE {
        return Err(MessageError::Preamble);
    }
    let words = u16::from_be_bytes([message[2], message[3]]) as usize;
    if words * 4 != message.len() {
        return Err(MessageError::Length);
    }
    let ty = MessageType::from_block(&message[4..12]).ok_or(MessageError::UnknownType)?;
    Ok((ty, &message[MESSAGE_HEADER_LEN..]))
}

impl Message {
    /// The message's type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Hello(_) => MessageType::Hello,
            Message::HelloAck => MessageType::HelloAck,
            Message::Commit(_) => MessageType::Commit,
            Message::DhPart1(_) => MessageType::DhPart1,
            Message::DhPart2(_) => MessageType::DhPart2,
            Message::Confirm1(_) => MessageType::Confirm1,
            Message::Confirm2(_) => MessageType::Confirm2,
            Message::Conf2Ack => MessageType::Conf2Ack,
            Message::Error(_) => MessageType::Error,
            Message::ErrorAck => MessageType::ErrorAck,
            Message::GoClear(_) => MessageType::GoClear,
            Message::ClearAck => MessageType::ClearAck,
            Message::SasRelay(_) => MessageType::SasRelay,
            Message::RelayAck => MessageType::RelayAck,
            Message::Ping(_) => MessageType::Ping,
            Message::PingAck(_) => MessageType::PingAck,
        }
    }

    /// Parses a message (preamble to last byte).
    pub fn parse(message: &[u8]) -> Result<Message, MessageError> {
        let (ty, body) = check_header(message)?;
        let mut r = Reader { buf: body };
        let msg = match ty {
            MessageType::Hello => {
                let version = r.arr()?;
                let client_id = r.arr()?;
                let h3 = r.arr()?;
                let zid = r.arr()?;
                let [flags, hc, ca, ks] = r.arr::<4>()?;
                let counts = [hc & 0x0f, ca >> 4, ca & 0x0f, ks >> 4, ks & 0x0f].map(usize::from);
                if counts.iter().any(|c| *c > MAX_ALGOS) {
                    return Err(MessageError::AlgorithmCount);
                }
                let hello = Hello {
                    version,
                    client_id,
                    h3,
                    zid,
                    s: flags & 0x40 != 0,
                    m: flags & 0x20 != 0,
                    p: flags & 0x10 != 0,
                    hashes: r.tags(counts[0])?,
                    ciphers: r.tags(counts[1])?,
                    auth_tags: r.tags(counts[2])?,
                    key_agreements: r.tags(counts[3])?,
                    sas: r.tags(counts[4])?,
                    mac: r.arr()?,
                };
                Message::Hello(hello)
            }
            MessageType::Commit => {
                let h2 = r.arr()?;
                let zid = r.arr()?;
                let hash = r.tag()?;
                let cipher = r.tag()?;
                let auth = r.tag()?;
                let key_agreement = r.tag()?;
                let sas = r.tag()?;
                let mode = match &key_agreement.0 {
                    b"Mult" => CommitMode::Multistream { nonce: r.arr()? },
                    b"Prsh" => CommitMode::Preshared {
                        nonce: r.arr()?,
                        key_id: r.arr()?,
                    },
                    _ => CommitMode::Dh { hvi: r.arr()? },
                };
                Message::Commit(Commit {
                    h2,
                    zid,
                    hash,
                    cipher,
                    auth,
                    key_agreement,
                    sas,
                    mode,
                    mac: r.arr()?,
                })
            }
            MessageType::DhPart1 | MessageType::DhPart2 => {
                let h1 = r.arr()?;
                let rs1_id = r.arr()?;
                let rs2_id = r.arr()?;
                let aux_id = r.arr()?;
                let pbx_id = r.arr()?;
                let rest = r.rest();
                if rest.len() < 8 + 4 {
                    return Err(MessageError::Truncated);
                }
                let (pv, mac) = rest.split_at(rest.len() - 8);
                let mut m = [0u8; 8];
                m.copy_from_slice(mac);
                let part = DhPart {
                    h1,
                    rs1_id,
                    rs2_id,
                    aux_id,
                    pbx_id,
                    pv: pv.to_vec(),
                    mac: m,
                };
                if ty == MessageType::DhPart1 {
                    Message::DhPart1(part)
                } else {
                    Message::DhPart2(part)
                }
            }
            MessageType::Confirm1 | MessageType::Confirm2 => {
                let confirm_mac = r.arr()?;
                let iv = r.arr()?;
                let encrypted = r.rest().to_vec();
                if encrypted.len() < CONFIRM_BODY_MIN {
                    return Err(MessageError::Truncated);
                }
                let c = Confirm {
                    confirm_mac,
                    iv,
                    encrypted,
                };
                if ty == MessageType::Confirm1 {
                    Message::Confirm1(c)
                } else {
                    Message::Confirm2(c)
                }
            }
            MessageType::SasRelay => {
                let mac = r.arr()?;
                let iv = r.arr()?;
                let encrypted = r.rest().to_vec();
                if encrypted.len() < 40 {
                    return Err(MessageError::Truncated);
                }
                Message::SasRelay(SasRelay { mac, iv, encrypted })
            }
            MessageType::Error => Message::Error(r.u32()?),
            MessageType::GoClear => Message::GoClear(r.arr()?),
            MessageType::Ping => Message::Ping(Ping {
                version: r.arr()?,
                endpoint_hash: r.arr()?,
            }),
            MessageType::PingAck => Message::PingAck(PingAck {
                version: r.arr()?,
                sender_hash: r.arr()?,
                received_hash: r.arr()?,
                ssrc: r.u32()?,
            }),
            MessageType::HelloAck => Message::HelloAck,
            MessageType::Conf2Ack => Message::Conf2Ack,
            MessageType::ErrorAck => Message::ErrorAck,
            MessageType::ClearAck => Message::ClearAck,
            MessageType::RelayAck => Message::RelayAck,
        };
        r.end()?;
        Ok(msg)
    }

    /// Encodes the message, MAC fields as they are in the struct.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(128);
        b.extend_from_slice(&PREAMBLE);
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(self.message_type().block());
        match self {
            Message::Hello(h) => {
                b.extend_from_slice(&h.version);
                b.extend_from_slice(&h.client_id);
                b.extend_from_slice(&h.h3);
                b.extend_from_slice(&h.zid);
                let n = |v: &Vec<Tag>| v.len().min(MAX_ALGOS) as u8;
                b.push((u8::from(h.s) << 6) | (u8::from(h.m) << 5) | (u8::from(h.p) << 4));
                b.push(n(&h.hashes));
                b.push((n(&h.ciphers) << 4) | n(&h.auth_tags));
                b.push((n(&h.key_agreements) << 4) | n(&h.sas));
                for list in [
                    &h.hashes,
                    &h.ciphers,
                    &h.auth_tags,
                    &h.key_agreements,
                    &h.sas,
                ] {
                    for t in list.iter().take(MAX_ALGOS) {
                        b.extend_from_slice(&t.0);
                    }
                }
                b.extend_from_slice(&h.mac);
            }
            Message::Commit(c) => {
                b.extend_from_slice(&c.h2);
                b.extend_from_slice(&c.zid);
                for t in [c.hash, c.cipher, c.auth, c.key_agreement, c.sas] {
                    b.extend_from_slice(&t.0);
                }
                match &c.mode {
                    CommitMode::Dh { hvi } => b.extend_from_slice(hvi),
                    CommitMode::Multistream { nonce } => b.extend_from_slice(nonce),
                    CommitMode::Preshared { nonce, key_id } => {
                        b.extend_from_slice(nonce);
                        b.extend_from_slice(key_id);
                    }
                }
                b.extend_from_slice(&c.mac);
            }
            Message::DhPart1(p) | Message::DhPart2(p) => {
                b.extend_from_slice(&p.h1);
                for id in [&p.rs1_id, &p.rs2_id, &p.aux_id, &p.pbx_id] {
                    b.extend_from_slice(id);
                }
                b.extend_from_slice(&p.pv);
                b.extend_from_slice(&p.mac);
            }
            Message::Confirm1(c) | Message::Confirm2(c) => {
                b.extend_from_slice(&c.confirm_mac);
                b.extend_from_slice(&c.iv);
                b.extend_from_slice(&c.encrypted);
            }
            Message::SasRelay(s) => {
                b.extend_from_slice(&s.mac);
                b.extend_from_slice(&s.iv);
                b.extend_from_slice(&s.encrypted);
            }
            Message::Error(code) => b.extend_from_slice(&code.to_be_bytes()),
            Message::GoClear(mac) => b.extend_from_slice(mac),
            Message::Ping(p) => {
                b.extend_from_slice(&p.version);
                b.extend_from_slice(&p.endpoint_hash);
            }
            Message::PingAck(p) => {
                b.extend_from_slice(&p.version);
                b.extend_from_slice(&p.sender_hash);
                b.extend_from_slice(&p.received_hash);
                b.extend_from_slice(&p.ssrc.to_be_bytes());
            }
            Message::HelloAck
            | Message::Conf2Ack
            | Message::ErrorAck
            | Message::ClearAck
            | Message::RelayAck => {}
        }
        // Bodies are word-aligned by construction except a DH pv of odd
        // length, which no algorithm has; pad defensively.
        while b.len() % 4 != 0 {
            b.push(0);
        }
        let words = (b.len() / 4) as u16;
        b[2..4].copy_from_slice(&words.to_be_bytes());
        b
    }
}

/// Smallest Confirm plaintext: H0, flags word, cache expiration.
pub const CONFIRM_BODY_MIN: usize = 32 + 4 + 4;

impl ConfirmBody {
    /// Encodes the plaintext that gets encrypted.
    pub fn encode(&self) -> Vec<u8> {
        let sig_words = (self.signature.len() / 4) as u16 & 0x1ff;
        let mut b = Vec::with_capacity(CONFIRM_BODY_MIN + self.signature.len());
        b.extend_from_slice(&self.h0);
        b.push(0);
        b.push((sig_words >> 8) as u8);
        b.push(sig_words as u8);
        b.push(
            (u8::from(self.e) << 3)
                | (u8::from(self.v) << 2)
                | (u8::from(self.a) << 1)
                | u8::from(self.d),
        );
        b.extend_from_slice(&self.cache_expiration.to_be_bytes());
        b.extend_from_slice(&self.signature[..usize::from(sig_words) * 4]);
        b
    }

    /// Parses a decrypted Confirm body.
    pub fn parse(plain: &[u8]) -> Result<ConfirmBody, MessageError> {
        let mut r = Reader { buf: plain };
        let h0 = r.arr()?;
        let [_, hi, lo, flags] = r.arr::<4>()?;
        let sig_words = (usize::from(hi & 1) << 8) | usize::from(lo);
        let cache_expiration = r.u32()?;
        let signature = r.take(sig_words * 4)?.to_vec();
        r.end()?;
        Ok(ConfirmBody {
            h0,
            e: flags & 0x08 != 0,
            v: flags & 0x04 != 0,
            a: flags & 0x02 != 0,
            d: flags & 0x01 != 0,
            cache_expiration,
            signature,
        })
    }
}

/// Parses arbitrary bytes as a packet and a message; the fuzz target's
/// body. Returns whether both parsed.
pub fn fuzz_parse(data: &[u8]) -> bool {
    let Ok(raw) = super::packet::parse(data) else {
        // Also drive the message parser directly on unframed input.
        if let Ok(m) = Message::parse(data) {
            let _ = Message::parse(&m.encode());
        }
        let _ = ConfirmBody::parse(data);
        return false;
    };
    match Message::parse(raw.message) {
        Ok(m) => {
            // Re-encoding must not panic either (reserved bits may differ).
            let _ = m.encode();
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_hello() -> Hello {
        Hello {
            version: *b"1.10",
            client_id: *b"Sotto 0.1       ",
            h3: [3; 32],
            zid: [9; 12],
            s: false,
            m: false,
            p: true,
            hashes: vec![Tag(*b"S256"), Tag(*b"S384")],
            ciphers: vec![Tag(*b"AES1")],
            auth_tags: vec![Tag(*b"HS32"), Tag(*b"HS80")],
            key_agreements: vec![Tag(*b"X255"), Tag(*b"DH3k")],
            sas: vec![Tag(*b"B32 ")],
            mac: [7; 8],
        }
    }

    #[test]
    fn every_message_round_trips() {
        let msgs = vec![
            Message::Hello(sample_hello()),
            Message::HelloAck,
            Message::Commit(Commit {
                h2: [2; 32],
                zid: [1; 12],
                hash: Tag(*b"S256"),
                cipher: Tag(*b"AES1"),
                auth: Tag(*b"HS32"),
                key_agreement: Tag(*b"X255"),
                sas: Tag(*b"B32 "),
                mode: CommitMode::Dh { hvi: [5; 32] },
                mac: [6; 8],
            }),
            Message::Commit(Commit {
                h2: [2; 32],
                zid: [1; 12],
                hash: Tag(*b"S256"),
                cipher: Tag(*b"AES1"),
                auth: Tag(*b"HS32"),
                key_agreement: Tag(*b"Mult"),
                sas: Tag(*b"B32 "),
                mode: CommitMode::Multistream { nonce: [4; 16] },
                mac: [6; 8],
            }),
            Message::DhPart1(DhPart {
                h1: [1; 32],
                rs1_id: [2; 8],
                rs2_id: [3; 8],
                aux_id: [4; 8],
                pbx_id: [5; 8],
                pv: vec![8; 32],
                mac: [9; 8],
            }),
            Message::DhPart2(DhPart {
                h1: [1; 32],
                rs1_id: [2; 8],
                rs2_id: [3; 8],
                aux_id: [4; 8],
                pbx_id: [5; 8],
                pv: vec![8; 384],
                mac: [9; 8],
            }),
            Message::Confirm1(Confirm {
                confirm_mac: [1; 8],
                iv: [2; 16],
                encrypted: vec![3; 40],
            }),
            Message::Confirm2(Confirm {
                confirm_mac: [1; 8],
                iv: [2; 16],
                encrypted: vec![3; 44],
            }),
            Message::Conf2Ack,
            Message::Error(0x62),
            Message::ErrorAck,
            Message::GoClear([1; 8]),
            Message::ClearAck,
            Message::SasRelay(SasRelay {
                mac: [1; 8],
                iv: [2; 16],
                encrypted: vec![0; 40],
            }),
            Message::RelayAck,
            Message::Ping(Ping {
                version: *b"1.10",
                endpoint_hash: [1; 8],
            }),
            Message::PingAck(PingAck {
                version: *b"1.10",
                sender_hash: [1; 8],
                received_hash: [2; 8],
                ssrc: 77,
            }),
        ];
        for m in msgs {
            let enc = m.encode();
            assert_eq!(enc.len() % 4, 0);
            assert_eq!(
                Message::parse(&enc).as_ref(),
                Ok(&m),
                "{:?}",
                m.message_type()
            );
            // Truncation is always an error, never a panic.
            for cut in 0..enc.len() {
                assert!(Message::parse(&enc[..cut]).is_err());
            }
        }
    }

    #[test]
    fn hello_lengths_match_rfc() {
        // §5.2: 88 fixed bytes + 4 per algorithm.
        assert_eq!(Message::Hello(sample_hello()).encode().len(), 88 + 4 * 8);
    }

    #[test]
    fn confirm_body_round_trips() {
        let b = ConfirmBody {
            h0: [1; 32],
            e: false,
            v: true,
            a: false,
            d: true,
            cache_expiration: u32::MAX,
            signature: vec![],
        };
        let enc = b.encode();
        assert_eq!(enc.len(), CONFIRM_BODY_MIN);
        assert_eq!(ConfirmBody::parse(&enc), Ok(b));
    }

    #[test]
    fn random_input_never_panics() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..600usize {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            fuzz_parse(&data);
            let mut framed = data.clone();
            if framed.len() >= 16 {
                framed[12..14].copy_from_slice(&PREAMBLE);
                let w = (framed.len() / 4) as u16;
                framed[14..16].copy_from_slice(&w.to_be_bytes());
                let _ = Message::parse(&framed[12..12 + ((framed.len() - 12) / 4) * 4]);
            }
        }
    }
}
