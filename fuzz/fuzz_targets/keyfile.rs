#![no_main]
//! Fuzz target: see [`coffre_fuzz::keyfile`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    coffre_fuzz::keyfile(data);
});
