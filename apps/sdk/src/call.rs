//! `SottoCall`: one call on the engine's runtime. The engine's
//! [`CallHandle`] runs in a pump task that turns its signals and events
//! into the application's callbacks and applies the application's
//! commands, which arrive through a bounded queue so that no `sotto_call_*`
//! control ever blocks (they may be called from inside callbacks). The
//! pump also writes the call's ZID cache back into the engine's.

use crate::audio::{self, AppAudio};
use crate::engine::{SottoEngine, ZidStore, not_on_runtime};
use crate::error::{Error, SottoStatus, guard};
use crate::event::{OwnedEvent, SottoEvent};
use crate::lock;
use crate::signal;
use crate::video::AppVideo;
use sotto_engine::call::driver::{CallHandle, CallSignaller};
use sotto_engine::call::echo::{EchoCancelled, EchoCanceller};
use sotto_engine::call::wav::{AudioPort, FRAME};
use sotto_engine::call::{Call, CallConfig, CallSignal, Event};
use sotto_engine::ice::{IceConfig, TurnServer};
use sotto_engine::video::{VideoConfig, VideoFrame};
use sotto_engine::zrtp::ZidCache;
use std::ffi::{CStr, c_char, c_void};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Samples in one 10 ms audio frame at 48 kHz (mono, signed 16-bit), the
/// default `audio_sample_rate`. A call at another rate takes frames of
/// `sotto_call_frame_samples` (rate / 100) samples instead.
pub const SOTTO_FRAME_SAMPLES: usize = 480;
/// Most samples one `sotto_call_push_audio` takes at 48 kHz (100 ms); at
/// another rate, 10 times `sotto_call_frame_samples`.
pub const SOTTO_MAX_PUSH_SAMPLES: usize = 4800;
/// Frames one `sotto_call_push_audio` takes at most (100 ms).
const MAX_PUSH_FRAMES: usize = 10;
// Literals for the header; they must agree with the engine.
const _: () =
    assert!(SOTTO_FRAME_SAMPLES == FRAME && SOTTO_MAX_PUSH_SAMPLES == MAX_PUSH_FRAMES * FRAME);
/// The lowest and highest `audio_sample_rate` a call takes.
const RATES: std::ops::RangeInclusive<u32> = 8_000..=96_000;

/// Commands queued per call before `SOTTO_STATUS_BUSY`.
const COMMAND_QUEUE: usize = 256;

/// Receives one outgoing signalling message: `json` is NUL-terminated
/// UTF-8 of `len` bytes (without the NUL), valid only during the callback.
/// Deliver it to the peer's `sotto_call_signal`.
pub type SottoSignalCallback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, json: *const c_char, len: usize)>;

/// Receives one event; `event` is valid only during the callback.
pub type SottoEventCallback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const SottoEvent)>;

/// The application's callbacks for one call. They run on an SDK thread
/// (named `sotto-sdk`), one at a time per call, never after
/// `sotto_call_destroy` returns.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SottoCallbacks {
    /// Passed back to both callbacks; must be usable from SDK threads.
    pub user_data: *mut c_void,
    /// Required: outgoing signalling messages.
    pub on_signal: SottoSignalCallback,
    /// Optional (NULL): events.
    pub on_event: SottoEventCallback,
}

// SAFETY: the header's contract makes `user_data` and the callbacks usable
// from any thread; the SDK calls them from one task at a time per call.
unsafe impl Send for SottoCallbacks {}

