//! `sotto-relay`: a TURN relay for Sotto calls and standard TURN clients.
#![forbid(unsafe_code)]

fn main() {
    eprintln!("sotto-relay: the TURN server is not built yet (see the issue tracker)");
    std::process::exit(2);
}
