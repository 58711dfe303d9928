#![no_main]
//! Fuzz target: see [`coffre_fuzz::dictionary`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    coffre_fuzz::dictionary(data);
});
