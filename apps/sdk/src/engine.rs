//! `SottoEngine`: the tokio runtime every call of the application runs on,
//! and the ZRTP retained-secret cache those calls share.

use crate::error::{Error, SottoStatus, guard};
use sotto_engine::zrtp::{CacheError, ZidCache};
use std::ffi::{CStr, c_char};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::runtime::Runtime;

/// Worker threads of the runtime: the SDK's callback threads.
const WORKERS: usize = 2;

/// How an engine is set up. Start from `sotto_engine_config_default`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SottoEngineConfig {
    /// Path of the ZRTP cache file (our ZID and the secrets retained with
    /// each peer; SQLite, created with mode 0600 when the engine is
    /// created), NUL-terminated UTF-8. Calls read it when they are created
    /// and write it back when they reach Secure, after `sotto_call_confirm_sas`
    /// and when they end. NULL: a cache in memory for the engine's lifetime
    /// (no key continuity across engines). Use one file per engine: two
    /// engines saving to one file overwrite each other's secrets.
    pub zid_cache_path: *const c_char,
}

/// The retained-secret cache shared by an engine's calls, and its file.
#[derive(Debug)]
pub(crate) struct ZidStore {
    cache: Mutex<ZidCache>,
    path: Option<PathBuf>,
}

impl ZidStore {
    /// Loads `path` (a new cache if there is no file) and writes it back at
    /// once, so that our ZID is fixed from now on and an unwritable path is
    /// reported here rather than after the first call.
    fn open(path: Option<PathBuf>) -> Result<Self, CacheError> {
        let cache = match &path {
            Some(p) => {
                let c = ZidCache::load(p)?;
                c.save(p)?;
                c
            }
            None => ZidCache::new(),
        };
        Ok(Self {
            cache: Mutex::new(cache),
            path,
        })
    }

    fn lock(&self) -> MutexGuard<'_, ZidCache> {
        // Every change to the cache is a single `merge_changes`.
        crate::lock(&self.cache)
    }

    /// A copy for a new call.
    pub(crate) fn snapshot(&self) -> ZidCache {
        self.lock().clone()
    }

    /// Takes in what one call changed since `base` (its previous snapshot)
    /// and, if anything did, saves the file. Other calls' updates since
    /// then are kept (see `ZidCache::merge_changes`).
    pub(crate) fn commit(&self, base: &ZidCache, updated: &ZidCache) -> Result<(), CacheError> {
        let mut c = self.lock();
        if !c.merge_changes(base, updated) {
            return Ok(());
        }
        match &self.path {
            // Under the lock, so that saves land in the order of the merges.
            Some(p) => c.save(p),
            None => Ok(()),
        }
    }
}

/// An engine: owns the runtime (threads named `sotto-sdk`) that runs every
/// call created from it, and their shared ZID cache. Opaque to C.
pub struct SottoEngine {
    pub(crate) rt: Arc<Runtime>,
    pub(crate) zid: Arc<ZidStore>,
}

/// Fails when called on a runtime thread (inside an SDK callback), where
/// blocking would deadlock or panic.
pub(crate) fn not_on_runtime(what: &'static str) -> Result<(), Error> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Err(Error::WrongThread(what)),
        Err(_) => Ok(()),
    }
}

/// Fills `*out` with the defaults (an in-memory ZID cache).
///
/// # Safety
/// `out` must be NULL or point to a writable `SottoEngineConfig`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sotto_engine_config_default(out: *mut SottoEngineConfig) -> SottoStatus {
    guard(|| {
        if out.is_null() {
            return Err(Error::Null("out"));
        }
        let c = SottoEngineConfig {
            zid_cache_path: std::ptr::null(),
        };
        // SAFETY: non-null and writable by contract.
        unsafe { out.write(c) };
        Ok(())
    })
}

/// Creates an engine and stores it in `*out` (NULL there on failure);
/// `config` may be NULL for the
/// defaults. An engine is one ZRTP identity (ZID): create one per device
/// or user, not per call (two calls of one engine cannot call each other:
/// ZRTP refuses a peer with its own ZID). A ZID cache file that cannot be read or written gives
/// `SOTTO_STATUS_IO` (a damaged file is not replaced: move it away to
/// start over, which loses key continuity with every peer). Call from any
/// application thread except an SDK callback.
///
/// # Safety
/// `config` must be NULL or a valid config whose strings are NUL-terminated;
/// `out` NULL or writable storage for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sotto_engine_new(
    config: *const SottoEngineConfig,
    out: *mut *mut SottoEngine,
) -> SottoStatus {
    guard(|| {
        if out.is_null() {
            return Err(Error::Null("out"));
        }
        // SAFETY: non-null and writable by contract. NULL until it succeeds.
        unsafe { out.write(std::ptr::null_mut()) };
        not_on_runtime("sotto_engine_new")?;
        // SAFETY: NULL or a valid config by contract.
        let path = match unsafe { config.as_ref() } {
            Some(c) if !c.zid_cache_path.is_null() => {
                // SAFETY: non-null strings in the config are NUL-terminated.
                let s = unsafe { CStr::from_ptr(c.zid_cache_path) };
                let s = s
                    .to_str()
                    .map_err(|_| Error::Invalid("zid_cache_path is not UTF-8".into()))?;
                if s.is_empty() {
                    return Err(Error::Invalid("zid_cache_path is empty".into()));
                }
                Some(PathBuf::from(s))
            }
            _ => None,
        };
        let zid = ZidStore::open(path).map_err(|e| Error::Io(e.to_string()))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name("sotto-sdk")
            .enable_all()
            .build()
            .map_err(|e| Error::Io(format!("starting the runtime: {e}")))?;
        let e = Box::new(SottoEngine {
            rt: Arc::new(rt),
            zid: Arc::new(zid),
        });
        // SAFETY: `out` is non-null and, by the contract above, writable.
        unsafe { out.write(Box::into_raw(e)) };
        Ok(())
    })
}

/// Destroys an engine. Calls created from it keep running (they share the
/// runtime and the ZID cache) until each is destroyed. NULL is accepted
/// and does nothing. Must not be called from an SDK callback
/// (`SOTTO_STATUS_WRONG_THREAD`).
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
