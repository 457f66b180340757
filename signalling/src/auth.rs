//! What devices sign to register and to open a session. Domain-separated
//! so a signature made for one purpose is useless for another.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::protocol::DeviceId;

/// How long a session challenge nonce stays valid, milliseconds.
pub const CHALLENGE_TTL_MS: u64 = 60_000;

/// Bytes signed to register keys (proves possession of the signing key).
pub fn register_bytes(sign_key_b64: &str, seal_key_b64: &str) -> Vec<u8> {
    [
        b"sotto-register v1\0",
        sign_key_b64.as_bytes(),
        b"\0",
        seal_key_b64.as_bytes(),
    ]
    .concat()
}

/// Bytes signed to answer a session challenge: `"sotto-session v2\0" ||
/// origin || "\0" || device id || "\0" || nonce`, the origin being the
/// canonical [`Origin`] of the server the device is talking to.
///
/// The origin is what binds a login to one server. Without it (v1 signed
/// only the device id and nonce) a signald where the device is registered
/// could fetch a challenge from another signald where it is registered
/// too, pass that nonce off as its own, and log in there as the device
/// with the device's answer. Now the answer names the server the device
/// meant, and a server refuses one signed for an origin it does not answer
/// to (`public_origins`). Neither an origin nor a device id can hold a NUL,
/// and the nonce is last, so the fields cannot be shifted into each other.
/// There is no v1 any more: v1 answers do not verify as v2.
pub fn session_bytes(origin: &Origin, device: &DeviceId, nonce: &str) -> Vec<u8> {
    [
        b"sotto-session v2\0".as_slice(),
        origin.as_str().as_bytes(),
        b"\0",
        device.as_str().as_bytes(),
        b"\0",
        nonce.as_bytes(),
    ]
    .concat()
}

/// Why a text is not an `http:` or `https:` origin.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OriginError {
    /// Not a URL with a host at all.
    #[error("not an absolute URL with a host")]
    NotUrl,
    /// A scheme other than `http` or `https`.
    #[error("the scheme {0:?} is neither http nor https")]
    Scheme(String),
    /// An origin was wanted, but there is more than scheme, host and port
    /// (a path, query, fragment or user name).
    #[error("more than scheme://host[:port] (a path, query, fragment or user name)")]
    NotBare,
}

/// A web origin, `scheme://host[:port]` (RFC 6454), in one canonical
/// form so that two spellings of one server compare equal: scheme and host
/// in lower case, an internationalised name in its `xn--` form, an IP
/// literal as the URL standard writes it (`127.0.0.1`, `[::1]`), the port
/// left out when it is the scheme's default (80, 443), no trailing slash.
/// Only `http` and `https`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin(String);

impl Origin {
    /// The origin of a server's base URL, such as the one a
    /// [`crate::client::SignalClient`] is given: any path (a signald
    /// behind a proxy at `https://example.org/signal/`), query or fragment
    /// is dropped.
    pub fn of_url(url: &str) -> Result<Self, OriginError> {
        Self::from_url(&reqwest::Url::parse(url).map_err(|_| OriginError::NotUrl)?)
    }

    /// An origin as written in a configuration: `scheme://host[:port]`,
    /// optionally with a trailing `/`, and nothing more.
    pub fn parse(text: &str) -> Result<Self, OriginError> {
        let url = reqwest::Url::parse(text).map_err(|_| OriginError::NotUrl)?;
        let bare = url.path() == "/"
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none();
        let origin = Self::from_url(&url)?;
        if !bare {
            return Err(OriginError::NotBare);
        }
        Ok(origin)
    }

    /// The `http:` origin of an address a server listens on.
    pub fn of_addr(addr: std::net::SocketAddr) -> Result<Self, OriginError> {
        // A scoped IPv6 address (fe80::1%eth0) has no URL form.
        Self::of_url(&format!("http://{addr}"))
    }

    fn from_url(url: &reqwest::Url) -> Result<Self, OriginError> {
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(OriginError::Scheme(other.to_owned())),
        }
        if url.host().is_none() {
            return Err(OriginError::NotUrl);
        }
        // Scheme and host are lower case, the host in its ASCII form, and
        // the default port is left out: RFC 6454 §6.2.
        Ok(Self(url.origin().ascii_serialization()))
    }

    /// The origin as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A session token and when it expires. Its `Debug` form leaves the token
