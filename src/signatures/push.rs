//! Push requests for firewalled uploaders.

/// A first payload that is exactly `GIVE <1-10 digits>\r\n` with the number fitting a u32;
/// returns the push id. `GIVE me\r\n` is not a push.
pub fn give(payload: &[u8]) -> Option<u32> {
    let _ = payload;
    unimplemented!()
}
