//! The user agent's side of Web Push (`webpush::UaKeys`, `webpush::decrypt`)
//! against an implementation that shares no code with ours: PyPI http_ece
//! encrypts (RFC 8291 over aes128gcm) for our keys at several record sizes;
//! each single-record body opens, and one of more records is refused (RFC
//! 8291 §4: a push is one record).

#[path = "common/python.rs"]
mod python;

use base64::Engine as _;
use sotto_signalling::push::webpush::{self, DecryptError, UaKeys};
use sotto_signalling::util::b64;

/// http_ece's body for `ua`, `plaintext` and record size `rs`.
fn http_ece_encrypt(ua: &UaKeys, plaintext: &[u8], rs: u32) -> Vec<u8> {
    let b64std = base64::engine::general_purpose::STANDARD;
    let req = serde_json::json!({
        "p256dh": b64(ua.public()),
        "auth": b64(ua.auth()),
        "plaintext": b64std.encode(plaintext),
        "rs": rs,
    });
    let out = python::run(&["encrypt"], &req);
    b64std.decode(out["body"].as_str().unwrap()).unwrap()
}

#[test]
fn opens_what_http_ece_encrypts_in_one_record() {
    let ua = UaKeys::generate().unwrap();
    // A delimiter and the tag take 17 octets of each record.
    for (plaintext, rs) in [
        (&b"x"[..], 18),
        (b"{\"call_id\":\"c1\",\"kind\":\"wake\"}", 47),
        (b"{\"call_id\":\"c1\",\"kind\":\"wake\"}", 4096),
        (&[0u8; 3000][..], 3017),
        (&[0xa5; 4079][..], 4096),
        (b"short", 1 << 20),
    ] {
        let body = http_ece_encrypt(&ua, plaintext, rs);
        assert_eq!(body[16..20], rs.to_be_bytes());
        assert_eq!(
            webpush::decrypt(&ua, &body).as_deref(),
            Ok(plaintext),
            "rs {rs}, {} octets",
            plaintext.len()
        );
        // Not for other keys.
        let other = UaKeys::generate().unwrap();
        assert_eq!(webpush::decrypt(&other, &body), Err(DecryptError::Open));
    }
}

#[test]
fn refuses_what_http_ece_splits_into_records() {
    let ua = UaKeys::generate().unwrap();
    for (len, rs) in [(2, 18), (100, 50), (5000, 4096)] {
        let body = http_ece_encrypt(&ua, &vec![7; len], rs);
        assert_eq!(
            webpush::decrypt(&ua, &body),
            Err(DecryptError::Record),
            "{len} octets in records of {rs}"
        );
    }
}
