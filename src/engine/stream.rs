//! TCP stream progress: what the tells need to know about each direction of a connection, and
//! the bounded buffers that hold the first bytes of a direction while its HTTP header block is
//! incomplete.
//!
//! A [`TcpStream`] is part of every flow entry (small and `Copy`). [`TcpStream::on_segment`]
//! takes each segment's header and payload length and says, as a [`StreamProgress`], whether
//! the segment brings new bytes to inspect and what they complete for the tells: a direction's
//! first payload (opener, GIVE) or the initiator's second one (the handshake shape).
//! [`TcpStream::scan_http`] feeds new bytes to the HTTP tell, keeping them in [`PrefixBuffers`]
//! while the header block spans segments. [`TcpStream::end_inspection_if_done`] then decides
//! whether any tell can still follow.
//!
//! Invariants:
//! - [`Direction::Initiator`] is the sender of the first initial SYN seen (fixed from then on),
//!   or, for a connection first seen mid-stream, the sender of its first packet seen.
//! - Sequence space, per direction: once known, `next_seq` is one past the last byte accepted
//!   (a SYN counts one). A segment that starts before it (a retransmission or an overlap) is
//!   [`StreamProgress::Duplicate`] and changes nothing, so no byte is inspected twice.
//! - Segments are taken in arrival order, without reordering: a segment beyond a gap is accepted
//!   and moves `next_seq` past itself; the gap's bytes, when they arrive, are duplicates and are
//!   never inspected. Comparisons wrap around the 32-bit sequence space.
//! - Payload segments are counted up to 255 (saturating) and only the first two lengths per
//!   direction are kept, so a stream's state has a fixed size.
//! - HTTP inspection sees at most the first [`REASSEMBLY_LIMIT`] bytes of each direction. A
//!   direction's buffer exists only while it is `buffering` (header block incomplete) and never
//!   holds more than [`REASSEMBLY_LIMIT`] bytes; at most `capacity` streams hold buffers (least
//!   recently used evicted). Memory is bounded by `capacity × 2 × REASSEMBLY_LIMIT`, whatever the
//!   input.
//! - A direction that finds its buffer evicted gives up HTTP inspection (no tell, never a wrong
//!   one). Known gap: if the other direction re-created the flow's entry in between, the
//!   direction carries on from an empty buffer with its later bytes only.
//! - Once inspection ends (`inspecting()` false) it stays ended for the life of the stream.

use crate::signatures::http::{self, HttpMatch, HttpScan};
use crate::wire::TcpFlags;
use lru::LruCache;
use std::hash::Hash;
use std::num::NonZeroUsize;

/// How many bytes of each direction are inspected for HTTP tells.
pub(crate) const REASSEMBLY_LIMIT: usize = 2048;

/// Which way a segment travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// From the connection's initiator (the SYN sender).
    Initiator,
    /// From the responder.
    Responder,
}

impl Direction {
    const fn index(self) -> usize {
        match self {
            Self::Initiator => 0,
            Self::Responder => 1,
        }
    }
}

/// Progress of one direction.
#[derive(Debug, Clone, Copy, Default)]
struct DirectionState {
    /// Next expected sequence number, once known.
    next_seq: Option<u32>,
    /// Payload segments seen (saturating).
    payloads: u8,
    /// Lengths of the first two payload segments.
    first_len: u32,
    second_len: u32,
    /// Bytes of payload inspected for HTTP so far (at most [`REASSEMBLY_LIMIT`]).
    inspected: u32,
    /// No more HTTP inspection needed in this direction.
    http_done: bool,
    /// This direction's stream does not start like HTTP at all.
    not_http: bool,
    /// A reassembly buffer was started for this direction.
    buffering: bool,
}

