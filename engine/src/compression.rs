//! The record codecs of Kafka batches (attributes bits 0-2): gzip, snappy
//! (xerial framing as the Java client writes it, or raw), lz4 (frame format)
//! and zstd. Decompression is bounded: a batch that would expand beyond the
//! limit is refused, so a small request cannot make the broker allocate
//! gigabytes.

use crate::batch::{RawHeader, ATTR_COMPRESSION_MASK, HEADER_LEN};
use std::io::{Read, Write};

/// Most bytes one batch's records may take once decompressed.
pub const MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// A batch codec, by its attribute bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Codec {
    /// The codec of a batch (`buf` starts with a whole header).
    pub fn of(buf: &[u8]) -> Result<Codec, String> {
        match RawHeader::of(buf).ok_or("short batch header")?.compression() {
            0 => Ok(Codec::None),
            1 => Ok(Codec::Gzip),
            2 => Ok(Codec::Snappy),
            3 => Ok(Codec::Lz4),
            4 => Ok(Codec::Zstd),
            other => Err(format!("unknown compression codec {other}")),
        }
    }

    /// The topic config of its level, if it has one.
    pub fn level_config(self) -> Option<&'static str> {
        match self {
            Codec::Gzip => Some("compression.gzip.level"),
            Codec::Lz4 => Some("compression.lz4.level"),
            Codec::Zstd => Some("compression.zstd.level"),
            Codec::None | Codec::Snappy => None,
        }
    }

    /// The level of the topic config's default (`compression.<codec>.level`).
    pub fn default_level(self) -> i32 {
        match self {
            Codec::Gzip => -1,
            Codec::Lz4 => 9,
            Codec::Zstd => 3,
            Codec::None | Codec::Snappy => 0,
        }
    }

    /// Kafka's `compression.type` names; `None` for `producer`.
    pub fn by_name(name: &str) -> Option<Codec> {
        match name {
            "uncompressed" => Some(Codec::None),
            "gzip" => Some(Codec::Gzip),
            "snappy" => Some(Codec::Snappy),
            "lz4" => Some(Codec::Lz4),
            "zstd" => Some(Codec::Zstd),
            _ => None,
        }
    }
}

/// xerial snappy-java's stream header (magic, version 1, compatible 1).
const XERIAL_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// snappy-java's block size.
const XERIAL_BLOCK: usize = 32 * 1024;

/// `data` decompressed, at most `limit` bytes.
pub fn decompress(codec: Codec, data: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let bounded = |reader: &mut dyn Read| -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        reader.take(limit as u64 + 1).read_to_end(&mut out).map_err(|e| format!("{codec:?}: {e}"))?;
        if out.len() > limit {
            return Err(format!("records decompress to more than {limit} bytes"));
        }
        Ok(out)
    };
    match codec {
        Codec::None => Ok(data.to_vec()),
        Codec::Gzip => bounded(&mut flate2::read::MultiGzDecoder::new(data)),
        Codec::Lz4 => bounded(&mut lz4::Decoder::new(data).map_err(|e| format!("lz4: {e}"))?),
        Codec::Zstd => bounded(&mut zstd::stream::read::Decoder::new(data).map_err(|e| format!("zstd: {e}"))?),
        Codec::Snappy => snappy_decompress(data, limit),
    }
}

fn snappy_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let block = |compressed: &[u8], out: &mut Vec<u8>| -> Result<(), String> {
        let len = snap::raw::decompress_len(compressed).map_err(|e| format!("snappy: {e}"))?;
        if out.len() + len > limit {
            return Err(format!("records decompress to more than {limit} bytes"));
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new().decompress(compressed, &mut out[start..]).map_err(|e| format!("snappy: {e}"))?;
        Ok(())
    };
    let Some(mut rest) = data.strip_prefix(&XERIAL_MAGIC[..]) else {
        block(data, &mut out)?; // Raw snappy, as snappy-java falls back to.
        return Ok(out);
    };
    while !rest.is_empty() {
        let (len, after) = rest.split_at_checked(4).ok_or("snappy: truncated block length")?;
        let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        let (compressed, after) = after.split_at_checked(len).ok_or("snappy: truncated block")?;
        block(compressed, &mut out)?;
        rest = after;
    }
    Ok(out)
}

