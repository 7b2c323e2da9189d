//! Stream-true tells through the whole engine, over IPv4 and IPv6: a tell-bearing stream cut at
//! every byte boundary or at random, its segments permuted, lost and retransmitted, and
//! duplicated by overlapping retransmissions, must get the verdict of the in-order stream, on
//! the packet that completes the tell (the first after which the stream holds every byte up
//! to the tell's last one). Benign streams with Kazaa words in their bodies, delivered the same
//! ways, never drop anything, lock nobody and teach no peer.

use super::*;
use proptest::prelude::*;

/// One message: a direction (true: the initiator) and its bytes, sent after every earlier
/// message is complete (the turns of the exchange are causal: a reply needs its request).
type Turn = (bool, Vec<u8>);

struct Scenario {
    name: &'static str,
    /// The responder's port (1214 corroborates the handshake shape).
    port: u16,
    turns: Vec<Turn>,
}

fn kazaa_request() -> Vec<u8> {
    KAZAA_REQUEST.as_bytes().to_vec()
}

fn tell_scenarios() -> Vec<Scenario> {
    let plain = b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\n\r\n".to_vec();
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec();
    vec![
        Scenario { name: "opener", port: 3000, turns: vec![(true, GIFT_OPENER.to_vec())] },
        Scenario { name: "give", port: 2999, turns: vec![(true, b"GIVE 4253679545\r\n".to_vec())] },
        Scenario { name: "kazaa request", port: 1977, turns: vec![(true, kazaa_request())] },
        Scenario {
            name: "kazaa request kept alive",
            port: 80,
            turns: vec![(true, plain), (false, ok), (true, kazaa_request())],
        },
        Scenario {
            name: "handshake shape",
            port: 1214,
            turns: vec![
                (true, vec![0x35, 0x3B, 0xD2, 0xBE, 0x98, 0x62, 0xE6, 0x52, 0xE5, 0x3A, 0xBE, 0x3F]),
                (
                    false,
                    vec![0x7D, 0x95, 0x50, 0xBA, 0x52, 0x11, 0xA0, 0xC5, 0xA2, 0xD0, 0x44, 0x72, 0x14, 0x2E],
                ),
                (true, vec![0xC4, 0x04, 0xDF, 0x84, 0x98, 0x83]),
            ],
        },
    ]
}

