//! The repository's key files (FORMAT.md §3): opening the master key with
//! a passphrase, and adding, listing, renaming and removing passphrases.
//! Data is never touched: every key file wraps the same master key.

use crate::backend::{Backend, FileKind, ObjectName};
use crate::crypto::{Keys, MasterKey};
use crate::error::{Error, Result};
use crate::format::header::Header;
use crate::format::keyfile::{self, KdfParams, KeyFile, KeyKind, KeyLabel};
use crate::limits::MAX_KEY_FILES_TRIED;

/// One key file, as `key list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyEntry {
    /// The key file's id (its name in `keys/`).
    pub id: String,
    /// Its label; `None` for a key file written before labels (format 4
    /// and earlier) or whose label is damaged (`problem` says so).
    pub label: Option<KeyLabel>,
    /// Why the key file or its label cannot be read, if so.
    pub problem: Option<String>,
    /// Whether this key opened the repository in this run.
    pub current: bool,
}

/// Which key file opened the repository.
#[derive(Debug, Clone)]
pub struct OpenedWith {
    /// Its name in `keys/`.
    pub name: ObjectName,
}

/// Tries the key files with `passphrase` (and, when it looks like a
/// recovery key typed by hand, with its normal form): `preferred` first
/// (the one that last opened the repository on this machine), then the
/// others, at most [`MAX_KEY_FILES_TRIED`] derivations in all. A key file
/// whose master key does not match the header's key-check value (planted,
/// or from another repository) is passed over: nothing may be written
/// under a key that is not the repository's.
///
/// # Errors
/// [`Error::WrongPassphrase`] when no key file opens; the key file's own
/// error when one could not be read (a damaged key file and a wrong
/// passphrase look alike otherwise); [`Error::Refused`] when the bound was
/// reached.
pub fn unlock(
    backend: &dyn Backend,
    header: &Header,
    passphrase: &[u8],
    preferred: Option<&ObjectName>,
) -> Result<(MasterKey, OpenedWith)> {
    let repo_id = &header.repo_id;
    let mut tries = vec![passphrase.to_vec()];
    if let Some(normal) = keyfile::normalize_recovery_key(passphrase) {
        if normal.as_bytes() != passphrase {
            tries.push(normal.into_bytes());
        }
    }
    let mut names: Vec<ObjectName> = backend
        .list(FileKind::Key)?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    if let Some(first) = preferred.and_then(|p| names.iter().position(|n| n == p)) {
        let name = names.remove(first);
        names.insert(0, name);
    }
    // Damage outranks "wrong passphrase": the damaged file may be the one
    // this passphrase was for.
    let mut damage: Option<Error> = None;
    let mut derivations = 0;
    for name in &names {
        let key = match read(backend, name) {
            Ok(k) => k,
            Err(e) => {
                damage.get_or_insert(e);
                continue;
            }
        };
        for pass in &tries {
            if derivations == MAX_KEY_FILES_TRIED {
                return Err(Error::Refused(format!(
                    "keys/ holds {} key files; {MAX_KEY_FILES_TRIED} were tried with this passphrase and none opened (no more are tried, so that planted key files cannot make opening take hours): move the key files you do not know out of keys/ and run the command again",
                    names.len()
                )));
            }
            derivations += 1;
            match key.open(pass, repo_id) {
                Ok(master) => match header.key_check {
                    Some(check) if master.check_value(repo_id) != check => {
                        damage = Some(Error::corrupt(
                            "key file",
                            name.as_str(),
                            "it opens a key that is not this repository's (its check value differs from config's): it was planted or copied from another repository; remove it",
                        ));
                    }
                    _ => return Ok((master, OpenedWith { name: name.clone() })),
                },
                Err(Error::WrongPassphrase) => {}
                Err(e) => {
                    damage.get_or_insert(e);
                }
            }
        }
    }
    Err(damage.unwrap_or(Error::WrongPassphrase))
}

fn read(backend: &dyn Backend, name: &ObjectName) -> Result<KeyFile> {
    match backend.read(FileKind::Key, name)? {
        Some(bytes) => KeyFile::decode(&bytes, name.as_str()),
        None => Err(Error::corrupt("key file", name.as_str(), "vanished")),
    }
}

/// Writes a new key file wrapping `master` under `passphrase`; returns its
/// id.
///
/// # Errors
/// Storage errors.
pub fn add(
    backend: &dyn Backend,
    keys: &Keys,
    master: &MasterKey,
    passphrase: &[u8],
    kdf: KdfParams,
    label: &KeyLabel,
) -> Result<ObjectName> {
    loop {
        let name = ObjectName::key(&crate::crypto::random_array());
        let key = KeyFile::create(passphrase, kdf, master, keys, name.as_str(), label)?;
        // Never replace: a name drawn twice (2^-64) just draws again.
        if backend.write(FileKind::Key, &name, &key.encode(), false)? {
            return Ok(name);
        }
    }
}

