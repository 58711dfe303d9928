//! Values typed by people: sizes.

use anyhow::{Context, Result};

/// "256M" -> 268435456; K, M, G and T are powers of 1024, a trailing "B"
/// or "iB" is allowed ("500MB", "2GiB"), a bare number is bytes.
///
/// # Errors
/// When it is not such a size.
pub fn size(s: &str) -> Result<u64> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let body = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (num, shift) = match body.chars().last() {
        Some('K') => (&body[..body.len() - 1], 10),
        Some('M') => (&body[..body.len() - 1], 20),
        Some('G') => (&body[..body.len() - 1], 30),
        Some('T') => (&body[..body.len() - 1], 40),
        _ => (body, 0),
    };
    let n: u64 = num
        .trim()
        .parse()
        .with_context(|| format!("invalid size {s:?} (examples: 500M, 2G)"))?;
    n.checked_mul(1 << shift)
        .with_context(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::size("256M").unwrap(), 256 << 20);
        assert_eq!(super::size("1g").unwrap(), 1 << 30);
        assert_eq!(super::size("2GiB").unwrap(), 2 << 30);
        assert_eq!(super::size("500MB").unwrap(), 500 << 20);
        assert_eq!(super::size("4096").unwrap(), 4096);
        assert!(super::size("lots").is_err());
        assert!(super::size("99999999999T").is_err());
    }
}
