//! VP8 (RFC 6386) through the system libvpx, bound by `env-libvpx-sys`.
//!
//! This is the crate's FFI boundary and its only module with `unsafe`;
//! every block says why it is sound. Each codec context lives on the heap,
//! is reached only through its owner, and is destroyed when the owner is
//! dropped.
//!
//! # Real-time settings
//!
//! The encoder is set up the way a call needs it (much as WebRTC's libvpx
//! VP8 wrapper does), not for files:
//!
//! - **No lookahead** (`g_lag_in_frames = 0`) and the **real-time
//!   deadline** (`VPX_DL_REALTIME`): each picture is coded in the call that
//!   takes it, so the encoder adds no frames of delay.
//! - **Constant bitrate** (`VPX_CBR`) with a short rate-control buffer
//!   (500/600/1000 ms initial/optimal/size, 100 % undershoot, 15 %
//!   overshoot): the send rate follows the target that congestion control
//!   sets with [`VideoEncoder::set_bitrate`], and bursts stay short enough
//!   for a router's queue. Rate control may drop a picture (`encode` returns
//!   `Ok(None)`) rather than overshoot, and never resizes the picture, so
//!   the receiver always gets the size that was sent.
//! - **Keyframes are capped** at three times an average frame's bits
//!   (`VP8E_SET_MAX_INTRA_BITRATE_PCT` 300; WebRTC's formula gives 900 at
//!   30 fps): a large keyframe is a burst that delays the frames queued
//!   behind it, and a keyframe is sent exactly when the link is in trouble.
//! - **Error resilient** (`VPX_ERROR_RESILIENT_DEFAULT`): entropy contexts
//!   are not carried from one frame to the next, so a lost frame does not
//!   make later frames undecodable beyond what their references require.
//! - **Speed** from [`Vp8Config::cpu_used`] (`VP8E_SET_CPUUSED`; WebRTC
//!   uses -6 on desktops), 1 encoder thread up to 640x480 and 2 above it
//!   on machines with a spare core, and keyframes every
//!   [`Vp8Config::keyframe_interval`] frames plus whenever the caller
//!   forces one (a receiver's picture-loss indication).
//!
//! The decoder runs one thread without post-processing. A frame libvpx
//! flags as corrupt (truncated, or predicted from a reference it flagged
//! as damaged) is an error, not a picture: the caller then asks for a
//! keyframe, which the decoder always accepts. libvpx cannot tell that a
//! frame in between was lost altogether; the caller must (the engine's
//! frame assembler does, by sequence numbers).
//!
//! ```
//! use sotto_codecs::video::{VideoDecoder, VideoEncoder, VideoFrame};
//! use sotto_codecs::vp8::{Vp8Config, Vp8Decoder, Vp8Encoder};
//! use std::time::Duration;
//!
//! let config = Vp8Config { width: 320, height: 240, bitrate: 300_000, ..Vp8Config::default() };
//! let mut enc = Vp8Encoder::new(config)?;
//! let mut dec = Vp8Decoder::new()?;
//! let picture = VideoFrame::test_pattern(320, 240, 0)?;
//! let encoded = enc
//!     .encode(&picture, Duration::ZERO, false)?
//!     .expect("a first frame is never dropped");
//! assert!(encoded.keyframe);
//! let decoded = dec.decode(&encoded.data)?.expect("a shown frame");
//! assert!(decoded.psnr(&picture).unwrap() > 30.0);
//! # Ok::<(), sotto_codecs::CodecError>(())
//! ```

use std::ffi::CStr;
use std::fmt;
use std::mem::MaybeUninit;
use std::os::raw::{c_char, c_int, c_long, c_uint, c_ulong, c_void};
use std::ptr::{self, NonNull};
use std::time::Duration;

use vpx_sys as vpx;

use crate::CodecError;
use crate::video::{
    EncodedVideo, MAX_SIDE, MIN_SIDE, VideoDecoder, VideoEncoder, VideoFrame, check_size,
};

unsafe extern "C" {
    /// `vpx_codec_decode`, returning the status as a plain integer. The
    /// binding in `vpx_sys` returns the `vpx_codec_err_t` enum, but
    /// libvpx's VP8 decoder returns -1 when it fails to set up a new
    /// picture size, and a value outside a Rust enum is undefined
    /// behaviour.
    #[link_name = "vpx_codec_decode"]
    fn vpx_codec_decode_status(
        ctx: *mut vpx::vpx_codec_ctx_t,
        data: *const u8,
        data_sz: c_uint,
        user_priv: *mut c_void,
        deadline: c_long,
    ) -> c_int;
}

/// Lowest and highest bitrate we configure, in bit/s.
const BITRATE_RANGE: std::ops::RangeInclusive<u32> = 10_000..=100_000_000;

