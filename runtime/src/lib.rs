//! The async runtime under Weir, in one place.
//!
//! Every crate reaches glommio through these names only, never directly: a
//! different runtime (glommio's project has asked for new maintainers) would
//! provide this surface here instead of changing every crate. What Weir asks
//! of a runtime is listed below, by concern:
//! - executors pinned one per core, each running only its own `!Send` tasks,
//!   with task queues of their own shares (maintenance below requests);
//! - timers (behind [`clock`], which tests can move forward); local semaphores;
//! - channels within a thread, and between threads (a full mesh of shard
//!   channels that wake their peer executor without handing it a waker);
//! - TCP listeners and streams on io_uring;
//! - files opened with O_DIRECT (`DmaFile`) and directories to fsync.

pub use glommio::{
    executor, spawn_local, spawn_local_into, yield_if_needed, CpuSet, GlommioError, Latency, LocalExecutor,
    LocalExecutorBuilder, LocalExecutorPoolBuilder, Placement, PoolPlacement, Shares, Task, TaskQueueHandle,
};

pub mod clock;

pub mod sync {
    pub use glommio::sync::{Permit, Semaphore, StaticPermit};
}

pub mod channels {
    pub use glommio::channels::{channel_mesh, local_channel, shared_channel};
}

pub mod net {
    pub use glommio::net::{TcpListener, TcpStream};
}

pub mod io {
    pub use glommio::io::{Directory, DmaFile, OpenOptions, ReadResult};
}
