//! Algorithm identifiers of RFC 6189 §5.1.2–§5.1.6 and the negotiation
//! policy of §4.1.2.
//!
//! Names are the four-byte tags on the wire. Curve25519 is `X255`, as bzrtp
//! (and draft-zimmermann-avt-zrtp-curve25519) names it.

use std::fmt;

/// A four-byte algorithm tag as carried in Hello and Commit.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag(pub [u8; 4]);

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", String::from_utf8_lossy(&self.0))
    }
}

macro_rules! algo_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $tag:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $var),+ }

        impl $name {
            /// Every variant, in our default order of preference.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The four-byte wire tag.
            pub fn tag(self) -> Tag {
                match self { $($name::$var => Tag(*$tag)),+ }
            }

            /// Maps a wire tag to a known algorithm.
            pub fn from_tag(tag: Tag) -> Option<Self> {
                match &tag.0 { $($tag => Some($name::$var),)+ _ => None }
            }

            /// The wire tag as text (`"X255"`, `"S256"`…).
            pub fn name(self) -> &'static str {
                match self { $($name::$var => {
                    // Tags are ASCII literals, so this cannot fail.
                    std::str::from_utf8($tag).unwrap_or("????").trim_end()
                }),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownAlgorithm;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|a| a.name().eq_ignore_ascii_case(s.trim()))
                    .ok_or_else(|| UnknownAlgorithm(s.to_string()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

/// A name that matches no algorithm we implement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown ZRTP algorithm name {0:?}")]
pub struct UnknownAlgorithm(pub String);

algo_enum!(
    /// Negotiated hash (§5.1.2).
    HashAlgo { /** SHA-256 */ S256 = b"S256", /** SHA-384 */ S384 = b"S384" }
);
algo_enum!(
    /// Block cipher for SRTP and for the Confirm messages (§5.1.3).
    CipherAlgo { /** AES-128 */ Aes1 = b"AES1", /** AES-256 */ Aes3 = b"AES3" }
);
algo_enum!(
    /// SRTP authentication tag (§5.1.4).
    AuthTagAlgo { /** HMAC-SHA1, 32-bit tag */ Hs32 = b"HS32", /** HMAC-SHA1, 80-bit tag */ Hs80 = b"HS80" }
);
algo_enum!(
    /// Key agreement (§5.1.5), fastest first as §4.1.2 orders them.
    KeyAgreement {
        /** 2048-bit MODP (RFC 3526 group 14) */ Dh2k = b"DH2k",
        /** Curve25519 */ X255 = b"X255",
        /** NIST P-256 */ Ec25 = b"EC25",
        /** Curve448 */ X448 = b"X448",
        /** 3072-bit MODP (RFC 3526 group 15) */ Dh3k = b"DH3k",
        /** NIST P-384 */ Ec38 = b"EC38",
        /** Multistream mode (keys from an existing session) */ Mult = b"Mult",
    }
);
algo_enum!(
    /// SAS rendering (§5.1.6).
    SasAlgo { /** four base-32 characters */ B32 = b"B32 ", /** two PGP words */ B256 = b"B256" }
);

impl HashAlgo {
    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlgo::S256 => 32,
            HashAlgo::S384 => 48,
        }
    }
}

impl CipherAlgo {
    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            CipherAlgo::Aes1 => 16,
            CipherAlgo::Aes3 => 32,
        }
    }
}

impl KeyAgreement {
    /// Length of the public value in DHPart1/DHPart2; `None` for multistream.
    pub fn pv_len(self) -> Option<usize> {
        Some(match self {
            KeyAgreement::Dh2k => 256,
            KeyAgreement::Dh3k => 384,
            KeyAgreement::X255 => 32,
            KeyAgreement::X448 => 56,
            KeyAgreement::Ec25 => 64,
            KeyAgreement::Ec38 => 96,
            KeyAgreement::Mult => return None,
        })
    }

