//! `ftwall check-config` and `ftwall config`: validate a file, print the configuration in force.
//! Both read through [`super::load_config`], like every other command.
//!
//! `check-config` accepts only what starts: besides the file's keys and values it builds the
//! engine (so a capacity that cannot be allocated would show here, not at start) and applies
//! the directory rule ([`crate::files::check_dir`]) that `ftwall run` applies, for the user the
//! daemon runs as.

use super::{load_config, DEFAULT_PATH};
use anyhow::anyhow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The user of the shipped unit (`User=ftwall`).
const SERVICE_USER: &str = "ftwall";

/// The uid of user `name` (a name or a number), if it exists.
fn uid_of(name: &str) -> Option<u32> {
    if let Ok(uid) = name.parse() {
        return Some(uid);
    }
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated name; the returned record (static storage, single-threaded
    // command) is read at once.
    let entry = unsafe { libc::getpwnam(c.as_ptr()) };
    // SAFETY: non-null: a valid passwd record.
    (!entry.is_null()).then(|| unsafe { (*entry).pw_uid })
}

/// `ftwall check-config [--user USER] [FILE]`: the file (default: /etc/ftwall/ftwall.toml) must
/// exist. `user`: whom the daemon runs as (default: `ftwall` if that user exists, else the
/// caller).
pub(crate) fn check_config(file: Option<PathBuf>, user: Option<String>) -> anyhow::Result<ExitCode> {
    let path = file.unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
    let (config, _) = load_config(Some(&path))?;
    drop(ftwall::Engine::new(config.engine.clone()));
    let uid = match user {
        Some(name) => uid_of(&name).ok_or_else(|| anyhow!("no user {name:?}"))?,
        None => uid_of(SERVICE_USER).unwrap_or_else(crate::files::own_uid),
    };
    config.check_directories(uid).map_err(|e| anyhow!("{}: {e}", path.display()))?;
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
