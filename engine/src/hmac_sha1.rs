//! HMAC-SHA1 (RFC 2104) with the keyed inner and outer states computed once
//! per key, over the `sha1` crate's compression function (SHA-NI when the
//! CPU has it): SRTP's packet authentication, where a MAC costs the data
//! blocks plus one outer block with no allocation, and TURN REST passwords.
//! The padded key and the keyed states are zeroized.

use sha1::digest::generic_array::GenericArray;
use zeroize::{Zeroize, ZeroizeOnDrop};

const BLOCK: usize = 64;
const H0: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

fn compress(state: &mut [u32; 5], block: &[u8]) {
    sha1::compress(state, std::slice::from_ref(GenericArray::from_slice(block)));
}

/// A keyed HMAC-SHA1.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct HmacSha1 {
    inner: [u32; 5],
    outer: [u32; 5],
}

impl HmacSha1 {
    /// Keys the MAC. A key longer than a block is hashed first (RFC 2104
    /// §2); SRTP session authentication keys are 20 bytes.
    pub(crate) fn new(key: &[u8]) -> Self {
        let mut pad = [0u8; BLOCK];
        if key.len() > BLOCK {
            use sha1::Digest as _;
            let mut hashed: [u8; 20] = sha1::Sha1::digest(key).into();
            pad[..20].copy_from_slice(&hashed);
            hashed.zeroize();
        } else {
            pad[..key.len()].copy_from_slice(key);
        }
        let keyed = |byte: u8| {
            let mut block = pad.map(|k| k ^ byte);
            let mut state = H0;
            compress(&mut state, &block);
            block.zeroize();
            state
        };
        let inner = keyed(0x36);
        let outer = keyed(0x5c);
        pad.zeroize();
        HmacSha1 { inner, outer }
    }

    /// HMAC over the concatenation of `parts`.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 20] {
        let mut state = self.inner;
        let mut buf = [0u8; BLOCK];
        let mut fill = 0;
        let mut total = BLOCK as u64;
        for part in parts {
            let mut data: &[u8] = part;
            total += data.len() as u64;
            if fill > 0 {
                let take = (BLOCK - fill).min(data.len());
                buf[fill..fill + take].copy_from_slice(&data[..take]);
                fill += take;
                data = &data[take..];
                if fill < BLOCK {
                    continue;
                }
                compress(&mut state, &buf);
            }
            let mut blocks = data.chunks_exact(BLOCK);
            for block in &mut blocks {
                compress(&mut state, block);
            }
            let rest = blocks.remainder();
            buf[..rest.len()].copy_from_slice(rest);
            fill = rest.len();
        }
        let inner = finish(&mut state, &mut buf, fill, total);

        let mut state = self.outer;
        let mut block = [0u8; BLOCK];
        block[..20].copy_from_slice(&inner);
        finish(&mut state, &mut block, 20, (BLOCK + 20) as u64)
    }
}

/// SHA-1 padding and length, then the big-endian digest.
fn finish(state: &mut [u32; 5], buf: &mut [u8; BLOCK], fill: usize, total: u64) -> [u8; 20] {
    buf[fill] = 0x80;
    buf[fill + 1..].fill(0);
    if fill + 1 > BLOCK - 8 {
        compress(state, buf);
        buf.fill(0);
    }
    buf[BLOCK - 8..].copy_from_slice(&(total * 8).to_be_bytes());
    compress(state, buf);
    let mut out = [0u8; 20];
    for (o, w) in out.chunks_exact_mut(4).zip(state.iter()) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2202 §3 (HMAC-SHA-1) test cases 1 to 3.
    #[test]
    fn rfc2202_vectors() {
        let mac = HmacSha1::new(&[0x0b; 20]).mac(&[b"Hi There"]);
        assert_eq!(hex::encode(mac), "b617318655057264e28bc0b6fb378c8ef146be00");
        let mac = HmacSha1::new(b"Jefe").mac(&[b"what do ya want ", b"for nothing?"]);
        assert_eq!(hex::encode(mac), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
        let mac = HmacSha1::new(&[0xaa; 20]).mac(&[&[0xdd; 50]]);
        assert_eq!(hex::encode(mac), "125d7342b9ac11cd91a39af48aa17b4f63f175d3");
        // Case 6: a key longer than a block is hashed first.
        let mac = HmacSha1::new(&[0xaa; 80])
            .mac(&[b"Test Using Larger Than Block-Size Key - Hash Key First"]);
        assert_eq!(hex::encode(mac), "aa4ae5e15272d00e95705637ce8a3b55ed402112");
    }

    /// Keys of every length around the block size give the RustCrypto
    /// `hmac` crate's MAC.
    #[test]
    fn matches_hmac_crate_for_every_key_length() {
        use hmac::Mac;
        let msg = b"1700000000:alice";
        for klen in [0usize, 1, 20, 63, 64, 65, 128, 200] {
            let key: Vec<u8> = (0..klen).map(|i| (i * 7) as u8).collect();
            let mut reference = hmac::Hmac::<sha1::Sha1>::new_from_slice(&key).unwrap();
            reference.update(msg);
            let want: [u8; 20] = reference.finalize().into_bytes().into();
            assert_eq!(HmacSha1::new(&key).mac(&[msg]), want, "key {klen}");
        }
    }

    /// Every split of inputs around the padding and block boundaries gives
    /// the MAC of the RustCrypto `hmac` crate over the whole input.
    #[test]
    fn matches_hmac_crate_for_every_split() {
        use hmac::Mac;
        let key = HmacSha1::new(&[7; 20]);
        for len in [0usize, 1, 55, 56, 63, 64, 65, 119, 120, 128, 200] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut reference = hmac::Hmac::<sha1::Sha1>::new_from_slice(&[7; 20]).unwrap();
            reference.update(&data);
            let whole: [u8; 20] = reference.finalize().into_bytes().into();
            for cut in 0..=len {
                let (a, b) = data.split_at(cut);
                assert_eq!(key.mac(&[a, b, &[]]), whole, "len {len} cut {cut}");
            }
        }
    }
}
