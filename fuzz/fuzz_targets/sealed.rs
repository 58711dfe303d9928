#![no_main]
//! Fuzz target: see [`coffre_fuzz::sealed`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    coffre_fuzz::sealed(data);
});
