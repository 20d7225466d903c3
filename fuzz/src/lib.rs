//! What Weir's fuzz targets share: the glommio executor of the process, the
//! CRC fix-up that lets the fuzzer past the checksum, and the input layout of
//! `segment_recovery` (also written by the `fuzz_seeds` generator).

use std::future::Future;
use std::io;
use std::path::Path;

use weir_engine::batch::{self, HEADER_LEN};

thread_local! {
    /// One executor per process: building one per input would cost more than
    /// the input itself (io_uring rings, buffers).
    static EXECUTOR: weir_runtime::LocalExecutor =
        weir_runtime::LocalExecutorBuilder::default().make().expect("glommio executor");
}

/// Runs `fut` to completion on this thread's glommio executor.
pub fn block_on<T>(fut: impl Future<Output = T>) -> T {
    EXECUTOR.with(|executor| executor.run(fut))
}

/// Recomputes the CRC of every batch whose header and length fit in `bytes`,
/// from the start, so mutated batches reach the checks behind the CRC.
pub fn fix_crcs(bytes: &mut [u8]) {
    let mut pos = 0;
    while let Some(h) = bytes.get(pos..).and_then(batch::RawHeader::of) {
        let end = pos.saturating_add(h.total_len());
        if h.total_len() < HEADER_LEN || end > bytes.len() {
            return;
        }
        batch::rewrite_crc(&mut bytes[pos..end]);
        pos = end;
    }
}

/// The files of one partition directory, as a `segment_recovery` input
/// describes them. The sealed segment (if any) starts at offset 0; the active
/// one where the sealed one's valid batches end, or at `active_base`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionFiles {
    pub sealed_log: Option<Vec<u8>>,
    pub sealed_index: Option<Vec<u8>>,
    pub sealed_time_index: Option<Vec<u8>>,
    pub active_log: Vec<u8>,
    /// Content of the `log-start-offset` checkpoint file.
    pub log_start_offset: Option<Vec<u8>>,
    /// Base offset of the active segment instead of the computed one.
    pub active_base: Option<i64>,
    /// Fix the CRCs of the batches in both logs before writing them.
    pub fix_crcs: bool,
}

/// Section kinds of the input layout (the kind byte is taken modulo 6).
const SEALED_LOG: u8 = 0;
const SEALED_INDEX: u8 = 1;
const SEALED_TIME_INDEX: u8 = 2;
const ACTIVE_LOG: u8 = 3;
const LOG_START_OFFSET: u8 = 4;
/// Options: byte 0 bit 0 = fix CRCs; bytes 1..9 = active base (i64 BE).
const OPTIONS: u8 = 5;
const KINDS: u8 = 6;

impl PartitionFiles {
    /// Reads the input layout: sections of `kind: u8, length: u32 LE, bytes`,
    /// a length past the end meaning "the rest"; a later section of a kind
    /// replaces an earlier one.
    pub fn decode(mut data: &[u8]) -> PartitionFiles {
        let mut files = PartitionFiles::default();
        while let Some((&kind, rest)) = data.split_first() {
            let (len, rest) = match rest.split_first_chunk::<4>() {
                Some((len, rest)) => (u32::from_le_bytes(*len) as usize, rest),
                None => (rest.len(), &rest[rest.len()..]),
            };
            let (bytes, rest) = rest.split_at(len.min(rest.len()));
            data = rest;
            let bytes = bytes.to_vec();
            match kind % KINDS {
                SEALED_LOG => files.sealed_log = Some(bytes),
                SEALED_INDEX => files.sealed_index = Some(bytes),
                SEALED_TIME_INDEX => files.sealed_time_index = Some(bytes),
                ACTIVE_LOG => files.active_log = bytes,
                LOG_START_OFFSET => files.log_start_offset = Some(bytes),
                _ => {
                    files.fix_crcs = bytes.first().is_some_and(|b| b & 1 != 0);
                    files.active_base = bytes.get(1..9).map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes")));
                }
            }
        }
        files
    }

    /// The input layout of these files (what [`PartitionFiles::decode`] reads).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut section = |kind: u8, bytes: &[u8]| {
            out.push(kind);
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
        };
        let optional = [
            (SEALED_LOG, &self.sealed_log),
            (SEALED_INDEX, &self.sealed_index),
            (SEALED_TIME_INDEX, &self.sealed_time_index),
            (LOG_START_OFFSET, &self.log_start_offset),
        ];
        for (kind, bytes) in optional {
            if let Some(bytes) = bytes {
                section(kind, bytes);
            }
        }
        if self.fix_crcs || self.active_base.is_some() {
            let mut options = vec![u8::from(self.fix_crcs)];
            options.extend(self.active_base.map(i64::to_be_bytes).unwrap_or_default());
            section(OPTIONS, &options);
        }
        section(ACTIVE_LOG, &self.active_log);
        out
    }

    /// Writes the files into `dir` under the engine's names.
    pub fn write_to(&self, dir: &Path) -> io::Result<()> {
        let name = |base: i64, ext: &str| dir.join(format!("{base:020}.{ext}"));
        let log = |bytes: &[u8]| {
            let mut bytes = bytes.to_vec();
            if self.fix_crcs {
                fix_crcs(&mut bytes);
            }
            bytes
        };
        let sealed_log = self.sealed_log.as_deref().map(log);
        let active_base = match self.active_base {
            Some(base) => base.max(0),
            None => sealed_log.as_deref().map_or(0, end_of_valid_batches),
        };
        let files = [
            (name(0, "log"), sealed_log.as_deref()),
            (name(0, "index"), self.sealed_index.as_deref()),
            (name(0, "timeindex"), self.sealed_time_index.as_deref()),
            (dir.join("log-start-offset"), self.log_start_offset.as_deref()),
            (name(active_base, "log"), Some(&log(&self.active_log)[..])),
        ];
        for (path, bytes) in files {
            if let Some(bytes) = bytes {
                std::fs::write(path, bytes)?;
            }
        }
        Ok(())
    }
}

/// One past the last offset of the leading run of valid batches with
/// increasing offsets (0 when there is none).
pub fn end_of_valid_batches(log: &[u8]) -> i64 {
    let (mut pos, mut next) = (0, 0i64);
    while let Ok(h) = batch::check_batch_at(&log[pos..]) {
        let last = h.base_offset().checked_add(i64::from(h.last_offset_delta()));
        match last.and_then(|last| last.checked_add(1)) {
            Some(end) if h.base_offset() >= next => next = end,
            _ => break,
        }
        pos += h.total_len();
    }
    next
}
