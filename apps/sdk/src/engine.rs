//! `SottoEngine`: the tokio runtime every call of the application runs on.

use crate::error::{Error, SottoStatus, guard};
use std::sync::Arc;
use tokio::runtime::Runtime;

/// Worker threads of the runtime: the SDK's callback threads.
const WORKERS: usize = 2;

/// An engine: owns the runtime (threads named `sotto-sdk`) that runs every
/// call created from it. Opaque to C.
pub struct SottoEngine {
    pub(crate) rt: Arc<Runtime>,
}

/// Fails when called on a runtime thread (inside an SDK callback), where
/// blocking would deadlock or panic.
pub(crate) fn not_on_runtime(what: &'static str) -> Result<(), Error> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Err(Error::WrongThread(what)),
        Err(_) => Ok(()),
    }
}

/// Creates an engine and stores it in `*out`. Call from any application
/// thread except an SDK callback.
///
/// # Safety
/// `out` must be NULL or point to writable storage for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sotto_engine_new(out: *mut *mut SottoEngine) -> SottoStatus {
    guard(|| {
        if out.is_null() {
            return Err(Error::Null("out"));
        }
        not_on_runtime("sotto_engine_new")?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name("sotto-sdk")
            .enable_all()
            .build()
            .map_err(|e| Error::Io(format!("starting the runtime: {e}")))?;
        let e = Box::new(SottoEngine { rt: Arc::new(rt) });
        // SAFETY: `out` is non-null and, by the contract above, writable.
        unsafe { out.write(Box::into_raw(e)) };
        Ok(())
    })
}

/// Destroys an engine. Calls created from it keep running (they share the
/// runtime) until each is destroyed. NULL is accepted and does nothing.
/// Must not be called from an SDK callback (`SOTTO_STATUS_WRONG_THREAD`).
///
/// # Safety
/// `engine` must be NULL or a pointer from `sotto_engine_new` not yet destroyed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sotto_engine_destroy(engine: *mut SottoEngine) -> SottoStatus {
    guard(|| {
        if engine.is_null() {
            return Ok(());
        }
        not_on_runtime("sotto_engine_destroy")?;
        // SAFETY: by the contract, `engine` came from Box::into_raw in
        // sotto_engine_new and is destroyed only once.
        drop(unsafe { Box::from_raw(engine) });
        Ok(())
    })
}
