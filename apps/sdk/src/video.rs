//! The call's camera and screen for the C API: the application hands in
//! its newest camera frame and takes the newest received one. Each side
//! is one slot: a frame not taken by the time the next comes is replaced
//! (a late picture is worth less than the current one), so nothing
//! queues up. Unlike audio, video does not run on a real-time thread, so
//! each slot is a mutex held only to move a frame in or out.

use crate::lock;
use sotto_engine::call::driver::VideoPort;
use sotto_engine::video::VideoFrame;
use std::sync::{Arc, Mutex};

type Slot = Arc<Mutex<Option<VideoFrame>>>;

/// The application's side: where it puts camera frames and finds frames to show.
#[derive(Default)]
pub(crate) struct AppVideo {
    camera: Slot,
    screen: Slot,
}

impl AppVideo {
    /// The driver's side of the same slots.
    pub(crate) fn port(&self) -> Box<dyn VideoPort> {
        Box::new(Port {
            camera: Arc::clone(&self.camera),
            screen: Arc::clone(&self.screen),
        })
    }

    /// The newest camera frame, replacing one the call has not taken yet.
    pub(crate) fn push(&self, frame: VideoFrame) {
        *lock(&self.camera) = Some(frame);
    }

    /// The newest received frame, if `fits` accepts its size; a frame
    /// that does not fit stays for the next try.
    pub(crate) fn take_if<E>(
        &self,
        fits: impl FnOnce(&VideoFrame) -> Result<(), E>,
    ) -> Result<Option<VideoFrame>, E> {
        let mut screen = lock(&self.screen);
        match screen.as_ref() {
            Some(f) => fits(f).map(|()| screen.take()),
            None => Ok(None),
        }
    }
}

struct Port {
    camera: Slot,
    screen: Slot,
}

impl VideoPort for Port {
    fn capture(&mut self) -> Option<VideoFrame> {
        lock(&self.camera).take()
    }

    fn render(&mut self, frame: VideoFrame) {
        *lock(&self.screen) = Some(frame);
    }
}
