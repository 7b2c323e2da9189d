//! TCP stream reassembly for the tells: every TCP tell (opener, push, handshake shape, HTTP
//! headers) is judged on the bytes of each direction's stream, placed by sequence number, never
//! on single segments.
//!
//! A [`TcpStream`] is part of every flow entry (small and `Copy`). [`TcpStream::on_segment`]
//! takes each segment, places its payload in its direction's stream by sequence number, and
//! runs the tells on what the segment completed; a tell is reported on the packet that
//! completes it, whatever the segmentation, order, loss or duplication of the packets before.
//! The bytes a direction holds while it waits for more live in [`Reassembly`], a separate
//! bounded pool.
//!
//! What is reassembled, per direction:
//! - Stream offsets count from the initial sequence number + 1, taken from the SYN (initiator)
//!   and the SYN/ACK (responder). A connection whose SYN was not seen (picked up mid-stream:
//!   after a restart, or after its flow entry was evicted) is not inspected at all: its first
//!   bytes seen may lie anywhere in the stream, in a body for instance. A responder whose
//!   SYN/ACK was not seen is not inspected either. Offsets wrap with the 32-bit sequence space;
//!   bytes before offset 0 are ignored.
//! - The window: bytes `[lo, lo + HEADER_LIMIT)`, where `lo` is the start of the message being
//!   judged (0 at first). A segment's bytes are written into the window where no byte was
//!   received yet: **the first copy of a byte wins**, as in the common OS policy; a later
//!   overlapping retransmission with other bytes changes nothing. `contiguous` is the end of the
//!   gap-free prefix; the tells only ever read `[lo, contiguous)`, so nothing is scanned across
//!   a hole. Bytes beyond the window are not kept.
//! - HTTP: the header block of the message at `lo` is judged on its first [`HEADER_LIMIT`]
//!   bytes and ends at its first empty line in stream order (a body is never read as headers).
//!   After a clean request the next one starts after its body (`Content-Length`, 0 without one);
//!   after an interim (1xx) response the next header block follows at once. So a kept-alive
//!   connection's requests are inspected too, up to the budget: [`MAX_MESSAGES`] header blocks
//!   per direction, each starting within the first [`STREAM_BUDGET`] bytes of its direction. A
//!   final response, the last request of a connection (`Connection: close`, HTTP/1.0 without
//!   keep-alive), a request with a chunked or otherwise unknown body length, a header block
//!   longer than [`HEADER_LIMIT`], or out-of-order bytes beyond the window that the next message
//!   would need end HTTP inspection of the direction.
//! - The opener needs the initiator's first 12 bytes, the push line (`GIVE <n>\r\n`, at most 17
//!   bytes) the first bytes of either direction, exactly and with nothing received beyond it.
//!   Both are ruled out as soon as a byte differs.
//! - The handshake shape needs only how many bytes each direction's stream held at the turns of
//!   the exchange (see [`crate::signatures::tcp::handshake_shape`]): a 32-bit map of each
//!   direction's first 32 bytes and the highest offset received.
//!
//! Invariants and bounds:
//! - [`Direction::Initiator`] is the sender of the first initial SYN seen (fixed from then on),
//!   or, for a connection first seen mid-stream, the sender of its first packet seen.
//! - A direction holds bytes in the pool exactly when it has bytes in `[lo, contiguous)` or
//!   beyond a hole that a pending tell still needs; at most [`HEADER_LIMIT`] bytes and a bitmap
//!   of as many bits. At most `capacity` flows hold buffers (least recently used evicted,
//!   counted): memory is bounded by `capacity × 2 × (HEADER_LIMIT + HEADER_LIMIT / 8)` bytes,
//!   whatever the input. A direction whose buffer was evicted gives up its byte tells (no tell,
//!   never a wrong one).
//! - Each direction's tells read at most `STREAM_BUDGET + HEADER_LIMIT` bytes of its stream;
//!   once no tell can follow in either direction, inspection ends for the life of the stream
//!   (`inspecting()` false) and the flow may be offloaded. A direction waiting on a hole before
//!   that point keeps the flow inspected until the hole fills or the flow ends (giving up would
//!   let a sender fill the hole after inspection stopped); its memory stays the bounded window.

