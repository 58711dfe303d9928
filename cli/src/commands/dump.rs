//! `coffre dump SNAPSHOT PATH`: a file's bytes, or a folder as tar, on
//! standard output (for a pipe or a redirection, never the terminal).

use std::io::{IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;

use anyhow::Result;
use snapshots_format::format::snapshot;
use snapshots_format::ops::dump::{self, Dumped};
use snapshots_format::Error;

use super::browse;
use crate::args::{Cli, DumpArgs};
use crate::format;

/// Writes the file or the tar stream to stdout; a short summary on stderr.
pub fn run(cli: &Cli, args: &DumpArgs) -> Result<u8> {
    let stdout = std::io::stdout();
    if stdout.is_terminal() {
        anyhow::bail!(
            "coffre dump writes the file's bytes (or a tar archive) to standard output, which is this terminal. \
             Redirect it to a file or a program, e.g. `coffre dump {} '{}' > copy`, or for a folder `coffre dump {} '{}' | tar -x -C /tmp/copy`",
            args.snapshot,
            args.path.to_string_lossy(),
            args.snapshot,
            args.path.to_string_lossy()
        );
    }
    let opened = browse::open(cli, None)?;
    let (id, snap) = snapshot::resolve(&opened.snapshots, &args.snapshot)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let dumped =
        dump::dump(&opened.browser, &snap.tree, args.path.as_bytes(), &mut out).and_then(|d| {
            out.flush()
                .map(|()| d)
                .map_err(|e| Error::io("the output", e))
        });
    let dumped = match dumped {
        Ok(d) => d,
        // The reader went away (`| head`): nothing to report.
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            return Ok(crate::EXIT_ERROR)
        }
        Err(e) => return Err(e.into()),
    };
    // stdout holds the data: what was written is said on stderr.
    let said = match &dumped {
        Dumped::File { bytes } if cli.json => {
            serde_json::json!({ "snapshot": id.to_hex(), "file_bytes": bytes }).to_string()
        }
        Dumped::Tar(s) if cli.json => {
            serde_json::json!({ "snapshot": id.to_hex(), "tar": s }).to_string()
        }
        Dumped::File { bytes } => format!(
            "Wrote {} from snapshot {}.",
            format::bytes(*bytes),
            id.short()
        ),
        Dumped::Tar(s) => format!(
            "Wrote a tar archive from snapshot {}: {} files, {} folders, {} links, {}.",
            id.short(),
            s.files,
            s.folders,
            s.symlinks + s.hard_links,
            format::bytes(s.bytes)
        ),
    };
    eprintln!("{said}");
    if let Dumped::Tar(s) = &dumped {
        for p in &s.skipped {
            eprintln!(
                "warning: {} left out (a socket: tar cannot hold one)",
                format::name(p)
            );
        }
    }
    Ok(0)
}
