//! Engine micro-benchmarks: append, read by offset, sparse-index lookup.
//! Run: `cargo bench -p weir-bench --bench engine` (data in a temp dir on the
//! filesystem of $TMPDIR; direct I/O, so the page cache does not flatter reads).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::time::{Duration, Instant};
use weir_engine::batch::BatchBuilder;
use weir_engine::index::{IndexEntry, OffsetIndex};
use weir_engine::{Durability, LogConfig, PartitionLog};

/// A valid RecordBatch v2 of `records` records and `body_len` record bytes.
fn batch(records: i32, body_len: usize) -> Bytes {
    let body: Vec<u8> = (0..body_len).map(|i| (i as u8).wrapping_mul(31) | 1).collect();
    let batch =
        BatchBuilder { leader_epoch: -1, base_timestamp: 1_700_000_000_000, ..BatchBuilder::new(records) }.build(&body);
    Bytes::from(batch)
}

fn executor() -> weir_runtime::LocalExecutor {
    weir_runtime::LocalExecutorBuilder::default().make().expect("glommio executor")
}

/// `iters` appends of `batch`, `concurrent` at a time, on a fresh log.
fn append(batch: &Bytes, durability: Durability, concurrent: u64, iters: u64) -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    executor().run(async {
        let log = PartitionLog::open(dir.path().join("p-0"), LogConfig::default()).await.expect("open");
        let start = Instant::now();
        let mut done = 0;
        while done < iters {
            let n = concurrent.min(iters - done);
            let appends = (0..n).map(|_| log.append(batch.clone(), durability));
            for r in futures::future::join_all(appends).await {
                r.expect("append");
            }
            done += n;
        }
        let elapsed = start.elapsed();
        log.close().await.expect("close");
        elapsed
    })
}

fn bench_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine_append");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    let b = batch(100, 100 * 1030);
    group.throughput(Throughput::Bytes(b.len() as u64));
    for (name, durability, concurrent) in [
        ("100x1KiB_written_1", Durability::Written, 1),
        ("100x1KiB_written_16", Durability::Written, 16),
        ("100x1KiB_synced_16", Durability::Synced, 16),
    ] {
        group.bench_function(name, |bencher| bencher.iter_custom(|iters| append(&b, durability, concurrent, iters)));
    }
    group.finish();
}

/// A log of `BATCHES` copies of `b` (100 records each) on disk, far larger
/// than the read cache, and the time `read_all` takes over it for `iters`.
fn read_log(b: &Bytes, iters: u64, read_all: impl AsyncFn(&PartitionLog, u64)) -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    executor().run(async {
        let log = PartitionLog::open(dir.path().join("p-0"), LogConfig::default()).await.expect("open");
        for _ in 0..READ_BATCHES {
            log.append(b.clone(), Durability::Written).await.expect("append");
        }
        let start = Instant::now();
        read_all(&log, iters).await;
        let elapsed = start.elapsed();
        log.close().await.expect("close");
        elapsed
    })
}

const READ_BATCHES: i64 = 1000;

fn bench_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine_read");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    let b = batch(100, 100 * 1030);
    group.throughput(Throughput::Bytes(1 << 20));
    group.bench_function("1MiB_at_random_offset", |bencher| {
        bencher.iter_custom(|iters| {
            read_log(&b, iters, async |log, iters| {
                let mut rng = 0x9e37_79b9_7f4a_7c15u64;
                for _ in 0..iters {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let offset = (rng % (READ_BATCHES as u64 * 100)) as i64;
                    let bytes = log.read(offset, 1 << 20).await.expect("read");
                    assert!(!bytes.is_empty());
                }
            })
        })
    });
    // A consumer catching up: 1 MiB fetches from where the last one ended,
    // from the start again at the end of the log; throughput counts the
    // bytes actually returned.
    let log_bytes = READ_BATCHES as u64 * b.len() as u64;
    group.throughput(Throughput::Bytes(log_bytes));
    group.bench_function("whole_log_in_1MiB_fetches", |bencher| {
        bencher.iter_custom(|iters| {
            read_log(&b, iters, async |log, iters| {
                for _ in 0..iters {
                    let (mut offset, mut read) = (0, 0);
                    while offset < log.high_watermark() {
                        let bytes = log.read(offset, 1 << 20).await.expect("read");
                        offset += (bytes.len() / b.len()) as i64 * 100;
                        read += bytes.len() as u64;
                    }
                    assert_eq!(read, log_bytes);
                }
            })
        })
    });
    group.finish();
}

fn bench_index(c: &mut Criterion) {
    let mut index = OffsetIndex::new();
    // A full 1 GiB segment of 100 KiB batches indexed every 4 KiB: one entry per batch.
    for i in 0..10_000u32 {
        index.push(IndexEntry { relative_offset: i * 100, position: i * 103_061 });
    }
    let mut group = c.benchmark_group("engine_index");
    group.bench_function("lookup_10k_entries", |bencher| {
        bencher.iter_batched(
            || 0x2545_f491u32,
            |mut x| {
                let mut sum = 0u64;
                for _ in 0..64 {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    sum += u64::from(index.lookup(x % 1_000_000));
                }
                sum
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_append, bench_read, bench_index);
criterion_main!(benches);
