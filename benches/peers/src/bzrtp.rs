//! bzrtp (Linphone's ZRTP library, Debian `libbzrtp-dev`) as a ZRTP peer.
//!
//! The C shim (`shims/bzrtp.c`) runs one bzrtp context with one channel.
//! Whole RFC 6189 packets go in with [`Bzrtp::process`] and come out of
//! [`Bzrtp::pop_packet`]; the caller carries them (over UDP in the interop
//! tests, in memory in the benchmark) and calls [`Bzrtp::iterate`] about
//! every 10 ms so bzrtp's retransmission timers run.

use std::ffi::{CStr, CString, c_char, c_int};
use std::ptr::NonNull;

#[repr(C)]
struct Shim {
    _private: [u8; 0],
}

#[repr(C)]
struct RawSecrets {
    self_key: [u8; 32],
    self_salt: [u8; 16],
    peer_key: [u8; 32],
    peer_salt: [u8; 16],
    self_key_len: u8,
    self_salt_len: u8,
    peer_key_len: u8,
    peer_salt_len: u8,
    cipher: u8,
    auth_tag: u8,
    hash: u8,
    key_agreement: u8,
    sas_algo: u8,
    cache_mismatch: u8,
    verified: i32,
    sas: [c_char; 64],
    secure: c_int,
}

unsafe extern "C" {
    fn sotto_bzrtp_new_cached(
        ssrc: u32,
        algos: *const u8,
        counts: *const u8,
        cache_path: *const c_char,
        self_uri: *const c_char,
        peer_uri: *const c_char,
    ) -> *mut Shim;
    fn sotto_bzrtp_sas_verified(s: *mut Shim);
    fn sotto_bzrtp_start(s: *mut Shim) -> c_int;
    fn sotto_bzrtp_process(s: *mut Shim, packet: *const u8, len: u16) -> c_int;
    fn sotto_bzrtp_iterate(s: *mut Shim, now_ms: u64) -> c_int;
    fn sotto_bzrtp_pop(s: *mut Shim, buf: *mut u8, cap: usize) -> c_int;
    fn sotto_bzrtp_secrets(s: *const Shim) -> *const RawSecrets;
    fn sotto_bzrtp_status(s: *mut Shim) -> c_int;
    fn sotto_bzrtp_self_hello_hash(s: *mut Shim, out: *mut c_char, cap: usize) -> c_int;
    fn sotto_bzrtp_set_peer_hello_hash(s: *mut Shim, hash: *const c_char) -> c_int;
    fn sotto_bzrtp_free(s: *mut Shim);
    fn sotto_bzrtp_set_aux_secret(s: *mut Shim, secret: *const u8, len: usize) -> c_int;
    fn sotto_bzrtp_aux_secret_mismatch(s: *mut Shim) -> c_int;
    fn sotto_bzrtp_add_channel(first: *mut Shim, ssrc: u32) -> *mut Shim;
}

/// bzrtp's algorithm codes (`bzrtp.h`) and the RFC 6189 names they stand for.
const CODES: &[(u8, &str)] = &[
    (0x11, "S256"),
    (0x12, "S384"),
    (0x21, "AES1"),
    (0x23, "AES3"),
    (0x31, "HS32"),
    (0x32, "HS80"),
    (0x41, "DH2k"),
    (0x42, "X255"),
    (0x43, "EC25"),
    (0x44, "X448"),
    (0x45, "DH3k"),
    (0x46, "EC38"),
    (0x4f, "Mult"),
    (0x51, "B32"),
    (0x52, "B256"),
];

fn code(name: &str) -> Option<u8> {
    CODES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name.trim()))
        .map(|(c, _)| *c)
}

fn name(code: u8) -> &'static str {
    CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("?", |(_, n)| n)
}

