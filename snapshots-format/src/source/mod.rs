//! The machine being backed up: how files are found, opened, cut into
//! chunks and described. The only code reading the source (the snapshot
//! walk itself is `ops::backup`).

pub mod chunker;
pub mod direct;
pub mod exclude;
pub mod fsmeta;
pub mod sample;
pub mod walk;
