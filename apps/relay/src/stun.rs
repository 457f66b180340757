//! A small, allocation-free STUN/TURN message codec (RFC 8489, RFC 8656).
//!
//! Our own codec rather than `rtc-stun`/`rtc-turn`: those decode every
//! message into owned attribute vectors, while the relay's fast path must
//! look at a ChannelData header or a Send indication in place without
//! allocating. Parsing borrows the datagram; encoding appends to a `Vec`
//! (only on the control path). Covered by the `relay_stun` fuzz target.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The fixed magic cookie of RFC 8489 §5.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Size of the STUN header.
pub const HEADER_LEN: usize = 20;
/// XOR constant of the FINGERPRINT attribute (RFC 8489 §14.7).
const FINGERPRINT_XOR: u32 = 0x5354_554e;

/// STUN/TURN methods used by the relay (RFC 8489 §18.2, RFC 8656 §17).
pub mod method {
    /// Binding.
    pub const BINDING: u16 = 0x001;
    /// Allocate.
    pub const ALLOCATE: u16 = 0x003;
    /// Refresh.
    pub const REFRESH: u16 = 0x004;
    /// Send (indication).
    pub const SEND: u16 = 0x006;
    /// Data (indication).
    pub const DATA: u16 = 0x007;
    /// CreatePermission.
    pub const CREATE_PERMISSION: u16 = 0x008;
    /// ChannelBind.
    pub const CHANNEL_BIND: u16 = 0x009;
}

/// Attribute types (RFC 8489 §18.3, RFC 8656 §18).
pub mod attr {
    /// MAPPED-ADDRESS.
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    /// USERNAME.
    pub const USERNAME: u16 = 0x0006;
    /// MESSAGE-INTEGRITY (HMAC-SHA1).
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    /// ERROR-CODE.
    pub const ERROR_CODE: u16 = 0x0009;
    /// UNKNOWN-ATTRIBUTES.
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    /// CHANNEL-NUMBER.
    pub const CHANNEL_NUMBER: u16 = 0x000C;
    /// LIFETIME.
    pub const LIFETIME: u16 = 0x000D;
    /// BANDWIDTH (RFC 5766 draft era, still sent by some clients).
    pub const BANDWIDTH: u16 = 0x0010;
    /// XOR-PEER-ADDRESS.
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    /// DATA.
    pub const DATA: u16 = 0x0013;
    /// REALM.
    pub const REALM: u16 = 0x0014;
    /// NONCE.
    pub const NONCE: u16 = 0x0015;
    /// XOR-RELAYED-ADDRESS.
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    /// REQUESTED-ADDRESS-FAMILY.
    pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
    /// EVEN-PORT.
    pub const EVEN_PORT: u16 = 0x0018;
    /// REQUESTED-TRANSPORT.
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    /// DONT-FRAGMENT.
    pub const DONT_FRAGMENT: u16 = 0x001A;
    /// MESSAGE-INTEGRITY-SHA256.
    pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
    /// PASSWORD-ALGORITHM (RFC 8489 §14.12): the algorithm the client chose.
    pub const PASSWORD_ALGORITHM: u16 = 0x001D;
    /// USERHASH.
    pub const USERHASH: u16 = 0x001E;
    /// XOR-MAPPED-ADDRESS.
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    /// RESERVATION-TOKEN.
    pub const RESERVATION_TOKEN: u16 = 0x0022;
    /// ADDITIONAL-ADDRESS-FAMILY (comprehension-optional).
    pub const ADDITIONAL_ADDRESS_FAMILY: u16 = 0x8000;
    /// PASSWORD-ALGORITHMS (RFC 8489 §14.11, comprehension-optional): the
    /// server's offer, echoed by the client.
    pub const PASSWORD_ALGORITHMS: u16 = 0x8002;
    /// SOFTWARE.
    pub const SOFTWARE: u16 = 0x8022;
    /// FINGERPRINT.
    pub const FINGERPRINT: u16 = 0x8028;
}

