//! `sotto`: the desktop softphone.
#![forbid(unsafe_code)]

fn main() {
    eprintln!("sotto: the softphone is not built yet (see the issue tracker)");
    std::process::exit(2);
}
