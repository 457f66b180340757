//! The C API driven from Rust as a C program would: misuse is reported as
//! status codes, a declined call and a destroyed call end both sides,
//! blocking functions refuse to run inside callbacks, retained secrets and
//! SAS verification carry over engine restarts through the ZID cache file,
//! and cache and zrtp-hash mismatches reach the event callback. Audio calls
//! do not allocate, a blocking callback holds up only its own call, and an
//! ended call's controls say so.

use sotto::call::*;
use sotto::engine::*;
use sotto::error::sotto_last_error_message;
use sotto::{SottoEndReason, SottoEvent, SottoEventKind, SottoStatus};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::{CStr, CString, c_char, c_void};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

thread_local! {
    /// Allocations and frees on this thread while counting (`Some`).
    static HEAP_CALLS: Cell<Option<u64>> = const { Cell::new(None) };
}

/// The system allocator, counting on threads that asked for it.
struct Counting;

impl Counting {
    fn count() {
        let _ = HEAP_CALLS.try_with(|c| c.set(c.get().map(|n| n + 1)));
    }
}

// SAFETY: defers to `System`; the count touches no heap memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::count();
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        Self::count();
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(p, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// How many times `f` allocated or freed on this thread.
fn heap_calls(f: impl FnOnce()) -> u64 {
    HEAP_CALLS.with(|c| c.set(Some(0)));
    f();
    HEAP_CALLS.with(|c| c.take()).unwrap_or(0)
}

#[derive(Default)]
struct Seen {
    kinds: Vec<SottoEventKind>,
    end: Option<SottoEndReason>,
    sas: Option<String>,
    sas_verified: Option<bool>,
    stats_json: Option<String>,
    destroy_in_callback: Option<SottoStatus>,
}

/// One side's callback state; `peer` is where its signals are relayed.
#[derive(Default)]
struct Side {
    /// Held while relaying, so the test can stop relaying before a destroy.
    peer: Mutex<usize>,
    me: AtomicPtr<SottoCall>,
    /// Corrupt the zrtp-hash of the offer this side sends (a man in the middle).
    tamper_offer: AtomicBool,
    seen: Mutex<Seen>,
    changed: Condvar,
}

impl Side {
    fn wait(&self, what: &str, done: impl Fn(&Seen) -> bool) {
        let g = self.seen.lock().unwrap();
        // A hang guard, not a timing assertion.
        let (g, t) = self
            .changed
            .wait_timeout_while(g, Duration::from_secs(30), |s| !done(s))
            .unwrap();
        assert!(
            !t.timed_out(),
            "timed out waiting for {what}: {:?}",
            g.kinds
        );
    }
}

unsafe extern "C" fn on_signal(user: *mut c_void, json: *const c_char, len: usize) {
    // SAFETY: user_data is the test's `Side`, alive until the calls are destroyed.
    let side = unsafe { &*(user as *const Side) };
    let peer = side.peer.lock().unwrap();
    let mut tampered = None;
    if side.tamper_offer.load(Ordering::SeqCst) {
        // SAFETY: the SDK passes `len` readable bytes.
        let bytes = unsafe { std::slice::from_raw_parts(json.cast::<u8>(), len) };
        let mut v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        if v["type"] == "offer" {
            let hash = v["zrtp_hash"].as_str().unwrap().to_owned();
            // Flip the last hex digit of "1.10 <hex>".
            let last = if hash.ends_with('0') { '1' } else { '0' };
            v["zrtp_hash"] = format!("{}{last}", &hash[..hash.len() - 1]).into();
            tampered = Some(v.to_string());
        }
    }
    let (json, len) = match &tampered {
        Some(t) => (t.as_ptr().cast::<c_char>(), t.len()),
        None => (json, len),
    };
    // SAFETY: the peer call is live while `peer` holds it (the test clears
    // it under this lock before destroying that call); `json` is readable.
    let st = unsafe { sotto_call_signal(*peer as *mut SottoCall, json, len) };
    assert!(matches!(
        st,
        SottoStatus::Ok | SottoStatus::Ended | SottoStatus::NullArgument
    ));
}

unsafe extern "C" fn on_event(user: *mut c_void, e: *const SottoEvent) {
    // SAFETY: as in on_signal; `e` is valid during the callback.
    let (side, e) = unsafe { (&*(user as *const Side), &*e) };
    let text = |p: *const c_char| {
        // SAFETY: non-null event strings are NUL-terminated and live for the callback.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    };
    let mut s = side.seen.lock().unwrap();
    s.kinds.push(e.kind);
    match e.kind {
        SottoEventKind::SecureUp => {
            s.sas = text(e.sas);
            s.sas_verified = Some(e.sas_verified);
        }
        SottoEventKind::Stats => s.stats_json = text(e.stats_json),
        SottoEventKind::Ended => {
            s.end = Some(e.end_reason);
            // SAFETY: our own live call; the SDK must refuse to destroy it here.
            s.destroy_in_callback =
                Some(unsafe { sotto_call_destroy(side.me.load(Ordering::SeqCst)) });
        }
        _ => {}
    }
    side.changed.notify_all();
}

fn callbacks(side: &Side) -> SottoCallbacks {
    SottoCallbacks {
        user_data: side as *const Side as *mut c_void,
        on_signal: Some(on_signal),
        on_event: Some(on_event),
    }
}

fn last_error() -> String {
    // SAFETY: a live thread-local string, read before the next SDK call.
    unsafe { CStr::from_ptr(sotto_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

fn loopback() -> SottoCallConfig {
    let mut c = std::mem::MaybeUninit::uninit();
    // SAFETY: writable storage for one config.
    let st = unsafe { sotto_call_config_default(c.as_mut_ptr()) };
    assert_eq!(st, SottoStatus::Ok);
    // SAFETY: initialised just above.
    let mut c = unsafe { c.assume_init() };
    c.bind_address = c"127.0.0.1:0".as_ptr();
    c
}

/// An engine whose ZID cache lives in `cache` (in memory if `None`).
fn engine(cache: Option<&Path>) -> *mut SottoEngine {
    let path = cache.map(|p| CString::new(p.to_str().unwrap()).unwrap());
    let mut cfg = std::mem::MaybeUninit::uninit();
    let mut e = ptr::null_mut();
    // SAFETY: writable storage; the path string outlives the call.
    unsafe {
        assert_eq!(
            sotto_engine_config_default(cfg.as_mut_ptr()),
            SottoStatus::Ok
        );
        let mut cfg = cfg.assume_init();
        cfg.zid_cache_path = path.as_ref().map_or(ptr::null(), |p| p.as_ptr());
        assert_eq!(
            sotto_engine_new(&cfg, &mut e),
            SottoStatus::Ok,
            "{}",
            last_error()
        );
    }
    e
}

fn destroy_engine(e: *mut SottoEngine) {
    // SAFETY: a live engine, destroyed once, from a non-SDK thread.
    assert_eq!(unsafe { sotto_engine_destroy(e) }, SottoStatus::Ok);
}

/// Alice's and Bob's calls; destroying them first stops the relaying.
struct Pair<'s> {
    /// Engines this pair owns (destroyed after the calls).
    engines: Vec<*mut SottoEngine>,
    sides: [&'s Side; 2],
    a: *mut SottoCall,
    b: *mut SottoCall,
}

/// Alice (outgoing, on `ea`) and Bob (incoming, on `eb`) on loopback,
/// relaying to each other.
fn calls<'s>(
    ea: *mut SottoEngine,
    eb: *mut SottoEngine,
    alice: &'s Side,
    bob: &'s Side,
    cfg: &SottoCallConfig,
) -> Pair<'s> {
    calls_with(ea, eb, alice, bob, [cfg, cfg])
}

/// As `calls`, Alice's call made with `cfg[0]` and Bob's with `cfg[1]`.
fn calls_with<'s>(
    ea: *mut SottoEngine,
    eb: *mut SottoEngine,
    alice: &'s Side,
    bob: &'s Side,
    cfg: [&SottoCallConfig; 2],
) -> Pair<'s> {
    let (mut a, mut b) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: live engines, valid out-pointers, configs and callbacks whose
    // user data outlives the calls.
    unsafe {
        assert_eq!(
            sotto_call_new(ea, cfg[0], true, callbacks(alice), &mut a),
            SottoStatus::Ok,
            "{}",
            last_error()
        );
        assert_eq!(
            sotto_call_new(eb, cfg[1], false, callbacks(bob), &mut b),
            SottoStatus::Ok,
            "{}",
            last_error()
        );
    }
    for (side, me, peer) in [(alice, a, b), (bob, b, a)] {
        side.me.store(me, Ordering::SeqCst);
        *side.peer.lock().unwrap() = peer as usize;
    }
    Pair {
        engines: Vec::new(),
        sides: [alice, bob],
        a,
        b,
    }
}

/// The calls on two in-memory engines (two devices: one engine has one
/// ZID, and ZRTP refuses a peer with our own ZID).
fn pair<'s>(alice: &'s Side, bob: &'s Side) -> Pair<'s> {
    pair_with(alice, bob, &loopback())
}

/// As `pair`, both calls made with `cfg`.
fn pair_with<'s>(alice: &'s Side, bob: &'s Side, cfg: &SottoCallConfig) -> Pair<'s> {
    pair_each(alice, bob, [cfg, cfg])
}

/// As `pair`, Alice's call made with `cfg[0]` and Bob's with `cfg[1]`.
fn pair_each<'s>(alice: &'s Side, bob: &'s Side, cfg: [&SottoCallConfig; 2]) -> Pair<'s> {
    let (ea, eb) = (engine(None), engine(None));
    let mut p = calls_with(ea, eb, alice, bob, cfg);
    p.engines = vec![ea, eb];
    p
}

/// `loopback()` with audio at `rate` Hz.
fn at_rate(rate: u32) -> SottoCallConfig {
    let mut c = loopback();
    c.audio_sample_rate = rate;
    c
}

/// Places and answers the pair's call and waits until both are Secure.
fn go_secure(p: &Pair<'_>) {
    // SAFETY: a live call.
    assert_eq!(unsafe { sotto_call_place(p.a) }, SottoStatus::Ok);
    p.sides[1].wait("ringing", |s| s.kinds.contains(&SottoEventKind::Ringing));
    // SAFETY: a live call.
    assert_eq!(unsafe { sotto_call_answer(p.b) }, SottoStatus::Ok);
    for side in p.sides {
        side.wait("secure", |s| s.sas.is_some());
    }
}

impl Drop for Pair<'_> {
    fn drop(&mut self) {
        // A call destroyed mid-call signals a hang-up: relay it nowhere.
        for s in self.sides {
            *s.peer.lock().unwrap() = 0;
        }
        // SAFETY: live (or NULL) handles, destroyed once, from a non-SDK thread.
        unsafe {
            assert_eq!(sotto_call_destroy(self.a), SottoStatus::Ok);
            assert_eq!(sotto_call_destroy(self.b), SottoStatus::Ok);
        }
        for &e in &self.engines {
            destroy_engine(e);
        }
    }
}

