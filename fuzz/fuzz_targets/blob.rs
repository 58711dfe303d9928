#![no_main]
//! Fuzz target: see [`coffre_fuzz::blob`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    coffre_fuzz::blob(data);
});
