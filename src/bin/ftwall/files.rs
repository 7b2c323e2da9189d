//! The files ftwall writes as root (or as its own user): the one atomic-write helper, the
//! directory rule, and the guarded read of the state file.
//!
//! Invariants:
//! - every file the daemon writes (state file, client directory entries, metrics file) goes
//!   through [`Dir::write_atomic`]: the temporary file is created relative to a directory fd
//!   opened `O_DIRECTORY|O_NOFOLLOW`, with `O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC`, an
//!   unpredictable name (`.<name>.<16 hex digits from getrandom>.tmp`) and mode [`FILE_MODE`]
//!   set with `fchmod` (whatever the umask); it is written, fsynced, `renameat`'d over the
//!   target, and the directory is fsynced. A planted file or symlink at the temporary name makes
//!   the write fail (`EEXIST`), it is never followed, and a symlink at the target name is
//!   replaced, not written through (rename replaces the link itself);
//! - directories ftwall creates are [`DIR_MODE`];
//! - [`check_dir`] is the directory rule (OpenSSH `StrictModes` style): the directory holding
//!   one of those files must be owned by root or the daemon's user and writable by neither
//!   group nor others; each directory above it must be owned by root or the daemon's user and
//!   be either not writable by group/others or sticky. `ftwall run` refuses to start, and
//!   `ftwall check-config` fails, when a configured path breaks it;
//! - [`read_guarded`] opens with `O_NOFOLLOW|O_NONBLOCK` (a symlink or a FIFO cannot make it
//!   follow or block), checks with `fstat` that it is a regular file owned by root or the
//!   daemon's user, and reads at most `cap + 1` bytes (so a larger file is detected without
//!   reading it all).

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// Mode of every file ftwall writes.
pub(crate) const FILE_MODE: u32 = 0o640;
/// Mode of every directory ftwall creates.
pub(crate) const DIR_MODE: u32 = 0o750;

fn c_path(path: &OsStr) -> io::Result<CString> {
    CString::new(path.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// A single file name (no `/`, not `.` or `..`), as a C string.
fn c_name(name: &OsStr) -> io::Result<CString> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.contains(&b'/') || bytes == b"." || bytes == b".." {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{name:?} is not a file name")));
    }
    c_path(name)
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The effective uid of this process (root or the daemon's user is trusted besides root).
pub(crate) fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// 16 hex digits from the kernel's random source.
fn random_suffix() -> io::Result<String> {
    Ok(format!("{:016x}", random_u64()?))
}

/// 64 bits from the kernel's random source.
pub(crate) fn random_u64() -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    // SAFETY: the buffer is valid for writes of its length.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::from_be_bytes(bytes))
}

/// A directory held open (`O_DIRECTORY|O_NOFOLLOW`): the files are created, renamed and removed
/// relative to it, so a directory swapped in later by someone else is never written to.
#[derive(Debug)]
pub(crate) struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// Opens `path`, which must be a directory and not a symlink.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let c = c_path(path.as_os_str())?;
        // SAFETY: a valid NUL-terminated path; the returned fd is owned below.
        let fd = check(unsafe {
            libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        })
        .map_err(|e| io::Error::new(e.kind(), format!("opening directory {}: {e}", path.display())))?;
        // SAFETY: `fd` was just returned by open and is owned by nobody else.
        Ok(Self { fd: unsafe { OwnedFd::from_raw_fd(fd) }, path: path.to_path_buf() })
    }

    /// The directory of `file` (`.` for a bare name) and the file's name.
    pub(crate) fn of_file(file: &Path) -> io::Result<(Self, OsString)> {
        let name = file.file_name().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{} has no file name", file.display()))
        })?;
        Ok((Self::open(parent(file))?, name.to_owned()))
    }

    /// The path it was opened with.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces `name` with `body` atomically (see the module documentation): after a crash
    /// the file is either the old one or the new one, and a failed write leaves no temporary
    /// file behind.
    pub(crate) fn write_atomic(&self, name: &OsStr, body: &[u8]) -> io::Result<()> {
        let target = c_name(name)?;
        let mut tmp_name = OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.tmp", random_suffix()?));
        let tmp = c_name(&tmp_name)?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: a valid directory fd and NUL-terminated name; the fd is owned below.
        let fd = check(unsafe { libc::openat(self.fd.as_raw_fd(), tmp.as_ptr(), flags, FILE_MODE) })?;
        // SAFETY: `fd` was just returned by openat and is owned by nobody else.
        let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let result = (|| {
            // SAFETY: a valid fd; fchmod only changes its mode (the umask may have narrowed it).
            check(unsafe { libc::fchmod(file.as_raw_fd(), FILE_MODE) })?;
            file.write_all(body)?;
            file.sync_all()?;
            let dir = self.fd.as_raw_fd();
            // SAFETY: valid directory fds and NUL-terminated names.
            check(unsafe { libc::renameat(dir, tmp.as_ptr(), dir, target.as_ptr()) })?;
            self.sync()
        })();
        if result.is_err() {
            // SAFETY: as above; removes our own temporary name only (it may be gone already).
            unsafe { libc::unlinkat(self.fd.as_raw_fd(), tmp.as_ptr(), 0) };
        }
        result
    }

    /// Removes `name` (never a directory); a missing file is not an error.
    pub(crate) fn remove(&self, name: &OsStr) -> io::Result<()> {
        let c = c_name(name)?;
        // SAFETY: a valid directory fd and NUL-terminated name.
        match check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) }) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other.map(drop),
        }
    }

    /// The names in the directory (read through the held fd, not the path).
    pub(crate) fn names(&self) -> io::Result<Vec<OsString>> {
        let proc_path = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        let mut names = Vec::new();
        for entry in std::fs::read_dir(proc_path)? {
            names.push(entry?.file_name());
        }
        Ok(names)
    }

    /// fsyncs the directory (its entries: a rename is durable once this returns).
    pub(crate) fn sync(&self) -> io::Result<()> {
        // SAFETY: a valid fd.
        check(unsafe { libc::fsync(self.fd.as_raw_fd()) }).map(drop)
    }
}

