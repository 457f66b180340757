//! The Speex jitter buffer (`libspeexdsp`, `speex/speex_jitter.h`) behind a
//! safe owner type, used as the adaptive jitter buffer to beat.
//!
//! Timestamps and spans are in whatever unit the caller picks (Sotto uses
//! 48 kHz RTP samples); `step_size` is the tick length in that unit.

use std::ffi::c_void;

unsafe extern "C" {
    fn sotto_speex_jb_new(step_size: i32) -> *mut c_void;
    fn sotto_speex_jb_free(jb: *mut c_void);
    fn sotto_speex_jb_reset(jb: *mut c_void);
    fn sotto_speex_jb_put(jb: *mut c_void, data: *const u8, len: u32, ts: u32, span: u32, seq: u16);
    fn sotto_speex_jb_get(
        jb: *mut c_void,
        out: *mut u8,
        cap: u32,
        desired_span: i32,
        len: *mut u32,
        ts: *mut u32,
        span: *mut u32,
        start_offset: *mut i32,
    ) -> i32;
    fn sotto_speex_jb_tick(jb: *mut c_void);
    fn sotto_speex_jb_pointer_timestamp(jb: *mut c_void) -> i32;
    fn sotto_speex_jb_ctl(jb: *mut c_void, request: i32, value: *mut i32) -> i32;
}

/// `JITTER_BUFFER_SET_MARGIN` (speex_jitter.h).
const SET_MARGIN: i32 = 0;
/// `JITTER_BUFFER_GET_AVAILABLE_COUNT`.
const GET_AVAILABLE_COUNT: i32 = 3;
/// `JITTER_BUFFER_SET_MAX_LATE_RATE`.
const SET_MAX_LATE_RATE: i32 = 10;
/// `JITTER_BUFFER_SET_LATE_COST`.
const SET_LATE_COST: i32 = 12;

/// Largest payload [`SpeexJitter::get`] hands back.
pub const MAX_PAYLOAD: usize = 1500;

/// What `jitter_buffer_get` answered for one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpeexGet {
    /// `JITTER_BUFFER_OK`: play this packet.
    Packet {
        /// The payload bytes.
        payload: Vec<u8>,
        /// The packet's timestamp.
        timestamp: u32,
        /// The time the packet covers.
        span: u32,
        /// Offset of the packet start from the requested position.
        start_offset: i32,
    },
    /// `JITTER_BUFFER_MISSING`: the packet for this slot is lost or late; conceal.
    Missing {
        /// Timestamp of the missing slot.
        timestamp: u32,
    },
    /// `JITTER_BUFFER_INSERTION`: the buffer grows its delay; conceal one step.
    Insertion,
    /// Any other (error) code.
    Error(i32),
}

/// An owned Speex `JitterBuffer`.
pub struct SpeexJitter {
    raw: *mut c_void,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for SpeexJitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeexJitter").finish_non_exhaustive()
    }
}

impl SpeexJitter {
    /// `jitter_buffer_init(step_size)`; `None` if Speex returns NULL.
    pub fn new(step_size: u32) -> Option<Self> {
        let step = i32::try_from(step_size).ok()?;
        // SAFETY: plain constructor call; a NULL result is checked below.
        let raw = unsafe { sotto_speex_jb_new(step) };
        (!raw.is_null()).then(|| Self {
            raw,
            scratch: vec![0; MAX_PAYLOAD],
        })
    }

    /// `jitter_buffer_put`: Speex copies the bytes; payloads longer than
    /// [`MAX_PAYLOAD`] are ignored (they could not be read back whole).
    pub fn put(&mut self, payload: &[u8], timestamp: u32, span: u32, sequence: u16) {
        if payload.len() > MAX_PAYLOAD {
            return;
        }
        // SAFETY: `raw` is a live buffer owned by `self`; `payload` is valid
        // for `len` bytes for the duration of the call and Speex copies it.
        unsafe {
            sotto_speex_jb_put(
                self.raw,
                payload.as_ptr(),
                payload.len() as u32,
                timestamp,
                span,
                sequence,
            )
        };
    }