/// How a call is set up. Start from `sotto_call_config_default`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SottoCallConfig {
    /// Local address to bind, `"ip:port"` (port 0: any). NULL: the first
    /// non-loopback address of each IP family; `0.0.0.0` or `::` stand for
    /// that address of their family. Either way such a family follows the
    /// network: when its address goes away mid-call, the call moves to the
    /// new one and ICE restarts (see `sotto_call_network_changed`).
    pub bind_address: *const c_char,
    /// Only ever use the TURN relay (hides our addresses from the peer).
    pub relay_only: bool,
    /// TURN server `"ip:port"` (UDP), or NULL for none. Required with `relay_only`.
    pub turn_server: *const c_char,
    /// TURN long-term credential user name (NULL: empty).
    pub turn_username: *const c_char,
    /// TURN password (NULL: empty).
    pub turn_password: *const c_char,
    /// How long an unanswered call rings, ms (0: 60 s).
    pub ring_timeout_ms: u32,
    /// From answer to Secure before giving up, ms (0: 30 s).
    pub setup_timeout_ms: u32,
    /// Interval of `SOTTO_EVENT_KIND_STATS` events, ms (0: 1 s).
    pub stats_interval_ms: u32,
    /// Opus bitrate we send, bit/s (0: 24 000; else 500 to 512 000).
    pub audio_bitrate: u32,
    /// In-band forward error correction: each packet also carries the
    /// one before at a lower rate, so that a lost packet is rebuilt from
    /// the next (on by default).
    pub audio_fec: bool,
    /// Discontinuous transmission: in silence only a comfort-noise frame
    /// every 400 ms is sent (on by default; off for music).
    pub audio_dtx: bool,
    /// Lowest target delay of the jitter buffer, ms (0, the default: as
    /// low as the link allows). Like WebRTC's `jitterBufferTarget`: more
    /// delay for smoother playout, e.g. for music.
    pub jitter_min_target_ms: u32,
    /// Highest target delay of the jitter buffer, ms (0: 2 000; under
    /// 7 000): a link whose delay varies by more is played with late loss
    /// rather than with more delay.
    pub jitter_max_target_ms: u32,
    /// Back to live after an outage, ms (0: off, the default). After an
    /// outage of seconds the link delivers the backlog in pieces; the
    /// buffer waits up to this long for it to come (measured with 1 000),
    /// then drops it and plays live. Off, the backlog is played up to
    /// twice as fast, and only what is more than 3 s behind is dropped:
    /// less speech lost, but the call is live later.
    pub jitter_outage_hold_ms: u32,
    /// How long a Secure call goes without one packet from the peer before
    /// it ends with `SOTTO_END_REASON_MEDIA_TIMEOUT`, ms (0: 30 s): a peer
    /// that lost power or network never hangs up.
    pub media_timeout_ms: u32,
    /// The sample rate of the audio the application pushes and pulls, Hz
    /// (0: 48 000, the engine's own): a multiple of 100 from 8 000 to
    /// 96 000, e.g. the device's native 44 100, or 16 000 for Bluetooth
    /// HFP. Frames are then 10 ms at this rate (`sotto_call_frame_samples`
    /// samples); the SDK converts to and from 48 kHz on its own thread,
    /// adding 5 ms of delay each way. Added in ABI version 2.
    pub audio_sample_rate: u32,
    /// Remove the echo of what the call plays from what it captures
    /// (WebRTC's AEC3 on a thread of its own; one 10 ms frame of delay,
    /// about 1.5 % of a core). For desktop speakers; off by default, as
    /// phones cancel echo in the OS (Android's `VOICE_COMMUNICATION`,
    /// iOS's voice-processing I/O). Added in ABI version 3.
    pub echo_cancellation: bool,
    /// Send and receive video (VP8 on the call's SRTP session), if the
    /// peer does too: frames go in with `sotto_call_push_video` and come
    /// out with `sotto_call_pull_video`. Off by default. Added in ABI
    /// version 4.
    pub video: bool,
    /// Highest video bitrate, bit/s (0: 1 200 000; else 100 000 to
    /// 20 000 000). The call starts lower and follows the loss the
    /// peer's RTCP reports on the video.
    /// Added in ABI version 4.
    pub video_max_bitrate: u32,
}

/// One call. Opaque to C.
pub struct SottoCall {
    rt: Arc<Runtime>,
    /// Taken (closed) by `sotto_call_destroy` while callbacks may still
    /// run and call the controls: they then get `SOTTO_STATUS_ENDED`.
    cmd: Mutex<Option<mpsc::Sender<Control>>>,
    audio: AppAudio,
    /// The camera and screen slots, when the config asked for video.
    video: Option<AppVideo>,
    /// The application's audio rate, Hz.
    rate: u32,
    outgoing: bool,
    pump: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
enum Control {
    Place,
    Answer,
    Decline,
    HangUp,
    OfferQueued(Duration),
    Mute(bool),
    ConfirmSas(bool),
    Signal(CallSignal),
    NetworkChanged,
}

struct Signals(mpsc::UnboundedSender<CallSignal>);

impl CallSignaller for Signals {
    fn send(&mut self, msg: CallSignal) {
        // The call bounds what it signals (one description, capped candidates).
        let _ = self.0.send(msg);
    }
}

impl SottoCallbacks {
    fn signal(&self, s: &CallSignal) {
        let json = signal::encode(s);
        let len = json.len();
        let c = std::ffi::CString::new(json).unwrap_or_default();
        if let Some(f) = self.on_signal {
            // SAFETY: the application promised a valid callback and
            // user_data; the string lives for the duration of the call.
            in_callback(|| unsafe { f(self.user_data, c.as_ptr(), len) });
        }
    }

    fn event(&self, e: &Event) {
        if let Some(o) = OwnedEvent::new(e) {
            self.deliver(&o);
        }
    }

