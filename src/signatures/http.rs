//! FastTrack HTTP transfers (cleartext, any port, either direction).

use std::net::SocketAddr;

/// Which HTTP tell matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpTell {
    /// Request line `GET /.hash=<40 hex> HTTP/1.x`.
    HashRequest,
    /// A header line whose name starts with `X-Kazaa-` (case-insensitive).
    KazaaHeader,
    /// `X-KazaaTag:` header.
    KazaaTag,
    /// `UserAgent: KazaaClient ...` (real Kazaa's header has no hyphen).
    KazaaClientAgent,
    /// `Server: KazaaClient ...`.
    KazaaClientServer,
    /// `User-Agent: PeerEnabler/...` (Altnet, bundled with Kazaa).
    PeerEnabler,
}

/// A FastTrack HTTP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpMatch {
    /// The first tell found.
    pub tell: HttpTell,
    /// `X-Kazaa-IP` value (`ip:port` of the sender), if present among the complete lines seen.
    pub sender_addr: Option<SocketAddr>,
    /// `X-Kazaa-SupernodeIP` value, if present among the complete lines seen.
    pub supernode_addr: Option<SocketAddr>,
}

/// Result of scanning the first bytes of one HTTP message (a direction of a TCP stream, from
/// the start of a message on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpScan {
    /// The bytes do not start like an HTTP request or status line: stop looking.
    NotHttp,
    /// Looks like HTTP so far, header block not complete, no tell yet: more bytes may tell.
    Incomplete,
    /// A complete header block without any tell.
    Clean(HeaderBlock),
    /// FastTrack HTTP.
    Kazaa(HttpMatch),
}

/// A complete header block without a tell: how long it is and where the next message starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderBlock {
    /// Bytes from the start line up to and including the empty line that ends the block.
    pub len: usize,
    /// What follows the block.
    pub next: Framing,
}

/// Where the next message of the same direction starts, as far as the header block tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A request whose body is this many bytes (`Content-Length`, or 0 without one): the next
    /// request starts right after it.
    Body(u64),
    /// An interim (1xx, not 101) response: the next header block follows at once.
    Interim,
    /// No next message, or not known from the header block alone: a final response (its body
    /// length may depend on the request method), a request with `Transfer-Encoding` or an
    /// unreadable or conflicting `Content-Length`, the last request of its connection
    /// (`Connection: close`, or HTTP/1.0 without `Connection: keep-alive`), a
    /// `101 Switching Protocols`.
    Unknown,
}

/// Longest method token accepted in a request line.
const MAX_METHOD_LEN: usize = 16;

/// Scans `stream_prefix`, the first bytes of one HTTP message of a TCP stream (at most ~2 KiB).
///
/// Only the start line and the header lines before the first empty line are judged, and only
/// complete lines (CRLF, or a bare LF). Body text never matches: the block ends at the first
/// empty line, and nothing after it is read.
pub fn scan(stream_prefix: &[u8]) -> HttpScan {
    HeaderScanner::default().scan(stream_prefix)
}

/// A resumable [`scan`] of one message's header block as its bytes arrive: each call takes a
/// longer prefix of the same message and judges only what the last call had not, so the total
/// work over any sequence of prefixes is linear in the longest (a header block sent one byte
/// per segment is not rescanned from its start at every byte).
///
/// Invariants: the result of [`HeaderScanner::scan`] is always [`scan`] of the same prefix;
/// lines before `line_start` are judged (no tell, their framing in `frame`), and the bytes
/// from `line_start` to `searched` hold no line end. Start again with a fresh scanner for
/// another message, or when the prefix does not extend the last one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderScanner {
    /// Offset of the first line not judged yet (0 while the start line is incomplete).
    line_start: u32,
    /// Bytes before this offset were searched for a line end.
    searched: u32,
    /// What the judged lines said about framing (None until the start line is complete).
    frame: Option<Frame>,
}