/// Message class (RFC 8489 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A request.
    Request,
    /// An indication.
    Indication,
    /// A success response.
    Success,
    /// An error response.
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0x0000,
            Class::Indication => 0x0010,
            Class::Success => 0x0100,
            Class::Error => 0x0110,
        }
    }
}

/// Why a datagram is not a well-formed STUN message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than a header or than its length field says.
    #[error("truncated message")]
    Truncated,
    /// The two top bits are not zero or the cookie is wrong.
    #[error("not a STUN message")]
    NotStun,
    /// Length is not a multiple of four or an attribute overruns.
    #[error("malformed attribute layout")]
    BadLayout,
    /// An attribute value has the wrong size or content.
    #[error("malformed attribute {0:#06x}")]
    BadAttribute(u16),
}

/// Encodes method + class into the 14-bit message type.
pub fn message_type(method: u16, class: Class) -> u16 {
    let m = method & 0x0fff;
    (m & 0x000f) | ((m & 0x0070) << 1) | ((m & 0x0f80) << 2) | class.bits()
}

fn split_type(t: u16) -> (u16, Class) {
    let method = (t & 0x000f) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0f80);
    let class = match t & 0x0110 {
        0x0000 => Class::Request,
        0x0010 => Class::Indication,
        0x0100 => Class::Success,
        _ => Class::Error,
    };
    (method, class)
}

/// A parsed STUN message borrowing its datagram.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    raw: &'a [u8],
    /// The method (e.g. [`method::ALLOCATE`]).
    pub method: u16,
    /// The class.
    pub class: Class,
    /// The 96-bit transaction id.
    pub transaction_id: [u8; 12],
}

/// One attribute: its type, its value and where it starts in the message.
#[derive(Debug, Clone, Copy)]
pub struct Attribute<'a> {
    /// Attribute type.
    pub kind: u16,
    /// Value without padding.
    pub value: &'a [u8],
    /// Offset of the attribute header in the message.
    pub offset: usize,
}

/// True if `data` starts like a STUN message (top bits 00 and the cookie).
pub fn looks_like_stun(data: &[u8]) -> bool {
    data.len() >= HEADER_LEN
        && data[0] & 0xc0 == 0
        && u32::from_be_bytes([data[4], data[5], data[6], data[7]]) == MAGIC_COOKIE
}

/// Total length of the STUN message at the start of `data`, from its header.
pub fn stun_frame_len(header: &[u8]) -> Option<usize> {
    (header.len() >= 4)
        .then(|| HEADER_LEN + usize::from(u16::from_be_bytes([header[2], header[3]])))
}

impl<'a> Message<'a> {
    /// Parses and validates the header and attribute layout of one message.
    /// Trailing bytes beyond the length field are ignored (TCP padding).
    pub fn parse(data: &'a [u8]) -> Result<Self, ParseError> {
        if data.len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        if !looks_like_stun(data) {
            return Err(ParseError::NotStun);
        }
        let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
        if len % 4 != 0 {
            return Err(ParseError::BadLayout);
        }
        let raw = data.get(..HEADER_LEN + len).ok_or(ParseError::Truncated)?;
        let (method, class) = split_type(u16::from_be_bytes([data[0], data[1]]));
        let mut transaction_id = [0u8; 12];
        transaction_id.copy_from_slice(&data[8..20]);
        let msg = Message {
            raw,
            method,
            class,
            transaction_id,
        };
        for a in msg.attributes() {
            a?;
        }
        Ok(msg)
    }

