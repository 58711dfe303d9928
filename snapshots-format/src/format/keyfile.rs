//! Key files, `keys/<16 hex>` (FORMAT.md §3): the master key sealed under a
//! key derived from a passphrase with Argon2id. A repository may hold several
//! (pharmacist, IT provider, printed recovery key); any one opens it. Since
//! version 2 a key file also carries a label (its name, whether it is a
//! recovery key, when and by whom it was made), sealed under the
//! repository's keys so that only someone who opened it can read it.

use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroize;

use crate::codec::Reader;
use crate::crypto::{self, MasterKey, ObjectKind, REPO_ID_LEN};
use crate::error::{Error, Result};

/// Magic bytes opening a key file.
pub const MAGIC: &[u8; 8] = b"COFFREKY";
/// Key-file layout version written (1 is still read: no label).
pub const KEYFILE_VERSION: u32 = 2;
/// Longest sealed label a key file may carry.
const MAX_LABEL_LEN: usize = 4096;
/// Label layout version written (1 is still read: it binds no body).
const LABEL_VERSION: u8 = 2;
/// What the body hash in a version-2 label is derived under.
const BODY_CONTEXT: &str = "coffre 2026-12 v1 key file body";
const KDF_ARGON2ID: u8 = 1;
const SALT_LEN: usize = 16;
const HEADER_LEN: usize = 8 + 4 + 1 + 4 * 3 + SALT_LEN;
/// Encoded length of a version-1 key file (version 2 adds its label).
pub const KEYFILE_LEN: usize = HEADER_LEN + crypto::SEAL_OVERHEAD + 32;

/// What a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// A passphrase someone knows.
    Passphrase,
    /// A generated key printed on a recovery sheet.
    Recovery,
}

/// A key file's label: readable only with the repository's keys.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyLabel {
    /// What the key is for.
    pub kind: KeyKind,
    /// Its name (`pharmacien`, `prestataire`, `recovery`).
    pub name: String,
    /// When it was made (Unix seconds).
    pub created: i64,
    /// The host it was made on.
    pub host: String,
    /// The user who made it.
    pub user: String,
}

impl KeyLabel {
    /// The label's plaintext, binding the key file's `body` hash.
    fn encode(&self, body: &[u8; 32]) -> Vec<u8> {
        let mut w = crate::codec::Writer::new();
        w.u8(LABEL_VERSION);
        w.u8(match self.kind {
            KeyKind::Passphrase => 1,
            KeyKind::Recovery => 2,
        });
        w.bytes(self.name.as_bytes());
        w.zigzag(self.created);
        w.bytes(self.host.as_bytes());
        w.bytes(self.user.as_bytes());
        w.raw(body);
        w.into_bytes()
    }

    /// The label and, from label version 2, the body hash it binds.
    fn decode(
        bytes: &[u8],
    ) -> std::result::Result<(Self, Option<[u8; 32]>), crate::codec::DecodeError> {
        use crate::codec::DecodeError;
        let text = |b: &[u8]| {
            String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Invalid("text is not UTF-8"))
        };
        let mut r = Reader::new(bytes);
        let version = r.version_upto("key label", LABEL_VERSION)?;
        let kind = match r.u8()? {
            1 => KeyKind::Passphrase,
            2 => KeyKind::Recovery,
            _ => return Err(DecodeError::Invalid("unknown key kind")),
        };
        let name = text(r.bytes()?)?;
        let created = r.zigzag()?;
        let host = text(r.bytes()?)?;
        let user = text(r.bytes()?)?;
        let body = if version >= 2 {
            let mut body = [0u8; 32];
            body.copy_from_slice(r.raw(32)?);
            Some(body)
        } else {
            None
        };
        r.finish()?;
        let label = KeyLabel {
            kind,
            name,
            created,
            host,
            user,
        };
        Ok((label, body))
    }
}

/// Argon2id cost parameters, stored in clear in the key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl KdfParams {
    /// Parameters that derive in microseconds, for the library's tests.
    #[cfg(test)]
    pub(crate) const CHEAP: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: about a quarter of a second on a small box,
    /// years per guess-list for an attacker holding a stolen drive.
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

/// A decoded key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    /// The KDF parameters.
    pub params: KdfParams,
    salt: [u8; SALT_LEN],
    sealed: Vec<u8>,
    /// The layout version (1: no label).
    version: u32,
    /// The label sealed under the repository's keys (version 2).
    label: Vec<u8>,
}

