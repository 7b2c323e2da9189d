//! Unit tests of the reassembler: placement by sequence number, holes, first-copy-wins
//! overlaps, wrap-around, bounds and eviction, keep-alive, and the stream-level tells.

use super::*;
use crate::signatures::tcp::GIFT_OPENER;

const SYN: TcpFlags = TcpFlags(TcpFlags::SYN);
const SYN_ACK: TcpFlags = TcpFlags(TcpFlags::SYN | TcpFlags::ACK);
const ACK: TcpFlags = TcpFlags(TcpFlags::ACK);
const KAZAA_GET: &[u8] = b"GET /.hash=0123456789abcdef0123456789abcdef01234567 HTTP/1.1\r\n\
    Host: 198.51.100.20:1214\r\nUserAgent: KazaaClient Nov  3 2002 20:29:03\r\n\
    X-Kazaa-Username: someone\r\n\r\n";
const KAZAA_HEADERS: &[u8] = b"GET /song.mp3 HTTP/1.1\r\nHost: a\r\nX-Kazaa-Username: someone\r\n\r\n";
const PLAIN_GET: &[u8] = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
/// The source the tests' flows are charged to (one flow per pool unless `src` is used).
const SRC: Source = Source::Net4([198, 51, 100]);

/// A source of its own for the flow `key`.
fn src(key: u8) -> Source {
    Source::Net4([198, 51, key])
}

/// One stream and its pool; the initiator is the key's low end.
struct Harness {
    s: TcpStream,
    pool: Reassembly<u8>,
    key: u8,
    isn: [u32; 2],
    evicted: u64,
}

impl Harness {
    /// A connection whose initiator's ISN is `isn` and responder's 50_000.
    fn with_isn(isn: u32) -> Self {
        let mut h = Self {
            s: TcpStream::new(true),
            pool: Reassembly::new(4),
            key: 1,
            isn: [isn, 49_999],
            evicted: 0,
        };
        h.seg(Direction::Initiator, SYN, h.isn[0], &[]);
        h.seg(Direction::Responder, SYN_ACK, h.isn[1], &[]);
        h
    }

    fn new() -> Self {
        Self::with_isn(999)
    }

    fn seg(&mut self, dir: Direction, flags: TcpFlags, seq: u32, data: &[u8]) -> Found {
        let low = dir == Direction::Initiator;
        let Self { s, pool, key, evicted, .. } = self;
        s.on_segment(low, flags, seq, data, data.len(), pool, key, SRC, evicted)
    }

    /// Sends `data` at stream offset `off` of `dir`.
    fn at(&mut self, dir: Direction, off: u32, data: &[u8]) -> Found {
        let seq = self.isn[dir.index()].wrapping_add(1).wrapping_add(off);
        self.seg(dir, ACK, seq, data)
    }

    fn client(&mut self, off: u32, data: &[u8]) -> Found {
        self.at(Direction::Initiator, off, data)
    }

    fn server(&mut self, off: u32, data: &[u8]) -> Found {
        self.at(Direction::Responder, off, data)
    }

    fn dir(&self, dir: Direction) -> &DirectionState {
        &self.s.dirs[dir.index()]
    }
}

fn none() -> Found {
    Found::default()
}

fn http(found: Found) -> bool {
    found.http.is_some()
}

#[test]
fn in_order_segments_are_judged_without_a_buffer() {
    let mut h = Harness::new();
    assert!(http(h.client(0, KAZAA_GET)));
    assert_eq!(h.pool.len(), 0);
    let mut h = Harness::new();
    assert_eq!(h.client(0, &GIFT_OPENER).bytes, Some(ByteTell::Opener));
    assert_eq!(h.pool.len(), 0);
}