    /// The raw bytes of the message.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Iterates over the attributes in order.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            raw: self.raw,
            pos: HEADER_LEN,
        }
    }

    /// The attributes before the first MESSAGE-INTEGRITY or
    /// MESSAGE-INTEGRITY-SHA256 (all of them if there is neither): what
    /// the integrity covers, and all a receiver may act on (RFC 8489
    /// §14.5; FINGERPRINT aside).
    pub fn attributes_before_integrity(&self) -> impl Iterator<Item = Attribute<'a>> + use<'a> {
        self.attributes().flatten().take_while(|a| {
            !matches!(
                a.kind,
                attr::MESSAGE_INTEGRITY | attr::MESSAGE_INTEGRITY_SHA256
            )
        })
    }

    /// The first attribute of `kind` that comes before MESSAGE-INTEGRITY
    /// (attributes after it are not protected and are ignored, RFC 8489 §14.5),
    /// except FINGERPRINT which is always last.
    pub fn get(&self, kind: u16) -> Option<Attribute<'a>> {
        for a in self.attributes().flatten() {
            if a.kind == kind {
                return Some(a);
            }
            if matches!(
                a.kind,
                attr::MESSAGE_INTEGRITY | attr::MESSAGE_INTEGRITY_SHA256
            ) && kind != attr::MESSAGE_INTEGRITY_SHA256
                && kind != attr::FINGERPRINT
            {
                return None;
            }
        }
        None
    }

    /// A UTF-8 attribute value (USERNAME, REALM, NONCE).
    pub fn get_str(&self, kind: u16) -> Result<Option<&'a str>, ParseError> {
        match self.get(kind) {
            None => Ok(None),
            Some(a) if a.value.len() <= 763 => std::str::from_utf8(a.value)
                .map(Some)
                .map_err(|_| ParseError::BadAttribute(kind)),
            Some(_) => Err(ParseError::BadAttribute(kind)),
        }
    }

    /// A 32-bit attribute value (LIFETIME).
    pub fn get_u32(&self, kind: u16) -> Result<Option<u32>, ParseError> {
        match self.get(kind) {
            None => Ok(None),
            Some(a) => {
                let v: [u8; 4] = a
                    .value
                    .try_into()
                    .map_err(|_| ParseError::BadAttribute(kind))?;
                Ok(Some(u32::from_be_bytes(v)))
            }
        }
    }

    /// An XOR-encoded address attribute.
    pub fn get_xor_addr(&self, kind: u16) -> Result<Option<SocketAddr>, ParseError> {
        self.get(kind)
            .map(|a| {
                decode_xor_addr(a.value, &self.transaction_id).ok_or(ParseError::BadAttribute(kind))
            })
            .transpose()
    }

    /// Checks MESSAGE-INTEGRITY (or MESSAGE-INTEGRITY-SHA256) with `key`, in
    /// constant time. Returns which one was checked, or `None` if neither
    /// is present or the value does not match.
    /// When both are present MESSAGE-INTEGRITY-SHA256 is the one checked
    /// (RFC 8489 §9.2.4), so the weaker one cannot be substituted.
    pub fn check_integrity(&self, key: &[u8]) -> Option<Integrity> {
        let mut found = None;
        for a in self.attributes().flatten() {
            match a.kind {
                attr::MESSAGE_INTEGRITY if found.is_none() => found = Some(a),
                attr::MESSAGE_INTEGRITY_SHA256 => {
                    found = Some(a);
                    break;
                }
                attr::FINGERPRINT => break,
                _ => {}
            }
        }
        let a = found?;
        let kind = if a.kind == attr::MESSAGE_INTEGRITY {
            Integrity::Sha1
        } else {
            Integrity::Sha256
        };
        let covered_len = (a.offset + 4 + a.value.len() - HEADER_LEN) as u16;
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&self.raw[..HEADER_LEN]);
        header[2..4].copy_from_slice(&covered_len.to_be_bytes());
        let body = &self.raw[HEADER_LEN..a.offset];
        let ok = match kind {
            Integrity::Sha1 => {
                a.value.len() == 20 && bool::from(hmac_sha1(key, &[&header, body]).ct_eq(a.value))
            }
            // RFC 8489 §14.6 allows truncation to no less than 16 bytes.
            Integrity::Sha256 => {
                let n = a.value.len();
                (16..=32).contains(&n)
                    && n % 4 == 0
                    && bool::from(hmac_sha256(key, &[&header, body])[..n].ct_eq(a.value))
            }
        };
        ok.then_some(kind)
    }

    /// The PASSWORD-ALGORITHM the client chose (RFC 8489 §14.12): the
    /// algorithm number, or an error if the value is malformed.
    pub fn get_password_algorithm(&self) -> Result<Option<u16>, ParseError> {
        self.get(attr::PASSWORD_ALGORITHM)
            .map(|a| {
                decode_password_algorithm(a.value)
                    .map(|(alg, _params)| alg)
                    .ok_or(ParseError::BadAttribute(attr::PASSWORD_ALGORITHM))
            })
            .transpose()
    }

    /// True if a FINGERPRINT attribute is present and correct.
    pub fn fingerprint_ok(&self) -> Option<bool> {
        let a = self
            .attributes()
            .flatten()
            .find(|a| a.kind == attr::FINGERPRINT)?;
        if a.value.len() != 4 {
            return Some(false);
        }
        let want = u32::from_be_bytes([a.value[0], a.value[1], a.value[2], a.value[3]]);
        Some(crc32fast::hash(&self.raw[..a.offset]) ^ FINGERPRINT_XOR == want)
    }
}

