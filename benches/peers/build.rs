//! Compiles the C shim of each enabled peer and links the Debian library
//! behind it, found with pkg-config.

/// (cargo feature, pkg-config name, shim file in `shims/`).
const PEERS: &[(&str, &str, &str)] = &[
    ("LIBSRTP2", "libsrtp2", "libsrtp2.c"),
    ("BZRTP", "libbzrtp", "bzrtp.c"),
    ("SPEEXDSP", "speexdsp", "speexdsp.c"),
];

fn main() {
    for (feature, pkg, shim) in PEERS {
        if std::env::var_os(format!("CARGO_FEATURE_{feature}")).is_none() {
            continue;
        }
        let lib = pkg_config::Config::new().probe(pkg).unwrap_or_else(|e| {
            panic!(
                "{pkg} not found ({e}); run `cargo xtask setup` to install the Debian -dev package"
            )
        });
        let path = format!("shims/{shim}");
        println!("cargo:rerun-if-changed={path}");
        let mut build = cc::Build::new();
        build.file(&path).warnings(true).extra_warnings(true);
        for dir in &lib.include_paths {
            build.include(dir);
        }
        build.compile(&format!("sotto_peer_{}", pkg.trim_start_matches("lib")));
    }
}
