//! `sotto-signalling`: the signalling wire protocol, client and server.
#![forbid(unsafe_code)]
