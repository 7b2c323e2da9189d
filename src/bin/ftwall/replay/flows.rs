//! `ftwall replay --flows`: one summary per flow, to say what a capture leaked.
//!
//! A flow is (protocol, inside end, outside end) as the engine decides them for each packet
//! ([`Decision::ends`]); a decision without ends (none today: the engine gives ends whenever it
//! read the addresses) falls back to the packet's source as the inside end. A packet without a
//! transport header to read ports from (ICMP, other protocols, a later fragment) belongs to the
//! port-less flow between its two addresses, printed as bare addresses. Consequences, by
//! design: a later fragment is counted in the port-less flow of its addresses, not in its
//! datagram's flow (the engine reads no ports from it); and when the engine orients the same
//! five-tuple differently over time (its flow entry was evicted, then a reply came first
//! between two inside or two outside hosts), that is two flows here, as the engine saw two.
//!
//! Per flow, each way ("out": sent by the inside end; "in": sent by the outside end): packets
//! and payload bytes, as the engine summarises them ([`ftwall::PacketSummary::payload_len`]:
//! the transport payload from the length fields, so a UDP first fragment whose header the
//! engine read counts its whole datagram, and a later fragment, or a packet the engine found
//! malformed, counts 0); verdict counts; the first packet whose verdict is
//! a drop (file, frame, reason); and the payload bytes accepted each way before that first drop,
//! what leaked before ftwall acted. In monitor mode nothing is dropped, so no flow has a first
//! drop.
//!
//! Bounds: at most `max_flows` flows are tracked (`--max-flows`, default [`DEFAULT_MAX_FLOWS`],
//! about 85 MiB at the cap). A packet of a flow first seen once the table is full is not
//! tracked: it is counted in [`Untracked`] (packets, verdicts, payload bytes) and the summary
//! says so; tracked flows keep being counted. Records without addresses (a malformed IP header)
//! are counted apart. Flows are printed at the end, in the order they were first seen.

use ftwall::{Decision, Proto, Reason, Verdict};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::SocketAddr;

/// Default cap on tracked flows. A flow costs 176 bytes in the list and at most 2 x 81 in the
/// index (hash table at its lowest load): about 85 MiB at this cap, plus the index's previous
/// table for the moment it grows.
pub(crate) const DEFAULT_MAX_FLOWS: usize = 1 << 18;

/// A flow's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowId {
    proto: Proto,
    inside: SocketAddr,
    outside: SocketAddr,
    /// The packets carry ports (TCP/UDP with a readable header); else the ends' ports are 0
    /// and the addresses are printed bare.
    ports: bool,
}

/// Packets and payload bytes one way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Way {
    packets: u64,
    bytes: u64,
}

/// The first dropped packet of a flow and what had been accepted before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FirstDrop {
    /// Index into [`FlowTable::files`].
    file: usize,
    frame: u64,
    reason: Reason,
    leaked_out: u64,
    leaked_in: u64,
}

#[derive(Debug, Clone)]
struct Flow {
    id: FlowId,
    out: Way,
    inn: Way,
    accepted: u64,
    dropped: u64,
    /// Payload bytes accepted each way so far, until the first drop.
    accepted_out: u64,
    accepted_in: u64,
    first_drop: Option<FirstDrop>,
}

/// Packets of flows first seen while the table was full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Untracked {
    pub(crate) packets: u64,
    pub(crate) accepted: u64,
    pub(crate) dropped: u64,
    pub(crate) bytes: u64,
}

/// The per-flow accounting of one replay invocation (all its files).
#[derive(Debug)]
pub(crate) struct FlowTable {
    max_flows: usize,
    flows: Vec<Flow>,
    index: HashMap<FlowId, usize>,
    /// Names of the files, in the order they were begun.
    files: Vec<String>,
    untracked: Untracked,
    /// IP records whose addresses could not be read.
    unaddressed: u64,
}

/// A flow as printed (one JSON line); field order is the output's key order.
#[derive(Serialize)]
struct FlowLine<'a> {
    proto: Proto,
    inside: String,
    outside: String,
    packets_out: u64,
    packets_in: u64,
    bytes_out: u64,
    bytes_in: u64,
    accepted: u64,
    dropped: u64,
    first_drop: Option<DropLine<'a>>,
}

#[derive(Serialize)]
struct DropLine<'a> {
    file: &'a str,
    frame: u64,
    reason: Reason,
    leaked_out: u64,
    leaked_in: u64,
}

