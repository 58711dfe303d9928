//! Names as the mount shows them. By default, raw bytes (bit-exact with the
//! source). With `--windows-names`, for a Samba share: a name that is not
//! valid UTF-8 (old Windows-1252 names such as `Facture_\xe9t\xe9.pdf`) cannot
//! cross SMB at all — Samba stops listing the folder at it — so it is shown
//! decoded as Windows-1252 (`Facture_été.pdf`), with a short suffix if that
//! would clash with another name of the folder. Valid names are untouched.

use std::collections::{HashMap, HashSet};

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

/// The names shown for a folder's entries that are not valid UTF-8, given
/// in listing order (`invalid`); `exists` says whether the folder has an
/// entry of that (valid) name. A name decoded as one already taken gets a
/// short suffix from the hash of its bytes.
pub fn shown_for_invalid<'a>(
    invalid: impl IntoIterator<Item = &'a [u8]>,
    exists: impl Fn(&[u8]) -> bool,
) -> Vec<Vec<u8>> {
    let mut taken: HashSet<Vec<u8>> = HashSet::new();
    let mut out = Vec::new();
    for n in invalid {
        let mut shown = decode_lossless_enough(n).into_bytes();
        if taken.contains(&shown) || exists(&shown) {
            let tag = &blake3::hash(n).to_hex()[..4];
            shown = match shown.iter().rposition(|&b| b == b'.').filter(|&i| i > 0) {
                Some(dot) => [&shown[..dot], b"~", tag.as_bytes(), &shown[dot..]].concat(),
                None => [&shown[..], b"~", tag.as_bytes()].concat(),
            };
        }
        taken.insert(shown.clone());
        out.push(shown);
    }
    out
}

/// A folder's names as shown, when some are not UTF-8: the shown name of
/// each such entry, and back.
#[derive(Debug, Default)]
pub struct ShownNames {
    shown_of: HashMap<Vec<u8>, Vec<u8>>,
    raw_of: HashMap<Vec<u8>, Vec<u8>>,
}

impl ShownNames {
    /// From the names not UTF-8, in listing order, and whether a (valid)
    /// name is in the folder; `None` when there are none.
    pub fn new(invalid: Vec<Vec<u8>>, exists: impl Fn(&[u8]) -> bool) -> Option<Self> {
        if invalid.is_empty() {
            return None;
        }
        let shown = shown_for_invalid(invalid.iter().map(Vec::as_slice), exists);
        let mut names = ShownNames::default();
        for (raw, shown) in invalid.into_iter().zip(shown) {
            names.raw_of.insert(shown.clone(), raw.clone());
            names.shown_of.insert(raw, shown);
        }
        Some(names)
    }

    /// The name shown for the recorded name `raw`.
    pub fn show<'a>(&'a self, raw: &'a [u8]) -> &'a [u8] {
        self.shown_of.get(raw).map_or(raw, Vec::as_slice)
    }

    /// The recorded name shown as `shown`, if any entry may be: a name
    /// that is not UTF-8 is never shown as itself.
    pub fn raw<'a>(&'a self, shown: &'a [u8]) -> Option<&'a [u8]> {
        match self.raw_of.get(shown) {
            Some(raw) => Some(raw),
            None => std::str::from_utf8(shown).is_ok().then_some(shown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names to show for a folder's entries (in the same order), or `None`
    /// when every name is valid UTF-8 and is shown as it is.
    fn windows_names(raw: &[&[u8]]) -> Option<Vec<Vec<u8>>> {
        let valid = |n: &&[u8]| std::str::from_utf8(n).is_ok();
        if raw.iter().all(valid) {
            return None;
        }
        let names: HashSet<&[u8]> = raw.iter().copied().filter(valid).collect();
        let mut shown = shown_for_invalid(raw.iter().copied().filter(|n| !valid(n)), |n| {
            names.contains(n)
        })
        .into_iter();
        Some(
            raw.iter()
                .map(|n| {
                    if valid(n) {
                        n.to_vec()
                    } else {
                        shown.next().unwrap_or_default()
                    }
                })
                .collect(),
        )
    }

    /// What the mount shows, worked out from the names that are not UTF-8
    /// and lookups, is what the whole list gives.
    #[test]
    fn shown_names_are_those_of_the_whole_list() {
        let raw: Vec<&[u8]> = vec![
            b"a.txt",
            b"caf\xe9.txt",
            "café.txt".as_bytes(),
            b"caf\xe9.txt\xff",
            b"d\xe9j\xe0",
            "déjà".as_bytes(),
            b"d\xe9j\xe0\x80",
            b"z",
        ];
        let whole = windows_names(&raw).unwrap();
        let valid: HashSet<&[u8]> = raw
            .iter()
            .copied()
            .filter(|n| std::str::from_utf8(n).is_ok())
            .collect();
        let invalid: Vec<Vec<u8>> = raw
            .iter()
            .filter(|n| std::str::from_utf8(n).is_err())
            .map(|n| n.to_vec())
            .collect();
        let shown = ShownNames::new(invalid, |n| valid.contains(n)).unwrap();
        for (r, w) in raw.iter().zip(&whole) {
            assert_eq!(shown.show(r), w.as_slice());
            assert_eq!(shown.raw(w), Some(*r));
        }
        assert_eq!(
            shown.raw(b"caf\xe9.txt"),
            None,
            "a raw name that is not UTF-8"
        );
        assert!(ShownNames::new(Vec::new(), |_| false).is_none());
    }

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