use super::flows::{Source, SourceQuota};
use crate::signatures::http::{Framing, HeaderScanner, HttpMatch, HttpScan};
use crate::signatures::{push, tcp as tcp_tells};
use crate::wire::TcpFlags;
use lru::LruCache;
use std::hash::Hash;
use std::num::NonZeroUsize;

/// Bytes of one HTTP header block judged (and the size of a direction's window).
pub(crate) const HEADER_LIMIT: usize = 2048;
/// Header blocks are inspected only if they start within this many bytes of their direction.
pub(crate) const STREAM_BUDGET: u32 = 8192;
/// At most this many header blocks are inspected per direction.
pub(crate) const MAX_MESSAGES: u8 = 8;
/// A segment starting more than this many bytes beyond its direction's gap-free prefix is
/// ignored (counted, never stored): 64 KiB is the largest window a receiver can offer before
/// window scaling applies, and far beyond every byte a tell reads
/// (`STREAM_BUDGET + HEADER_LIMIT`), so such bytes can change no verdict; ignoring them keeps
/// a sender from vetoing the push and handshake-shape tells, or ending keep-alive inspection,
/// with bytes the receiver would never deliver.
pub(crate) const PLAUSIBLE_WINDOW: u32 = 65_535;

const WORDS: usize = HEADER_LIMIT / 64;
const OPENER_LEN: u32 = tcp_tells::GIFT_OPENER.len() as u32;
const SEED_LEN: u32 = 8;
const MAX_NAME: u32 = tcp_tells::MAX_NAME_MESSAGE as u32;

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

/// A tell found in the bytes of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ByteTell {
    /// The initiator's stream starts with the giFT/MLDonkey opener.
    Opener,
    /// The direction's stream is exactly a push line.
    Give,
}

/// What a segment completed, from [`TcpStream::on_segment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Found {
    /// The opener or a push.
    pub(crate) bytes: Option<ByteTell>,
    /// The handshake shape (a hint: the engine wants corroboration).
    pub(crate) shape: bool,
    /// FastTrack HTTP headers.
    pub(crate) http: Option<HttpMatch>,
    /// The segment's payload lay more than [`PLAUSIBLE_WINDOW`] beyond its direction's
    /// gap-free prefix and was ignored.
    pub(crate) ignored: bool,
    /// The segment needed a reassembly window and its source holds its quota of the pool: when
    /// nothing else was found, the segment was not taken (the caller keeps the stream as it was
    /// and drops the segment, so the sender sends it again).
    pub(crate) refused: bool,
}

/// The [`Source`] a flow's reassembly windows are charged to, worked out only when a window
/// is opened (rarely: most segments need none).
pub(crate) trait ChargedTo: Copy {
    fn source(self) -> Source;
}

impl ChargedTo for Source {
    fn source(self) -> Source {
        self
    }
}

impl<F: Fn() -> Source + Copy> ChargedTo for F {
    fn source(self) -> Source {
        self()
    }
}

/// Progress of one direction.
#[derive(Debug, Clone, Copy, Default)]
struct DirectionState {
    /// Sequence number of stream offset 0, once known.
    base: Option<u32>,
    /// Payload was seen in this direction.
    carried: bool,
    /// Payload was placed in this direction's stream (within [`PLAUSIBLE_WINDOW`] of its
    /// start): from then on no SYN moves the start.
    placed: bool,
    /// End of the gap-free prefix the tells need (bytes before `lo` count as received).
    contiguous: u32,
    /// One past the highest offset received (saturating).
    highest: u32,
    /// Start of the HTTP message being judged.
    lo: u32,
    /// Which of the first 32 bytes were received (for the handshake shape).
    early: u32,
    /// The pool holds bytes of this direction.
    held: bool,
    /// Out-of-order bytes beyond the window were not kept.
    overflowed: bool,
    /// The opener is still possible.
    opener: bool,
    /// A push line is still possible.
    give: bool,
    /// HTTP inspection goes on.
    http: bool,
    /// The stream does not start like HTTP at all.
    not_http: bool,
    /// Header blocks judged.
    messages: u8,
}

