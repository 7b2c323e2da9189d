//! `ftwall`: the IO shell around the sans-IO engine in the `ftwall` library.
//!
//! - `ftwall run` (default): the live NFQUEUE daemon (`daemon/`).
//! - `ftwall replay`: the same engine over pcap/pcapng files (`replay/`).
//! - `ftwall check-config` / `ftwall config`: validate / print the configuration (`config/`, which
//!   also loads it for every other command).
//! - `ftwall ctl`: ask the running daemon over its control socket (`ctl.rs`, `daemon/control.rs`).
//! - `ftwall lab`: a throw-away namespace gateway demo, and `lab up|down`, the namespaces alone
//!   (`lab/`); `ftwall sim`: the FastTrack simulator it and the end-to-end tests use (`sim.rs`).
//! - `ftwall completions SHELL`: a shell completion script (clap_complete, here in `main.rs`).
//! - `ftwall man` (hidden): the man pages, for packaging (`man.rs`).
//! - `ftwall bench-accept-all` (hidden): an NFQUEUE consumer that accepts everything, the
//!   yardstick of `benches/live.sh` (`bench_accept_all.rs`).
//! - `ftwall bench-traffic` (hidden): UDP load generators for `benches/` and the tests
//!   (`bench_traffic.rs`).

// The shell is where the clock, files, sockets and threads live: clippy.toml's list binds only
// the library (Cargo.toml allows it crate-wide; said again here so it reads as a decision).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod bench_accept_all;
mod bench_traffic;
mod clock;
mod config;
mod ctl;
mod daemon;
mod events;
mod files;
mod lab;
mod man;
mod protocol;
mod replay;
mod sim;
mod version;

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use version::VERSION;

/// Stops FastTrack (Kazaa, KazaaLite, iMesh, Grokster) traffic at a Linux gateway.
#[derive(Debug, Parser)]
#[command(name = "ftwall", version = VERSION, about, long_about = None)]
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
    /// Validate a configuration file: its keys and values, that the engine it describes can be
    /// built, and that the directories of its files pass the directory rule.
    CheckConfig {
        /// The file (default: /etc/ftwall/ftwall.toml).
        file: Option<PathBuf>,
        /// The user the daemon runs as, for the directory rule (default: ftwall if that user
        /// exists, else the caller).
        #[arg(long)]
        user: Option<String>,
    },
    /// Build a throw-away gateway in network namespaces, run ftwall and FastTrack traffic
    /// through it, print what was blocked, and clean up (root; the newcomer's first command).
    /// `lab up` / `lab down`: the namespaces alone, for tests and benchmarks.
    Lab(lab::LabArgs),
    /// FastTrack client simulator and responder, to check a deployment end to end.
    Sim(sim::SimArgs),
    /// Ask the running daemon: status, clients, peers, bans; release, ban, unban an address.
    Ctl(ctl::CtlArgs),
    /// Print the effective configuration as TOML.
    Config {
        /// The file (default: /etc/ftwall/ftwall.toml if it exists, else built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print a shell completion script (the .deb installs bash, zsh and fish ones), e.g.
    /// `ftwall completions bash > /etc/bash_completion.d/ftwall`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff, section 8), or write all pages with --dir.
    #[command(hide = true)]
    Man(man::ManArgs),
    /// Accept every packet of an NFQUEUE with the daemon's queue settings (benches/live.sh).
    #[command(hide = true)]
    BenchAcceptAll(bench_accept_all::AcceptAllArgs),
    /// UDP load generators for the benchmarks and tests: blast, sink, flood, latency.
    #[command(hide = true)]
    BenchTraffic(bench_traffic::BenchTrafficArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => daemon::run(cli.run),
        Some(Command::Run(args)) => daemon::run(args),
        Some(Command::Replay(args)) => replay::run(args),
        Some(Command::CheckConfig { file, user }) => config::commands::check_config(file, user),
        Some(Command::Config { config }) => config::commands::print_config(config.as_deref()),
        Some(Command::Ctl(args)) => ctl::run(args),
        Some(Command::Lab(args)) => lab::run(args),
        Some(Command::Sim(args)) => sim::run(args).map(|()| ExitCode::SUCCESS).map_err(Into::into),
        Some(Command::Completions { shell }) => {
            clap_complete::generate(shell, &mut Cli::command(), "ftwall", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Man(args)) => man::run(args),
        Some(Command::BenchAcceptAll(args)) => bench_accept_all::run(args),
        Some(Command::BenchTraffic(args)) => {
            bench_traffic::run(args).map(|()| ExitCode::SUCCESS).map_err(Into::into)
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ftwall: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