/// Frame rates we configure, in frames per second.
const FPS_RANGE: std::ops::RangeInclusive<u32> = 1..=240;

/// Speeds libvpx's VP8 encoder takes (negative: that speed, fixed;
/// positive: a starting speed it adapts from).
const CPU_USED_RANGE: std::ops::RangeInclusive<i32> = -16..=16;

/// VP8 encoder settings. [`Vp8Config::default`] is a 640x480 30 fps call
/// at 600 kbit/s with a keyframe every 10 s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vp8Config {
    /// Picture width in pixels: even, 2 to 4096.
    pub width: u32,
    /// Picture height in pixels: even, 2 to 4096.
    pub height: u32,
    /// Pictures per second the caller feeds (1 to 240); rate control
    /// spreads the bitrate over them.
    pub fps: u32,
    /// Target bitrate in bit/s (10 000 to 100 000 000).
    pub bitrate: u32,
    /// Largest distance between keyframes, in frames; 0 makes keyframes
    /// only on request (`force_keyframe`) besides the first.
    pub keyframe_interval: u32,
    /// libvpx `VP8E_SET_CPUUSED`, -16 to 16: a larger magnitude is faster
    /// and coarser; negative fixes the speed, positive lets libvpx adapt
    /// it to the deadline.
    pub cpu_used: i32,
}

impl Default for Vp8Config {
    fn default() -> Self {
        Self {
            width: 640,
            height: 480,
            fps: 30,
            bitrate: 600_000,
            keyframe_interval: 300,
            cpu_used: -6,
        }
    }
}

impl Vp8Config {
    /// Checks every field against the ranges documented on it.
    pub fn validate(&self) -> Result<(), CodecError> {
        // The same size rule as the frames the encoder will take.
        check_size(self.width, self.height)?;
        if !FPS_RANGE.contains(&self.fps) {
            return Err(CodecError::Config(format!(
                "frame rate {} out of {FPS_RANGE:?}",
                self.fps
            )));
        }
        check_bitrate(self.bitrate)?;
        if !CPU_USED_RANGE.contains(&self.cpu_used) {
            return Err(CodecError::Config(format!(
                "cpu_used {} out of {CPU_USED_RANGE:?}",
                self.cpu_used
            )));
        }
        Ok(())
    }
}

fn check_bitrate(bps: u32) -> Result<(), CodecError> {
    if BITRATE_RANGE.contains(&bps) {
        Ok(())
    } else {
        Err(CodecError::Config(format!(
            "bitrate {bps} bit/s out of {BITRATE_RANGE:?}"
        )))
    }
}

