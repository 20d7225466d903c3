//! Engine append throughput with 1 MiB batches, each appended `Synced` (one
//! write plus one fdatasync per batch, nothing else in flight), for comparison
//! with `fio --name=w --rw=write --bs=1M --size=1G --direct=1
//! --ioengine=io_uring --directory=DIR`.
//!
//! Usage: `cargo run --release -p weir-engine --example append_throughput -- DIR [MiB]`

use std::time::Instant;

use bytes::Bytes;
use weir_engine::batch::{HEADER_LEN, LOG_OVERHEAD};
use weir_engine::{Durability, LogConfig, PartitionLog};

/// A valid 1 MiB RecordBatch v2 (opaque body, one record claimed).
fn batch(len: usize) -> Bytes {
    let mut b = vec![0u8; len];
    for (i, x) in b[HEADER_LEN..].iter_mut().enumerate() {
        *x = (i * 31) as u8;
    }
    b[8..12].copy_from_slice(&((len - LOG_OVERHEAD) as i32).to_be_bytes());
    b[16] = 2;
    b[57..61].copy_from_slice(&1i32.to_be_bytes());
    weir_engine::batch::rewrite_crc(&mut b);
    Bytes::from(b)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: append_throughput DIR [MiB]"));
    let mib: usize = args.next().map_or(1024, |a| a.parse().expect("MiB"));
    let log_dir = dir.join(format!("append-throughput-{}", std::process::id()));
    let ex = glommio::LocalExecutorBuilder::default().make().expect("executor");
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
