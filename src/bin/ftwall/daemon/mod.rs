//! The live daemon (being written).

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `ftwall run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Configuration file (default: /etc/ftwall/ftwall.toml if it exists, else built-in defaults).
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
}

pub(crate) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("the daemon is not built yet")
}

pub(crate) fn check_config(file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let _ = file;
    anyhow::bail!("not built yet")
}

pub(crate) fn print_config(file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let _ = file;
    anyhow::bail!("not built yet")
}
