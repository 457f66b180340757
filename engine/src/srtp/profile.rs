//! The five protection profiles and their key, salt and tag sizes.

/// An SRTP protection profile: cipher, authentication and their sizes.
///
/// Names follow the SDES crypto-suite names (RFC 4568 §6.2, RFC 6188,
/// RFC 7714), which cover all five; DTLS-SRTP has no AES-256-CM profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// AES-128 counter mode, HMAC-SHA1 with an 80-bit tag (RFC 3711).
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, HMAC-SHA1 with a 32-bit SRTP tag; SRTCP keeps
    /// the 80-bit tag (RFC 4568 §6.2.2, RFC 5764 §4.1.2).
    AesCm128HmacSha1_32,
    /// AES-256 counter mode, HMAC-SHA1 with an 80-bit tag (RFC 6188).
    AesCm256HmacSha1_80,
    /// AES-128 in Galois/counter mode with a 128-bit tag (RFC 7714).
    AeadAes128Gcm,
    /// AES-256 in Galois/counter mode with a 128-bit tag (RFC 7714).
    AeadAes256Gcm,
}

impl Profile {
    /// Every profile, in registry order.
    pub const ALL: [Profile; 5] = [
        Profile::AesCm128HmacSha1_80,
        Profile::AesCm128HmacSha1_32,
        Profile::AesCm256HmacSha1_80,
        Profile::AeadAes128Gcm,
        Profile::AeadAes256Gcm,
    ];

    /// Length of the master (and session encryption) key in bytes.
    pub const fn key_len(self) -> usize {
        match self {
            Profile::AesCm128HmacSha1_80
            | Profile::AesCm128HmacSha1_32
            | Profile::AeadAes128Gcm => 16,
            Profile::AesCm256HmacSha1_80 | Profile::AeadAes256Gcm => 32,
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
            Profile::AesCm128HmacSha1_32 => 4,
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
