//! Long-term credentials: a users file, TURN REST ephemeral credentials
//! (coturn's `use-auth-secret`), and stateless expiring nonces.

use std::collections::HashMap;
use std::net::IpAddr;

use base64::Engine as _;
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::stun::{hmac_sha1, hmac_sha256};

/// The long-term key `MD5(username ":" realm ":" password)` (RFC 8489 §9.2.2).
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct Key(pub [u8; 16]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// Derives the key from username, realm and password.
    pub fn derive(username: &str, realm: &str, password: &str) -> Self {
        let mut h = Md5::new();
        h.update(username.as_bytes());
        h.update(b":");
        h.update(realm.as_bytes());
        h.update(b":");
        h.update(password.as_bytes());
        Key(h.finalize().into())
    }
}

/// Errors reading a users file.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// A line is not `user:password` or `user:0x<32 hex digits>`.
    #[error("users file line {0}: expected user:password or user:0x<md5 key>")]
    BadLine(usize),
}

/// What a username resolves to.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// One candidate key per matching secret (several during rotation).
    pub keys: Vec<Key>,
    /// Unix time after which REST credentials stop working (`None` for
    /// static users).
    pub expires_unix: Option<u64>,
}

/// The credential store: static users plus REST shared secrets.
#[derive(Default)]
pub struct Credentials {
    users: HashMap<String, Key>,
    secrets: Vec<zeroize::Zeroizing<String>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("users", &self.users.len())
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Credentials {
    /// An empty store (nobody can authenticate).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a static user.
    pub fn add_user(&mut self, username: &str, realm: &str, password: &str) {
        self.users
            .insert(username.to_owned(), Key::derive(username, realm, password));
    }

    /// Adds a TURN REST shared secret; the first is tried first.
    pub fn add_secret(&mut self, secret: &str) {
        self.secrets
            .push(zeroize::Zeroizing::new(secret.to_owned()));
    }

    /// Number of static users and of secrets.
    pub fn counts(&self) -> (usize, usize) {
        (self.users.len(), self.secrets.len())
    }

    /// Loads a users file in coturn's format: `user:password` or
    /// `user:0x<hex md5 key>` per line; `#` starts a comment.
    pub fn load_users(&mut self, text: &str, realm: &str) -> Result<usize, CredentialError> {
        let mut n = 0;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, pass) = line
                .split_once(':')
                .filter(|(u, _)| !u.is_empty())
                .ok_or(CredentialError::BadLine(i + 1))?;
            if let Some(hex) = pass.strip_prefix("0x") {
                let mut k = [0u8; 16];
                if hex.len() != 32 {
                    return Err(CredentialError::BadLine(i + 1));
                }
                for (j, b) in k.iter_mut().enumerate() {
                    *b = u8::from_str_radix(&hex[2 * j..2 * j + 2], 16)
                        .map_err(|_| CredentialError::BadLine(i + 1))?;
                }
                self.users.insert(user.to_owned(), Key(k));
            } else {
                self.add_user(user, realm, pass);
            }
            n += 1;
        }
        Ok(n)
    }

    /// Resolves a username to candidate keys. REST usernames are
    /// `<unix expiry>:<user>` (or just `<unix expiry>`); the password is
    /// `base64(HMAC-SHA1(secret, username))`, exactly as coturn computes it.
    pub fn resolve(&self, username: &str, realm: &str) -> Option<Resolved> {
        if let Some(k) = self.users.get(username) {
            return Some(Resolved {
                keys: vec![k.clone()],
                expires_unix: None,
            });
        }
        if self.secrets.is_empty() {
            return None;
        }
        let expiry: u64 = username.split(':').next()?.parse().ok()?;
        let keys = self
            .secrets
            .iter()
            .map(|s| Key::derive(username, realm, &rest_password(s, username)))
            .collect();
        Some(Resolved {
            keys,
            expires_unix: Some(expiry),
        })
    }
}

/// The TURN REST password for `username` under `secret`.
pub fn rest_password(secret: &str, username: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(hmac_sha1(secret.as_bytes(), &[username.as_bytes()]))
}

/// Mints and checks stateless nonces: `hex(t) || hex(mac)` where `t` is
/// seconds since the relay's epoch and `mac` binds `t` to the client IP.
#[derive(Clone)]
pub struct Nonces {
    key: [u8; 32],
    lifetime_s: u64,
}

impl Drop for Nonces {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces")
            .field("lifetime_s", &self.lifetime_s)
            .finish()
    }
}

/// Outcome of a nonce check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Minted by us for this IP and not expired.
    Valid,
    /// Minted by us but too old (answer 438 Stale Nonce).
    Stale,
    /// Not ours or not for this IP.
    Invalid,
}

impl Nonces {
    /// Nonces keyed with `key` that live `lifetime_s` seconds.
    pub fn new(key: [u8; 32], lifetime_s: u64) -> Self {
        Nonces { key, lifetime_s }
    }

