#![no_main]
//! Fuzz target: see [`coffre_fuzz::policy`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    coffre_fuzz::policy(data);
});
