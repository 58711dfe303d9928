//! What sealing a database's pages in groups would save in decoding: the
//! CPU a sequential read through the mount spends per page, one core.
//!
//!     page-groups [--pages 20000] [--reps 3] FILE
//!
//! FILE is a page-structured database (e.g. `db/officine.fdb` of a
//! pharmagen tree); `--pages` 8 KiB pages are taken after its first MiB.
//! A zstd dictionary is trained on 320 of them with Coffre's trainer.
//!
//! - **group 1** is what Coffre stores today, measured through the
//!   library's own `blob::encode` and `blob::decode`: each page sealed
//!   alone, compressed with the dictionary at its level, and decoding opens
//!   the seal, decompresses and checks the page's keyed id.
//! - **group n** (not a format Coffre has): n consecutive pages compressed
//!   as one zstd frame at the same level (with the dictionary, and
//!   without), sealed once; decoding opens it once, decompresses once, and
//!   still checks each page's keyed id, since deduplication stays per page.
//!
//! Prints, per layout, the best of `--reps` passes: µs per page decoded and
//! the sealed bytes per page (trailer, index and chunk-list entries aside).

use std::hint::black_box;
use std::time::Instant;

use snapshots_format::crypto::{Keys, MasterKey, ObjectKind};
use snapshots_format::format::blob::{self, BlobKind, Needs};
use snapshots_format::format::dictionary::{self, Dictionary};
use snapshots_format::format::DICT_ZSTD_LEVEL;
use snapshots_format::BlobId;
use zstd::zstd_safe::{CCtx, CDict, DCtx, DDict};

const PAGE: usize = 8192;
const SAMPLES: usize = 320;

fn main() {
    if let Err(e) = run() {
        eprintln!("page-groups: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let (file, pages_wanted, reps) = args()?;
    let data = std::fs::read(&file).map_err(|e| format!("{file}: {e}"))?;
    let pages: Vec<&[u8]> = data
        .get(1 << 20..)
        .unwrap_or_default()
        .chunks_exact(PAGE)
        .take(pages_wanted)
        .collect();
    if pages.len() < SAMPLES {
        return Err(format!(
            "{file}: fewer than {SAMPLES} pages of 8 KiB after its first MiB"
        ));
    }
    let samples: Vec<Vec<u8>> = pages
        .iter()
        .step_by(pages.len() / SAMPLES)
        .map(|p| p.to_vec())
        .collect();
    let raw = dictionary::train(&samples).ok_or("zstd could not train a dictionary")?;
    let dict = Dictionary::from_raw(raw.clone()).ok_or("the trained dictionary has no id")?;
    let keys = Keys::derive(&MasterKey::generate(), [7; 16]);
    let ids: Vec<BlobId> = pages
        .iter()
        .map(|p| blob::blob_id(&keys, BlobKind::Data, p))
        .collect();

    println!(
        "{} pages of 8 KiB from {file}, best of {reps} passes, one core",
        pages.len()
    );
    println!("| layout | µs per page decoded | sealed bytes per page |");
    println!("|---|---|---|");
    let sealed: Vec<Vec<u8>> = pages
        .iter()
        .zip(&ids)
        .map(|(p, id)| blob::encode(&keys, BlobKind::Data, id, p, Some(&dict)))
        .collect();
    let dict_arc = std::sync::Arc::new(dict);
    let needs = Needs {
        dict: &|| Ok(Some(dict_arc.clone())),
        base: &|_| {
            Err(snapshots_format::error::Error::corrupt(
                "data blob",
                "-",
                "no base",
            ))
        },
    };
    let us = best_of(reps, pages.len(), || {
        for (s, id) in sealed.iter().zip(&ids) {
            let page =
                blob::decode(&keys, BlobKind::Data, id, s, &needs).map_err(|e| e.to_string())?;
            black_box(page);
        }
        Ok(())
    })?;
    row(
        "group 1 (today: a blob per page, dictionary)",
        us,
        &sealed,
        pages.len(),
    );

    let cdict = CDict::try_create(&raw, DICT_ZSTD_LEVEL).ok_or("zstd: CDict")?;
    let ddict = DDict::try_create(&raw).ok_or("zstd: DDict")?;
    for n in [2, 4, 8, 16] {
        for with_dict in [true, false] {
            let mut cctx = CCtx::try_create().ok_or("zstd: CCtx")?;
            let groups: Vec<Vec<u8>> = pages
                .chunks(n)
                .map(|g| {
                    let plain = g.concat();
                    let mut out = vec![0u8; zstd::zstd_safe::compress_bound(plain.len())];
                    let len = if with_dict {
                        cctx.compress_using_cdict(&mut out[..], &plain, &cdict)
                    } else {
                        cctx.compress(&mut out[..], &plain, DICT_ZSTD_LEVEL)
                    }
                    .map_err(|c| format!("zstd error {c}"))?;
                    out.truncate(len);
                    Ok(keys.seal(ObjectKind::Blob, &[0u8; 33], &out))
                })
                .collect::<Result<_, String>>()?;
            let mut dctx = DCtx::try_create().ok_or("zstd: DCtx")?;
            let mut plain = vec![0u8; n * PAGE];
            let us = best_of(reps, pages.len(), || {
                for (g, s) in groups.iter().enumerate() {
                    let frame = keys
                        .open(ObjectKind::Blob, &[0u8; 33], s)
                        .map_err(|_| "a group does not open")?;
                    let len = if with_dict {
                        dctx.decompress_using_ddict(&mut plain[..], &frame, &ddict)
                    } else {
                        dctx.decompress(&mut plain[..], &frame)
                    }
                    .map_err(|c| format!("zstd error {c}"))?;
                    for (k, page) in plain[..len].chunks(PAGE).enumerate() {
                        if blob::blob_id(&keys, BlobKind::Data, page) != ids[g * n + k] {
                            return Err("a page's id differs".into());
                        }
                    }
                }
                Ok(())
            })?;
            let dict_note = if with_dict {
                "dictionary"
            } else {
                "no dictionary"
            };
            let name = format!("group {n} ({n} pages a frame, {dict_note})");
            row(&name, us, &groups, pages.len());
        }
    }
    Ok(())
}

/// µs per page of the best of `reps` passes of `pass`.
fn best_of(
    reps: usize,
    pages: usize,
    mut pass: impl FnMut() -> Result<(), String>,
) -> Result<f64, String> {
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        pass()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best / pages as f64 * 1e6)
}

fn row(name: &str, us: f64, sealed: &[Vec<u8>], pages: usize) {
    let bytes: usize = sealed.iter().map(Vec::len).sum();
    println!("| {name} | {us:.2} | {:.0} |", bytes as f64 / pages as f64);
}

fn args() -> Result<(String, usize, usize), String> {
    let mut file = None;
    let (mut pages, mut reps) = (20_000, 3);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut number = |what: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .filter(|&v| v > 0)
                .ok_or(format!("{what} needs a positive number"))
        };
        match a.as_str() {
            "--pages" => pages = number("--pages")?,
            "--reps" => reps = number("--reps")?,
            "-h" | "--help" => {
                println!("page-groups [--pages 20000] [--reps 3] FILE");
                std::process::exit(0);
            }
            _ if file.is_none() && !a.starts_with('-') => file = Some(a),
            _ => return Err(format!("unexpected argument {a:?}; see --help")),
        }
    }
    Ok((file.ok_or("no FILE given; see --help")?, pages, reps))
}
