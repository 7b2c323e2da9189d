//! Arbitrary text through the configuration parser; whatever parses must round-trip.
#![no_main]

use ftwall::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = Config::from_toml_str(text) {
        let again = Config::from_toml_str(&config.to_toml_string()).expect("re-parses");
        assert_eq!(again, config);
    }
});
