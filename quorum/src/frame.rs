//! The framing of everything the quorum writes to disk: a record is
//! `length: u32 LE`, `crc32c(payload): u32 LE`, then `payload` (postcard).
//! A record that is cut short or fails its CRC marks a torn write.
//!
//! Small files that are replaced whole (the vote, the snapshot) hold one
//! record and go through `weir_engine::durable::replace_file`, so a crash
//! leaves the old file or the new one.

use std::io;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The length and the CRC.
const HEADER: usize = 8;

/// No record is larger: metadata commands and snapshots are small, and a
/// garbage length must not make us allocate gigabytes.
pub const MAX_RECORD: usize = 256 << 20;

/// Appends one framed record holding `value` to `out`.
pub fn encode<T: Serialize>(value: &T, out: &mut Vec<u8>) -> io::Result<()> {
    let payload = postcard::to_stdvec(value).map_err(invalid)?;
    if payload.len() > MAX_RECORD {
        let length = payload.len();
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("a {length}-byte record")));
    }
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

/// The payload of the record at the start of `bytes` and the record's whole
/// length, or `None` if it is torn (short, empty, oversized or failing its
/// CRC).
pub fn next(bytes: &[u8]) -> Option<(&[u8], usize)> {
    let header = bytes.get(..HEADER)?;
    let length = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    // No value encodes to nothing, and a crash can leave a file's tail
    // zero-filled: a zero length (whose CRC is also zero) is torn.
    if length == 0 || length > MAX_RECORD {
        return None;
    }
    let payload = bytes.get(HEADER..HEADER + length)?;
    (crc32c::crc32c(payload) == crc).then_some((payload, HEADER + length))
}

/// Decodes a record's payload. Its CRC held, so a failure here is not a torn
/// write but a format this build cannot read: an error, never skipped.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> io::Result<T> {
    postcard::from_bytes(payload).map_err(invalid)
}

/// Reads a file that holds one record, `None` if there is no such file.
pub fn read_file<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match next(&bytes) {
        Some((payload, length)) if length == bytes.len() => decode(payload).map(Some),
        _ => Err(io::Error::new(io::ErrorKind::InvalidData, format!("{} is corrupt", path.display()))),
    }
}

/// Replaces the file `name` in `dir` with one record holding `value`,
/// durably and atomically.
pub fn replace_file<T: Serialize>(dir: &Path, name: &str, value: &T) -> io::Result<()> {
    let mut bytes = Vec::new();
    encode(value, &mut bytes)?;
    weir_engine::durable::replace_file(&dir.join(name), &dir.join(format!("{name}.tmp")), &bytes)
}

fn invalid(e: postcard::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}
