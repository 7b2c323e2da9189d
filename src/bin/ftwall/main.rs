//! `ftwall`: the IO shell around the sans-IO engine in the `ftwall` library.
//!
//! - `ftwall run` (default): the live NFQUEUE daemon (`daemon/`).
//! - `ftwall replay`: the same engine over pcap/pcapng files (`replay.rs`).
//! - `ftwall check-config` / `ftwall config`: validate / print the configuration.
//! - `ftwall man` (hidden): the man page, for packaging (`man.rs`).

mod daemon;
mod man;
mod replay;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Stops FastTrack (Kazaa, KazaaLite, iMesh, Grokster) traffic at a Linux gateway.
#[derive(Debug, Parser)]
// FTWALL_VERSION: the package version plus git describe and commit date (build.rs).
#[command(name = "ftwall", version = env!("FTWALL_VERSION"), about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Options of `run`, accepted without the subcommand name too.
    #[command(flatten)]
    run: daemon::RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the NFQUEUE daemon (the default).
    Run(daemon::RunArgs),
    /// Run the engine over capture files and report verdicts.
    Replay(replay::ReplayArgs),
    /// Validate a configuration file.
    CheckConfig {
        /// The file (default: /etc/ftwall/ftwall.toml).
        file: Option<PathBuf>,
    },
    /// Print the effective configuration as TOML.
    Config {
        /// The file (default: /etc/ftwall/ftwall.toml if it exists, else built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the man page (roff, section 8), or write all pages with --dir.
    #[command(hide = true)]
    Man(man::ManArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => daemon::run(cli.run),
        Some(Command::Run(args)) => daemon::run(args),
        Some(Command::Replay(args)) => replay::run(args),
        Some(Command::CheckConfig { file }) => daemon::check_config(file),
        Some(Command::Config { config }) => daemon::print_config(config),
        Some(Command::Man(args)) => man::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ftwall: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
