//! Disk reads into memory the reader owns. glommio's DMA reads land in its
//! own buffers (`ReadResult`, tied to the executor by an `Rc`), so turning
//! them into `Bytes` that may cross shards costs a copy. These reads `pread`
//! the segment's O_DIRECT descriptor on glommio's blocking thread pool into
//! an aligned allocation that becomes `Bytes` as it is: the record bytes a
//! consumer receives are the bytes the device wrote into memory.

use std::alloc::{self, Layout};
use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::Arc;

use bytes::Bytes;
use glommio::io::DmaFile;

use crate::error::EngineError;

/// A second descriptor of a segment file for reads on the blocking pool. It
/// is its own (a dup) and shared by the reads in flight, so a read still
/// running on the pool after its segment was closed or deleted, or after its
/// caller gave up, never reads from a closed (or reused) descriptor.
#[derive(Clone)]
pub(crate) struct ReadFd(Arc<File>);

impl ReadFd {
    pub fn dup(file: &DmaFile) -> Result<Self, EngineError> {
        // SAFETY: `file` keeps its descriptor open for the duration of this call.
        let fd = unsafe { BorrowedFd::borrow_raw(file.as_raw_fd()) };
        Ok(ReadFd(Arc::new(File::from(fd.try_clone_to_owned()?))))
    }

    /// Bytes `[pos, pos + len)` of the file, fewer at its end. `pos` and
    /// `len` must be multiples of `align` (O_DIRECT), a power of two.
    pub async fn read(&self, pos: u64, len: usize, align: usize) -> Result<Bytes, EngineError> {
        assert!(pos % align as u64 == 0 && len % align == 0 && len > 0, "unaligned read of {len} at {pos}");
        let fd = self.0.clone();
        // Taken here, on the executor's thread, where freed buffers are kept.
        // Shared with the blocking read so that, if this future is dropped
        // first, the memory lives until the read into it ends.
        let memory = Arc::new(Memory::take(len, align));
        let target = memory.clone();
        let filled = glommio::executor().spawn_blocking(move || fill(&fd, &target, pos, len)).await?;
        let memory = Arc::into_inner(memory).expect("the finished read has dropped its handle");
        Ok(Bytes::from_owner(ReadBuf { memory: Some(memory), filled }))
    }
}

/// Reads `len` bytes at `pos` into `memory`, or until the file ends; how
/// many were read. The kernel writes straight into the (uninitialised)
/// memory; only the bytes it wrote are ever exposed.
fn fill(file: &File, memory: &Memory, pos: u64, len: usize) -> io::Result<usize> {
    assert!(len <= memory.layout.size());
    let align = memory.layout.align();
    let mut filled = 0;
    while filled < len {
        // SAFETY: the destination is the unfilled rest of `len` bytes of the
        // allocation, which nothing else reads or writes until this read
        // ends (`filled` is a multiple of the alignment here, as O_DIRECT needs).
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                memory.ptr.as_ptr().add(filled).cast(),
                len - filled,
                (pos + filled as u64) as libc::off_t,
            )
        };
        match n {
            0 => break,
            // Only the file's end cuts an O_DIRECT read short of a block.
            n if n as usize % align != 0 => return Ok(filled + n as usize),
            n if n > 0 => filled += n as usize,
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(filled)
}

/// Bytes of freed read buffers a thread keeps for its next reads. Memory
/// fresh from the allocator costs a page fault and a zeroing by the kernel
/// per page at the first read into it, which is about what the copy these
/// reads avoid costs (BENCHMARKS.md); a buffer is given back on the thread
/// that drops the last `Bytes` of it (a shard's, after its socket write).
const SPARE_BYTES: usize = 64 << 20;
/// Allocations are rounded up to this, so reads of nearby sizes share them.
const ROUNDING: usize = 64 << 10;

thread_local! {
    static SPARE: RefCell<Vec<Memory>> = const { RefCell::new(Vec::new()) };
}

