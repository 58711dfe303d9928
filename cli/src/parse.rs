//! Values typed by people: sizes.

use anyhow::{Context, Result};

/// "256M" -> 268435456; K, M, G and T are powers of 1024, a trailing "B"
/// or "iB" is allowed ("500MB", "2GiB"), a decimal too ("1.5T"), a bare
/// number is bytes.
///
/// # Errors
/// When it is not such a size.
pub fn size(s: &str) -> Result<u64> {
    let bad = || anyhow::anyhow!("invalid size {s:?} (examples: 500M, 2G, 1.5T)");
    let upper = s.trim().to_ascii_uppercase();
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
    let num = num.trim();
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(1 << shift)
            .with_context(|| format!("size {s:?} is too large"));
    }
    let x: f64 = num.parse().map_err(|_| bad())?;
    let bytes = x * (1u64 << shift) as f64;
    if !(bytes >= 0.0 && bytes < u64::MAX as f64) {
        return Err(bad());
    }
    Ok(bytes as u64)
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
        assert_eq!(super::size("1.5G").unwrap(), 3 << 29);
        assert!(super::size("-1G").is_err());
        assert!(super::size("lots").is_err());
        assert!(super::size("99999999999T").is_err());
    }
}