fn benign_scenarios() -> Vec<Scenario> {
    let quoted = b"UserAgent: KazaaClient Oct 28 2002\r\nX-Kazaa-IP: 198.51.100.9:1214\r\n\
X-Kazaa-SupernodeIP: 203.0.113.9:3608\r\nServer: KazaaClient\r\n\r\n";
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        2 * quoted.len() + 18
    )
    .into_bytes();
    response.extend_from_slice(quoted);
    response.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\n");
    response.extend_from_slice(quoted);
    let mut post =
        format!("POST /notes HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n", quoted.len() + 22)
            .into_bytes();
    post.extend_from_slice(b"GET / HTTP/1.1\r\nX: y\r\n");
    post.extend_from_slice(quoted);
    vec![
        Scenario {
            name: "quoted Kazaa headers in a response body",
            port: 80,
            turns: vec![(true, b"GET /kazaa.txt HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()), (false, response)],
        },
        Scenario {
            name: "quoted Kazaa request in a request body",
            port: 80,
            turns: vec![(true, post), (false, b"HTTP/1.1 204 No Content\r\n\r\n".to_vec())],
        },
        Scenario {
            name: "a push line in a response body",
            port: 4000,
            turns: vec![
                (true, b"GET /p HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()),
                (false, b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\nGIVE 4253679545\r\n".to_vec()),
            ],
        },
    ]
}

/// A segment of one turn: `[start, start + len)` of that turn's bytes.
#[derive(Debug, Clone, Copy)]
struct Piece {
    turn: usize,
    start: usize,
    len: usize,
}

/// The connection's addresses and initial sequence numbers.
#[derive(Debug, Clone, Copy)]
struct Ends {
    v6: bool,
    isn: [u32; 2],
}

impl Ends {
    fn hosts(&self) -> (&'static str, &'static str) {
        if self.v6 {
            (CLIENT6, PEER6)
        } else {
            (CLIENT, "198.51.100.7")
        }
    }
}

fn segment(ends: Ends, port: u16, from_client: bool, seq: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let (client, server) = ends.hosts();
    let (src, dst, sport, dport) =
        if from_client { (client, server, 40_000, port) } else { (server, client, port, 40_000) };
    let repr = TransportRepr::Tcp(TcpRepr::new(sport, dport, seq, TcpFlags(flags)));
    packet(ip(src), ip(dst), &[], repr, data)
}

/// Replays `pieces` of `scenario` after a handshake; returns each data packet's decision and
/// the engine.
fn replay(scenario: &Scenario, ends: Ends, pieces: &[Piece]) -> (Vec<(Verdict, Reason)>, Engine) {
    let mut e = Engine::new(config());
    let port = scenario.port;
    for (from_client, seq, flags) in
        [(true, ends.isn[0], SYN), (false, ends.isn[1], SYN | ACK), (true, ends.isn[0].wrapping_add(1), ACK)]
    {
        assert_eq!(
            e.handle_packet(at(0), &segment(ends, port, from_client, seq, flags, &[])).reason,
            Reason::Clean
        );
    }
    // Each turn's offset in its direction's stream.
    let mut offsets = Vec::new();
    let mut sent = [0usize; 2];
    for (client, bytes) in &scenario.turns {
        let d = usize::from(!client);
        offsets.push(sent[d]);
        sent[d] += bytes.len();
    }
    let decisions = pieces
        .iter()
        .map(|p| {
            let (client, bytes) = &scenario.turns[p.turn];
            let d = usize::from(!client);
            let seq = ends.isn[d].wrapping_add(1).wrapping_add((offsets[p.turn] + p.start) as u32);
            let data = &bytes[p.start..p.start + p.len];
            let d = e.handle_packet(at(1), &segment(ends, port, *client, seq, PSH_ACK, data));
            (d.verdict, d.reason)
        })
        .collect();
    (decisions, e)
}

/// Where the tell of `scenario` completes in order: (turn, bytes of that turn), and its reason,
/// found by sending every byte on its own, in order.
fn completion(scenario: &Scenario) -> (usize, usize, Reason) {
    let pieces: Vec<Piece> = (0..scenario.turns.len())
        .flat_map(|turn| (0..scenario.turns[turn].1.len()).map(move |start| Piece { turn, start, len: 1 }))
        .collect();
    let ends = Ends { v6: false, isn: [1000, 50_000] };
    let (decisions, _) = replay(scenario, ends, &pieces);
    let k = decisions
        .iter()
        .position(|&(v, _)| v == Verdict::Drop)
        .unwrap_or_else(|| panic!("{}: no tell in order", scenario.name));
    (pieces[k].turn, pieces[k].start + 1, decisions[k].1)
}

/// The packet of `pieces` after which turn `turn` holds all its bytes before `upto`.
fn completing_packet(pieces: &[Piece], turn: usize, upto: usize) -> usize {
    let mut have = vec![false; upto];
    pieces
        .iter()
        .position(|p| {
            if p.turn == turn && p.start < upto {
                have[p.start..(p.start + p.len).min(upto)].fill(true);
            }
            have.iter().all(|&h| h)
        })
        .expect("the schedule delivers every byte")
}

fn check_tell(scenario: &Scenario, ends: Ends, pieces: &[Piece]) -> Result<(), String> {
    let (turn, upto, reason) = completion(scenario);
    let k = completing_packet(pieces, turn, upto);
    let (decisions, _) = replay(scenario, ends, pieces);
    let describe = || format!("{} {ends:?}\npieces {pieces:?}\ndecisions {decisions:?}", scenario.name);
    if decisions[..k].iter().any(|&d| d != (Verdict::Accept, Reason::Clean)) {
        return Err(format!("a verdict before packet {k}: {}", describe()));
    }
    if decisions[k] != (Verdict::Drop, reason) {
        return Err(format!("packet {k} should carry {reason:?}: {}", describe()));
    }
    if decisions[k + 1..].iter().any(|&(v, _)| v != Verdict::Drop) {
        return Err(format!("a packet after the tell passed: {}", describe()));
    }
    Ok(())
}

fn check_benign(scenario: &Scenario, ends: Ends, pieces: &[Piece]) -> Result<(), String> {
    let (decisions, e) = replay(scenario, ends, pieces);
    if decisions.iter().any(|&d| d != (Verdict::Accept, Reason::Clean))
        || e.peer_count() + e.locked_count() > 0
    {
        return Err(format!(
            "{} {ends:?}: {decisions:?}, {} peers, {} locks\npieces {pieces:?}",
            scenario.name,
            e.peer_count(),
            e.locked_count()
        ));
    }
    Ok(())
}

/// The schedule of `scenario` with every turn cut at `cuts` (fractions of its length), the
/// pieces of each turn reordered by `order`, some lost and retransmitted later (coalesced with
/// their neighbour), and overlapping duplicates added. Turns stay in their causal order.
fn schedule(scenario: &Scenario, plan: &Plan) -> Vec<Piece> {
    let mut out = Vec::new();
    for (turn, (_, bytes)) in scenario.turns.iter().enumerate() {
        let n = bytes.len();
        let mut bounds: Vec<usize> = plan.cuts.iter().map(|&c| c as usize * n / 1000).collect();
        bounds.extend([0, n]);
        bounds.sort_unstable();
        bounds.dedup();
        let mut pieces: Vec<Piece> =
            bounds.windows(2).map(|w| Piece { turn, start: w[0], len: w[1] - w[0] }).collect();
        // Losses: the piece is retransmitted after the others, together with the next one.
        let mut retransmits = Vec::new();
        let mut kept = Vec::new();
        for (k, p) in pieces.iter().enumerate() {
            if plan.lost.get(k).copied().unwrap_or(false) && pieces.len() > 1 {
                let end = pieces.get(k + 1).map_or(p.start + p.len, |q| q.start + q.len);
                retransmits.push(Piece { turn, start: p.start, len: end - p.start });
            } else {
                kept.push(*p);
            }
        }
        pieces = kept;
        // Reorder: a permutation driven by the plan's keys.
        let mut keyed: Vec<(u32, Piece)> = pieces
            .into_iter()
            .enumerate()
            .map(|(k, p)| (plan.order.get(k).copied().unwrap_or(0), p))
            .collect();
        keyed.sort_by_key(|&(key, _)| key);
        let mut pieces: Vec<Piece> = keyed.into_iter().map(|(_, p)| p).collect();
        // Overlapping duplicates of arbitrary ranges, anywhere in the turn.
        for &(a, b, at) in &plan.dups {
            let (a, b) = (a as usize * n / 1000, b as usize * n / 1000);
            let (start, end) = (a.min(b), a.max(b).max(a.min(b) + 1).min(n));
            if start < end {
                let at = at as usize % (pieces.len() + 1);
                pieces.insert(at, Piece { turn, start, len: end - start });
            }
        }
        pieces.extend(retransmits);
        out.extend(pieces);
    }
    out
}

#[derive(Debug, Clone)]
struct Plan {
    /// Cut points, in thousandths of a turn's length.
    cuts: Vec<u16>,
    /// Sort keys of the pieces.
    order: Vec<u32>,
    /// Lost pieces.
    lost: Vec<bool>,
    /// Duplicated ranges (thousandths) and where they go.
    dups: Vec<(u16, u16, u8)>,
}

fn plans() -> impl Strategy<Value = Plan> {
    (
        proptest::collection::vec(0u16..=1000, 0..12),
        proptest::collection::vec(any::<u32>(), 12),
        proptest::collection::vec(proptest::bool::weighted(0.15), 12),
        proptest::collection::vec((0u16..=1000, 0u16..=1000, any::<u8>()), 0..4),
    )
        .prop_map(|(cuts, order, lost, dups)| Plan { cuts, order, lost, dups })
}

fn ends_strategy() -> impl Strategy<Value = Ends> {
    let isn = prop_oneof![any::<u32>(), (0u32..64).prop_map(|k| u32::MAX - k)];
    (any::<bool>(), isn.clone(), isn).prop_map(|(v6, a, b)| Ends { v6, isn: [a, b] })
}

/// Every scenario cut once at every byte boundary of every turn, both halves in both orders.
fn every_cut(scenario: &Scenario) -> Vec<Vec<Piece>> {
    let whole: Vec<Piece> = scenario
        .turns
        .iter()
        .enumerate()
        .map(|(turn, (_, b))| Piece { turn, start: 0, len: b.len() })
        .collect();
    let mut out = Vec::new();
    for (turn, (_, bytes)) in scenario.turns.iter().enumerate() {
        for cut in 1..bytes.len() {
            let a = Piece { turn, start: 0, len: cut };
            let b = Piece { turn, start: cut, len: bytes.len() - cut };
            for halves in [[a, b], [b, a]] {
                let mut pieces = whole[..turn].to_vec();
                pieces.extend(halves);
                pieces.extend(&whole[turn + 1..]);
                out.push(pieces);
            }
        }
    }
    out
}

#[test]
fn tells_complete_on_the_same_byte_at_every_cut() {
    for scenario in tell_scenarios() {
        for v6 in [false, true] {
            let ends = Ends { v6, isn: [u32::MAX - 3, 77] };
            for pieces in every_cut(&scenario) {
                check_tell(&scenario, ends, &pieces).unwrap();
            }
        }
    }
}

#[test]
fn tells_in_one_byte_segments_in_any_order_of_a_turn() {
    for scenario in tell_scenarios() {
        let (turn, upto, reason) = completion(&scenario);
        // The tell-bearing turn sent backwards, one byte per segment: the first byte completes it.
        let mut pieces = Vec::new();
        for (t, (_, bytes)) in scenario.turns.iter().enumerate() {
            if t == turn {
                pieces.extend((0..bytes.len()).rev().map(|start| Piece { turn: t, start, len: 1 }));
            } else {
                pieces.push(Piece { turn: t, start: 0, len: bytes.len() });
            }
        }
        let (decisions, _) = replay(&scenario, Ends { v6: true, isn: [5, 6] }, &pieces);
        let k = completing_packet(&pieces, turn, upto);
        assert_eq!(decisions[k], (Verdict::Drop, reason), "{}: {decisions:?}", scenario.name);
        assert!(decisions[..k].iter().all(|&(v, _)| v == Verdict::Accept), "{}", scenario.name);
    }
}

#[test]
fn benign_bodies_never_drop_at_any_cut() {
    for scenario in benign_scenarios() {
        for v6 in [false, true] {
            for pieces in every_cut(&scenario) {
                check_benign(&scenario, Ends { v6, isn: [9, u32::MAX] }, &pieces).unwrap();
            }
        }
    }
}

#[test]
fn an_out_of_order_body_is_never_read_as_headers() {
    // The response's body segments first, then its header block: still clean.
    let scenario = &benign_scenarios()[0];
    let response = &scenario.turns[1].1;
    let head = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut pieces = vec![Piece { turn: 0, start: 0, len: scenario.turns[0].1.len() }];
    for start in (head..response.len()).step_by(7).rev() {
        pieces.push(Piece { turn: 1, start, len: 7.min(response.len() - start) });
    }
    pieces.push(Piece { turn: 1, start: 0, len: head - 3 });
    pieces.push(Piece { turn: 1, start: head - 3, len: 3 });
    check_benign(scenario, Ends { v6: false, isn: [1, 2] }, &pieces).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn tells_survive_cuts_reordering_loss_and_duplicates(
        which in 0usize..5,
        plan in plans(),
        ends in ends_strategy(),
    ) {
        let scenario = &tell_scenarios()[which];
        let pieces = schedule(scenario, &plan);
        if let Err(e) = check_tell(scenario, ends, &pieces) {
            return Err(TestCaseError::fail(e));
        }
    }

    #[test]
    fn benign_streams_never_drop_however_delivered(
        which in 0usize..3,
        plan in plans(),
        ends in ends_strategy(),
    ) {
        let scenario = &benign_scenarios()[which];
        let pieces = schedule(scenario, &plan);
        if let Err(e) = check_benign(scenario, ends, &pieces) {
            return Err(TestCaseError::fail(e));
        }
    }
}