impl DirectionState {
    fn new(opener: bool) -> Self {
        Self { opener, give: true, http: true, ..Self::default() }
    }

    /// Still needs bytes for a tell.
    fn bytes_pending(&self) -> bool {
        self.opener || self.give || self.http
    }

    fn give_up(&mut self) {
        self.opener = false;
        self.give = false;
        self.http = false;
    }

    /// Run of received bytes from offset 0 among the first 32.
    fn early_run(&self) -> u32 {
        self.early.trailing_ones()
    }

    fn mark_early(&mut self, start: u32, end: u32) {
        for i in start.min(32)..end.min(32) {
            self.early |= 1 << i;
        }
    }

    /// Judges the stream bytes `view` = `[lo, contiguous)`: the opener and push while `lo` is
    /// 0, then as many HTTP header blocks as are complete. Returns what was found and how far
    /// `lo` moves (possibly past `view`, over a body not yet received). `scanner` holds the
    /// progress of the header block at `lo` (from earlier calls on shorter views), and on return
    /// that of the block at the new `lo`.
    fn judge(&mut self, view: &[u8], found: &mut Found, scanner: &mut HeaderScanner) -> u32 {
        if self.lo == 0 {
            if self.opener && (view.len() >= OPENER_LEN as usize || !tcp_tells::GIFT_OPENER.starts_with(view))
            {
                self.opener = false;
                if tcp_tells::constant_opener(view) {
                    found.bytes = Some(ByteTell::Opener);
                }
            }
            if self.give && !push::give_partial(view) {
                self.give = false;
                // Exactly the push line, and nothing received beyond it.
                if push::give(view).is_some() && self.highest == self.contiguous {
                    found.bytes = found.bytes.or(Some(ByteTell::Give));
                }
            }
        }
        let mut pos = 0usize;
        while self.http && pos < view.len() {
            let rest = &view[pos..];
            let block = &rest[..rest.len().min(HEADER_LIMIT)];
            match scanner.scan(block) {
                HttpScan::NotHttp => {
                    self.http = false;
                    self.not_http = self.messages == 0;
                }
                HttpScan::Incomplete => {
                    if block.len() >= HEADER_LIMIT {
                        self.http = false;
                    }
                    break;
                }
                HttpScan::Kazaa(m) => {
                    self.http = false;
                    found.http = Some(m);
                }
                HttpScan::Clean(header) => {
                    self.messages += 1;
                    let next = match header.next {
                        Framing::Body(n) => Some(header.len as u64 + n),
                        Framing::Interim => Some(header.len as u64),
                        Framing::Unknown => None,
                    };
                    let start = next.map(|n| u64::from(self.lo) + pos as u64 + n);
                    match start {
                        Some(s)
                            if self.messages < MAX_MESSAGES
                                && s < u64::from(STREAM_BUDGET)
                                && !self.overflowed =>
                        {
                            pos = (s - u64::from(self.lo)) as usize;
                            *scanner = HeaderScanner::default();
                        }
                        _ => self.http = false,
                    }
                }
            }
        }
        pos as u32
    }
}

/// Handshake-shape progress: the turns of the exchange seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// The initiator's first message (the responder has not spoken).
    Open,
    /// The responder spoke when the initiator's stream held exactly 12 bytes.
    Replied,
    /// The initiator's stream grew past 12 when the responder's held `contiguous` gap-free
    /// bytes and `received` in all.
    Answered { contiguous: u8, received: u8 },
    /// Matched or ruled out.
    Done,
}

/// TCP progress of one flow, both directions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TcpStream {
    /// True if the flow key's `low` endpoint is the initiator.
    initiator_is_low: bool,
    /// The initial SYN was seen.
    saw_syn: bool,
    /// The stream start (sequence number + 1) of the latest initial SYN seen whose start
    /// differs from the first one's (which is `dirs[0].base`), while neither is confirmed.
    later_syn_start: Option<u32>,
    /// The responder's SYN/ACK acknowledged a SYN seen: the initiator's stream start is fixed.
    start_confirmed: bool,
    /// The stream start of the latest SYN/ACK seen from the responder whose start differs from
    /// the first one's (which is `dirs[1].base`), while neither is confirmed.
    later_syn_ack_start: Option<u32>,
    /// The initiator acknowledged a SYN/ACK seen: the responder's stream start is fixed.
    responder_confirmed: bool,
    /// Still looking for tells.
    inspecting: bool,
    shape: Shape,
    /// Indexed by [`Direction::index`].
    dirs: [DirectionState; 2],
}

