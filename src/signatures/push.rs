//! Push requests for firewalled uploaders.

/// A first payload that is exactly `GIVE <1-10 digits>\r\n` with the number fitting a u32;
/// returns the push id. `GIVE me\r\n` is not a push.
pub fn give(payload: &[u8]) -> Option<u32> {
    let digits = payload.strip_prefix(b"GIVE ")?.strip_suffix(b"\r\n")?;
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = digits.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    u32::try_from(value).ok()
}

/// Longest push line: `GIVE `, 10 digits, CRLF.
pub const MAX_GIVE_LEN: usize = 17;

/// True if `prefix` (the first bytes of a stream) can still grow into a push line: it is a
/// prefix of `GIVE <1-10 digits>\r\n`. False once a byte rules the push out.
pub fn give_partial(prefix: &[u8]) -> bool {
    let head = b"GIVE ";
    if prefix.len() <= head.len() {
        return head.starts_with(prefix);
    }
    if !prefix.starts_with(head) {
        return false;
    }
    let rest = &prefix[head.len()..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    match &rest[digits..] {
        [] => digits <= 10,
        [b'\r'] => (1..=10).contains(&digits),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes() {
        assert_eq!(give(b"GIVE 4253679545\r\n"), Some(4_253_679_545));
        assert_eq!(give(b"GIVE 1\r\n"), Some(1));
        assert_eq!(give(b"GIVE 4294967295\r\n"), Some(u32::MAX));
    }

    #[test]
    fn partial_pushes() {
        let line = b"GIVE 4253679545\r\n";
        for cut in 0..line.len() {
            assert!(give_partial(&line[..cut]), "{cut}");
        }
        assert!(!give_partial(line), "complete: judged by give()");
        for no in [&b"GIVE me"[..], b"GIFT", b"GIVE 12345678901", b"GIVE \r", b"GIVE 1\r\r", b"G\0", b"x"] {
            assert!(!give_partial(no), "{:?}", String::from_utf8_lossy(no));
        }
    }

    #[test]
    fn not_pushes() {
        for decoy in [
            &b"GIVE me\r\n"[..],
            b"GIVE 12345678901\r\n",
            b"GIVE 4294967296\r\n",
            b"GIVE 123",
            b"GIVE 123\n",
            b"GIVE 123\r\nGET / HTTP/1.1\r\n",
            b"give 1\r\n",
            b"GIVE \r\n",
            b"GIVE  1\r\n",
            b"GIVE -1\r\n",
            b"",
        ] {
            assert_eq!(give(decoy), None, "{:?}", String::from_utf8_lossy(decoy));
        }
    }
}
