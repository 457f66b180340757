//! The `a=zrtp-hash` value of RFC 6189 §8.1: the ZRTP version, a space and
//! the hex SHA-256 of the sender's whole Hello message.

use super::crypto::{ct_eq, sha256};
use std::fmt;
use std::str::FromStr;

/// A Hello hash as exchanged in signalling.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HelloHash {
    version: [u8; 4],
    hash: [u8; 32],
}

/// A string that is not `"<version> <64 hex digits>"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad zrtp-hash {0:?}: expected \"1.10 <64 hex digits>\"")]
pub struct BadHelloHash(pub String);

impl HelloHash {
    /// The hash of an encoded Hello message.
    pub fn of_message(hello: &[u8]) -> Self {
        HelloHash {
            version: *b"1.10",
            hash: sha256(hello),
        }
    }

    /// Whether `hello` (an encoded Hello message) has this hash.
    pub fn matches(&self, hello: &[u8]) -> bool {
        ct_eq(&sha256(hello), &self.hash)
    }

    /// The raw SHA-256.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }
}

impl fmt::Display for HelloHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.version))?;
        f.write_str(" ")?;
        for b in self.hash {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for HelloHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HelloHash({self})")
    }
}

impl FromStr for HelloHash {
    type Err = BadHelloHash;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadHelloHash(s.to_string());
        let (version, hex) = s.trim().split_once(' ').ok_or_else(bad)?;
        let version: [u8; 4] = version.as_bytes().try_into().map_err(|_| bad())?;
        let hex = hex.trim();
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut hash = [0u8; 32];
        for (i, b) in hash.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(HelloHash { version, hash })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_parse_round_trip() {
        let h = HelloHash::of_message(b"hello");
        let s = h.to_string();
        assert!(s.starts_with("1.10 ") && s.len() == 69);
        assert_eq!(s.parse::<HelloHash>(), Ok(h));
        assert!(h.matches(b"hello") && !h.matches(b"hellp"));
        assert!("1.10 zz".parse::<HelloHash>().is_err());
        assert!("nonsense".parse::<HelloHash>().is_err());
    }
}