/// Which integrity attribute a request used (the answer uses the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// MESSAGE-INTEGRITY, HMAC-SHA1.
    Sha1,
    /// MESSAGE-INTEGRITY-SHA256.
    Sha256,
}

/// Iterator over attributes; yields an error once on a bad layout.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    raw: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Result<Attribute<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.raw.len() {
            return None;
        }
        let offset = self.pos;
        let Some(h) = self.raw.get(offset..offset + 4) else {
            self.pos = self.raw.len();
            return Some(Err(ParseError::BadLayout));
        };
        let kind = u16::from_be_bytes([h[0], h[1]]);
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let start = offset + 4;
        let Some(value) = self.raw.get(start..start + len) else {
            self.pos = self.raw.len();
            return Some(Err(ParseError::BadLayout));
        };
        self.pos = start + len.div_ceil(4) * 4;
        Some(Ok(Attribute {
            kind,
            value,
            offset,
        }))
    }
}

/// Password algorithm numbers (RFC 8489 §18.5).
pub mod password_algorithm {
    /// MD5 (the RFC 5389 long-term key).
    pub const MD5: u16 = 0x0001;
    /// SHA-256.
    pub const SHA256: u16 = 0x0002;
}

/// Decodes one password-algorithm entry (the PASSWORD-ALGORITHM value, or
/// one element of PASSWORD-ALGORITHMS): `(algorithm, parameters)`. The
/// whole value must be exactly one entry, parameters padded to 4 bytes.
pub fn decode_password_algorithm(v: &[u8]) -> Option<(u16, &[u8])> {
    let alg = u16::from_be_bytes([*v.first()?, *v.get(1)?]);
    let len = usize::from(u16::from_be_bytes([*v.get(2)?, *v.get(3)?]));
    let params = v.get(4..4 + len)?;
    let padded = 4 + len.div_ceil(4) * 4;
    (v.len() == 4 + len || v.len() == padded).then_some((alg, params))
}