#[cfg(test)]
thread_local! {
    /// Bytes searched for line ends by this thread's scans (the work [`HeaderScanner`] keeps
    /// linear), for tests.
    pub(crate) static SCAN_WORK: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The offset of the first line end in `bytes`.
fn find_newline(bytes: &[u8]) -> Option<usize> {
    #[cfg(test)]
    SCAN_WORK.with(|w| w.set(w.get() + bytes.len() as u64));
    bytes.iter().position(|&b| b == b'\n')
}

impl HeaderScanner {
    /// Scans `stream_prefix`, which extends the prefix of the previous call (if any, and whose
    /// result was [`HttpScan::Incomplete`]); returns what [`scan`] would.
    pub fn scan(&mut self, stream_prefix: &[u8]) -> HttpScan {
        let mut tell = None;
        let mut frame = match self.frame {
            Some(frame) => frame,
            None => {
                // A stream whose first bytes cannot begin a start line is decided there, without
                // searching the whole window for a line end (bulk data is the common case).
                // Equivalent to the full check: a method longer than MAX_METHOD_LEN, or a byte
                // other than a space after it, rules the line out however it ends.
                let head = &stream_prefix[..stream_prefix.len().min(MAX_METHOD_LEN + 1)];
                if matches!(start_line(head, false), Start::NotHttp) {
                    return HttpScan::NotHttp;
                }
                let from = (self.searched as usize).min(stream_prefix.len());
                let Some(i) = find_newline(&stream_prefix[from..]).map(|k| from + k) else {
                    self.searched = stream_prefix.len() as u32;
                    return match start_line(stream_prefix, false) {
                        Start::NotHttp => HttpScan::NotHttp,
                        Start::Partial | Start::Line => HttpScan::Incomplete,
                    };
                };
                let first = trim_cr(&stream_prefix[..i]);
                if !matches!(start_line(first, true), Start::Line) {
                    // A complete line is a start line or not HTTP.
                    return HttpScan::NotHttp;
                }
                tell = is_hash_request(first).then_some(HttpTell::HashRequest);
                self.line_start = (i + 1) as u32;
                self.searched = self.line_start;
                Frame::new(first)
            }
        };
        let mut found = HttpMatch { tell: HttpTell::HashRequest, sender_addr: None, supernode_addr: None };
        let mut pos = (self.line_start as usize).min(stream_prefix.len());
        let mut search_from = (self.searched as usize).clamp(pos, stream_prefix.len());
        let mut end = None;
        while let Some(i) = find_newline(&stream_prefix[search_from..]).map(|k| search_from + k) {
            let line = trim_cr(&stream_prefix[pos..i]);
            pos = i + 1;
            search_from = pos;
            if line.is_empty() {
                end = Some(pos);
                break;
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
            let name = &line[..colon];
            let value = trim_start(&line[colon + 1..]);
            frame.header(name, value);
            tell = tell.or(header_tell(name, value, &mut found));
        }
        match (tell, end) {
            (Some(tell), _) => HttpScan::Kazaa(HttpMatch { tell, ..found }),
            (None, Some(len)) => HttpScan::Clean(HeaderBlock { len, next: frame.next() }),
            (None, None) => {
                self.line_start = pos as u32;
                self.searched = stream_prefix.len() as u32;
                self.frame = Some(frame);
                HttpScan::Incomplete
            }
        }
    }
}

/// The tell of one header line, if any; the addresses of `X-Kazaa-IP` and
/// `X-Kazaa-SupernodeIP` go into `found` (the first of each).
fn header_tell(name: &[u8], value: &[u8], found: &mut HttpMatch) -> Option<HttpTell> {
    if starts_with_ignore_case(name, b"x-kazaa-") {
        if name.eq_ignore_ascii_case(b"x-kazaa-ip") {
            found.sender_addr = found.sender_addr.or_else(|| parse_addr(value));
        } else if name.eq_ignore_ascii_case(b"x-kazaa-supernodeip") {
            found.supernode_addr = found.supernode_addr.or_else(|| parse_addr(value));
        }
        Some(HttpTell::KazaaHeader)
    } else if name.eq_ignore_ascii_case(b"x-kazaatag") {
        Some(HttpTell::KazaaTag)
    } else if name.eq_ignore_ascii_case(b"useragent") && value.starts_with(b"KazaaClient") {
        Some(HttpTell::KazaaClientAgent)
    } else if name.eq_ignore_ascii_case(b"server") && value.starts_with(b"KazaaClient") {
        Some(HttpTell::KazaaClientServer)
    } else if name.eq_ignore_ascii_case(b"user-agent") && value.starts_with(b"PeerEnabler/") {
        Some(HttpTell::PeerEnabler)
    } else {
        None
    }
}

/// The whole-prefix scan [`HeaderScanner`] replaced, without the start-line shortcut: kept to
/// check that the shortcut and the resumable scan decide as it does.
#[cfg(test)]
fn scan_lines(stream_prefix: &[u8]) -> HttpScan {
    let (first, mut rest) = match stream_prefix.iter().position(|&b| b == b'\n') {
        Some(i) => (trim_cr(&stream_prefix[..i]), Some(&stream_prefix[i + 1..])),
        None => (stream_prefix, None),
    };
    match start_line(first, rest.is_some()) {
        Start::NotHttp => return HttpScan::NotHttp,
        Start::Partial => return HttpScan::Incomplete,
        Start::Line => {}
    }
    let mut found = HttpMatch { tell: HttpTell::HashRequest, sender_addr: None, supernode_addr: None };
    let mut tell = is_hash_request(first).then_some(HttpTell::HashRequest);
    let mut framing = Frame::new(first);
    let mut end = None;
    while let Some(text) = rest {
        let Some(i) = text.iter().position(|&b| b == b'\n') else { break };
        let line = trim_cr(&text[..i]);
        rest = Some(&text[i + 1..]);
        if line.is_empty() {
            end = Some(stream_prefix.len() - text.len() + i + 1);
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let name = &line[..colon];
        let value = trim_start(&line[colon + 1..]);
        framing.header(name, value);
        tell = tell.or(header_tell(name, value, &mut found));
    }
    match (tell, end) {
        (Some(tell), _) => HttpScan::Kazaa(HttpMatch { tell, ..found }),
        (None, Some(len)) => HttpScan::Clean(HeaderBlock { len, next: framing.next() }),
        (None, None) => HttpScan::Incomplete,
    }
}

/// What a header block says about the message's end (RFC 9112 section 6.3, for requests and
/// interim responses only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Frame {
    /// The status code of a response (None: a request).
    status: Option<u16>,
    content_length: Option<u64>,
    /// `Transfer-Encoding`, or an unreadable or conflicting `Content-Length`.
    unknown: bool,
    /// The connection stays open after this request (HTTP/1.1 unless `Connection: close`,
    /// HTTP/1.0 only with `Connection: keep-alive`).
    persistent: bool,
}

impl Frame {
    fn new(start_line: &[u8]) -> Self {
        let status = start_line.strip_prefix(b"HTTP/").map(|rest| {
            let code = rest.split(|&b| b == b' ').nth(1).unwrap_or_default();
            match code {
                [a, b, c] if code.iter().all(u8::is_ascii_digit) => {
                    u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
                }
                _ => 0,
            }
        });
        let persistent = !start_line.ends_with(b" HTTP/1.0");
        Self { status, content_length: None, unknown: false, persistent }
    }

    fn header(&mut self, name: &[u8], value: &[u8]) {
        if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',').map(|t| trim_end(trim_start(t))) {
                if token.eq_ignore_ascii_case(b"close") {
                    self.persistent = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    self.persistent = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.unknown = true;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let digits = trim_end(value);
            let parsed = (!digits.is_empty() && digits.len() <= 18 && digits.iter().all(u8::is_ascii_digit))
                .then(|| digits.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')));
            match (parsed, self.content_length) {
                (Some(n), None) => self.content_length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => self.unknown = true,
            }
        }
    }

    fn next(&self) -> Framing {
        match self.status {
            Some(code) if (100..200).contains(&code) && code != 101 => Framing::Interim,
            Some(_) => Framing::Unknown,
            None if self.unknown || !self.persistent => Framing::Unknown,
            None => Framing::Body(self.content_length.unwrap_or(0)),
        }
    }
}

enum Start {
    NotHttp,
    Partial,
    Line,
}

/// Judges the start line (`complete` if its line end was seen): a request line begins with an
/// upper-case method token and a space, a status line with `HTTP/`.
fn start_line(line: &[u8], complete: bool) -> Start {
    const STATUS: &[u8] = b"HTTP/";
    if line.len() < STATUS.len() && STATUS.starts_with(line) && !complete {
        return Start::Partial;
    }
    if line.starts_with(STATUS) {
        return if complete { Start::Line } else { Start::Partial };
    }
    let method_len = line.iter().take(MAX_METHOD_LEN + 1).take_while(|b| b.is_ascii_uppercase()).count();
    if method_len > MAX_METHOD_LEN {
        return Start::NotHttp;
    }
    match line.get(method_len) {
        None if complete || method_len == 0 && !line.is_empty() => Start::NotHttp,
        None => Start::Partial,
        Some(b' ') if method_len > 0 => {
            if complete {
                Start::Line
            } else {
                Start::Partial
            }
        }
        Some(_) => Start::NotHttp,
    }
}

/// `GET /.hash=<40 hex> HTTP/1.0` or `HTTP/1.1`, exactly.
fn is_hash_request(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"GET /.hash=") else { return false };
    if rest.len() != 40 + 9 {
        return false;
    }
    let (hash, version) = rest.split_at(40);
    hash.iter().all(u8::is_ascii_hexdigit) && (version == b" HTTP/1.1" || version == b" HTTP/1.0")
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim_start(value: &[u8]) -> &[u8] {
    let skip = value.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    &value[skip..]
}

fn trim_end(value: &[u8]) -> &[u8] {
    let keep = value.len() - value.iter().rev().take_while(|&&b| b == b' ' || b == b'\t').count();
    &value[..keep]
}

fn starts_with_ignore_case(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Parses `a.b.c.d:port` or `[v6]:port`.
fn parse_addr(value: &[u8]) -> Option<SocketAddr> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KAZAA_REQUEST: &str = "GET /.hash=0123456789abcdef0123456789abcdef01234567 HTTP/1.1\r\n\
Host: 192.0.2.10:1214\r\n\
UserAgent: KazaaClient Oct 28 2002 16:24:35\r\n\
X-Kazaa-Username: alice\r\n\
X-Kazaa-Network: KaZaA\r\n\
X-Kazaa-IP: 198.51.100.7:1977\r\n\
X-Kazaa-SupernodeIP: 203.0.113.50:3608\r\n\
Range: bytes=3155006-4459308\r\n\
Connection: close\r\n\
X-Kazaa-XferId: 14982743\r\n\
X-Kazaa-XferUid: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\r\n\r\n";

    fn kazaa(scan_result: HttpScan) -> HttpMatch {
        match scan_result {
            HttpScan::Kazaa(m) => m,
            other => panic!("expected a FastTrack match, got {other:?}"),
        }
    }

    #[test]
    fn real_kazaa_request() {
        let m = kazaa(scan(KAZAA_REQUEST.as_bytes()));
        assert_eq!(m.tell, HttpTell::HashRequest);
        assert_eq!(m.sender_addr, Some("198.51.100.7:1977".parse().unwrap()));
        assert_eq!(m.supernode_addr, Some("203.0.113.50:3608".parse().unwrap()));
    }

    #[test]
    fn gift_and_mldonkey_requests() {
        let gift = "GET /.hash=0123456789ABCDEF0123456789abcdef01234567 HTTP/1.1\r\nUserAgent: giFT-FastTrack 0.8.9\r\nX-Kazaa-Network: KaZaA\r\nRange: bytes=0-99\r\n\r\n";
        assert_eq!(kazaa(scan(gift.as_bytes())).tell, HttpTell::HashRequest);
        // MLDonkey: HTTP/1.0 and a non-hash path would still be caught by its headers.
        let mldonkey =
            "GET /1234/song.mp3 HTTP/1.0\r\nX-Kazaa-Network: KaZaA\r\nConnection: Keep-Alive\r\n\r\n";
        assert_eq!(kazaa(scan(mldonkey.as_bytes())).tell, HttpTell::KazaaHeader);
        let hash10 = "GET /.hash=0123456789abcdef0123456789abcdef01234567 HTTP/1.0\r\n";
        assert_eq!(
            kazaa(scan(hash10.as_bytes())).tell,
            HttpTell::HashRequest,
            "the request line alone suffices"
        );
    }

    #[test]
    fn kazaa_responses() {
        let ok = "HTTP/1.1 206 Partial Content\r\nContent-Type: audio/mpeg\r\nServer: KazaaClient Nov  3 2002 20:29:03\r\nX-KazaaTag: 3==AAAA\r\n\r\n";
        assert_eq!(kazaa(scan(ok.as_bytes())).tell, HttpTell::KazaaClientServer);
        let busy = "HTTP/1.0 503 Service Unavailable\r\nRetry-After: 60\r\nX-Kazaa-Username: alice\r\nX-Kazaa-Network: KaZaA\r\nX-Kazaa-IP: 198.51.100.135:1959\r\nX-Kazaa-SupernodeIP: 203.0.113.212:1214\r\n\r\n";
        let m = kazaa(scan(busy.as_bytes()));
        assert_eq!(m.tell, HttpTell::KazaaHeader);
        assert_eq!(m.sender_addr, Some("198.51.100.135:1959".parse().unwrap()));
        let tag = "HTTP/1.1 200 OK\r\nx-kazaatag: 5=Artist\r\n\r\n";
        assert_eq!(kazaa(scan(tag.as_bytes())).tell, HttpTell::KazaaTag);
        let pe = "GET /altnet HTTP/1.1\nUser-Agent: PeerEnabler/2.0\n\n";
        assert_eq!(kazaa(scan(pe.as_bytes())).tell, HttpTell::PeerEnabler, "bare LF tolerated");
    }

    #[test]
    fn split_requests_never_give_a_false_clean() {
        let full = KAZAA_REQUEST.as_bytes();
        for cut in 0..full.len() {
            match scan(&full[..cut]) {
                HttpScan::Incomplete | HttpScan::Kazaa(_) => {}
                other => panic!("prefix of {cut} bytes gave {other:?}"),
            }
        }
        // Once the request line is complete the tell is known.
        let line_end = KAZAA_REQUEST.find('\n').unwrap() + 1;
        assert!(matches!(scan(&full[..line_end]), HttpScan::Kazaa(_)));
    }

    #[test]
    fn ordinary_http_is_clean() {
        let req = "GET / HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\n\r\n";
        assert_eq!(scan(req.as_bytes()), clean(req.len(), Framing::Body(0)));
        let resp = "HTTP/1.1 200 OK\r\nContent-Length: 25\r\n\r\nX-Kazaa-Username: alice\r\n";
        assert_eq!(scan(resp.as_bytes()), clean(39, Framing::Unknown), "body text is not a header");
        let hyphen = "GET / HTTP/1.1\r\nUser-Agent: KazaaClient\r\n\r\n";
        assert!(
            matches!(scan(hyphen.as_bytes()), HttpScan::Clean(_)),
            "real Kazaa sends UserAgent without a hyphen"
        );
        let short_hash = "GET /.hash=0123456789abcdef0123456789abcdef0123456 HTTP/1.1\r\n\r\n";
        assert!(matches!(scan(short_hash.as_bytes()), HttpScan::Clean(_)));
        assert_eq!(scan(b"GET / HTTP/1.1\r\nHost: x\r\n"), HttpScan::Incomplete);
    }

    fn clean(len: usize, next: Framing) -> HttpScan {
        HttpScan::Clean(HeaderBlock { len, next })
    }

    #[test]
    fn header_blocks_say_where_the_next_message_starts() {
        let post = "POST /form HTTP/1.1\r\nContent-Length:  12 \r\nHost: a\r\n\r\nname=X-Kazaa";
        assert_eq!(scan(post.as_bytes()), clean(post.len() - 12, Framing::Body(12)));
        let lf = "GET / HTTP/1.1\n\nGET /next HTTP/1.1\n\n";
        assert_eq!(scan(lf.as_bytes()), clean(16, Framing::Body(0)), "only the first block");
        let keep = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
        assert_eq!(scan(keep.as_bytes()), clean(keep.len(), Framing::Body(0)), "MLDonkey");
        for unknown in [
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            "HTTP/1.1 abc\r\n\r\n",
            "GET / HTTP/1.1\r\nConnection: TE, close\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
        ] {
            assert_eq!(scan(unknown.as_bytes()), clean(unknown.len(), Framing::Unknown), "{unknown:?}");
        }
        let same = "POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n";
        assert_eq!(scan(same.as_bytes()), clean(same.len(), Framing::Body(5)));
        let interim = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n";
        assert_eq!(scan(interim.as_bytes()), clean(25, Framing::Interim));
    }

    #[test]
    fn the_shortcut_decides_as_the_full_scan_does() {
        // Every string of up to 4 pieces from an alphabet of start-line fragments.
        let pieces: [&[u8]; 9] =
            [b"GET", b" ", b"\r\n", b"\n", b"Z", b"HTTP/1.1", b"ABCDEFGHIJKLMNOP", b"/", b"X-Kazaa-IP: 1"];
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new()];
        let mut last = inputs.clone();
        for _ in 0..4 {
            last = last.iter().flat_map(|i| pieces.iter().map(move |p| [i.as_slice(), p].concat())).collect();
            inputs.extend(last.iter().cloned());
        }
        assert!(inputs.len() > 5_000);
        for i in &inputs {
            assert_eq!(scan(i), scan_lines(i), "{:?}", String::from_utf8_lossy(i));
        }
        assert_eq!(scan(&[b'Z'; 1400]), HttpScan::NotHttp, "long uppercase data is not a method");
    }

    #[test]
    fn the_resumable_scan_decides_as_the_whole_scan_at_every_prefix() {
        let pieces: [&[u8]; 9] = [
            b"GET",
            b" ",
            b"\r\n",
            b"\n",
            b"Z",
            b"HTTP/1.1",
            b"Content-Length: 3",
            b"/",
            b"X-Kazaa-IP: 1.2.3.4:5",
        ];
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new()];
        let mut last = inputs.clone();
        for _ in 0..4 {
            last = last.iter().flat_map(|i| pieces.iter().map(move |p| [i.as_slice(), p].concat())).collect();
            inputs.extend(last.iter().cloned());
        }
        inputs.push(KAZAA_REQUEST.as_bytes().to_vec());
        inputs.push(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nbody".to_vec());
        for input in &inputs {
            // Fed one byte at a time, and in steps of 7: every intermediate result is the whole
            // scan's of that prefix, until the scan is decided.
            for step in [1, 7] {
                let mut scanner = HeaderScanner::default();
                let mut len = 0;
                loop {
                    len = (len + step).min(input.len());
                    let got = scanner.scan(&input[..len]);
                    assert_eq!(
                        got,
                        scan_lines(&input[..len]),
                        "{:?} at {len}",
                        String::from_utf8_lossy(input)
                    );
                    if got != HttpScan::Incomplete || len == input.len() {
                        break;
                    }
                }
            }
        }
    }

    #[test]
    fn a_header_block_fed_byte_by_byte_is_scanned_in_linear_work() {
        let mut block = b"GET / HTTP/1.1\r\n".to_vec();
        while block.len() < 2040 {
            block.extend_from_slice(b"X-Filler: 0123456789\r\n");
        }
        let mut scanner = HeaderScanner::default();
        SCAN_WORK.with(|w| w.set(0));
        for len in 1..=block.len() {
            assert_eq!(scanner.scan(&block[..len]), HttpScan::Incomplete);
        }
        let work = SCAN_WORK.with(|w| w.get());
        // Each byte is searched for a line end once (the whole scan of every prefix would be
        // about len² / 2, some 2 million bytes here).
        assert!(work <= 2 * block.len() as u64, "{work} bytes searched for {} bytes", block.len());
    }

    #[test]
    fn not_http() {
        assert_eq!(scan(&[0x16, 0x03, 0x01, 0x02, 0x00]), HttpScan::NotHttp, "TLS");
        assert_eq!(scan(b"XYZ\x00"), HttpScan::NotHttp);
        assert_eq!(scan(b"get / HTTP/1.1\r\n"), HttpScan::NotHttp);
        assert_eq!(scan(b"SSH-2.0-OpenSSH_9.0\r\n"), HttpScan::NotHttp);
        assert_eq!(scan(b"GIVE 1\r\n"), HttpScan::Incomplete, "request-like line, no header block yet");
        assert_eq!(scan(b"ABCDEFGHIJKLMNOPQ / HTTP/1.1\r\n"), HttpScan::NotHttp, "method too long");
        let gnutella = "GNUTELLA CONNECT/0.6\r\nUser-Agent: LimeWire\r\n\r\n";
        assert!(matches!(scan(gnutella.as_bytes()), HttpScan::Clean(_)));
    }

    #[test]
    fn partial_start_lines() {
        assert_eq!(scan(b""), HttpScan::Incomplete);
        assert_eq!(scan(b"G"), HttpScan::Incomplete);
        assert_eq!(scan(b"GE"), HttpScan::Incomplete);
        assert_eq!(scan(b"HTT"), HttpScan::Incomplete);
        assert_eq!(scan(b"HTTP/1."), HttpScan::Incomplete);
        assert_eq!(scan(b"GET /.ha"), HttpScan::Incomplete);
        assert_eq!(scan(b"\r\n"), HttpScan::NotHttp);
    }
}
