#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dbrmt_fuzz::config_json(data));
