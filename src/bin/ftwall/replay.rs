//! `ftwall replay` (being written).

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `ftwall replay`.
#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// Capture files (pcap or pcapng), processed in order by one engine.
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
}

pub(crate) fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("not built yet")
}
