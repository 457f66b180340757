//! `sotto_call_destroy` while one of the call's callbacks is still running
//! and uses the call's controls, as the header allows: the call must stay
//! allocated until its last callback has returned. Freed memory is
//! overwritten in this test binary, so a control that reads a freed call
//! crashes instead of reading stale bytes that happen to look right.

use sotto::call::*;
use sotto::engine::*;
use sotto::{SottoEvent, SottoStatus};
use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::{c_char, c_void};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// The system allocator, with freed blocks overwritten first.
struct Poisoning;

// SAFETY: defers to `System`; only writes inside a block being freed.
unsafe impl GlobalAlloc for Poisoning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: `p` is a live block of `layout.size()` bytes until freed.
        unsafe {
            ptr::write_bytes(p, 0xA5, layout.size());
            System.dealloc(p, layout);
        }
    }
}

#[global_allocator]
static ALLOC: Poisoning = Poisoning;

#[derive(Default)]
struct Shared {
    call: AtomicPtr<SottoCall>,
    /// Set by the main thread just before it calls `sotto_call_destroy`.
    destroying: Mutex<bool>,
    started: Condvar,
    /// What `sotto_call_set_muted` returned inside the callback.
    muted: Mutex<Option<SottoStatus>>,
}

unsafe extern "C" fn on_signal(user: *mut c_void, _json: *const c_char, _len: usize) {
    // SAFETY: user_data is the test's `Shared`, alive past the destroy.
    let s = unsafe { &*(user as *const Shared) };
    let mut once = s.muted.lock().unwrap();
    if once.is_some() {
        return;
    }
    // Wait until the main thread is in `sotto_call_destroy`, then give it
    // time to close the call (a hang guard and a head start, not timing
    // that the assertion depends on).
    let g = s.destroying.lock().unwrap();
    let (g, _) = s
        .started
        .wait_timeout_while(g, Duration::from_secs(30), |d| !*d)
        .unwrap();
    drop(g);
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: the call is being destroyed, and destroy waits for this
    // callback: the call must still be there.
    *once = Some(unsafe { sotto_call_set_muted(s.call.load(Ordering::SeqCst), true) });
}

unsafe extern "C" fn on_event(_user: *mut c_void, _e: *const SottoEvent) {}

#[test]
fn a_control_used_by_a_callback_during_destroy_finds_the_call_closed_not_freed() {
    let shared = Shared::default();
    let mut engine = ptr::null_mut();
    let mut ecfg = std::mem::MaybeUninit::uninit();
    let mut ccfg = std::mem::MaybeUninit::uninit();
    let mut call = ptr::null_mut();
    // SAFETY: writable storage for each out-parameter; `shared` outlives
    // the call, which is destroyed below.
    unsafe {
        assert_eq!(
            sotto_engine_config_default(ecfg.as_mut_ptr()),
            SottoStatus::Ok
        );
        assert_eq!(
            sotto_engine_new(ecfg.as_ptr(), &mut engine),
            SottoStatus::Ok
        );
        assert_eq!(
            sotto_call_config_default(ccfg.as_mut_ptr()),
            SottoStatus::Ok
        );
        let mut ccfg = ccfg.assume_init();
        ccfg.bind_address = c"127.0.0.1:0".as_ptr();
        let callbacks = SottoCallbacks {
            user_data: &shared as *const Shared as *mut c_void,
            on_signal: Some(on_signal),
            on_event: Some(on_event),
        };
        assert_eq!(
            sotto_call_new(engine, &ccfg, true, callbacks, &mut call),
            SottoStatus::Ok
        );
        shared.call.store(call, Ordering::SeqCst);
        // The offer reaches `on_signal`, which then waits for the destroy.
        assert_eq!(sotto_call_place(call), SottoStatus::Ok);
        *shared.destroying.lock().unwrap() = true;
        shared.started.notify_all();
        assert_eq!(sotto_call_destroy(call), SottoStatus::Ok);
        assert_eq!(sotto_engine_destroy(engine), SottoStatus::Ok);
    }
    let muted = shared
        .muted
        .lock()
        .unwrap()
        .expect("the offer was signalled");
    // The queue is closed once destroy has begun; on a slow machine the
    // control may still have come first.
    assert!(
        matches!(muted, SottoStatus::Ended | SottoStatus::Ok),
        "{muted:?}"
    );
}
