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