/// The size a VP8 keyframe declares, or `None` when `data` does not start
/// a keyframe (RFC 6386 §9.1: the frame-type bit, the start code
/// 9d 01 2a, then 14-bit width and height, little-endian).
pub fn keyframe_dimensions(data: &[u8]) -> Option<(u32, u32)> {
    let header: &[u8; 10] = data.first_chunk()?;
    if header[0] & 1 != 0 || header[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let side = |lo: u8, hi: u8| u32::from(u16::from_le_bytes([lo, hi]) & 0x3fff);
    Some((side(header[6], header[7]), side(header[8], header[9])))
}

/// Copies a NUL-terminated string from libvpx, or `None` for NULL.
///
/// # Safety
///
/// `p` is NULL or points to a NUL-terminated string that stays valid for
/// the duration of the call.
unsafe fn c_text(p: *const c_char) -> Option<String> {
    // SAFETY: guaranteed by the caller for a non-null `p`.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// The text libvpx gives for a status code.
fn status_text(status: vpx::vpx_codec_err_t) -> String {
    // SAFETY: vpx_codec_err_to_string takes any status and returns a
    // pointer to a static string.
    unsafe { c_text(vpx::vpx_codec_err_to_string(status)) }.unwrap_or_default()
}

/// A libvpx codec context on the heap.
///
/// The memory is ours (a boxed `MaybeUninit`, so no Rust invariant is
/// asserted about what libvpx writes into it, e.g. a status outside
/// `vpx_codec_err_t`); libvpx owns what the context points to once
/// initialised. Boxed because libvpx is handed its address and must keep
/// finding it in the same place.
struct Context {
    ptr: NonNull<vpx::vpx_codec_ctx_t>,
    /// Whether `vpx_codec_*_init_ver` succeeded, so `vpx_codec_destroy`
    /// is owed. (A failed init destroys what it built itself.)
    live: bool,
}

impl Context {
    /// Zeroed memory for a context: every field a null pointer, zero, or
    /// `VPX_CODEC_OK`, as libvpx's own examples leave it before init.
    fn alloc() -> Self {
        let mem: Box<MaybeUninit<vpx::vpx_codec_ctx_t>> = Box::new(MaybeUninit::zeroed());
        Self {
            ptr: NonNull::from(Box::leak(mem)).cast(),
            live: false,
        }
    }

    /// The context for a libvpx call; `&mut self` because libvpx mutates
    /// it, so no two calls on one context can overlap.
    fn raw(&mut self) -> *mut vpx::vpx_codec_ctx_t {
        self.ptr.as_ptr()
    }

    /// The error libvpx recorded on this context by the last call, as a
    /// [`CodecError::Vpx`] that says what we were doing.
    fn error(&mut self, doing: &str) -> CodecError {
        let ctx = self.raw();
        // SAFETY: `ctx` is a live, initialised context. vpx_codec_error
        // returns a static string; vpx_codec_error_detail returns NULL or
        // a string the context holds until the next call on it, and we
        // copy it before making one.
        let (message, detail) = unsafe {
            (
                c_text(vpx::vpx_codec_error(ctx)),
                c_text(vpx::vpx_codec_error_detail(ctx)),
            )
        };
        let message = message.unwrap_or_default();
        CodecError::Vpx(match detail {
            Some(detail) => format!("{doing}: {message} ({detail})"),
            None => format!("{doing}: {message}"),
        })
    }

    /// Sets an integer control (`VP8E_SET_*`).
    fn control(&mut self, id: vpx::vp8e_enc_control_id, value: c_int) -> Result<(), CodecError> {
        let ctx = self.raw();
        // SAFETY: `ctx` is a live encoder context, and every
        // `VP8E_SET_*` control we send takes one `int` argument, which is
        // what we pass through the variadic call.
        let status = unsafe { vpx::vpx_codec_control_(ctx, id as c_int, value) };
        if status == vpx::vpx_codec_err_t::VPX_CODEC_OK {
            Ok(())
        } else {
            Err(self.error(&format!("setting {id:?} to {value}")))
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if self.live {
            // SAFETY: the context was initialised and not yet destroyed;
            // nothing can use it after this (we are its only owner).
            // Destroy frees what libvpx allocated and joins its threads.
            unsafe { vpx::vpx_codec_destroy(self.ptr.as_ptr()) };
        }
        // SAFETY: `ptr` came from `Box::leak` of this very type in
        // `alloc`, and is freed once, here.
        drop(unsafe {
            Box::from_raw(
                self.ptr
                    .as_ptr()
                    .cast::<MaybeUninit<vpx::vpx_codec_ctx_t>>(),
            )
        });
    }
}

/// A VP8 encoder with real-time settings (see the [module](self) docs).
pub struct Vp8Encoder {
    ctx: Context,
    /// The libvpx configuration in force; [`VideoEncoder::set_bitrate`]
    /// edits and resubmits it.
    cfg: vpx::vpx_codec_enc_cfg_t,
    config: Vp8Config,
    /// Capture time of the last picture, in [`TIMEBASE_HZ`] ticks.
    last_pts: Option<i64>,
}

/// The encoder's clock: capture times are given to libvpx in these ticks
/// (the RTP video clock), and it derives the frame rate from them.
const TIMEBASE_HZ: u32 = 90_000;

// SAFETY: the encoder owns its libvpx context exclusively: the pointer is
// never shared or handed out, and every call through it takes `&mut
// self`, so moving the whole encoder to another thread moves sole access
// with it. libvpx keeps no per-thread state for a context (its worker
// threads belong to the context and synchronise among themselves). The
// pointers inside `cfg` are the two-pass statistics buffers, null in
// one-pass mode and never dereferenced.
unsafe impl Send for Vp8Encoder {}

impl fmt::Debug for Vp8Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vp8Encoder")
            .field("config", &self.config)
            .field("last_pts", &self.last_pts)
            .finish_non_exhaustive()
    }
}

impl Vp8Encoder {
    /// Creates an encoder for pictures of `config.width` x
    /// `config.height`.
    pub fn new(config: Vp8Config) -> Result<Self, CodecError> {
        config.validate()?;
        // SAFETY: returns a pointer to libvpx's static VP8 encoder
        // interface; no arguments, no state.
        let iface = unsafe { vpx::vpx_codec_vp8_cx() };
        let mut cfg = MaybeUninit::<vpx::vpx_codec_enc_cfg_t>::uninit();
        // SAFETY: `cfg` is writable memory for one configuration; usage 0
        // is the only one VP8 defines. On success libvpx has written the
        // whole structure (a copy of its default), so it is initialised.
        let mut cfg = unsafe {
            let status = vpx::vpx_codec_enc_config_default(iface, cfg.as_mut_ptr(), 0);
            if status != vpx::vpx_codec_err_t::VPX_CODEC_OK {
                return Err(CodecError::Vpx(format!(
                    "default VP8 configuration: {}",
                    status_text(status)
                )));
            }
            cfg.assume_init()
        };
        cfg.g_w = config.width;
        cfg.g_h = config.height;
        cfg.g_timebase = vpx::vpx_rational {
            num: 1,
            den: TIMEBASE_HZ as c_int,
        };
        cfg.g_threads = threads_for(config.width, config.height);
        cfg.g_pass = vpx::vpx_enc_pass::VPX_RC_ONE_PASS;
        cfg.g_lag_in_frames = 0;
        cfg.g_error_resilient = vpx::VPX_ERROR_RESILIENT_DEFAULT;
        cfg.rc_end_usage = vpx::vpx_rc_mode::VPX_CBR;
        cfg.rc_target_bitrate = kbps(config.bitrate);
        // Drop a picture rather than let the buffer drain below 30 %.
        cfg.rc_dropframe_thresh = 30;
        cfg.rc_resize_allowed = 0;
        cfg.rc_min_quantizer = 2;
        cfg.rc_max_quantizer = 56;
        cfg.rc_undershoot_pct = 100;
        cfg.rc_overshoot_pct = 15;
        cfg.rc_buf_initial_sz = 500;
        cfg.rc_buf_optimal_sz = 600;
        cfg.rc_buf_sz = 1000;
        if config.keyframe_interval == 0 {
            cfg.kf_mode = vpx::vpx_kf_mode::VPX_KF_DISABLED;
        } else {
            cfg.kf_mode = vpx::vpx_kf_mode::VPX_KF_AUTO;
            cfg.kf_min_dist = 0;
            cfg.kf_max_dist = config.keyframe_interval;
        }

        let mut ctx = Context::alloc();
        let raw = ctx.raw();
        // SAFETY: `raw` is zeroed memory for a context, `iface` the VP8
        // encoder, `cfg` a complete configuration that libvpx copies (it
        // keeps no pointer to it), and the ABI version is the one the
        // bindings were generated for.
        let status = unsafe {
            vpx::vpx_codec_enc_init_ver(raw, iface, &cfg, 0, vpx::VPX_ENCODER_ABI_VERSION as c_int)
        };
        if status != vpx::vpx_codec_err_t::VPX_CODEC_OK {
            // The detail lived in the state the failed init already freed.
            return Err(CodecError::Vpx(format!(
                "VP8 encoder init: {}",
                status_text(status)
            )));
        }
        ctx.live = true;
        ctx.control(vpx::vp8e_enc_control_id::VP8E_SET_CPUUSED, config.cpu_used)?;
        // Skip coding macroblocks that barely changed (WebRTC's value).
        ctx.control(vpx::vp8e_enc_control_id::VP8E_SET_STATIC_THRESHOLD, 1)?;
        ctx.control(
            vpx::vp8e_enc_control_id::VP8E_SET_MAX_INTRA_BITRATE_PCT,
            MAX_INTRA_BITRATE_PCT,
        )?;
        Ok(Self {
            ctx,
            cfg,
            config,
            last_pts: None,
        })
    }

    /// The settings in force (the bitrate follows
    /// [`VideoEncoder::set_bitrate`]).
    pub fn config(&self) -> &Vp8Config {
        &self.config
    }
}

/// Largest keyframe, as a percentage of an average frame's bits.
const MAX_INTRA_BITRATE_PCT: c_int = 300;

/// Encoder threads, as libwebrtc picks them: one up to 640x480, two above
/// that on three cores or more. libvpx's encoder threads wait for each
/// other spinning: on a machine whose cores are all busy (a build, the
/// rest of the app) a second thread made a 640x480 frame take 230 ms
/// instead of 1.5 on the 2-core test machine, so a spare core is required.
fn threads_for(width: u32, height: u32) -> c_uint {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if u64::from(width) * u64::from(height) > 640 * 480 && cores >= 3 {
        2
    } else {
        1
    }
}

/// libvpx counts the target in kbit/s.
fn kbps(bps: u32) -> c_uint {
    (bps / 1000).max(1)
}

impl VideoEncoder for Vp8Encoder {
    fn encode(
        &mut self,
        frame: &VideoFrame,
        captured: Duration,
        force_keyframe: bool,
    ) -> Result<Option<EncodedVideo>, CodecError> {
        let (width, height) = (self.config.width, self.config.height);
        if (frame.width(), frame.height()) != (width, height) {
            return Err(CodecError::PictureMismatch {
                got_width: frame.width(),
                got_height: frame.height(),
                width,
                height,
            });
        }
        // libvpx spends its bitrate by these times: a camera slower than
        // `fps` gets the same bits a second. (Faster ones overshoot: each
        // frame costs some bits at any quality. Callers cap the rate; the
        // engine's calls encode at most `fps` frames a second.) A time
        // that does not move forward still moves one tick.
        let ticks = captured.as_nanos() * u128::from(TIMEBASE_HZ) / 1_000_000_000;
        let ticks = i64::try_from(ticks).unwrap_or(i64::MAX);
        let pts = self.last_pts.map_or(ticks, |last| ticks.max(last + 1));
        let duration = self.last_pts.map_or(
            c_ulong::from(TIMEBASE_HZ / self.config.fps.max(1)),
            |last| c_ulong::try_from(pts - last).unwrap_or(1),
        );
        // The picture is wrapped, not copied: libvpx copies it into its
        // own (bordered) frame buffer inside vpx_codec_encode, so a second
        // copy here would only cost time.
        let mut img = MaybeUninit::<vpx::vpx_image_t>::uninit();
        // SAFETY: `img` is writable memory for one image descriptor, which
        // vpx_img_wrap fills in (it allocates nothing: the pixels are
        // ours). The pointer is cast to `*mut` only because of the C
        // signature; the encoder only reads the pixels.
        let wrapped = unsafe {
            vpx::vpx_img_wrap(
                img.as_mut_ptr(),
                vpx::vpx_img_fmt::VPX_IMG_FMT_I420,
                width,
                height,
                1,
                frame.data().as_ptr().cast_mut(),
            )
        };
        if wrapped.is_null() {
            return Err(CodecError::Vpx("wrapping the picture failed".into()));
        }
        // SAFETY: a non-null result is `img`, now initialised by libvpx;
        // we read two plain arrays from it.
        let (planes, strides) = unsafe { ((*wrapped).planes, (*wrapped).stride) };
        // libvpx reads each plane through these; they must be exactly our
        // planes, or it would read outside the buffer.
        let ours = [frame.y(), frame.u(), frame.v()].map(|p| p.as_ptr());
        let half = (width / 2) as c_int;
        if planes[..3] != ours.map(<*const u8>::cast_mut) || strides[..3] != [2 * half, half, half]
        {
            return Err(CodecError::Vpx(
                "libvpx laid out the I420 picture unexpectedly".into(),
            ));
        }
        let flags: vpx::vpx_enc_frame_flags_t = if force_keyframe {
            vpx::VPX_EFLAG_FORCE_KF.into()
        } else {
            0
        };
        let raw = self.ctx.raw();
        // SAFETY: `raw` is a live encoder context; `wrapped` describes a
        // picture of the configured size whose planes lie inside
        // `frame.data()` (checked above), which outlives the call, and
        // libvpx has copied the pixels by the time it returns (no lag).
        let status = unsafe {
            vpx::vpx_codec_encode(
                raw,
                wrapped,
                pts,
                duration,
                flags,
                c_ulong::from(vpx::VPX_DL_REALTIME),
            )
        };
        self.last_pts = Some(pts);
        if status != vpx::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(self.ctx.error("VP8 encode"));
        }

        let mut out: Option<EncodedVideo> = None;
        let mut iter: vpx::vpx_codec_iter_t = ptr::null();
        loop {
            // SAFETY: `raw` is a live encoder context and `iter` the
            // iterator libvpx asks for, null before the first packet.
            let pkt = unsafe { vpx::vpx_codec_get_cx_data(raw, &mut iter) };
            if pkt.is_null() {
                break;
            }
            // SAFETY: a non-null packet is valid until the next encode
            // call. Its kind is read as the integer it is, so a kind the
            // bindings do not list cannot make an invalid enum. The frame
            // member of the union is the one libvpx filled for a frame
            // packet, and its `buf` holds `sz` bytes.
            unsafe {
                let kind = ptr::addr_of!((*pkt).kind).cast::<u32>().read();
                if kind != vpx::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT as u32 {
                    continue;
                }
                let frame = (*pkt).data.frame;
                let encoded = out.get_or_insert_with(|| EncodedVideo {
                    data: Vec::new(),
                    keyframe: false,
                });
                if !frame.buf.is_null() && frame.sz > 0 {
                    encoded.data.extend_from_slice(std::slice::from_raw_parts(
                        frame.buf.cast::<u8>(),
                        frame.sz as usize,
                    ));
                }
                encoded.keyframe |= frame.flags & vpx::VPX_FRAME_IS_KEY != 0;
            }
        }
        // A frame packet with no bytes is a dropped picture too.
        Ok(out.filter(|e| !e.data.is_empty()))
    }

    fn set_bitrate(&mut self, bits_per_second: u32) -> Result<(), CodecError> {
        check_bitrate(bits_per_second)?;
        let mut cfg = self.cfg;
        cfg.rc_target_bitrate = kbps(bits_per_second);
        let raw = self.ctx.raw();
        // SAFETY: `raw` is a live encoder context and `cfg` a complete
        // configuration (ours, with one field changed), which libvpx
        // copies.
        let status = unsafe { vpx::vpx_codec_enc_config_set(raw, &cfg) };
        if status != vpx::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(self.ctx.error("VP8 bitrate change"));
        }
        self.cfg = cfg;
        self.config.bitrate = bits_per_second;
        Ok(())
    }
}

