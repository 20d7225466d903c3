//! The framing of everything the quorum writes to disk or sends to a peer:
//! a record is `length: u32 LE`, `crc32c(payload): u32 LE`, then `payload`
//! (postcard). On disk, a record that is cut short or fails its CRC marks a
//! torn write (`log_store` says when it is rot instead); on a connection,
//! it is a broken peer, and the connection is closed.
//!
//! Small files that are replaced whole (the vote, the snapshot) hold one
//! record and go through `weir_engine::durable::replace_file`, so a crash
//! leaves the old file or the new one.

use std::io;
use std::path::Path;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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

/// Sends one framed record holding `value`.
pub async fn write_to<W: AsyncWrite + Unpin, T: Serialize>(stream: &mut W, value: &T) -> io::Result<()> {
    let mut bytes = Vec::new();
    encode(value, &mut bytes)?;
    stream.write_all(&bytes).await?;
    stream.flush().await
}

/// Receives one framed record's payload; `None` if the stream ended cleanly
/// between records. A record cut short, failing its CRC, empty or over
/// [`MAX_RECORD`] is an error.
pub async fn read_from<R: AsyncRead + Unpin>(stream: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0; HEADER];
    let mut filled = 0;
    while filled < HEADER {
        match stream.read(&mut header[filled..]).await? {
            0 if filled == 0 => return Ok(None),
            0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a record's header cut short")),
            read => filled += read,
        }
    }
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if length == 0 || length > MAX_RECORD {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a record of {length} bytes")));
    }
    // Grown as bytes arrive, not allocated from the claimed length.
    let mut payload = Vec::new();
    (&mut *stream).take(length as u64).read_to_end(&mut payload).await?;
    if payload.len() < length {
        let got = payload.len();
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{got} of a record's {length} bytes")));
    }
    if crc32c::crc32c(&payload) != crc {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "a record failing its CRC"));
    }
    Ok(Some(payload))
}

fn invalid(e: postcard::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use futures::io::Cursor;

    use super::*;

    fn framed(value: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode(&value, &mut bytes).unwrap();
        bytes
    }

    fn read_all(bytes: Vec<u8>) -> (Vec<String>, io::Result<()>) {
        let mut stream = Cursor::new(bytes);
        let mut values = Vec::new();
        loop {
            match block_on(read_from(&mut stream)) {
                Ok(Some(payload)) => values.push(decode(&payload).unwrap()),
                Ok(None) => return (values, Ok(())),
                Err(e) => return (values, Err(e)),
            }
        }
    }

    #[test]
    fn records_written_to_a_stream_read_back_until_its_clean_end() {
        let mut stream = Cursor::new(Vec::new());
        for value in ["one", "two", ""] {
            block_on(write_to(&mut stream, &value)).unwrap();
        }
        let (values, end) = read_all(stream.into_inner());
        assert_eq!(values, ["one", "two", ""]);
        end.unwrap();
    }

    #[test]
    fn malformed_records_on_a_stream_are_errors() {
        let whole = framed("hello");
        let oversized = [&(MAX_RECORD as u32 + 1).to_le_bytes()[..], &[0; 4]].concat();
        let mut bad_crc = whole.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        let cases: [(&str, Vec<u8>, io::ErrorKind); 6] = [
            ("a header cut short", whole[..5].to_vec(), io::ErrorKind::UnexpectedEof),
            ("a payload cut short", whole[..whole.len() - 1].to_vec(), io::ErrorKind::UnexpectedEof),
            ("a flipped payload bit", bad_crc, io::ErrorKind::InvalidData),
            ("a zero length", vec![0; 8], io::ErrorKind::InvalidData),
            ("a length over the limit", oversized, io::ErrorKind::InvalidData),
            ("a length of u32::MAX", [u32::MAX.to_le_bytes(), [0; 4]].concat(), io::ErrorKind::InvalidData),
        ];
        for (case, bytes, kind) in cases {
            // After a good record, so the error is the second read's.
            let (values, end) = read_all([whole.clone(), bytes].concat());
            assert_eq!(values, ["hello"], "{case}");
            assert_eq!(end.expect_err(case).kind(), kind, "{case}");
        }
    }

    #[test]
    fn a_valid_frame_of_garbage_fails_to_decode_not_panics() {
        let mut bytes = Vec::new();
        let garbage = [0xff_u8; 16];
        bytes.extend_from_slice(&(garbage.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32c::crc32c(&garbage).to_le_bytes());
        bytes.extend_from_slice(&garbage);
        let payload = block_on(read_from(&mut Cursor::new(bytes))).unwrap().unwrap();
        assert_eq!(decode::<(u64, String)>(&payload).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
