//! Key files, `keys/<16 hex>` (FORMAT.md §3): the master key sealed under a
//! key derived from a passphrase with Argon2id. A repository may hold several
//! (pharmacist, IT provider, printed recovery key); any one opens it.

use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroize;

use crate::codec::Reader;
use crate::crypto::{self, MasterKey, REPO_ID_LEN};
use crate::error::{Error, Result};

/// Magic bytes opening a key file.
pub const MAGIC: &[u8; 8] = b"COFFREKY";
/// Key-file layout version.
pub const KEYFILE_VERSION: u32 = 1;
const KDF_ARGON2ID: u8 = 1;
const SALT_LEN: usize = 16;
const HEADER_LEN: usize = 8 + 4 + 1 + 4 * 3 + SALT_LEN;
/// Encoded length of a key file.
pub const KEYFILE_LEN: usize = HEADER_LEN + crypto::SEAL_OVERHEAD + 32;

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
}

impl KeyFile {
    /// Wraps `master` under `passphrase`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the KDF parameters are out of Argon2's range.
    pub fn create(
        passphrase: &[u8],
        params: KdfParams,
        master: &MasterKey,
        repo_id: &[u8; REPO_ID_LEN],
    ) -> Result<Self> {
        let salt = crypto::random_array();
        let mut kf = KeyFile {
            params,
            salt,
            sealed: Vec::new(),
        };
        let mut kek = kf.derive_kek(passphrase)?;
        kf.sealed = crypto::wrap_master_key(&kek, &kf.aad(repo_id), master);
        kek.zeroize();
        Ok(kf)
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
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase, &self.salt, &mut kek)
            .map_err(|e| Error::corrupt("key file", "kdf", e))?;
        Ok(kek)
    }

    fn header_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&KEYFILE_VERSION.to_le_bytes());
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

    /// magic | version u32 | kdf id u8 | m, t, p u32 LE | salt 16 | sealed master key 60.
    pub fn encode(&self) -> Vec<u8> {
        [self.header_bytes(), self.sealed.clone()].concat()
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
        if bytes.len() != KEYFILE_LEN {
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
        if p[0] < 8 || p[0] > 4 << 20 || p[1] == 0 || p[1] > 64 || p[2] == 0 || p[2] > 16 {
            return Err(bad("key derivation parameters out of range"));
        }
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(r.raw(SALT_LEN).map_err(|_| bad("too short"))?);
        let sealed = r.raw(r.remaining()).map_err(|_| bad("too short"))?.to_vec();
        Ok(KeyFile {
            params: KdfParams {
                memory_kib: p[0],
                iterations: p[1],
                parallelism: p[2],
            },
            salt,
            sealed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn wrap_unwrap_and_wrong_passphrase() {
        let master = MasterKey::generate();
        let repo = [9; REPO_ID_LEN];
        let kf = KeyFile::create(b"correct horse", CHEAP, &master, &repo).unwrap();
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
}