/// Seals again, binding the body, the label of every key file whose label
/// opens and binds nothing yet (FORMAT.md §3); returns how many. A key
/// file that cannot be read or whose label does not open is left as it is
/// (`check` reports it).
///
/// # Errors
/// Storage errors listing `keys/` or writing a key file.
pub fn bind_labels(backend: &dyn Backend, keys: &Keys) -> Result<usize> {
    let mut bound = 0;
    for (name, _) in backend.list(FileKind::Key)? {
        let Ok(Some(new)) = read(backend, &name).and_then(|k| k.bound(keys, name.as_str())) else {
            continue;
        };
        // Same name, same body: the passphrase still opens it, and a crash
        // leaves either the old file or the new one.
        backend.write(FileKind::Key, &name, &new.encode(), true)?;
        bound += 1;
    }
    Ok(bound)
}

/// Every key file with its label.
///
/// # Errors
/// Storage errors listing `keys/`.
pub fn list(backend: &dyn Backend, keys: &Keys, current: &OpenedWith) -> Result<Vec<KeyEntry>> {
    Ok(backend
        .list(FileKind::Key)?
        .into_iter()
        .map(|(name, _)| entry(backend, keys, &name, name == current.name))
        .collect())
}

/// The key file `name` with its label (what cannot be read goes in
/// `problem`).
pub fn entry(backend: &dyn Backend, keys: &Keys, name: &ObjectName, current: bool) -> KeyEntry {
    let (label, problem) = match read(backend, name).and_then(|k| k.label(keys, name.as_str())) {
        Ok(label) => (label, None),
        Err(e) => (None, Some(e.to_string())),
    };
    KeyEntry {
        id: name.as_str().to_string(),
        label,
        problem,
        current,
    }
}

/// The key file `spec` names: an id prefix or a label's name.
///
/// # Errors
/// [`Error::Refused`] when nothing or several match.
pub fn find<'a>(entries: &'a [KeyEntry], spec: &str) -> Result<&'a KeyEntry> {
    let by_name: Vec<_> = entries
        .iter()
        .filter(|e| e.label.as_ref().is_some_and(|l| l.name == spec))
        .collect();
    let matches = if by_name.is_empty() {
        entries
            .iter()
            .filter(|e| !spec.is_empty() && e.id.starts_with(&spec.to_ascii_lowercase()))
            .collect()
    } else {
        by_name
    };
    match matches[..] {
        [one] => Ok(one),
        [] => Err(Error::Refused(format!(
            "no key named {spec:?}: see `coffre key list`"
        ))),
        _ => Err(Error::Refused(format!(
            "several keys match {spec:?}: give the id from `coffre key list`"
        ))),
    }
}

/// Removes the key file `id`, unless it is the last one that decodes
/// (without a key file nobody can open the repository again).
///
/// # Errors
/// [`Error::Refused`] for the last key; storage errors.
pub fn remove(backend: &dyn Backend, entries: &[KeyEntry], id: &str) -> Result<()> {
    let others = entries
        .iter()
        .filter(|e| e.id != id && e.problem.is_none())
        .count();
    if others == 0 {
        return Err(Error::Refused(
            "this is the repository's last readable key: add another one first (coffre key add), or nobody could open it again".into(),
        ));
    }
    let name = ObjectName::parse(FileKind::Key, id)
        .ok_or_else(|| Error::Refused(format!("{id:?} is not a key id")))?;
    backend.delete(FileKind::Key, &name)
}

/// A label for a new key made now by this user on this host.
pub fn new_label(kind: KeyKind, name: &str) -> KeyLabel {
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    KeyLabel {
        kind,
        name: name.to_string(),
        created,
        host: String::from_utf8_lossy(&crate::owner::hostname()).into_owned(),
        // The person behind sudo, else the account running it.
        user: std::env::var("SUDO_USER").unwrap_or_else(|_| account_name()),
    }
}

/// The name of the account running this process (`uid N` if it has none).
fn account_name() -> String {
    // SAFETY: getuid cannot fail; getpwuid_r writes only into `pwd` and
    // `buf`, both ours and alive for the call, and `found` points into `pwd`.
    unsafe {
        let uid = libc::getuid();
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        if libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) == 0
            && !found.is_null()
            && !pwd.pw_name.is_null()
        {
            return std::ffi::CStr::from_ptr(pwd.pw_name)
                .to_string_lossy()
                .into_owned();
        }
        format!("uid {uid}")
    }
}
