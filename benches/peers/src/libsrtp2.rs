//! libsrtp2 (Cisco's reference SRTP, Debian `libsrtp2-dev` 2.5) behind a
//! safe wrapper: one [`Session`] per profile, direction and master key.

use std::ffi::c_void;
use std::os::raw::c_int;
use std::sync::Once;

unsafe extern "C" {
    fn sotto_srtp2_init() -> c_int;
    fn sotto_srtp2_create(
        out: *mut *mut c_void,
        profile: c_int,
        outbound: c_int,
        key: *const u8,
        key_len: usize,
        window_size: std::os::raw::c_ulong,
    ) -> c_int;
    fn sotto_srtp2_destroy(session: *mut c_void);
    fn sotto_srtp2_protect(session: *mut c_void, buf: *mut u8, len: *mut c_int) -> c_int;
    fn sotto_srtp2_unprotect(session: *mut c_void, buf: *mut u8, len: *mut c_int) -> c_int;
    fn sotto_srtp2_protect_rtcp(session: *mut c_void, buf: *mut u8, len: *mut c_int) -> c_int;
    fn sotto_srtp2_unprotect_rtcp(session: *mut c_void, buf: *mut u8, len: *mut c_int) -> c_int;
    fn sotto_srtp2_max_trailer() -> c_int;
}

/// The six SRTP profiles libsrtp2 and Sotto share (numbers match the shim).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// AES_CM_128_HMAC_SHA1_80.
    AesCm128HmacSha1_80 = 0,
    /// AES_CM_128_HMAC_SHA1_32 (SRTCP with the 80-bit tag).
    AesCm128HmacSha1_32 = 1,
    /// AES_256_CM_HMAC_SHA1_80 (RFC 6188).
    AesCm256HmacSha1_80 = 2,
    /// AEAD_AES_128_GCM (RFC 7714).
    AeadAes128Gcm = 3,
    /// AEAD_AES_256_GCM (RFC 7714).
    AeadAes256Gcm = 4,
    /// AES_256_CM_HMAC_SHA1_32 (RFC 6188; SRTCP with the 80-bit tag).
    AesCm256HmacSha1_32 = 5,
}

impl Profile {
    /// The profile of an RFC name (`AES_CM_128_HMAC_SHA1_80`, the names
    /// `sotto_engine::srtp::Profile::name` gives), so that callers need
    /// no table of their own; `None` for a name libsrtp2 is not asked for.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "AES_CM_128_HMAC_SHA1_80" => Self::AesCm128HmacSha1_80,
            "AES_CM_128_HMAC_SHA1_32" => Self::AesCm128HmacSha1_32,
            "AES_256_CM_HMAC_SHA1_80" => Self::AesCm256HmacSha1_80,
            "AES_256_CM_HMAC_SHA1_32" => Self::AesCm256HmacSha1_32,
            "AEAD_AES_128_GCM" => Self::AeadAes128Gcm,
            "AEAD_AES_256_GCM" => Self::AeadAes256Gcm,
            _ => return None,
        })
    }
}

/// Which streams a session handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Every inbound SSRC (unprotect).
    Inbound,
    /// Every outbound SSRC (protect).
    Outbound,
}

/// A libsrtp2 status code other than `srtp_err_status_ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error(pub i32);

impl Error {
    /// `srtp_err_status_auth_fail`.
    pub const AUTH_FAIL: Error = Error(7);
    /// `srtp_err_status_replay_fail` (index already seen).
    pub const REPLAY_FAIL: Error = Error(9);
    /// `srtp_err_status_replay_old` (index older than the window).
    pub const REPLAY_OLD: Error = Error(10);
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "libsrtp2 status {}", self.0)
    }
}

impl std::error::Error for Error {}

fn check(status: c_int) -> Result<(), Error> {
    if status == 0 {
        Ok(())
    } else {
        Err(Error(status))
    }
}

static INIT: Once = Once::new();

fn init() {
    INIT.call_once(|| {
        // SAFETY: srtp_init takes no arguments and is called exactly once,
        // before any other libsrtp2 call (guarded by `INIT`).
        let status = unsafe { sotto_srtp2_init() };
        assert_eq!(status, 0, "srtp_init failed");
    });
}

/// Bytes a protect call may append (libsrtp2's `SRTP_MAX_TRAILER_LEN`).
pub fn max_trailer() -> usize {
    init();
    // SAFETY: returns a compile-time constant; no state is touched.
    let n = unsafe { sotto_srtp2_max_trailer() };
    usize::try_from(n).expect("non-negative constant")
}