/// A VP8 decoder.
pub struct Vp8Decoder {
    ctx: Context,
}

// SAFETY: the decoder owns its libvpx context exclusively (never shared,
// every call through `&mut self`), libvpx keeps no per-thread state for a
// context, and the decoder runs no threads of its own (one thread is
// configured), so it may move to another thread whole.
unsafe impl Send for Vp8Decoder {}

impl fmt::Debug for Vp8Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vp8Decoder").finish_non_exhaustive()
    }
}

impl Vp8Decoder {
    /// Creates a decoder. It takes any picture size from 2x2 to
    /// 4096x4096, starts at the first keyframe, and follows size changes
    /// at keyframes.
    pub fn new() -> Result<Self, CodecError> {
        let mut ctx = Context::alloc();
        let raw = ctx.raw();
        let cfg = vpx::vpx_codec_dec_cfg_t {
            threads: 1,
            w: 0,
            h: 0,
        };
        // SAFETY: `raw` is zeroed memory for a context, the interface is
        // libvpx's static VP8 decoder, `cfg` is a complete configuration
        // that libvpx copies, and the ABI version is the bindings' own.
        let status = unsafe {
            vpx::vpx_codec_dec_init_ver(
                raw,
                vpx::vpx_codec_vp8_dx(),
                &cfg,
                0,
                vpx::VPX_DECODER_ABI_VERSION as c_int,
            )
        };
        if status != vpx::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(CodecError::Vpx(format!(
                "VP8 decoder init: {}",
                status_text(status)
            )));
        }
        ctx.live = true;
        Ok(Self { ctx })
    }

    /// Whether libvpx marked the picture it just decoded as corrupt.
    fn last_frame_corrupt(&mut self) -> Result<bool, CodecError> {
        let mut corrupt: c_int = 0;
        let raw = self.ctx.raw();
        // SAFETY: `raw` is a live decoder context that has just decoded a
        // frame; VP8D_GET_FRAME_CORRUPTED takes one `int *`, which points
        // to our local.
        let status = unsafe {
            vpx::vpx_codec_control_(
                raw,
                vpx::vp8_dec_control_id::VP8D_GET_FRAME_CORRUPTED as c_int,
                &mut corrupt as *mut c_int,
            )
        };
        if status != vpx::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(self.ctx.error("VP8 corruption check"));
        }
        Ok(corrupt != 0)
    }

    /// Copies the picture libvpx holds at `img` into a tightly packed
    /// frame, cropped to even sides.
    ///
    /// # Safety
    ///
    /// `img` is an image returned by `vpx_codec_get_frame` on this
    /// decoder since its last decode call.
    unsafe fn copy_picture(img: *const vpx::vpx_image_t) -> Result<VideoFrame, CodecError> {
        // SAFETY: `img` is valid (the caller's contract). We read plain
        // integer and pointer fields, never the enum ones, and check the
        // format through its integer value.
        let (fmt, d_w, d_h, shifts, planes, strides) = unsafe {
            (
                ptr::addr_of!((*img).fmt).cast::<u32>().read(),
                (*img).d_w,
                (*img).d_h,
                ((*img).x_chroma_shift, (*img).y_chroma_shift),
                (*img).planes,
                (*img).stride,
            )
        };
        if fmt != vpx::vpx_img_fmt::VPX_IMG_FMT_I420 as u32 || shifts != (1, 1) {
            return Err(CodecError::Vpx(format!(
                "decoder gave image format {fmt:#x}, not I420"
            )));
        }
        // Our frames have even sides; an odd side (another sender's
        // stream) loses its last row or column.
        let (width, height) = (d_w & !1, d_h & !1);
        if !(MIN_SIDE..=MAX_SIDE).contains(&width) || !(MIN_SIDE..=MAX_SIDE).contains(&height) {
            return Err(CodecError::PictureSize {
                width: d_w,
                height: d_h,
            });
        }
        let mut data = Vec::with_capacity(width as usize * height as usize * 3 / 2);
        for (plane, shift) in [(0, 0), (1, 1), (2, 1)] {
            let (w, h) = ((width >> shift) as usize, (height >> shift) as usize);
            let stride = usize::try_from(strides[plane]).unwrap_or(0);
            if planes[plane].is_null() || stride < w {
                return Err(CodecError::Vpx(format!(
                    "decoder gave plane {plane} with stride {}",
                    strides[plane]
                )));
            }
            for row in 0..h {
                // SAFETY: libvpx's plane holds at least (display rows of
                // the plane) x stride bytes, and `row < h` and `w <=
                // stride` stay inside the display area (d_w, d_h, rounded
                // up for chroma, are at least our cropped sides). The
                // image stays valid until the next decode call, which
                // `&mut self` on the caller keeps from happening.
                let line =
                    unsafe { std::slice::from_raw_parts(planes[plane].add(row * stride), w) };
                data.extend_from_slice(line);
            }
        }
        VideoFrame::new(width, height, data)
    }
}

