//! The six protection profiles and their key, salt and tag sizes.

/// An SRTP protection profile: cipher, authentication and their sizes.
///
/// Names follow the SDES crypto-suite names (RFC 4568 §6.2, RFC 6188,
/// RFC 7714), which cover all six; DTLS-SRTP has no AES-256-CM profile.
/// The two AES-CM key sizes and the two HMAC-SHA1 tag lengths share one
/// code path, parameterised by [`Profile::key_len`] and
/// [`Profile::rtp_tag_len`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// AES-128 counter mode, HMAC-SHA1 with an 80-bit tag (RFC 3711).
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, HMAC-SHA1 with a 32-bit SRTP tag; SRTCP keeps
    /// the 80-bit tag (RFC 4568 §6.2.2, RFC 5764 §4.1.2).
    AesCm128HmacSha1_32,
    /// AES-256 counter mode, HMAC-SHA1 with an 80-bit tag (RFC 6188).
    AesCm256HmacSha1_80,
    /// AES-256 counter mode, HMAC-SHA1 with a 32-bit SRTP tag; SRTCP keeps
    /// the 80-bit tag (RFC 6188, as libsrtp2 pairs
    /// `aes_cm_256_hmac_sha1_32` for SRTP with `_80` for SRTCP). ZRTP's
    /// AES3 with HS32 (RFC 6189 §5.1.3, §5.1.4).
    AesCm256HmacSha1_32,
    /// AES-128 in Galois/counter mode with a 128-bit tag (RFC 7714).
    AeadAes128Gcm,
    /// AES-256 in Galois/counter mode with a 128-bit tag (RFC 7714).
    AeadAes256Gcm,
}

impl Profile {
    /// Every profile, in registry order.
    pub const ALL: [Profile; 6] = [
        Profile::AesCm128HmacSha1_80,
        Profile::AesCm128HmacSha1_32,
        Profile::AesCm256HmacSha1_80,
        Profile::AesCm256HmacSha1_32,
        Profile::AeadAes128Gcm,
        Profile::AeadAes256Gcm,
    ];

    /// Length of the master (and session encryption) key in bytes.
    pub const fn key_len(self) -> usize {
        match self {
            Profile::AesCm128HmacSha1_80
            | Profile::AesCm128HmacSha1_32
            | Profile::AeadAes128Gcm => 16,
            Profile::AesCm256HmacSha1_80
            | Profile::AesCm256HmacSha1_32
            | Profile::AeadAes256Gcm => 32,
        }
    }

    /// Length of the master (and session) salt in bytes: 112 bits for
    /// AES-CM, 96 bits for GCM (RFC 7714 §12).
    pub const fn salt_len(self) -> usize {
        if self.is_aead() { 12 } else { 14 }
    }

    /// Bytes an SRTP packet grows by when protected (the tag).
    pub const fn rtp_tag_len(self) -> usize {
        match self {
            Profile::AesCm128HmacSha1_80 | Profile::AesCm256HmacSha1_80 => 10,
            Profile::AesCm128HmacSha1_32 | Profile::AesCm256HmacSha1_32 => 4,
            Profile::AeadAes128Gcm | Profile::AeadAes256Gcm => 16,
        }
    }

    /// Bytes of the SRTCP authentication tag (80 bits for every HMAC profile).
    pub const fn rtcp_tag_len(self) -> usize {
        if self.is_aead() { 16 } else { 10 }
    }

    /// Bytes an SRTCP packet grows by when protected (E flag and index,
    /// plus the tag).
    pub const fn rtcp_overhead(self) -> usize {
        4 + self.rtcp_tag_len()
    }

    /// Whether the profile is an AEAD (GCM) profile.
    pub const fn is_aead(self) -> bool {
        matches!(self, Profile::AeadAes128Gcm | Profile::AeadAes256Gcm)
    }

    /// The profile's SDES crypto-suite name, e.g. `AES_CM_128_HMAC_SHA1_80`.
    pub const fn name(self) -> &'static str {
        match self {
            Profile::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Profile::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Profile::AesCm256HmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
            Profile::AesCm256HmacSha1_32 => "AES_256_CM_HMAC_SHA1_32",
            Profile::AeadAes128Gcm => "AEAD_AES_128_GCM",
            Profile::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::super::SrtpContext;
    use super::*;

    /// The 32-bit profiles are their 80-bit twins with the SRTP tag cut to
    /// its first four bytes; SRTCP is the same packet for both.
    #[test]
    fn short_tag_profiles_truncate_the_srtp_tag_only() {
        for (short, long) in [
            (Profile::AesCm128HmacSha1_32, Profile::AesCm128HmacSha1_80),
            (Profile::AesCm256HmacSha1_32, Profile::AesCm256HmacSha1_80),
        ] {
            assert_eq!(short.key_len(), long.key_len());
            assert_eq!((short.rtp_tag_len(), long.rtp_tag_len()), (4, 10));
            assert_eq!(short.rtcp_tag_len(), long.rtcp_tag_len());
            let key: Vec<u8> = (0..short.key_len() as u8).collect();
            let salt = [0x5au8; 14];
            let ctx = |p| SrtpContext::new(p, &key, &salt).unwrap();
            let (mut s, mut l) = (ctx(short), ctx(long));
            let rtp = [0x80, 0, 0, 1, 0, 0, 0, 1, 0xca, 0xfe, 0xba, 0xbe, 1, 2, 3];
            let (mut a, mut b) = (rtp.to_vec(), rtp.to_vec());
            s.protect_rtp(&mut a).unwrap();
            l.protect_rtp(&mut b).unwrap();
            assert_eq!(a.len(), rtp.len() + 4, "{short}");
            assert_eq!(a[..], b[..rtp.len() + 4], "{short}");
            let rtcp = [0x80, 201, 0, 1, 0xca, 0xfe, 0xba, 0xbe];
            let (mut a, mut b) = (rtcp.to_vec(), rtcp.to_vec());
            s.protect_rtcp(&mut a).unwrap();
            l.protect_rtcp(&mut b).unwrap();
            assert_eq!(a, b, "{short}: SRTCP keeps the 80-bit tag");
        }
    }

    #[test]
    fn names_are_the_sdes_crypto_suites() {
        let names: Vec<&str> = Profile::ALL.iter().map(|p| p.name()).collect();
        assert!(names.contains(&"AES_256_CM_HMAC_SHA1_32"));
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), Profile::ALL.len());
    }
}
