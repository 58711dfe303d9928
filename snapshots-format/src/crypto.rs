//! All encryption and keyed hashing of the repository lives here.
//!
//! Every object written is sealed with AES-256-GCM under a 96-bit random nonce
//! drawn at the moment of sealing (so a nonce can never be reused by copying a
//! value). The associated data binds the repository id, the kind of object and,
//! where it has one, its id: an object moved into another place, another kind
//! or another repository fails to authenticate instead of decrypting to
//! something plausible. Key material is zeroized when dropped.

use aes_gcm::aead::{Aead, AeadInOut, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use zeroize::Zeroize;

/// Inputs up to this size are joined before they are hashed (see
/// [`Keys::blob_hash_parts`]); above it the piecewise overhead is noise.
const JOINED_HASH_MAX: usize = 64 * 1024 + 1;

thread_local! {
    /// The buffer [`Keys::blob_hash_parts`] joins small inputs in, kept
    /// per thread so hashing a page allocates nothing.
    static JOINED: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(Vec::with_capacity(JOINED_HASH_MAX));
}

/// Bytes added to a plaintext by [`Keys::seal`]: nonce then tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// AES-GCM nonce length.
pub const NONCE_LEN: usize = 12;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Repository id length.
pub const REPO_ID_LEN: usize = 16;

/// What an encrypted object is; its byte is part of the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ObjectKind {
    /// The master key inside a key file.
    MasterKey = 0x01,
    /// A blob in a pack; the context is the blob kind byte and the blob id.
    Blob = 0x02,
    /// A pack trailer.
    PackTrailer = 0x03,
    /// A snapshot record.
    Snapshot = 0x04,
    /// A blob location in the index; the context is the blob id.
    Location = 0x05,
    /// A lock file's description of its holder; the context is the file name.
    Lock = 0x06,
    /// The saved retention policy.
    Policy = 0x07,
    /// The compression dictionary.
    Dictionary = 0x08,
    /// An index file (format 4).
    IndexFile = 0x09,
    /// A key file's label (format 5); the context is the key file's name.
    KeyLabel = 0x0A,
    /// A journal entry.
    Journal = 0x0B,
}

/// Sealing failed to authenticate: wrong key, or the bytes were changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("decryption failed: wrong key or damaged data")]
pub struct AuthError;

/// The 256-bit master key of a repository.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> Self {
        Self(random_array())
    }
    /// Wraps existing bytes (from an unwrapped key file).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    /// The raw key, only for wrapping it into a key file.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key-check value of this key for the repository `repo_id`
    /// (FORMAT.md §2): stored in `config`, it tells the repository's own
    /// master key from one that a planted or foreign key file unwraps,
    /// before anything is written under the wrong key. It reveals nothing
    /// of the key (a one-way derivation under its own context string).
    pub fn check_value(&self, repo_id: &[u8; REPO_ID_LEN]) -> [u8; KEY_CHECK_LEN] {
        let mut input = [0u8; 32 + REPO_ID_LEN];
        input[..32].copy_from_slice(&self.0);
        input[32..].copy_from_slice(repo_id);
        let full = blake3::derive_key("coffre 2026-12 v1 key check value", &input);
        input.zeroize();
        let mut out = [0u8; KEY_CHECK_LEN];
        out.copy_from_slice(&full[..KEY_CHECK_LEN]);
        out
    }
}

/// Length of a key-check value.
pub const KEY_CHECK_LEN: usize = 16;

/// How many objects may be sealed under one key with random 96-bit nonces
/// before a repeated nonce becomes a real risk (NIST SP 800-38D §8.3: at
/// most 2^32 invocations). Coffre counts its seals in the journal and
/// warns at half of this (FORMAT.md §11.3).
pub const SEAL_BUDGET: u64 = 1 << 32;

/// The working keys of an opened repository, derived from the master key.
pub struct Keys {
    cipher: Aes256Gcm,
    id_key: IdKey,
    chunker_seed: u64,
    repo_id: [u8; REPO_ID_LEN],
    /// Objects sealed by this process, for the key's budget ([`SEAL_BUDGET`]).
    seals: std::sync::atomic::AtomicU64,
}

struct IdKey([u8; 32]);

