//! Long-term credentials: a users file, the signalling database, TURN REST
//! ephemeral credentials (coturn's `use-auth-secret`), stateless expiring
//! nonces, and the RFC 8489 §9.2 request check with PASSWORD-ALGORITHMS
//! (MD5 and SHA-256 keys) and its bid-down protection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Deref;

use base64::Engine as _;
use md5::{Digest, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::stun::{Builder, Integrity, Message, attr, hmac_sha1, hmac_sha256, password_algorithm};

/// A password algorithm of RFC 8489 §18.5: how the long-term key is
/// derived from `username:realm:password`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PasswordAlgorithm {
    /// MD5, the RFC 5389/5766 key (what clients without PASSWORD-ALGORITHM use).
    Md5,
    /// SHA-256.
    Sha256,
}

impl PasswordAlgorithm {
    /// What the relay offers in PASSWORD-ALGORITHMS, in this order.
    pub const OFFERED: [PasswordAlgorithm; 2] = [PasswordAlgorithm::Md5, PasswordAlgorithm::Sha256];

    /// The IANA number.
    pub fn number(self) -> u16 {
        match self {
            PasswordAlgorithm::Md5 => password_algorithm::MD5,
            PasswordAlgorithm::Sha256 => password_algorithm::SHA256,
        }
    }

    /// The algorithm with IANA number `n`, if supported.
    pub fn from_number(n: u16) -> Option<Self> {
        Self::OFFERED.into_iter().find(|a| a.number() == n)
    }
}

/// The bytes of a [`Key`]: 16 (MD5) or 32 (SHA-256), held inline so an
/// allocation's key needs no heap; dereferences to the key bytes.
#[derive(Clone, Zeroize, PartialEq, Eq)]
pub struct KeyBytes {
    buf: [u8; 32],
    len: u8,
}

impl Deref for KeyBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

/// A long-term key `H(username ":" realm ":" password)` (RFC 8489 §9.2.2),
/// H being MD5 or SHA-256.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct Key(pub KeyBytes);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// The MD5 key from username, realm and password.
    pub fn derive(username: &str, realm: &str, password: &str) -> Self {
        Self::derive_with(PasswordAlgorithm::Md5, username, realm, password)
    }

    /// The key of `algorithm` from username, realm and password.
    pub fn derive_with(
        algorithm: PasswordAlgorithm,
        username: &str,
        realm: &str,
        password: &str,
    ) -> Self {
        let parts = [
            username.as_bytes(),
            b":",
            realm.as_bytes(),
            b":",
            password.as_bytes(),
        ];
        match algorithm {
            PasswordAlgorithm::Md5 => {
                let mut h = Md5::new();
                parts.iter().for_each(|p| h.update(p));
                Self::from_bytes(&h.finalize())
            }
            PasswordAlgorithm::Sha256 => {
                let mut h = Sha256::new();
                parts.iter().for_each(|p| h.update(p));
                Self::from_bytes(&h.finalize())
            }
        }
    }

    /// A key given as bytes: 16 (MD5) or 32 (SHA-256) of them.
    fn from_bytes(b: &[u8]) -> Self {
        debug_assert!(b.len() == 16 || b.len() == 32);
        let mut buf = [0u8; 32];
        let len = b.len().min(32);
        buf[..len].copy_from_slice(&b[..len]);
        Key(KeyBytes {
            buf,
            len: len as u8,
        })
    }

    /// Parses a key of `algorithm` from hex (32 digits for MD5, 64 for
    /// SHA-256), as users files and the database store them.
    pub fn from_hex(algorithm: PasswordAlgorithm, hex: &str) -> Option<Self> {
        let want = match algorithm {
            PasswordAlgorithm::Md5 => 16,
            PasswordAlgorithm::Sha256 => 32,
        };
        // Digits only: `from_str_radix` alone would take a `+` sign.
        if hex.len() != 2 * want || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let mut buf = zeroize::Zeroizing::new([0u8; 32]);
        for (j, b) in buf[..want].iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * j..2 * j + 2], 16).ok()?;
        }
        Some(Self::from_bytes(&buf[..want]))
    }

    /// Which algorithm made this key.
    pub fn algorithm(&self) -> PasswordAlgorithm {
        if self.0.len() == 32 {
            PasswordAlgorithm::Sha256
        } else {
            PasswordAlgorithm::Md5
        }
    }
}

