#![no_main]
//! Fuzz target: see [`coffre_fuzz::snapshot`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    coffre_fuzz::snapshot(data);
});
