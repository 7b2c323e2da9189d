//! Arbitrary text through the engine's configuration parser (the spanned document, the hand-written
//! unknown-key check, the deserialisation, the validation); whatever parses must round-trip.
#![no_main]

use ftwall::EngineConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = EngineConfig::from_toml_str(text) {
        let again = EngineConfig::from_toml_str(&config.to_toml_string()).expect("re-parses");
        assert_eq!(again, config);
    }
});