    /// Speed rank for the §4.1.2 tie-break (lower is faster).
    fn speed_rank(self) -> u8 {
        KeyAgreement::ALL
            .iter()
            .position(|k| *k == self)
            .unwrap_or(usize::MAX) as u8
    }
}

/// The algorithms one session uses, as fixed by the Commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    /// Hash for KDF, total_hash and the Confirm MAC.
    pub hash: HashAlgo,
    /// Cipher for SRTP and Confirm.
    pub cipher: CipherAlgo,
    /// SRTP authentication tag.
    pub auth: AuthTagAlgo,
    /// Key agreement (or `Mult`).
    pub key_agreement: KeyAgreement,
    /// SAS rendering.
    pub sas: SasAlgo,
}

impl Suite {
    /// The SRTP profile the suite's cipher (§5.1.3) and auth tag (§5.1.4)
    /// select; `None` for a pair the SRTP module does not implement (there
    /// is none today: every pair a [`Policy`] can negotiate or accept has a
    /// profile, and a unit test keeps it so).
    pub fn srtp_profile(&self) -> Option<crate::srtp::Profile> {
        use crate::srtp::Profile;
        Some(match (self.cipher, self.auth) {
            (CipherAlgo::Aes1, AuthTagAlgo::Hs80) => Profile::AesCm128HmacSha1_80,
            (CipherAlgo::Aes1, AuthTagAlgo::Hs32) => Profile::AesCm128HmacSha1_32,
            (CipherAlgo::Aes3, AuthTagAlgo::Hs80) => Profile::AesCm256HmacSha1_80,
            (CipherAlgo::Aes3, AuthTagAlgo::Hs32) => Profile::AesCm256HmacSha1_32,
        })
    }
}

/// The ZRTP names in the order of the Hello's algorithm lists (RFC 6189
/// §5.2): `S256 AES1 HS32 X255 B32`.
impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {}",
            self.hash, self.cipher, self.auth, self.key_agreement, self.sas
        )
    }
}

/// What we offer in our Hello and accept in a peer's Commit.
///
/// Each list is in our order of preference; algorithms missing from a list
/// are refused (so `key_agreements` without `Dh2k` refuses DH2k).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Hashes, preferred first.
    pub hashes: Vec<HashAlgo>,
    /// Ciphers, preferred first.
    pub ciphers: Vec<CipherAlgo>,
    /// SRTP auth tags, preferred first.
    pub auth_tags: Vec<AuthTagAlgo>,
    /// Key agreements, preferred first (`Mult` is added when needed).
    pub key_agreements: Vec<KeyAgreement>,
    /// SAS renderings, preferred first.
    pub sas: Vec<SasAlgo>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            hashes: vec![HashAlgo::S256, HashAlgo::S384],
            ciphers: vec![CipherAlgo::Aes1, CipherAlgo::Aes3],
            auth_tags: vec![AuthTagAlgo::Hs32, AuthTagAlgo::Hs80],
            key_agreements: vec![
                KeyAgreement::X255,
                KeyAgreement::X448,
                KeyAgreement::Ec25,
                KeyAgreement::Dh3k,
                KeyAgreement::Ec38,
                KeyAgreement::Mult,
            ],
            sas: vec![SasAlgo::B32, SasAlgo::B256],
        }
    }
}

/// Why a negotiation produced no suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// No common hash (§5.9 code 0x51).
    #[error("no common hash")]
    Hash,
    /// No common cipher (0x52).
    #[error("no common cipher")]
    Cipher,
    /// No common key agreement (0x53).
    #[error("no common key agreement")]
    KeyAgreement,
    /// No common SRTP auth tag (0x54).
    #[error("no common SRTP auth tag")]
    AuthTag,
    /// No common SAS rendering (0x55).
    #[error("no common SAS rendering")]
    Sas,
}

