//! One entry point per operation, over a [`crate::repo::Repository`]: what the
//! CLI's commands call.

pub mod adopt;
pub mod backup;
pub mod check;
pub mod compare;
pub mod copy;
mod deltas;
pub(crate) mod dictionary_guard;
pub mod diff;
pub mod dump;
pub mod find;
pub mod history;
pub mod paths;
mod previous_listing;
mod previous_pages;
pub mod prune;
pub mod rebuild;
mod reply;
pub mod restore;
pub mod target;
pub mod verify;

/// Number of cores, asked once: `available_parallelism` reads several
/// cgroup files on every call, which costs more than a small file's restore.
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