    fn deliver(&self, o: &OwnedEvent) {
        if let Some(f) = self.on_event {
            // SAFETY: as above; `o` outlives the call.
            in_callback(|| unsafe { f(self.user_data, &o.raw) });
        }
    }
}

/// Runs an application callback. It may block (a synchronous request to
/// the app's signalling server, say): the runtime's worker hands its other
/// tasks, every other call's audio and timers among them, to another
/// thread first, so that only this call waits for it.
fn in_callback(f: impl FnOnce()) {
    tokio::task::block_in_place(f)
}

/// Writes what the call changed in its ZID cache back to the engine's.
struct CacheSync {
    store: Arc<ZidStore>,
    /// The call's cache as last taken in (at first, the snapshot it started with).
    base: ZidCache,
}

impl CacheSync {
    /// Fetches the call's cache and commits it; a failed save becomes a
    /// `SOTTO_EVENT_KIND_ZID_CACHE_ERROR` for the application.
    async fn sync(&mut self, h: &CallHandle) -> Result<(), String> {
        // The task answers until the handle is shut down.
        let Ok(now) = h.zid_cache().await else {
            return Ok(());
        };
        self.commit(now)
    }

    /// Commits `now`, the call's cache as it is at this point.
    fn commit(&mut self, now: ZidCache) -> Result<(), String> {
        // A SQLite write may wait on the disk: keep other tasks running.
        let r = tokio::task::block_in_place(|| self.store.commit(&self.base, &now));
        // Merged in memory even when the file could not be written.
        self.base = now;
        r.map_err(|e| e.to_string())
    }
}

async fn apply(h: &CallHandle, c: Control) {
    // Refusals by the call (wrong state) are not reported back: the call
    // stays as it was, and the state checks the SDK can make synchronously
    // were made when the command was queued.
    let _ = match c {
        Control::Place => h.place().await,
        Control::Answer => h.answer().await,
        Control::Decline => h.decline().await,
        Control::HangUp => h.hang_up().await,
        Control::OfferQueued(kept) => h.offer_queued(kept).await,
        Control::Mute(m) => h.set_muted(m).await,
        Control::ConfirmSas(ok) => h.confirm_sas(ok).await,
        Control::Signal(s) => h.signal(s).await,
        Control::NetworkChanged => h.network_changed().await,
    };
}

/// Delivers the call's signals and events to the callbacks and applies
/// commands until the application destroys the call. Once the call has
/// ended, its controls answer `SOTTO_STATUS_ENDED`.
async fn pump(
    mut handle: CallHandle,
    mut signals: mpsc::UnboundedReceiver<CallSignal>,
    mut cmds: mpsc::Receiver<Control>,
    cb: SottoCallbacks,
    mut cache: CacheSync,
) {
    let mut commands_open = true;
    loop {
        tokio::select! {
            // Signals first: a Hangup should leave before Ended is reported.
            biased;
            Some(s) = signals.recv() => cb.signal(&s),
            e = handle.recv() => match e {
                Some(e) => {
                    // Saved before the application hears of it, so that a
                    // call it starts from the callback sees the new secrets.
                    if matches!(e, Event::SecureUp { .. } | Event::Ended { .. })
                        && let Err(why) = cache.sync(&handle).await
                    {
                        cb.deliver(&OwnedEvent::zid_cache_error(&why));
                    }
                    if matches!(e, Event::Ended { .. }) {
                        // No control can change the call now: say so. What
                        // was queued before is still applied (and ignored).
                        cmds.close();
                    }
                    cb.event(&e);
                }
                None => break,
            },
            c = cmds.recv(), if commands_open => match c {
                Some(c) => {
                    let confirm = matches!(c, Control::ConfirmSas(_));
                    apply(&handle, c).await;
                    if confirm && let Err(why) = cache.sync(&handle).await {
                        cb.deliver(&OwnedEvent::zid_cache_error(&why));
                    }
                }
                // Destroyed (the sender is gone), or ended and drained:
                // the engine's task only answers requests from here on.
                None => commands_open = false,
            },
        }
        if !commands_open {
            break;
        }
    }
    cmds.close();
    // The events not received yet are dropped with the handle; a
    // `SecureUp` among them must still have its secrets saved.
    if let Some(last) = handle.shutdown().await
        && let Err(why) = cache.commit(last)
    {
        cb.deliver(&OwnedEvent::zid_cache_error(&why));
    }
    while let Ok(s) = signals.try_recv() {
        cb.signal(&s);
    }
}

fn opt_str<'a>(p: *const c_char, what: &'static str) -> Result<Option<&'a str>, Error> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null strings in the config are NUL-terminated by contract.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map(Some)
        .map_err(|_| Error::Invalid(format!("{what} is not UTF-8")))
}

fn addr(s: &str, what: &'static str) -> Result<SocketAddr, Error> {
    s.parse()
        .map_err(|_| Error::Invalid(format!("{what} `{s}` is not ip:port")))
}

fn ms(v: u32, default: Duration) -> Duration {
    if v == 0 {
        default
    } else {
        Duration::from_millis(v.into())
    }
}

