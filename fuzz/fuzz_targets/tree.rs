#![no_main]
//! Fuzz target: see [`coffre_fuzz::tree`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    coffre_fuzz::tree(data);
});