/// Decodes an XOR-*-ADDRESS value.
pub fn decode_xor_addr(v: &[u8], tid: &[u8; 12]) -> Option<SocketAddr> {
    if v.len() < 4 {
        return None;
    }
    let port = u16::from_be_bytes([v[2], v[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
    let cookie = MAGIC_COOKIE.to_be_bytes();
    match (v[1], v.len()) {
        (0x01, 8) => {
            let mut ip = [0u8; 4];
            for (i, b) in ip.iter_mut().enumerate() {
                *b = v[4 + i] ^ cookie[i];
            }
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
        }
        (0x02, 20) => {
            let mut ip = [0u8; 16];
            for (i, b) in ip.iter_mut().enumerate() {
                let k = if i < 4 { cookie[i] } else { tid[i - 4] };
                *b = v[4 + i] ^ k;
            }
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))
        }
        _ => None,
    }
}

fn encode_xor_addr(addr: SocketAddr, tid: &[u8; 12], out: &mut Vec<u8>) {
    let (v, n) = xor_addr_value(addr, tid);
    out.extend_from_slice(&v[..n]);
}

/// The value of an XOR-encoded address attribute without allocating: the
/// bytes and how many of them are used (8 for IPv4, 20 for IPv6).
pub fn xor_addr_value(addr: SocketAddr, tid: &[u8; 12]) -> ([u8; 20], usize) {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = (addr.port() ^ (MAGIC_COOKIE >> 16) as u16).to_be_bytes();
    let mut v = [0u8; 20];
    v[2..4].copy_from_slice(&port);
    match addr.ip() {
        IpAddr::V4(ip) => {
            v[1] = 0x01;
            for (i, b) in ip.octets().iter().enumerate() {
                v[4 + i] = b ^ cookie[i];
            }
            (v, 8)
        }
        IpAddr::V6(ip) => {
            v[1] = 0x02;
            for (i, b) in ip.octets().iter().enumerate() {
                let k = if i < 4 { cookie[i] } else { tid[i - 4] };
                v[4 + i] = b ^ k;
            }
            (v, 20)
        }
    }
}

/// HMAC-SHA1 over the concatenation of `parts`.
pub fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256 over the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Builds one STUN message into a byte vector.
#[derive(Debug)]
pub struct Builder {
    buf: Vec<u8>,
    tid: [u8; 12],
}

impl Builder {
    /// Starts a message of `method`/`class` with transaction id `tid`.
    pub fn new(method: u16, class: Class, tid: [u8; 12]) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&message_type(method, class).to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf.extend_from_slice(&tid);
        Builder { buf, tid }
    }

    fn set_len(&mut self) {
        let len = (self.buf.len() - HEADER_LEN) as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
    }

    /// Appends a raw attribute with padding. Values over 64 KiB are cut.
    pub fn attr(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        let value = &value[..value.len().min(0xffff - 64)];
        self.buf.extend_from_slice(&kind.to_be_bytes());
        self.buf
            .extend_from_slice(&(value.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(value);
        let pad = (4 - value.len() % 4) % 4;
        self.buf.extend_from_slice(&[0u8; 3][..pad]);
        self
    }

    /// Appends a 32-bit attribute.
    pub fn u32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.attr(kind, &v.to_be_bytes())
    }

    /// Appends an XOR-encoded address attribute.
    pub fn xor_addr(&mut self, kind: u16, addr: SocketAddr) -> &mut Self {
        let mut v = Vec::with_capacity(20);
        encode_xor_addr(addr, &self.tid, &mut v);
        self.attr(kind, &v)
    }

    /// Appends PASSWORD-ALGORITHMS listing `algorithms` (no parameters:
    /// MD5 and SHA-256 take none).
    pub fn password_algorithms(&mut self, algorithms: &[u16]) -> &mut Self {
        let v: Vec<u8> = algorithms
            .iter()
            .flat_map(|a| {
                let b = a.to_be_bytes();
                [b[0], b[1], 0, 0]
            })
            .collect();
        self.attr(attr::PASSWORD_ALGORITHMS, &v)
    }

    /// Appends PASSWORD-ALGORITHM choosing `algorithm` (no parameters).
    pub fn password_algorithm(&mut self, algorithm: u16) -> &mut Self {
        let b = algorithm.to_be_bytes();
        self.attr(attr::PASSWORD_ALGORITHM, &[b[0], b[1], 0, 0])
    }

    /// Appends ERROR-CODE with a short reason phrase.
    pub fn error(&mut self, code: u16, reason: &str) -> &mut Self {
        let mut v = Vec::with_capacity(4 + reason.len());
        v.extend_from_slice(&[0, 0, (code / 100) as u8, (code % 100) as u8]);
        v.extend_from_slice(reason.as_bytes());
        self.attr(attr::ERROR_CODE, &v)
    }

    /// Appends MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256 computed with `key`.
    pub fn integrity(&mut self, kind: Integrity, key: &[u8]) -> &mut Self {
        let (attr_kind, size) = match kind {
            Integrity::Sha1 => (attr::MESSAGE_INTEGRITY, 20),
            Integrity::Sha256 => (attr::MESSAGE_INTEGRITY_SHA256, 32),
        };
        let len = (self.buf.len() - HEADER_LEN + 4 + size) as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
        match kind {
            Integrity::Sha1 => {
                let mac = hmac_sha1(key, &[&self.buf]);
                self.attr(attr_kind, &mac)
            }
            Integrity::Sha256 => {
                let mac = hmac_sha256(key, &[&self.buf]);
                self.attr(attr_kind, &mac)
            }
        }
    }

    /// Appends FINGERPRINT and returns the finished message.
    pub fn finish_with_fingerprint(mut self) -> Vec<u8> {
        let len = (self.buf.len() - HEADER_LEN + 8) as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
        let crc = crc32fast::hash(&self.buf) ^ FINGERPRINT_XOR;
        self.attr(attr::FINGERPRINT, &crc.to_be_bytes());
        self.set_len();
        self.buf
    }

    /// Returns the finished message without FINGERPRINT.
    pub fn finish(mut self) -> Vec<u8> {
        self.set_len();
        self.buf
    }
}

/// A ChannelData message (RFC 8656 §12.4) seen in place.
#[derive(Debug, Clone, Copy)]
pub struct ChannelData<'a> {
    /// Channel number, 0x4000..=0x4FFF when valid.
    pub channel: u16,
    /// Application data.
    pub data: &'a [u8],
}

