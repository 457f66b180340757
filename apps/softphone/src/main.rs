//! `sotto`: the desktop softphone and its diagnostic tools.
#![forbid(unsafe_code)]

mod zrtp_probe;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Sotto: encrypted voice and video calls.
#[derive(Debug, Parser)]
#[command(name = "sotto", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Top-level subcommands; the softphone's own (call, demo…) join here.
#[derive(Debug, Subcommand)]
enum Command {
    /// ZRTP tools.
    #[command(subcommand)]
    Zrtp(ZrtpCommand),
}

/// `sotto zrtp …`
#[derive(Debug, Subcommand)]
enum ZrtpCommand {
    /// Run a bare ZRTP endpoint against any ZRTP peer and print what was
    /// negotiated as one JSON line.
    Probe(zrtp_probe::ProbeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Zrtp(ZrtpCommand::Probe(args)) => zrtp_probe::main(args),
    }
}