impl NegotiationError {
    /// The §5.9 error code to send.
    pub fn code(self) -> u32 {
        match self {
            NegotiationError::Hash => 0x51,
            NegotiationError::Cipher => 0x52,
            NegotiationError::KeyAgreement => 0x53,
            NegotiationError::AuthTag => 0x54,
            NegotiationError::Sas => 0x55,
        }
    }
}

/// The peer's offer, as parsed from its Hello (unknown tags dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offer {
    /// Hashes offered.
    pub hashes: Vec<HashAlgo>,
    /// Ciphers offered.
    pub ciphers: Vec<CipherAlgo>,
    /// Auth tags offered.
    pub auth_tags: Vec<AuthTagAlgo>,
    /// Key agreements offered.
    pub key_agreements: Vec<KeyAgreement>,
    /// SAS renderings offered.
    pub sas: Vec<SasAlgo>,
}

impl Offer {
    /// Adds the algorithms §5.1 makes mandatory to implement, which a Hello
    /// may leave implicit (S256, AES1, HS32, HS80, DH3k, B32).
    pub fn with_mandatory(mut self) -> Self {
        fn add<T: PartialEq>(v: &mut Vec<T>, t: T) {
            if !v.contains(&t) {
                v.push(t);
            }
        }
        add(&mut self.hashes, HashAlgo::S256);
        add(&mut self.ciphers, CipherAlgo::Aes1);
        add(&mut self.auth_tags, AuthTagAlgo::Hs32);
        add(&mut self.auth_tags, AuthTagAlgo::Hs80);
        add(&mut self.key_agreements, KeyAgreement::Dh3k);
        add(&mut self.sas, SasAlgo::B32);
        self
    }
}

fn first_common<T: Copy + PartialEq>(ours: &[T], theirs: &[T]) -> Option<T> {
    ours.iter().copied().find(|a| theirs.contains(a))
}

impl Policy {
    /// Chooses the suite an initiator puts in its Commit (§4.1.2): the key
    /// agreement is both sides' first common choice if they agree, else the
    /// faster of the two; the rest follow our preference, except that the
    /// 384-bit-strength key agreements (EC38, X448) take S384 and AES3 when
    /// both sides have them (§5.1.5).
    pub fn negotiate(&self, peer: &Offer) -> Result<Suite, NegotiationError> {
        let ours: Vec<KeyAgreement> = self
            .key_agreements
            .iter()
            .copied()
            .filter(|k| *k != KeyAgreement::Mult)
            .collect();
        let theirs: Vec<KeyAgreement> = peer
            .key_agreements
            .iter()
            .copied()
            .filter(|k| *k != KeyAgreement::Mult)
            .collect();
        let mine = first_common(&ours, &theirs).ok_or(NegotiationError::KeyAgreement)?;
        let their_first = first_common(&theirs, &ours).ok_or(NegotiationError::KeyAgreement)?;
        let key_agreement = if mine.speed_rank() <= their_first.speed_rank() {
            mine
        } else {
            their_first
        };
        self.complete(peer, key_agreement)
    }

    /// Chooses the multistream suite (§4.4.3): same rules with `Mult`.
    pub fn negotiate_multistream(&self, peer: &Offer) -> Result<Suite, NegotiationError> {
        if !self.key_agreements.contains(&KeyAgreement::Mult)
            || !peer.key_agreements.contains(&KeyAgreement::Mult)
        {
            return Err(NegotiationError::KeyAgreement);
        }
        self.complete(peer, KeyAgreement::Mult)
    }

