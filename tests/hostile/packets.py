#!/usr/bin/env python3
"""Hostile and repeated FastTrack traffic for tests/offload_loop.rs, run in the lab's `lan`
namespace. Standard library only (raw sockets), so CI needs nothing beyond python3.

Usage: packets.py --gw NS --queue N MODE ARGS... Modes that measure the gateway's queue read `/proc/net/netfilter/nfnetlink_queue` in the
gateway namespace (`--gw NS --queue N`) just before and some time after the hostile packets,
and print one JSON line: {"sent": packets sent, "before": id_sequence, "after": id_sequence, ...}.

  badsum-ping  SRC DST DPORT           UDP pings with a wrong UDP checksum (conntrack: INVALID)
  tcp-invalid  SRC SPORT DST DPORT     a real TCP connection (plain data, settled clean and
                                       offloaded), then segments of its 5-tuple with a wrong
                                       checksum and with SYN+FIN (INVALID), then closed
  udp-flow     SRC SPORT DST DPORT N   N junk datagrams then one ping on one 5-tuple, not
                                       waiting for answers (for a NOTRACK flow)
  smuggle      SRC SPORT DST DPORT N [session]
                                       N junk datagrams on one 5-tuple, each echoed, then a ping
                                       (with `session`: a C0 28 session datagram) on the same
                                       5-tuple; prints echoes and pongs
  pings        SRC SPORT DST DPORT N   N pings, 200 ms apart, from one source port; prints pongs
"""

import json
import socket
import struct
import subprocess
import sys
import time

PING = bytes([0x27, 0, 0, 0, 0x29, 0x80]) + b"KaZaA\0"
# A C0 28 session datagram of a common captured length (413 bytes), opaque body.
SESSION = bytes([0xC0, 0x28, 0x7D, 0x4E, 0xFC, 0x99, 0x88, 0x9D]) + bytes(range(256))[:405]


def id_sequence(gw, queue):
    text = subprocess.run(
        ["ip", "netns", "exec", gw, "cat", "/proc/net/netfilter/nfnetlink_queue"],
        check=True, capture_output=True, text=True,
    ).stdout
    for line in text.splitlines():
        fields = line.split()
        if fields and int(fields[0]) == queue:
            return int(fields[7])
    raise SystemExit(f"queue {queue} not bound in {gw}: {text!r}")


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo(src, dst, proto, length):
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, proto, length)


def raw(src, proto):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
    s.bind((src, 0))
    return s


def udp_bad(src, sport, dst, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0xDEAD) + payload


def tcp_segment(src, sport, dst, dport, seq, ack, flags, payload, good_checksum):
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    segment = header + payload
    csum = checksum(pseudo(src, dst, socket.IPPROTO_TCP, len(segment)) + segment)
    if not good_checksum:
        csum ^= 0x5A5A
    return segment[:16] + struct.pack("!H", csum) + segment[18:]


def udp_socket(src, sport, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src, sport))
    s.settimeout(timeout)
    return s


def receive(s, deadline):
    """Datagrams received until `deadline`."""
    got = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return got
        s.settimeout(left)
        try:
            got.append(s.recv(2048))
        except socket.timeout:
            return got


def main(argv):
    # Always: --gw NS --queue N MODE ARGS...
    if len(argv) < 5 or argv[0] != "--gw" or argv[2] != "--queue":
        raise SystemExit(__doc__)
    gw, queue, mode, args = argv[1], int(argv[3]), argv[4], argv[5:]
    result = {"mode": mode}
    settle = 0.6
    if mode == "badsum-ping":
        src, dst, dport = args[0], args[1], int(args[2])
        s = raw(src, socket.IPPROTO_UDP)
        result["before"] = id_sequence(gw, queue)
        for sport in (40001, 40002, 40003):
            s.sendto(udp_bad(src, sport, dst, dport, PING), (dst, 0))
        result["sent"] = 3
        time.sleep(settle)
        result["after"] = id_sequence(gw, queue)
    elif mode == "tcp-invalid":
        src, sport, dst, dport = args[0], int(args[1]), args[2], int(args[3])
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        c.bind((src, sport))
        c.settimeout(3)
        c.connect((dst, dport))
        c.sendall(b"plain data that is not http, long enough to settle the flow\n")
        result["echo"] = len(c.recv(4096))
        c.sendall(b"second plain chunk\n")
        c.recv(4096)
        time.sleep(0.3)
        s = raw(src, socket.IPPROTO_TCP)
        result["before"] = id_sequence(gw, queue)
        bad = tcp_segment(src, sport, dst, dport, 12345, 1, 0x18, b"corrupt!", False)
        odd = tcp_segment(src, sport, dst, dport, 12345, 0, 0x03, b"", True)  # SYN+FIN
        for segment in (bad, odd, bad):
            s.sendto(segment, (dst, 0))
        result["sent"] = 3
        time.sleep(settle)
        result["after"] = id_sequence(gw, queue)
        c.close()
    elif mode == "udp-flow":
        src, sport, dst, dport, n = args[0], int(args[1]), args[2], int(args[3]), int(args[4])
        s = udp_socket(src, sport, 1)
        result["before"] = id_sequence(gw, queue)
        for i in range(n):
            s.sendto(b"junk datagram %03d ........" % i, (dst, dport))
            time.sleep(0.01)
        s.sendto(PING, (dst, dport))
        result["sent"] = n + 1
        time.sleep(settle)
        result["after"] = id_sequence(gw, queue)
    elif mode == "smuggle":
        src, sport, dst, dport, n = args[0], int(args[1]), args[2], int(args[3]), int(args[4])
        s = udp_socket(src, sport, 1)
        echoes = 0
        for i in range(n):
            s.sendto(b"junk datagram %03d ........" % i, (dst, dport))
            echoes += len(receive(s, time.monotonic() + 1.0)[:1])
        s.sendto(SESSION if args[5:] == ["session"] else PING, (dst, dport))
        answers = receive(s, time.monotonic() + 1.0)
        result.update(echoes=echoes, pongs=sum(1 for a in answers if a[:1] == b"\x28"))
    elif mode == "pings":
        src, sport, dst, dport, n = args[0], int(args[1]), args[2], int(args[3]), int(args[4])
        s = udp_socket(src, sport, 1)
        pongs = 0
        for _ in range(n):
            s.sendto(PING, (dst, dport))
            answers = receive(s, time.monotonic() + 0.2)
            pongs += sum(1 for a in answers if a[:1] == b"\x28")
        pongs += sum(1 for a in receive(s, time.monotonic() + 0.3) if a[:1] == b"\x28")
        result.update(sent=n, pongs=pongs)
    else:
        raise SystemExit(__doc__)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
