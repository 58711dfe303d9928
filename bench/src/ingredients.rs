//! Single-core throughput of Coffre's ingredients: the physical limits a
//! snapshot or a restore cannot beat on one core.
//!
//!     ingredients [--size-mb 256] [--reps 3] [--piece-kb 64] FILE
//!
//! FILE is sample data (e.g. `db/officine.fdb` of a pharmagen tree); its first
//! `--size-mb` MiB are used, repeated when the file is smaller. Incompressible
//! data is made here (BLAKE3 XOF output). Every figure is the best of `--reps`
//! runs over the whole buffer, in MB/s (10^6 bytes per second) of plaintext.
//!
//! Hashing, compression and encryption are measured per piece of `--piece-kb`
//! KiB (Coffre's average chunk), as Coffre does per blob: keyed BLAKE3, zstd
//! level 3 (`zstd::bulk`, as in snapshots-format/src/blob.rs), AES-256-GCM with
//! a 33-byte AAD. The chunker is FastCDC v2020 with Coffre's sizes (16 KiB,
//! 64 KiB, 256 KiB; snapshots-format/src/chunker.rs) over the buffer in memory.
//!
//! Prints one JSON object on stdout.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use fastcdc::v2020::FastCDC;
use snapshots_format::source::chunker::{AVG_CHUNK, MAX_CHUNK, MIN_CHUNK};

const ZSTD_LEVEL: i32 = 3;

struct Args {
    size: usize,
    reps: usize,
    piece: usize,
    file: String,
}

fn usage() -> ! {
    eprintln!("usage: ingredients [--size-mb 256] [--reps 3] [--piece-kb 64] FILE");
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut size_mb = 256usize;
    let mut reps = 3usize;
    let mut piece_kb = AVG_CHUNK / 1024;
    let mut file = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let num = |it: &mut dyn Iterator<Item = String>| -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .filter(|&n| n > 0)
                .unwrap_or_else(|| usage())
        };
        match a.as_str() {
            "--size-mb" => size_mb = num(&mut it),
            "--reps" => reps = num(&mut it),
            "--piece-kb" => piece_kb = num(&mut it),
            "-h" | "--help" => usage(),
            _ if a.starts_with('-') => usage(),
            _ if file.is_none() => file = Some(a),
            _ => usage(),
        }
    }
    Args {
        size: size_mb << 20,
        reps,
        piece: piece_kb << 10,
        file: file.unwrap_or_else(|| usage()),
    }
}

/// The first `size` bytes of `path`, the file repeated as needed.
fn sample(path: &str, size: usize) -> Vec<u8> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| {
        eprintln!("ingredients: cannot open {path}: {e}");
        std::process::exit(1);
    });
    let mut data = Vec::with_capacity(size);
    f.by_ref()
        .take(size as u64)
        .read_to_end(&mut data)
        .expect("read sample file");
    if data.is_empty() {
        eprintln!("ingredients: {path} is empty");
        std::process::exit(1);
    }
    let unique = data.len();
    while data.len() < size {
        let n = (size - data.len()).min(unique);
        data.extend_from_within(..n);
    }
    data
}

fn incompressible(size: usize) -> Vec<u8> {
    let mut data = vec![0u8; size];
    blake3::Hasher::new()
        .update(b"coffre-bench incompressible")
        .finalize_xof()
        .fill(&mut data);
    data
}

/// Best (shortest) time of `reps` runs of `f`, in seconds; `f` returns a
/// value kept from the optimiser.
fn best<T>(reps: usize, mut f: impl FnMut() -> T) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn mbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

struct Out(String);

impl Out {
    fn num(&mut self, key: &str, v: f64) {
        let _ = writeln!(self.0, "  \"{key}\": {v:.3},");
    }
    fn int(&mut self, key: &str, v: usize) {
        let _ = writeln!(self.0, "  \"{key}\": {v},");
    }
    fn str(&mut self, key: &str, v: &str) {
        let esc: String = v
            .chars()
            .flat_map(|c| match c {
                '"' => vec!['\\', '"'],
                '\\' => vec!['\\', '\\'],
                c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32).chars().collect(),
                c => vec![c],
            })
            .collect();
        let _ = writeln!(self.0, "  \"{key}\": \"{esc}\",");
    }
    fn finish(mut self) -> String {
        if self.0.ends_with(",\n") {
            self.0.truncate(self.0.len() - 2);
            self.0.push('\n');
        }
        format!("{{\n{}}}", self.0)
    }
}

