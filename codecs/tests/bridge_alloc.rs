//! The device rate bridge runs on a call's audio tick, every 10 ms (the
//! softphone's sound cards, the SDK's audio port): in steady state it must
//! not allocate. A counting allocator (this test binary only) checks that
//! no conversion after the first allocates.
// The counting allocator needs `unsafe impl GlobalAlloc`; nothing else here.
#![allow(unsafe_code)]

use sotto_codecs::bridge::RateBridge;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// Allocations made by this thread (other test threads do not count).
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the slot may be gone while the thread exits.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// The system allocator, counting allocations per thread.
struct Counting;

// SAFETY: every call is forwarded unchanged to `System`; counting touches
// only a const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(p, layout, new_size) }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(p, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn a_bridge_tick_allocates_nothing() {
    for (from, to) in [
        (44_100, 48_000),
        (48_000, 44_100),
        (32_000, 48_000),
        (16_000, 48_000),
        (48_000, 8_000),
    ] {
        let mut bridge = RateBridge::new(from, to).unwrap().expect("rates differ");
        let tone = |i: usize| ((i as f32 * 0.07).sin() * 8_000.0) as i16;
        // The first tick may settle anything left lazy.
        let mut i = 0;
        let mut tick = |bridge: &mut RateBridge| {
            for s in bridge.frame() {
                *s = tone(i);
                i += 1;
            }
            bridge.convert().len()
        };
        assert_eq!(tick(&mut bridge), to as usize / 100);
        let before = allocations();
        let mut out = 0;
        for _ in 0..100 {
            out += tick(&mut bridge);
        }
        let made = allocations() - before;
        assert_eq!(out, 100 * to as usize / 100);
        assert_eq!(
            made, 0,
            "{from} -> {to} Hz: {made} allocations in 100 ticks"
        );
    }
    // The counter counts: one Vec is one allocation.
    let before = allocations();
    drop(std::hint::black_box(vec![0u8; 480]));
    assert_eq!(allocations() - before, 1);
}