/// Places and answers a call between the two engines and waits until both
/// are Secure with the same SAS; then `after` (e.g. confirm the SAS), a
/// hang-up by Alice, and both ends. Returns what each side saw.
fn secure_call(
    ea: *mut SottoEngine,
    eb: *mut SottoEngine,
    after: impl Fn(&Pair<'_>),
) -> (Seen, Seen) {
    let mut v = secure_calls(&[(ea, eb)], after);
    v.pop().unwrap()
}

/// As `secure_call`, for several calls at once: each `(caller, callee)`
/// pair of engines places one, all ring, are answered and go Secure
/// before `after` runs on each and all are hung up.
fn secure_calls(
    engines: &[(*mut SottoEngine, *mut SottoEngine)],
    after: impl Fn(&Pair<'_>),
) -> Vec<(Seen, Seen)> {
    let sides: Vec<(Side, Side)> = engines.iter().map(|_| Default::default()).collect();
    {
        let pairs: Vec<Pair<'_>> = engines
            .iter()
            .zip(&sides)
            .map(|(&(ea, eb), (alice, bob))| calls(ea, eb, alice, bob, &loopback()))
            .collect();
        for p in &pairs {
            // SAFETY: live calls.
            assert_eq!(unsafe { sotto_call_place(p.a) }, SottoStatus::Ok);
        }
        for (p, (_, bob)) in pairs.iter().zip(&sides) {
            bob.wait("ringing", |s| s.kinds.contains(&SottoEventKind::Ringing));
            // SAFETY: a live call.
            assert_eq!(unsafe { sotto_call_answer(p.b) }, SottoStatus::Ok);
        }
        for (alice, bob) in &sides {
            alice.wait("secure", |s| s.sas.is_some());
            bob.wait("secure", |s| s.sas.is_some());
        }
        pairs.iter().for_each(&after);
        for (p, (alice, bob)) in pairs.iter().zip(&sides) {
            // SAFETY: a live call (already ended if `after` rejected the SAS).
            let st = unsafe { sotto_call_hang_up(p.a) };
            assert!(matches!(st, SottoStatus::Ok | SottoStatus::Ended), "{st:?}");
            alice.wait("end", |s| s.end.is_some());
            bob.wait("end", |s| s.end.is_some());
        }
    }
    sides
        .into_iter()
        .map(|(alice, bob)| {
            let (a, b) = (
                alice.seen.into_inner().unwrap(),
                bob.seen.into_inner().unwrap(),
            );
            assert_eq!(a.sas, b.sas, "both sides read the same SAS");
            (a, b)
        })
        .collect()
}

/// Both users say whether the SAS they read matched.
fn confirm(p: &Pair<'_>, matches: bool) {
    // SAFETY: live calls.
    unsafe {
        assert_eq!(sotto_call_confirm_sas(p.a, matches), SottoStatus::Ok);
        assert_eq!(sotto_call_confirm_sas(p.b, matches), SottoStatus::Ok);
    }
}

/// A fresh directory for one test's cache files.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sotto-sdk-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn misuse_is_a_status_code() {
    let side = Side::default();
    let mut out = ptr::null_mut();
    let mut engine;
    let mut frame = [0i16; SOTTO_FRAME_SAMPLES];
    assert_eq!(sotto::sotto_abi_version(), sotto::SOTTO_ABI_VERSION);
    // SAFETY: every pointer passed is NULL or valid.
    unsafe {
        assert_eq!(
            sotto_engine_new(ptr::null(), ptr::null_mut()),
            SottoStatus::NullArgument
        );
        let dir = temp_dir("misuse");
        let bad_cache = CString::new(dir.join("no/such/dir/zid.cache").to_str().unwrap()).unwrap();
        let cfg = SottoEngineConfig {
            zid_cache_path: bad_cache.as_ptr(),
        };
        // A failed create leaves NULL behind, not what was there.
        engine = ptr::dangling_mut();
        assert_eq!(sotto_engine_new(&cfg, &mut engine), SottoStatus::Io);
        assert!(engine.is_null());
        assert!(last_error().contains("ZID cache"), "{}", last_error());
        let not_a_cache = dir.join("garbage");
        std::fs::write(&not_a_cache, b"not a database").unwrap();
        let not_a_cache = CString::new(not_a_cache.to_str().unwrap()).unwrap();
        let cfg = SottoEngineConfig {
            zid_cache_path: not_a_cache.as_ptr(),
        };
        assert_eq!(sotto_engine_new(&cfg, &mut engine), SottoStatus::Io);
        assert_eq!(sotto_engine_new(ptr::null(), &mut engine), SottoStatus::Ok);
        let cb = callbacks(&side);
        assert_eq!(
            sotto_call_new(ptr::null(), ptr::null(), true, cb, &mut out),
            SottoStatus::NullArgument
        );
        assert_eq!(last_error(), "argument `engine` is NULL");
        let no_signal = SottoCallbacks {
            on_signal: None,
            ..cb
        };
        assert_eq!(
            sotto_call_new(engine, ptr::null(), true, no_signal, &mut out),
            SottoStatus::NullArgument
        );
        // Configurations refused before any socket is bound, and why.
        let with = |f: fn(&mut SottoCallConfig)| {
            let mut c = loopback();
            f(&mut c);
            c
        };
        for (bad, says) in [
            (
                with(|c| c.bind_address = c"not an address".as_ptr()),
                "bind_address",
            ),
            (with(|c| c.relay_only = true), "turn_server"),
            (with(|c| c.audio_bitrate = 100), "bitrate"),
            (with(|c| c.audio_bitrate = 600_000), "bitrate"),
            (with(|c| c.jitter_min_target_ms = 3_000), "min_target_ms"),
            (with(|c| c.jitter_max_target_ms = 7_000), "max_target_ms"),
            (
                with(|c| c.audio_sample_rate = 44_123),
                "audio_sample_rate 44123 Hz",
            ),
            (with(|c| c.audio_sample_rate = 7_900), "audio_sample_rate"),
            (with(|c| c.audio_sample_rate = 96_100), "audio_sample_rate"),
            (with(|c| c.audio_sample_rate = 192_000), "audio_sample_rate"),
            (with(|c| c.audio_sample_rate = 1), "audio_sample_rate"),
        ] {
            assert_eq!(
                sotto_call_new(engine, &bad, true, cb, &mut out),
                SottoStatus::InvalidArgument
            );
            assert!(last_error().contains(says), "{}", last_error());
        }

        // Blocking functions refuse to run on a runtime thread.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let e = engine as usize;
        let st = rt.block_on(async move {
            let mut out = ptr::null_mut();
            sotto_call_new(e as *const SottoEngine, ptr::null(), true, cb, &mut out)
        });
        assert_eq!(st, SottoStatus::WrongThread);

        let cfg = loopback();
        assert_eq!(
            sotto_call_new(engine, &cfg, false, cb, &mut out),
            SottoStatus::Ok
        );
        assert_eq!(sotto_call_place(out), SottoStatus::WrongState);
        assert_eq!(sotto_call_place(ptr::null_mut()), SottoStatus::NullArgument);
        assert_eq!(
            sotto_call_network_changed(ptr::null_mut()),
            SottoStatus::NullArgument
        );
        let junk = b"{\"type\":\"offer\"}";
        assert_eq!(
            sotto_call_signal(out, junk.as_ptr().cast(), junk.len()),
            SottoStatus::BadSignal
        );
        assert_eq!(
            sotto_call_signal(out, ptr::null(), 3),
            SottoStatus::NullArgument
        );
        assert_eq!(
            sotto_call_signal(out, junk.as_ptr().cast(), 1 << 20),
            SottoStatus::BadSignal
        );
        assert_eq!(
            sotto_call_push_audio(out, frame.as_ptr(), 100),
            SottoStatus::InvalidArgument
        );
        assert_eq!(
            sotto_call_push_audio(out, frame.as_ptr(), 0),
            SottoStatus::InvalidArgument
        );
        assert_eq!(
            sotto_call_push_audio(out, frame.as_ptr(), SOTTO_FRAME_SAMPLES),
            SottoStatus::Ok
        );
        let mut got = true;
        assert_eq!(
            sotto_call_pull_audio(out, frame.as_mut_ptr(), 10, &mut got),
            SottoStatus::InvalidArgument
        );
        assert_eq!(
            sotto_call_pull_audio(out, frame.as_mut_ptr(), SOTTO_FRAME_SAMPLES, &mut got),
            SottoStatus::Ok
        );
        // The call plays silence (got or not) until media flows.
        assert!(frame.iter().all(|&s| s == 0), "audio before a call");
        assert_eq!(sotto_call_frame_samples(out), SOTTO_FRAME_SAMPLES);
        assert_eq!(sotto_call_frame_samples(ptr::null()), 0);
        assert_eq!(sotto_call_destroy(out), SottoStatus::Ok);

        // At a device rate, frames are 10 ms of that rate, and 48 kHz
        // frames are refused with the reason.
        let cfg = at_rate(44_100);
        assert_eq!(
            sotto_call_new(engine, &cfg, true, cb, &mut out),
            SottoStatus::Ok
        );
        assert_eq!(sotto_call_frame_samples(out), 441);
        for bad in [SOTTO_FRAME_SAMPLES, 440, 11 * 441] {
            let pcm = vec![0i16; bad];
            assert_eq!(
                sotto_call_push_audio(out, pcm.as_ptr(), bad),
                SottoStatus::InvalidArgument
            );
            let why = last_error();
            assert!(
                why.contains(&format!("{bad} samples"))
                    && why.contains("44100 Hz")
                    && why.contains("frames of 441 samples")
                    && why.contains("4410 samples at most"),
                "{why}"
            );
        }
        let pcm = [0i16; 10 * 441];
        for n in [441, 4 * 441, 10 * 441] {
            assert_eq!(sotto_call_push_audio(out, pcm.as_ptr(), n), SottoStatus::Ok);
        }
        let mut buf = [1i16; SOTTO_FRAME_SAMPLES];
        assert_eq!(
            sotto_call_pull_audio(out, buf.as_mut_ptr(), SOTTO_FRAME_SAMPLES, &mut got),
            SottoStatus::InvalidArgument
        );
        let why = last_error();
        assert!(
            why.contains("480 samples") && why.contains("frames of 441 samples"),
            "{why}"
        );
        assert_eq!(
            sotto_call_pull_audio(out, buf.as_mut_ptr(), 441, &mut got),
            SottoStatus::Ok
        );
        assert!(buf[..441].iter().all(|&s| s == 0), "audio before a call");
        assert_eq!(buf[441], 1, "nothing written past the frame");
        assert_eq!(sotto_call_destroy(out), SottoStatus::Ok);
        assert_eq!(sotto_call_destroy(ptr::null_mut()), SottoStatus::Ok);
        assert_eq!(sotto_engine_destroy(engine), SottoStatus::Ok);
        assert_eq!(last_error(), "");
    }
}

#[test]
fn declined_call_ends_both_sides() {
    let (alice, bob) = (Side::default(), Side::default());
    let p = pair(&alice, &bob);
    // SAFETY: live calls.
    unsafe {
        assert_eq!(sotto_call_answer(p.a), SottoStatus::WrongState);
        assert_eq!(sotto_call_place(p.a), SottoStatus::Ok);
    }
    bob.wait("ringing", |s| s.kinds.contains(&SottoEventKind::Ringing));
    // SAFETY: a live call.
    assert_eq!(unsafe { sotto_call_decline(p.b) }, SottoStatus::Ok);
    bob.wait("end", |s| s.end.is_some());
    alice.wait("end", |s| s.end.is_some());
    let (a, b) = (alice.seen.lock().unwrap(), bob.seen.lock().unwrap());
    assert_eq!(b.end, Some(SottoEndReason::Declined));
    assert_eq!(a.end, Some(SottoEndReason::RemoteDeclined));
    assert_eq!(a.destroy_in_callback, Some(SottoStatus::WrongThread));
    assert_eq!(b.destroy_in_callback, Some(SottoStatus::WrongThread));
    assert!(a.sas.is_none() && b.sas.is_none());
}

#[test]
fn audio_settings_reach_the_call() {
    let (alice, bob) = (Side::default(), Side::default());
    let mut cfg = loopback();
    cfg.audio_bitrate = 32_000;
    cfg.audio_dtx = false;
    cfg.jitter_min_target_ms = 60;
    cfg.jitter_max_target_ms = 1_000;
    cfg.jitter_outage_hold_ms = 1_000;
    let p = pair_with(&alice, &bob, &cfg);
    // SAFETY: a live call.
    assert_eq!(unsafe { sotto_call_place(p.a) }, SottoStatus::Ok);
    bob.wait("ringing", |s| s.kinds.contains(&SottoEventKind::Ringing));
    // SAFETY: a live call.
    assert_eq!(unsafe { sotto_call_answer(p.b) }, SottoStatus::Ok);
    // Statistics from before Secure have no encoder yet (a target
    // bitrate of 0): wait for some from after it.
    let target_bitrate = |s: &Seen| {
        let v: serde_json::Value = serde_json::from_str(s.stats_json.as_deref()?).ok()?;
        v["outbound-rtp.targetBitrate"]
            .as_f64()
            .filter(|&b| b > 0.0)
    };
    for side in [&alice, &bob] {
        side.wait("stats after secure", |s| target_bitrate(s).is_some());
        assert_eq!(target_bitrate(&side.seen.lock().unwrap()), Some(32_000.0));
    }
}

#[test]
fn destroying_a_secure_call_hangs_up_the_peer() {
    let (alice, bob) = (Side::default(), Side::default());
    let mut p = pair(&alice, &bob);
    // SAFETY: a live call.
    assert_eq!(unsafe { sotto_call_place(p.a) }, SottoStatus::Ok);
    bob.wait("ringing", |s| s.kinds.contains(&SottoEventKind::Ringing));
    // SAFETY: a live call.
    assert_eq!(unsafe { sotto_call_answer(p.b) }, SottoStatus::Ok);
    alice.wait("stats", |s| s.sas.is_some() && s.stats_json.is_some());
    bob.wait("secure", |s| s.sas.is_some());
    assert_eq!(alice.seen.lock().unwrap().sas, bob.seen.lock().unwrap().sas);
    let json = alice.seen.lock().unwrap().stats_json.clone().unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["outbound-rtp.packetsSent"].is_number(), "{json}");

    // Alice's app hears from the OS that the network changed.
    // SAFETY: a live call.
    assert_eq!(unsafe { sotto_call_network_changed(p.a) }, SottoStatus::Ok);

    // Bob's app goes away mid-call: Alice hears the hang-up.
    *alice.peer.lock().unwrap() = 0;
    // SAFETY: live, destroyed once; Alice stopped relaying to it.
    assert_eq!(unsafe { sotto_call_destroy(p.b) }, SottoStatus::Ok);
    p.b = ptr::null_mut();
    alice.wait("end", |s| s.end.is_some());
    assert_eq!(
        alice.seen.lock().unwrap().end,
        Some(SottoEndReason::RemoteHangup)
    );
    // Once its Ended event is out, a call says so to every control.
    // SAFETY: a live (ended) call.
    unsafe {
        assert_eq!(sotto_call_hang_up(p.a), SottoStatus::Ended);
        assert_eq!(sotto_call_set_muted(p.a, true), SottoStatus::Ended);
        assert_eq!(sotto_call_network_changed(p.a), SottoStatus::Ended);
    }
}