impl Drop for IdKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Keys {
    /// Derives the encryption key, the blob-id key and the chunker seed from
    /// the master key, each under its own BLAKE3 context string.
    pub fn derive(master: &MasterKey, repo_id: [u8; REPO_ID_LEN]) -> Self {
        let mut enc = blake3::derive_key("coffre 2026-11 v1 object encryption key", &master.0);
        let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(enc));
        enc.zeroize();
        let id_key = IdKey(blake3::derive_key(
            "coffre 2026-11 v1 blob id key",
            &master.0,
        ));
        let mut seed = blake3::derive_key("coffre 2026-11 v1 chunker seed", &master.0);
        let chunker_seed = u64::from_le_bytes([
            seed[0], seed[1], seed[2], seed[3], seed[4], seed[5], seed[6], seed[7],
        ]);
        seed.zeroize();
        Self {
            cipher,
            id_key,
            chunker_seed,
            repo_id,
            seals: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many objects this process sealed with these keys.
    pub fn seals(&self) -> u64 {
        self.seals.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count_seal(&self) {
        self.seals
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The keyed hash that names a blob: equal plaintexts in two repositories
    /// get unrelated ids.
    pub fn blob_hash(&self, kind: u8, plaintext: &[u8]) -> [u8; 32] {
        self.blob_hash_parts(kind, &[plaintext])
    }

    /// [`Keys::blob_hash`] of the concatenation of `parts` (built only for
    /// small inputs, in a per-thread buffer).
    pub fn blob_hash_parts(&self, kind: u8, parts: &[&[u8]]) -> [u8; 32] {
        let len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
        if len <= JOINED_HASH_MAX {
            // The kind byte shifts every 1 KiB BLAKE3 chunk of the plaintext
            // by one, and fed piecewise the hasher then compresses the first
            // and last chunks one block at a time: joined into one buffer,
            // every chunk goes through the wide SIMD path. An 8 KiB page
            // hashes in half the time (4.8 µs against 2.5 µs here); the
            // hash is the same.
            return JOINED.with(|joined| {
                let mut joined = joined.borrow_mut();
                joined.clear();
                joined.push(kind);
                for part in parts {
                    joined.extend_from_slice(part);
                }
                *blake3::keyed_hash(&self.id_key.0, &joined).as_bytes()
            });
        }
        let mut h = blake3::Hasher::new_keyed(&self.id_key.0);
        h.update(&[kind]);
        for part in parts {
            h.update(part);
        }
        *h.finalize().as_bytes()
    }

    /// The seed mixed into the chunker's gear table, so that chunk boundaries
    /// (and so blob sizes) do not fingerprint known files.
    pub fn chunker_seed(&self) -> u64 {
        self.chunker_seed
    }

    /// The repository id these keys are bound to.
    pub fn repo_id(&self) -> &[u8; REPO_ID_LEN] {
        &self.repo_id
    }

    /// Encrypts `plaintext`; the output is nonce || ciphertext || tag.
    pub fn seal(&self, kind: ObjectKind, context: &[u8], plaintext: &[u8]) -> Vec<u8> {
        self.count_seal();
        seal_with(&self.cipher, &aad(&self.repo_id, kind, context), plaintext)
    }

    /// [`Keys::seal`] without copying: `buf` holds [`NONCE_LEN`] bytes of room
    /// followed by the plaintext, and ends up holding the sealed object. Blobs
    /// are sealed this way: most of a snapshot's bytes pass through here.
    pub fn seal_in_place(&self, kind: ObjectKind, context: &[u8], buf: &mut Vec<u8>) {
        self.count_seal();
        seal_in_place_with(&self.cipher, &aad(&self.repo_id, kind, context), buf);
    }

    /// Decrypts and authenticates the output of [`Keys::seal`].
    ///
    /// # Errors
    /// [`AuthError`] when the key, the kind, the context or a single bit differs.
    pub fn open(
        &self,
        kind: ObjectKind,
        context: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, AuthError> {
        open_with(&self.cipher, &aad(&self.repo_id, kind, context), sealed)
    }
}

fn aad(repo_id: &[u8; REPO_ID_LEN], kind: ObjectKind, context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(REPO_ID_LEN + 1 + context.len());
    aad.extend_from_slice(repo_id);
    aad.push(kind as u8);
    aad.extend_from_slice(context);
    aad
}

fn seal_with(cipher: &Aes256Gcm, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len());
    buf.extend_from_slice(&[0; NONCE_LEN]);
    buf.extend_from_slice(plaintext);
    seal_in_place_with(cipher, aad, &mut buf);
    buf
}

fn seal_in_place_with(cipher: &Aes256Gcm, aad: &[u8], buf: &mut Vec<u8>) {
    let nonce_bytes: [u8; NONCE_LEN] = random_array();
    let (head, body) = buf.split_at_mut(NONCE_LEN);
    head.copy_from_slice(&nonce_bytes);
    // Only fails for messages over 64 GiB, which no caller produces (blobs are
    // bounded by the chunker, records by the pack size).
    let tag = cipher
        .encrypt_inout_detached(&Nonce::from(nonce_bytes), aad, body.into())
        .expect("AES-GCM input within its size limit");
    buf.extend_from_slice(&tag);
}

fn open_with(cipher: &Aes256Gcm, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, AuthError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(AuthError);
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_from(nonce).map_err(|_| AuthError)?;
    cipher
        .decrypt(&nonce, Payload { msg: ct, aad })
        .map_err(|_| AuthError)
}

/// Seals the master key under a key-encryption key (from the passphrase KDF).
pub fn wrap_master_key(kek: &[u8; 32], header: &[u8], master: &MasterKey) -> Vec<u8> {
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*kek));
    seal_with(
        &cipher,
        &[header, &[ObjectKind::MasterKey as u8]].concat(),
        &master.0,
    )
}

/// Opens a wrapped master key.
///
/// # Errors
/// [`AuthError`] when the passphrase (hence `kek`) is wrong or the key file was altered.
pub fn unwrap_master_key(
    kek: &[u8; 32],
    header: &[u8],
    sealed: &[u8],
) -> Result<MasterKey, AuthError> {
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*kek));
    let mut plain = open_with(
        &cipher,
        &[header, &[ObjectKind::MasterKey as u8]].concat(),
        sealed,
    )?;
    let key = <[u8; 32]>::try_from(plain.as_slice()).map_err(|_| AuthError);
    plain.zeroize();
    key.map(MasterKey)
}