fn main() {
    let args = parse_args();
    let data = sample(&args.file, args.size);
    let random = incompressible(args.size);
    let size = args.size;
    let reps = args.reps;
    let piece = args.piece;
    let mut out = Out(String::new());
    out.str(
        "unit",
        "MB/s (10^6 bytes of plaintext per second), one core, best of reps",
    );
    out.str("sample_file", &args.file);
    out.int("bytes_per_run", size);
    out.int("reps", reps);
    out.int("piece_bytes", piece);

    // Keyed BLAKE3, one hash per piece (the blob id).
    let id_key = [7u8; 32];
    let hash = |buf: &[u8]| {
        let mut acc = 0u8;
        for p in buf.chunks(piece) {
            let mut h = blake3::Hasher::new_keyed(&id_key);
            h.update(&[1]);
            h.update(p);
            acc ^= h.finalize().as_bytes()[0];
        }
        acc
    };
    out.num("blake3_keyed", mbps(size, best(reps, || hash(&data))));

    // zstd level 3, one frame per piece, context reused.
    let mut comp = zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("zstd compressor");
    let mut compress_all = |buf: &[u8]| -> Vec<Vec<u8>> {
        buf.chunks(piece)
            .map(|p| comp.compress(p).expect("zstd compress"))
            .collect()
    };
    let t = best(reps, || compress_all(&data));
    let frames = compress_all(&data);
    let compressed: usize = frames.iter().map(Vec::len).sum();
    out.num("zstd3_compress_sample", mbps(size, t));
    out.num("zstd3_ratio_sample", size as f64 / compressed as f64);
    let mut dec = zstd::bulk::Decompressor::new().expect("zstd decompressor");
    let t = best(reps, || {
        let mut n = 0usize;
        for f in &frames {
            n += dec.decompress(f, piece).expect("zstd decompress").len();
        }
        n
    });
    out.num("zstd3_decompress_sample", mbps(size, t));
    drop(frames);

    let t = best(reps, || compress_all(&random));
    let compressed: usize = compress_all(&random).iter().map(Vec::len).sum();
    out.num("zstd3_compress_incompressible", mbps(size, t));
    out.num(
        "zstd3_ratio_incompressible",
        size as f64 / compressed as f64,
    );

    // AES-256-GCM, one message per piece with a blob-like 33-byte AAD.
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from([0u8; 32]));
    let aad = [3u8; 33];
    let seal_all = |buf: &[u8]| -> Vec<Vec<u8>> {
        buf.chunks(piece)
            .map(|p| {
                cipher
                    .encrypt(&Nonce::from([0u8; 12]), Payload { msg: p, aad: &aad })
                    .expect("AES-GCM encrypt")
            })
            .collect()
    };
    let t = best(reps, || seal_all(&random));
    out.num("aes256gcm_encrypt", mbps(size, t));
    let sealed = seal_all(&random);
    let t = best(reps, || {
        let mut n = 0usize;
        for s in &sealed {
            n += cipher
                .decrypt(&Nonce::from([0u8; 12]), Payload { msg: s, aad: &aad })
                .expect("AES-GCM decrypt")
                .len();
        }
        n
    });
    out.num("aes256gcm_decrypt", mbps(size, t));
    drop(sealed);

    // The chunker, Coffre's sizes, over the buffer in memory.
    let cut = |buf: &[u8]| -> (usize, usize) {
        let mut n = 0;
        let mut total = 0;
        for c in FastCDC::new(buf, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK) {
            n += 1;
            total += c.length;
        }
        (n, total)
    };
    let t = best(reps, || cut(&data));
    let (n, total) = cut(&data);
    assert_eq!(total, size);
    out.num("fastcdc_sample", mbps(size, t));
    out.int("fastcdc_sample_avg_chunk_bytes", size / n.max(1));
    let t = best(reps, || cut(&random));
    out.num("fastcdc_incompressible", mbps(size, t));

    // The whole per-byte work of a snapshot on one core, in order, on the
    // sample: cut, hash, compress (kept only when smaller), encrypt.
    let mut comp = zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("zstd compressor");
    let t = best(reps, || {
        let mut stored = 0usize;
        for c in FastCDC::new(&data, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK) {
            let p = &data[c.offset..c.offset + c.length];
            let mut h = blake3::Hasher::new_keyed(&id_key);
            h.update(&[1]);
            h.update(p);
            black_box(h.finalize());
            let z = comp.compress(p).expect("zstd compress");
            let body: &[u8] = if z.len() < p.len() { &z } else { p };
            let s = cipher
                .encrypt(
                    &Nonce::from([0u8; 12]),
                    Payload {
                        msg: body,
                        aad: &aad,
                    },
                )
                .expect("AES-GCM encrypt");
            stored += s.len();
        }
        stored
    });
    out.num("pipeline_snapshot_sample", mbps(size, t));

    println!("{}", out.finish());
}