/// Errors in credential sources.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// A line is not `user:password` or `user:0x<32 hex digits>`.
    #[error("users file line {0}: expected user:password or user:0x<md5 key>")]
    BadLine(usize),
    /// A users-file line has an empty password: anyone who knows the
    /// username could authenticate.
    #[error("users file line {0}: empty password")]
    EmptyPassword(usize),
    /// A TURN REST secret is empty (or only white space): anyone could
    /// compute the password, HMAC-SHA1 under an empty key.
    #[error("empty TURN REST secret")]
    EmptySecret,
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

/// The keys known for a static user; a user imported with only an MD5
/// key (`user:0x…`) cannot use SHA-256.
#[derive(Debug, Clone, Default)]
struct UserKeys {
    md5: Option<Key>,
    sha256: Option<Key>,
}

/// The credential store: static users plus REST shared secrets. Built
/// whole from the configured sources and swapped in on reload.
#[derive(Default)]
pub struct Credentials {
    users: HashMap<String, UserKeys>,
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

    /// Adds a static user with both keys derived from the password.
    pub fn add_user(&mut self, username: &str, realm: &str, password: &str) {
        let [md5, sha256] = PasswordAlgorithm::OFFERED
            .map(|a| Some(Key::derive_with(a, username, realm, password)));
        self.add_user_keys(username, md5, sha256);
    }

    /// Adds (or replaces) a static user given its precomputed keys.
    pub fn add_user_keys(&mut self, username: &str, md5: Option<Key>, sha256: Option<Key>) {
        self.users
            .insert(username.to_owned(), UserKeys { md5, sha256 });
    }

