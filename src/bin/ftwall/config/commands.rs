//! `ftwall check-config` and `ftwall config`: validate a file, print the configuration in force.
//! Both read through [`super::load_config`], like every other command.

use super::{load_config, DEFAULT_PATH};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `ftwall check-config [FILE]`: the file (default: /etc/ftwall/ftwall.toml) must exist.
pub(crate) fn check_config(file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let path = file.unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
    load_config(Some(&path))?;
    println!("{}: ok", path.display());
    Ok(ExitCode::SUCCESS)
}

/// `ftwall config [--config FILE]`: the file, else the default file if present, else the
/// built-in defaults, as TOML.
pub(crate) fn print_config(file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (config, path) = load_config(file)?;
    match path {
        Some(p) => println!("# effective configuration from {}", p.display()),
        None => println!("# effective configuration (built-in defaults)"),
    }
    print!("{}", config.to_toml_string());
    Ok(ExitCode::SUCCESS)
}
