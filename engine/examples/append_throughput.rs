//! Engine append throughput with 1 MiB batches, each appended `Synced` (one
//! write plus one fdatasync per batch, nothing else in flight), for comparison
//! with `fio --name=w --rw=write --bs=1M --size=1G --direct=1
//! --ioengine=io_uring --directory=DIR`.
//!
//! Usage: `cargo run --release -p weir-engine --example append_throughput -- DIR [MiB]`

mod common;

use std::time::Instant;

use common::batch;

use weir_engine::{Durability, LogConfig, PartitionLog};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: append_throughput DIR [MiB]"));
    let mib: usize = args.next().map_or(1024, |a| a.parse().expect("MiB"));
    let log_dir = dir.join(format!("append-throughput-{}", std::process::id()));
    let ex = weir_runtime::LocalExecutorBuilder::default().make().expect("executor");
    ex.run(async move {
        let config = LogConfig { max_batch_bytes: 2 << 20, cache_bytes: 0, ..LogConfig::default() };
        let log = PartitionLog::open(log_dir.clone(), config).await.expect("open");
        let b = batch(1 << 20);
        let start = Instant::now();
        for _ in 0..mib {
            log.append(b.clone(), Durability::Synced).await.expect("append");
        }
        let secs = start.elapsed().as_secs_f64();
        let stats = log.stats();
        log.close().await.expect("close");
        println!(
            "engine: {mib} x 1 MiB Synced appends in {secs:.2} s = {:.1} MiB/s ({} writes, {} fdatasyncs)",
            mib as f64 / secs,
            stats.writes,
            stats.syncs
        );
        std::fs::remove_dir_all(&log_dir).expect("clean up");
    });
}