#[test]
fn holes_are_never_scanned_across_and_the_tell_comes_with_the_completing_segment() {
    let mut h = Harness::new();
    let (a, rest) = KAZAA_GET.split_at(10);
    let (b, c) = rest.split_at(30);
    // The tail first, then the middle: nothing contiguous from 0 yet.
    assert_eq!(h.client(40, c), none());
    assert_eq!(h.client(10, b), none());
    assert_eq!(h.dir(Direction::Initiator).contiguous, 0);
    assert!(h.dir(Direction::Initiator).held);
    // The first bytes arrive last (a first segment after a later one): the start is not
    // discarded, and the whole request line is there now.
    assert!(http(h.client(0, a)));
    assert_eq!(h.pool.len(), 0, "released once judged");
}

#[test]
fn overlapping_retransmissions_first_copy_wins() {
    let mut h = Harness::new();
    let clean_line = b"GET / HTTP/1.1\r\nHost: a\r\n";
    h.client(0, &clean_line[..20]);
    // An overlapping retransmission with other bytes for 10..20 and new ones after: the old
    // bytes stand, only the new ones are taken.
    let mut forged = clean_line.to_vec();
    forged[10..20].copy_from_slice(b"XXXXXXXXXX");
    assert_eq!(h.client(10, &forged[10..]), none());
    let buf = h.pool.get(&1, 0).expect("held");
    assert_eq!(&buf.data[..clean_line.len()], clean_line);
    // Within the window, a hole filled by two overlapping copies: the first one wins.
    let mut h = Harness::new();
    h.client(20, b"BBBBBBBBBB");
    h.client(15, b"AAAAAAAAAA");
    let buf = h.pool.get(&1, 0).expect("held");
    assert_eq!(&buf.data[15..30], b"AAAAABBBBBBBBBB");
    // A retransmission of bytes already judged changes nothing.
    let mut h = Harness::new();
    assert!(!http(h.client(0, PLAIN_GET)));
    assert_eq!(h.client(0, KAZAA_HEADERS), none());
}

#[test]
fn a_first_segment_that_loses_a_race_is_not_a_retransmission() {
    // The opener's second half arrives first.
    let mut h = Harness::new();
    assert_eq!(h.client(6, &GIFT_OPENER[6..]), none());
    assert_eq!(h.client(0, &GIFT_OPENER[..6]).bytes, Some(ByteTell::Opener));
}

#[test]
fn sequence_numbers_wrap() {
    for isn in [u32::MAX - 5, u32::MAX, u32::MAX - 40, 0x7FFF_FFFF] {
        let mut h = Harness::with_isn(isn);
        let (a, b) = KAZAA_GET.split_at(20);
        assert_eq!(h.client(20, b), none(), "isn {isn:#x}");
        assert!(http(h.client(0, a)), "isn {isn:#x}");
    }
    // Bytes before the stream start (the SYN's own number) are ignored.
    let mut h = Harness::with_isn(u32::MAX);
    let mut early = b"zz".to_vec();
    early.extend_from_slice(&GIFT_OPENER);
    let seq = 0u32.wrapping_sub(2);
    assert_eq!(h.seg(Direction::Initiator, ACK, seq, &early).bytes, Some(ByteTell::Opener));
}

#[test]
fn data_on_the_syn_starts_the_stream() {
    let mut h =
        Harness { s: TcpStream::new(true), pool: Reassembly::new(4), key: 1, isn: [7, 0], evicted: 0 };
    assert_eq!(h.seg(Direction::Initiator, SYN, 7, &GIFT_OPENER).bytes, Some(ByteTell::Opener));
}

#[test]
fn a_stream_picked_up_mid_way_is_not_inspected() {
    let mut s = TcpStream::new(true);
    let mut pool = Reassembly::new(4);
    let found = s.on_segment(true, ACK, 1000, KAZAA_GET, KAZAA_GET.len(), &mut pool, &1u8, SRC, &mut 0);
    assert_eq!(found, none());
    assert!(!s.inspecting());
    assert!(s.carried_data());
    // A responder whose SYN/ACK was not seen is not inspected either.
    let mut s = TcpStream::new(true);
    s.on_segment(true, SYN, 99, &[], 0, &mut pool, &1u8, SRC, &mut 0);
    let found = s.on_segment(
        false,
        ACK,
        5000,
        b"HTTP/1.1 200 OK\r\nX-Kazaa-IP: 198.51.100.1:1\r\n\r\n",
        47,
        &mut pool,
        &1u8,
        SRC,
        &mut 0,
    );
    assert_eq!(found, none());
}

