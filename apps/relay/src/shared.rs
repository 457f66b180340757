//! State shared by all workers, touched only on the control path
//! (authentication and allocation create/delete), never per relayed packet.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::auth::{Credentials, Nonces};

/// Allocation quotas across all workers.
#[derive(Debug)]
pub struct Quotas {
    max_total: usize,
    max_per_user: usize,
    state: Mutex<QuotaState>,
}

#[derive(Debug, Default)]
struct QuotaState {
    total: usize,
    per_user: HashMap<Box<str>, usize>,
}

impl Quotas {
    /// At most `max_total` allocations, `max_per_user` per username
    /// (0 means unlimited).
    pub fn new(max_total: usize, max_per_user: usize) -> Self {
        Quotas {
            max_total,
            max_per_user,
            state: Mutex::new(QuotaState::default()),
        }
    }

    /// Takes one slot for `user`; false if a quota is reached.
    pub fn acquire(&self, user: &str) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if self.max_total != 0 && s.total >= self.max_total {
            return false;
        }
        let used = s.per_user.get(user).copied().unwrap_or(0);
        if self.max_per_user != 0 && used >= self.max_per_user {
            return false;
        }
        s.total += 1;
        *s.per_user.entry(user.into()).or_insert(0) += 1;
        true
    }

    /// Returns the slot taken by [`Quotas::acquire`].
    pub fn release(&self, user: &str) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_user.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                s.per_user.remove(user);
            }
        }
    }

    /// Allocations currently held across all workers.
    pub fn total(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

/// A token bucket in bytes: holds at most one second of `rate`.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    /// Bytes that may be spent now.
    pub(crate) tokens: u64,
    /// When tokens were last added.
    pub(crate) last: Instant,
}

impl Bucket {
    /// A full bucket at `now`.
    pub(crate) fn full(rate: u64, now: Instant) -> Self {
        Bucket {
            tokens: rate,
            last: now,
        }
    }

    /// Adds what `rate` earned since the last refill.
    pub(crate) fn refill(&mut self, now: Instant, rate: u64) {
        let dt = now.saturating_duration_since(self.last);
        let add = (dt.as_nanos() * u128::from(rate) / 1_000_000_000) as u64;
        if add > 0 {
            self.tokens = (self.tokens + add).min(rate);
            self.last = now;
        }
    }

    /// Takes `n` bytes if there are that many (always, at rate 0: no cap).
    pub(crate) fn take(&mut self, now: Instant, rate: u64, n: usize) -> bool {
        if rate == 0 {
            return true;
        }
        self.refill(now, rate);
        let n = n as u64;
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// The server-wide bandwidth cap: one bucket for every core, UDP workers
/// and TCP/TLS connections alike. Cores take it in slices (see
/// [`Bandwidth::take`]), so the lock is taken about once per slice rather
/// than once per packet.
#[derive(Debug)]
pub struct Bandwidth {
    rate: u64,
    bucket: Mutex<Option<Bucket>>,
}

impl Bandwidth {
    /// A cap of `rate` bytes per second (0 = no cap).
    pub fn new(rate: u64) -> Self {
        Bandwidth {
            rate,
            bucket: Mutex::new(None),
        }
    }

    /// The cap in bytes per second (0 = no cap).
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Takes `want` bytes, or all that is left if that is at least `need`
    /// (`need <= want`); returns how many were taken, 0 if fewer than
    /// `need` were left. The bucket starts full, as each allocation's does.
    pub fn take(&self, now: Instant, need: u64, want: u64) -> u64 {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let b = b.get_or_insert_with(|| Bucket::full(self.rate, now));
        b.refill(now, self.rate);
        if b.tokens < need {
            return 0;
        }
        let got = want.min(b.tokens);
        b.tokens -= got;
        got
    }
}

/// Everything the workers share.
#[derive(Debug)]
pub struct Shared {
    credentials: RwLock<Arc<Credentials>>,
    /// Nonce minting and checking (one key for all workers).
    pub nonces: Nonces,
    /// Allocation quotas.
    pub quotas: Quotas,
    /// The server-wide bandwidth cap (none unless set with
    /// [`Shared::with_bps_total`]).
    pub bandwidth: Bandwidth,
    reservations: Mutex<HashMap<[u8; 8], Instant>>,
    next_token: AtomicU64,
}

/// How long a RESERVATION-TOKEN stays redeemable.
const TOKEN_LIFETIME: Duration = Duration::from_secs(30);

impl Shared {
    /// Shared state with the given credentials, nonce key and quotas.
    pub fn new(credentials: Credentials, nonces: Nonces, quotas: Quotas) -> Self {
        Shared {
            credentials: RwLock::new(Arc::new(credentials)),
            nonces,
            quotas,
            bandwidth: Bandwidth::new(0),
            reservations: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(0),
        }
    }

    /// The same, with a server-wide cap of `bps` bytes per second shared
    /// by every core (0 = no cap).
    pub fn with_bps_total(mut self, bps: u64) -> Self {
        self.bandwidth = Bandwidth::new(bps);
        self
    }

    /// A fresh, unguessable RESERVATION-TOKEN redeemable until `now + 30 s`.
    pub fn reserve(&self, now: Instant) -> [u8; 8] {
        let n = self.next_token.fetch_add(1, Ordering::Relaxed);
        let token = self.nonces.token(n);
        let mut m = self.reservations.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, exp| *exp > now);
        m.insert(token, now + TOKEN_LIFETIME);
        token
    }

    /// Redeems a token once; false if unknown or expired.
    pub fn redeem(&self, token: &[u8; 8], now: Instant) -> bool {
        let mut m = self.reservations.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(token).is_some_and(|exp| exp > now)
    }

    /// The current credential store.
    pub fn credentials(&self) -> Arc<Credentials> {
        self.credentials
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Swaps in a new credential store (SIGHUP reload).
    pub fn replace_credentials(&self, credentials: Credentials) {
        *self.credentials.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(credentials);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_count_per_user_and_total() {
        let q = Quotas::new(3, 2);
        assert!(q.acquire("a"));
        assert!(q.acquire("a"));
        assert!(!q.acquire("a"));
        assert!(q.acquire("b"));
        assert!(!q.acquire("c"));
        q.release("a");
        assert!(q.acquire("c"));
        assert_eq!(q.total(), 3);
    }
}
