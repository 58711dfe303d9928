//! Building text into byte buffers quickly: numbers without `format!`, and
//! records of separated fields.

use crate::Rng;

/// Appends `n` in decimal.
pub fn num(out: &mut Vec<u8>, n: u64) {
    padded(out, n, 1);
}

/// Appends `n` in decimal, zero-padded to at least `width` digits.
pub fn padded(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    while n > 0 || buf.len() - i < width {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends an amount of cents as euros with a decimal comma: `12,05`.
pub fn euros(out: &mut Vec<u8>, cents: u64) {
    num(out, cents / 100);
    out.push(b',');
    padded(out, cents % 100, 2);
}

/// Appends `HH:MM:SS` of `secs` seconds after midnight.
pub fn clock(out: &mut Vec<u8>, secs: u32) {
    padded(out, u64::from(secs / 3600), 2);
    out.push(b':');
    padded(out, u64::from(secs / 60 % 60), 2);
    out.push(b':');
    padded(out, u64::from(secs % 60), 2);
}

/// Appends `bytes` as lower-case hexadecimal.
pub fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
}

/// A record being written: fields with a separator between them.
pub struct Fields<'a> {
    out: &'a mut Vec<u8>,
    sep: u8,
    first: bool,
}

impl<'a> Fields<'a> {
    /// A record appended to `out`, its fields separated by `sep`.
    pub fn new(out: &'a mut Vec<u8>, sep: u8) -> Self {
        Self {
            out,
            sep,
            first: true,
        }
    }

    /// Starts the next field: write it into the buffer returned.
    pub fn field(&mut self) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(self.sep);
        }
        self.first = false;
        self.out
    }

    /// A field of these bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.field().extend_from_slice(b);
        self
    }

    /// A field of `n` in decimal.
    pub fn num(&mut self, n: u64) -> &mut Self {
        num(self.field(), n);
        self
    }

    /// A field of `n` zero-padded to `width` digits.
    pub fn padded(&mut self, n: u64, width: usize) -> &mut Self {
        padded(self.field(), n, width);
        self
    }

    /// A field of an amount in euros.
    pub fn euros(&mut self, cents: u64) -> &mut Self {
        euros(self.field(), cents);
        self
    }

    /// A field of one of `words`, at random.
    pub fn pick(&mut self, rng: &mut Rng, words: &[&str]) -> &mut Self {
        self.field().extend_from_slice(rng.pick(words).as_bytes());
        self
    }

    /// Ends the record with `end` (a newline).
    pub fn end(&mut self, end: &[u8]) {
        self.out.extend_from_slice(end);
    }
}