    fn complete(
        &self,
        peer: &Offer,
        key_agreement: KeyAgreement,
    ) -> Result<Suite, NegotiationError> {
        let strong = matches!(key_agreement, KeyAgreement::Ec38 | KeyAgreement::X448);
        let prefer = |want: bool, cond: bool| want && cond;
        let hash = if prefer(
            strong,
            self.hashes.contains(&HashAlgo::S384) && peer.hashes.contains(&HashAlgo::S384),
        ) {
            HashAlgo::S384
        } else {
            first_common(&self.hashes, &peer.hashes).ok_or(NegotiationError::Hash)?
        };
        let cipher = if prefer(
            strong,
            self.ciphers.contains(&CipherAlgo::Aes3) && peer.ciphers.contains(&CipherAlgo::Aes3),
        ) {
            CipherAlgo::Aes3
        } else {
            first_common(&self.ciphers, &peer.ciphers).ok_or(NegotiationError::Cipher)?
        };
        Ok(Suite {
            hash,
            cipher,
            auth: first_common(&self.auth_tags, &peer.auth_tags)
                .ok_or(NegotiationError::AuthTag)?,
            key_agreement,
            sas: first_common(&self.sas, &peer.sas).ok_or(NegotiationError::Sas)?,
        })
    }

    /// Checks that a suite chosen by the peer's Commit is one we offered
    /// and accept.
    pub fn accepts(&self, suite: &Suite) -> Result<(), NegotiationError> {
        if !self.hashes.contains(&suite.hash) {
            return Err(NegotiationError::Hash);
        }
        if !self.ciphers.contains(&suite.cipher) {
            return Err(NegotiationError::Cipher);
        }
        if !self.auth_tags.contains(&suite.auth) {
            return Err(NegotiationError::AuthTag);
        }
        if !self.key_agreements.contains(&suite.key_agreement) {
            return Err(NegotiationError::KeyAgreement);
        }
        if !self.sas.contains(&suite.sas) {
            return Err(NegotiationError::Sas);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_bzrtp_spelling() {
        assert_eq!(KeyAgreement::X255.tag(), Tag(*b"X255"));
        assert_eq!(SasAlgo::B32.tag(), Tag(*b"B32 "));
        for k in KeyAgreement::ALL {
            assert_eq!(KeyAgreement::from_tag(k.tag()), Some(*k));
            assert_eq!(k.name().parse::<KeyAgreement>().ok(), Some(*k));
        }
        assert!("E255".parse::<KeyAgreement>().is_err());
    }

    #[test]
    fn faster_key_agreement_wins_when_first_choices_differ() {
        let ours = Policy {
            key_agreements: vec![KeyAgreement::Dh3k, KeyAgreement::X255],
            ..Policy::default()
        };
        let peer = Offer {
            key_agreements: vec![KeyAgreement::X255, KeyAgreement::Dh3k],
            ..Offer::default()
        }
        .with_mandatory();
        assert_eq!(
            ours.negotiate(&peer).map(|s| s.key_agreement),
            Ok(KeyAgreement::X255)
        );
    }

    #[test]
    fn refusing_dh2k_is_enforced() {
        let ours = Policy::default();
        let suite = Suite {
            hash: HashAlgo::S256,
            cipher: CipherAlgo::Aes1,
            auth: AuthTagAlgo::Hs32,
            key_agreement: KeyAgreement::Dh2k,
            sas: SasAlgo::B32,
        };
        assert_eq!(ours.accepts(&suite), Err(NegotiationError::KeyAgreement));
    }

    /// Every ordered subset (each non-empty subset of `all`, in `all`'s
    /// order and reversed) as a peer could list it in a Hello.
    fn offers<T: Copy>(all: &[T]) -> Vec<Vec<T>> {
        let mut out = Vec::new();
        for mask in 1u32..(1 << all.len()) {
            let v: Vec<T> = (0..all.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| all[i])
                .collect();
            let mut r = v.clone();
            r.reverse();
            out.push(v);
            if r.len() > 1 {
                out.push(r);
            }
        }
        out
    }

    /// Every suite the default policy can put in a Commit (DH or
    /// multistream), whatever a peer's Hello offers, has an SRTP profile.
    #[test]
    fn every_suite_the_default_policy_negotiates_has_an_srtp_profile() {
        let ours = Policy::default();
        let mut seen = std::collections::HashSet::new();
        for hashes in offers(HashAlgo::ALL) {
            for ciphers in offers(CipherAlgo::ALL) {
                for auth_tags in offers(AuthTagAlgo::ALL) {
                    for key_agreements in offers(KeyAgreement::ALL) {
                        for sas in offers(SasAlgo::ALL) {
                            let peer = Offer {
                                hashes: hashes.clone(),
                                ciphers: ciphers.clone(),
                                auth_tags: auth_tags.clone(),
                                key_agreements: key_agreements.clone(),
                                sas,
                            };
                            for suite in [ours.negotiate(&peer), ours.negotiate_multistream(&peer)]
                                .into_iter()
                                .flatten()
                            {
                                assert!(
                                    suite.srtp_profile().is_some(),
                                    "{suite} negotiated against {peer:?} has no SRTP profile"
                                );
                                seen.insert((suite.cipher, suite.auth));
                            }
                        }
                    }
                }
            }
        }
        // The reviewer's case: X448 or EC38 forces AES3 while HS32 stays
        // our first auth tag.
        assert!(seen.contains(&(CipherAlgo::Aes3, AuthTagAlgo::Hs32)));
        assert_eq!(seen.len(), CipherAlgo::ALL.len() * AuthTagAlgo::ALL.len());
    }

    /// Every suite a peer's Commit may choose that the default policy
    /// accepts has an SRTP profile.
    #[test]
    fn every_suite_the_default_policy_accepts_has_an_srtp_profile() {
        let ours = Policy::default();
        let mut accepted = 0;
        for &hash in HashAlgo::ALL {
            for &cipher in CipherAlgo::ALL {
                for &auth in AuthTagAlgo::ALL {
                    for &key_agreement in KeyAgreement::ALL {
                        for &sas in SasAlgo::ALL {
                            let suite = Suite {
                                hash,
                                cipher,
                                auth,
                                key_agreement,
                                sas,
                            };
                            if ours.accepts(&suite).is_ok() {
                                accepted += 1;
                                assert!(
                                    suite.srtp_profile().is_some(),
                                    "{suite} is accepted but has no SRTP profile"
                                );
                            }
                        }
                    }
                }
            }
        }
        assert!(accepted > 0);
    }

    /// X448 against a peer offering X448 and DH3k with the default lists
    /// (a Linphone/bzrtp peer): S384, AES3 and HS32, AES_256_CM_HMAC_SHA1_32.
    #[test]
    fn x448_with_the_default_policy_keys_aes_256_cm_sha1_32() {
        let peer = Offer {
            hashes: vec![HashAlgo::S256, HashAlgo::S384],
            ciphers: vec![CipherAlgo::Aes1, CipherAlgo::Aes3],
            key_agreements: vec![KeyAgreement::X448, KeyAgreement::Dh3k],
            ..Offer::default()
        }
        .with_mandatory();
        let s = Policy::default().negotiate(&peer).unwrap();
        assert_eq!(
            (s.key_agreement, s.hash, s.cipher, s.auth),
            (
                KeyAgreement::X448,
                HashAlgo::S384,
                CipherAlgo::Aes3,
                AuthTagAlgo::Hs32
            )
        );
        assert_eq!(
            s.srtp_profile(),
            Some(crate::srtp::Profile::AesCm256HmacSha1_32)
        );
    }

    #[test]
    fn strong_curves_take_s384_and_aes3() {
        let ours = Policy {
            key_agreements: vec![KeyAgreement::X448],
            ..Policy::default()
        };
        let peer = Offer {
            hashes: vec![HashAlgo::S256, HashAlgo::S384],
            ciphers: vec![CipherAlgo::Aes1, CipherAlgo::Aes3],
            key_agreements: vec![KeyAgreement::X448],
            ..Offer::default()
        }
        .with_mandatory();
        let s = ours.negotiate(&peer).unwrap();
        assert_eq!((s.hash, s.cipher), (HashAlgo::S384, CipherAlgo::Aes3));
    }
}
