//! The version string, a leaf: it imports nothing, so every shell module can name it without
//! reaching back up to `main.rs`.

/// The version reported by `ftwall --version`, `ftwall ctl status` and the metrics: the package
/// version plus git describe and commit date (build.rs).
pub(crate) const VERSION: &str = env!("FTWALL_VERSION");