impl FlowTable {
    pub(crate) fn new(max_flows: usize) -> Self {
        Self {
            max_flows,
            flows: Vec::new(),
            index: HashMap::new(),
            files: Vec::new(),
            untracked: Untracked::default(),
            unaddressed: 0,
        }
    }

    /// Starts a file (its name as printed). Frames recorded next are its.
    pub(crate) fn begin_file(&mut self, name: String) {
        self.files.push(name);
    }

    /// Accounts one record: `frame` of the current file, and the engine's decision (None for a
    /// record that is not an IP packet, which belongs to no flow).
    pub(crate) fn record(&mut self, frame: u64, decision: Option<&Decision>) {
        let Some(d) = decision else { return };
        let Some(p) = d.packet else {
            self.unaddressed += 1;
            return;
        };
        let src = SocketAddr::new(p.src, p.src_port.unwrap_or(0));
        let dst = SocketAddr::new(p.dst, p.dst_port.unwrap_or(0));
        let (inside, outside) = d.ends.map_or((src, dst), |e| (e.inside, e.outside));
        let ports = p.src_port.is_some() && p.dst_port.is_some();
        let id = FlowId { proto: p.proto, inside, outside, ports };
        let dropped = d.verdict == Verdict::Drop;
        let bytes = p.payload_len as u64;
        let slot = match self.index.get(&id) {
            Some(&i) => i,
            None if self.flows.len() < self.max_flows => {
                self.flows.push(Flow {
                    id,
                    out: Way::default(),
                    inn: Way::default(),
                    accepted: 0,
                    dropped: 0,
                    accepted_out: 0,
                    accepted_in: 0,
                    first_drop: None,
                });
                self.index.insert(id, self.flows.len() - 1);
                self.flows.len() - 1
            }
            None => {
                let u = &mut self.untracked;
                u.packets += 1;
                u.bytes += bytes;
                if dropped {
                    u.dropped += 1;
                } else {
                    u.accepted += 1;
                }
                return;
            }
        };
        let file = self.files.len().saturating_sub(1);
        let flow = &mut self.flows[slot];
        // The inside end sent it (a packet from an end to itself counts as outbound).
        let outbound = src == inside;
        let way = if outbound { &mut flow.out } else { &mut flow.inn };
        way.packets += 1;
        way.bytes += bytes;
        if dropped {
            flow.dropped += 1;
            if flow.first_drop.is_none() {
                flow.first_drop = Some(FirstDrop {
                    file,
                    frame,
                    reason: d.reason,
                    leaked_out: flow.accepted_out,
                    leaked_in: flow.accepted_in,
                });
            }
        } else {
            flow.accepted += 1;
            if flow.first_drop.is_none() {
                *(if outbound { &mut flow.accepted_out } else { &mut flow.accepted_in }) += bytes;
            }
        }
    }

    /// Writes one JSON line per flow, in first-seen order.
    pub(crate) fn write<W: Write>(&self, out: &mut W) -> io::Result<()> {
        let mut line = String::new();
        for flow in &self.flows {
            line.clear();
            let show = |a: SocketAddr| if flow.id.ports { a.to_string() } else { a.ip().to_string() };
            let first_drop = flow.first_drop.map(|d| DropLine {
                file: &self.files[d.file],
                frame: d.frame,
                reason: d.reason,
                leaked_out: d.leaked_out,
                leaked_in: d.leaked_in,
            });
            let printed = FlowLine {
                proto: flow.id.proto,
                inside: show(flow.id.inside),
                outside: show(flow.id.outside),
                packets_out: flow.out.packets,
                packets_in: flow.inn.packets,
                bytes_out: flow.out.bytes,
                bytes_in: flow.inn.bytes,
                accepted: flow.accepted,
                dropped: flow.dropped,
                first_drop,
            };
            line.push_str(&serde_json::to_string(&printed).expect("flow lines serialise"));
            line.push('\n');
            out.write_all(line.as_bytes())?;
        }
        Ok(())
    }

