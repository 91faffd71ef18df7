//! The plain encodings every tree shares: JSON values, UTF-8 text and big-endian u64
//! counters, each failing as a storage error.

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