/// Algorithms bzrtp may offer, by RFC 6189 name; an empty list keeps
/// bzrtp's default for that kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BzrtpConfig {
    /// Hashes (`S256`, `S384`).
    pub hashes: Vec<String>,
    /// Ciphers (`AES1`, `AES3`).
    pub ciphers: Vec<String>,
    /// SRTP auth tags (`HS32`, `HS80`).
    pub auth_tags: Vec<String>,
    /// Key agreements (`X255`, `X448`, `DH3k`, `DH2k`, `Mult`).
    pub key_agreements: Vec<String>,
    /// SAS renderings (`B32`, `B256`).
    pub sas: Vec<String>,
}

impl BzrtpConfig {
    /// A config from comma-separated lists, e.g. `("S384", "AES3", "HS80", "DH3k", "B256")`.
    pub fn from_lists(hashes: &str, ciphers: &str, auth: &str, ka: &str, sas: &str) -> Self {
        let split = |s: &str| {
            s.split(',')
                .filter(|x| !x.trim().is_empty())
                .map(|x| x.trim().to_string())
                .collect()
        };
        BzrtpConfig {
            hashes: split(hashes),
            ciphers: split(ciphers),
            auth_tags: split(auth),
            key_agreements: split(ka),
            sas: split(sas),
        }
    }
}

/// What bzrtp negotiated, from its `startSrtpSession` callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BzrtpSecrets {
    /// Key bzrtp encrypts with.
    pub self_key: Vec<u8>,
    /// Salt bzrtp encrypts with.
    pub self_salt: Vec<u8>,
    /// Key bzrtp decrypts with.
    pub peer_key: Vec<u8>,
    /// Salt bzrtp decrypts with.
    pub peer_salt: Vec<u8>,
    /// The rendered SAS.
    pub sas: String,
    /// Cipher name.
    pub cipher: &'static str,
    /// Auth tag name.
    pub auth_tag: &'static str,
    /// Hash name.
    pub hash: &'static str,
    /// Key agreement name.
    pub key_agreement: &'static str,
    /// SAS rendering name.
    pub sas_algo: &'static str,
    /// bzrtp saw a cache mismatch.
    pub cache_mismatch: bool,
}

/// One bzrtp endpoint.
pub struct Bzrtp {
    ptr: NonNull<Shim>,
}

impl Bzrtp {
    /// Creates and initialises a bzrtp context for `ssrc`. Returns `None`
    /// on an unknown algorithm name or if bzrtp refuses.
    pub fn new(ssrc: u32, cfg: &BzrtpConfig) -> Option<Self> {
        Self::create(ssrc, cfg, None)
    }

    /// Like [`Bzrtp::new`], with bzrtp's SQLite ZID cache at `path`
    /// (created if missing) so retained secrets persist between calls;
    /// `self_uri` and `peer_uri` name the two ends in that cache.
    pub fn with_cache(
        ssrc: u32,
        cfg: &BzrtpConfig,
        path: &std::path::Path,
        self_uri: &str,
        peer_uri: &str,
    ) -> Option<Self> {
        Self::create(ssrc, cfg, Some((path, self_uri, peer_uri)))
    }

    fn create(
        ssrc: u32,
        cfg: &BzrtpConfig,
        cache: Option<(&std::path::Path, &str, &str)>,
    ) -> Option<Self> {
        let lists = [
            &cfg.hashes,
            &cfg.ciphers,
            &cfg.auth_tags,
            &cfg.key_agreements,
            &cfg.sas,
        ];
        let mut algos = Vec::new();
        let mut counts = [0u8; 5];
        for (i, l) in lists.iter().enumerate() {
            if l.len() > 7 {
                return None;
            }
            for n in l.iter() {
                algos.push(code(n)?);
            }
            counts[i] = l.len() as u8;
        }
        algos.push(0);
        let strings = match cache {
            Some((path, me, peer)) => Some((
                CString::new(path.to_str()?).ok()?,
                CString::new(me).ok()?,
                CString::new(peer).ok()?,
            )),
            None => None,
        };
        let (path, me, peer) = match &strings {
            Some((p, m, q)) => (p.as_ptr(), m.as_ptr(), q.as_ptr()),
            None => (std::ptr::null(), std::ptr::null(), std::ptr::null()),
        };
        // SAFETY: `algos` holds sum(counts) codes (plus a pad byte) and
        // `counts` five entries, as the shim reads; the strings are
        // NUL-terminated or null; all outlive the call (bzrtp copies them).
        let p = unsafe {
            sotto_bzrtp_new_cached(ssrc, algos.as_ptr(), counts.as_ptr(), path, me, peer)
        };
        NonNull::new(p).map(|ptr| Bzrtp { ptr })
    }