    /// The lines of the stderr summary about flows.
    pub(crate) fn summary(&self, s: &mut String) {
        let with_drop: Vec<&FirstDrop> = self.flows.iter().filter_map(|f| f.first_drop.as_ref()).collect();
        let leaked_out: u64 = with_drop.iter().map(|d| d.leaked_out).sum();
        let leaked_in: u64 = with_drop.iter().map(|d| d.leaked_in).sum();
        let _ = writeln!(s, "  flows: {} ({} with a drop)", self.flows.len(), with_drop.len());
        let _ =
            writeln!(s, "  leaked before the first drop: {leaked_out} payload byte(s) out, {leaked_in} in");
        let u = &self.untracked;
        if u.packets > 0 {
            let _ = writeln!(
                s,
                "  flows not tracked (table full at {} flows, --max-flows): {} packet(s), {} accepted, {} dropped, {} payload byte(s)",
                self.max_flows, u.packets, u.accepted, u.dropped, u.bytes
            );
        }
        if self.unaddressed > 0 {
            let _ = writeln!(s, "  records without addresses (in no flow): {}", self.unaddressed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftwall::wire::{self, ExtHeader::Fragment, IpRepr, Ipv4Repr, Ipv6Repr, TransportRepr, UdpRepr};
    use ftwall::{Engine, EngineConfig, FlowEnds, PacketSummary, Timestamp};

    const CLIENT: &str = "192.0.2.10:3531";
    const PEER: &str = "198.51.100.20:2345";
    const KAZAA_PING: [u8; 12] = [0x27, 0, 0, 0, 0x29, 0x80, b'K', b'a', b'Z', b'a', b'A', 0];

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A decision about a TCP packet `src` -> `dst` of `len` payload bytes, in the flow whose
    /// ends are (`inside`, `outside`).
    fn tcp(src: &str, dst: &str, inside: &str, len: usize, reason: Reason) -> Decision {
        let (src, dst) = (sock(src), sock(dst));
        let outside = if sock(inside) == src { dst } else { src };
        Decision {
            verdict: reason.natural_verdict(),
            reason,
            blocked: reason.natural_verdict() == Verdict::Drop,
            packet: Some(PacketSummary {
                proto: Proto::Tcp,
                src: src.ip(),
                dst: dst.ip(),
                src_port: Some(src.port()),
                dst_port: Some(dst.port()),
                payload_len: len,
            }),
            ends: Some(FlowEnds { inside: sock(inside), outside }),
            settled: None,
        }
    }

    fn lines(t: &FlowTable) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        t.write(&mut out).unwrap();
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn table(decisions: &[Option<Decision>]) -> FlowTable {
        let mut t = FlowTable::new(DEFAULT_MAX_FLOWS);
        t.begin_file("x.pcap".into());
        for (i, d) in decisions.iter().enumerate() {
            t.record(i as u64 + 1, d.as_ref());
        }
        t
    }

    #[test]
    fn a_drop_in_the_middle_leaks_what_was_accepted_before_it() {
        let t = table(&[
            Some(tcp(CLIENT, PEER, CLIENT, 0, Reason::Clean)),
            Some(tcp(PEER, CLIENT, CLIENT, 0, Reason::Clean)),
            Some(tcp(CLIENT, PEER, CLIENT, 100, Reason::Clean)),
            Some(tcp(PEER, CLIENT, CLIENT, 50, Reason::Clean)),
            Some(tcp(CLIENT, PEER, CLIENT, 30, Reason::HttpTransfer)),
            // Accepted after the first drop: counted, but not as leaked before it.
            Some(tcp(PEER, CLIENT, CLIENT, 40, Reason::Clean)),
            Some(tcp(CLIENT, PEER, CLIENT, 20, Reason::FasttrackFlow)),
        ]);
        let want = r#"{"proto":"tcp","inside":"192.0.2.10:3531","outside":"198.51.100.20:2345","packets_out":4,"packets_in":3,"bytes_out":150,"bytes_in":90,"accepted":5,"dropped":2,"first_drop":{"file":"x.pcap","frame":5,"reason":"http_transfer","leaked_out":100,"leaked_in":50}}"#;
        let mut out = Vec::new();
        t.write(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), format!("{want}\n"));
        let mut s = String::new();
        t.summary(&mut s);
        assert_eq!(
            s,
            "  flows: 1 (1 with a drop)\n  leaked before the first drop: 100 payload byte(s) out, 50 in\n"
        );
    }

    #[test]
    fn a_flow_without_a_drop_has_no_first_drop() {
        let t = table(&[
            Some(tcp(CLIENT, PEER, CLIENT, 10, Reason::Clean)),
            Some(tcp(PEER, CLIENT, CLIENT, 700, Reason::Clean)),
        ]);
        let l = lines(&t);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0]["first_drop"], serde_json::Value::Null);
        assert_eq!((l[0]["accepted"].as_u64(), l[0]["dropped"].as_u64()), (Some(2), Some(0)));
        assert_eq!((l[0]["bytes_out"].as_u64(), l[0]["bytes_in"].as_u64()), (Some(10), Some(700)));
    }