/// out, so that logging the answer does not log a bearer credential.
#[derive(Clone, Serialize, Deserialize)]
pub struct SessionAnswer {
    /// The bearer token.
    pub token: String,
    /// Expiry, Unix milliseconds.
    pub expires_ms: u64,
}

impl std::fmt::Debug for SessionAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionAnswer")
            .field("token", &"<redacted>")
            .field("expires_ms", &self.expires_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_answer_does_not_print_its_token() {
        let a = SessionAnswer {
            token: "s3cr3t-bearer".into(),
            expires_ms: 5,
        };
        let shown = format!("{a:?}");
        assert!(!shown.contains("s3cr3t-bearer"), "{shown}");
        assert!(shown.contains('5'), "{shown}");
    }

    fn origin(url: &str) -> String {
        Origin::of_url(url).unwrap().to_string()
    }

    #[test]
    fn origins_are_normalised() {
        // Case of scheme and host; the port is kept.
        assert_eq!(
            origin("HTTPS://Signal.Example.ORG:8443"),
            "https://signal.example.org:8443"
        );
        // Default ports are left out, other ports kept.
        assert_eq!(origin("https://a.example:443"), "https://a.example");
        assert_eq!(origin("http://a.example:80/"), "http://a.example");
        assert_eq!(origin("http://a.example:443"), "http://a.example:443");
        assert_eq!(origin("https://a.example:80"), "https://a.example:80");
        // Trailing slash, path, query, fragment and user name are dropped.
        assert_eq!(origin("https://a.example/"), "https://a.example");
        assert_eq!(
            origin("https://u:p@a.example/signal/v1/?x=1#f"),
            "https://a.example"
        );
        // IPv6 literals in brackets, in their shortest form; IPv4 literals.
        assert_eq!(origin("http://[::1]:8787"), "http://[::1]:8787");
        assert_eq!(origin("https://[0:0:0:0:0:0:0:1]:443/"), "https://[::1]");
        assert_eq!(origin("http://[2001:DB8::A]"), "http://[2001:db8::a]");
        assert_eq!(origin("http://127.0.0.1:8787"), "http://127.0.0.1:8787");
        // Internationalised names in their ASCII form.
        assert_eq!(
            origin("https://bücher.example"),
            "https://xn--bcher-kva.example"
        );
        // Addresses a server listens on.
        let v6: std::net::SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(Origin::of_addr(v6).unwrap().as_str(), "http://[::1]");
        let v4: std::net::SocketAddr = "127.0.0.1:8787".parse().unwrap();
        assert_eq!(
            Origin::of_addr(v4).unwrap().as_str(),
            "http://127.0.0.1:8787"
        );
    }

    #[test]
    fn only_http_and_https_urls_with_a_host_have_an_origin() {
        assert_eq!(
            Origin::of_url("wss://a.example"),
            Err(OriginError::Scheme("wss".into()))
        );
        assert!(matches!(
            Origin::of_url("file:///etc/passwd"),
            Err(OriginError::Scheme(_))
        ));
        for bad in ["", "a.example", "/v1", "https://", "http://exa mple.org"] {
            assert_eq!(Origin::of_url(bad), Err(OriginError::NotUrl), "{bad:?}");
        }
    }

    #[test]
    fn a_configured_origin_is_only_scheme_host_and_port() {
        assert_eq!(
            Origin::parse("HTTPS://Signal.Example.org:443/")
                .unwrap()
                .as_str(),
            "https://signal.example.org"
        );
        for bad in [
            "https://a.example/signal",
            "https://a.example?x",
            "https://a.example#f",
            "https://user@a.example",
        ] {
            assert_eq!(Origin::parse(bad), Err(OriginError::NotBare), "{bad:?}");
        }
    }

    #[test]
    fn session_bytes_name_the_origin_and_are_v2() {
        let device = DeviceId::new("dev").unwrap();
        let a = Origin::of_url("https://a.example").unwrap();
        let b = Origin::of_url("https://b.example").unwrap();
        assert_eq!(
            session_bytes(&a, &device, "n"),
            b"sotto-session v2\0https://a.example\0dev\0n"
        );
        assert_ne!(
            session_bytes(&a, &device, "n"),
            session_bytes(&b, &device, "n")
        );
    }
}