    fn mac(&self, t: u32, ip: IpAddr) -> [u8; 8] {
        let ipb = match ip {
            IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
            IpAddr::V6(v) => v.octets(),
        };
        let full = hmac_sha256(&self.key, &[&t.to_be_bytes(), &ipb]);
        let mut out = [0u8; 8];
        out.copy_from_slice(&full[..8]);
        out
    }

    /// An unguessable 8-byte token derived from a counter (RESERVATION-TOKEN).
    pub fn token(&self, n: u64) -> [u8; 8] {
        let full = hmac_sha256(&self.key, &[b"reservation", &n.to_be_bytes()]);
        let mut out = [0u8; 8];
        out.copy_from_slice(&full[..8]);
        out
    }

    /// A nonce minted at `secs` (since epoch) for `ip`.
    pub fn mint(&self, secs: u64, ip: IpAddr) -> String {
        let t = secs as u32;
        let mut s = format!("{t:08x}");
        for b in self.mac(t, ip) {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// Checks a nonce presented by `ip` at `secs`.
    pub fn check(&self, nonce: &str, secs: u64, ip: IpAddr) -> NonceCheck {
        if nonce.len() != 24 || !nonce.is_ascii() {
            return NonceCheck::Invalid;
        }
        let Ok(t) = u32::from_str_radix(&nonce[..8], 16) else {
            return NonceCheck::Invalid;
        };
        let mut mac = [0u8; 8];
        for (j, b) in mac.iter_mut().enumerate() {
            match u8::from_str_radix(&nonce[8 + 2 * j..10 + 2 * j], 16) {
                Ok(v) => *b = v,
                Err(_) => return NonceCheck::Invalid,
            }
        }
        if !bool::from(self.mac(t, ip).ct_eq(&mac)) {
            return NonceCheck::Invalid;
        }
        let age = (secs as u32).wrapping_sub(t);
        if u64::from(age) > self.lifetime_s {
            NonceCheck::Stale
        } else {
            NonceCheck::Valid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_term_key_matches_md5sum() {
        // Computed independently with `printf 'user:realm:pass' | md5sum`.
        let k = Key::derive("user", "realm", "pass");
        assert_eq!(
            k.0,
            [
                0x84, 0x93, 0xfb, 0xc5, 0x3b, 0xa5, 0x82, 0xfb, 0x4c, 0x04, 0x4c, 0x45, 0x6b, 0xdc,
                0x40, 0xeb
            ]
        );
    }

    #[test]
    fn rest_password_matches_coturn_formula() {
        // Value from `printf '1700000000:alice' | openssl dgst -sha1 -hmac s3cret -binary | base64`.
        assert_eq!(rest_password("s3cret", "1700000000:alice"), REST_VECTOR);
        let mut c = Credentials::new();
        c.add_secret("old");
        c.add_secret("s3cret");
        let r = c.resolve("1700000000:alice", "r").unwrap();
        assert_eq!(r.expires_unix, Some(1_700_000_000));
        assert_eq!(r.keys.len(), 2);
        assert_eq!(r.keys[1], Key::derive("1700000000:alice", "r", REST_VECTOR));
        assert!(c.resolve("alice", "r").is_none());
    }

    const REST_VECTOR: &str = "TtElzSjT0GdnTQ9xdcRNxx96yQs=";

    #[test]
    fn users_file_parses_and_rejects() {
        let mut c = Credentials::new();
        let n = c
            .load_users(
                "# comment\nalice:pw\nbob:0x8493fbc53ba582fb4c044c456bdc40eb\n",
                "realm",
            )
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            c.resolve("bob", "realm").unwrap().keys[0],
            Key::derive("user", "realm", "pass")
        );
        assert!(matches!(
            c.load_users("nocolon\n", "r"),
            Err(CredentialError::BadLine(1))
        ));
        assert!(matches!(
            c.load_users("x:0x12\n", "r"),
            Err(CredentialError::BadLine(1))
        ));
    }

    #[test]
    fn nonces_expire_and_bind_ip() {
        let n = Nonces::new([3; 32], 600);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let nonce = n.mint(100, ip);
        assert_eq!(n.check(&nonce, 100, ip), NonceCheck::Valid);
        assert_eq!(n.check(&nonce, 700, ip), NonceCheck::Valid);
        assert_eq!(n.check(&nonce, 701, ip), NonceCheck::Stale);
        assert_eq!(
            n.check(&nonce, 100, "192.0.2.8".parse().unwrap()),
            NonceCheck::Invalid
        );
        assert_eq!(n.check("zz", 100, ip), NonceCheck::Invalid);
        assert_eq!(
            n.check("é23456789012345678901234", 100, ip),
            NonceCheck::Invalid
        );
    }
}