#[test]
fn verified_sas_carries_over_engine_restarts() {
    let dir = temp_dir("continuity");
    let (pa, pb) = (dir.join("alice.zid"), dir.join("bob.zid"));
    let (ea, eb) = (engine(Some(&pa)), engine(Some(&pb)));
    // First call: nothing retained yet; both users confirm the SAS.
    let (a, b) = secure_call(ea, eb, |p| confirm(p, true));
    assert_eq!((a.sas_verified, b.sas_verified), (Some(false), Some(false)));
    destroy_engine(ea);
    destroy_engine(eb);

    // The apps restart: the files carry the secrets and the verified flag.
    let (ea, eb) = (engine(Some(&pa)), engine(Some(&pb)));
    let (a, b) = secure_call(ea, eb, |_| {});
    assert_eq!((a.sas_verified, b.sas_verified), (Some(true), Some(true)));
    for s in [&a, &b] {
        assert!(
            !s.kinds.contains(&SottoEventKind::CacheMismatch),
            "{:?}",
            s.kinds
        );
    }

    // Bob now says the SAS did not match: that ends the call and clears
    // his flag, so the next call is unverified for both.
    let (_, b) = secure_call(ea, eb, |p| {
        // SAFETY: a live call.
        let st = unsafe { sotto_call_confirm_sas(p.b, false) };
        assert_eq!(st, SottoStatus::Ok);
    });
    assert_eq!(b.end, Some(SottoEndReason::SasRejected));
    destroy_engine(eb);
    let eb = engine(Some(&pb));
    let (a, b) = secure_call(ea, eb, |_| {});
    assert_eq!((a.sas_verified, b.sas_verified), (Some(false), Some(false)));
    assert!(
        !a.kinds.contains(&SottoEventKind::CacheMismatch),
        "secrets still match"
    );
    destroy_engine(ea);
    destroy_engine(eb);
}