impl DirectionState {
    /// Accepts `len` payload bytes at `seq`, unless they start before bytes already accepted.
    fn accept(&mut self, seq: u32, len: u32) -> bool {
        if self.next_seq.is_some_and(|next| seq_before(seq, next)) {
            return false;
        }
        self.next_seq = Some(seq.wrapping_add(len));
        self.payloads = self.payloads.saturating_add(1);
        match self.payloads {
            1 => self.first_len = len,
            2 => self.second_len = len,
            _ => {}
        }
        true
    }
}

/// What a segment brings, from [`TcpStream::on_segment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamProgress {
    /// Nothing to inspect: the segment carries no payload, or inspection has ended.
    Idle,
    /// A retransmission (or overlap) of bytes already inspected.
    Duplicate,
    /// New payload bytes.
    New(Segment),
}

/// New payload bytes in one direction, and what they complete for the tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    /// The direction they travel in.
    pub(crate) dir: Direction,
    /// The direction's first payload segment, on a connection whose handshake was seen: where
    /// the opener and GIVE tells look.
    pub(crate) opening: bool,
    /// On a connection whose handshake was seen, the initiator's second payload segment after
    /// the responder's first: the lengths of the first three messages (initiator, responder,
    /// initiator) for the handshake-shape tell.
    pub(crate) exchange: Option<[usize; 3]>,
}

/// TCP progress of one flow, both directions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TcpStream {
    /// True if the flow key's `low` endpoint is the initiator.
    initiator_is_low: bool,
    /// The initial SYN was seen, so "first payload" tells are meaningful.
    saw_syn: bool,
    /// Still looking for tells.
    inspecting: bool,
    /// Indexed by [`Direction::index`].
    dirs: [DirectionState; 2],
}

impl TcpStream {
    /// A stream whose first packet seen was sent by the key's `low` endpoint iff
    /// `initiator_is_low`.
    pub(crate) fn new(initiator_is_low: bool) -> Self {
        Self { initiator_is_low, saw_syn: false, inspecting: true, dirs: Default::default() }
    }

    /// True if the key's `low` endpoint is the initiator.
    pub(crate) fn initiator_is_low(&self) -> bool {
        self.initiator_is_low
    }

    /// True once the connection's initial SYN was seen (not a connection first seen mid-stream).
    pub(crate) fn handshake_seen(&self) -> bool {
        self.saw_syn
    }

    /// True while a tell may still follow.
    pub(crate) fn inspecting(&self) -> bool {
        self.inspecting
    }

    /// True once either direction carried payload.
    pub(crate) fn carried_data(&self) -> bool {
        self.dirs.iter().any(|d| d.payloads > 0)
    }

    /// Takes one segment sent by the key's `low` endpoint iff `sender_is_low`: tracks the
    /// handshake's sequence numbers, then, if inspection goes on and the segment carries payload
    /// (`payload_len` bytes at `seq`), accounts for its bytes.
    pub(crate) fn on_segment(
        &mut self,
        sender_is_low: bool,
        flags: TcpFlags,
        seq: u32,
        payload_len: usize,
    ) -> StreamProgress {
        if flags.is_initial_syn() {
            if !self.saw_syn {
                self.saw_syn = true;
                self.initiator_is_low = sender_is_low;
            }
            self.dirs[0].next_seq = Some(seq.wrapping_add(1));
        } else if flags.has(TcpFlags::SYN | TcpFlags::ACK)
            && self.saw_syn
            && sender_is_low != self.initiator_is_low
        {
            self.dirs[1].next_seq = Some(seq.wrapping_add(1));
        }
        if !self.inspecting || payload_len == 0 {
            return StreamProgress::Idle;
        }
        let dir =
            if sender_is_low == self.initiator_is_low { Direction::Initiator } else { Direction::Responder };
        let len = u32::try_from(payload_len).unwrap_or(u32::MAX);
        if !self.dirs[dir.index()].accept(seq, len) {
            return StreamProgress::Duplicate;
        }
        let [initiator, responder] = &self.dirs;
        let nth = self.dirs[dir.index()].payloads;
        let exchange = (self.saw_syn && dir == Direction::Initiator && nth == 2 && responder.payloads >= 1)
            .then(|| [initiator.first_len, responder.first_len, initiator.second_len].map(|n| n as usize));
        StreamProgress::New(Segment { dir, opening: self.saw_syn && nth == 1, exchange })
    }