impl VideoDecoder for Vp8Decoder {
    fn decode(&mut self, data: &[u8]) -> Result<Option<VideoFrame>, CodecError> {
        if data.is_empty() {
            // libvpx reads an empty buffer as "flush", not as a frame.
            return Err(CodecError::Malformed("empty VP8 frame"));
        }
        // Refuse a keyframe larger than we accept before libvpx allocates
        // frame buffers for it: a hostile 16383x16383 would cost gigabytes.
        if let Some((width, height)) = keyframe_dimensions(data) {
            let ok = |side: u32| (MIN_SIDE..=MAX_SIDE).contains(&side);
            if !ok(width) || !ok(height) {
                return Err(CodecError::PictureSize { width, height });
            }
        }
        let len = c_uint::try_from(data.len())
            .map_err(|_| CodecError::Malformed("VP8 frame over 4 GiB"))?;
        let raw = self.ctx.raw();
        // SAFETY: `raw` is a live decoder context; `data` is valid for
        // `len` bytes during the call and libvpx keeps no pointer to it
        // (no input fragments mode). libvpx reports errors via its own
        // setjmp/longjmp inside C frames; no Rust frame is crossed since we
        // register no callbacks.
        let status =
            unsafe { vpx_codec_decode_status(raw, data.as_ptr(), len, ptr::null_mut(), 0) };
        if status != vpx::vpx_codec_err_t::VPX_CODEC_OK as c_int {
            return Err(self.ctx.error("VP8 decode"));
        }
        let mut picture = None;
        let mut iter: vpx::vpx_codec_iter_t = ptr::null();
        loop {
            // SAFETY: `raw` is a live decoder context; `iter` is the
            // iterator libvpx asks for, null at the start.
            let img = unsafe { vpx::vpx_codec_get_frame(raw, &mut iter) };
            if img.is_null() {
                break;
            }
            // SAFETY: `img` was just returned by vpx_codec_get_frame on
            // this context, with no decode call since.
            picture = Some(unsafe { Self::copy_picture(img) }?);
        }
        if picture.is_some() && self.last_frame_corrupt()? {
            return Err(CodecError::Malformed(
                "VP8 frame corrupt (truncated, or its reference was lost); needs a keyframe",
            ));
        }
        Ok(picture)
    }
}