    #[test]
    fn directions_follow_the_engines_ends_and_flows_keep_first_seen_order() {
        const SERVER: &str = "192.0.2.80:80";
        const VISITOR: &str = "203.0.113.9:40000";
        let t = table(&[
            // An inbound connection: its first packet comes from outside, and the inside end is
            // the receiver.
            Some(tcp(VISITOR, SERVER, SERVER, 0, Reason::Clean)),
            Some(tcp(CLIENT, PEER, CLIENT, 5, Reason::Clean)),
            Some(tcp(SERVER, VISITOR, SERVER, 300, Reason::Clean)),
            Some(tcp(VISITOR, SERVER, SERVER, 20, Reason::Clean)),
            // The same five-tuple oriented the other way by the engine is another flow.
            Some(tcp(PEER, CLIENT, PEER, 7, Reason::Clean)),
        ]);
        let l = lines(&t);
        let ends: Vec<(&str, &str)> =
            l.iter().map(|f| (f["inside"].as_str().unwrap(), f["outside"].as_str().unwrap())).collect();
        assert_eq!(ends, [(SERVER, VISITOR), (CLIENT, PEER), (PEER, CLIENT)]);
        let ways = |f: &serde_json::Value| {
            ["packets_out", "packets_in", "bytes_out", "bytes_in"].map(|k| f[k].as_u64().unwrap())
        };
        assert_eq!(ways(&l[0]), [1, 2, 300, 20]);
        assert_eq!(ways(&l[1]), [1, 0, 5, 0]);
        assert_eq!(ways(&l[2]), [1, 0, 7, 0]);
    }

    #[test]
    fn non_ip_records_are_in_no_flow_and_unaddressed_ones_are_counted() {
        let mut unaddressed = tcp(CLIENT, PEER, CLIENT, 0, Reason::Malformed);
        unaddressed.packet = None;
        unaddressed.ends = None;
        let t = table(&[None, Some(unaddressed), None]);
        assert!(lines(&t).is_empty());
        let mut s = String::new();
        t.summary(&mut s);
        assert!(s.contains("  flows: 0 (0 with a drop)\n"), "{s}");
        assert!(s.contains("  records without addresses (in no flow): 1\n"), "{s}");
    }

    /// The two fragments of a UDP datagram carrying a Kazaa ping from the client to a peer's
    /// port 1214, split after 8 payload bytes, over IPv4 or IPv6; and the decisions the engine
    /// gives them, accounted as frames 1 and 2.
    fn fragmented(v6: bool) -> (FlowTable, [Decision; 2]) {
        let (client, peer) = if v6 {
            (sock("[2001:db8:1::11]:3531"), sock("[2001:db8:2::21]:1214"))
        } else {
            (sock(CLIENT), sock("198.51.100.20:1214"))
        };
        let udp = TransportRepr::Udp(UdpRepr { src_port: client.port(), dst_port: peer.port() });
        let raw = TransportRepr::Raw { protocol: 17 };
        let ip = IpRepr::new(client.ip(), peer.ip()).unwrap();
        let whole = wire::emit(&ip, &udp, &KAZAA_PING);
        let segment = &whole[ip.header_len()..];
        let (first, later) = match ip {
            IpRepr::V4(v4) => {
                let frag = |offset, more| {
                    IpRepr::V4(Ipv4Repr {
                        ident: 7,
                        dont_fragment: false,
                        more_fragments: more,
                        fragment_offset: offset,
                        ..v4
                    })
                };
                (
                    wire::emit(&frag(0, true), &raw, &segment[..16]),
                    wire::emit(&frag(2, false), &raw, &segment[16..]),
                )
            }
            IpRepr::V6(v6) => {
                let first = [Fragment { offset: 0, more: true, ident: 7 }];
                let later = [Fragment { offset: 2, more: false, ident: 7 }];
                (
                    wire::emit(&IpRepr::V6(Ipv6Repr { ext: &first, ..v6 }), &raw, &segment[..16]),
                    wire::emit(&IpRepr::V6(Ipv6Repr { ext: &later, ..v6 }), &raw, &segment[16..]),
                )
            }
        };
        let mut engine = Engine::new(EngineConfig {
            lan: vec!["192.0.2.0/24".parse().unwrap(), "2001:db8:1::/64".parse().unwrap()],
            ..EngineConfig::default()
        });
        let mut t = FlowTable::new(DEFAULT_MAX_FLOWS);
        t.begin_file("frag.pcap".into());
        let decisions = [first, later].map(|p| engine.handle_packet(Timestamp::from_secs(1), &p));
        for (frame, d) in [1, 2].into_iter().zip(&decisions) {
            t.record(frame, Some(d));
        }
        (t, decisions)
    }

