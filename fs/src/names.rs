//! Names as the mount shows them. By default, raw bytes (bit-exact with the
//! source). With `--windows-names`, for a Samba share: a name that is not
//! valid UTF-8 (old Windows-1252 names such as `Facture_\xe9t\xe9.pdf`) cannot
//! cross SMB at all — Samba stops listing the folder at it — so it is shown
//! decoded as Windows-1252 (`Facture_été.pdf`), with a short suffix if that
//! would clash with another name of the folder. Valid names are untouched.

use std::collections::HashSet;

/// Windows-1252 characters for bytes 0x80..=0x9F ('_' where undefined).
const CP1252_HIGH: [char; 32] = [
    '€', '_', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '_', 'Ž', '_', '_', '‘', '’',
    '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '_', 'ž', 'Ÿ',
];

/// `raw` with its invalid UTF-8 bytes decoded as Windows-1252.
pub fn decode_lossless_enough(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len() + 8);
    for chunk in raw.utf8_chunks() {
        out.push_str(chunk.valid());
        for &b in chunk.invalid() {
            out.push(match b {
                0x80..=0x9f => CP1252_HIGH[(b - 0x80) as usize],
                _ => char::from(b),
            });
        }
    }
    out
}

/// The names to show for a folder's entries (in the same order), or `None`
/// when every name is valid UTF-8 and is shown as it is.
pub fn windows_names(raw: &[&[u8]]) -> Option<Vec<Vec<u8>>> {
    if raw.iter().all(|n| std::str::from_utf8(n).is_ok()) {
        return None;
    }
    let mut taken: HashSet<Vec<u8>> = raw
        .iter()
        .filter(|n| std::str::from_utf8(n).is_ok())
        .map(|n| n.to_vec())
        .collect();
    let mut out = Vec::with_capacity(raw.len());
    for n in raw {
        if std::str::from_utf8(n).is_ok() {
            out.push(n.to_vec());
            continue;
        }
        let mut shown = decode_lossless_enough(n).into_bytes();
        if taken.contains(&shown) {
            let tag = &blake3::hash(n).to_hex()[..4];
            shown = match shown.iter().rposition(|&b| b == b'.').filter(|&i| i > 0) {
                Some(dot) => [&shown[..dot], b"~", tag.as_bytes(), &shown[dot..]].concat(),
                None => [&shown[..], b"~", tag.as_bytes()].concat(),
            };
        }
        taken.insert(shown.clone());
        out.push(shown);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin_names_become_readable_and_unique() {
        assert_eq!(
            decode_lossless_enough(b"Facture_\xe9t\xe9_2019.pdf"),
            "Facture_été_2019.pdf"
        );
        assert_eq!(
            decode_lossless_enough(b"\x80uro d\xc3\xa9j\xe0"),
            "€uro déjà"
        );
        assert_eq!(windows_names(&[b"a", b"b"]), None);
        let names = windows_names(&[b"caf\xe9.txt", "café.txt".as_bytes(), b"x"]).unwrap();
        assert_eq!(names[1], "café.txt".as_bytes());
        assert_ne!(names[0], names[1]);
        assert!(String::from_utf8(names[0].clone())
            .unwrap()
            .starts_with("café~"));
        assert!(names[0].ends_with(b".txt"));
    }
}