#[test]
fn a_peer_that_lost_its_cache_raises_cache_mismatch() {
    let dir = temp_dir("mismatch");
    let (pa, pb) = (dir.join("alice.zid"), dir.join("bob.zid"));
    let (ea, eb) = (engine(Some(&pa)), engine(Some(&pb)));
    // Bob's cache as it was before he ever talked to Alice: his ZID only.
    let backup = dir.join("bob.zid.bak");
    std::fs::copy(&pb, &backup).unwrap();
    let (a, _) = secure_call(ea, eb, |_| {});
    assert!(!a.kinds.contains(&SottoEventKind::CacheMismatch));

    // Bob restores the old backup: same ZID, no secret shared with Alice.
    destroy_engine(eb);
    std::fs::copy(&backup, &pb).unwrap();
    let eb = engine(Some(&pb));
    let (a, b) = secure_call(ea, eb, |_| {});
    let at = |k| a.kinds.iter().position(|&x| x == k);
    let mismatch = at(SottoEventKind::CacheMismatch).expect("Alice is warned");
    assert!(
        mismatch < at(SottoEventKind::SecureUp).unwrap(),
        "{:?}",
        a.kinds
    );
    assert_eq!((a.sas_verified, b.sas_verified), (Some(false), Some(false)));
    destroy_engine(ea);
    destroy_engine(eb);
}

