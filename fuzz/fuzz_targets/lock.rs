#![no_main]
//! Fuzz target: see [`coffre_fuzz::lock`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    coffre_fuzz::lock(data);
});
