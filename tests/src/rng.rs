//! splitmix64: deterministic test data without a dependency, the same on
//! every run and every machine.

/// A splitmix64 generator seeded by its field.
pub struct Rng(pub u64);

/// FNV-1a 64-bit offset basis and prime.
const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash = (hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }
    hash
}

impl Rng {
    /// A generator for one purpose, seeded by a stable hash (FNV-1a) of the
    /// seed, the purpose and some numbers: the same stream on every machine,
    /// and unrelated streams for different purposes or numbers.
    pub fn derive(seed: u64, purpose: &str, numbers: &[i64]) -> Self {
        let mut h = fnv1a(FNV_OFFSET, &seed.to_le_bytes());
        h = fnv1a(h, purpose.as_bytes());
        h = fnv1a(h, &[0xFF]);
        for n in numbers {
            h = fnv1a(h, &n.to_le_bytes());
        }
        Rng(h)
    }

    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (slightly biased; fine for test data).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A number in `lo..hi` (`hi` excluded, `lo < hi`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }

    /// A number in `0.0..1.0`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `mean` rounded up or down at random so that the expected value is
    /// `mean` (a fractional count of things per day stays right on average).
    pub fn round(&mut self, mean: f64) -> u64 {
        let whole = mean.floor();
        whole as u64 + u64::from(self.chance(mean - whole))
    }

    /// `k` distinct numbers below `n` (all of them if `k >= n`), sorted.
    pub fn sample(&mut self, n: u64, k: u64) -> Vec<u64> {
        // Floyd's algorithm: k draws, whatever the size of n.
        let k = k.min(n);
        let mut chosen = std::collections::BTreeSet::new();
        for j in n - k..n {
            let t = self.below(j + 1);
            if !chosen.insert(t) {
                chosen.insert(j);
            }
        }
        chosen.into_iter().collect()
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.fill(&mut v);
        v
    }
}