struct Setup {
    bind: Vec<SocketAddr>,
    ice: IceConfig,
    call: CallConfig,
    /// The application's audio rate, Hz.
    rate: u32,
    echo_cancellation: bool,
    video: bool,
}

/// The application's audio rate: `audio_sample_rate`, 0 for 48 kHz.
fn sample_rate(r: u32) -> Result<u32, Error> {
    let rate = if r == 0 { audio::ENGINE_RATE } else { r };
    if !RATES.contains(&rate) || !rate.is_multiple_of(100) {
        return Err(Error::Invalid(format!(
            "audio_sample_rate {r} Hz: use 0 (48 000) or a multiple of 100 from {} to {}",
            RATES.start(),
            RATES.end()
        )));
    }
    Ok(rate)
}

fn setup(c: &SottoCallConfig) -> Result<Setup, Error> {
    let bind = match opt_str(c.bind_address, "bind_address")? {
        Some(s) => vec![addr(s, "bind_address")?],
        // One per family, following the network.
        None => sotto_engine::driver::following_bind_addrs(),
    };
    let mut ice = IceConfig::default();
    if let Some(t) = opt_str(c.turn_server, "turn_server")? {
        ice.turn_servers.push(TurnServer {
            addr: addr(t, "turn_server")?,
            username: opt_str(c.turn_username, "turn_username")?
                .unwrap_or_default()
                .into(),
            password: opt_str(c.turn_password, "turn_password")?
                .unwrap_or_default()
                .into(),
            realm: String::new(),
        });
    }
    if c.relay_only && ice.turn_servers.is_empty() {
        return Err(Error::Invalid("relay_only needs a turn_server".into()));
    }
    let rate = sample_rate(c.audio_sample_rate)?;
    let d = CallConfig::default();
    let mut audio = d.audio.clone();
    audio.fec = c.audio_fec;
    audio.dtx = c.audio_dtx;
    if c.audio_bitrate != 0 {
        audio.bitrate = c.audio_bitrate;
    }
    audio.jitter.min_target_ms = c.jitter_min_target_ms.into();
    if c.jitter_max_target_ms != 0 {
        audio.jitter.max_target_ms = c.jitter_max_target_ms.into();
    }
    audio.jitter.outage_hold_ms = c.jitter_outage_hold_ms.into();
    let video = c.video.then(|| {
        let d = VideoConfig::default();
        let max = if c.video_max_bitrate == 0 {
            d.max_bitrate
        } else {
            c.video_max_bitrate
        };
        VideoConfig {
            max_bitrate: max,
            start_bitrate: d.start_bitrate.min(max),
            ..d
        }
    });
    if let Some(v) = &video
        && !(100_000..=20_000_000).contains(&v.max_bitrate)
    {
        return Err(Error::Invalid(format!(
            "video_max_bitrate {}: use 0 (1 200 000) or 100 000 to 20 000 000",
            v.max_bitrate
        )));
    }
    let call = CallConfig {
        video,
        relay_only: c.relay_only,
        ring_timeout: ms(c.ring_timeout_ms, d.ring_timeout),
        setup_timeout: ms(c.setup_timeout_ms, d.setup_timeout),
        media_timeout: ms(c.media_timeout_ms, d.media_timeout),
        stats_interval: ms(c.stats_interval_ms, d.stats_interval),
        audio,
        ..d
    };
    Ok(Setup {
        bind,
        ice,
        call,
        rate,
        echo_cancellation: c.echo_cancellation,
        video: c.video,
    })
}

/// Fills `*out` with the defaults (bind to the interface addresses, no
/// TURN, default timeouts, Opus at 24 kbit/s with FEC and DTX, the jitter
/// buffer's defaults, audio at 48 kHz).
///
/// # Safety
/// `out` must be NULL or point to a writable `SottoCallConfig`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sotto_call_config_default(out: *mut SottoCallConfig) -> SottoStatus {
    guard(|| {
        if out.is_null() {
            return Err(Error::Null("out"));
        }
        let audio = sotto_engine::call::AudioConfig::default();
        let c = SottoCallConfig {
            bind_address: std::ptr::null(),
            relay_only: false,
            turn_server: std::ptr::null(),
            turn_username: std::ptr::null(),
            turn_password: std::ptr::null(),
            ring_timeout_ms: 0,
            setup_timeout_ms: 0,
            stats_interval_ms: 0,
            audio_bitrate: 0,
            audio_fec: audio.fec,
            audio_dtx: audio.dtx,
            jitter_min_target_ms: 0,
            jitter_max_target_ms: 0,
            jitter_outage_hold_ms: 0,
            media_timeout_ms: 0,
            audio_sample_rate: 0,
            echo_cancellation: false,
            video: false,
            video_max_bitrate: 0,
        };
        // SAFETY: non-null and writable by contract.
        unsafe { out.write(c) };
        Ok(())
    })
}