impl TcpStream {
    /// A stream whose first packet seen was sent by the key's `low` endpoint iff
    /// `initiator_is_low`.
    pub(crate) fn new(initiator_is_low: bool) -> Self {
        Self {
            initiator_is_low,
            saw_syn: false,
            later_syn_start: None,
            start_confirmed: false,
            later_syn_ack_start: None,
            responder_confirmed: false,
            inspecting: true,
            shape: Shape::Open,
            dirs: [DirectionState::new(true), DirectionState::new(false)],
        }
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
        self.dirs.iter().any(|d| d.carried)
    }

    /// Takes one segment sent by the key's `low` endpoint iff `sender_is_low`: tracks the
    /// handshake's sequence numbers, places the payload (`payload`, the captured part of its
    /// `payload_len` bytes at `seq`) in its direction's stream, and returns the tells it
    /// completed. Buffers live in `pool` under `key`; a buffer evicted to make room is counted
    /// in `evicted`.
    /// Call for every segment before [`TcpStream::on_segment`]: a responder's SYN/ACK whose
    /// acknowledgment number matches a SYN seen (the first, or a later one with another ISN)
    /// fixes the initiator's stream start at what the peer accepted, and the initiator's first
    /// ACK of a SYN/ACK seen fixes the responder's the same way. A SYN or SYN/ACK the other end
    /// never accepted (sent with a short TTL, or after the handshake, where the peer answers
    /// with a challenge ACK) then no longer moves the stream. Without a matching acknowledgment
    /// (asymmetric routing, a capture that lacks it) the **first** SYN or SYN/ACK sets the start
    /// (see [`TcpStream::on_segment`]); once payload was placed, nothing moves it.
    pub(crate) fn on_ack_of_syn(&mut self, sender_is_low: bool, flags: TcpFlags, ack: u32) {
        if !self.saw_syn || !flags.has(TcpFlags::ACK) {
            return;
        }
        let from_initiator = sender_is_low == self.initiator_is_low;
        if !from_initiator && flags.has(TcpFlags::SYN) && !self.dirs[0].placed && !self.start_confirmed {
            // The responder's SYN/ACK confirms the initiator's start.
            if Some(ack) == self.dirs[0].base || Some(ack) == self.later_syn_start {
                self.dirs[0].base = Some(ack);
                self.start_confirmed = true;
            }
        } else if from_initiator
            && !flags.has(TcpFlags::SYN)
            && !self.dirs[1].placed
            && !self.responder_confirmed
        {
            // The initiator's ACK of a SYN/ACK seen confirms the responder's start.
            if Some(ack) == self.dirs[1].base || Some(ack) == self.later_syn_ack_start {
                self.dirs[1].base = Some(ack);
                self.responder_confirmed = true;
            }
        }
    }

