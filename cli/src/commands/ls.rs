//! `coffre ls SNAPSHOT [PATH] [--long] [-R]`.

use anyhow::Result;
use snapshots_format::format::snapshot;
use snapshots_format::format::tree::{Node, Payload};
use snapshots_format::repo::ListingReader;
use snapshots_format::{BlobId, Repository};

use super::JsonArrayOut;
use crate::args::{Cli, LsArgs};
use crate::format;

/// Lists a directory of a snapshot (or one file).
pub fn run(cli: &Cli, args: &LsArgs) -> Result<u8> {
    let repo = super::open(cli)?;
    let all = super::snapshots(&repo)?;
    let (_, snap) = snapshot::resolve(&all, &args.snapshot)?;
    let (tree, node) = repo.find_path(&snap.tree, args.path.as_bytes())?;
    let prefix = args.path.trim_matches('/').to_string();
    // Printed as the walk goes, text or JSON: a listing held whole costs
    // about a KiB per entry, and a crafted snapshot of shared subtrees names
    // billions of paths in a few KiB of trees.
    let mut json = cli.json.then(JsonArrayOut::new);
    let mut emit = |path: String, n: Node| match json.as_mut() {
        Some(out) => out.push(&json_entry(&path, &n)),
        None => {
            print_entry(args, &path, &n);
            Ok(())
        }
    };
    match node {
        Some(n) if !matches!(n.payload, Payload::Dir(_)) => emit(prefix.clone(), n)?,
        _ => list(&repo, &tree, &prefix, args.recursive, &mut emit)?,
    }
    if let Some(out) = json {
        out.finish();
    }
    Ok(0)
}

/// One entry of `ls --json`.
fn json_entry(path: &str, n: &Node) -> serde_json::Value {
    serde_json::json!({
        "path": path,
        "type": format!("{:?}", n.kind).to_lowercase(),
        "mode": format!("{:o}", n.mode),
        "uid": n.uid,
        "gid": n.gid,
        "size": n.size,
        "mtime": format::local_time(n.mtime),
        "target": match &n.payload { Payload::Symlink(t) => Some(format::name(t)), _ => None },
    })
}

/// Prints one entry as text.
fn print_entry(args: &LsArgs, path: &str, n: &Node) {
    let shown = if args.recursive {
        path.to_string()
    } else {
        format::name(&n.name)
    };
    let target = match &n.payload {
        Payload::Symlink(t) => format!(" -> {}", format::name(t)),
        _ => String::new(),
    };
    if args.long {
        println!(
            "{} {:>5} {:>5} {:>12} {} {}{}",
            format::mode(n),
            n.uid,
            n.gid,
            n.size,
            format::local_time(n.mtime),
            shown,
            target
        );
    } else {
        println!("{shown}{target}");
    }
}

fn list(
    repo: &Repository,
    tree: &BlobId,
    prefix: &str,
    recursive: bool,
    out: &mut dyn FnMut(String, Node) -> Result<()>,
) -> Result<()> {
    if prefix.matches('/').count() >= snapshots_format::format::tree::MAX_DEPTH {
        anyhow::bail!("{prefix}: folders nested too deep (damaged or hostile repository)");
    }
    // A piece at a time: a folder of 180,000 receipts is never held whole.
    for n in ListingReader::open(repo, tree)? {
        let n = n?;
        let path = if prefix.is_empty() {
            format::name(&n.name)
        } else {
            format!("{prefix}/{}", format::name(&n.name))
        };
        let sub = match &n.payload {
            Payload::Dir(id) if recursive => Some(*id),
            _ => None,
        };
        out(path.clone(), n)?;
        if let Some(id) = sub {
            list(repo, &id, &path, recursive, out)?;
        }
    }
    Ok(())
}