/// An aligned heap allocation.
struct Memory {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: `Memory` owns its allocation alone and gives no access to it
// itself: the read that fills it and the `ReadBuf` that exposes it after
// never overlap.
unsafe impl Send for Memory {}
unsafe impl Sync for Memory {}

impl Memory {
    /// A spare of this thread that fits `len` (without wasting half), or a new one.
    fn take(len: usize, align: usize) -> Self {
        let fits = |m: &Memory| m.layout.align() == align && m.layout.size() >= len && m.layout.size() / 2 <= len;
        let spare = SPARE.with_borrow_mut(|spare| spare.iter().position(fits).map(|i| spare.swap_remove(i)));
        spare.unwrap_or_else(|| {
            let size = len.next_multiple_of(ROUNDING.max(align));
            let layout = Layout::from_size_align(size, align).expect("read size and alignment are valid");
            // SAFETY: `layout` has a non-zero size.
            let ptr =
                NonNull::new(unsafe { alloc::alloc(layout) }).unwrap_or_else(|| alloc::handle_alloc_error(layout));
            Memory { ptr, layout }
        })
    }

    /// Keeps this allocation for a later read on this thread, or frees it
    /// when the thread already keeps enough (or is exiting).
    fn give_back(self) {
        let _ = SPARE.try_with(|spare| {
            let mut spare = spare.borrow_mut();
            let held: usize = spare.iter().map(|m| m.layout.size()).sum();
            if held + self.layout.size() <= SPARE_BYTES {
                spare.push(self);
            }
        });
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: allocated in `take` with this layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// A finished read: its memory, of which the first `filled` bytes were
/// read. The memory goes back to the spares when the last `Bytes` of it is
/// dropped.
struct ReadBuf {
    memory: Option<Memory>,
    filled: usize,
}

impl AsRef<[u8]> for ReadBuf {
    fn as_ref(&self) -> &[u8] {
        let memory = self.memory.as_ref().expect("memory is only taken by drop");
        // SAFETY: the first `filled` bytes were written by the read.
        unsafe { std::slice::from_raw_parts(memory.ptr.as_ptr(), self.filled) }
    }
}

impl Drop for ReadBuf {
    fn drop(&mut self) {
        if let Some(memory) = self.memory.take() {
            memory.give_back();
        }
    }
}

#[cfg(test)]
mod measure {
    //! Run: `cargo test --release -p weir-engine --lib measure -- --ignored --nocapture`.
    //! 1 MiB aligned reads of a 256 MiB file, one at a time and 4 in flight,
    //! interleaved: glommio's read plus the copy into `Bytes` against these reads.
    use super::*;
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    #[test]
    #[ignore = "a measurement, not a check"]
    fn glommio_read_and_copy_against_owned_reads() {
        glommio::LocalExecutorBuilder::default().make().expect("executor").run(async {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("f");
            std::fs::write(&path, vec![7u8; 256 << 20]).expect("write");
            let file = Rc::new(DmaFile::open(&path).await.expect("open"));
            let fd = ReadFd::dup(&file).expect("dup");
            let at = |i: u64| (i * 97 % 256) << 20;
            let (n, rounds) = (40u64, 8u64);
            let mut took = [Duration::ZERO; 4];
            for round in 0..rounds {
                for (kind, in_flight) in [(0, 1), (1, 1), (2, 4), (3, 4)] {
                    let start = Instant::now();
                    for i in (0..n).step_by(in_flight) {
                        let tasks: Vec<_> = (0..in_flight as u64)
                            .map(|k| {
                                let (file, fd, pos) = (file.clone(), fd.clone(), at(round * n + i + k));
                                glommio::spawn_local(async move {
                                    if kind % 2 == 0 {
                                        let read = file.read_at_aligned(pos, 1 << 20).await.expect("read");
                                        Bytes::copy_from_slice(&read)
                                    } else {
                                        fd.read(pos, 1 << 20, 4096).await.expect("read")
                                    }
                                })
                            })
                            .collect();
                        for task in tasks {
                            std::hint::black_box(task.await);
                        }
                    }
                    took[kind] += start.elapsed();
                }
            }
            let per = |d: Duration| d / (n * rounds) as u32;
            println!("per 1 MiB, one at a time: glommio read + copy {:?}, owned read {:?}", per(took[0]), per(took[1]));
            println!("per 1 MiB, 4 in flight:   glommio read + copy {:?}, owned read {:?}", per(took[2]), per(took[3]));
        });
    }
}
