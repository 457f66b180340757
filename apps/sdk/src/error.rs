//! Status codes, the thread-local last error message, and the guard that
//! keeps panics from crossing the C boundary.

use std::cell::{Cell, RefCell};
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What every fallible `sotto_*` function returns.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SottoStatus {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// An argument was out of range or malformed (bad address, bad UTF-8, wrong frame size).
    InvalidArgument = 2,
    /// The operation does not fit the call (answer or decline an outgoing
    /// call, place an incoming one).
    WrongState = 3,
    /// A signalling message could not be decoded.
    BadSignal = 4,
    /// The call's command queue is full, or another thread is pushing (or
    /// pulling) audio on this call right now; retry later.
    Busy = 5,
    /// The call has ended (its `SOTTO_EVENT_KIND_ENDED` event is being or
    /// has been delivered) or is being destroyed: controls have no effect
    /// any more; only `sotto_call_destroy` is useful now.
    Ended = 6,
    /// A socket could not be bound, or the runtime could not start.
    Io = 7,
    /// Called from an SDK callback thread where blocking is not allowed.
    WrongThread = 8,
    /// A bug inside the SDK panicked; the panic was caught at the boundary.
    Panic = 9,
}

/// Errors of the SDK, each mapped to a [`SottoStatus`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// See [`SottoStatus::NullArgument`].
    #[error("argument `{0}` is NULL")]
    Null(&'static str),
    /// See [`SottoStatus::InvalidArgument`].
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// See [`SottoStatus::WrongState`].
    #[error("{0}")]
    State(&'static str),
    /// See [`SottoStatus::BadSignal`].
    #[error("bad signalling message: {0}")]
    BadSignal(String),
    /// See [`SottoStatus::Busy`].
    #[error("command queue full")]
    Busy,
    /// See [`SottoStatus::Busy`]: two threads used one audio direction at once.
    #[error("another thread is {0} audio on this call")]
    AudioBusy(&'static str),
    /// See [`SottoStatus::Ended`].
    #[error("the call has ended")]
    Ended,
    /// See [`SottoStatus::Io`].
    #[error("{0}")]
    Io(String),
    /// See [`SottoStatus::WrongThread`].
    #[error("{0} must not be called from an SDK callback")]
    WrongThread(&'static str),
}

impl Error {
    fn status(&self) -> SottoStatus {
        match self {
            Error::Null(_) => SottoStatus::NullArgument,
            Error::Invalid(_) => SottoStatus::InvalidArgument,
            Error::State(_) => SottoStatus::WrongState,
            Error::BadSignal(_) => SottoStatus::BadSignal,
            Error::Busy | Error::AudioBusy(_) => SottoStatus::Busy,
            Error::Ended => SottoStatus::Ended,
            Error::Io(_) => SottoStatus::Io,
            Error::WrongThread(_) => SottoStatus::WrongThread,
        }
    }
}

thread_local! {
    /// The message of the last error on this thread. Kept, not freed, when
    /// a later call succeeds ([`HAS_ERROR`] is cleared instead), so that the
    /// success path never allocates or frees: the audio calls promise that.
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
    /// Whether the last `sotto_*` call on this thread failed.
    static HAS_ERROR: Cell<bool> = const { Cell::new(false) };
}

/// Sets the thread's last error. Does nothing once the thread's locals
/// are gone (a call from an `atexit` handler or a thread-local
/// destructor), where the message could not be read anyway: panicking
/// there would abort the process.
fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = Some(c));
    let _ = HAS_ERROR.try_with(|h| h.set(true));
}

/// Runs one entry point: clears the thread's last error, catches panics,
/// and turns errors into a status with a message.
pub fn guard(f: impl FnOnce() -> Result<(), Error>) -> SottoStatus {
    let _ = HAS_ERROR.try_with(|h| h.set(false));
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => SottoStatus::Ok,
        Ok(Err(e)) => {
            set_last_error(&e.to_string());
            e.status()
        }
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            set_last_error(&format!("internal panic: {what}"));
            SottoStatus::Panic
        }
    }
}

/// The message of the last failed `sotto_*` call on this thread, or an
/// empty string if the last call succeeded. Never NULL. The pointer stays
/// valid until the next `sotto_*` call on the same thread.
#[unsafe(no_mangle)]
pub extern "C" fn sotto_last_error_message() -> *const c_char {
    catch_unwind(|| {
        let failed = HAS_ERROR.try_with(Cell::get).unwrap_or(false);
        failed
            .then(|| LAST_ERROR.try_with(|e| e.borrow().as_ref().map(|c| c.as_ptr())))
            .and_then(|p| p.ok().flatten())
            .unwrap_or(c"".as_ptr())
    })
    .unwrap_or(c"internal panic".as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last() -> String {
        // SAFETY: the pointer is a live thread-local C string, read before
        // any other SDK call on this thread.
        unsafe { CStr::from_ptr(sotto_last_error_message()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn panics_and_errors_become_statuses_with_messages() {
        assert_eq!(
            guard(|| Err(Error::Null("call"))),
            SottoStatus::NullArgument
        );
        assert_eq!(last(), "argument `call` is NULL");
        assert_eq!(guard(|| Ok(())), SottoStatus::Ok);
        assert_eq!(last(), "");
        assert_eq!(guard(|| panic!("boom")), SottoStatus::Panic);
        assert!(last().contains("boom"), "{}", last());
    }
}
