//! Power cuts through the storage seam (`weir_engine::storage::power_loss`):
//! every write that no completed sync covered is dropped, as a power cut may
//! drop it, and every append acknowledged as `Synced` (acks=all) must still
//! be in the reopened log, at its offset, byte for byte.
//!
//! Each round runs concurrent appenders of mixed durability over small
//! segments (so segments roll and index files are written), cuts the power
//! after a different number of acknowledgements (or after a clean close),
//! restores the directory to what the cut left and reopens it.
//! `WEIR_POWER_LOSS_ROUNDS` sets the rounds (default 24).

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use common::{batch, batches_in, block_on, bytes, open, read_all, stored};
use weir_engine::storage::power_loss::{self, DurableState};
use weir_engine::{Durability, LogConfig};

const APPENDERS: usize = 4;
const APPENDS_EACH: usize = 24;

fn config() -> LogConfig {
    LogConfig { segment_bytes: 6 << 10, index_interval_bytes: 512, ..LogConfig::default() }
}

/// An acknowledged append: its base offset, the bytes stored, its durability.
type Acked = (i64, Vec<u8>, Durability);

/// What the appenders saw acknowledged when the power was cut.
struct Cut {
    state: DurableState,
    /// (base offset, stored bytes) of every acknowledged append that must survive.
    must_survive: Vec<(i64, Vec<u8>)>,
}

#[test]
fn every_synced_append_survives_a_power_cut() {
    let rounds: usize = std::env::var("WEIR_POWER_LOSS_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(24);
    for round in 0..rounds {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("log");
        std::fs::create_dir(&dir).expect("log dir");
        power_loss::record(&dir).expect("record");
        // Every fourth round cuts after a clean close: then every append,
        // synced or not, must survive.
        let after_close = round % 4 == 3;
        let cut_at = 1 + (round * 13) % (APPENDERS * APPENDS_EACH - 1);
        let cut = block_on(append_and_cut(&dir, round, cut_at, after_close));
        power_loss::restore(&dir, &cut.state).expect("restore");
        block_on(async {
            let log = open(&dir, config()).await;
            let context = format!("round {round}, cut after {cut_at} acknowledgements (after close: {after_close})");
            for (base, expected) in &cut.must_survive {
                let read = log.read(*base, expected.len()).await;
                let read = read.unwrap_or_else(|e| panic!("{context}: acknowledged offset {base} is gone: {e}"));
                assert_eq!(&read[..expected.len().min(read.len())], &expected[..], "{context}: offset {base} differs");
            }
            // What did survive is whole and contiguous from the start.
            let all = read_all(&log, log.log_start_offset()).await;
            let mut next = log.log_start_offset();
            for (base, last, _) in batches_in(&all) {
                assert_eq!(base, next, "{context}: a hole before offset {base}");
                next = last + 1;
            }
            assert_eq!(next, log.high_watermark(), "{context}");
            log.close().await.expect("close");
        });
    }
}

/// Runs the appenders and takes the durable state when the `cut_at`th
/// acknowledgement arrives (or after the close); the appends go on after it.
async fn append_and_cut(dir: &std::path::Path, round: usize, cut_at: usize, after_close: bool) -> Cut {
    let log = open(dir, config()).await;
    let acked: Rc<RefCell<Vec<Acked>>> = Rc::default();
    let acks = Rc::new(Cell::new(0usize));
    let cut: Rc<RefCell<Option<Cut>>> = Rc::default();
    let appenders = (0..APPENDERS).map(|appender| {
        let (log, acked, acks, cut) = (log.clone(), acked.clone(), acks.clone(), cut.clone());
        let dir = dir.to_path_buf();
        weir_runtime::spawn_local(async move {
            for i in 0..APPENDS_EACH {
                let seed = (round * 31 + appender * 7 + i) as u8;
                let records = 1 + (i % 3) as i32;
                let written = batch(records, 50 + (seed as usize * 37) % 900, seed);
                let durability = if (i + appender) % 3 == 0 { Durability::Written } else { Durability::Synced };
                let info = log.append(bytes(written.clone()), durability).await.expect("append");
                acked.borrow_mut().push((info.base_offset, stored(written, info.base_offset), durability));
                acks.set(acks.get() + 1);
                if !after_close && acks.get() == cut_at {
                    let state = power_loss::freeze(&dir);
                    let must_survive = synced(&acked.borrow());
                    *cut.borrow_mut() = Some(Cut { state, must_survive });
                }
            }
        })
    });
    for appender in appenders.collect::<Vec<_>>() {
        appender.await;
    }
    log.close().await.expect("close");
    let taken = cut.borrow_mut().take();
    taken.unwrap_or_else(|| {
        let all = acked.borrow().iter().map(|(base, b, _)| (*base, b.clone())).collect();
        Cut { state: power_loss::freeze(dir), must_survive: all }
    })
}

fn synced(acked: &[Acked]) -> Vec<(i64, Vec<u8>)> {
    acked.iter().filter(|(_, _, d)| *d == Durability::Synced).map(|(base, b, _)| (*base, b.clone())).collect()
}

/// The harness itself: a new file that takes the inode number of one just
/// removed (ext4 reuses it at once) comes back from a cut as what it is,
/// an empty file never synced, not with the removed file's content.
#[test]
fn a_file_created_in_place_of_a_removed_one_comes_back_empty() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::write(dir.join("old"), b"old content").expect("write");
    power_loss::record(dir).expect("record");
    std::fs::remove_file(dir.join("old")).expect("remove");
    std::fs::File::create(dir.join("new")).expect("create");
    weir_engine::durable::sync_dir(dir).expect("directory sync");
    let state = power_loss::freeze(dir);
    power_loss::restore(dir, &state).expect("restore");
    assert!(!dir.join("old").exists());
    assert_eq!(std::fs::read(dir.join("new")).expect("read"), b"");
}