    /// Takes one segment sent by the key's `low` endpoint iff `sender_is_low`: tracks the
    /// handshake's sequence numbers, places the payload (`payload`, the captured part of its
    /// `payload_len` bytes at `seq`) in its direction's stream, and returns the tells it
    /// completed. Buffers live in `pool` under `key`, charged to `source` (the flow's); a
    /// buffer evicted to make room is counted in `evicted`. Bytes beyond [`PLAUSIBLE_WINDOW`]
    /// are reported in [`Found::ignored`], a window refused by the source's quota in
    /// [`Found::refused`].
    ///
    /// The stream start of a direction is the first SYN's (SYN/ACK's) sequence number + 1. A
    /// later SYN with another ISN is remembered, and becomes the start only if the other end's
    /// acknowledgment confirms it ([`TcpStream::on_ack_of_syn`]); a SYN never moves a start once
    /// payload was placed, nor once it was confirmed. A second SYN after the real one therefore
    /// cannot hide the real stream's tells, whichever way round they come, as long as the
    /// SYN/ACK crosses the gateway; without it the first SYN stands.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_segment<K: Hash + Eq + Copy>(
        &mut self,
        sender_is_low: bool,
        flags: TcpFlags,
        seq: u32,
        payload: &[u8],
        payload_len: usize,
        pool: &mut Reassembly<K>,
        key: &K,
        source: impl ChargedTo,
        evicted: &mut u64,
    ) -> Found {
        if flags.is_initial_syn() {
            if !self.saw_syn {
                self.saw_syn = true;
                self.initiator_is_low = sender_is_low;
            }
            if sender_is_low == self.initiator_is_low && !self.dirs[0].placed && !self.start_confirmed {
                Self::note_start(&mut self.dirs[0].base, &mut self.later_syn_start, seq.wrapping_add(1));
            }
        } else if flags.has(TcpFlags::SYN | TcpFlags::ACK)
            && self.saw_syn
            && sender_is_low != self.initiator_is_low
            && !self.dirs[1].placed
            && !self.responder_confirmed
        {
            Self::note_start(&mut self.dirs[1].base, &mut self.later_syn_ack_start, seq.wrapping_add(1));
        }
        if payload_len == 0 {
            return Found::default();
        }
        let dir =
            if sender_is_low == self.initiator_is_low { Direction::Initiator } else { Direction::Responder };
        let i = dir.index();
        self.dirs[i].carried = true;
        if !self.inspecting || (!self.dirs[i].bytes_pending() && self.shape == Shape::Done) {
            // Nothing in this direction can tell any more (its bulk data, say).
            return Found::default();
        }
        let Some(base) = self.dirs[i].base.filter(|_| self.saw_syn) else {
            // No stream start known: this direction is not inspected.
            self.dirs[i].give_up();
            self.shape = Shape::Done;
            if !self.saw_syn {
                self.dirs[1 - i].give_up();
            }
            self.end_inspection_if_done(pool, key);
            return Found::default();
        };
        // Data starts one past a SYN's own sequence number.
        let data_seq = if flags.has(TcpFlags::SYN) { seq.wrapping_add(1) } else { seq };
        let rel = data_seq.wrapping_sub(base) as i32;
        let skip = if rel < 0 { rel.unsigned_abs() as usize } else { 0 };
        if skip >= payload_len {
            return Found::default();
        }
        let start = rel.max(0) as u32;
        if start > self.dirs[i].contiguous.saturating_add(PLAUSIBLE_WINDOW) {
            // Far beyond the gap-free prefix: bytes no receiver would take, and that no tell
            // reads. They change nothing (not what is received, not the window): counted only.
            return Found { ignored: true, ..Found::default() };
        }
        self.dirs[i].placed = true;
        let captured = payload.get(skip..).unwrap_or_default();
        let len = u32::try_from(payload_len - skip).unwrap_or(u32::MAX);
        let end = start.saturating_add(len);

        let mut found = Found::default();
        let d = &mut self.dirs[i];
        let grew = end > d.highest;
        d.highest = d.highest.max(end);
        let early_before = d.early;
        if self.shape != Shape::Done {
            d.mark_early(start, end);
        }
        if d.bytes_pending() && end > d.contiguous {
            self.take_bytes(i, start, captured, end, (pool, key, source, evicted), &mut found);
            if found.refused {
                return found;
            }
        }
        if self.shape != Shape::Done && (grew || self.dirs[i].early != early_before) {
            found.shape = self.advance_shape(dir);
        }
        self.end_inspection_if_done(pool, key);
        found
    }

    /// A SYN (or SYN/ACK) announcing stream start `start`: the first one sets `base`, a later
    /// one with another start is only remembered in `later` (for the peer's acknowledgment).
    fn note_start(base: &mut Option<u32>, later: &mut Option<u32>, start: u32) {
        match *base {
            None => *base = Some(start),
            Some(first) if first != start => *later = Some(start),
            Some(_) => {}
        }
    }

    /// Places the bytes `captured` at offset `start` (of a segment ending at `end`) in
    /// direction `i`'s window and judges what became contiguous.
    fn take_bytes<K: Hash + Eq + Copy>(
        &mut self,
        i: usize,
        start: u32,
        captured: &[u8],
        end: u32,
        (pool, key, source, evicted): (&mut Reassembly<K>, &K, impl ChargedTo, &mut u64),
        found: &mut Found,
    ) {
        let d = &mut self.dirs[i];
        let captured_end = start.saturating_add(captured.len() as u32);
        if !d.held && start <= d.contiguous {
            // In order with nothing pending: judge the segment's own bytes.
            let from = (d.contiguous - start) as usize;
            let Some(view) = captured.get(from..).filter(|v| !v.is_empty()) else {
                // The new bytes were not captured: a hole that will never fill.
                d.give_up();
                return;
            };
            d.contiguous = captured_end;
            let mut scanner = HeaderScanner::default();
            let pos = d.judge(view, found, &mut scanner);
            d.lo += pos;
            d.contiguous = d.contiguous.max(d.lo);
            let rest = view.get(pos as usize..).unwrap_or_default();
            if d.bytes_pending() && !rest.is_empty() {
                let Some(buf) = pool.open(key, i, source.source(), evicted) else {
                    // No window for its source: the rest cannot be judged. With a tell found the
                    // flow is classified anyway; otherwise the caller drops the segment.
                    found.refused = true;
                    d.give_up();
                    return;
                };
                buf.write(0, &rest[..rest.len().min(HEADER_LIMIT)]);
                buf.scanner = scanner;
                d.overflowed |= rest.len() > HEADER_LIMIT;
                d.held = true;
            }
        } else {
            let buf = if d.held {
                match pool.get(key, i) {
                    Some(buf) => buf,
                    None => {
                        // Evicted under pressure: give up (counted at eviction).
                        d.held = false;
                        d.give_up();
                        return;
                    }
                }
            } else {
                let Some(buf) = pool.open(key, i, source.source(), evicted) else {
                    // Nothing changed yet: the caller drops the segment.
                    found.refused = true;
                    return;
                };
                d.held = true;
                buf
            };
            // Write what falls in the window, judge, and again while judged messages move the
            // window on over this segment's bytes (writing twice is harmless: first copy wins).
            // The window up to `contiguous` was judged when it last grew, so a segment that adds
            // nothing contiguous (a duplicate, bytes beyond a hole) is not judged again.
            let mut judged_to = Some(d.contiguous);
            loop {
                let from = start.max(d.contiguous);
                let to = captured_end.min(d.lo + HEADER_LIMIT as u32);
                if from < to {
                    let bytes = &captured[(from - start) as usize..(to - start) as usize];
                    buf.write((from - d.lo) as usize, bytes);
                }
                d.contiguous = d.lo + buf.run();
                if judged_to == Some(d.contiguous) {
                    break;
                }
                let view = &buf.data[..(d.contiguous - d.lo) as usize];
                let pos = if view.is_empty() { 0 } else { d.judge(view, found, &mut buf.scanner) };
                if pos == 0 {
                    break;
                }
                buf.shift(pos as usize);
                d.lo += pos;
                d.contiguous = d.lo + buf.run();
                // A new message starts at the window's new beginning: judge it.
                judged_to = None;
            }
            if captured_end > d.lo + HEADER_LIMIT as u32 {
                d.overflowed = true;
            }
            if !d.bytes_pending() || buf.is_empty() {
                d.held = false;
                pool.release(key, i);
            }
        }
        if captured_end < end && d.bytes_pending() && d.lo < end {
            // Part of the segment was not captured: a hole that will never fill.
            d.give_up();
        }
        if !d.bytes_pending() && d.held {
            d.held = false;
            pool.release(key, i);
        }
    }

    /// Moves the handshake-shape state on after new bytes in `dir`; true when the shape
    /// completes on this segment.
    fn advance_shape(&mut self, dir: Direction) -> bool {
        let [a, b] = &self.dirs;
        let (a_run, a_all) = (a.early_run(), a.highest);
        let (b_run, b_all) = (b.early_run(), b.highest);
        let initiator = dir == Direction::Initiator;
        self.shape = match self.shape {
            Shape::Open if initiator => {
                if a_all > OPENER_LEN {
                    Shape::Done
                } else {
                    Shape::Open
                }
            }
            Shape::Open => {
                if a_run >= OPENER_LEN && a_all == OPENER_LEN {
                    Shape::Replied
                } else {
                    Shape::Done
                }
            }
            Shape::Replied if !initiator => {
                if b_all > SEED_LEN + MAX_NAME {
                    Shape::Done
                } else {
                    Shape::Replied
                }
            }
            Shape::Replied => {
                if b_run >= SEED_LEN && b_all <= SEED_LEN + MAX_NAME {
                    Shape::Answered { contiguous: b_run as u8, received: b_all as u8 }
                } else {
                    Shape::Done
                }
            }
            other => other,
        };
        if let (Shape::Answered { contiguous, received }, true) = (self.shape, initiator) {
            if a_all > OPENER_LEN + MAX_NAME {
                self.shape = Shape::Done;
            } else if a_run.min(OPENER_LEN + MAX_NAME) == a_all {
                let matched = tcp_tells::handshake_shape(
                    OPENER_LEN as usize,
                    usize::from(contiguous),
                    usize::from(received),
                    (a_all - OPENER_LEN) as usize,
                );
                if matched {
                    self.shape = Shape::Done;
                    return true;
                }
            }
        }
        false
    }

    /// Ends inspection once no tell can follow, and frees the flow's buffers.
    ///
    /// The rule: the initiator's tells (opener, push, HTTP within the budget) are judged, the
    /// handshake shape is matched or ruled out, and the responder's HTTP is judged too, unless
    /// the initiator's stream is not HTTP at all (a FastTrack HTTP response only answers an HTTP
    /// request, so a silent responder, like a bulk upload's, cannot hold the flow back).
    fn end_inspection_if_done<K: Hash + Eq + Copy>(&mut self, pool: &mut Reassembly<K>, key: &K) {
        let [a, b] = &self.dirs;
        let pending = a.bytes_pending() || (b.http && !a.not_http) || self.shape != Shape::Done;
        if !pending {
            self.inspecting = false;
            if a.held || b.held {
                pool.forget(key);
                self.dirs[0].held = false;
                self.dirs[1].held = false;
            }
        }
    }
}