    #[test]
    fn a_later_fragment_is_in_the_port_less_flow_of_its_addresses() {
        // IPv6: the first fragment carries the UDP header and is its datagram's (the announced
        // length counts the whole datagram); the later one has no ports.
        let (t, decisions) = fragmented(true);
        assert_eq!(decisions[1].reason, Reason::LaterFragment);
        let l = lines(&t);
        assert_eq!(l.len(), 2, "{l:?}");
        assert_eq!(
            (l[0]["proto"].as_str(), l[0]["inside"].as_str(), l[0]["outside"].as_str()),
            (Some("udp"), Some("[2001:db8:1::11]:3531"), Some("[2001:db8:2::21]:1214"))
        );
        assert_eq!((l[0]["packets_out"].as_u64(), l[0]["bytes_out"].as_u64()), (Some(1), Some(12)));
        let dropped = u64::from(decisions[0].verdict == Verdict::Drop);
        assert_eq!((l[0]["accepted"].as_u64(), l[0]["dropped"].as_u64()), (Some(1 - dropped), Some(dropped)));
        assert_eq!(
            (l[1]["proto"].as_str(), l[1]["inside"].as_str(), l[1]["outside"].as_str()),
            (Some("udp"), Some("2001:db8:1::11"), Some("2001:db8:2::21"))
        );
        assert_eq!((l[1]["packets_out"].as_u64(), l[1]["bytes_out"].as_u64()), (Some(1), Some(0)));
        assert_eq!((l[1]["accepted"].as_u64(), l[1]["first_drop"].is_null()), (Some(1), true));

        // IPv4: the later fragment likewise; the first fragment is in its datagram's flow when
        // the engine read its ports, else in the port-less flow with the later one.
        let (t, decisions) = fragmented(false);
        assert_eq!(decisions[1].reason, Reason::LaterFragment);
        let l = lines(&t);
        let port_less = l.last().unwrap();
        assert_eq!(
            (port_less["proto"].as_str(), port_less["inside"].as_str(), port_less["outside"].as_str()),
            (Some("udp"), Some("192.0.2.10"), Some("198.51.100.20"))
        );
        let first_has_ports = decisions[0].packet.unwrap().src_port.is_some();
        assert_eq!(l.len(), if first_has_ports { 2 } else { 1 }, "{l:?}");
        assert_eq!(port_less["packets_out"].as_u64(), Some(if first_has_ports { 1 } else { 2 }));
        let bytes: u64 = l.iter().map(|f| f["bytes_out"].as_u64().unwrap()).sum();
        assert_eq!(bytes, decisions.iter().map(|d| d.packet.unwrap().payload_len as u64).sum::<u64>());
    }

    #[test]
    fn the_table_is_bounded_and_what_it_did_not_track_is_counted() {
        let mut t = FlowTable::new(2);
        t.begin_file("a.pcap".into());
        t.record(1, Some(&tcp(CLIENT, PEER, CLIENT, 10, Reason::Clean)));
        t.record(2, Some(&tcp("192.0.2.11:1", PEER, "192.0.2.11:1", 0, Reason::Clean)));
        t.begin_file("b.pcap".into());
        for frame in 1..=3 {
            t.record(frame, Some(&tcp("192.0.2.12:1", PEER, "192.0.2.12:1", 5, Reason::SuspectPeer)));
        }
        // A tracked flow keeps being counted once the table is full, across files.
        t.record(4, Some(&tcp(CLIENT, PEER, CLIENT, 3, Reason::TcpOpener)));
        assert_eq!(t.untracked, Untracked { packets: 3, accepted: 0, dropped: 3, bytes: 15 });
        let l = lines(&t);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0]["first_drop"]["file"], "b.pcap");
        assert_eq!(l[0]["first_drop"]["frame"], 4);
        assert_eq!(l[0]["first_drop"]["leaked_out"], 10);
        let mut s = String::new();
        t.summary(&mut s);
        assert!(
            s.contains("  flows not tracked (table full at 2 flows, --max-flows): 3 packet(s), 0 accepted, 3 dropped, 15 payload byte(s)\n"),
            "{s}"
        );
    }
}