    /// Tells bzrtp the user confirmed the SAS (stored in its cache).
    pub fn sas_verified(&mut self) {
        // SAFETY: `ptr` is a live shim owned by `self`.
        unsafe { sotto_bzrtp_sas_verified(self.ptr.as_ptr()) }
    }

    /// Starts the channel (bzrtp begins sending Hello).
    pub fn start(&mut self) -> i32 {
        // SAFETY: `ptr` is a live shim owned by `self`.
        unsafe { sotto_bzrtp_start(self.ptr.as_ptr()) }
    }

    /// Hands bzrtp a received packet; returns bzrtp's code (0 = accepted).
    pub fn process(&mut self, packet: &[u8]) -> i32 {
        let Ok(len) = u16::try_from(packet.len()) else {
            return -1;
        };
        // SAFETY: `packet` is valid for `len` bytes; the shim copies it.
        unsafe { sotto_bzrtp_process(self.ptr.as_ptr(), packet.as_ptr(), len) }
    }

    /// Runs bzrtp's timers at `now_ms` (any monotonic millisecond clock).
    pub fn iterate(&mut self, now_ms: u64) -> i32 {
        // SAFETY: `ptr` is a live shim owned by `self`.
        unsafe { sotto_bzrtp_iterate(self.ptr.as_ptr(), now_ms) }
    }