/// One direction's window: the bytes `[lo, lo + HEADER_LIMIT)` received so far, and which.
#[derive(Debug, Clone)]
struct Window {
    /// Handed to a direction (an entry created for the other direction has a dead slot).
    live: bool,
    /// Bytes from `lo`; as long as the highest one received (zeros in holes).
    data: Vec<u8>,
    /// Bit `i` set: byte `lo + i` was received.
    have: [u64; WORDS],
    /// Progress of the HTTP header block at `lo` (so a block arriving a byte at a time is not
    /// rescanned from its start at every byte).
    scanner: HeaderScanner,
}

impl Default for Window {
    fn default() -> Self {
        Self { live: false, data: Vec::new(), have: [0; WORDS], scanner: HeaderScanner::default() }
    }
}

impl Window {
    fn has(&self, i: usize) -> bool {
        self.have[i / 64] & (1 << (i % 64)) != 0
    }

    /// Writes `bytes` at window offset `at` where no byte was received yet (the first copy
    /// wins). The caller keeps `at + bytes.len() <= HEADER_LIMIT`.
    fn write(&mut self, at: usize, bytes: &[u8]) {
        let end = at + bytes.len();
        if self.data.len() < end {
            // Reserve the whole window once: growing by doubling could hold up to twice
            // HEADER_LIMIT, past the bound the module documents.
            self.data.reserve_exact(HEADER_LIMIT.saturating_sub(self.data.len()));
            self.data.resize(end, 0);
        }
        for (k, &byte) in bytes.iter().enumerate() {
            let i = at + k;
            if !self.has(i) {
                self.data[i] = byte;
                self.have[i / 64] |= 1 << (i % 64);
            }
        }
    }

