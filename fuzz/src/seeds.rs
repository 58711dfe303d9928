//! Seed inputs for each fuzz target: valid objects of each kind made by
//! the library's own encoders, framed as the drivers in `drivers.rs` read
//! them (mode byte first where a driver has modes), so that fuzzing starts
//! from real shapes. Shared with `snapshots-format/tests/fuzz_regressions.rs`,
//! which writes them out as the seed corpus (`bench/fuzz/run`) and mutates
//! them in the normal test suite.

use snapshots_format::codec::Writer;
use snapshots_format::crypto::{Keys, MasterKey, ObjectKind};
use snapshots_format::format::blob::{self, BlobKind};
use snapshots_format::format::content::{self, Content, Extent};
use snapshots_format::format::journal::{Entry, EntryKind, Outcome};
use snapshots_format::format::pack::{self, PackEntry};
use snapshots_format::format::policy::Policy;
use snapshots_format::format::snapshot::{HookKind, HookRun, Snapshot, Summary};
use snapshots_format::format::tree::{self, Node, NodeKind, Payload, Timestamp, Tree};
use snapshots_format::format::{header, index_file};
use snapshots_format::id::{BlobId, PackId, SnapshotId};

/// One seed: the target it feeds, a file name, the input.
pub type Seed = (&'static str, String, Vec<u8>);

fn keys() -> Keys {
    Keys::derive(&MasterKey::from_bytes([7; 32]), [9; 16])
}

fn node(name: &str, kind: NodeKind, payload: Payload) -> Node {
    Node {
        name: name.as_bytes().to_vec(),
        kind,
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        mtime: Timestamp {
            sec: 1_764_000_000,
            nsec: 5,
        },
        ctime: Timestamp {
            sec: 1_764_000_001,
            nsec: 0,
        },
        size: 12,
        dev: 2049,
        inode: 77,
        nlink: 1,
        xattrs: vec![(b"user.note".to_vec(), b"ok".to_vec())],
        payload,
    }
}

fn extents() -> Vec<Extent> {
    vec![
        Extent::Chunk {
            id: BlobId([1; 32]),
            len: 4096,
            base: None,
        },
        Extent::Hole { len: 1 << 20 },
        Extent::Chunk {
            id: BlobId([2; 32]),
            len: 17,
            base: None,
        },
    ]
}

fn sample_tree() -> Tree {
    let mut t = Tree {
        nodes: vec![
            node(
                "a.txt",
                NodeKind::File,
                Payload::File(Content::Inline(extents())),
            ),
            node(
                "big.db",
                NodeKind::File,
                Payload::File(Content::Pieces(vec![BlobId([4; 32]), BlobId([5; 32])])),
            ),
            node("dir", NodeKind::Dir, Payload::Dir(BlobId([6; 32]))),
            node(
                "link",
                NodeKind::Symlink,
                Payload::Symlink(b"../a.txt".to_vec()),
            ),
            node("null", NodeKind::CharDevice, Payload::Device(0x0103)),
            node("pipe", NodeKind::Fifo, Payload::None),
        ],
    };
    t.sort();
    t
}

fn sample_snapshot(v1_like: bool) -> Snapshot {
    let tree = BlobId([6; 32]);
    let mut root = node("", NodeKind::Dir, Payload::Dir(tree));
    root.mode = 0o755;
    Snapshot {
        time: Timestamp {
            sec: 1_764_000_000,
            nsec: 123,
        },
        hostname: b"officine".to_vec(),
        sources: vec![b"/srv/pharmacie".to_vec(), b"/home".to_vec()],
        label: "nightly".into(),
        tags: vec!["daily".into()],
        parent: (!v1_like).then_some(SnapshotId([8; 32])),
        tree,
        root: (!v1_like).then_some(root),
        summary: Summary {
            files_new: 3,
            bytes_read: 1 << 20,
            changed_while_read: vec![b"/srv/pharmacie/db.sqlite".to_vec()],
            skipped: vec![(b"/home/x".to_vec(), "permission denied".into())],
            ..Summary::default()
        },
        excludes: vec!["*.tmp".into()],
        hooks: vec![HookRun {
            kind: HookKind::Before,
            name: "dump".into(),
            command: "pg_dump".into(),
            status: 0,
            duration_ms: 1200,
            output: "done".into(),
        }],
    }
}

fn lock_plain(version: u8) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(version);
    w.bytes(b"officine");
    w.varint(4242);
    w.bytes(b"snapshot");
    w.zigzag(1_764_000_000);
    if version >= 2 {
        for v in [0x1122_3344_5566_7788u64, 9, 123_456] {
            w.raw(&v.to_le_bytes());
        }
    }
    w.into_bytes()
}

fn label_plain() -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(1);
    w.u8(1);
    w.bytes(b"initial");
    w.zigzag(1_764_000_000);
    w.bytes(b"officine");
    w.bytes(b"marie");
    w.into_bytes()
}

fn with_mode(m: u8, bytes: &[u8]) -> Vec<u8> {
    [&[m][..], bytes].concat()
}

