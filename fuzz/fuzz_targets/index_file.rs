#![no_main]
//! Fuzz target: see [`coffre_fuzz::index_file`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    coffre_fuzz::index_file(data);
});
