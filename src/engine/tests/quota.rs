//! Per-source quotas on the flow table: one source's churn cannot evict another source's live
//! flows, refusals are counted, and a refused packet still gets exactly one verdict.

use super::*;

const CHURNER: &str = "192.0.2.66";
const VICTIM: &str = "192.0.2.11";
/// A `C0 28` session datagram: no tell without corroboration, but a new UDP flow each.
const SESSION: [u8; 8] = [0xC0, 0x28, 1, 2, 3, 4, 5, 6];

fn small_table() -> Engine {
    let mut c = config();
    c.flows.capacity = 64;
    Engine::new(c)
}

/// `n` session datagrams from the churner to as many outside peers (each a new flow), the
/// `first`-th on.
fn churn_from(e: &mut Engine, now: Timestamp, first: u16, n: u16) -> Vec<Reason> {
    (first..first + n)
        .map(|k| {
            let peer = format!("203.0.113.{}", k % 250 + 1);
            let p = udp((CHURNER, 40_000 + k), (peer.leak(), 7000 + k), &SESSION);
            e.handle_packet(now, &p).reason
        })
        .collect()
}

fn churn(e: &mut Engine, now: Timestamp, n: u16) -> Vec<Reason> {
    churn_from(e, now, 0, n)
}

#[test]
fn one_sources_churn_does_not_evict_another_sources_flow() {
    let mut e = small_table();
    let quota = e.flow_quota.limit() as usize;
    assert_eq!(quota, 16);
    // The victim's connection, between its handshake and its opener.
    let mut conn = Conn::new((VICTIM, 41_000), ("198.51.100.30", 5000));
    conn.open(&mut e, at(0));
    // The churner opens ten times the table's capacity in new UDP flows.
    let reasons = churn(&mut e, at(1), 640);
    assert!(reasons.iter().all(|&r| r == Reason::Clean), "judged without an entry: {reasons:?}");
    assert_eq!(e.stats().flow_quota_refused, 640 - quota as u64, "refused beyond the quota");
    assert_eq!(e.flow_quota.held(Source::Host(ip(CHURNER))), quota as u32);
    assert_eq!(e.flow_count(), quota + 1);
    // The victim's flow is still tracked: its opener is judged on the stream.
    let opener = conn.client_data(&GIFT_OPENER);
    assert_eq!(judge(&mut e, at(2), &opener), (Verdict::Drop, Reason::TcpOpener));
}

#[test]
fn refused_packets_are_judged_by_the_rules_that_need_no_flow() {
    let mut e = small_table();
    churn(&mut e, at(0), 16);
    // A ping is a tell in the datagram itself.
    let ping = udp((CHURNER, 3531), ("198.51.100.20", 2345), &KAZAA_PING);
    assert_eq!(judge(&mut e, at(1), &ping), (Verdict::Drop, Reason::UdpPing));
    // The client is locked now: a new TCP connection is refused by its lock...
    let syn = tcp((CHURNER, 45_000), ("198.51.100.21", 8080), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(2), &syn), (Verdict::Drop, Reason::ClientLocked));
    // ...a session datagram is corroborated by its lock without a flow entry...
    let session = udp((CHURNER, 3531), ("198.51.100.22", 7000), &SESSION);
    assert_eq!(judge(&mut e, at(3), &session), (Verdict::Drop, Reason::UdpSession));
    // ...other UDP is judged clean without an entry...
    let dns = udp((CHURNER, 45_001), ("198.51.100.53", 53), b"query");
    assert_eq!(judge(&mut e, at(3), &dns), (Verdict::Accept, Reason::Clean));
    // ...and a TCP connection it cannot have an entry (so a stream) for is dropped, never passed
    // uninspected.
    let web = tcp((CHURNER, 45_002), ("198.51.100.54", 443), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(3), &web), (Verdict::Drop, Reason::FlowQuota));
    assert_eq!(e.flow_count(), 16);
    // In monitor mode it is only counted.
    let mut monitor = Engine::new(EngineConfig { mode: Mode::Monitor, ..small_table().config().clone() });
    churn(&mut monitor, at(0), 16);
    assert_eq!(judge(&mut monitor, at(1), &web), (Verdict::Accept, Reason::FlowQuota));
}

#[test]
fn idle_flows_give_their_quota_back_and_a_resize_recounts() {
    let mut e = small_table();
    assert!(churn(&mut e, at(0), 16).iter().all(|&r| r == Reason::Clean));
    let web = |port| tcp((CHURNER, port), ("198.51.100.54", 443), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(1), &web(45_000)).1, Reason::FlowQuota);
    // Once the churner's flows are idle, new ones are admitted (the idle ones are forgotten).
    let idle = e.config().flows.idle_seconds;
    let later = at(idle + 2);
    assert_eq!(judge(&mut e, later, &web(45_001)), (Verdict::Accept, Reason::Clean));
    assert_eq!(e.flow_count(), 16, "one idle flow was forgotten to make room");
    assert_eq!(e.flow_quota.held(Source::Host(ip(CHURNER))), 16);
    // A reload that shrinks the table recounts what is left.
    let mut c = e.config().clone();
    c.flows.capacity = 8;
    e.set_config(c);
    assert_eq!(e.flow_quota.limit(), 2);
    assert_eq!(e.flow_quota.held(Source::Host(ip(CHURNER))), 8);
    // Outside senders are counted by /24.
    let a = tcp(("203.0.113.5", 1000), (VICTIM, 22), 1, SYN, &[]);
    let b = tcp(("203.0.113.6", 1000), (VICTIM, 22), 1, SYN, &[]);
    let c = tcp(("203.0.113.7", 1000), (VICTIM, 22), 1, SYN, &[]);
    assert_eq!(judge(&mut e, later, &a).1, Reason::Clean);
    assert_eq!(judge(&mut e, later, &b).1, Reason::Clean);
    assert_eq!(judge(&mut e, later, &c).1, Reason::FlowQuota);
}

#[test]
fn one_sources_open_requests_cannot_evict_anothers_reassembly_window() {
    let mut c = config();
    c.flows.reassembly_capacity = 8;
    let mut e = Engine::new(c);
    let (head, tail) = KAZAA_REQUEST.as_bytes().split_at(30);
    let mut victim = Conn::new((VICTIM, 41_000), ("198.51.100.30", 80));
    victim.open(&mut e, at(0));
    assert_eq!(judge(&mut e, at(0), &victim.client_data(head)).1, Reason::Clean);
    // The churner holds two windows with unfinished requests; further ones are dropped.
    let reasons: Vec<Reason> = (0..10)
        .map(|k| {
            let mut conn = Conn::new((CHURNER, 42_000 + k), ("198.51.100.31", 80));
            conn.open(&mut e, at(1));
            e.handle_packet(at(1), &conn.client_data(b"GET / HTTP/1.1\r\nHost: a\r\n")).reason
        })
        .collect();
    assert_eq!(reasons.iter().filter(|&&r| r == Reason::Clean).count(), 2, "{reasons:?}");
    assert_eq!(reasons.iter().filter(|&&r| r == Reason::FlowQuota).count(), 8);
    assert_eq!(e.stats().reassembly_quota_refused, 8);
    assert_eq!(e.stats().reassembly_evicted, 0);
    // The victim's window survived: the rest of its request completes the tell.
    assert_eq!(judge(&mut e, at(2), &victim.client_data(tail)), (Verdict::Drop, Reason::HttpTransfer));
}
