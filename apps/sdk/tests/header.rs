//! The committed `include/sotto.h` is what cbindgen generates from the
//! crate now. `SOTTO_UPDATE_HEADER=1 cargo test -p sotto-sdk --test header`
//! rewrites it.

use std::path::PathBuf;

#[test]
fn committed_header_is_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cfg = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(cfg)
        .generate()
        .expect("cbindgen failed")
        .write(&mut generated);
    let path = dir.join("include/sotto.h");
    if std::env::var_os("SOTTO_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/sotto.h is stale: run SOTTO_UPDATE_HEADER=1 cargo test -p sotto-sdk --test header"
    );
    let text = String::from_utf8(generated).unwrap();
    for f in [
        "sotto_engine_new",
        "sotto_call_new",
        "sotto_call_place",
        "sotto_call_signal",
        "sotto_call_pull_audio",
        "sotto_last_error_message",
        "SOTTO_EVENT_KIND_SECURE_UP",
        "SOTTO_EVENT_KIND_CACHE_MISMATCH",
        "SOTTO_EVENT_KIND_HELLO_HASH_MISMATCH",
        "SOTTO_EVENT_KIND_ZID_CACHE_ERROR",
        "sotto_engine_config_default",
        "zid_cache_path",
    ] {
        assert!(text.contains(f), "{f} missing from the header");
    }
}
