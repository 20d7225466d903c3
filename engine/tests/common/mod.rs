//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

pub mod small_fs;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use weir_engine::batch::{self, BatchBuilder};
use weir_engine::{LogConfig, PartitionLog};

/// Runs `fut` on a fresh glommio executor.
pub fn block_on<T>(fut: impl Future<Output = T>) -> T {
    weir_runtime::LocalExecutorBuilder::default().make().expect("glommio executor").run(fut)
}

/// A valid RecordBatch v2 with `records` records and `body_len` bytes of
/// (arbitrary, seed-dependent) record bytes. baseOffset 0, leader epoch 9.
pub fn batch(records: i32, body_len: usize, seed: u8) -> Vec<u8> {
    builder(records).build(&body(body_len, seed))
}

/// What [`batch`] builds with, for tests that set more of the header.
pub fn builder(records: i32) -> BatchBuilder {
    BatchBuilder { leader_epoch: 9, base_timestamp: 1_700_000_000_000, ..BatchBuilder::new(records) }
}

/// `len` arbitrary, seed-dependent record bytes.
pub fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8).wrapping_mul(31) | 1).collect()
}

/// The batch as the engine stores it once given `base_offset`.
pub fn stored(mut b: Vec<u8>, base_offset: i64) -> Vec<u8> {
    batch::patch_header(&mut b, base_offset, 0);
    b
}

/// (base offset, last offset, byte length) of each batch in `bytes`.
pub fn batches_in(bytes: &[u8]) -> Vec<(i64, i64, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = batch::check_batch_at(&bytes[pos..]).expect("reads return whole valid batches");
        out.push((h.base_offset(), h.last_offset(), h.total_len()));
        pos += h.total_len();
    }
    out
}

/// Reads everything from `from` to the high watermark, segment by segment.
pub async fn read_all(log: &PartitionLog, from: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.high_watermark() {
        let bytes = log.read(offset, 1 << 20).await.expect("read");
        let last = batches_in(&bytes).last().expect("non-empty read").1;
        out.extend_from_slice(&bytes);
        offset = last + 1;
    }
    out
}

pub async fn open(dir: &Path, config: LogConfig) -> Rc<PartitionLog> {
    PartitionLog::open(dir.to_path_buf(), config).await.expect("open log")
}

pub fn small_segments() -> LogConfig {
    LogConfig { segment_bytes: 2000, index_interval_bytes: 300, ..LogConfig::default() }
}

/// Files in `dir` ending with `ext`, sorted.
pub fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect();
    v.sort();
    v
}

pub fn bytes(v: Vec<u8>) -> Bytes {
    Bytes::from(v)
}