#[test]
fn a_wrong_zrtp_hash_in_the_offer_raises_hello_hash_mismatch() {
    let (alice, bob) = (Side::default(), Side::default());
    alice.tamper_offer.store(true, Ordering::SeqCst);
    let p = pair(&alice, &bob);
    // SAFETY: live calls.
    assert_eq!(unsafe { sotto_call_place(p.a) }, SottoStatus::Ok);
    bob.wait("ringing", |s| s.kinds.contains(&SottoEventKind::Ringing));
    // SAFETY: a live call.
    assert_eq!(unsafe { sotto_call_answer(p.b) }, SottoStatus::Ok);
    bob.wait("end", |s| s.end.is_some());
    let b = bob.seen.lock().unwrap();
    assert!(
        b.kinds.contains(&SottoEventKind::HelloHashMismatch),
        "{:?}",
        b.kinds
    );
    assert_eq!(b.end, Some(SottoEndReason::HelloHashMismatch));
    assert!(b.sas.is_none(), "never Secure");
    assert!(alice.seen.lock().unwrap().sas.is_none());
}

#[test]
fn parallel_calls_of_one_engine_keep_both_peers_secrets() {
    let dir = temp_dir("parallel");
    let paths = ["alice", "bob", "carol"].map(|n| dir.join(format!("{n}.zid")));
    let [ea, eb, ec] = [0, 1, 2].map(|i| engine(Some(&paths[i])));
    // Alice talks to Bob and Carol at the same time; both calls started
    // from the same snapshot of her cache, and each saves it when Secure.
    for (a, b) in secure_calls(&[(ea, eb), (ea, ec)], |p| confirm(p, true)) {
        assert_eq!((a.sas_verified, b.sas_verified), (Some(false), Some(false)));
    }
    destroy_engine(ea);
    let ea = engine(Some(&paths[0]));
    // Her file kept both peers: no mismatch, both verified.
    for (a, b) in secure_calls(&[(ea, eb), (ea, ec)], |_| {}) {
        for s in [&a, &b] {
            assert!(
                !s.kinds.contains(&SottoEventKind::CacheMismatch),
                "{:?}",
                s.kinds
            );
        }
        assert_eq!((a.sas_verified, b.sas_verified), (Some(true), Some(true)));
    }
    for e in [ea, eb, ec] {
        destroy_engine(e);
    }
}

