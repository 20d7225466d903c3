//! The records of a Produce partition, checked as the broker checks them
//! before appending: `batch::validate_records`, then the idempotence fields
//! of the validated first header (`shards/src/producers/mod.rs`). Every
//! batch that passes must survive what the engine later does to stored
//! batches: offset patching and LogAppendTime by the writer, record parsing by timestamp lookups and compaction, and
//! compaction's rebuilt copies. Input: one flags byte (bit 0: fix the CRCs
//! first, to get past the checksum; bit 1: apply LogAppendTime), the records.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use weir_engine::batch;
use weir_engine::records;
use weir_shards::producers::{producer_batch, ProducerStates, Verdict};

/// The broker's default `message_max_bytes`.
const MAX_BATCH_BYTES: usize = 1_048_588;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, records)) = data.split_first() else { return };
    let mut records = records.to_vec();
    if flags & 1 != 0 {
        weir_fuzz::fix_crcs(&mut records);
    }
    let Ok(validated) = batch::validate_records(Bytes::from(records), MAX_BATCH_BYTES) else { return };
    let records = validated.bytes();
    let mut producers = ProducerStates::default();
    if let Some(b) = producer_batch(validated.first_header()) {
        if producers.check(&b) == Ok(Verdict::Append) {
            producers.complete(&b, 0);
        }
    }
    let (mut pos, mut batches, mut offsets) = (0, 0, 0i64);
    while pos < records.len() {
        let h = batch::check_batch_at(&records[pos..]).expect("a validated batch");
        let mut stored = records[pos..pos + h.total_len()].to_vec();
        batch::patch_header(&mut stored, offsets, 0);
        if flags & 2 != 0 {
            batch::set_log_append_time(&mut stored, 1_700_000_000_000);
        }
        let patched = batch::check_batch_at(&stored).expect("patched batches stay valid");
        assert_eq!((patched.base_offset(), patched.last_offset_delta()), (offsets, h.last_offset_delta()));
        if records::is_plain(&stored) {
            check_records(&stored);
        }
        offsets += h.offset_count();
        batches += 1;
        pos += h.total_len();
    }
    assert_eq!((batches, offsets), (validated.batches(), validated.offset_count()));
});

/// Parsed records stay within the batch; a copy with every other record
/// (what compaction writes) is a valid batch holding exactly those.
fn check_records(stored: &[u8]) {
    let Ok(recs) = records::parse(stored) else { return };
    let h = batch::RawHeader::of(stored).expect("a whole batch");
    assert_eq!(recs.len(), h.records_count() as usize);
    let keep: Vec<records::Record<'_>> = recs.iter().step_by(2).copied().collect();
    let rebuilt = records::rebuild(stored, &keep);
    let rh = batch::check_batch_at(&rebuilt).expect("a rebuilt batch is valid");
    assert_eq!((rh.base_offset(), rh.last_offset_delta()), (h.base_offset(), h.last_offset_delta()));
    let reparsed = records::parse(&rebuilt).expect("a rebuilt batch parses");
    assert_eq!(reparsed, keep);
}
