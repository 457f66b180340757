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

/// Everything the workers share.
#[derive(Debug)]
pub struct Shared {
    credentials: RwLock<Arc<Credentials>>,
    /// Nonce minting and checking (one key for all workers).
    pub nonces: Nonces,
    /// Allocation quotas.
    pub quotas: Quotas,
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
            reservations: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(0),
        }
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
