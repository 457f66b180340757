//! `sotto`: the desktop softphone and its diagnostic tools.
#![forbid(unsafe_code)]

mod audio;
mod config;
mod demo;
mod demo_video;
mod devices;
mod impair;
mod keys;
mod phone;
mod plot;
mod push;
mod report;
mod session;
mod stats;
mod stop;
mod tui;
mod wire;
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
    /// A whole call on this machine: embedded signald and relay, push
    /// wake-up, relay-only media over LTE traces, ZRTP, quality report.
    Demo(demo::DemoArgs),
    /// Generate device keys, register them with a signald, write the config.
    Register(phone::RegisterArgs),
    /// Call a contact (or a device id).
    Call(phone::CallArgs),
    /// Wait for calls.
    Listen(phone::ListenArgs),
    /// List sound devices: the ids to use with --input-device/--output-device
    /// or in config.toml.
    Devices,
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
        Command::Demo(args) => block_on(demo::run(args)),
        Command::Register(args) => block_on(phone::register(args)),
        Command::Call(args) => block_on(phone::call(args)),
        Command::Listen(args) => block_on(phone::listen(args)),
        Command::Devices => print_devices(),
    }
}

fn print_devices() -> ExitCode {
    match devices::list() {
        Ok((inputs, outputs)) => {
            for (kind, list) in [("input", inputs), ("output", outputs)] {
                println!("{kind} devices:");
                for d in list {
                    println!("  {:<40} {}", d.id, d.description);
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sotto: {}", report::Causes(&e));
            ExitCode::FAILURE
        }
    }
}

/// Runs an async command on a multi-threaded runtime; errors exit 1, and
/// a stop signal that ended the command before its work was done exits
/// as a shell reports that signal (130 for Ctrl-C).
fn block_on(f: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sotto: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sotto: {}", report::Causes(&e));
            match stop::stopped(&e) {
                Some(s) => ExitCode::from(s.signal.exit_code()),
                None => ExitCode::FAILURE,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callee(args: &[&str]) -> String {
        match Cli::try_parse_from(args).map(|c| c.command) {
            Ok(Command::Call(a)) => a.user,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn a_device_id_starting_with_a_hyphen_can_be_called() {
        // A real id from a run where `sotto call` refused it as a flag.
        let id = "-gfDc0NvdVrWK50yd0ho5Q";
        assert_eq!(callee(&["sotto", "call", id, "--seconds", "3"]), id);
        assert_eq!(callee(&["sotto", "call", "--seconds", "3", id]), id);
        assert_eq!(callee(&["sotto", "call", "alice", "--relay-only"]), "alice");
        // Options after it are still options.
        match Cli::try_parse_from(["sotto", "call", id, "--seconds", "3"]).map(|c| c.command) {
            Ok(Command::Call(a)) => assert_eq!(a.opts.seconds, Some(3)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn seconds_is_bounded_so_the_hang_up_timer_cannot_overflow() {
        let parse = |s: &str| Cli::try_parse_from(["sotto", "call", "bob", "--seconds", s]);
        assert!(parse("18446744073709551615").is_err());
        assert!(parse("31536001").is_err());
        assert!(parse("31536000").is_ok());
        assert!(parse("0").is_ok());
    }

    #[test]
    fn output_without_input_is_refused() {
        let e = Cli::try_parse_from(["sotto", "listen", "--output", "heard.wav"]).unwrap_err();
        assert!(e.to_string().contains("--input"), "{e}");
        assert!(
            Cli::try_parse_from(["sotto", "listen", "--input", "a.wav", "--output", "b.wav"])
                .is_ok()
        );
    }
}