    /// Received bytes from offset 0 without a hole.
    fn run(&self) -> u32 {
        let mut n = 0;
        for &w in &self.have {
            n += w.trailing_ones();
            if w != u64::MAX {
                break;
            }
        }
        n
    }

    /// Drops the first `n` bytes (judged): offset `n` becomes 0.
    fn shift(&mut self, n: usize) {
        self.data.drain(..n.min(self.data.len()));
        let (words, bits) = (n / 64, n % 64);
        for k in 0..WORDS {
            let lo = self.have.get(k + words).copied().unwrap_or(0);
            let hi = self.have.get(k + words + 1).copied().unwrap_or(0);
            self.have[k] = if bits == 0 { lo } else { (lo >> bits) | (hi << (64 - bits)) };
        }
    }

    fn is_empty(&self) -> bool {
        self.have.iter().all(|&w| w == 0)
    }
}

/// The reassembly windows of all flows: a fixed-capacity LRU keyed by flow, holding up to
/// [`HEADER_LIMIT`] bytes per direction. Each entry is charged to its flow's [`Source`]; one
/// source holds at most a quarter of the pool ([`SourceQuota`]), so one source's flows cannot
/// evict the windows of all the others.
#[derive(Debug)]
pub(crate) struct Reassembly<K: Hash + Eq> {
    lru: LruCache<K, Held>,
    quota: SourceQuota,
}