/// Creates a call on `engine`, binds its sockets and starts gathering
/// candidates; stores it in `*out` (NULL there on failure). An `outgoing` call is then placed with
/// `sotto_call_place`; an incoming one waits for the caller's offer through
/// `sotto_call_signal`. `config` may be NULL for the defaults. Must not be
/// called from an SDK callback (`SOTTO_STATUS_WRONG_THREAD`).
///
/// # Safety
/// `engine` must be a live engine; `config` NULL or a valid config whose
/// strings are NUL-terminated; `out` writable; the callbacks and
/// `user_data` valid until `sotto_call_destroy` returns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sotto_call_new(
    engine: *const SottoEngine,
    config: *const SottoCallConfig,
    outgoing: bool,
    callbacks: SottoCallbacks,
    out: *mut *mut SottoCall,
) -> SottoStatus {
    guard(|| {
        if out.is_null() {
            return Err(Error::Null("out"));
        }
        // SAFETY: non-null and writable by contract. NULL until it succeeds.
        unsafe { out.write(std::ptr::null_mut()) };
        if engine.is_null() {
            return Err(Error::Null("engine"));
        }
        if callbacks.on_signal.is_none() {
            return Err(Error::Null("callbacks.on_signal"));
        }
        not_on_runtime("sotto_call_new")?;
        let mut defaults = std::mem::MaybeUninit::uninit();
        let config = if config.is_null() {
            // SAFETY: a valid, writable out-pointer.
            unsafe { sotto_call_config_default(defaults.as_mut_ptr()) };
            // SAFETY: just initialised above.
            unsafe { defaults.assume_init_ref() }
        } else {
            // SAFETY: non-null and valid by contract.
            unsafe { &*config }
        };
        let s = setup(config)?;
        // SAFETY: a live engine by contract.
        let engine = unsafe { &*engine };
        let rt = Arc::clone(&engine.rt);
        let cache = CacheSync {
            store: Arc::clone(&engine.zid),
            base: engine.zid.snapshot(),
        };
        let cfg = CallConfig {
            zid_cache: cache.base.clone(),
            ..s.call
        };
        let now = Instant::now();
        let call = if outgoing {
            Call::outgoing(now, cfg)
        } else {
            Call::incoming(now, cfg)
        }
        // Audio settings out of range, refused before any socket is bound.
        .map_err(|e| Error::Invalid(e.to_string()))?;
        // The rate was checked in `setup`; an error here is one the
        // resampler found after all.
        let (audio, port) = audio::pair(s.rate).map_err(|e| Error::Invalid(e.to_string()))?;
        let port: Box<dyn AudioPort> = if s.echo_cancellation {
            let aec = EchoCanceller::start().map_err(|e| Error::Io(e.to_string()))?;
            Box::new(EchoCancelled::new(port, aec))
        } else {
            Box::new(port)
        };
        let (sig_tx, sig_rx) = mpsc::unbounded_channel();
        let handle = rt
            .block_on(CallHandle::start(
                call,
                &s.bind,
                s.ice,
                Box::new(Signals(sig_tx)),
                Some(port),
            ))
            .map_err(|e| Error::Io(e.to_string()))?;
        let video = s.video.then(AppVideo::default);
        if let Some(v) = &video {
            rt.block_on(handle.set_video(v.port()))
                .map_err(|e| Error::Io(e.to_string()))?;
        }
        let (cmd, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let pump = rt.spawn(pump(handle, sig_rx, cmd_rx, callbacks, cache));
        let c = Box::new(SottoCall {
            rt,
            cmd: Mutex::new(Some(cmd)),
            audio,
            video,
            rate: s.rate,
            outgoing,
            pump: Mutex::new(Some(pump)),
        });
        // SAFETY: non-null and writable by contract.
        unsafe { out.write(Box::into_raw(c)) };
        Ok(())
    })
}

/// The call behind `call`, or a NullArgument error.
fn call_ref<'a>(call: *const SottoCall) -> Result<&'a SottoCall, Error> {
    // SAFETY: non-null pointers are live calls by every function's contract.
    unsafe { call.as_ref() }.ok_or(Error::Null("call"))
}

impl SottoCall {
    fn queue(&self, c: Control) -> Result<(), Error> {
        let cmd = lock(&self.cmd);
        let tx = cmd.as_ref().ok_or(Error::Ended)?;
        tx.try_send(c).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::Busy,
            mpsc::error::TrySendError::Closed(_) => Error::Ended,
        })
    }
}

/// Places an outgoing call: its offer goes to the signal callback.
///
/// Never blocks; may be called from any thread, including SDK callbacks.
///
/// # Safety
/// `call` must be NULL or a live call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sotto_call_place(call: *mut SottoCall) -> SottoStatus {
    guard(|| {
        let c = call_ref(call)?;
        if !c.outgoing {
            return Err(Error::State("only an outgoing call can be placed"));
        }
        c.queue(Control::Place)
    })
}

