#![no_main]
//! Fuzz target: see [`coffre_fuzz::header`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    coffre_fuzz::header(data);
});