/// One libsrtp2 session (`srtp_t`) for every SSRC of one direction.
#[derive(Debug)]
pub struct Session {
    raw: *mut c_void,
    trailer: usize,
}

impl Session {
    /// Creates a session; `key_and_salt` is the master key followed by the
    /// master salt. `window_size` is the SRTP replay window (64..32768).
    pub fn new(
        profile: Profile,
        direction: Direction,
        key_and_salt: &[u8],
        window_size: u32,
    ) -> Result<Self, Error> {
        init();
        let mut raw = std::ptr::null_mut();
        // SAFETY: `raw` is a valid out-pointer; `key_and_salt` is valid for
        // `len` bytes and only read during the call (libsrtp2 copies it).
        let status = unsafe {
            sotto_srtp2_create(
                &mut raw,
                profile as c_int,
                c_int::from(direction == Direction::Outbound),
                key_and_salt.as_ptr(),
                key_and_salt.len(),
                window_size.into(),
            )
        };
        check(status)?;
        Ok(Session {
            raw,
            trailer: max_trailer(),
        })
    }

    fn call(
        &mut self,
        f: unsafe extern "C" fn(*mut c_void, *mut u8, *mut c_int) -> c_int,
        packet: &mut Vec<u8>,
        grows: bool,
    ) -> Result<(), Error> {
        let len = packet.len();
        if grows {
            packet.resize(len + self.trailer, 0);
        }
        let mut n = c_int::try_from(len).map_err(|_| Error(2))?;
        // SAFETY: `self.raw` is a live session; `packet` is valid for its
        // whole (possibly grown) length, which covers `len` plus libsrtp2's
        // maximum trailer when protecting; libsrtp2 writes at most that and
        // stores the new length in `n`.
        let status = unsafe { f(self.raw, packet.as_mut_ptr(), &mut n) };
        let result = check(status);
        let new_len = if result.is_ok() {
            usize::try_from(n).expect("libsrtp2 returned a negative length")
        } else {
            len
        };
        packet.truncate(new_len);
        result
    }

    /// Protects an RTP packet in place (appends the tag).
    pub fn protect(&mut self, packet: &mut Vec<u8>) -> Result<(), Error> {
        self.call(sotto_srtp2_protect, packet, true)
    }

    /// Unprotects an SRTP packet in place.
    pub fn unprotect(&mut self, packet: &mut Vec<u8>) -> Result<(), Error> {
        self.call(sotto_srtp2_unprotect, packet, false)
    }

    /// Protects an RTCP packet in place (appends E flag + index and tag).
    pub fn protect_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), Error> {
        self.call(sotto_srtp2_protect_rtcp, packet, true)
    }

    /// Unprotects an SRTCP packet in place.
    pub fn unprotect_rtcp(&mut self, packet: &mut Vec<u8>) -> Result<(), Error> {
        self.call(sotto_srtp2_unprotect_rtcp, packet, false)
    }

    /// Protects `buf[..len]` in place without allocating (for benchmarks);
    /// `buf` needs [`max_trailer`] spare bytes. Returns the new length.
    pub fn protect_in_place(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        self.call_slice(sotto_srtp2_protect, buf, len, true)
    }

    /// Unprotects `buf[..len]` in place without allocating; returns the
    /// RTP length.
    pub fn unprotect_in_place(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        self.call_slice(sotto_srtp2_unprotect, buf, len, false)
    }

    fn call_slice(
        &mut self,
        f: unsafe extern "C" fn(*mut c_void, *mut u8, *mut c_int) -> c_int,
        buf: &mut [u8],
        len: usize,
        grows: bool,
    ) -> Result<usize, Error> {
        let need = if grows { len + self.trailer } else { len };
        assert!(buf.len() >= need, "buffer too small for libsrtp2");
        let mut n = c_int::try_from(len).map_err(|_| Error(2))?;
        // SAFETY: `self.raw` is a live session and `buf` is valid for
        // `need` bytes, which covers what libsrtp2 reads and writes.
        let status = unsafe { f(self.raw, buf.as_mut_ptr(), &mut n) };
        check(status)?;
        Ok(usize::try_from(n).expect("libsrtp2 returned a negative length"))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: `self.raw` came from a successful create and is freed once.
        unsafe { sotto_srtp2_destroy(self.raw) };
    }
}

// SAFETY: a libsrtp2 session has no thread affinity; `&mut self` on every
// call keeps it single-threaded at any moment.
unsafe impl Send for Session {}
