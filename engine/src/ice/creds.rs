//! TURN REST credentials (draft-uberti-behave-turn-rest, as coturn's
//! `use-auth-secret` implements them): username `expiry:user`, password
//! base64(HMAC-SHA1(secret, username)).
//!
//! The password stands for the shared secret for its lifetime, so it is
//! wiped when dropped, and so is everything derived from the secret on the
//! way to it: the HMAC is computed here over the `sha1` crate's compression
//! function, with the padded key, the keyed states, the inner digest and the
//! tag all wiped (`ring`'s HMAC key and tag cannot be).

use base64::Engine;
use sha1::digest::generic_array::GenericArray;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// A username/password pair valid until `expiry` (Unix seconds). Both are
/// wiped on drop; clone it only where a copy has to live.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct RestCredentials {
    /// `expiry:user`.
    pub username: String,
    /// base64 HMAC-SHA1 of the username under the shared secret.
    pub password: String,
}

impl std::fmt::Debug for RestCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Derives REST credentials for `user` expiring at `expiry_unix`.
pub fn rest_credentials(secret: &[u8], user: &str, expiry_unix: u64) -> RestCredentials {
    let username = format!("{expiry_unix}:{user}");
    let tag = hmac_sha1(secret, username.as_bytes());
    // Encoded into a buffer of the exact size: no reallocation leaves a copy behind.
    let mut password = String::with_capacity(28);
    base64::engine::general_purpose::STANDARD.encode_string(&tag[..], &mut password);
    RestCredentials { username, password }
}

const BLOCK: usize = 64;
const H0: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

fn compress(state: &mut [u32; 5], block: &[u8; BLOCK]) {
    sha1::compress(state, std::slice::from_ref(GenericArray::from_slice(block)));
}

/// HMAC-SHA1 (RFC 2104) with every secret intermediate wiped.
fn hmac_sha1(key: &[u8], msg: &[u8]) -> Zeroizing<[u8; 20]> {
    let mut pad = Zeroizing::new([0u8; BLOCK]);
    if key.len() > BLOCK {
        let hashed = sha1_after(H0, 0, key);
        pad[..20].copy_from_slice(&hashed[..]);
    } else {
        pad[..key.len()].copy_from_slice(key);
    }
    let keyed = |byte: u8| {
        let mut block = Zeroizing::new(*pad);
        block.iter_mut().for_each(|b| *b ^= byte);
        let mut state = Zeroizing::new(H0);
        compress(&mut state, &block);
        state
    };
    let (inner_state, outer_state) = (keyed(0x36), keyed(0x5c));
    let inner = sha1_after(*inner_state, BLOCK as u64, msg);
    sha1_after(*outer_state, BLOCK as u64, &inner[..])
}

/// The SHA-1 digest of `data` continued from `state`, which has absorbed
/// `absorbed` bytes (whole blocks) already; the work buffer is wiped.
fn sha1_after(mut state: [u32; 5], absorbed: u64, data: &[u8]) -> Zeroizing<[u8; 20]> {
    let mut buf = Zeroizing::new([0u8; BLOCK]);
    let mut blocks = data.chunks_exact(BLOCK);
    for block in &mut blocks {
        buf.copy_from_slice(block);
        compress(&mut state, &buf);
    }
    let rest = blocks.remainder();
    buf.fill(0);
    buf[..rest.len()].copy_from_slice(rest);
    buf[rest.len()] = 0x80;
    if rest.len() + 1 > BLOCK - 8 {
        compress(&mut state, &buf);
        buf.fill(0);
    }
    let bits = (absorbed + data.len() as u64) * 8;
    buf[BLOCK - 8..].copy_from_slice(&bits.to_be_bytes());
    compress(&mut state, &buf);
    let mut out = Zeroizing::new([0u8; 20]);
    for (o, w) in out.chunks_exact_mut(4).zip(state.iter()) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    state.zeroize();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_independent_hmac_sha1() {
        // Reference computed with Python's hmac/hashlib/base64 (an independent
        // implementation): base64(hmac.new(b"north", b"1700000000:alice", sha1).digest()).
        let c = rest_credentials(b"north", "alice", 1_700_000_000);
        assert_eq!(c.username, "1700000000:alice");
        assert_eq!(c.password, REFERENCE);
    }

    const REFERENCE: &str = "Cd/49soE35ICqcJF/bCTn8Z4OyE=";

    /// RFC 2202 §3 test cases 1, 2 and 6 (a key longer than a block is hashed first).
    #[test]
    fn rfc2202_vectors() {
        let hex = |k: &[u8], m: &[u8]| hex::encode(&hmac_sha1(k, m)[..]);
        assert_eq!(
            hex(&[0x0b; 20], b"Hi There"),
            "b617318655057264e28bc0b6fb378c8ef146be00"
        );
        assert_eq!(
            hex(b"Jefe", b"what do ya want for nothing?"),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            hex(
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112"
        );
    }

    /// Every key and message length around the block and padding
    /// boundaries gives the RustCrypto `hmac` crate's MAC.
    #[test]
    fn matches_hmac_crate() {
        use hmac::Mac;
        let lens = [0usize, 1, 20, 55, 56, 63, 64, 65, 119, 120, 128, 200];
        for klen in lens {
            let key: Vec<u8> = (0..klen).map(|i| (i * 7) as u8).collect();
            for mlen in lens {
                let msg: Vec<u8> = (0..mlen).map(|i| i as u8).collect();
                let mut reference = hmac::Hmac::<sha1::Sha1>::new_from_slice(&key).unwrap();
                reference.update(&msg);
                let want: [u8; 20] = reference.finalize().into_bytes().into();
                assert_eq!(*hmac_sha1(&key, &msg), want, "key {klen} msg {mlen}");
            }
        }
    }

    /// The password and username are wiped on drop. Reading freed memory
    /// to see it is undefined behaviour, so this checks what can be checked
    /// safely: the type wipes on drop (a compile-time bound), and wiping
    /// empties both fields.
    #[test]
    fn credentials_are_wiped() {
        fn wiped_on_drop<T: ZeroizeOnDrop>(_: &T) {}
        let mut c = rest_credentials(b"north", "alice", 1_700_000_000);
        wiped_on_drop(&c);
        c.zeroize();
        assert!(c.password.is_empty() && c.username.is_empty());
    }
}