#[test]
fn an_offer_queued_for_a_callee_that_never_rings_ends_the_call_unanswered() {
    let (alice, bob) = (Side::default(), Side::default());
    let mut cfg = loopback();
    // Far past the wait's hang guard: only the queued offer can end it.
    cfg.ring_timeout_ms = 600_000;
    let p = pair_with(&alice, &bob, &cfg);
    // Bob is not connected: nothing Alice signals reaches him.
    *alice.peer.lock().unwrap() = 0;
    // SAFETY: live calls.
    unsafe {
        assert_eq!(sotto_call_offer_queued(p.b, 1000), SottoStatus::WrongState);
        assert_eq!(sotto_call_place(p.a), SottoStatus::Ok);
        assert_eq!(sotto_call_offer_queued(p.a, 1000), SottoStatus::Ok);
    }
    alice.wait("end", |s| s.end.is_some());
    assert_eq!(
        alice.seen.lock().unwrap().end,
        Some(SottoEndReason::NoAnswer)
    );
}

#[test]
fn pushing_and_pulling_audio_does_not_touch_the_heap() {
    // At 48 kHz, and at a device rate the SDK converts from and to.
    for rate in [0, 44_100] {
        let (alice, bob) = (Side::default(), Side::default());
        let p = pair_with(&alice, &bob, &at_rate(rate));
        go_secure(&p);
        // SAFETY: a live call.
        let frame = unsafe { sotto_call_frame_samples(p.a) };
        let tone: Vec<i16> = (0..frame)
            .map(|i| ((i as f64 * 0.06).sin() * 8000.0) as i16)
            .collect();
        let mut out = vec![0i16; frame];
        let mut got = false;
        let n = heap_calls(|| {
            for _ in 0..100 {
                // SAFETY: a live call; buffers of one frame.
                unsafe {
                    assert_eq!(
                        sotto_call_push_audio(p.a, tone.as_ptr(), tone.len()),
                        SottoStatus::Ok
                    );
                    assert_eq!(
                        sotto_call_pull_audio(p.a, out.as_mut_ptr(), out.len(), &mut got),
                        SottoStatus::Ok
                    );
                }
                // The driver converts what was pushed meanwhile.
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        // An audio thread must not take the allocator's locks. (Before, each
        // call made and freed its empty error message: 200.)
        assert_eq!(n, 0, "{rate} Hz: allocations and frees in 200 audio calls");
    }
}

/// A tone of `hz` at `rate`, from sample `from` on.
fn tone(hz: f64, rate: u32, from: usize, n: usize) -> Vec<i16> {
    (from..from + n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            (8_000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
        })
        .collect()
}

/// [`tone_hz`](sotto_engine::sim::audio::tone_hz), which must find one.
fn tone_hz(pcm: &[i16], rate: u32) -> f64 {
    sotto_engine::sim::audio::tone_hz(pcm, rate).expect("more than 100 periods of a tone")
}

fn rms(pcm: &[i16]) -> f64 {
    (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt()
}

/// What one side heard of the other's tone, from 300 ms after it first
/// came: its pitch, its level, how many of its 10 ms frames were near
/// silence and the most of those in a row.
fn heard(pcm: &[i16], rate: u32) -> (f64, f64, usize, usize) {
    let frame = rate as usize / 100;
    let frames: Vec<&[i16]> = pcm.chunks_exact(frame).collect();
    let first = frames
        .iter()
        .position(|f| rms(f) > 1_000.0)
        .expect("the tone never came");
    let steady = &frames[(first + 30).min(frames.len())..];
    assert!(steady.len() >= 100, "only {} frames of tone", steady.len());
    let (mut gaps, mut run, mut longest) = (0, 0, 0);
    for f in steady {
        if rms(f) < 1_000.0 {
            (gaps, run) = (gaps + 1, run + 1);
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let all = steady.concat();
    (tone_hz(&all, rate), rms(&all), gaps, longest)
}

#[test]
fn a_tone_crosses_calls_at_device_rates_at_its_pitch() {
    // Alice's device runs at 44.1 kHz, Bob's Bluetooth headset at 16 kHz.
    tones_cross([at_rate(44_100), at_rate(16_000)]);
}

/// Alice's app cancels echo (desktop speakers): what she plays is taken
/// out of what she pushes, and her own voice still reaches Bob.
#[test]
fn an_echo_cancelling_call_still_carries_its_voice() {
    let mut alice = at_rate(48_000);
    alice.echo_cancellation = true;
    tones_cross([alice, at_rate(16_000)]);
}

/// Each side pushes a tone at its own rate (1 kHz and 600 Hz), in real
/// time, and pulls the other's at its own rate; each hears the other's
/// tone at its pitch and level, without gaps.
fn tones_cross(cfg: [SottoCallConfig; 2]) {
    let (alice, bob) = (Side::default(), Side::default());
    let rates = cfg.each_ref().map(|c| c.audio_sample_rate);
    let hz = [1_000.0, 600.0];
    let p = pair_each(&alice, &bob, [&cfg[0], &cfg[1]]);
    go_secure(&p);
    let calls = [p.a, p.b];
    let frames = rates.map(|r| r as usize / 100);
    for (c, n) in calls.iter().zip(frames) {
        // SAFETY: a live call.
        assert_eq!(unsafe { sotto_call_frame_samples(*c) }, n);
    }
    let mut received: [Vec<i16>; 2] = Default::default();
    let start = std::time::Instant::now();
    let ticks = 250; // 2.5 s
    for tick in 0..ticks {
        for side in 0..2 {
            let n = frames[side];
            let pcm = tone(hz[side], rates[side], tick * n, n);
            let mut out = vec![0i16; n];
            // SAFETY: a live call; buffers of one frame.
            unsafe {
                assert_eq!(
                    sotto_call_push_audio(calls[side], pcm.as_ptr(), n),
                    SottoStatus::Ok
                );
                assert_eq!(
                    sotto_call_pull_audio(calls[side], out.as_mut_ptr(), n, ptr::null_mut()),
                    SottoStatus::Ok
                );
            }
            received[side].extend_from_slice(&out);
        }
        // A device's clock: every 10 ms from the start (catching up if late).
        let next = start + Duration::from_millis(10 * (tick as u64 + 1));
        std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
    }
    for side in 0..2 {
        let sent = hz[1 - side];
        let (pitch, level, gaps, longest) = heard(&received[side], rates[side]);
        let who = ["Alice", "Bob"][side];
        assert!(
            (pitch - sent).abs() < sent * 0.01,
            "{who} at {} Hz heard {pitch:.1} Hz for {sent} Hz",
            rates[side]
        );
        // A sine of amplitude 8 000 has an RMS of 5 657.
        assert!(level > 4_000.0, "{who}: level {level:.0}");
        // Usually none; a loaded machine may stall a tick or two.
        assert!(
            gaps <= 6 && longest <= 3,
            "{who}: {gaps} silent frames, {longest} in a row"
        );
    }
}

/// Signal callbacks that block until released: an app whose callback
/// makes a synchronous request to its signalling server.
#[derive(Default)]
struct Blocking {
    /// How many callbacks are blocked; whether they are released.
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Blocking {
    /// Waits (with a hang guard) until `done`; false if it never came.
    fn wait(&self, done: impl Fn(&(usize, bool)) -> bool) -> bool {
        let g = self.state.lock().unwrap();
        // A hang guard, not a timing assertion.
        let (_g, t) = self
            .changed
            .wait_timeout_while(g, Duration::from_secs(20), |s| !done(s))
            .unwrap();
        !t.timed_out()
    }

    fn release(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }
}

unsafe extern "C" fn blocking_signal(user: *mut c_void, _json: *const c_char, _len: usize) {
    // SAFETY: user_data is the test's `Blocking`, alive until the calls are destroyed.
    let b = unsafe { &*(user as *const Blocking) };
    b.state.lock().unwrap().0 += 1;
    b.changed.notify_all();
    b.wait(|s| s.1);
}

unsafe extern "C" fn releasing_signal(user: *mut c_void, _json: *const c_char, _len: usize) {
    // SAFETY: user_data is the test's `Blocking`, alive until the calls are destroyed.
    unsafe { &*(user as *const Blocking) }.release();
}

#[test]
fn a_blocking_callback_holds_up_only_its_own_call() {
    let e = engine(None);
    let blocking = Blocking::default();
    let new_call = |f: unsafe extern "C" fn(*mut c_void, *const c_char, usize)| {
        let cb = SottoCallbacks {
            user_data: &blocking as *const Blocking as *mut c_void,
            on_signal: Some(f),
            on_event: None,
        };
        let mut c = ptr::null_mut();
        // SAFETY: a live engine, valid config, callbacks and out-pointer.
        let st = unsafe { sotto_call_new(e, &loopback(), true, cb, &mut c) };
        assert_eq!(st, SottoStatus::Ok, "{}", last_error());
        // SAFETY: a live call.
        assert_eq!(unsafe { sotto_call_place(c) }, SottoStatus::Ok);
        c
    };
    // As many calls stuck in their callback as the SDK has threads.
    let stuck = [new_call(blocking_signal), new_call(blocking_signal)];
    assert!(blocking.wait(|s| s.0 == 2), "both callbacks entered");
    // A third call still gets its offer out, which releases the others.
    // Before, it waited for them (here, for their hang guard).
    let free = new_call(releasing_signal);
    let not_held_up = blocking.wait(|s| s.1);
    blocking.release();
    for c in stuck.into_iter().chain([free]) {
        // SAFETY: live calls, destroyed once, from a non-SDK thread.
        assert_eq!(unsafe { sotto_call_destroy(c) }, SottoStatus::Ok);
    }
    destroy_engine(e);
    assert!(
        not_held_up,
        "the third call's offer waited for the others' callbacks"
    );
}

/// `loopback()` with video.
fn with_video() -> SottoCallConfig {
    let mut c = loopback();
    c.video = true;
    c
}

#[test]
fn video_goes_both_ways_through_the_c_api() {
    use sotto_engine::video::VideoFrame;
    let (alice, bob) = (Side::default(), Side::default());
    let p = pair_with(&alice, &bob, &with_video());
    go_secure(&p);
    let (w, h) = (160u32, 120u32);
    let mut out = vec![0u8; (w * h * 3 / 2) as usize];
    let mut got = [Vec::new(), Vec::new()];
    // 3 s of camera at 30 frames a second each way, screens read as often.
    for n in 0..90 {
        let frame = VideoFrame::test_pattern(w, h, n).unwrap();
        for (i, call) in [p.a, p.b].into_iter().enumerate() {
            let (mut fw, mut fh, mut fresh) = (0, 0, false);
            // SAFETY: a live call; buffers of the sizes passed.
            unsafe {
                assert_eq!(
                    sotto_call_push_video(call, w, h, frame.data().as_ptr(), frame.data().len()),
                    SottoStatus::Ok,
                    "{}",
                    last_error()
                );
                assert_eq!(
                    sotto_call_pull_video(
                        call,
                        out.as_mut_ptr(),
                        out.len(),
                        &mut fw,
                        &mut fh,
                        &mut fresh
                    ),
                    SottoStatus::Ok,
                    "{}",
                    last_error()
                );
            }
            if fresh {
                assert_eq!((fw, fh), (w, h));
                got[i].push(VideoFrame::new(fw, fh, out.clone()).unwrap());
            }
        }
        std::thread::sleep(Duration::from_millis(33));
    }
    for (i, frames) in got.iter().enumerate() {
        // Each frame shown is one of the frames sent (the best match among them).
        let psnr: Vec<f64> = frames
            .iter()
            .map(|f| {
                (0..90)
                    .map(|n| VideoFrame::test_pattern(w, h, n).unwrap().psnr(f).unwrap())
                    .fold(0.0, f64::max)
            })
            .collect();
        println!("side {i}: {} frames, PSNR {psnr:.1?}", frames.len());
        assert!(frames.len() >= 30, "side {i}: {} frames", frames.len());
        assert!(psnr.iter().all(|&q| q >= 30.0), "side {i}: {psnr:?}");
    }
    // A buffer too small is refused with the size it needs.
    let mut small = [0u8; 16];
    let (mut fw, mut fh, mut fresh) = (0, 0, false);
    let frame = VideoFrame::test_pattern(w, h, 0).unwrap();
    // SAFETY: a live call; buffers of the sizes passed.
    unsafe {
        for _ in 0..50 {
            let st = sotto_call_push_video(p.a, w, h, frame.data().as_ptr(), frame.data().len());
            assert_eq!(st, SottoStatus::Ok);
            std::thread::sleep(Duration::from_millis(33));
            let st = sotto_call_pull_video(
                p.b,
                small.as_mut_ptr(),
                small.len(),
                &mut fw,
                &mut fh,
                &mut fresh,
            );
            if st != SottoStatus::Ok {
                assert_eq!(st, SottoStatus::InvalidArgument);
                assert!(last_error().contains("28800 bytes"), "{}", last_error());
                break;
            }
            assert!(!fresh);
        }
        // Odd sizes and short buffers are refused.
        let st = sotto_call_push_video(p.a, 161, h, frame.data().as_ptr(), frame.data().len());
        assert_eq!(st, SottoStatus::InvalidArgument);
        let st = sotto_call_push_video(p.a, w, h, frame.data().as_ptr(), 100);
        assert_eq!(st, SottoStatus::InvalidArgument);
        // And so are frames over 1920 x 1088 pixels.
        let big = vec![0u8; 2_000 * 2_000 * 3 / 2];
        let st = sotto_call_push_video(p.a, 2_000, 2_000, big.as_ptr(), big.len());
        assert_eq!(st, SottoStatus::InvalidArgument);
        assert!(
            last_error().contains("scale the camera"),
            "{}",
            last_error()
        );
    }
}

#[test]
fn video_calls_need_video_in_the_config() {
    let (alice, bob) = (Side::default(), Side::default());
    let p = pair(&alice, &bob);
    let frame = [0u8; 6];
    let mut out = [0u8; 6];
    let (mut fw, mut fh, mut fresh) = (0, 0, false);
    // SAFETY: a live call; buffers of the sizes passed.
    unsafe {
        assert_eq!(
            sotto_call_push_video(p.a, 2, 2, frame.as_ptr(), frame.len()),
            SottoStatus::InvalidArgument
        );
        assert!(last_error().contains("video is off"));
        assert_eq!(
            sotto_call_pull_video(
                p.a,
                out.as_mut_ptr(),
                out.len(),
                &mut fw,
                &mut fh,
                &mut fresh
            ),
            SottoStatus::InvalidArgument
        );
    }
    let mut bad = with_video();
    bad.video_max_bitrate = 5;
    let e = engine(None);
    let mut c = ptr::null_mut();
    // SAFETY: a live engine; valid config, callbacks and out-pointer.
    let st = unsafe { sotto_call_new(e, &bad, true, callbacks(&alice), &mut c) };
    assert_eq!(st, SottoStatus::InvalidArgument);
    assert!(
        last_error().contains("video_max_bitrate"),
        "{}",
        last_error()
    );
    destroy_engine(e);
}
