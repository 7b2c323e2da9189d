//! Loading the configuration file, with errors that name the file, line and column.

use anyhow::{anyhow, Context};
use ftwall::config::ConfigError;
use ftwall::Config;
use std::path::{Path, PathBuf};

/// The file used when `--config` is not given.
pub(crate) const DEFAULT_PATH: &str = "/etc/ftwall/ftwall.toml";

/// Which file to load: the one given, else the default path if it exists, else none (defaults).
pub(crate) fn resolve(path: Option<&Path>) -> Option<PathBuf> {
    match path {
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from(DEFAULT_PATH)).filter(|p| p.exists()),
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Parses `text` (read from `path`) into a validated configuration.
pub(crate) fn parse(path: &Path, text: &str) -> anyhow::Result<Config> {
    match Config::from_toml_str(text) {
        Ok(config) => Ok(config),
        Err(ConfigError::Parse(err)) => {
            let message = err.message().trim_end().to_string();
            match err.span() {
                Some(span) => {
                    let (line, col) = line_col(text, span.start);
                    Err(anyhow!("{}:{line}:{col}: {message}", path.display()))
                }
                None => Err(anyhow!("{}: {message}", path.display())),
            }
        }
        Err(other) => Err(anyhow!("{}: {other}", path.display())),
    }
}

/// Loads the configuration: the given file, else the default file if present, else defaults.
pub(crate) fn load(path: Option<&Path>) -> anyhow::Result<(Config, Option<PathBuf>)> {
    match resolve(path) {
        Some(file) => {
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            Ok((parse(&file, &text)?, Some(file)))
        }
        None => Ok((Config::default(), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_file_line_and_column() {
        let path = Path::new("/etc/ftwall/ftwall.toml");
        let err = parse(path, "mode = \"enforce\"\n\n[timelock]\nsecs = 3\n").unwrap_err().to_string();
        assert!(err.starts_with("/etc/ftwall/ftwall.toml:4:1: "), "{err}");
        assert!(err.contains("secs"), "{err}");
        let err = parse(path, "queue = \"zero\"\n").unwrap_err().to_string();
        assert!(err.starts_with("/etc/ftwall/ftwall.toml:1:9: "), "{err}");
        let err = parse(path, "[peers]\ncapacity = 0\n").unwrap_err().to_string();
        assert!(err.contains("peers.capacity"), "{err}");
        assert_eq!(parse(path, "").unwrap(), Config::default());
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