#[test]
fn the_first_syn_fixes_the_initiator() {
    let mut s = TcpStream::new(false);
    let mut pool = Reassembly::new(4);
    assert!(!s.handshake_seen());
    s.on_segment(true, SYN, 100, &[], 0, &mut pool, &1u8, SRC, &mut 0);
    assert!(s.handshake_seen() && s.initiator_is_low());
    s.on_segment(false, SYN, 500, &[], 0, &mut pool, &1u8, SRC, &mut 0);
    assert!(s.initiator_is_low(), "a later SYN from the other end does not move it");
}

#[test]
fn the_window_is_bounded() {
    let mut h = Harness::new();
    // Out-of-order bytes beyond the window are not kept.
    assert_eq!(h.client(HEADER_LIMIT as u32 + 10, b"far away"), none());
    assert!(h.dir(Direction::Initiator).overflowed);
    assert_eq!(h.pool.len(), 0, "nothing to hold");
    // A header block longer than the window is judged on its first HEADER_LIMIT bytes.
    let mut h = Harness::new();
    let mut long = b"GET / HTTP/1.1\r\n".to_vec();
    while long.len() < 3 * HEADER_LIMIT {
        long.extend_from_slice(b"X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    for (k, chunk) in long.chunks(300).enumerate() {
        h.client((k * 300) as u32, chunk);
        let buf = h.pool.get(&1, 0).map_or(0, |w| w.data.len());
        assert!(buf <= HEADER_LIMIT, "{buf}");
    }
    assert!(!h.dir(Direction::Initiator).http);
    assert_eq!(h.pool.len(), 0);
    // A header block cut by the capture ends the direction (its bytes will never all be here).
    let mut h = Harness::new();
    let seq = h.isn[0] + 1;
    h.seg(Direction::Initiator, ACK, 0, &[]);
    let found =
        h.s.on_segment(true, ACK, seq, &KAZAA_HEADERS[..30], 200, &mut h.pool, &1, SRC, &mut h.evicted);
    assert_eq!(found, none());
    assert!(!h.dir(Direction::Initiator).http && !h.dir(Direction::Initiator).held);
}

#[test]
fn the_pool_is_capped_and_eviction_is_counted() {
    let mut pool = Reassembly::new(1);
    let mut evicted = 0;
    let (head, tail) = KAZAA_GET.split_at(40);
    let open = |pool: &mut Reassembly<u8>, key: u8, evicted: &mut u64| {
        let mut s = TcpStream::new(true);
        s.on_segment(true, SYN, 0, &[], 0, pool, &key, src(key), evicted);
        s.on_segment(false, SYN_ACK, 0, &[], 0, pool, &key, src(key), evicted);
        s.on_segment(true, ACK, 1, head, head.len(), pool, &key, src(key), evicted);
        s
    };
    let mut a = open(&mut pool, 1, &mut evicted);
    assert_eq!(evicted, 0);
    let mut b = open(&mut pool, 2, &mut evicted);
    assert_eq!((pool.len(), evicted), (1, 1), "the second flow's window evicted the first's");
    let found = a.on_segment(true, ACK, 41, tail, tail.len(), &mut pool, &1, src(1), &mut evicted);
    assert_eq!(found, none(), "an evicted direction gives up, never a wrong tell");
    assert!(!a.dirs[0].http);
    assert!(http(b.on_segment(true, ACK, 41, tail, tail.len(), &mut pool, &2, src(2), &mut evicted)));
    // An entry re-created by the other direction does not revive an evicted one.
    let mut pool = Reassembly::new(1);
    let mut a = open(&mut pool, 1, &mut evicted);
    let _b = open(&mut pool, 2, &mut evicted);
    a.on_segment(false, ACK, 41, b"HTTP/1.1 2", 10, &mut pool, &1, src(1), &mut evicted);
    let found = a.on_segment(true, ACK, 41, tail, tail.len(), &mut pool, &1, src(1), &mut evicted);
    assert_eq!(found, none());
    // A shrink evicts and counts.
    let mut pool = Reassembly::new(4);
    let mut evicted = 0;
    for key in 0..4 {
        open(&mut pool, key, &mut evicted);
    }
    pool.resize(2, &mut evicted);
    assert_eq!((pool.len(), evicted), (2, 2));
    pool.resize(0, &mut evicted);
    assert_eq!(pool.lru.cap().get(), 1, "at least one");
}

#[test]
fn window_bitmaps_shift_and_run() {
    let mut w = Window::default();
    w.write(0, &[1; 70]);
    w.write(100, &[2; 10]);
    assert_eq!(w.run(), 70);
    w.shift(65);
    assert_eq!(w.run(), 5);
    assert!(w.has(35) && !w.has(34) && w.has(44) && !w.has(45));
    assert_eq!(w.data[35], 2);
    w.shift(128);
    assert!(w.is_empty());
    let mut w = Window::default();
    w.write(0, &vec![0; HEADER_LIMIT]);
    assert_eq!(w.run(), HEADER_LIMIT as u32);
}

#[test]
fn keep_alive_requests_are_inspected_up_to_the_budget() {
    // The second request of a kept-alive connection.
    let mut h = Harness::new();
    assert!(!http(h.client(0, PLAIN_GET)));
    assert!(h.s.inspecting());
    h.server(0, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
    assert!(h.s.inspecting(), "a second request may follow");
    assert!(http(h.client(PLAIN_GET.len() as u32, KAZAA_HEADERS)));
    // Pipelined in one segment.
    let mut h = Harness::new();
    let mut both = PLAIN_GET.to_vec();
    both.extend_from_slice(KAZAA_HEADERS);
    assert!(http(h.client(0, &both)));
    // A request body is skipped, never read as headers, even when it arrives before its
    // header block.
    let mut h = Harness::new();
    let post = b"POST /f HTTP/1.1\r\nContent-Length: 30\r\n\r\n";
    let body = b"X-Kazaa-Username: quoted\r\n\r\n\r\n";
    assert_eq!(body.len(), 30);
    assert_eq!(h.client(post.len() as u32, body), none());
    assert_eq!(h.client(0, post), none());
    let next = (post.len() + body.len()) as u32;
    assert_eq!(h.dir(Direction::Initiator).lo, next);
    assert!(http(h.client(next, KAZAA_HEADERS)));
    // The budget: MAX_MESSAGES header blocks.
    let mut h = Harness::new();
    let mut off = 0;
    for _ in 0..MAX_MESSAGES {
        assert_eq!(h.client(off, PLAIN_GET), none());
        off += PLAIN_GET.len() as u32;
    }
    assert!(!h.dir(Direction::Initiator).http);
    assert_eq!(h.client(off, KAZAA_HEADERS), none(), "past the budget");
    // ... and STREAM_BUDGET bytes.
    let mut h = Harness::new();
    let big = format!("POST / HTTP/1.1\r\nContent-Length: {STREAM_BUDGET}\r\n\r\n");
    h.client(0, big.as_bytes());
    assert!(!h.dir(Direction::Initiator).http);
    // A chunked body: its end is unknown, so inspection of the direction ends.
    let mut h = Harness::new();
    h.client(0, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert!(!h.dir(Direction::Initiator).http);
}

#[test]
fn responses_are_judged_on_their_header_block_only() {
    // A response whose body segments come before the end of its header block.
    let mut h = Harness::new();
    h.client(0, PLAIN_GET);
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n";
    let rest = b"Content-Length: 60\r\n\r\n";
    let body = b"UserAgent: KazaaClient\r\nX-Kazaa-IP: 198.51.100.9:1214\r\n\r\n";
    let b0 = (head.len() + rest.len()) as u32;
    assert_eq!(h.server(b0, body), none());
    assert_eq!(h.server(0, head), none());
    assert_eq!(h.server(head.len() as u32, rest), none());
    assert!(!h.dir(Direction::Responder).http, "a final response ends the direction");
    // An interim response is followed by the real header block.
    let mut h = Harness::new();
    h.client(0, PLAIN_GET);
    let mut two = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
    two.extend_from_slice(b"HTTP/1.1 200 OK\r\nServer: KazaaClient Nov  3 2002\r\n\r\n");
    assert!(http(h.server(0, &two)));
}

#[test]
fn push_lines_must_be_the_whole_stream_so_far() {
    let line = b"GIVE 4253679545\r\n";
    for cut in 1..line.len() {
        let mut h = Harness::new();
        assert_eq!(h.client(0, &line[..cut]), none(), "cut {cut}");
        assert_eq!(h.client(cut as u32, &line[cut..]).bytes, Some(ByteTell::Give), "cut {cut}");
        let mut h = Harness::new();
        assert_eq!(h.client(cut as u32, &line[cut..]), none(), "cut {cut}");
        assert_eq!(h.client(0, &line[..cut]).bytes, Some(ByteTell::Give), "cut {cut}");
    }
    // Bytes received beyond the line: not a push.
    let mut h = Harness::new();
    h.client(line.len() as u32, b"GET / HTTP/1.1\r\n");
    assert_eq!(h.client(0, line).bytes, None);
    let mut h = Harness::new();
    assert_eq!(h.client(0, b"GIVE 12\r\nmore").bytes, None);
    let mut h = Harness::new();
    assert_eq!(h.client(0, b"GIVE me\r\n").bytes, None);
    assert!(!h.dir(Direction::Initiator).give);
}

#[test]
fn the_handshake_shape_is_measured_on_the_streams() {
    let reply = [0x11u8; 14];
    let name = [0x22u8; 6];
    // Whole messages, then the opener in 1-byte segments and the reply split.
    let mut h = Harness::new();
    assert_eq!(h.client(0, &[0x35; 12]), none());
    assert_eq!(h.server(0, &reply), none());
    assert!(h.client(12, &name).shape);
    let mut h = Harness::new();
    for k in 0..12 {
        assert!(!h.client(k, &[0x35]).shape);
    }
    assert!(!h.server(8, &reply[8..]).shape);
    assert!(!h.server(0, &reply[..8]).shape);
    assert!(!h.client(15, &name[3..]).shape, "a hole in the name");
    assert!(h.client(12, &name[..3]).shape);
    // The reply's name still in flight when the client answers.
    let mut h = Harness::new();
    h.client(0, &[0x35; 12]);
    h.server(0, &reply[..8]);
    assert!(h.client(12, &name).shape);
    // Not the shape: 13 bytes first, a long reply, a 7-byte answer.
    let mut h = Harness::new();
    h.client(0, &[0x35; 13]);
    h.server(0, &reply);
    assert!(!h.client(13, &name).shape);
    assert_eq!(h.s.shape, Shape::Done);
    let mut h = Harness::new();
    h.client(0, &[0x35; 12]);
    h.server(0, &[0; 40]);
    assert!(!h.client(12, &name).shape);
    let mut h = Harness::new();
    h.client(0, &[0x35; 12]);
    h.server(0, &reply);
    assert!(!h.client(12, &[0; 7]).shape);
    assert!(!h.client(19, &[0; 30]).shape);
    assert_eq!(h.s.shape, Shape::Done);
}

#[test]
fn inspection_ends_when_no_tell_can_follow() {
    // An HTTP request and its clean response: the request side keeps its keep-alive budget.
    let mut h = Harness::new();
    h.client(0, PLAIN_GET);
    h.server(0, b"HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\n");
    assert!(h.s.inspecting());
    let mut off = PLAIN_GET.len() as u32;
    for _ in 1..MAX_MESSAGES {
        h.client(off, PLAIN_GET);
        off += PLAIN_GET.len() as u32;
    }
    assert!(!h.s.inspecting());
    assert_eq!(h.client(off, KAZAA_HEADERS), none(), "for good");
    // A non-HTTP initiator does not wait for the responder.
    let mut h = Harness::new();
    h.client(0, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03, 0x5A, 0x5A]);
    assert!(!h.s.inspecting());
    assert_eq!(h.pool.len(), 0);
    // A 12-byte first message keeps the handshake shape pending until the turns rule it out.
    let mut h = Harness::new();
    h.client(0, &[0x80; 12]);
    assert!(h.s.inspecting());
    h.server(0, &[0; 8]);
    assert!(h.s.inspecting());
    h.client(12, &[0; 5]);
    assert!(h.s.inspecting(), "the name may still be coming");
    h.client(17, &[0; 20]);
    assert!(!h.s.inspecting());
}

/// One segment of a raw stream, the handshake confirmations included (as the engine calls it).
fn feed(
    s: &mut TcpStream,
    pool: &mut Reassembly<u8>,
    from_low: bool,
    flags: TcpFlags,
    seq: u32,
    ack: u32,
    data: &[u8],
) -> Found {
    s.on_ack_of_syn(from_low, flags, ack);
    s.on_segment(from_low, flags, seq, data, data.len(), pool, &1u8, SRC, &mut 0)
}

#[test]
fn without_a_syn_ack_the_first_syn_fixes_the_start() {
    // The gateway sees only the client's side. The real SYN, then a decoy SYN with another ISN
    // (one the server would answer with a challenge ACK): the real stream is still judged.
    let (real, decoy) = (1_000u32, 0x8000_0000u32);
    let mut s = TcpStream::new(true);
    let mut pool = Reassembly::new(4);
    feed(&mut s, &mut pool, true, SYN, real, 0, &[]);
    feed(&mut s, &mut pool, true, SYN, decoy, 0, &[]);
    let found = feed(&mut s, &mut pool, true, ACK, real + 1, 7_001, &GIFT_OPENER);
    assert_eq!(found.bytes, Some(ByteTell::Opener), "the decoy SYN did not move the start");
    // A benign stream after a second SYN is judged on the first SYN's stream, and clean.
    let mut s = TcpStream::new(true);
    feed(&mut s, &mut pool, true, SYN, real, 0, &[]);
    feed(&mut s, &mut pool, true, SYN, decoy, 0, &[]);
    assert_eq!(feed(&mut s, &mut pool, true, ACK, real + 1, 7_001, PLAIN_GET), none());
    assert_eq!(s.dirs[0].messages, 1, "its header block was judged clean");
    // The decoy's stream (bytes the server never takes) is far beyond: ignored, not judged.
    let mut s = TcpStream::new(true);
    feed(&mut s, &mut pool, true, SYN, real, 0, &[]);
    feed(&mut s, &mut pool, true, SYN, decoy, 0, &[]);
    let found = feed(&mut s, &mut pool, true, ACK, decoy + 1, 7_001, KAZAA_HEADERS);
    assert!(found.ignored && found.http.is_none());
}

#[test]
fn a_syn_ack_confirms_the_syn_it_acknowledges() {
    // A decoy SYN first (it dies before the server), then the real one: the server's SYN/ACK
    // acknowledges the real one, which becomes the start; its tells are judged.
    let (decoy, real) = (0x8000_0000u32, 1_000u32);
    for data in [&GIFT_OPENER[..], PLAIN_GET] {
        let mut s = TcpStream::new(true);
        let mut pool = Reassembly::new(4);
        feed(&mut s, &mut pool, true, SYN, decoy, 0, &[]);
        feed(&mut s, &mut pool, true, SYN, real, 0, &[]);
        feed(&mut s, &mut pool, false, SYN_ACK, 7_000, real + 1, &[]);
        assert_eq!(s.dirs[0].base, Some(real + 1));
        let found = feed(&mut s, &mut pool, true, ACK, real + 1, 7_001, data);
        if data == PLAIN_GET {
            assert_eq!(found, none());
            assert_eq!(s.dirs[0].messages, 1, "a benign stream is judged clean on the confirmed start");
        } else {
            assert_eq!(found.bytes, Some(ByteTell::Opener));
        }
        // A SYN after that moves nothing.
        feed(&mut s, &mut pool, true, SYN, decoy, 0, &[]);
        assert_eq!(s.dirs[0].base, Some(real + 1));
    }
    // Once payload was placed, neither a later SYN nor a SYN/ACK acknowledging it moves the
    // start.
    let mut s = TcpStream::new(true);
    let mut pool = Reassembly::new(4);
    feed(&mut s, &mut pool, true, SYN, real, 0, &[]);
    feed(&mut s, &mut pool, true, ACK, real + 1, 0, &GIFT_OPENER[..6]);
    feed(&mut s, &mut pool, true, SYN, decoy, 0, &[]);
    feed(&mut s, &mut pool, false, SYN_ACK, 7_000, decoy + 1, &[]);
    assert_eq!(s.dirs[0].base, Some(real + 1));
    assert_eq!(
        feed(&mut s, &mut pool, true, ACK, real + 7, 0, &GIFT_OPENER[6..]).bytes,
        Some(ByteTell::Opener)
    );
}

#[test]
fn the_first_syn_ack_fixes_the_responder_start_unless_the_client_acknowledges_another() {
    let response = b"HTTP/1.1 200 OK\r\nServer: KazaaClient Nov  3 2002\r\n\r\n";
    for confirm_second in [false, true] {
        let mut s = TcpStream::new(true);
        let mut pool = Reassembly::new(4);
        feed(&mut s, &mut pool, true, SYN, 10, 0, &[]);
        feed(&mut s, &mut pool, false, SYN_ACK, 5_000, 11, &[]);
        feed(&mut s, &mut pool, false, SYN_ACK, 9_000, 11, &[]);
        let real = if confirm_second {
            feed(&mut s, &mut pool, true, ACK, 11, 9_001, &[]);
            9_001
        } else {
            5_001
        };
        feed(&mut s, &mut pool, true, ACK, 11, real, PLAIN_GET);
        assert!(
            http(feed(&mut s, &mut pool, false, ACK, real, 11, response)),
            "confirm second: {confirm_second}"
        );
    }
}

#[test]
fn bytes_far_beyond_the_contiguous_edge_are_ignored() {
    let line = b"GIVE 4253679545\r\n";
    let far = line.len() as u32 + PLAUSIBLE_WINDOW + 1;
    // They do not veto the push line (which needs nothing received beyond it)...
    let mut h = Harness::new();
    assert!(h.client(far, b"x").ignored);
    assert_eq!(h.client(0, line).bytes, Some(ByteTell::Give));
    // ...nor end keep-alive inspection (they are not stored: no overflow)...
    let mut h = Harness::new();
    assert!(h.client(PLAIN_GET.len() as u32 + PLAUSIBLE_WINDOW + 1, b"x").ignored);
    assert!(!h.dir(Direction::Initiator).overflowed);
    assert_eq!(h.pool.len(), 0, "nothing stored");
    assert_eq!(h.client(0, PLAIN_GET), none());
    assert!(http(h.client(PLAIN_GET.len() as u32, KAZAA_HEADERS)), "the second request is still judged");
    // ...nor the handshake shape's count of what the opener's direction holds.
    let mut h = Harness::new();
    h.client(OPENER_LEN + PLAUSIBLE_WINDOW + 1, b"x");
    assert_eq!(h.dir(Direction::Initiator).highest, 0);
    // Bytes within the plausible window are still taken (a receiver would buffer them).
    let mut h = Harness::new();
    assert!(!h.client(line.len() as u32 + 100, b"x").ignored);
    assert_eq!(h.client(0, line).bytes, None);
}

#[test]
fn a_header_block_in_one_byte_segments_is_scanned_in_linear_work() {
    use crate::signatures::http::SCAN_WORK;
    let mut block = b"GET / HTTP/1.1\r\n".to_vec();
    while block.len() < HEADER_LIMIT - 40 {
        block.extend_from_slice(b"X-Filler: 0123456789\r\n");
    }
    block.extend_from_slice(b"X-Kazaa-Username: someone\r\n\r\n");
    if block.len() % 2 == 1 {
        block.insert(20, b'9'); // A longer first filler value.
    }
    for reversed_pair in [false, true] {
        let mut h = Harness::new();
        SCAN_WORK.with(|w| w.set(0));
        let mut tells = 0;
        assert_eq!(block.len() % 2, 0);
        for k in 0..block.len() {
            // In order, or with each pair of bytes swapped (every second segment fills a hole).
            let k = if reversed_pair { k ^ 1 } else { k };
            tells += usize::from(http(h.client(k as u32, &block[k..=k])));
        }
        assert_eq!(tells, 1, "the tell comes once, with the last byte");
        let work = SCAN_WORK.with(|w| w.get());
        assert!(work <= 3 * block.len() as u64, "{work} bytes searched for {} bytes", block.len());
    }
}

#[test]
fn one_source_holds_at_most_a_quarter_of_the_pool() {
    let mut pool = Reassembly::new(8);
    let mut evicted = 0;
    let (head, tail) = KAZAA_GET.split_at(40);
    let open = |pool: &mut Reassembly<u8>, key: u8, source: Source, evicted: &mut u64| {
        let mut s = TcpStream::new(true);
        s.on_segment(true, SYN, 0, &[], 0, pool, &key, source, evicted);
        s.on_segment(false, SYN_ACK, 0, &[], 0, pool, &key, source, evicted);
        let found = s.on_segment(true, ACK, 1, head, head.len(), pool, &key, source, evicted);
        (s, found)
    };
    // A victim's flow holds a window (its request is not complete yet).
    let (mut victim, _) = open(&mut pool, 0, src(0), &mut evicted);
    // Another source opens many: two get windows, the rest are refused, nothing is evicted.
    let refused = (1..=20).filter(|&key| open(&mut pool, key, SRC, &mut evicted).1.refused).count();
    assert_eq!((refused, evicted, pool.len()), (18, 0, 3));
    // The victim's request completes and is judged.
    assert!(http(victim.on_segment(true, ACK, 41, tail, tail.len(), &mut pool, &0, src(0), &mut evicted)));
    // A refused segment changed nothing: sent again once the source has room, it is judged.
    let mut s = TcpStream::new(true);
    s.on_segment(true, SYN, 0, &[], 0, &mut pool, &30, SRC, &mut evicted);
    s.on_segment(false, SYN_ACK, 0, &[], 0, &mut pool, &30, SRC, &mut evicted);
    let before = s;
    assert!(s.on_segment(true, ACK, 1, head, head.len(), &mut pool, &30, SRC, &mut evicted).refused);
    let mut s = before;
    pool.forget(&1);
    assert!(!s.on_segment(true, ACK, 1, head, head.len(), &mut pool, &30, SRC, &mut evicted).refused);
    assert!(http(s.on_segment(true, ACK, 41, tail, tail.len(), &mut pool, &30, SRC, &mut evicted)));
}
