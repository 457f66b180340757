//! Compact JWS signing (RFC 7515/7519) for VAPID and APNs (ES256) and for
//! the FCM service-account OAuth grant (RS256), on `ring`.

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};
use serde_json::Value;

use super::PushError;
use crate::util::{b64, unb64};

/// A key that signs JWTs.
pub enum JwtKey {
    /// ECDSA P-256 with SHA-256 (`ES256`), raw r‖s signatures.
    Es256(EcdsaKeyPair),
    /// RSASSA-PKCS1-v1_5 with SHA-256 (`RS256`).
    Rs256(RsaKeyPair),
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Es256(_) => "JwtKey::Es256",
            Self::Rs256(_) => "JwtKey::Rs256",
        })
    }
}

impl JwtKey {
    /// A P-256 key from PKCS#8 (DER, or PEM text).
    pub fn es256_from_pkcs8(data: &[u8]) -> Result<Self, PushError> {
        let der = pem_or_der(data)?;
        EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &der,
            &SystemRandom::new(),
        )
        .map(Self::Es256)
        .map_err(|_| PushError::Key("not a PKCS#8 P-256 key"))
    }

    /// An RSA key from PKCS#8 (DER, or PEM text).
    pub fn rs256_from_pkcs8(data: &[u8]) -> Result<Self, PushError> {
        let der = pem_or_der(data)?;
        RsaKeyPair::from_pkcs8(&der)
            .map(Self::Rs256)
            .map_err(|_| PushError::Key("not a PKCS#8 RSA key"))
    }

    /// A fresh P-256 key and its PKCS#8 DER (to save).
    pub fn generate_es256() -> Result<(Self, Vec<u8>), PushError> {
        let doc = EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &SystemRandom::new(),
        )
        .map_err(|_| PushError::Key("key generation failed"))?;
        let der = doc.as_ref().to_vec();
        Ok((Self::es256_from_pkcs8(&der)?, der))
    }

    /// The public key: uncompressed P-256 point for ES256, DER for RS256.
    pub fn public_key(&self) -> Vec<u8> {
        use ring::signature::KeyPair as _;
        match self {
            Self::Es256(k) => k.public_key().as_ref().to_vec(),
            Self::Rs256(k) => k.public().as_ref().to_vec(),
        }
    }

    /// Signs `claims` under a header with `alg` and the extra `header` fields.
    pub fn sign(&self, mut header: Value, claims: &Value) -> Result<String, PushError> {
        let alg = match self {
            Self::Es256(_) => "ES256",
            Self::Rs256(_) => "RS256",
        };
        header["alg"] = Value::from(alg);
        header["typ"] = Value::from("JWT");
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let sig = match self {
            Self::Es256(k) => k
                .sign(&rng, input.as_bytes())
                .map_err(|_| PushError::Key("signing failed"))?
                .as_ref()
                .to_vec(),
            Self::Rs256(k) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| PushError::Key("signing failed"))?;
                sig
            }
        };
        Ok(format!("{input}.{}", b64(&sig)))
    }
}

/// Accepts DER, or PEM text whose body is base64 of DER.
fn pem_or_der(data: &[u8]) -> Result<Vec<u8>, PushError> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(data.to_vec());
    };
    if !text.contains("-----BEGIN") {
        return Ok(data.to_vec());
    }
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.trim().chars())
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    unb64(&body).ok_or(PushError::Key("bad PEM"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn es256_token_verifies_with_public_key() {
        let (key, der) = JwtKey::generate_es256().unwrap();
        let jwt = key
            .sign(
                serde_json::json!({"kid": "K"}),
                &serde_json::json!({"iss": "T"}),
            )
            .unwrap();
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let pk = signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            key.public_key(),
        );
        pk.verify(input.as_bytes(), &unb64(sig).unwrap()).unwrap();
        // The PEM form of the same key loads too.
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der)
        );
        assert_eq!(
            JwtKey::es256_from_pkcs8(pem.as_bytes())
                .unwrap()
                .public_key(),
            key.public_key()
        );
        let header = unb64(jwt.split('.').next().unwrap()).unwrap();
        let header: Value = serde_json::from_slice(&header).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "K");
    }
}