    /// `jitter_buffer_get(desired_span)`.
    pub fn get(&mut self, desired_span: u32) -> SpeexGet {
        let (mut len, mut ts, mut span, mut offset) = (0u32, 0u32, 0u32, 0i32);
        let desired = i32::try_from(desired_span).unwrap_or(i32::MAX);
        // SAFETY: `raw` is live; `scratch` is writable for `MAX_PAYLOAD` bytes
        // and the shim never writes more than `cap`; the out-pointers are
        // valid locals.
        let ret = unsafe {
            sotto_speex_jb_get(
                self.raw,
                self.scratch.as_mut_ptr(),
                MAX_PAYLOAD as u32,
                desired,
                &mut len,
                &mut ts,
                &mut span,
                &mut offset,
            )
        };
        match ret {
            0 => SpeexGet::Packet {
                payload: self.scratch[..(len as usize).min(MAX_PAYLOAD)].to_vec(),
                timestamp: ts,
                span,
                start_offset: offset,
            },
            1 => SpeexGet::Missing { timestamp: ts },
            2 => SpeexGet::Insertion,
            e => SpeexGet::Error(e),
        }
    }

    /// `jitter_buffer_tick`: advance one step.
    pub fn tick(&mut self) {
        // SAFETY: `raw` is a live buffer owned by `self`.
        unsafe { sotto_speex_jb_tick(self.raw) };
    }

    /// `jitter_buffer_reset`.
    pub fn reset(&mut self) {
        // SAFETY: `raw` is a live buffer owned by `self`.
        unsafe { sotto_speex_jb_reset(self.raw) };
    }

    /// `jitter_buffer_get_pointer_timestamp`.
    pub fn pointer_timestamp(&mut self) -> i32 {
        // SAFETY: `raw` is a live buffer owned by `self`.
        unsafe { sotto_speex_jb_pointer_timestamp(self.raw) }
    }

    fn ctl(&mut self, request: i32, mut value: i32) -> i32 {
        // SAFETY: `raw` is live; every request used here reads or writes one
        // spx_int32_t, which the shim passes by pointer to a local.
        unsafe { sotto_speex_jb_ctl(self.raw, request, &mut value) };
        value
    }

    /// `JITTER_BUFFER_GET_AVAILABLE_COUNT`: packets waiting in the buffer.
    pub fn available_count(&mut self) -> i32 {
        self.ctl(GET_AVAILABLE_COUNT, 0)
    }

    /// `JITTER_BUFFER_SET_MARGIN` (in timestamp units).
    pub fn set_margin(&mut self, margin: i32) {
        self.ctl(SET_MARGIN, margin);
    }

    /// `JITTER_BUFFER_SET_MAX_LATE_RATE` (percent).
    pub fn set_max_late_rate(&mut self, percent: i32) {
        self.ctl(SET_MAX_LATE_RATE, percent);
    }

    /// `JITTER_BUFFER_SET_LATE_COST`.
    pub fn set_late_cost(&mut self, cost: i32) {
        self.ctl(SET_LATE_COST, cost);
    }
}

impl Drop for SpeexJitter {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `jitter_buffer_init` and is freed only here.
        unsafe { sotto_speex_jb_free(self.raw) };
    }
}

// SAFETY: the Speex buffer has no thread affinity; `&mut self` serialises use.
unsafe impl Send for SpeexJitter {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_packets_come_back() {
        let mut jb = SpeexJitter::new(960).unwrap();
        let mut got = Vec::new();
        for k in 0..50u32 {
            jb.put(&[k as u8; 10], k * 960, 960, k as u16);
            if let SpeexGet::Packet { payload, .. } = jb.get(960) {
                got.push(payload[0]);
            }
            jb.tick();
        }
        assert!(got.len() > 40, "got {got:?}");
        assert!(got.windows(2).all(|w| w[0] < w[1]));
    }
}
