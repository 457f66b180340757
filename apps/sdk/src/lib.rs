//! `sotto-sdk`: the C ABI over `sotto-engine`. Nothing is exported yet.
