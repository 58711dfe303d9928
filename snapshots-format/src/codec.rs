//! The byte-level encoding shared by every encrypted record (trees, chunk lists,
//! snapshot records, pack trailers): little-endian fixed integers, LEB128
//! varints and length-prefixed byte strings. Decoding treats its input as
//! untrusted: every length is bounded by the bytes actually present.

use crate::id::ID_LEN;

/// Appends encoded values to a byte vector.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A new, empty writer.
    pub fn new() -> Self {
        Self::default()
    }
    /// How many bytes were written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    /// The bytes written so far, borrowed.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }
    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
    /// One byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// A little-endian u32.
    pub fn u32_le(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// An unsigned LEB128 varint.
    pub fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(byte);
                return;
            }
            self.buf.push(byte | 0x80);
        }
    }
    /// A signed integer, zigzag-encoded then written as a varint.
    pub fn zigzag(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }
    /// Raw bytes with no length prefix.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
    /// A varint length followed by the bytes.
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.varint(bytes.len() as u64);
        self.raw(bytes);
    }
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("record is truncated")]
    Truncated,
    /// A varint longer than 64 bits.
    #[error("number out of range")]
    Overflow,
    /// A field holds a value the format does not allow.
    #[error("invalid value: {0}")]
    Invalid(&'static str),
    /// A version byte this build does not know: written by a newer Coffre.
    #[error("{0} version {1} is newer than this Coffre reads (upgrade Coffre)")]
    NewerVersion(&'static str, u8),
    /// Bytes left over after the last field.
    #[error("trailing bytes after record")]
    Trailing,
}

/// Reads encoded values from a byte slice.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }
    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing)
        }
    }
    /// Exactly `n` raw bytes.
    pub fn raw(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.raw(1)?[0])
    }
    /// A version byte that must equal `supported`: a higher one is reported
    /// as written by a newer Coffre, a lower one (0) as invalid.
    pub fn version(&mut self, what: &'static str, supported: u8) -> Result<(), DecodeError> {
        match self.u8()? {
            v if v == supported => Ok(()),
            v if v > supported => Err(DecodeError::NewerVersion(what, v)),
            _ => Err(DecodeError::Invalid("version 0")),
        }
    }
    /// A one-byte version from 1 to `newest`, returned: for objects whose
    /// older layouts are still read (FORMAT.md §13.2 rule 3).
    pub fn version_upto(&mut self, what: &'static str, newest: u8) -> Result<u8, DecodeError> {
        match self.u8()? {
            0 => Err(DecodeError::Invalid("version 0")),
            v if v > newest => Err(DecodeError::NewerVersion(what, v)),
            v => Ok(v),
        }
    }
    /// A little-endian u32.
    pub fn u32_le(&mut self) -> Result<u32, DecodeError> {
        let b = self.raw(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A 32-byte id.
    pub fn id(&mut self) -> Result<[u8; ID_LEN], DecodeError> {
        let mut out = [0u8; ID_LEN];
        out.copy_from_slice(self.raw(ID_LEN)?);
        Ok(out)
    }
    /// An unsigned LEB128 varint of at most 64 bits.
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            let part = u64::from(byte & 0x7f);
            if shift == 63 && part > 1 {
                return Err(DecodeError::Overflow);
            }
            value |= part << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Overflow)
    }
    /// A varint that must fit in a u32.
    pub fn varint_u32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.varint()?).map_err(|_| DecodeError::Overflow)
    }
    /// A zigzag-encoded signed integer.
    pub fn zigzag(&mut self) -> Result<i64, DecodeError> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }
    /// A varint length then that many bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| DecodeError::Overflow)?;
        self.raw(len)
    }
    /// A count of items that follow, each at least `min_item_len` bytes long;
    /// refusing counts the remaining input cannot hold keeps a hostile count
    /// from reserving huge amounts of memory.
    pub fn count(&mut self, min_item_len: usize) -> Result<usize, DecodeError> {
        let n = usize::try_from(self.varint()?).map_err(|_| DecodeError::Overflow)?;
        if n.saturating_mul(min_item_len.max(1)) > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn integers_round_trip(u in any::<u64>(), i in any::<i64>(), b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut w = Writer::new();
            w.varint(u);
            w.zigzag(i);
            w.bytes(&b);
            let bytes = w.into_bytes();
            let mut r = Reader::new(&bytes);
            prop_assert_eq!(r.varint().unwrap(), u);
            prop_assert_eq!(r.zigzag().unwrap(), i);
            prop_assert_eq!(r.bytes().unwrap(), &b[..]);
            prop_assert!(r.finish().is_ok());
        }
    }

    #[test]
    fn hostile_input_is_refused() {
        assert_eq!(
            Reader::new(&[0xff; 11]).varint(),
            Err(DecodeError::Overflow)
        );
        assert_eq!(Reader::new(&[0x80]).varint(), Err(DecodeError::Truncated));
        assert_eq!(Reader::new(&[5, 1, 2]).bytes(), Err(DecodeError::Truncated));
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0xff, 0x0f]).count(1),
            Err(DecodeError::Truncated)
        );
    }
}