/// Random bytes from the operating system.
pub fn random_array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The kernel's random source does not fail on Linux once booted; a machine
    // where it does cannot make keys safely, so stopping is the right outcome.
    getrandom::fill(&mut out).expect("operating system random source");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys() -> Keys {
        Keys::derive(&MasterKey::from_bytes([7; 32]), [1; REPO_ID_LEN])
    }

    #[test]
    fn seal_binds_kind_context_and_repository() {
        let k = keys();
        let sealed = k.seal(ObjectKind::Blob, b"ctx", b"hello");
        assert_eq!(k.open(ObjectKind::Blob, b"ctx", &sealed).unwrap(), b"hello");
        assert!(k.open(ObjectKind::Snapshot, b"ctx", &sealed).is_err());
        assert!(k.open(ObjectKind::Blob, b"other", &sealed).is_err());
        let other_repo = Keys::derive(&MasterKey::from_bytes([7; 32]), [2; REPO_ID_LEN]);
        assert!(other_repo.open(ObjectKind::Blob, b"ctx", &sealed).is_err());
        // A fresh nonce each time: the same message never seals the same way twice.
        assert_ne!(sealed, k.seal(ObjectKind::Blob, b"ctx", b"hello"));
    }

    #[test]
    fn sealing_in_place_gives_what_open_reads() {
        let k = keys();
        let mut buf = vec![0; NONCE_LEN];
        buf.extend_from_slice(b"in place");
        k.seal_in_place(ObjectKind::Blob, b"ctx", &mut buf);
        assert_eq!(buf.len(), SEAL_OVERHEAD + 8);
        assert_eq!(k.open(ObjectKind::Blob, b"ctx", &buf).unwrap(), b"in place");
        assert!(k.open(ObjectKind::Blob, b"xtc", &buf).is_err());
    }

    #[test]
    fn blob_ids_are_keyed() {
        let a = keys();
        let b = Keys::derive(&MasterKey::from_bytes([8; 32]), [1; REPO_ID_LEN]);
        assert_ne!(a.blob_hash(1, b"same"), b.blob_hash(1, b"same"));
        assert_ne!(a.blob_hash(1, b"same"), a.blob_hash(2, b"same"));
    }

    #[test]
    fn joined_and_piecewise_hashing_agree() {
        // Sizes around BLAKE3's chunk and the joining threshold: the fast
        // path must name every blob exactly as the format defines it.
        let k = keys();
        for len in [0, 1, 1023, 1024, 8191, 8192, 65535, 65536, 65537, 200_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut h = blake3::Hasher::new_keyed(&k.id_key.0);
            h.update(&[3]);
            h.update(&data);
            let reference = *h.finalize().as_bytes();
            assert_eq!(k.blob_hash(3, &data), reference, "len {len}");
            let (a, b) = data.split_at(len / 3);
            assert_eq!(k.blob_hash_parts(3, &[a, b]), reference, "len {len}");
        }
    }

    proptest! {
        #[test]
        fn any_flipped_bit_is_rejected(msg in proptest::collection::vec(any::<u8>(), 0..200), bit in any::<usize>()) {
            let k = keys();
            let mut sealed = k.seal(ObjectKind::Blob, b"", &msg);
            let bit = bit % (sealed.len() * 8);
            sealed[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(k.open(ObjectKind::Blob, b"", &sealed).is_err());
        }
    }

    #[test]
    fn seals_are_counted_and_check_values_differ_per_key_and_repository() {
        let k = keys();
        k.seal(ObjectKind::Blob, b"", b"a");
        let mut buf = vec![0; NONCE_LEN];
        k.seal_in_place(ObjectKind::Blob, b"", &mut buf);
        assert_eq!(k.seals(), 2);
        let m = MasterKey::from_bytes([7; 32]);
        let check = m.check_value(&[1; REPO_ID_LEN]);
        assert_eq!(
            check,
            MasterKey::from_bytes([7; 32]).check_value(&[1; REPO_ID_LEN])
        );
        assert_ne!(check, m.check_value(&[2; REPO_ID_LEN]));
        assert_ne!(
            check,
            MasterKey::from_bytes([8; 32]).check_value(&[1; REPO_ID_LEN])
        );
    }

    #[test]
    fn master_key_wrap_round_trip() {
        let m = MasterKey::generate();
        let w = wrap_master_key(&[3; 32], b"hdr", &m);
        assert_eq!(
            unwrap_master_key(&[3; 32], b"hdr", &w).unwrap().as_bytes(),
            m.as_bytes()
        );
        assert!(unwrap_master_key(&[4; 32], b"hdr", &w).is_err());
        assert!(unwrap_master_key(&[3; 32], b"hdx", &w).is_err());
    }
}