    /// Feeds the new bytes of a segment of direction `dir` (`payload`, the captured part of its
    /// `payload_len` bytes) to the HTTP tell, as long as the direction's first
    /// [`REASSEMBLY_LIMIT`] bytes have not been judged. A header block that spans segments is
    /// reassembled in `buffers` under `key`. Returns the FastTrack HTTP match, if any.
    pub(crate) fn scan_http<K: Hash + Eq + Copy>(
        &mut self,
        dir: Direction,
        payload: &[u8],
        payload_len: usize,
        buffers: &mut PrefixBuffers<K>,
        key: &K,
    ) -> Option<HttpMatch> {
        let i = dir.index();
        let other_buffering = self.dirs[1 - i].buffering;
        let d = &mut self.dirs[i];
        if d.http_done {
            return None;
        }
        let room = REASSEMBLY_LIMIT.saturating_sub(d.inspected as usize);
        let take = &payload[..payload.len().min(room)];
        let truncated = take.len() < payload_len;
        let result = if d.buffering {
            match buffers.lru.get_mut(key) {
                Some(bufs) => {
                    bufs[i].extend_from_slice(take);
                    http::scan(&bufs[i])
                }
                None => {
                    // The buffer was evicted under pressure: give up on this direction.
                    d.http_done = true;
                    d.buffering = false;
                    return None;
                }
            }
        } else {
            http::scan(take)
        };
        d.inspected = d.inspected.saturating_add(take.len() as u32);
        let (done, found) = match result {
            HttpScan::Kazaa(m) => (true, Some(m)),
            HttpScan::NotHttp => {
                d.not_http = true;
                (true, None)
            }
            HttpScan::Clean => (true, None),
            HttpScan::Incomplete => (truncated || d.inspected as usize >= REASSEMBLY_LIMIT, None),
        };
        if done {
            d.http_done = true;
            if d.buffering {
                d.buffering = false;
                if other_buffering {
                    if let Some(bufs) = buffers.lru.peek_mut(key) {
                        bufs[i] = Vec::new();
                    }
                } else {
                    buffers.lru.pop(key);
                }
            }
        } else if !d.buffering {
            d.buffering = true;
            let bufs = buffers.lru.get_or_insert_mut(*key, Default::default);
            bufs[i].clear();
            bufs[i].extend_from_slice(take);
        }
        found
    }

    /// Ends inspection once no tell can follow. Call after the tells have looked at a
    /// [`StreamProgress::New`] segment.
    ///
    /// The rule: the initiator's HTTP prefix was judged, the handshake shape is ruled out, and the
    /// responder's prefix was judged too, unless the initiator's stream is not HTTP at all (a
    /// FastTrack HTTP response only answers an HTTP request, so a silent responder, like a bulk
    /// upload's, cannot hold the flow back).
    pub(crate) fn end_inspection_if_done(&mut self) {
        let [a, b] = &self.dirs;
        let shape_pending = self.saw_syn && a.payloads < 2 && a.first_len == 12;
        if a.http_done && (b.http_done || a.not_http) && !shape_pending {
            self.inspecting = false;
        }
    }
}

/// The HTTP reassembly buffers of all flows: a fixed-capacity LRU keyed by flow, holding up to
/// [`REASSEMBLY_LIMIT`] bytes per direction.
#[derive(Debug)]
pub(crate) struct PrefixBuffers<K: Hash + Eq> {
    lru: LruCache<K, [Vec<u8>; 2]>,
}

fn capacity(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n.max(1)).expect("non-zero")
}

impl<K: Hash + Eq> PrefixBuffers<K> {
    /// Room for the buffers of `n` flows (at least one).
    pub(crate) fn new(n: usize) -> Self {
        Self { lru: LruCache::new(capacity(n)) }
    }

