#![no_main]
//! Fuzz target: see [`coffre_fuzz::journal`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    coffre_fuzz::journal(data);
});