/// Crockford's base-32 alphabet: no I, L, O or U to misread on paper.
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// A recovery key is 40 characters (200 random bits), in 8 groups of 5.
const RECOVERY_CHARS: usize = 40;

/// A new random recovery key, `XXXXX-XXXXX-...` (8 groups of 5): typed as
/// a passphrase, with or without dashes and spaces, in any case.
pub fn new_recovery_key() -> String {
    let bytes: [u8; RECOVERY_CHARS * 5 / 8] = crypto::random_array();
    let mut chars = Vec::with_capacity(RECOVERY_CHARS);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            chars.push(RECOVERY_ALPHABET[((acc >> bits) & 31) as usize]);
        }
    }
    group(&chars)
}

fn group(chars: &[u8]) -> String {
    chars
        .chunks(5)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// The normal form of something typed that may be a recovery key: upper
/// case, misreadable letters mapped (O→0, I and L→1), spaces and dashes
/// ignored, regrouped. `None` when it is not 40 such characters.
pub fn normalize_recovery_key(typed: &[u8]) -> Option<String> {
    let mut chars = Vec::with_capacity(RECOVERY_CHARS);
    for &b in typed {
        let c = match b.to_ascii_uppercase() {
            b' ' | b'-' | b'\t' | b'\r' | b'\n' => continue,
            b'O' => b'0',
            b'I' | b'L' => b'1',
            c if RECOVERY_ALPHABET.contains(&c) => c,
            _ => return None,
        };
        chars.push(c);
        if chars.len() > RECOVERY_CHARS {
            return None;
        }
    }
    (chars.len() == RECOVERY_CHARS).then(|| group(&chars))
}

impl KeyFile {
    /// Wraps `master` under `passphrase`, with `label` sealed under the
    /// repository's `keys` for the key file named `file_name`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the KDF parameters are out of Argon2's range.
    pub fn create(
        passphrase: &[u8],
        params: KdfParams,
        master: &MasterKey,
        keys: &crate::crypto::Keys,
        file_name: &str,
        label: &KeyLabel,
    ) -> Result<Self> {
        let salt = crypto::random_array();
        let mut kf = KeyFile {
            params,
            salt,
            sealed: Vec::new(),
            version: KEYFILE_VERSION,
            label: Vec::new(),
        };
        let repo_id = keys.repo_id();
        let mut kek = kf.derive_kek(passphrase)?;
        kf.sealed = crypto::wrap_master_key(&kek, &kf.aad(repo_id), master);
        kek.zeroize();
        kf.label = kf.seal_label(keys, file_name, label);
        Ok(kf)
    }

    /// `label` sealed for the key file named `file_name`, binding its body
    /// as it is now.
    fn seal_label(&self, keys: &crate::crypto::Keys, file_name: &str, label: &KeyLabel) -> Vec<u8> {
        let plain = label.encode(&self.body_hash());
        keys.seal(ObjectKind::KeyLabel, file_name.as_bytes(), &plain)
    }

    /// The hash a version-2 label binds: of everything before the label
    /// (header and sealed master key), which nobody without the passphrase
    /// could otherwise tell damaged.
    fn body_hash(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key(BODY_CONTEXT);
        h.update(&self.header_bytes());
        h.update(&self.sealed);
        *h.finalize().as_bytes()
    }

    /// The label and the body hash it binds, if any; `None` for a
    /// version-1 key file.
    fn open_label(
        &self,
        keys: &crate::crypto::Keys,
        file_name: &str,
    ) -> Result<Option<(KeyLabel, Option<[u8; 32]>)>> {
        if self.version == 1 {
            return Ok(None);
        }
        let bad = |why: String| Error::corrupt("key file", file_name, format!("label: {why}"));
        let plain = keys
            .open(ObjectKind::KeyLabel, file_name.as_bytes(), &self.label)
            .map_err(|e| bad(e.to_string()))?;
        KeyLabel::decode(&plain)
            .map(Some)
            .map_err(|e| bad(e.to_string()))
    }

    /// This key file with its label sealed again so that it binds the body
    /// (label version 2), when its label opens and binds nothing yet:
    /// nothing else changes, so the key file still opens with its
    /// passphrase. `None` when there is nothing to bind (bound already, or a
    /// version-1 key file, which has no label).
    ///
    /// # Errors
    /// As [`KeyFile::label`].
    pub fn bound(&self, keys: &crate::crypto::Keys, file_name: &str) -> Result<Option<KeyFile>> {
        match self.open_label(keys, file_name)? {
            Some((label, None)) => Ok(Some(KeyFile {
                label: self.seal_label(keys, file_name, &label),
                ..self.clone()
            })),
            _ => Ok(None),
        }
    }

    /// The label of the key file named `file_name`; `None` for a version-1
    /// key file, which has none.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the label fails to open or decode, or binds
    /// a body other than this key file's (damage to the key file, which
    /// its passphrase would no longer open).
    pub fn label(&self, keys: &crate::crypto::Keys, file_name: &str) -> Result<Option<KeyLabel>> {
        match self.open_label(keys, file_name)? {
            Some((_, Some(body))) if body != self.body_hash() => Err(Error::corrupt(
                "key file",
                file_name,
                "damaged: its salt, parameters or sealed key no longer match its label",
            )),
            Some((label, _)) => Ok(Some(label)),
            None => Ok(None),
        }
    }

    /// Unwraps the master key.
    ///
    /// # Errors
    /// [`Error::WrongPassphrase`] when the passphrase does not open this key file.
    pub fn open(&self, passphrase: &[u8], repo_id: &[u8; REPO_ID_LEN]) -> Result<MasterKey> {
        let mut kek = self.derive_kek(passphrase)?;
        let master = crypto::unwrap_master_key(&kek, &self.aad(repo_id), &self.sealed);
        kek.zeroize();
        master.map_err(|_| Error::WrongPassphrase)
    }

    fn derive_kek(&self, passphrase: &[u8]) -> Result<[u8; 32]> {
        let p = self.params;
        let params = Params::new(p.memory_kib, p.iterations, p.parallelism, Some(32))
            .map_err(|e| Error::corrupt("key file", "kdf", e))?;
        let mut kek = [0u8; 32];
        // Argon2's own memory is freed without being wiped: the working
        // memory is ours, and wiped once the key is derived (it holds what
        // the passphrase hashed into).
        let mut memory = vec![argon2::Block::new(); params.block_count()];
        let derived = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into_with_memory(passphrase, &self.salt, &mut kek, &mut memory[..]);
        memory.zeroize();
        derived.map_err(|e| Error::corrupt("key file", "kdf", e))?;
        Ok(kek)
    }

    fn header_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.push(KDF_ARGON2ID);
        out.extend_from_slice(&self.params.memory_kib.to_le_bytes());
        out.extend_from_slice(&self.params.iterations.to_le_bytes());
        out.extend_from_slice(&self.params.parallelism.to_le_bytes());
        out.extend_from_slice(&self.salt);
        out
    }

    /// The clear header and the repository id are authenticated with the key,
    /// so lowering the KDF cost in the file breaks it rather than weakening it.
    fn aad(&self, repo_id: &[u8; REPO_ID_LEN]) -> Vec<u8> {
        [&self.header_bytes()[..], repo_id].concat()
    }

    /// magic | version u32 | kdf id u8 | m, t, p u32 LE | salt 16 | sealed
    /// master key 60 | (version 2) label length u32 LE | sealed label.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = [self.header_bytes(), self.sealed.clone()].concat();
        if self.version >= 2 {
            out.extend_from_slice(&(self.label.len() as u32).to_le_bytes());
            out.extend_from_slice(&self.label);
        }
        out
    }

    /// Decodes a key file named `name`.
    ///
    /// # Errors
    /// [`Error::UnsupportedVersion`] for a newer layout, [`Error::Corrupt`] otherwise.
    pub fn decode(bytes: &[u8], name: &str) -> Result<Self> {
        let bad = |why: &str| Error::corrupt("key file", name, why);
        let mut r = Reader::new(bytes);
        if r.raw(8).map_err(|_| bad("too short"))? != MAGIC {
            return Err(bad("not a key file"));
        }
        let version = r.u32_le().map_err(|_| bad("too short"))?;
        if version == 0 {
            return Err(bad("version 0"));
        }
        if version > KEYFILE_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "key file",
                found: version,
                supported: KEYFILE_VERSION,
            });
        }
        let label_len = if version == 1 {
            0
        } else {
            let at = KEYFILE_LEN;
            let len = bytes
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or_else(|| bad("too short"))?;
            if !(crypto::SEAL_OVERHEAD..=MAX_LABEL_LEN).contains(&len) {
                return Err(bad("label length out of range"));
            }
            4 + len
        };
        if bytes.len() != KEYFILE_LEN + label_len {
            return Err(bad("wrong length"));
        }
        let kdf = r.u8().map_err(|_| bad("too short"))?;
        if kdf != KDF_ARGON2ID {
            return Err(bad("unknown key derivation function"));
        }
        let mut p = [0u32; 3];
        for v in &mut p {
            *v = r.u32_le().map_err(|_| bad("too short"))?;
        }
        // The parameters are read before anything is authenticated: bound
        // them so that a planted key file cannot exhaust memory or time.
        use crate::limits::{MAX_KDF_LANES, MAX_KDF_MEMORY_KIB, MAX_KDF_PASSES};
        if p[0] < 8
            || p[0] > MAX_KDF_MEMORY_KIB
            || p[1] == 0
            || p[1] > MAX_KDF_PASSES
            || p[2] == 0
            || p[2] > MAX_KDF_LANES
        {
            return Err(Error::corrupt(
                "key file",
                name,
                format!(
                    "asks for Argon2 with {} MiB, {} passes and {} lanes, beyond the {} MiB, {} passes and {} lanes Coffre accepts: planted or damaged; remove it from keys/",
                    p[0] >> 10,
                    p[1],
                    p[2],
                    MAX_KDF_MEMORY_KIB >> 10,
                    MAX_KDF_PASSES,
                    MAX_KDF_LANES
                ),
            ));
        }
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(r.raw(SALT_LEN).map_err(|_| bad("too short"))?);
        let sealed_len = crypto::SEAL_OVERHEAD + 32;
        let sealed = r.raw(sealed_len).map_err(|_| bad("too short"))?.to_vec();
        let label = if version == 1 {
            Vec::new()
        } else {
            r.raw(4).map_err(|_| bad("too short"))?;
            r.raw(r.remaining()).map_err(|_| bad("too short"))?.to_vec()
        };
        Ok(KeyFile {
            params: KdfParams {
                memory_kib: p[0],
                iterations: p[1],
                parallelism: p[2],
            },
            salt,
            sealed,
            version,
            label,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: KdfParams = KdfParams::CHEAP;

    fn label(name: &str) -> KeyLabel {
        KeyLabel {
            kind: KeyKind::Passphrase,
            name: name.into(),
            created: 1_790_000_000,
            host: "officine".into(),
            user: "root".into(),
        }
    }

    #[test]
    fn wrap_unwrap_and_wrong_passphrase() {
        let master = MasterKey::generate();
        let repo = [9; REPO_ID_LEN];
        let keys = crate::crypto::Keys::derive(&master, repo);
        let kf = KeyFile::create(
            b"correct horse",
            CHEAP,
            &master,
            &keys,
            "k",
            &label("pharmacien"),
        )
        .unwrap();
        let decoded = KeyFile::decode(&kf.encode(), "k").unwrap();
        assert_eq!(decoded, kf);
        assert_eq!(
            decoded.open(b"correct horse", &repo).unwrap().as_bytes(),
            master.as_bytes()
        );
        assert!(matches!(
            decoded.open(b"wrong", &repo),
            Err(Error::WrongPassphrase)
        ));
        // Tampering with the clear KDF parameters does not yield a key.
        let mut bytes = kf.encode();
        bytes[13] ^= 1;
        let tampered = KeyFile::decode(&bytes, "k").unwrap();
        assert!(tampered.open(b"correct horse", &repo).is_err());
    }

    #[test]
    fn recovery_keys_are_typed_back_in_any_form() {
        let key = new_recovery_key();
        assert_eq!(key.len(), 47);
        assert_eq!(key.matches('-').count(), 7);
        assert_eq!(
            normalize_recovery_key(key.as_bytes()).as_deref(),
            Some(key.as_str())
        );
        let sloppy = key
            .to_ascii_lowercase()
            .replace('-', " ")
            .replace('0', "o")
            .replace('1', "l");
        assert_eq!(
            normalize_recovery_key(sloppy.as_bytes()).as_deref(),
            Some(key.as_str())
        );
        assert_ne!(new_recovery_key(), key);
        assert_eq!(
            normalize_recovery_key(b"correct horse battery staple"),
            None
        );
        assert_eq!(normalize_recovery_key(&key.as_bytes()[..40]), None);
    }

    #[test]
    fn the_label_opens_only_with_the_repository_keys_and_its_own_name() {
        let master = MasterKey::generate();
        let repo = [3; REPO_ID_LEN];
        let keys = crate::crypto::Keys::derive(&master, repo);
        let mut want = label("prestataire");
        want.kind = KeyKind::Recovery;
        let kf = KeyFile::create(b"pass phrase", CHEAP, &master, &keys, "aa", &want).unwrap();
        let decoded = KeyFile::decode(&kf.encode(), "aa").unwrap();
        assert_eq!(decoded.label(&keys, "aa").unwrap(), Some(want));
        // Moved to another name, or read with another repository's keys: refused.
        assert!(decoded.label(&keys, "bb").is_err());
        let other = crate::crypto::Keys::derive(&MasterKey::generate(), repo);
        assert!(decoded.label(&other, "aa").is_err());
        // Downgrading to version 1 (dropping the label) breaks the master key seal.
        let mut v1 = kf.encode()[..KEYFILE_LEN].to_vec();
        v1[8] = 1;
        let old = KeyFile::decode(&v1, "aa").unwrap();
        assert!(old.open(b"pass phrase", &repo).is_err());
        // A planted length is bounded.
        let mut long = kf.encode();
        long[KEYFILE_LEN..KEYFILE_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(KeyFile::decode(&long, "aa").is_err());
    }

    /// Every byte before the label, flipped in turn, is detected by anyone
    /// holding the repository's keys, without the key file's passphrase.
    #[test]
    fn a_bound_label_detects_damage_to_the_body_without_the_passphrase() {
        let master = MasterKey::generate();
        let keys = crate::crypto::Keys::derive(&master, [5; REPO_ID_LEN]);
        let kf = KeyFile::create(b"autre", CHEAP, &master, &keys, "cc", &label("x")).unwrap();
        let bytes = kf.encode();
        for at in 0..KEYFILE_LEN {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            // Damage the decoder already refuses (magic, version, bounds)
            // counts as detected as well.
            if let Ok(decoded) = KeyFile::decode(&bad, "cc") {
                let err = decoded.label(&keys, "cc").unwrap_err().to_string();
                assert!(err.contains("damaged"), "byte {at}: {err}");
            }
        }
        assert!(KeyFile::decode(&bytes, "cc")
            .unwrap()
            .bound(&keys, "cc")
            .unwrap()
            .is_none());
    }

    /// A label of version 1 (format 5 and 6) is bound by sealing it again;
    /// the key file still opens with its passphrase, and now detects damage.
    #[test]
    fn an_unbound_label_is_bound_in_place() {
        let master = MasterKey::generate();
        let repo = [6; REPO_ID_LEN];
        let keys = crate::crypto::Keys::derive(&master, repo);
        let mut kf = KeyFile::create(b"ancien", CHEAP, &master, &keys, "dd", &label("y")).unwrap();
        let mut plain = label("y").encode(&[0; 32]);
        plain[0] = 1;
        plain.truncate(plain.len() - 32);
        kf.label = keys.seal(ObjectKind::KeyLabel, b"dd", &plain);
        let mut damaged = kf.clone();
        damaged.salt[0] ^= 1;
        assert_eq!(
            damaged.label(&keys, "dd").unwrap(),
            Some(label("y")),
            "v1: blind"
        );

        let bound = kf.bound(&keys, "dd").unwrap().expect("something to bind");
        let bound = KeyFile::decode(&bound.encode(), "dd").unwrap();
        assert_eq!(bound.label(&keys, "dd").unwrap(), Some(label("y")));
        assert_eq!(
            bound.open(b"ancien", &repo).unwrap().as_bytes(),
            master.as_bytes()
        );
        assert_eq!(bound.encode()[..KEYFILE_LEN], kf.encode()[..KEYFILE_LEN]);
        let mut damaged = bound.clone();
        damaged.salt[0] ^= 1;
        assert!(damaged.label(&keys, "dd").is_err());
    }
}