    /// Adds a TURN REST shared secret; the first is tried first. An empty
    /// (or all white space) secret is refused: it would let anyone mint
    /// credentials.
    pub fn add_secret(&mut self, secret: &str) -> Result<(), CredentialError> {
        if secret.trim().is_empty() {
            return Err(CredentialError::EmptySecret);
        }
        self.secrets
            .push(zeroize::Zeroizing::new(secret.to_owned()));
        Ok(())
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
            if pass.is_empty() {
                return Err(CredentialError::EmptyPassword(i + 1));
            }
            if let Some(hex) = pass.strip_prefix("0x") {
                let key = Key::from_hex(PasswordAlgorithm::Md5, hex)
                    .ok_or(CredentialError::BadLine(i + 1))?;
                self.add_user_keys(user, Some(key), None);
            } else {
                self.add_user(user, realm, pass);
            }
            n += 1;
        }
        Ok(n)
    }

    /// Resolves a username to candidate keys of `algorithm`. REST usernames
    /// are `<unix expiry>:<user>` (or just `<unix expiry>`); the password
    /// is `base64(HMAC-SHA1(secret, username))`, exactly as coturn
    /// computes it.
    pub fn resolve(
        &self,
        username: &str,
        realm: &str,
        algorithm: PasswordAlgorithm,
    ) -> Option<Resolved> {
        if let Some(k) = self.users.get(username) {
            let key = match algorithm {
                PasswordAlgorithm::Md5 => k.md5.as_ref(),
                PasswordAlgorithm::Sha256 => k.sha256.as_ref(),
            };
            return Some(Resolved {
                keys: vec![key?.clone()],
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
            .map(|s| Key::derive_with(algorithm, username, realm, &rest_password(s, username)))
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

/// The RFC 8489 §9.2 nonce cookie that starts every nonce: `obMatJos2`
/// then the 24-bit STUN Security Feature set in base64, here only
/// "Password algorithms" (bit 0, the most significant): 0x800000 = `gAAA`.
/// The nonce MAC covers it, so a man in the middle who strips it (to hide
/// that PASSWORD-ALGORITHMS was offered) invalidates the nonce.
pub const NONCE_COOKIE: &str = "obMatJos2gAAA";

/// Mints and checks stateless nonces: [`NONCE_COOKIE`] then
/// `base64url(t || mac)`, where `t` (4 bytes) is seconds since the relay's
/// epoch and `mac` (8 bytes) binds the cookie and `t` to the client IP.
/// 29 characters, so the 401 challenge stays small and of fixed size.
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

const NONCE_BODY: usize = 12;

impl Nonces {
    /// Nonces keyed with `key` that live `lifetime_s` seconds.
    pub fn new(key: [u8; 32], lifetime_s: u64) -> Self {
        Nonces { key, lifetime_s }
    }

    fn mac(&self, t: [u8; 4], ip: IpAddr) -> [u8; 8] {
        let ipb = match ip {
            IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
            IpAddr::V6(v) => v.octets(),
        };
        let full = hmac_sha256(&self.key, &[NONCE_COOKIE.as_bytes(), &t, &ipb]);
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
        let t = (secs as u32).to_be_bytes();
        let mut body = [0u8; NONCE_BODY];
        body[..4].copy_from_slice(&t);
        body[4..].copy_from_slice(&self.mac(t, ip));
        let mut s = String::with_capacity(NONCE_COOKIE.len() + 16);
        s.push_str(NONCE_COOKIE);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(body, &mut s);
        s
    }

    /// Checks a nonce presented by `ip` at `secs`.
    pub fn check(&self, nonce: &str, secs: u64, ip: IpAddr) -> NonceCheck {
        let Some(b64) = nonce.strip_prefix(NONCE_COOKIE) else {
            return NonceCheck::Invalid;
        };
        let mut body = [0u8; NONCE_BODY];
        match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode_slice(b64, &mut body) {
            Ok(NONCE_BODY) => {}
            _ => return NonceCheck::Invalid,
        }
        let t: [u8; 4] = [body[0], body[1], body[2], body[3]];
        if !bool::from(self.mac(t, ip).ct_eq(&body[4..])) {
            return NonceCheck::Invalid;
        }
        let age = (secs as u32).wrapping_sub(u32::from_be_bytes(t));
        if u64::from(age) > self.lifetime_s {
            NonceCheck::Stale
        } else {
            NonceCheck::Valid
        }
    }

    /// Appends the long-term credential challenge of a 401 or 438 answer
    /// (RFC 8489 §9.2.4): REALM, a fresh NONCE for `ip`, and
    /// PASSWORD-ALGORITHMS (MD5, SHA-256).
    pub fn challenge(&self, b: &mut Builder, realm: &str, secs: u64, ip: IpAddr) {
        let nonce = self.mint(secs, ip);
        b.attr(attr::REALM, realm.as_bytes())
            .attr(attr::NONCE, nonce.as_bytes())
            .attr(attr::PASSWORD_ALGORITHMS, &offer_bytes());
    }
}

/// An error answer: code and reason phrase.
pub type Reject = (u16, &'static str);

const BAD_REQUEST: Reject = (400, "Bad Request");
const UNAUTHENTICATED: Reject = (401, "");

/// What a request's valid credentials established.
#[derive(Debug)]
pub struct Verified<'m> {
    /// The USERNAME.
    pub username: &'m str,
    /// The key that verified the request (and signs the answers).
    pub key: Key,
    /// The integrity attribute the request used (the answers use it too).
    pub integrity: Integrity,
    /// When REST credentials expire (Unix seconds); `None` for static users.
    pub expires_unix: Option<u64>,
}

impl<'m> Verified<'m> {
    /// Whose allocation quota the request counts against. For TURN REST
    /// credentials (`<expiry>:<user>`) it is the part after the first ':'
    /// (the whole username if there is none), as coturn counts them with
    /// `use-auth-secret`: each credential fetch mints a new expiry, so
    /// keying on the whole username would give every fetch a fresh quota.
    /// Static users are counted by their full name.
    pub fn quota_user(&self) -> &'m str {
        match (self.expires_unix, self.username.split_once(':')) {
            (Some(_), Some((_, user))) => user,
            _ => self.username,
        }
    }
}

/// Checks the long-term credentials of requests (RFC 8489 §9.2.4).
#[derive(Debug, Clone, Copy)]
pub struct Verifier<'a> {
    /// The relay's realm.
    pub realm: &'a str,
    /// The credential store.
    pub credentials: &'a Credentials,
    /// The nonce key.
    pub nonces: &'a Nonces,
    /// Now, in seconds since the relay's epoch (nonce time).
    pub nonce_secs: u64,
    /// Now, in Unix seconds (REST expiry).
    pub unix: u64,
}

impl Verifier<'_> {
    /// Verifies a request that carries MESSAGE-INTEGRITY(-SHA256) from
    /// `ip`. Errors are 400 (missing attributes, or a PASSWORD-ALGORITHM
    /// negotiation that does not match our offer: a bid-down attempt),
    /// 401 (unknown nonce, user, realm or key; expired REST credentials),
    /// 438 (stale nonce, only once the key is right).
    pub fn verify<'m>(&self, msg: &Message<'m>, ip: IpAddr) -> Result<Verified<'m>, Reject> {
        let text = |kind| {
            msg.get_str(kind)
                .map_err(|_| BAD_REQUEST)?
                .ok_or(BAD_REQUEST)
        };
        let username = text(attr::USERNAME)?;
        let realm = text(attr::REALM)?;
        let nonce = text(attr::NONCE)?;
        let freshness = self.nonces.check(nonce, self.nonce_secs, ip);
        if freshness == NonceCheck::Invalid || realm != self.realm {
            return Err(UNAUTHENTICATED);
        }
        // Every nonce we mint carries the cookie with the password
        // algorithms bit, so the §9.2.4 negotiation checks always apply.
        let algorithm = negotiated_algorithm(msg)?;
        let resolved = self
            .credentials
            .resolve(username, realm, algorithm)
            .ok_or(UNAUTHENTICATED)?;
        let (key, integrity) = resolved
            .keys
            .into_iter()
            .find_map(|k| msg.check_integrity(&k.0).map(|i| (k, i)))
            .ok_or(UNAUTHENTICATED)?;
        if resolved.expires_unix.is_some_and(|e| e <= self.unix) {
            return Err(UNAUTHENTICATED);
        }
        if freshness == NonceCheck::Stale {
            return Err((438, "Stale Nonce"));
        }
        Ok(Verified {
            username,
            key,
            integrity,
            expires_unix: resolved.expires_unix,
        })
    }
}

