//! A bandwidth limit shared by every request of a backend: a pharmacy's
//! upload line also carries the teletransmissions and the card terminal,
//! so a copy must not take all of it.

use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bytes are handed out in pieces of at most this size, so the pace is even
/// and a slow line never waits a long time for one large piece.
const PIECE: usize = 16 << 10;

/// How far ahead of the limit a burst may run: the line's own buffers
/// absorb that much anyway.
const BURST: Duration = Duration::from_millis(250);

/// A rate limit in bytes per second, shared by threads.
#[derive(Debug)]
pub struct Throttle {
    bytes_per_sec: u64,
    /// When the bytes handed out so far are paid for.
    paid_until: Mutex<Instant>,
}

impl Throttle {
    /// A limit of `bytes_per_sec` (at least 1).
    pub fn new(bytes_per_sec: u64) -> Self {
        Self {
            bytes_per_sec: bytes_per_sec.max(1),
            paid_until: Mutex::new(Instant::now()),
        }
    }

    /// Waits until `n` more bytes fit within the limit. Time not used is
    /// not saved up: an idle minute does not allow a minute's burst.
    pub fn take(&self, n: usize) {
        let cost = Duration::from_secs_f64(n as f64 / self.bytes_per_sec as f64);
        let end = {
            let mut paid = self
                .paid_until
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let start = (*paid).max(Instant::now());
            *paid = start + cost;
            *paid
        };
        let now = Instant::now();
        if end > now + BURST {
            std::thread::sleep(end - now - BURST);
        }
    }
}

/// A reader paced by an optional [`Throttle`].
pub struct Throttled<'t, R> {
    inner: R,
    throttle: Option<&'t Throttle>,
}

impl<'t, R: Read> Throttled<'t, R> {
    /// Wraps `inner`; without a throttle it reads at full speed.
    pub fn new(inner: R, throttle: Option<&'t Throttle>) -> Self {
        Self { inner, throttle }
    }
}

impl<R: Read> Read for Throttled<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(throttle) = self.throttle else {
            return self.inner.read(buf);
        };
        let max = buf.len().min(PIECE);
        let n = self.inner.read(&mut buf[..max])?;
        throttle.take(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_rate_across_threads() {
        // 4 threads × 64 KiB at 512 KiB/s: at least 0.5 s minus the burst.
        let throttle = Throttle::new(512 << 10);
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let data = vec![7u8; 64 << 10];
                    let mut r = Throttled::new(&data[..], Some(&throttle));
                    let mut out = Vec::new();
                    r.read_to_end(&mut out).unwrap();
                    assert_eq!(out, data);
                });
            }
        });
        assert!(
            start.elapsed() >= Duration::from_millis(240),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn no_throttle_passes_through() {
        let data = vec![1u8; 100 << 10];
        let mut out = Vec::new();
        Throttled::new(&data[..], None)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }
}