/// Answers an incoming call that is ringing.
///
/// Never blocks; may be called from any thread, including SDK callbacks.
///
/// # Safety
/// `call` must be NULL or a live call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sotto_call_answer(call: *mut SottoCall) -> SottoStatus {
    guard(|| {
        let c = call_ref(call)?;
        if c.outgoing {
            return Err(Error::State("an outgoing call cannot be answered"));
        }
        c.queue(Control::Answer)
    })
}

/// Declines an incoming call that is ringing.
///
/// Never blocks; may be called from any thread, including SDK callbacks.
///
/// # Safety
/// `call` must be NULL or a live call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sotto_call_decline(call: *mut SottoCall) -> SottoStatus {
    guard(|| {
        let c = call_ref(call)?;
        if c.outgoing {
            return Err(Error::State("an outgoing call cannot be declined"));
        }
        c.queue(Control::Decline)
    })
}

/// Hangs up (or cancels an unanswered call). `Ended` follows.
///
/// Never blocks; may be called from any thread, including SDK callbacks.
///
/// # Safety
/// `call` must be NULL or a live call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sotto_call_hang_up(call: *mut SottoCall) -> SottoStatus {
    guard(|| call_ref(call)?.queue(Control::HangUp))
}

/// Tells an outgoing call that the signalling service keeps its offer
/// `kept_ms` for a callee that is not connected (waking it by push if it
/// can), then drops it. If the callee has not rung by then (and 2 s of
/// grace), it never will: the call ends `NO_ANSWER` then, instead of
/// ringing on to `ring_timeout_ms`. Ignored once the callee has rung.
///
/// Never blocks; may be called from any thread, including SDK callbacks.
///
/// # Safety
/// `call` must be NULL or a live call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sotto_call_offer_queued(
    call: *mut SottoCall,
    kept_ms: u32,
) -> SottoStatus {
    guard(|| {
        let c = call_ref(call)?;
        if !c.outgoing {
            return Err(Error::State("only an outgoing call has an offer"));
        }
        c.queue(Control::OfferQueued(Duration::from_millis(kept_ms.into())))
    })
}

/// Mutes (`true`) or unmutes the microphone.
///
/// Never blocks; may be called from any thread, including SDK callbacks.
///
/// # Safety
/// `call` must be NULL or a live call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sotto_call_set_muted(call: *mut SottoCall, muted: bool) -> SottoStatus {
    guard(|| call_ref(call)?.queue(Control::Mute(muted)))
}

/// Tells the call that the network changed: the app heard so from the OS
/// (Android's `ConnectivityManager`, Apple's `NWPathMonitor`). A family
/// bound from NULL, `0.0.0.0` or `::` moves to the address the SDK would
/// pick now if that is another one, and ICE restarts either way. Without
/// this, a call notices within about 2 s that its address went away.
///
/// Never blocks; may be called from any thread, including SDK callbacks.
///
/// # Safety
/// `call` must be NULL or a live call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sotto_call_network_changed(call: *mut SottoCall) -> SottoStatus {
    guard(|| call_ref(call)?.queue(Control::NetworkChanged))
}

/// After `SecureUp`: the user compared the SAS with the peer. A match
/// marks the peer verified in the engine's ZID cache (and its file), so
/// later calls with this peer report `sas_verified` while the retained
/// secrets keep matching; after a `CACHE_MISMATCH` it is also what stores
/// the call's new secret. A mismatch clears the flag (or, after a
/// `CACHE_MISMATCH`, leaves the cache as it was before the call) and ends
/// the call (`SAS_REJECTED`).
///
/// Never blocks; may be called from any thread, including SDK callbacks.
///
/// # Safety
/// `call` must be NULL or a live call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sotto_call_confirm_sas(
    call: *mut SottoCall,
    matches: bool,
) -> SottoStatus {
    guard(|| call_ref(call)?.queue(Control::ConfirmSas(matches)))
}

/// Delivers one signalling message from the peer (the bytes its signal
/// callback produced; at most 64 KiB; need not be NUL-terminated).
/// Malformed messages give `SOTTO_STATUS_BAD_SIGNAL`.
///
/// Never blocks; may be called from any thread, including SDK callbacks.
///
/// # Safety
/// `call` must be NULL or a live call; `json` NULL or readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sotto_call_signal(
    call: *mut SottoCall,
    json: *const c_char,
    len: usize,
) -> SottoStatus {
    guard(|| {
        let c = call_ref(call)?;
        if json.is_null() {
            return Err(Error::Null("json"));
        }
        if len > signal::SOTTO_MAX_SIGNAL_BYTES {
            return Err(Error::BadSignal(format!("{len} bytes is too long")));
        }
        // SAFETY: readable for `len` bytes by contract.
        let bytes = unsafe { std::slice::from_raw_parts(json.cast::<u8>(), len) };
        c.queue(Control::Signal(signal::decode(bytes)?))
    })
}

