//! The saver's batches: a blob saved twice (in one batch, in two batches,
//! or once directly) is stored once, and a batch dropped without a flush
//! still reaches the packs before `Saver::run` returns. And reading many
//! blobs at once gives each one back, whatever their order and repeats.

mod common;
use common::{pseudo_random, CHEAP};

use snapshots_format::format::blob::BlobKind;
use snapshots_format::repo::saver::Saver;
use snapshots_format::Repository;

#[test]
fn batched_blobs_are_stored_once_and_flushed_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(dir.path().join("repo"), b"pw", CHEAP).unwrap();
    // 300 blobs of 8 KiB: more than one batch (a megabyte) per thread.
    let blocks: Vec<Vec<u8>> = (0..300).map(|i| pseudo_random(8192, i * 7919)).collect();
    let (ids, stats) = Saver::run(&repo, |saver| {
        let mut ids = Vec::new();
        std::thread::scope(|s| {
            let halves = [&blocks[..200], &blocks[100..]];
            let handles: Vec<_> = halves
                .into_iter()
                .map(|part| {
                    s.spawn(move || {
                        let mut batch = saver.batch();
                        let mut ids = Vec::new();
                        for b in part {
                            ids.push(batch.save(BlobKind::Data, b).unwrap());
                            // The same blob again in the same batch.
                            batch.save(BlobKind::Data, b).unwrap();
                        }
                        // Dropped unflushed.
                        ids
                    })
                })
                .collect();
            for h in handles {
                ids.extend(h.join().unwrap());
            }
        });
        // And once more outside any batch.
        ids.push(saver.save(BlobKind::Data, &blocks[0])?);
        Ok(ids)
    })
    .unwrap();
    assert_eq!(stats.blobs, 300, "each distinct blob stored exactly once");
    assert_eq!(stats.plain_bytes, 300 * 8192);
    for (i, b) in blocks.iter().enumerate() {
        let id = ids[if i < 200 { i } else { i + 100 }];
        assert_eq!(&repo.load_blob(BlobKind::Data, &id).unwrap(), b);
    }

    // Many at once: reversed (against pack order), one listed twice, and a
    // stride that leaves gaps between the blobs read together.
    let mut wanted: Vec<usize> = (0..200).rev().step_by(3).collect();
    wanted.push(wanted[5]);
    let want_ids: Vec<_> = wanted.iter().map(|&i| ids[i]).collect();
    let mut got = vec![0usize; wanted.len()];
    repo.load_blobs(BlobKind::Data, &want_ids, |k, data| {
        assert_eq!(data, blocks[wanted[k]], "blob {k} of the request");
        got[k] += 1;
        Ok(())
    })
    .unwrap();
    assert!(got.iter().all(|&n| n == 1), "each asked blob once: {got:?}");
    // An unknown blob fails the request, plainly.
    let unknown = snapshots_format::BlobId([9; 32]);
    let err = repo
        .load_blobs(BlobKind::Data, &[ids[0], unknown], |_, _| Ok(()))
        .unwrap_err();
    assert!(
        matches!(err, snapshots_format::Error::BlobNotFound(_)),
        "{err}"
    );
}

/// Memory stays bounded whatever the number of tiny blobs: a pack closes
/// at 32,768 blobs even far below its 16 MiB, and packs are indexed (and
/// their entries let go) at 262,144 blobs between them.
#[test]
fn many_tiny_blobs_close_packs_early_and_are_indexed_as_they_go() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(dir.path().join("repo"), b"pw", CHEAP).unwrap();
    let n = 300_000u32;
    let (_, stats) = Saver::run(&repo, |saver| {
        let mut batch = saver.batch();
        for i in 0..n {
            batch.save(BlobKind::Data, format!("receipt {i}").as_bytes())?;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(stats.blobs, u64::from(n));
    let packs = repo.list_packs().unwrap();
    assert!(
        packs.len() >= 6,
        "{} packs for {n} blobs of a few bytes ({} bytes in all)",
        packs.len(),
        stats.stored_bytes
    );
    let index_files = std::fs::read_dir(dir.path().join("repo/index"))
        .unwrap()
        .count();
    assert!(index_files >= 2, "{index_files} index file(s)");
}

/// A file's chunk list made as its extents come is the one made from the
/// whole list: inline up to 32 extents, else the same pieces (the same
/// blob ids), and it reads back as the extents.
#[test]
fn chunk_lists_made_as_extents_come_are_those_of_the_whole_list() {
    use snapshots_format::format::blob::blob_id;
    use snapshots_format::format::content::{encode_piece, split_pieces, Content, Extent};
    use snapshots_format::repo::saver::ContentWriter;

    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(dir.path().join("repo"), b"pw", CHEAP).unwrap();
    for n in [0usize, 1, 32, 33, 34, 700, 5000] {
        let extents: Vec<Extent> = (0..n)
            .map(|i| {
                let id = snapshots_format::BlobId(
                    pseudo_random(32, i as u64 * 31 + 7).try_into().unwrap(),
                );
                if i % 97 == 5 {
                    Extent::Hole { len: 4096 }
                } else {
                    Extent::chunk(id, 8192)
                }
            })
            .collect();
        let (content, _) = Saver::run(&repo, |saver| {
            let mut batch = saver.batch();
            let mut writer = ContentWriter::default();
            for e in &extents {
                writer.push(&mut batch, *e)?;
            }
            assert_eq!(writer.len(), extents.iter().map(Extent::len).sum::<u64>());
            writer.finish(&mut batch)
        })
        .unwrap();
        let want = if n <= 32 {
            Content::Inline(extents.clone())
        } else {
            Content::Pieces(
                split_pieces(&extents)
                    .iter()
                    .map(|p| blob_id(repo.keys(), BlobKind::ChunkList, &encode_piece(p)))
                    .collect(),
            )
        };
        assert_eq!(content, want, "{n} extents");
        assert_eq!(repo.load_extents(&content).unwrap(), extents, "{n} extents");
        // Read a window at a time, the same list.
        let windows: Vec<Vec<Extent>> =
            snapshots_format::repo::chunk_list_reader::ChunkListReader::new(&repo, &content)
                .collect::<snapshots_format::Result<_>>()
                .unwrap();
        assert!(windows.iter().all(|w| !w.is_empty()));
        assert_eq!(windows.concat(), extents, "{n} extents");
        if n == 5000 {
            assert!(windows.len() > 1, "one window for {n} extents");
        }
    }
}
