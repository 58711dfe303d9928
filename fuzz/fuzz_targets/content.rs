#![no_main]
//! Fuzz target: see [`coffre_fuzz::content`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    coffre_fuzz::content(data);
});