    /// The next packet bzrtp wants sent.
    pub fn pop_packet(&mut self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 3072];
        // SAFETY: `buf` is writable for its whole length, passed as `cap`.
        let n = unsafe { sotto_bzrtp_pop(self.ptr.as_ptr(), buf.as_mut_ptr(), buf.len()) };
        if n <= 0 {
            return None;
        }
        buf.truncate(n as usize);
        Some(buf)
    }

    /// Whether bzrtp reached Secure.
    pub fn is_secure(&self) -> bool {
        self.raw().secure != 0
    }

    /// bzrtp's channel status code (`BZRTP_CHANNEL_*`).
    pub fn status(&mut self) -> i32 {
        // SAFETY: `ptr` is a live shim owned by `self`.
        unsafe { sotto_bzrtp_status(self.ptr.as_ptr()) }
    }

    fn raw(&self) -> &RawSecrets {
        // SAFETY: the shim returns a pointer into itself, valid while `self`
        // lives; the borrow is tied to `&self`.
        unsafe { &*sotto_bzrtp_secrets(self.ptr.as_ptr()) }
    }

    /// The negotiated secrets once secure.
    pub fn secrets(&self) -> Option<BzrtpSecrets> {
        let r = self.raw();
        if r.secure == 0 {
            return None;
        }
        let cut = |b: &[u8], n: u8| b[..usize::from(n).min(b.len())].to_vec();
        // SAFETY: the shim always NUL-terminates `sas` within its 64 bytes.
        let sas = unsafe { CStr::from_ptr(r.sas.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        Some(BzrtpSecrets {
            self_key: cut(&r.self_key, r.self_key_len),
            self_salt: cut(&r.self_salt, r.self_salt_len),
            peer_key: cut(&r.peer_key, r.peer_key_len),
            peer_salt: cut(&r.peer_salt, r.peer_salt_len),
            sas,
            cipher: name(r.cipher),
            auth_tag: name(r.auth_tag),
            hash: name(r.hash),
            key_agreement: name(r.key_agreement),
            sas_algo: name(r.sas_algo),
            cache_mismatch: r.cache_mismatch != 0,
        })
    }

    /// bzrtp's own Hello hash, `"1.10 <hex>"` (valid once started).
    pub fn self_hello_hash(&mut self) -> Option<String> {
        let mut buf = [0 as c_char; 128];
        // SAFETY: `buf` is writable for its length; the shim NUL-terminates.
        let rc =
            unsafe { sotto_bzrtp_self_hello_hash(self.ptr.as_ptr(), buf.as_mut_ptr(), buf.len()) };
        if rc != 0 {
            return None;
        }
        // SAFETY: bzrtp wrote a NUL-terminated string into `buf`.
        Some(
            unsafe { CStr::from_ptr(buf.as_ptr()) }
                .to_string_lossy()
                .into_owned(),
        )
    }

    /// Gives bzrtp the peer's Hello hash from signalling.
    pub fn set_peer_hello_hash(&mut self, hash: &str) -> i32 {
        let Ok(c) = CString::new(hash) else {
            return -1;
        };
        // SAFETY: `c` is a valid NUL-terminated string for the call.
        unsafe { sotto_bzrtp_set_peer_hello_hash(self.ptr.as_ptr(), c.as_ptr()) }
    }
}

impl Bzrtp {
    /// Sets an auxiliary shared secret (RFC 6189 §4.3); call before the
    /// peer's Hello arrives.
    pub fn set_aux_secret(&mut self, secret: &[u8]) -> i32 {
        // SAFETY: `secret` is valid for its length; bzrtp copies it.
        unsafe { sotto_bzrtp_set_aux_secret(self.ptr.as_ptr(), secret.as_ptr(), secret.len()) }
    }

    /// bzrtp's aux-secret status: 0 match, 1 mismatch, 2 unset.
    pub fn aux_secret_mismatch(&mut self) -> i32 {
        // SAFETY: `ptr` is a live shim owned by `self`.
        unsafe { sotto_bzrtp_aux_secret_mismatch(self.ptr.as_ptr()) }
    }

    /// Adds a second channel (multistream, RFC 6189 §4.4.3) to this
    /// context, for another SSRC; start it once this one is secure. The
    /// channel keeps the shared context alive on its own.
    pub fn add_channel(&mut self, ssrc: u32) -> Option<Bzrtp> {
        // SAFETY: `ptr` is a live shim; the new shim shares its bzrtp
        // context, which bzrtp frees only with its last channel.
        let p = unsafe { sotto_bzrtp_add_channel(self.ptr.as_ptr(), ssrc) };
        NonNull::new(p).map(|ptr| Bzrtp { ptr })
    }
}

impl Drop for Bzrtp {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `sotto_bzrtp_new` and is freed once.
        unsafe { sotto_bzrtp_free(self.ptr.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_bzrtp_endpoints_agree() {
        let cfg = BzrtpConfig::default();
        let mut a = Bzrtp::new(0x1111, &cfg).unwrap();
        let mut b = Bzrtp::new(0x2222, &cfg).unwrap();
        assert_eq!(a.start(), 0);
        assert_eq!(b.start(), 0);
        let mut t = 0;
        while !(a.is_secure() && b.is_secure()) && t < 5000 {
            while let Some(p) = a.pop_packet() {
                b.process(&p);
            }
            while let Some(p) = b.pop_packet() {
                a.process(&p);
            }
            t += 10;
            a.iterate(t);
            b.iterate(t);
        }
        let (sa, sb) = (a.secrets().unwrap(), b.secrets().unwrap());
        assert_eq!(sa.sas, sb.sas);
        assert_eq!(sa.self_key, sb.peer_key);
        assert!(a.self_hello_hash().unwrap().starts_with("1.10 "));
    }
}