/// The directory part of `file` (`.` for a bare name).
pub(crate) fn parent(file: &Path) -> &Path {
    file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Writes `file` atomically through [`Dir::write_atomic`].
pub(crate) fn write_atomic(file: &Path, body: &[u8]) -> io::Result<()> {
    let (dir, name) = Dir::of_file(file)?;
    dir.write_atomic(&name, body)
}

/// Creates `dir` and any missing parents with mode [`DIR_MODE`] (set explicitly, whatever the
/// umask); an existing directory is left as it is.
pub(crate) fn create_dir_all(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(up) = dir.parent() {
        create_dir_all(up)?;
    }
    match std::fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Why a directory breaks the directory rule.
fn dir_problem(meta: &std::fs::Metadata, own: u32, is_target: bool) -> Option<String> {
    let mode = meta.mode();
    if !meta.is_dir() {
        return Some("is not a directory".into());
    }
    if meta.uid() != 0 && meta.uid() != own {
        return Some(format!("is owned by uid {}, not by root or uid {own} (the daemon's user)", meta.uid()));
    }
    let writable_by_others = mode & 0o022 != 0;
    let sticky = mode & 0o1000 != 0;
    if writable_by_others && (is_target || !sticky) {
        return Some(format!("is writable by group or others (mode {:04o})", mode & 0o7777));
    }
    None
}

/// The directory rule (see the module documentation) for the directory that holds `file`,
/// checked for the daemon running as uid `own`: `Err` names the directory and what is wrong.
/// A directory that does not exist yet is checked by its nearest existing ancestor (ftwall
/// creates the rest with [`DIR_MODE`]).
pub(crate) fn check_dir(dir: &Path, own: u32) -> Result<(), String> {
    let absolute = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir().map_err(|e| format!("current directory: {e}"))?.join(dir)
    };
    // The nearest existing directory, resolved (symlinks in the path are followed: the rule is
    // about the directories the file really lives in).
    let mut existing = absolute.as_path();
    let resolved = loop {
        match std::fs::canonicalize(existing) {
            Ok(p) => break p,
            Err(_) => match existing.parent() {
                Some(p) => existing = p,
                None => return Err(format!("{}: no existing ancestor", dir.display())),
            },
        }
    };
    let mut current = PathBuf::new();
    let depth = resolved.components().count();
    for (i, component) in resolved.components().enumerate() {
        if let Component::Normal(_) | Component::RootDir = component {
            current.push(component);
        } else {
            continue;
        }
        let meta = std::fs::symlink_metadata(&current).map_err(|e| format!("{}: {e}", current.display()))?;
        if let Some(problem) = dir_problem(&meta, own, i + 1 == depth) {
            return Err(format!("{} {problem}", current.display()));
        }
    }
    Ok(())
}

/// What [`read_guarded`] found.
#[derive(Debug)]
pub(crate) enum Guarded {
    /// No file.
    Missing,
    /// The file's bytes: at most `cap + 1` (more than `cap`: the file is too large).
    Bytes(Vec<u8>),
}

/// Reads `file` guarded (see the module documentation); `Err` for a symlink, a file that is not
/// regular, a file owned by someone else, or a read error.
pub(crate) fn read_guarded(file: &Path, cap: usize) -> io::Result<Guarded> {
    read_checked(file, cap, false)
}

/// [`read_guarded`] for a secret: also `Err` when the file's mode lets its group or others
/// read or write it, checked on the open file (so a chmod between a check and the read
/// cannot slip through).
pub(crate) fn read_private(file: &Path, cap: usize) -> io::Result<Guarded> {
    read_checked(file, cap, true)
}

fn read_checked(file: &Path, cap: usize, private: bool) -> io::Result<Guarded> {
    let c = c_path(file.as_os_str())?;
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
    // SAFETY: a valid NUL-terminated path; the fd is owned below.
    let fd = match check(unsafe { libc::open(c.as_ptr(), flags) }) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Guarded::Missing),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "is a symbolic link; not followed"))
        }
        Err(e) => return Err(e),
    };
    // SAFETY: `fd` was just returned by open and is owned by nobody else.
    let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "is not a regular file"));
    }
    let own = own_uid();
    if meta.uid() != 0 && meta.uid() != own {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("is owned by uid {}, not by root or uid {own} (the daemon's user)", meta.uid()),
        ));
    }
    if private && meta.mode() & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("mode {:o} lets group or others read it; chmod 0600 (or 0400)", meta.mode() & 0o7777),
        ));
    }
    let mut bytes = Vec::new();
    file.take(cap as u64 + 1).read_to_end(&mut bytes)?;
    Ok(Guarded::Bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn atomic_write_is_0640_whatever_the_umask_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state");
        write_atomic(&file, b"one").unwrap();
        write_atomic(&file, b"two").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
        assert_eq!(mode(&file), FILE_MODE);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![OsString::from("state")]);
    }

    #[test]
    fn a_symlink_at_the_target_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let file = dir.path().join("state");
        std::os::unix::fs::symlink(&victim, &file).unwrap();
        write_atomic(&file, b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(std::fs::symlink_metadata(&file).unwrap().file_type().is_file());
    }

    #[test]
    fn a_symlinked_directory_is_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(write_atomic(&link.join("state"), b"x").is_err());
        assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0);
    }

    #[test]
    fn temporary_names_are_unpredictable() {
        let (a, b) = (random_suffix().unwrap(), random_suffix().unwrap());
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }

    #[test]
    fn created_directories_are_0750() {
        let dir = tempfile::tempdir().unwrap();
        create_dir_all(&dir.path().join("a/b")).unwrap();
        assert_eq!(mode(&dir.path().join("a")), DIR_MODE);
        assert_eq!(mode(&dir.path().join("a/b")), DIR_MODE);
    }

    #[test]
    fn the_directory_rule() {
        let dir = tempfile::tempdir().unwrap();
        let own = own_uid();
        let target = dir.path().join("state-dir");
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o750)).unwrap();
        assert_eq!(check_dir(&target, own), Ok(()));
        // Not existing yet: judged by the nearest existing ancestor.
        assert_eq!(check_dir(&target.join("later/deeper"), own), Ok(()));
        for bad in [0o770, 0o757, 0o1777] {
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(bad)).unwrap();
            let err = check_dir(&target, own).unwrap_err();
            assert!(err.contains("writable by group or others"), "{bad:o}: {err}");
            // An ancestor that is writable by others breaks the rule for what is below it,
            // unless it is sticky.
            let below = target.join("sub");
            let _ = std::fs::create_dir(&below);
            let verdict = check_dir(&below, own);
            assert_eq!(verdict.is_ok(), bad & 0o1000 != 0, "{bad:o}: {verdict:?}");
        }
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o750)).unwrap();
        // Owned by another user (this test runs as root to chown; skipped otherwise).
        if own == 0 {
            std::os::unix::fs::chown(&target, Some(65534), None).unwrap();
            let err = check_dir(&target, own).unwrap_err();
            assert!(err.contains("owned by uid 65534"), "{err}");
        }
    }

    #[test]
    fn guarded_read_refuses_symlinks_fifos_and_caps_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state");
        assert!(matches!(read_guarded(&file, 10).unwrap(), Guarded::Missing));
        std::fs::write(&file, b"0123456789abcdef").unwrap();
        match read_guarded(&file, 10).unwrap() {
            Guarded::Bytes(b) => assert_eq!(b, b"0123456789a"),
            other => panic!("{other:?}"),
        }
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(read_guarded(&link, 10).unwrap_err().to_string().contains("symbolic link"));
        let fifo = dir.path().join("fifo");
        let c = c_path(fifo.as_os_str()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(read_guarded(&fifo, 10).unwrap_err().to_string().contains("not a regular file"));
        assert!(read_guarded(Path::new("/dev/zero"), 10).is_err());
    }
}
