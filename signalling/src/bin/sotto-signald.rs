//! The `sotto-signald` server binary.
fn main() {}
