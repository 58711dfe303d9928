#![no_main]
//! Fuzz target: see [`coffre_fuzz::pack_trailer`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    coffre_fuzz::pack_trailer(data);
});