/// `data` compressed; `level` is the topic's `compression.<codec>.level`
/// (gzip -1: the codec's default).
pub fn compress(codec: Codec, data: &[u8], level: i32) -> Result<Vec<u8>, String> {
    let io = |e: std::io::Error| format!("{codec:?}: {e}");
    match codec {
        Codec::None => Ok(data.to_vec()),
        Codec::Gzip => {
            let level = u32::try_from(level).map_or(flate2::Compression::default(), flate2::Compression::new);
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
            encoder.write_all(data).map_err(io)?;
            encoder.finish().map_err(io)
        }
        Codec::Lz4 => {
            let mut encoder = lz4::EncoderBuilder::new()
                .level(u32::try_from(level).unwrap_or(9))
                .block_mode(lz4::BlockMode::Independent)
                .build(Vec::new())
                .map_err(io)?;
            encoder.write_all(data).map_err(io)?;
            let (out, result) = encoder.finish();
            result.map(|()| out).map_err(io)
        }
        Codec::Zstd => zstd::stream::encode_all(data, level).map_err(io),
        Codec::Snappy => {
            let mut out = XERIAL_MAGIC.to_vec();
            let mut encoder = snap::raw::Encoder::new();
            for chunk in data.chunks(XERIAL_BLOCK) {
                let compressed = encoder.compress_vec(chunk).map_err(|e| format!("snappy: {e}"))?;
                out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            Ok(out)
        }
    }
}

/// A copy of the whole, CRC-checked batch `batch` with its records in
/// `codec`: the header is kept (offsets, producer, sequence, timestamps),
/// its codec bits, length and CRC are set anew. The records must parse
/// once decompressed (a codec may end a truncated stream quietly).
pub fn with_codec(batch: &[u8], codec: Codec, level: i32) -> Result<Vec<u8>, String> {
    let records = decompress(Codec::of(batch)?, &batch[HEADER_LEN..], MAX_DECOMPRESSED_BYTES)?;
    let plain = assemble(batch, Codec::None, &records)?;
    crate::records::parse(&plain).map_err(|e| format!("records do not parse once decompressed: {e}"))?;
    if codec == Codec::None {
        return Ok(plain);
    }
    assemble(batch, codec, &compress(codec, &records, level)?)
}

/// `batch`'s header (codec, length and CRC set) followed by `records`.
fn assemble(batch: &[u8], codec: Codec, records: &[u8]) -> Result<Vec<u8>, String> {
    let h = RawHeader::of(batch).ok_or("short batch header")?;
    let attributes = (h.attributes() & !ATTR_COMPRESSION_MASK) | codec as i16;
    h.build(attributes, h.records_count(), records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{parse, RecordsBuilder};

    #[test]
    fn every_codec_round_trips_a_batch() {
        let plain = RecordsBuilder::new()
            .push(Some(b"k"), Some(b"v"), &[], 1000)
            .push(None, Some(&[7u8; 100_000]), &[], 1001)
            .finish();
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let level = if codec == Codec::Gzip { -1 } else { 3 };
            let compressed = with_codec(&plain, codec, level).unwrap();
            assert!(compressed.len() < plain.len() / 10, "{codec:?}");
            crate::batch::check_batch_at(&compressed).expect("valid batch");
            assert_eq!(Codec::of(&compressed), Ok(codec));
            let back = with_codec(&compressed, Codec::None, 0).unwrap();
            assert_eq!(back, plain, "{codec:?}");
            assert_eq!(parse(&back).unwrap()[1].key, None);
        }
    }

    #[test]
    fn decompression_is_bounded_and_bad_input_refused() {
        let zeros = vec![0u8; 1 << 20];
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let level = if codec == Codec::Gzip { -1 } else { 1 };
            let compressed = compress(codec, &zeros, level).unwrap();
            assert_eq!(decompress(codec, &compressed, 1 << 20).unwrap().len(), 1 << 20);
            assert!(decompress(codec, &compressed, 1000).is_err(), "{codec:?} not bounded");
            assert!(decompress(codec, b"not compressed at all", 1 << 20).is_err(), "{codec:?} garbage");
        }
        // A truncated stream is refused, by its codec or by its records.
        let plain = RecordsBuilder::new()
            .push(Some(b"k"), Some(&[1u8; 50_000]), &[], 1000)
            .push(Some(b"j"), Some(b"v"), &[], 1001)
            .finish();
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let compressed = with_codec(&plain, codec, 1).unwrap();
            let truncated = &compressed[..compressed.len() - 20];
            assert!(with_codec(truncated, Codec::None, 0).is_err(), "{codec:?} truncated");
        }
        // A raw snappy block claiming 4 GiB is refused before any allocation.
        assert!(decompress(Codec::Snappy, &[0xff, 0xff, 0xff, 0xff, 0x0f], 1 << 20).is_err());
    }
}