/// One flow's windows and the source they are charged to.
#[derive(Debug, Clone)]
struct Held {
    windows: [Window; 2],
    source: Source,
}

fn capacity(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n.max(1)).expect("non-zero")
}

impl<K: Hash + Eq + Copy> Reassembly<K> {
    /// Room for the windows of `n` flows (at least one).
    pub(crate) fn new(n: usize) -> Self {
        Self { lru: LruCache::new(capacity(n)), quota: SourceQuota::new(n) }
    }

    /// Changes the capacity; a shrink evicts the least recently used windows, counted in
    /// `evicted`.
    pub(crate) fn resize(&mut self, n: usize, evicted: &mut u64) {
        while self.lru.len() > n.max(1) {
            self.lru.pop_lru();
            *evicted += 1;
        }
        self.lru.resize(capacity(n));
        self.quota.recount(n, self.lru.iter().map(|(_, held)| held.source));
    }

    /// A fresh window for direction `i` of `key`, charged to `source`, evicting the least
    /// recently used flow's if the pool is full (counted in `evicted`). None if `key` holds no
    /// window yet and `source` holds its quota (counted by the caller).
    fn open(&mut self, key: &K, i: usize, source: Source, evicted: &mut u64) -> Option<&mut Window> {
        if !self.lru.contains(key) {
            if !self.quota.allows(source) {
                return None;
            }
            let fresh = Held { windows: Default::default(), source };
            if let Some((_, old)) = self.lru.push(*key, fresh) {
                self.quota.release(old.source);
                if old.windows.iter().any(|w| w.live) {
                    *evicted += 1;
                }
            }
            self.quota.charge(source);
        }
        let slot = &mut self.lru.get_mut(key).expect("just inserted").windows[i];
        *slot = Window { live: true, ..Window::default() };
        Some(slot)
    }

    /// Direction `i`'s window of `key`, unless it was evicted.
    fn get(&mut self, key: &K, i: usize) -> Option<&mut Window> {
        self.lru.get_mut(key).map(|held| &mut held.windows[i]).filter(|w| w.live)
    }

    /// Frees direction `i`'s window of `key` (and the entry once both are free).
    fn release(&mut self, key: &K, i: usize) {
        if let Some(held) = self.lru.peek_mut(key) {
            held.windows[i] = Window::default();
            if held.windows.iter().all(|w| !w.live) {
                self.forget(key);
            }
        }
    }

    /// Drops the windows of `key` (its flow restarted, was forgotten or was judged).
    pub(crate) fn forget(&mut self, key: &K) {
        // Called for every new and every evicted flow: most often the pool is empty.
        if self.lru.is_empty() {
            return;
        }
        if let Some(held) = self.lru.pop(key) {
            self.quota.release(held.source);
        }
    }

    /// Number of flows holding windows.
    pub(crate) fn len(&self) -> usize {
        self.lru.len()
    }
}

#[cfg(test)]
mod tests;
