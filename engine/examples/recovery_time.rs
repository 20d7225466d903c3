//! Open (recovery) time of a partition whose active segment holds `MiB` of
//! batches of `KiB` each: after a clean shutdown (marker present: only the
//! bytes after the last index entry are checked) and after an unclean stop
//! (no marker: every batch of the segment is read and CRC-checked).
//! Compare the scan rate with `fio --name=r --rw=read --bs=1M --direct=1
//! --ioengine=io_uring --filename=<the segment file>` on the same disk.
//!
//! Usage: `cargo run --release -p weir-engine --example recovery_time -- DIR [MiB] [KiB]`

mod common;

use std::path::Path;
use std::time::Instant;

use common::batch;
use weir_engine::{Durability, LogConfig, PartitionLog, MAX_SEGMENT_BYTES};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: recovery_time DIR [MiB] [KiB]"));
    let mib: u64 = args.next().map_or(1024, |a| a.parse().expect("MiB"));
    let kib: usize = args.next().map_or(64, |a| a.parse().expect("KiB"));
    let log_dir =
        std::fs::canonicalize(&dir).expect("DIR exists").join(format!("recovery-time-{}", std::process::id()));
    let config = LogConfig { segment_bytes: MAX_SEGMENT_BYTES, cache_bytes: 0, ..LogConfig::default() };
    let ex = weir_runtime::LocalExecutorBuilder::default().make().expect("executor");
    ex.run(async move {
        let log = PartitionLog::open(log_dir.clone(), config).await.expect("open");
        let b = batch(kib << 10);
        let count = (mib << 20) / (kib << 10) as u64;
        for i in 0..count {
            let durability = if i + 1 == count { Durability::Synced } else { Durability::Written };
            log.append(b.clone(), durability).await.expect("append");
        }
        log.close().await.expect("close");
        let clean = timed_open(&log_dir, config).await;
        std::fs::remove_file(log_dir.join("clean-shutdown")).expect("marker left by the clean close");
        let unclean = timed_open(&log_dir, config).await;
        let gib = (count * (kib << 10) as u64) as f64 / f64::from(1 << 30);
        for (what, (secs, scanned)) in [("clean shutdown", clean), ("unclean stop", unclean)] {
            println!(
                "{what}: open in {:.3} s, scanned {:.1} MiB ({:.2} s per GiB of segment, {:.0} MiB/s scanned)",
                secs,
                scanned as f64 / f64::from(1 << 20),
                secs / gib,
                scanned as f64 / f64::from(1 << 20) / secs
            );
        }
        std::fs::remove_dir_all(&log_dir).expect("clean up");
    });
}

/// Opens the log, returns (seconds, bytes scanned), closes it again.
async fn timed_open(dir: &Path, config: LogConfig) -> (f64, u64) {
    let start = Instant::now();
    let log = PartitionLog::open(dir.to_path_buf(), config).await.expect("open");
    let secs = start.elapsed().as_secs_f64();
    let scanned = log.stats().recovery_scanned_bytes;
    log.close().await.expect("close");
    (secs, scanned)
}