impl<'a> ChannelData<'a> {
    /// Parses a ChannelData message; extra trailing bytes (padding) are ignored.
    pub fn parse(buf: &'a [u8]) -> Option<Self> {
        if buf.len() < 4 || buf[0] & 0xc0 != 0x40 {
            return None;
        }
        let channel = u16::from_be_bytes([buf[0], buf[1]]);
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        let data = buf.get(4..4 + len)?;
        Some(ChannelData { channel, data })
    }
}

/// Writes a ChannelData header for `len` payload bytes.
pub fn channel_header(channel: u16, len: u16) -> [u8; 4] {
    let c = channel.to_be_bytes();
    let l = len.to_be_bytes();
    [c[0], c[1], l[0], l[1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5769 §2.1 sample request (long-term credentials are in §2.4; this
    /// one uses the short-term password "VOkJxbRl1RmTxUk/WvJxBt").
    const RFC5769_REQUEST: &str = "000100582112a442b7e7a701bc34d686fa87dfae\
        802200105354554e207465737420636c69656e74\
        002400046e0001ff80290008932ff9b151263b36\
        000600096576746a3a68367659202020000800149aeaa70cbfd8cb56781ef2b5\
        b2d3f249c1b571a280280004e57a3bcf";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn rfc5769_sample_request_verifies() {
        let raw = unhex(RFC5769_REQUEST);
        let m = Message::parse(&raw).unwrap();
        assert_eq!(m.method, method::BINDING);
        assert_eq!(m.class, Class::Request);
        assert_eq!(m.get_str(attr::USERNAME).unwrap(), Some("evtj:h6vY"));
        assert_eq!(
            m.check_integrity(b"VOkJxbRl1RmTxUk/WvJxBt"),
            Some(Integrity::Sha1)
        );
        assert_eq!(m.check_integrity(b"wrong"), None);
        assert_eq!(m.fingerprint_ok(), Some(true));
        let mut bad = raw.clone();
        bad[30] ^= 1;
        let m = Message::parse(&bad).unwrap();
        assert_eq!(m.check_integrity(b"VOkJxbRl1RmTxUk/WvJxBt"), None);
        assert_eq!(m.fingerprint_ok(), Some(false));
    }

    /// RFC 5769 §2.2 sample IPv4 response: XOR-MAPPED-ADDRESS 192.0.2.1:32853.
    #[test]
    fn rfc5769_xor_mapped_v4() {
        let raw = unhex(
            "0101003c2112a442b7e7a701bc34d686fa87dfae\
             8022000b7465737420766563746f7220\
             002000080001a147e112a643\
             000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7\
             80280004c07d4c96",
        );
        let m = Message::parse(&raw).unwrap();
        assert_eq!(
            m.get_xor_addr(attr::XOR_MAPPED_ADDRESS).unwrap(),
            Some("192.0.2.1:32853".parse().unwrap())
        );
        assert_eq!(
            m.check_integrity(b"VOkJxbRl1RmTxUk/WvJxBt"),
            Some(Integrity::Sha1)
        );
        assert_eq!(m.fingerprint_ok(), Some(true));
    }

    #[test]
    fn builder_round_trip() {
        let tid = [7u8; 12];
        let peer: SocketAddr = "[2001:db8::1]:4000".parse().unwrap();
        for kind in [Integrity::Sha1, Integrity::Sha256] {
            let mut b = Builder::new(method::ALLOCATE, Class::Success, tid);
            b.xor_addr(attr::XOR_RELAYED_ADDRESS, peer)
                .u32(attr::LIFETIME, 600)
                .attr(attr::REALM, b"r")
                .integrity(kind, b"key");
            let out = b.finish_with_fingerprint();
            let m = Message::parse(&out).unwrap();
            assert_eq!(m.method, method::ALLOCATE);
            assert_eq!(m.class, Class::Success);
            assert_eq!(
                m.get_xor_addr(attr::XOR_RELAYED_ADDRESS).unwrap(),
                Some(peer)
            );
            assert_eq!(m.get_u32(attr::LIFETIME).unwrap(), Some(600));
            assert_eq!(m.check_integrity(b"key"), Some(kind));
            assert_eq!(m.fingerprint_ok(), Some(true));
        }
    }

    #[test]
    fn password_algorithm_round_trip_and_sha256_integrity_wins() {
        let mut b = Builder::new(method::ALLOCATE, Class::Request, [3; 12]);
        b.password_algorithms(&[password_algorithm::MD5, password_algorithm::SHA256])
            .password_algorithm(password_algorithm::SHA256)
            .integrity(Integrity::Sha1, b"weak")
            .integrity(Integrity::Sha256, b"strong");
        let out = b.finish_with_fingerprint();
        let m = Message::parse(&out).unwrap();
        assert_eq!(
            m.get_password_algorithm().unwrap(),
            Some(password_algorithm::SHA256)
        );
        assert_eq!(
            m.get(attr::PASSWORD_ALGORITHMS).unwrap().value,
            &[0, 1, 0, 0, 0, 2, 0, 0]
        );
        // Both integrity attributes: only the SHA-256 one counts.
        assert_eq!(m.check_integrity(b"strong"), Some(Integrity::Sha256));
        assert_eq!(m.check_integrity(b"weak"), None);
        // Entries: parameters are bounded by the value, padding is allowed.
        assert_eq!(decode_password_algorithm(&[0, 2, 0, 0]), Some((2, &[][..])));
        assert_eq!(
            decode_password_algorithm(&[0, 9, 0, 1, 7, 0, 0, 0]),
            Some((9, &[7][..]))
        );
        assert_eq!(decode_password_algorithm(&[0, 2, 0, 4, 1]), None);
        assert_eq!(decode_password_algorithm(&[0, 2, 0]), None);
        assert_eq!(decode_password_algorithm(&[0, 2, 0, 0, 0, 1, 0, 0]), None);
    }

    #[test]
    fn type_encoding_matches_rfc() {
        // RFC 8656 §17: Allocate success 0x0103, ChannelBind error 0x0119.
        assert_eq!(message_type(method::ALLOCATE, Class::Success), 0x0103);
        assert_eq!(message_type(method::CHANNEL_BIND, Class::Error), 0x0119);
        assert_eq!(message_type(method::SEND, Class::Indication), 0x0016);
        assert_eq!(split_type(0x0119), (method::CHANNEL_BIND, Class::Error));
    }

    #[test]
    fn malformed_inputs_are_errors() {
        assert_eq!(Message::parse(&[0; 10]).unwrap_err(), ParseError::Truncated);
        let mut m = unhex(RFC5769_REQUEST);
        m[3] = 0x59;
        assert!(Message::parse(&m).is_err());
        m[3] = 0x5c;
        assert_eq!(Message::parse(&m).unwrap_err(), ParseError::Truncated);
        assert!(ChannelData::parse(&[0x40, 0, 0, 8, 1]).is_none());
        assert_eq!(
            ChannelData::parse(&[0x40, 1, 0, 1, 9, 0, 0, 0])
                .unwrap()
                .data,
            &[9]
        );
    }
}
