//! Shared helpers for Sotto's benchmarks: how a side-by-side result is
//! reported (a table line per case and one final JSON line).