/// Feeds arbitrary bytes to a [`Vp8Decoder`] as a sequence of frames; the
/// fuzz target `vp8_decode` calls this. Never panics.
///
/// The input is cut into up to 16 frames, each a little-endian 16-bit
/// length and then that many bytes (fewer at the end), so that a fuzzer
/// can explore a keyframe followed by damaged or hostile frames.
pub fn fuzz_decode(data: &[u8]) {
    const MAX_FRAMES: usize = 16;
    let Ok(mut dec) = Vp8Decoder::new() else {
        return;
    };
    let mut rest = data;
    for _ in 0..MAX_FRAMES {
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_le_bytes(*len)).min(tail.len());
        let (frame, tail) = tail.split_at(len);
        if let Ok(Some(picture)) = dec.decode(frame) {
            // Touch the output so the copy is not optimised out.
            let _ = std::hint::black_box(picture.data().first());
        }
        rest = tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When frame `n` of a camera at `fps` was captured.
    fn frame_time(fps: u32, n: u32) -> Duration {
        Duration::from_secs(u64::from(n)) / fps
    }

    fn small_config() -> Vp8Config {
        Vp8Config {
            width: 64,
            height: 48,
            bitrate: 200_000,
            ..Vp8Config::default()
        }
    }

    /// A short encoded sequence of the test pattern.
    fn encode_sequence(config: &Vp8Config, frames: u32) -> Vec<EncodedVideo> {
        let mut enc = Vp8Encoder::new(config.clone()).unwrap();
        (0..frames)
            .filter_map(|n| {
                let picture = VideoFrame::test_pattern(config.width, config.height, n).unwrap();
                enc.encode(&picture, frame_time(config.fps, n), false)
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn config_is_validated() {
        assert!(Vp8Config::default().validate().is_ok());
        let bad = [
            Vp8Config {
                width: 641,
                ..Vp8Config::default()
            },
            Vp8Config {
                height: 0,
                ..Vp8Config::default()
            },
            Vp8Config {
                width: 8192,
                ..Vp8Config::default()
            },
        ];
        for config in bad {
            assert!(matches!(
                Vp8Encoder::new(config),
                Err(CodecError::PictureSize { .. })
            ));
        }
        let bad = [
            Vp8Config {
                fps: 0,
                ..Vp8Config::default()
            },
            Vp8Config {
                bitrate: 999,
                ..Vp8Config::default()
            },
            Vp8Config {
                cpu_used: 17,
                ..Vp8Config::default()
            },
        ];
        for config in bad {
            assert!(
                matches!(config.validate(), Err(CodecError::Config(_))),
                "{config:?}"
            );
        }
    }

    #[test]
    fn keyframe_header_is_parsed() {
        let frames = encode_sequence(&small_config(), 2);
        assert!(frames[0].keyframe);
        assert_eq!(keyframe_dimensions(&frames[0].data), Some((64, 48)));
        assert!(!frames[1].keyframe);
        assert_eq!(keyframe_dimensions(&frames[1].data), None);
        assert_eq!(keyframe_dimensions(&frames[0].data[..9]), None);
        assert_eq!(keyframe_dimensions(&[]), None);
    }

    #[test]
    fn oversized_keyframes_are_refused_before_libvpx() {
        let mut key = encode_sequence(&small_config(), 1).remove(0).data;
        // 8000 x 48: refused without allocating.
        key[6..8].copy_from_slice(&8000u16.to_le_bytes());
        let mut dec = Vp8Decoder::new().unwrap();
        assert!(matches!(
            dec.decode(&key),
            Err(CodecError::PictureSize {
                width: 8000,
                height: 48
            })
        ));
    }

    #[test]
    fn inter_frame_first_is_an_error_with_libvpx_text() {
        let frames = encode_sequence(&small_config(), 2);
        let mut dec = Vp8Decoder::new().unwrap();
        let err = dec.decode(&frames[1].data).unwrap_err();
        assert!(
            matches!(&err, CodecError::Vpx(m) if m.starts_with("VP8 decode: ")),
            "{err}"
        );
        assert!(dec.decode(&frames[0].data).unwrap().is_some());
        assert!(dec.decode(&[]).is_err());
    }

    #[test]
    fn a_keyframe_followed_by_damage_never_panics() {
        let frames = encode_sequence(&small_config(), 4);
        let mut x: u32 = 0x9E37_79B9;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for round in 0..200 {
            let mut dec = Vp8Decoder::new().unwrap();
            let _ = dec.decode(&frames[0].data);
            for f in &frames[1..] {
                let mut bytes = f.data.clone();
                // Flip a few bytes, and sometimes cut the frame short.
                for _ in 0..1 + round % 4 {
                    let i = next() as usize % bytes.len();
                    bytes[i] ^= next() as u8 | 1;
                }
                if round % 3 == 0 {
                    bytes.truncate(next() as usize % bytes.len());
                }
                let _ = dec.decode(&bytes);
            }
            // Damaged keyframes too.
            let mut key = frames[0].data.clone();
            let i = 10 + next() as usize % (key.len() - 10);
            key[i] ^= 0xff;
            let _ = dec.decode(&key);
            // The decoder recovers at a clean keyframe.
            assert!(
                dec.decode(&frames[0].data).unwrap().is_some(),
                "round {round}"
            );
        }
    }

    #[test]
    fn fuzz_decode_splits_frames() {
        let frames = encode_sequence(&small_config(), 3);
        let mut input = Vec::new();
        for f in &frames {
            input.extend_from_slice(&(f.data.len() as u16).to_le_bytes());
            input.extend_from_slice(&f.data);
        }
        fuzz_decode(&input);
        fuzz_decode(&input[..input.len() / 2]);
        fuzz_decode(&[]);
        fuzz_decode(&[0xff]);
        fuzz_decode(&[0xff, 0xff, 1, 2, 3]);
    }

    #[test]
    fn encoder_and_decoder_are_send() {
        fn send<T: Send>(_: &T) {}
        let enc = Vp8Encoder::new(small_config()).unwrap();
        let dec = Vp8Decoder::new().unwrap();
        send(&enc);
        send(&dec);
        // And they work after moving to another thread.
        let (mut enc, mut dec) = std::thread::spawn(move || (enc, dec)).join().unwrap();
        let picture = VideoFrame::test_pattern(64, 48, 0).unwrap();
        let e = enc
            .encode(&picture, Duration::ZERO, false)
            .unwrap()
            .unwrap();
        assert!(dec.decode(&e.data).unwrap().is_some());
    }
}
