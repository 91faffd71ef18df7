//! The plain encodings every tree shares: JSON values, UTF-8 text and big-endian u64
//! counters, each failing as a storage error.

use std::borrow::Cow;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// A big-endian u64; `what` names it in the error.
pub(super) fn decode_u64(bytes: &[u8], what: &str) -> Result<u64, Error> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| Error::Storage(format!("{what} is not 8 bytes")))?;
    Ok(u64::from_be_bytes(bytes))
}

pub(super) fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|error| Error::Storage(format!("encoding: {error}")))
}

pub(super) fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|error| Error::Storage(format!("decoding: {error}")))
}

pub(super) fn utf8(bytes: &[u8]) -> Result<String, Error> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Error::Storage("a stored key is not UTF-8".to_owned()))
}

/// Appends `bytes` to `out`, after their length as a big-endian u32.
pub(super) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), Error> {
    let len =
        u32::try_from(bytes.len()).map_err(|_| Error::Storage("a value over 4 GiB".to_owned()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// The bytes [`put_bytes`] put at the start of `input`, which moves past them; none if
/// `input` is too short for what it says.
pub(super) fn take_bytes<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = input.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    let bytes = rest.get(..len)?;
    *input = &rest[len..];
    Some(bytes)
}

/// The first bytes of a zstd frame: a value that starts with them is compressed (JSON
/// itself starts with `[`, `{` or a quote, never with 0x28 0xB5; for a run of entries,
/// see `runs`).
pub(super) const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// How hard [`compress`] works: zstd's levels, 1 and up, and its faster ones below.
#[derive(Clone, Copy)]
pub(super) enum Level {
    /// Level 1: for values written a few times and large (an outbox segment: the
    /// mails, rendered from a few templates, shrink about 25 times, at several hundred
    /// MB/s).
    Small,
    /// Level -1: for small values written often (a ledger run, rewritten whole for
    /// each entry a commit adds to it): the example's runs take 6 µs each to compress,
    /// 2 to decompress, and shrink 3.7 times (12 µs, 5 and 4.7 times at level 1, which
    /// made 100,000 challenges ingested in random order 20% slower than at -1).
    Fast,
}

impl Level {
    fn zstd(self) -> i32 {
        match self {
            Level::Small => 1,
            Level::Fast => -1,
        }
    }
}
/// How much of the size a compressed value's header claims is allocated up front: the
/// rest grows as the data really decompresses, so that a damaged header cannot ask for
/// all the memory there is, and no segment is too large to be read back.
const DECOMPRESS_UP_FRONT: u64 = 64 << 20;

thread_local! {
    /// One compressor per thread (the commit thread writes nearly all of them): a
    /// fresh zstd context allocates its tables, which costs more than compressing a
    /// small value.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    /// One decompressor per thread, for the same reason.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// `value` as JSON compressed with zstd: for values that are large and repetitive
/// (an outbox segment), which sled would otherwise write as blobs, and write again
/// whole each time their tree node changes, and read again on every open.
pub(super) fn to_compressed_json<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    compress(&to_json(value)?, Level::Small)
}

/// `bytes` compressed with zstd at `level` (see [`to_compressed_json`]).
pub(super) fn compress(bytes: &[u8], level: Level) -> Result<Vec<u8>, Error> {
    let failed = |error: std::io::Error| Error::Storage(format!("compressing: {error}"));
    COMPRESSOR.with_borrow_mut(|compressor| {
        let compressor = match compressor {
            Some(compressor) => compressor,
            None => compressor.insert(zstd::bulk::Compressor::new(level.zstd()).map_err(failed)?),
        };
        compressor
            .set_compression_level(level.zstd())
            .map_err(failed)?;
        compressor.compress(bytes).map_err(failed)
    })
}

/// A value written by [`to_compressed_json`] as `T`; plain JSON (what stores written
/// before the compression hold) is read as it is.
pub(super) fn from_maybe_compressed_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    from_json(&maybe_decompress(bytes)?)
}

/// `bytes` decompressed if [`compress`] made them (they start with zstd's magic),
/// else as they are: for values whose plain encoding never starts with that magic.
pub(super) fn maybe_decompress(bytes: &[u8]) -> Result<Cow<'_, [u8]>, Error> {
    if bytes.starts_with(&ZSTD_MAGIC) {
        decompress(bytes).map(Cow::Owned)
    } else {
        Ok(Cow::Borrowed(bytes))
    }
}

fn decompress(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let failed = |error: std::io::Error| Error::Storage(format!("decompressing: {error}"));
    let claimed = zstd::zstd_safe::get_frame_content_size(bytes)
        .ok()
        .flatten()
        .unwrap_or(0);
    if claimed > 0 && claimed <= DECOMPRESS_UP_FRONT {
        // The usual case, small values (a ledger run) above all: one reused context
        // per thread, as for compressing, and the output allocated once. A header
        // that claims less than the data holds fails the decompression.
        return DECOMPRESSOR.with_borrow_mut(|decompressor| {
            let decompressor = match decompressor {
                Some(decompressor) => decompressor,
                None => decompressor.insert(zstd::bulk::Decompressor::new().map_err(failed)?),
            };
            decompressor
                .decompress(bytes, claimed as usize)
                .map_err(failed)
        });
    }
    let mut json = Vec::with_capacity(claimed.min(DECOMPRESS_UP_FRONT) as usize);
    zstd::stream::copy_decode(bytes, &mut json).map_err(failed)?;
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_json_reads_back_and_plain_json_still_reads() {
        let items: Vec<String> = (0..500)
            .map(|n| format!("Hello Owner {n}, your challenge"))
            .collect();
        let compressed = to_compressed_json(&items).unwrap();
        assert!(compressed.starts_with(&ZSTD_MAGIC));
        assert!(compressed.len() * 5 < to_json(&items).unwrap().len());
        assert_eq!(
            from_maybe_compressed_json::<Vec<String>>(&compressed).unwrap(),
            items
        );
        let plain = to_json(&items).unwrap();
        assert_eq!(
            from_maybe_compressed_json::<Vec<String>>(&plain).unwrap(),
            items
        );
    }

    #[test]
    fn a_damaged_compressed_value_is_a_storage_error() {
        let mut compressed = to_compressed_json(&vec!["x".repeat(1000); 10]).unwrap();
        let cut = compressed.len() / 2;
        compressed.truncate(cut);
        assert!(matches!(
            from_maybe_compressed_json::<Vec<String>>(&compressed),
            Err(Error::Storage(_))
        ));
        let mut huge = ZSTD_MAGIC.to_vec();
        huge.extend_from_slice(&[0xFF; 12]);
        assert!(matches!(
            from_maybe_compressed_json::<Vec<String>>(&huge),
            Err(Error::Storage(_))
        ));
    }
}
