//! The record codecs of RecordBatch v2 (the low three bits of a batch's
//! attributes: 1 gzip, 2 snappy, 3 lz4, 4 zstd), for what must look inside a
//! compressed batch: compaction. kafka-protocol's codecs, so the framings
//! Kafka uses (xerial snappy, the LZ4 frame format) are the clients' own.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};

use crate::batch::{self, ATTR_COMPRESSION_MASK, HEADER_LEN, LOG_OVERHEAD};

/// The uncompressed batch a compressed one stands for: the same header with
/// the codec bits cleared (length and CRC rewritten), and the records
/// decompressed.
pub fn decompressed(compressed: &[u8]) -> Result<Vec<u8>, String> {
    let codec = batch::attributes(compressed) & ATTR_COMPRESSION_MASK;
    let mut data = Bytes::copy_from_slice(&compressed[HEADER_LEN..]);
    let records = match codec {
        1 => Gzip::decompress(&mut data, take),
        2 => Snappy::decompress(&mut data, take),
        3 => Lz4::decompress(&mut data, take),
        4 => Zstd::decompress(&mut data, take),
        other => return Err(format!("unknown compression codec {other}")),
    }
    .map_err(|e| format!("cannot decompress ({codec}): {e:#}"))?;
    let mut plain = Vec::with_capacity(HEADER_LEN + records.len());
    plain.extend_from_slice(&compressed[..HEADER_LEN]);
    plain[22] &= !(ATTR_COMPRESSION_MASK as u8);
    plain.extend_from_slice(&records);
    set_length_and_crc(&mut plain)?;
    Ok(plain)
}

/// `plain`, an uncompressed batch, with its records compressed by `codec`
/// (1-4): attributes, length and CRC rewritten.
pub fn compressed(plain: &[u8], codec: i16) -> Result<Vec<u8>, String> {
    let records = &plain[HEADER_LEN..];
    let mut out = BytesMut::with_capacity(HEADER_LEN + records.len() / 2);
    out.extend_from_slice(&plain[..HEADER_LEN]);
    let put = |buf: &mut BytesMut| {
        buf.extend_from_slice(records);
        Ok(())
    };
    match codec {
        1 => Gzip::compress(&mut out, put),
        2 => Snappy::compress(&mut out, put),
        3 => Lz4::compress(&mut out, put),
        4 => Zstd::compress(&mut out, put),
        other => return Err(format!("unknown compression codec {other}")),
    }
    .map_err(|e| format!("cannot compress ({codec}): {e:#}"))?;
    let mut out = out.to_vec();
    out[22] = (out[22] & !(ATTR_COMPRESSION_MASK as u8)) | codec as u8;
    set_length_and_crc(&mut out)?;
    Ok(out)
}

fn set_length_and_crc(batch: &mut [u8]) -> Result<(), String> {
    let length = i32::try_from(batch.len() - LOG_OVERHEAD).map_err(|_| "batch too large".to_string())?;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    batch::rewrite_crc(batch);
    Ok(())
}

fn take(buf: &mut Bytes) -> anyhow::Result<Bytes> {
    Ok(buf.copy_to_bytes(buf.remaining()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records;

    #[test]
    fn every_codec_round_trips_a_batch() {
        let plain =
            records::encode_batch(1_000, &[(Some(b"k1"), Some(b"v1")), (Some(b"k2"), None), (None, Some(b"v3"))]);
        for codec in 1..=4 {
            let packed = compressed(&plain, codec).unwrap();
            assert_eq!(batch::attributes(&packed) & ATTR_COMPRESSION_MASK, codec);
            let header = batch::parse_header(&packed).unwrap();
            batch::check_crc(&header, &packed).unwrap();
            let unpacked = decompressed(&packed).unwrap();
            assert_eq!(unpacked[HEADER_LEN..], plain[HEADER_LEN..], "codec {codec}");
            assert_eq!(records::parse(&unpacked).unwrap().len(), 3);
        }
        let mut garbage = compressed(&plain, 1).unwrap();
        garbage[HEADER_LEN + 12] ^= 0xff;
        assert!(decompressed(&garbage).is_err());
    }
}