    /// Changes the capacity; a shrink evicts the least recently used buffers.
    pub(crate) fn resize(&mut self, n: usize) {
        self.lru.resize(capacity(n));
    }

    /// Drops the buffers of `key` (its flow restarted or was forgotten).
    pub(crate) fn forget(&mut self, key: &K) {
        self.lru.pop(key);
    }

    /// Number of flows holding buffers.
    pub(crate) fn len(&self) -> usize {
        self.lru.len()
    }
}

/// `a` comes before `b` in TCP sequence space.
pub(crate) fn seq_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYN: TcpFlags = TcpFlags(TcpFlags::SYN);
    const SYN_ACK: TcpFlags = TcpFlags(TcpFlags::SYN | TcpFlags::ACK);
    const ACK: TcpFlags = TcpFlags(TcpFlags::ACK);
    const KAZAA_GET: &[u8] = b"GET /.hash=0123456789abcdef0123456789abcdef01234567 HTTP/1.1\r\n\
        Host: 198.51.100.20:1214\r\nUserAgent: KazaaClient Nov  3 2002 20:29:03\r\n\
        X-Kazaa-Username: someone\r\n\r\n";

    /// A stream whose initiator (the key's low end) sent a SYN at 999 and got a SYN/ACK at
    /// 49_999: its data starts at 1000 and the responder's at 50_000.
    fn opened() -> TcpStream {
        let mut s = TcpStream::new(true);
        assert_eq!(s.on_segment(true, SYN, 999, 0), StreamProgress::Idle);
        assert_eq!(s.on_segment(false, SYN_ACK, 49_999, 0), StreamProgress::Idle);
        assert_eq!(s.on_segment(true, ACK, 1000, 0), StreamProgress::Idle);
        s
    }

    fn new_segment(progress: StreamProgress) -> Segment {
        match progress {
            StreamProgress::New(seg) => seg,
            other => panic!("expected new bytes, got {other:?}"),
        }
    }

    #[test]
    fn retransmissions_and_overlaps_are_duplicates_and_change_nothing() {
        let mut s = opened();
        let first = new_segment(s.on_segment(true, ACK, 1000, 12));
        assert_eq!(first, Segment { dir: Direction::Initiator, opening: true, exchange: None });
        let before = s.dirs;
        assert_eq!(s.on_segment(true, ACK, 1000, 12), StreamProgress::Duplicate, "retransmission");
        assert_eq!(s.on_segment(true, ACK, 1005, 20), StreamProgress::Duplicate, "overlap");
        assert_eq!(s.on_segment(true, ACK, 999, 1), StreamProgress::Duplicate, "the SYN's number");
        assert_eq!(s.dirs[0].payloads, before[0].payloads);
        assert_eq!(s.dirs[0].next_seq, Some(1012));
        // The responder's data before its SYN/ACK's number + 1 is old too.
        assert_eq!(s.on_segment(false, ACK, 49_990, 8), StreamProgress::Duplicate);
        let reply = new_segment(s.on_segment(false, ACK, 50_000, 8));
        assert_eq!(reply, Segment { dir: Direction::Responder, opening: true, exchange: None });
    }

    #[test]
    fn out_of_order_segments_are_taken_in_arrival_order() {
        let mut s = opened();
        // Bytes 1010.. arrive before 1000..1010: accepted as the first payload.
        assert!(new_segment(s.on_segment(true, ACK, 1010, 5)).opening);
        assert_eq!(s.dirs[0].first_len, 5);
        // The gap's bytes then count as already seen: never inspected.
        assert_eq!(s.on_segment(true, ACK, 1000, 10), StreamProgress::Duplicate);
        assert!(matches!(s.on_segment(true, ACK, 1015, 3), StreamProgress::New(_)));
        assert_eq!((s.dirs[0].payloads, s.dirs[0].second_len), (2, 3));
    }

    #[test]
    fn sequence_numbers_wrap() {
        assert!(seq_before(1, 2));
        assert!(!seq_before(2, 1));
        assert!(seq_before(u32::MAX, 0));
        assert!(!seq_before(5, 5));
        let mut s = TcpStream::new(true);
        s.on_segment(true, SYN, u32::MAX - 1, 0);
        assert!(matches!(s.on_segment(true, ACK, u32::MAX, 4), StreamProgress::New(_)));
        assert_eq!(s.dirs[0].next_seq, Some(3));
        assert_eq!(s.on_segment(true, ACK, u32::MAX, 4), StreamProgress::Duplicate);
        assert!(matches!(s.on_segment(true, ACK, 3, 4), StreamProgress::New(_)));
    }

    #[test]
    fn the_first_syn_fixes_the_initiator() {
        // First seen mid-stream from the high end, then a SYN from the low end.
        let mut s = TcpStream::new(false);
        assert!(!s.handshake_seen());
        let seg = new_segment(s.on_segment(false, ACK, 7, 3));
        assert_eq!(seg, Segment { dir: Direction::Initiator, opening: false, exchange: None });
        s.on_segment(true, SYN, 100, 0);
        assert!(s.handshake_seen() && s.initiator_is_low());
        s.on_segment(false, SYN, 500, 0);
        assert!(s.initiator_is_low(), "a later SYN from the other end does not move it");
        assert_eq!(new_segment(s.on_segment(false, ACK, 9000, 1)).dir, Direction::Responder);
    }

    #[test]
    fn the_three_message_exchange_is_reported_once() {
        let mut s = opened();
        assert_eq!(new_segment(s.on_segment(true, ACK, 1000, 12)).exchange, None);
        assert_eq!(new_segment(s.on_segment(false, ACK, 50_000, 14)).exchange, None);
        let second = new_segment(s.on_segment(true, ACK, 1012, 6));
        assert_eq!(
            second,
            Segment { dir: Direction::Initiator, opening: false, exchange: Some([12, 14, 6]) }
        );
        assert_eq!(new_segment(s.on_segment(true, ACK, 1018, 6)).exchange, None);
        // Without a reply before the second message, or without a handshake, there is none.
        let mut s = opened();
        s.on_segment(true, ACK, 1000, 12);
        assert_eq!(new_segment(s.on_segment(true, ACK, 1012, 6)).exchange, None);
        let mut s = TcpStream::new(true);
        s.on_segment(true, ACK, 1000, 12);
        s.on_segment(false, ACK, 50_000, 14);
        assert_eq!(new_segment(s.on_segment(true, ACK, 1012, 6)).exchange, None);
    }

    #[test]
    fn counters_saturate() {
        let mut s = opened();
        for i in 0..300u32 {
            assert!(matches!(s.on_segment(true, ACK, 1000 + i, 1), StreamProgress::New(_)));
        }
        assert_eq!((s.dirs[0].payloads, s.dirs[0].first_len, s.dirs[0].second_len), (255, 1, 1));
    }

    #[test]
    fn http_split_across_segments_is_reassembled_then_released() {
        let mut buffers = PrefixBuffers::new(4);
        let mut s = opened();
        let (head, tail) = KAZAA_GET.split_at(40);
        s.on_segment(true, ACK, 1000, head.len());
        assert_eq!(s.scan_http(Direction::Initiator, head, head.len(), &mut buffers, &1), None);
        assert_eq!(buffers.len(), 1);
        assert!(s.dirs[0].buffering);
        s.on_segment(true, ACK, 1040, tail.len());
        let found = s.scan_http(Direction::Initiator, tail, tail.len(), &mut buffers, &1);
        assert!(found.is_some());
        assert_eq!(buffers.len(), 0, "the buffer goes once the direction is judged");
        assert_eq!(s.scan_http(Direction::Initiator, KAZAA_GET, KAZAA_GET.len(), &mut buffers, &1), None);
    }

    #[test]
    fn http_inspection_is_bounded() {
        let mut buffers = PrefixBuffers::new(4);
        let mut s = opened();
        let mut line = b"GET / HTTP/1.1\r\n".to_vec();
        let header = b"X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        let mut seq = 1000;
        for _ in 0..100 {
            line.extend_from_slice(header);
            s.on_segment(true, ACK, seq, line.len());
            seq += line.len() as u32;
            assert_eq!(s.scan_http(Direction::Initiator, &line, line.len(), &mut buffers, &1), None);
            assert!(s.dirs[0].inspected as usize <= REASSEMBLY_LIMIT);
            line.clear();
        }
        assert!(s.dirs[0].http_done, "judged after {REASSEMBLY_LIMIT} bytes");
        assert_eq!(s.dirs[0].inspected as usize, REASSEMBLY_LIMIT);
        assert_eq!(buffers.len(), 0);
        // A header block cut by the capture ends the direction too (its bytes are not all here).
        let mut s = opened();
        let partial = &KAZAA_GET[..30];
        s.on_segment(true, ACK, 1000, 200);
        assert_eq!(s.scan_http(Direction::Initiator, partial, 200, &mut buffers, &2), None);
        assert!(s.dirs[0].http_done && !s.dirs[0].buffering);
    }

    #[test]
    fn buffers_are_capped_and_an_evicted_direction_gives_up() {
        let mut buffers = PrefixBuffers::new(1);
        let (head, tail) = KAZAA_GET.split_at(40);
        let mut a = opened();
        let mut b = opened();
        assert_eq!(a.scan_http(Direction::Initiator, head, head.len(), &mut buffers, &1), None);
        assert_eq!(b.scan_http(Direction::Initiator, head, head.len(), &mut buffers, &2), None);
        assert_eq!(buffers.len(), 1, "the second flow's buffer evicted the first's");
        assert_eq!(a.scan_http(Direction::Initiator, tail, tail.len(), &mut buffers, &1), None);
        assert!(a.dirs[0].http_done && !a.dirs[0].buffering);
        assert!(b.scan_http(Direction::Initiator, tail, tail.len(), &mut buffers, &2).is_some());
        buffers.resize(0);
        assert_eq!(buffers.lru.cap().get(), 1, "at least one");
    }

    #[test]
    fn inspection_ends_when_no_tell_can_follow() {
        let mut buffers = PrefixBuffers::new(4);
        // An HTTP request and its clean response: both prefixes judged.
        let mut s = opened();
        let request = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
        s.on_segment(true, ACK, 1000, request.len());
        s.scan_http(Direction::Initiator, request, request.len(), &mut buffers, &1);
        s.end_inspection_if_done();
        assert!(s.inspecting(), "the response may still tell");
        let response = b"HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\n";
        s.on_segment(false, ACK, 50_000, response.len());
        s.scan_http(Direction::Responder, response, response.len(), &mut buffers, &1);
        s.end_inspection_if_done();
        assert!(!s.inspecting());
        assert_eq!(s.on_segment(false, ACK, 50_100, 10), StreamProgress::Idle, "for good");
        // A non-HTTP initiator does not wait for the responder.
        let mut s = opened();
        let tls = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03, 0x5A, 0x5A];
        s.on_segment(true, ACK, 1000, tls.len());
        s.scan_http(Direction::Initiator, &tls, tls.len(), &mut buffers, &1);
        s.end_inspection_if_done();
        assert!(!s.inspecting());
        // A 12-byte first message keeps the handshake shape pending until the second one.
        let mut s = opened();
        let twelve = [0x80u8; 12];
        s.on_segment(true, ACK, 1000, 12);
        s.scan_http(Direction::Initiator, &twelve, 12, &mut buffers, &1);
        s.end_inspection_if_done();
        assert!(s.inspecting());
        s.on_segment(true, ACK, 1012, 5);
        s.end_inspection_if_done();
        assert!(!s.inspecting());
    }
}
