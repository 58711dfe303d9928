//! A dependency-free content digest for regular files.
//!
//! The brief forbids extra crates, so the digest is two XXH64 runs with different
//! seeds plus the length: 128 bits of a well-studied non-cryptographic hash. That is
//! not collision-resistant against an adversary, but a backup tool that corrupts a
//! restored file does not search for collisions, so an accidental match between two
//! different contents of equal length has probability about 2^-128.

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

/// Seeds of the two hash runs; any two distinct values work, these are arbitrary.
const SEED_A: u64 = 0;
const SEED_B: u64 = 0x636F_6666_7265_2121; // "coffre!!"

/// The digest of a file's content: its length and two independent 64-bit hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Digest {
    /// Number of bytes hashed.
    pub len: u64,
    /// XXH64 of the content with seed 0.
    pub h1: u64,
    /// XXH64 of the content with a second seed.
    pub h2: u64,
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}{:016x} ({} bytes)", self.h1, self.h2, self.len)
    }
}

/// Incremental computation of a [`Digest`], fed in arbitrary pieces.
pub struct Digester {
    a: Xxh64,
    b: Xxh64,
}

impl Default for Digester {
    fn default() -> Self {
        Self::new()
    }
}

impl Digester {
    /// An empty digester.
    pub fn new() -> Self {
        Self {
            a: Xxh64::new(SEED_A),
            b: Xxh64::new(SEED_B),
        }
    }

    /// Feeds the next bytes of the content.
    pub fn update(&mut self, data: &[u8]) {
        self.a.update(data);
        self.b.update(data);
    }

    /// The digest of everything fed so far.
    pub fn finish(&self) -> Digest {
        Digest {
            len: self.a.total,
            h1: self.a.finish(),
            h2: self.b.finish(),
        }
    }
}

/// The digest of a byte slice held in memory.
pub fn digest_bytes(data: &[u8]) -> Digest {
    let mut d = Digester::new();
    d.update(data);
    d.finish()
}

fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn merge(acc: u64, v: u64) -> u64 {
    (acc ^ round(0, v)).wrapping_mul(P1).wrapping_add(P4)
}

fn le64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

/// Streaming XXH64 (the reference algorithm, checked against its published vectors).
pub(crate) struct Xxh64 {
    seed: u64,
    v: [u64; 4],
    /// Bytes not yet forming a whole 32-byte stripe.
    buf: [u8; 32],
    buf_len: usize,
    total: u64,
}

impl Xxh64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            seed,
            v: [
                seed.wrapping_add(P1).wrapping_add(P2),
                seed.wrapping_add(P2),
                seed,
                seed.wrapping_sub(P1),
            ],
            buf: [0; 32],
            buf_len: 0,
            total: 0,
        }
    }

    fn stripe(&mut self, s: &[u8]) {
        for (i, v) in self.v.iter_mut().enumerate() {
            *v = round(*v, le64(&s[i * 8..]));
        }
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.buf_len > 0 {
            let take = (32 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < 32 {
                return;
            }
            let stripe = self.buf;
            self.stripe(&stripe);
            self.buf_len = 0;
        }
        let mut chunks = data.chunks_exact(32);
        for c in &mut chunks {
            self.stripe(c);
        }
        let rest = chunks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    pub(crate) fn finish(&self) -> u64 {
        let mut h = if self.total >= 32 {
            let [v1, v2, v3, v4] = self.v;
            let mut h = v1
                .rotate_left(1)
                .wrapping_add(v2.rotate_left(7))
                .wrapping_add(v3.rotate_left(12))
                .wrapping_add(v4.rotate_left(18));
            for v in self.v {
                h = merge(h, v);
            }
            h
        } else {
            self.seed.wrapping_add(P5)
        };
        h = h.wrapping_add(self.total);
        let mut rest = &self.buf[..self.buf_len];
        while rest.len() >= 8 {
            h ^= round(0, le64(rest));
            h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
            rest = &rest[8..];
        }
        if rest.len() >= 4 {
            h ^= u64::from(le32(rest)).wrapping_mul(P1);
            h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
            rest = &rest[4..];
        }
        for &b in rest {
            h ^= u64::from(b).wrapping_mul(P5);
            h = h.rotate_left(11).wrapping_mul(P1);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(P2);
        h ^= h >> 29;
        h = h.wrapping_mul(P3);
        h ^ (h >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xxh64(data: &[u8], seed: u64) -> u64 {
        let mut h = Xxh64::new(seed);
        h.update(data);
        h.finish()
    }

    #[test]
    fn matches_the_reference_vectors() {
        assert_eq!(xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
        // 39 bytes: exercises the 32-byte stripes and every tail branch.
        assert_eq!(
            xxh64(b"Nobody inspects the spammish repetition", 0),
            0xFBCE_A83C_8A37_8BF1
        );
    }

    #[test]
    fn streaming_in_pieces_matches_one_shot() {
        let data: Vec<u8> = (0..1000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let whole = digest_bytes(&data);
        for piece in [1, 3, 7, 31, 32, 33, 100, 999] {
            let mut d = Digester::new();
            for c in data.chunks(piece) {
                d.update(c);
            }
            assert_eq!(d.finish(), whole, "pieces of {piece}");
        }
        let mut other = data.clone();
        other[500] ^= 1;
        assert_ne!(digest_bytes(&other), whole);
    }
}
