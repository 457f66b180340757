//! Web Push message decryption (RFC 8291, aes128gcm of RFC 8188) on
//! arbitrary bodies, for fixed keys and for keys taken from the input, plus
//! records sealed from the input and checked against RFC 8188's padding
//! rules (see `sotto_signalling::push::webpush::fuzz_decrypt`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sotto_signalling::push::webpush::fuzz_decrypt(data));