/// Samples in one 10 ms audio frame of `call`: its `audio_sample_rate`
/// / 100 (`SOTTO_FRAME_SAMPLES`, 480, at the default 48 kHz; 441 at
/// 44.1 kHz, 160 at 16 kHz). What `sotto_call_pull_audio` takes and
/// `sotto_call_push_audio` takes a multiple of. 0 if `call` is NULL.
///
/// Never blocks; may be called from any thread, including SDK callbacks.
///
/// # Safety
/// `call` must be NULL or a live call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sotto_call_frame_samples(call: *const SottoCall) -> usize {
    // SAFETY: non-null pointers are live calls by contract.
    unsafe { call.as_ref() }.map_or(0, |c| c.audio.frame_samples())
}

impl SottoCall {
    /// Says what a frame of this call is, for a refused length.
    fn frames_are(&self) -> String {
        format!(
            "this call's audio is at {} Hz (audio_sample_rate), in 10 ms frames of {} samples",
            self.rate,
            self.audio.frame_samples()
        )
    }
}

/// Queues microphone audio: mono signed 16-bit at the call's
/// `audio_sample_rate` (48 kHz by default), a whole number of 10 ms frames
/// (`len` a multiple of `sotto_call_frame_samples`, at most 10 frames:
/// `SOTTO_MAX_PUSH_SAMPLES` at 48 kHz). Nothing is sent before `SecureUp`;
/// at most 200 ms is queued: frames that do not fit are dropped (the
/// newest).
///
/// Wait-free (a single-producer ring; no lock, no allocation). Push from
/// one thread at a time: a second thread pushing concurrently on the same
/// call gets `SOTTO_STATUS_BUSY` and its audio is not queued.
///
/// # Safety
/// `call` must be NULL or a live call; `pcm` NULL or readable for `len` samples.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sotto_call_push_audio(
    call: *mut SottoCall,
    pcm: *const i16,
    len: usize,
) -> SottoStatus {
    guard(|| {
        let c = call_ref(call)?;
        if pcm.is_null() {
            return Err(Error::Null("pcm"));
        }
        let frame = c.audio.frame_samples();
        if len == 0 || !len.is_multiple_of(frame) || len > MAX_PUSH_FRAMES * frame {
            return Err(Error::Invalid(format!(
                "{len} samples: {}; push 1 to {MAX_PUSH_FRAMES} whole frames ({} samples at most)",
                c.frames_are(),
                MAX_PUSH_FRAMES * frame
            )));
        }
        // SAFETY: readable for `len` samples by contract.
        let pcm = unsafe { std::slice::from_raw_parts(pcm, len) };
        // Frames dropped for a full ring are not an error: audio is live.
        c.audio
            .push_mic(pcm)
            .map(drop)
            .ok_or(Error::AudioBusy("pushing"))
    })
}

/// Takes the next 10 ms of received audio, at the call's
/// `audio_sample_rate`, into `out` (`len` must be
/// `sotto_call_frame_samples`: `SOTTO_FRAME_SAMPLES` at 48 kHz). When none
/// is queued, writes silence and sets `*got_audio` (if not NULL) to false.
/// The call plays out silence until media flows (those frames count as
/// audio). At most 200 ms is queued.
///
/// Wait-free (a single-consumer ring; no lock, no allocation). Pull from
/// one thread at a time: a second thread pulling concurrently on the same
/// call gets `SOTTO_STATUS_BUSY` (and `out` is left as it was).
///
/// # Safety
/// `call` must be NULL or a live call; `out` NULL or writable for `len`
/// samples; `got_audio` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sotto_call_pull_audio(
    call: *mut SottoCall,
    out: *mut i16,
    len: usize,
    got_audio: *mut bool,
) -> SottoStatus {
    guard(|| {
        let c = call_ref(call)?;
        if out.is_null() {
            return Err(Error::Null("out"));
        }
        if len != c.audio.frame_samples() {
            return Err(Error::Invalid(format!(
                "{len} samples: {}; pull one frame",
                c.frames_are()
            )));
        }
        // SAFETY: writable for `len` samples by contract.
        let buf = unsafe { std::slice::from_raw_parts_mut(out, len) };
        let got = c
            .audio
            .pull_speaker(buf)
            .ok_or(Error::AudioBusy("pulling"))?;
        if !got_audio.is_null() {
            // SAFETY: non-null and writable by contract.
            unsafe { got_audio.write(got) };
        }
        Ok(())
    })
}

