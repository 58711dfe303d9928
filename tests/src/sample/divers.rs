//! `divers/`: every awkward case a backup must keep, under fixed names the
//! tests rely on.
//!
//! - `vide.txt` (empty) and `dossier_vide/` (empty folder);
//! - names with spaces and accents, a name that is not UTF-8 (Latin-1
//!   `Facture_\xe9t\xe9_2019.pdf`), names Windows refuses (`rapport: mars?
//!   <final>.txt`, `notes.`, `espace final `, `CON.txt`), names that differ
//!   only by case (`Lisez-moi.txt`, `LISEZ-MOI.TXT`);
//! - modes: `secret.key` 0400, `script.sh` 04755 (setuid);
//! - symlinks: `base_courante` (relative, to the database),
//!   `lien_absolu_casse` (absolute, dangling), `lien_casse` (dangling);
//! - hard links: `original.txt` = `lien_dur.txt` = `autre/lien_dur_2.txt`;
//! - `preallocation.dat`: sparse, data at both ends of a hole;
//! - a path 8 folders deep ending in a ~140-character name;
//! - `avec_xattr.txt` with the xattr `user.coffre.test` (where supported);
//! - `canal.fifo`, a fifo: a backup that opens it for reading would hang.

use std::ffi::OsStr;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::calendar::{self, hm};
use super::content::pdf;
use super::session::Session;
use super::Result;

/// The extended attribute of `avec_xattr.txt`: a value that is not text.
pub const XATTR: (&str, &[u8]) = ("user.coffre.test", b"valeur \0\xff binaire");

/// Small files: name and content. `CON.txt` is 25 bytes: the Samba test
/// finds it under its mangled 8.3 name by that size, which no other
/// mangled name here has.
const TEXTS: [(&str, &[u8]); 7] = [
    ("vide.txt", b""),
    (
        "rapport: mars? <final>.txt",
        b"Rapport mensuel : deux-points et point d'interrogation\n",
    ),
    ("notes.", b"Un nom qui finit par un point.\n"),
    ("espace final ", b"Un nom qui finit par une espace.\n"),
    ("CON.txt", b"nom reserve sous Windows\n"),
    ("Lisez-moi.txt", b"Premiere casse du nom.\n"),
    ("LISEZ-MOI.TXT", b"SECONDE CASSE DU NOM, AUTRE CONTENU.\n"),
];

fn d(name: impl AsRef<Path>) -> PathBuf {
    Path::new("divers").join(name)
}

/// Makes `divers/` and all its cases, ten days before day 0.
pub fn make(s: &mut Session) -> Result<()> {
    let mut rng = s.rng("divers", &[]);
    let mut tick = 0;
    let mut t = move || {
        tick += 1;
        calendar::at(-10, hm(14, 0) + tick, tick * 1_000_003)
    };
    for (name, data) in TEXTS {
        s.new_file(d(name), data, 0o644, t())?;
    }
    s.fs.mkdirs(&d("dossier_vide"), t())?;
    let copy = pdf(&mut rng, 30_000);
    s.new_file(
        d("Ordonnance  Mme Hélène Lefèvre (copie).pdf"),
        &copy,
        0o644,
        t(),
    )?;
    let latin1 = OsStr::from_bytes(b"Facture_\xe9t\xe9_2019.pdf");
    s.new_file(d(latin1), &pdf(&mut rng, 12_000), 0o644, t())?;
    s.new_file(d("secret.key"), &rng.bytes(64), 0o400, t())?;
    s.new_file(
        d("script.sh"),
        b"#!/bin/sh\necho sauvegarde ok\n",
        0o4755,
        t(),
    )?;

    s.fs.symlink("../db/officine.fdb", d("base_courante"), t())?;
    s.fs.symlink("/srv/officine/absent", d("lien_absolu_casse"), t())?;
    s.fs.symlink("n_existe_pas.txt", d("lien_casse"), t())?;
    let linked = b"Contenu partage par trois noms (liens durs).\n".repeat(40);
    s.new_file(d("original.txt"), &linked, 0o644, t())?;
    s.fs.hard_link(d("original.txt"), d("lien_dur.txt"), t())?;
    s.fs.hard_link(d("original.txt"), d("autre/lien_dur_2.txt"), t())?;

    let head = b"PREALLOC".repeat(512);
    let tail = b"FIN-ZONE".repeat(512);
    let hole = s.sizes.hole_mib() << 20;
    s.fs.create_with(d("preallocation.dat"), 0o644, t(), |f| {
        f.write_all(&head)?;
        f.seek(SeekFrom::Start(head.len() as u64 + hole))?;
        f.write_all(&tail)
    })?;
    s.tally.new_file(&[&head[..], &tail].concat());

    let mut deep = PathBuf::from("divers");
    for level in 1..=8 {
        deep.push(format!("niveau_{level}_sous_dossier_archive"));
    }
    let mut name = String::from("compte_rendu_de_la_reunion_qualite_");
    while name.len() < 136 {
        name.push_str("tres_long_");
    }
    name.truncate(136);
    name.push_str(".txt");
    s.new_file(deep.join(name), b"Tout au fond.\n", 0o644, t())?;

    s.new_file(
        d("avec_xattr.txt"),
        b"Ce fichier porte un attribut etendu.\n",
        0o644,
        t(),
    )?;
    let (xname, xvalue) = XATTR;
    s.fs.xattr(d("avec_xattr.txt"), xname, xvalue)?;
    s.fs.fifo(d("canal.fifo"), 0o640, t())
}
