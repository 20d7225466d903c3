//! A small tmpfs for the full-disk tests of the engine and of the broker
//! (`tools/tests/full_disk.rs` includes this file by path).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `size` mounted on `path`; unmounted (lazily) on drop.
pub struct SmallFs {
    pub path: PathBuf,
}

impl SmallFs {
    /// Mounts it (creating `path`); `None`, with a message, where that is not
    /// allowed (it needs root), so the test can skip.
    pub fn mount(path: &Path, size: &str) -> Option<SmallFs> {
        std::fs::create_dir_all(path).expect("mount point");
        let status =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(path).status();
        match status {
            Ok(s) if s.success() => Some(SmallFs { path: path.to_path_buf() }),
            other => {
                eprintln!("SKIPPED: cannot mount a tmpfs ({other:?}); the full-disk test needs root");
                None
            }
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
