//! Finding the outside tools tests judge by (cryptsetup, qemu-img,
//! fsck.fat, mtools). One file, included by `#[path]` in the crates whose
//! tests need it, since those crates cannot depend on this one.

use std::path::PathBuf;

/// `name`'s path, from `PATH` or the sbin directories (fsck.fat and
/// cryptsetup live in /usr/sbin, which an ordinary user's `PATH` may
/// lack); a missing one fails the test, saying which Debian package to
/// install (`scripts/setup.sh` installs them all).
pub fn find_tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`{name}` not found (in PATH, /usr/sbin or /sbin): install the `{package}` package (apt-get install {package}; scripts/setup.sh does)");
}
