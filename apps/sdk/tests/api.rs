//! The C API driven from Rust as a C program would: misuse is reported as
//! status codes, a declined call and a destroyed call end both sides, and
//! blocking functions refuse to run inside callbacks.

use sotto::call::*;
use sotto::engine::*;
use sotto::error::sotto_last_error_message;
use sotto::{SottoEndReason, SottoEvent, SottoEventKind, SottoStatus};
use std::ffi::{CStr, c_char, c_void};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Seen {
    kinds: Vec<SottoEventKind>,
    end: Option<SottoEndReason>,
    sas: Option<String>,
    stats_json: Option<String>,
    destroy_in_callback: Option<SottoStatus>,
}

/// One side's callback state; `peer` is where its signals are relayed.
#[derive(Default)]
struct Side {
    /// Held while relaying, so the test can stop relaying before a destroy.
    peer: Mutex<usize>,
    me: AtomicPtr<SottoCall>,
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
        SottoEventKind::SecureUp => s.sas = text(e.sas),
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

struct Pair {
    engine: *mut SottoEngine,
    a: *mut SottoCall,
    b: *mut SottoCall,
}

/// Alice (outgoing) and Bob (incoming) on loopback, relaying to each other.
fn pair(alice: &Side, bob: &Side) -> Pair {
    let mut engine = ptr::null_mut();
    let (mut a, mut b) = (ptr::null_mut(), ptr::null_mut());
    let cfg = loopback();
    // SAFETY: valid out-pointers, config and callbacks whose user data
    // outlives the calls.
    unsafe {
        assert_eq!(sotto_engine_new(&mut engine), SottoStatus::Ok);
        assert_eq!(
            sotto_call_new(engine, &cfg, true, callbacks(alice), &mut a),
            SottoStatus::Ok
        );
        assert_eq!(
            sotto_call_new(engine, &cfg, false, callbacks(bob), &mut b),
            SottoStatus::Ok
        );
    }
    for (side, me, peer) in [(alice, a, b), (bob, b, a)] {
        side.me.store(me, Ordering::SeqCst);
        *side.peer.lock().unwrap() = peer as usize;
    }
    Pair { engine, a, b }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // SAFETY: live handles, destroyed once, from a non-SDK thread.
        unsafe {
            assert_eq!(sotto_call_destroy(self.a), SottoStatus::Ok);
            assert_eq!(sotto_call_destroy(self.b), SottoStatus::Ok);
            assert_eq!(sotto_engine_destroy(self.engine), SottoStatus::Ok);
        }
    }
}

#[test]
fn misuse_is_a_status_code() {
    let side = Side::default();
    let mut out = ptr::null_mut();
    let mut engine = ptr::null_mut();
    let mut frame = [0i16; SOTTO_FRAME_SAMPLES];
    // SAFETY: every pointer passed is NULL or valid.
    unsafe {
        assert_eq!(sotto_engine_new(ptr::null_mut()), SottoStatus::NullArgument);
        assert_eq!(sotto_engine_new(&mut engine), SottoStatus::Ok);
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
        let mut bad = loopback();
        bad.bind_address = c"not an address".as_ptr();
        assert_eq!(
            sotto_call_new(engine, &bad, true, cb, &mut out),
            SottoStatus::InvalidArgument
        );
        let mut relay = loopback();
        relay.relay_only = true;
        assert_eq!(
            sotto_call_new(engine, &relay, true, cb, &mut out),
            SottoStatus::InvalidArgument
        );
        assert!(last_error().contains("turn_server"), "{}", last_error());

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
    // Ended calls refuse controls once their task has stopped.
    for _ in 0..1000 {
        // SAFETY: a live (ended) call.
        match unsafe { sotto_call_hang_up(p.a) } {
            SottoStatus::Ended => return,
            SottoStatus::Ok => std::thread::sleep(Duration::from_millis(10)),
            other => panic!("{other:?}"),
        }
    }
    panic!("ended call still takes commands");
}
