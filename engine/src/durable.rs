//! Replacing a small file so that a crash leaves the old content or the new,
//! never a mix or nothing: write a temporary file beside it, sync it, rename
//! it over, sync the directory (which makes the rename durable). The blocking
//! versions are for startup and the controller's rare writes; the `_async`
//! ones (glommio DMA) for the shard threads' frequent ones. A temporary left
//! by a crash is its caller's to remove (each uses a fixed name).

use std::io::Write;
use std::path::Path;

use weir_runtime::io::Directory;

use crate::error::{io_err, EngineError};
use crate::segment;
use crate::storage;

/// Replaces `path` with `bytes` through the temporary `temporary` (in the
/// same directory).
pub fn replace_file(path: &Path, temporary: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::File::create(temporary)?;
    file.write_all(bytes)?;
    storage::sync_std_file(&file, temporary)?;
    std::fs::rename(temporary, path)?;
    sync_dir(parent(path))
}

/// Makes the creations, renames and removals of entries in `dir` durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    storage::sync_std_directory(dir)
}

/// [`replace_file`] on a glommio executor.
pub async fn replace_file_async(path: &Path, temporary: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    segment::write_file(temporary, bytes).await?;
    std::fs::rename(temporary, path)?;
    sync_dir_async(parent(path)).await
}

/// [`sync_dir`] on a glommio executor.
pub async fn sync_dir_async(dir: &Path) -> Result<(), EngineError> {
    let d = Directory::open(dir).await.map_err(io_err)?;
    let synced = storage::sync_directory(&d).await;
    let closed = d.close().await.map_err(io_err);
    synced.and(closed)
}

/// The directory holding `path` (a bare file name is in the current one).
fn parent(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_content_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let (path, temporary) = (dir.path().join("f"), dir.path().join("f.tmp"));
        replace_file(&path, &temporary, b"old").unwrap();
        replace_file(&path, &temporary, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert!(!temporary.exists());
    }

    #[test]
    fn the_async_version_replaces_too() {
        let dir = tempfile::tempdir().unwrap();
        let (path, temporary) = (dir.path().join("f"), dir.path().join("f.tmp"));
        std::fs::write(&path, b"old").unwrap();
        weir_runtime::LocalExecutorBuilder::default().make().expect("glommio executor").run(async {
            replace_file_async(&path, &temporary, b"new, and longer").await.unwrap();
        });
        assert_eq!(std::fs::read(&path).unwrap(), b"new, and longer");
        assert!(!temporary.exists());
    }
}