/// Every seed, for every target.
pub fn seeds() -> Vec<Seed> {
    let keys = keys();
    let mut out: Vec<Seed> = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        out.push((target, name.to_string(), bytes));
    };

    let master = MasterKey::from_bytes([7; 32]);
    add("header", "v6", header::Header::new(&master).encode());

    let mut kf = crate::drivers::keyfile_frame();
    let label = keys.seal(ObjectKind::KeyLabel, b"0123456789abcdef", &label_plain());
    kf.extend_from_slice(&(label.len() as u32).to_le_bytes());
    kf.extend_from_slice(&label);
    add("keyfile", "v2-frame", with_mode(0, &kf));
    add("keyfile", "label", with_mode(1, &label_plain()));

    let entries = vec![
        PackEntry {
            id: BlobId([1; 32]),
            kind: BlobKind::Data,
            offset: pack::HEADER_LEN as u32,
            length: 40,
        },
        PackEntry {
            id: BlobId([2; 32]),
            kind: BlobKind::Tree,
            offset: pack::HEADER_LEN as u32 + 40,
            length: 24,
        },
    ];
    let trailer = pack::encode_trailer(&entries);
    let mut plain = 76u64.to_le_bytes().to_vec();
    plain.extend_from_slice(&trailer);
    add("pack_trailer", "plain", with_mode(0, &plain));
    add(
        "pack_trailer",
        "pack",
        with_mode(1, &crate::drivers::pack_with_trailer(&trailer, 64)),
    );
    add("pack_trailer", "sealed", with_mode(2, &trailer));

    let text = b"row 00001 name=client-1 total=7.01;".repeat(30);
    let id = blob::blob_id(&keys, BlobKind::Data, &text);
    for (m, name) in [(0u8, "data"), (0x80, "data-dict")] {
        // The framed plaintext: what blob::encode seals, recovered by
        // opening its output with the test key.
        let dict = if m & 0x80 != 0 {
            crate::drivers::dict()
        } else {
            None
        };
        let sealed = blob::encode(&keys, BlobKind::Data, &id, &text, dict.as_deref());
        let mut ctx = vec![BlobKind::Data as u8];
        ctx.extend_from_slice(id.as_bytes());
        if let Ok(framed) = keys.open(ObjectKind::Blob, &ctx, &sealed) {
            add("blob", name, [&[m][..], id.as_bytes(), &framed].concat());
        }
        add(
            "blob",
            &format!("{name}-sealed"),
            [&[m | 0x40][..], id.as_bytes(), &sealed].concat(),
        );
    }
    let stored = blob::blob_id(&keys, BlobKind::Data, b"plain bytes");
    add(
        "blob",
        "stored",
        [&[0u8][..], stored.as_bytes(), b"\x00plain bytes"].concat(),
    );

    let t = sample_tree();
    add("tree", "nodes", t.encode());
    add(
        "tree",
        "pieces",
        tree::encode_piece_list(&[BlobId([4; 32]), BlobId([5; 32])]),
    );

    add("content", "piece", content::encode_piece(&extents()));

    for (v1, name) in [(false, "v2"), (true, "no-root")] {
        let s = sample_snapshot(v1);
        add(
            "snapshot",
            &format!("{name}-plain"),
            with_mode(0, &s.encode()),
        );
        add(
            "snapshot",
            &format!("{name}-file"),
            with_mode(1, &s.seal(&keys)),
        );
        add(
            "snapshot",
            &format!("{name}-sealed"),
            with_mode(2, &s.encode()),
        );
    }

    let packs = vec![index_file::IndexedPack {
        id: PackId([3; 32]),
        size: 4096,
        entries,
    }];
    let (_, file) = index_file::encode(&keys, &packs);
    add("index_file", "file", with_mode(1, &file));
    if let Some(plain) = file
        .strip_prefix(&index_file::MAGIC[..])
        .and_then(|sealed| keys.open(ObjectKind::IndexFile, &[], sealed).ok())
    {
        add("index_file", "plain", with_mode(0, &plain));
    }

    let policy = Policy {
        keep_last: Some(3),
        keep_daily: Some(7),
        keep_weekly: None,
        keep_monthly: Some(12),
        keep_yearly: None,
        keep_within: Policy::parse_within("1y2m").ok(),
    };
    add("policy", "full", policy.encode());
    add("policy", "empty", Policy::default().encode());

    let entry = Entry {
        time: 1_764_000_000,
        seq: 4,
        prev: vec![format!("{:064x}", 1)],
        kind: EntryKind::Snapshot,
        outcome: Outcome::Warning,
        user: "marie".into(),
        host: "officine".into(),
        summary: "3 files new".into(),
        details: serde_json_value(),
    };
    add("journal", "snapshot", entry.encode());

    if let Some(d) = crate::drivers::dict() {
        add("dictionary", "trained", with_mode(1, d.raw()));
    }

    add("lock", "v2", lock_plain(2));
    add("lock", "v1", lock_plain(1));

    add(
        "sealed",
        "snapshot",
        with_mode(0, &sample_snapshot(false).seal(&keys)[8..]),
    );
    add(
        "sealed",
        "blob",
        with_mode(
            33,
            &[&[0u8; 33][..], &keys.seal(ObjectKind::Blob, &[0; 33], b"x")].concat(),
        ),
    );
    out
}

/// Journal details as the snapshot command writes them (a JSON object).
fn serde_json_value() -> serde_json::Value {
    serde_json::json!({"files": 3, "bytes": 1_048_576, "warnings": ["db changed while read"]})
}