/// Hands the call the camera's newest frame: I420 (Y, then U, then V,
/// each plane packed without padding; `len` = `width` * `height` * 3 / 2),
/// `width` and `height` even, at most 1920 x 1088 pixels in all (a
/// smaller frame of another shape, 1088 x 1920 say, is fine). The frame is copied; a frame the
/// call has not taken yet (it takes one every 10 ms) is replaced. The
/// frame size may change between frames (the next frame sent is then a
/// key frame). Nothing is sent before `SecureUp`, nor when the peer takes
/// no video. `SOTTO_STATUS_INVALID_ARGUMENT` when the call's config has
/// `video` off.
///
/// Never blocks for long (a short lock, shared with the call's thread);
/// may be called from any thread.
///
/// # Safety
/// `call` must be NULL or a live call; `i420` NULL or readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sotto_call_push_video(
    call: *mut SottoCall,
    width: u32,
    height: u32,
    i420: *const u8,
    len: usize,
) -> SottoStatus {
    guard(|| {
        let c = call_ref(call)?;
        let video = c.video_on()?;
        if i420.is_null() {
            return Err(Error::Null("i420"));
        }
        // SAFETY: readable for `len` bytes by contract.
        let data = unsafe { std::slice::from_raw_parts(i420, len) }.to_vec();
        let frame =
            VideoFrame::new(width, height, data).map_err(|e| Error::Invalid(e.to_string()))?;
        let max = VideoConfig::default().max_pixels;
        if u64::from(width) * u64::from(height) > u64::from(max) {
            return Err(Error::Invalid(format!(
                "{width}x{height}: over {max} pixels (1920 x 1088); scale the camera's frames down"
            )));
        }
        video.push(frame);
        Ok(())
    })
}

/// Takes the newest received video frame into `out` as I420 (as
/// `sotto_call_push_video` describes), its size into `*width` and
/// `*height`, and sets `*got_frame`; when there is no new frame,
/// `*got_frame` is false and nothing else is written. A `cap` too small
/// for the frame is `SOTTO_STATUS_INVALID_ARGUMENT` (the message says the
/// size needed) and the frame stays for the next call. A frame not taken
/// before a newer one is decoded is replaced by it: pull at least as
/// often as the display refreshes.
///
/// Never blocks for long; may be called from any thread.
///
/// # Safety
/// `call` must be NULL or a live call; `out` NULL or writable for `cap`
/// bytes; `width`, `height` and `got_frame` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sotto_call_pull_video(
    call: *mut SottoCall,
    out: *mut u8,
    cap: usize,
    width: *mut u32,
    height: *mut u32,
    got_frame: *mut bool,
) -> SottoStatus {
    guard(|| {
        let c = call_ref(call)?;
        let video = c.video_on()?;
        for (p, name) in [
            (out.is_null(), "out"),
            (width.is_null(), "width"),
            (height.is_null(), "height"),
            (got_frame.is_null(), "got_frame"),
        ] {
            if p {
                return Err(Error::Null(name));
            }
        }
        let frame = video.take_if(|f| {
            let need = f.data().len();
            if need <= cap {
                Ok(())
            } else {
                Err(Error::Invalid(format!(
                    "cap {cap}: the frame is {}x{}, {need} bytes",
                    f.width(),
                    f.height()
                )))
            }
        })?;
        // SAFETY: all four are non-null and writable by contract; `out`
        // for `cap` bytes, which the frame fits in (checked above).
        unsafe {
            got_frame.write(frame.is_some());
            if let Some(f) = frame {
                std::ptr::copy_nonoverlapping(f.data().as_ptr(), out, f.data().len());
                width.write(f.width());
                height.write(f.height());
            }
        }
        Ok(())
    })
}

impl SottoCall {
    /// The video slots, or why there are none.
    fn video_on(&self) -> Result<&AppVideo, Error> {
        self.video
            .as_ref()
            .ok_or_else(|| Error::Invalid("video is off in this call's config".into()))
    }
}

/// Hangs up if still in a call, closes the call's sockets, waits for its
/// last callbacks (a final `hangup` signal and `Ended` may be delivered
/// during this call) and frees it. NULL is accepted. Must not be called
/// from an SDK callback (`SOTTO_STATUS_WRONG_THREAD`; the call is then
/// left intact).
///
/// # Safety
/// `call` must be NULL or a live call, not used again afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sotto_call_destroy(call: *mut SottoCall) -> SottoStatus {
    guard(|| {
        if call.is_null() {
            return Ok(());
        }
        not_on_runtime("sotto_call_destroy")?;
        let c = call_ref(call)?;
        // Closing the command queue tells the pump to shut the call down.
        // The call stays allocated until the pump is done: its callbacks
        // may still use the controls.
        drop(lock(&c.cmd).take());
        if let Some(p) = lock(&c.pump).take() {
            // A panicked pump has nothing left to wait for.
            let _ = c.rt.block_on(p);
        }
        // SAFETY: came from Box::into_raw in sotto_call_new, destroyed once;
        // no callback of this call runs any more.
        drop(unsafe { Box::from_raw(call) });
        Ok(())
    })
}
