//! Arbitrary bytes through the state-file decoder; whatever decodes must round-trip.
#![no_main]

use ftwall::{state, Timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(snapshot) = state::decode(data) {
        let again = state::decode(&state::encode(&snapshot, Timestamp::ZERO)).expect("re-decodes");
        assert_eq!(again, snapshot);
    }
});