/// The password algorithm a request uses (RFC 8489 §9.2.4): MD5 when it
/// names none (RFC 5389/5766 clients); otherwise PASSWORD-ALGORITHMS must
/// echo our offer byte for byte and PASSWORD-ALGORITHM must be one of it.
/// Both are covered by the integrity check, so an attacker who edited the
/// offer in our 401 (say, removed SHA-256) is caught here.
fn negotiated_algorithm(msg: &Message<'_>) -> Result<PasswordAlgorithm, Reject> {
    let chosen = msg.get_password_algorithm().map_err(|_| BAD_REQUEST)?;
    match (chosen, msg.get(attr::PASSWORD_ALGORITHMS)) {
        (None, None) => Ok(PasswordAlgorithm::Md5),
        (Some(n), Some(offer)) if offer.value == offer_bytes() => {
            PasswordAlgorithm::from_number(n).ok_or(BAD_REQUEST)
        }
        _ => Err(BAD_REQUEST),
    }
}

/// The PASSWORD-ALGORITHMS value of our offer.
fn offer_bytes() -> [u8; 4 * PasswordAlgorithm::OFFERED.len()] {
    let mut v = [0u8; 4 * PasswordAlgorithm::OFFERED.len()];
    for (chunk, a) in v.chunks_exact_mut(4).zip(PasswordAlgorithm::OFFERED) {
        chunk[..2].copy_from_slice(&a.number().to_be_bytes());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stun::{Class, method};

    #[test]
    fn long_term_keys_match_md5sum_and_sha256sum() {
        // `printf 'user:realm:pass' | md5sum` and `| sha256sum`.
        let md5 = "8493fbc53ba582fb4c044c456bdc40eb";
        let sha = "07e934117abd40836e7c6329b54731b2b2d2a5f9a71f544922d75e0730d8251b";
        let k = Key::derive("user", "realm", "pass");
        assert_eq!(
            Some(&k),
            Key::from_hex(PasswordAlgorithm::Md5, md5).as_ref()
        );
        assert_eq!(k.0.len(), 16);
        assert_eq!(k.algorithm(), PasswordAlgorithm::Md5);
        let k = Key::derive_with(PasswordAlgorithm::Sha256, "user", "realm", "pass");
        assert_eq!(
            Some(&k),
            Key::from_hex(PasswordAlgorithm::Sha256, sha).as_ref()
        );
        assert_eq!(k.0.len(), 32);
        assert_eq!(k.algorithm(), PasswordAlgorithm::Sha256);
        assert!(Key::from_hex(PasswordAlgorithm::Sha256, md5).is_none());
        assert!(
            Key::from_hex(PasswordAlgorithm::Md5, "+f93fbc53ba582fb4c044c456bdc40eb").is_none()
        );
        assert!(
            Key::from_hex(PasswordAlgorithm::Md5, "zz93fbc53ba582fb4c044c456bdc40eb").is_none()
        );
        assert!(Key::from_hex(PasswordAlgorithm::Md5, "é493fbc53ba582fb4c044c456bdc40e").is_none());
    }

    #[test]
    fn rest_password_matches_coturn_formula() {
        // Value from `printf '1700000000:alice' | openssl dgst -sha1 -hmac s3cret -binary | base64`.
        assert_eq!(rest_password("s3cret", "1700000000:alice"), REST_VECTOR);
        let mut c = Credentials::new();
        c.add_secret("old").unwrap();
        c.add_secret("s3cret").unwrap();
        let r = c
            .resolve("1700000000:alice", "r", PasswordAlgorithm::Md5)
            .unwrap();
        assert_eq!(r.expires_unix, Some(1_700_000_000));
        assert_eq!(r.keys.len(), 2);
        assert_eq!(r.keys[1], Key::derive("1700000000:alice", "r", REST_VECTOR));
        let r = c
            .resolve("1700000000:alice", "r", PasswordAlgorithm::Sha256)
            .unwrap();
        assert_eq!(
            r.keys[1],
            Key::derive_with(
                PasswordAlgorithm::Sha256,
                "1700000000:alice",
                "r",
                REST_VECTOR
            )
        );
        assert!(c.resolve("alice", "r", PasswordAlgorithm::Md5).is_none());
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
            c.resolve("bob", "realm", PasswordAlgorithm::Md5)
                .unwrap()
                .keys[0],
            Key::derive("user", "realm", "pass")
        );
        // Only the MD5 key is known for a `0x` line.
        assert!(
            c.resolve("bob", "realm", PasswordAlgorithm::Sha256)
                .is_none()
        );
        assert_eq!(
            c.resolve("alice", "realm", PasswordAlgorithm::Sha256)
                .unwrap()
                .keys[0],
            Key::derive_with(PasswordAlgorithm::Sha256, "alice", "realm", "pw")
        );
        assert!(matches!(
            c.load_users("nocolon\n", "r"),
            Err(CredentialError::BadLine(1))
        ));
        assert!(matches!(
            c.load_users("x:0x12\n", "r"),
            Err(CredentialError::BadLine(1))
        ));
        assert!(matches!(
            c.load_users("ok:pw\nmallory:\n", "r"),
            Err(CredentialError::EmptyPassword(2))
        ));
    }

    #[test]
    fn empty_secrets_are_refused() {
        let mut c = Credentials::new();
        for bad in ["", " ", "\t"] {
            assert!(matches!(
                c.add_secret(bad),
                Err(CredentialError::EmptySecret)
            ));
        }
        assert_eq!(c.counts(), (0, 0));
        // Nobody resolves against a store that refused the empty secret.
        assert!(
            c.resolve("1700000000:alice", "r", PasswordAlgorithm::Md5)
                .is_none()
        );
    }

    #[test]
    fn nonces_expire_bind_ip_and_carry_the_cookie() {
        let n = Nonces::new([3; 32], 600);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let nonce = n.mint(100, ip);
        assert!(nonce.starts_with("obMatJos2gAAA"), "{nonce}");
        assert_eq!(nonce.len(), 29);
        assert_eq!(n.check(&nonce, 100, ip), NonceCheck::Valid);
        assert_eq!(n.check(&nonce, 700, ip), NonceCheck::Valid);
        assert_eq!(n.check(&nonce, 701, ip), NonceCheck::Stale);
        assert_eq!(
            n.check(&nonce, 100, "192.0.2.8".parse().unwrap()),
            NonceCheck::Invalid
        );
        // Without the cookie (an RFC 5389-style nonce) it is not ours.
        assert_eq!(n.check(&nonce[13..], 100, ip), NonceCheck::Invalid);
        let other_features = format!("obMatJos2wAAA{}", &nonce[13..]);
        assert_eq!(n.check(&other_features, 100, ip), NonceCheck::Invalid);
        assert_eq!(n.check("zz", 100, ip), NonceCheck::Invalid);
        assert_eq!(n.check(&format!("{nonce}AA"), 100, ip), NonceCheck::Invalid);
        assert_eq!(
            n.check("obMatJos2gAAAé234567890123456", 100, ip),
            NonceCheck::Invalid
        );
    }

    const REALM: &str = "example.org";
    const IP: [u8; 4] = [192, 0, 2, 9];

    struct Setup {
        creds: Credentials,
        nonces: Nonces,
    }

    impl Setup {
        fn new() -> Self {
            let mut creds = Credentials::new();
            creds.add_user("alice", REALM, "pw");
            // `printf 'legacy:example.org:pass' | md5sum`
            creds
                .load_users("legacy:0x0725f77aef710bc5e675d6f567f37bd5\n", REALM)
                .unwrap();
            Setup {
                creds,
                nonces: Nonces::new([5; 32], 600),
            }
        }

        fn verifier(&self, secs: u64) -> Verifier<'_> {
            Verifier {
                realm: REALM,
                credentials: &self.creds,
                nonces: &self.nonces,
                nonce_secs: secs,
                unix: 1_800_000_000,
            }
        }

        /// The answer to an unauthenticated request: (nonce, offer bytes).
        fn challenge(&self) -> (String, Vec<u8>) {
            let mut b = Builder::new(method::ALLOCATE, Class::Error, [0; 12]);
            b.error(401, "");
            self.nonces.challenge(&mut b, REALM, 10, IP.into());
            let raw = b.finish();
            let m = Message::parse(&raw).unwrap();
            assert_eq!(m.get_str(attr::REALM).unwrap(), Some(REALM));
            let nonce = m.get_str(attr::NONCE).unwrap().unwrap().to_owned();
            let offer = m.get(attr::PASSWORD_ALGORITHMS).unwrap().value.to_vec();
            (nonce, offer)
        }

        /// Checks an Allocate signed with `key` and `integrity`, carrying
        /// the given PASSWORD-ALGORITHMS value and PASSWORD-ALGORITHM.
        fn check(
            &self,
            user: &str,
            key: &Key,
            integrity: Integrity,
            (offer, chosen): (Option<&[u8]>, Option<u16>),
            nonce: &str,
            secs: u64,
        ) -> Result<(PasswordAlgorithm, Integrity), u16> {
            let mut b = Builder::new(method::ALLOCATE, Class::Request, [1; 12]);
            b.u32(attr::REQUESTED_TRANSPORT, 17 << 24)
                .attr(attr::USERNAME, user.as_bytes())
                .attr(attr::REALM, REALM.as_bytes())
                .attr(attr::NONCE, nonce.as_bytes());
            if let Some(o) = offer {
                b.attr(attr::PASSWORD_ALGORITHMS, o);
            }
            if let Some(c) = chosen {
                b.password_algorithm(c);
            }
            b.integrity(integrity, &key.0);
            let raw = b.finish_with_fingerprint();
            let m = Message::parse(&raw).unwrap();
            self.verifier(secs)
                .verify(&m, IP.into())
                .map(|v| {
                    assert_eq!(v.username, user);
                    assert_eq!(&v.key, key);
                    (v.key.algorithm(), v.integrity)
                })
                .map_err(|(code, _)| code)
        }
    }

    const MD5: u16 = password_algorithm::MD5;
    const SHA256: u16 = password_algorithm::SHA256;

    #[test]
    fn challenge_offers_md5_and_sha256_behind_the_cookie() {
        let s = Setup::new();
        let (nonce, offer) = s.challenge();
        assert!(nonce.starts_with(NONCE_COOKIE));
        assert_eq!(offer, [0, 1, 0, 0, 0, 2, 0, 0]);
    }

    #[test]
    fn rfc5766_client_without_algorithms_uses_md5() {
        let s = Setup::new();
        let (nonce, _) = s.challenge();
        let md5 = Key::derive("alice", REALM, "pw");
        let ok = s.check("alice", &md5, Integrity::Sha1, (None, None), &nonce, 10);
        assert_eq!(ok, Ok((PasswordAlgorithm::Md5, Integrity::Sha1)));
        // The legacy `0x` user has only an MD5 key, and it works.
        let legacy = Key::derive("legacy", REALM, "pass");
        let ok = s.check("legacy", &legacy, Integrity::Sha1, (None, None), &nonce, 10);
        assert_eq!(ok, Ok((PasswordAlgorithm::Md5, Integrity::Sha1)));
        // Without algorithm attributes the SHA-256 key is not accepted.
        let sha = Key::derive_with(PasswordAlgorithm::Sha256, "alice", REALM, "pw");
        let r = s.check("alice", &sha, Integrity::Sha256, (None, None), &nonce, 10);
        assert_eq!(r, Err(401));
    }

    #[test]
    fn rfc8489_client_negotiates_sha256() {
        use PasswordAlgorithm::{Md5, Sha256};
        let s = Setup::new();
        let (nonce, offer) = s.challenge();
        let sha = Key::derive_with(Sha256, "alice", REALM, "pw");
        let md5 = Key::derive("alice", REALM, "pw");
        // A user with only an MD5 key cannot choose SHA-256.
        let legacy = Key::derive_with(Sha256, "legacy", REALM, "pass");
        type Case<'a> = (&'a str, &'a str, &'a Key, Integrity, u16, u64);
        type Outcome = Result<(PasswordAlgorithm, Integrity), u16>;
        let cases: [(Case, Outcome); 7] = [
            (
                (
                    "SHA-256 key and HMAC",
                    "alice",
                    &sha,
                    Integrity::Sha256,
                    SHA256,
                    10,
                ),
                Ok((Sha256, Integrity::Sha256)),
            ),
            // The key and the HMAC are independent.
            (
                (
                    "SHA-256 key, HMAC-SHA1",
                    "alice",
                    &sha,
                    Integrity::Sha1,
                    SHA256,
                    10,
                ),
                Ok((Sha256, Integrity::Sha1)),
            ),
            (
                (
                    "MD5 chosen from the offer",
                    "alice",
                    &md5,
                    Integrity::Sha256,
                    MD5,
                    10,
                ),
                Ok((Md5, Integrity::Sha256)),
            ),
            (
                (
                    "claims SHA-256, keys with MD5",
                    "alice",
                    &md5,
                    Integrity::Sha256,
                    SHA256,
                    10,
                ),
                Err(401),
            ),
            (
                (
                    "MD5-only user asks SHA-256",
                    "legacy",
                    &legacy,
                    Integrity::Sha256,
                    SHA256,
                    10,
                ),
                Err(401),
            ),
            // Stale only once the key is right.
            (
                (
                    "stale nonce, right key",
                    "alice",
                    &sha,
                    Integrity::Sha256,
                    SHA256,
                    611,
                ),
                Err(438),
            ),
            (
                (
                    "stale nonce, wrong key",
                    "alice",
                    &md5,
                    Integrity::Sha256,
                    SHA256,
                    611,
                ),
                Err(401),
            ),
        ];
        for ((what, user, key, integrity, chosen, secs), expected) in cases {
            let r = s.check(
                user,
                key,
                integrity,
                (Some(&offer), Some(chosen)),
                &nonce,
                secs,
            );
            assert_eq!(r, expected, "{what}");
        }
    }

    #[test]
    fn bid_down_attempts_are_refused() {
        let s = Setup::new();
        let (nonce, offer) = s.challenge();
        let md5 = Key::derive("alice", REALM, "pw");
        let (stripped, reordered) = ([0u8, 1, 0, 0], [0u8, 2, 0, 0, 0, 1, 0, 0]);
        // (what, PASSWORD-ALGORITHMS sent, PASSWORD-ALGORITHM, nonce, error)
        type Attempt<'a> = (&'a str, Option<&'a [u8]>, Option<u16>, &'a str, u16);
        let cases: [Attempt; 7] = [
            // A man in the middle removed SHA-256 from our offer; the
            // client echoes what it saw, under its integrity.
            ("stripped offer", Some(&stripped), Some(MD5), &nonce, 400),
            ("reordered offer", Some(&reordered), Some(MD5), &nonce, 400),
            ("algorithm without offer", None, Some(MD5), &nonce, 400),
            ("offer without algorithm", Some(&offer), None, &nonce, 400),
            (
                "algorithm never offered",
                Some(&offer),
                Some(0x0003),
                &nonce,
                400,
            ),
            // The cookie stripped from the nonce (to pose as an RFC 5389
            // server that offers nothing): the nonce is no longer ours.
            ("cookie stripped", None, None, &nonce[9..], 401),
            ("cookie and flags stripped", None, None, &nonce[13..], 401),
        ];
        for (what, sent_offer, chosen, nonce, code) in cases {
            let r = s.check(
                "alice",
                &md5,
                Integrity::Sha1,
                (sent_offer, chosen),
                nonce,
                10,
            );
            assert_eq!(r, Err(code), "{what}");
        }
    }

    #[test]
    fn missing_attributes_are_400_and_wrong_realm_401() {
        let s = Setup::new();
        let (nonce, _) = s.challenge();
        let md5 = Key::derive("alice", REALM, "pw");
        let mut b = Builder::new(method::ALLOCATE, Class::Request, [1; 12]);
        b.attr(attr::USERNAME, b"alice")
            .attr(attr::NONCE, nonce.as_bytes())
            .integrity(Integrity::Sha1, &md5.0);
        let raw = b.finish();
        let m = Message::parse(&raw).unwrap();
        assert_eq!(s.verifier(10).verify(&m, IP.into()).unwrap_err().0, 400);
        let mut b = Builder::new(method::ALLOCATE, Class::Request, [1; 12]);
        b.attr(attr::USERNAME, b"alice")
            .attr(attr::REALM, b"other.org")
            .attr(attr::NONCE, nonce.as_bytes())
            .integrity(Integrity::Sha1, &md5.0);
        let raw = b.finish();
        let m = Message::parse(&raw).unwrap();
        assert_eq!(s.verifier(10).verify(&m, IP.into()).unwrap_err().0, 401);
    }
}
