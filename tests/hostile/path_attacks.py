#!/usr/bin/env python3
"""Hostile traffic for tests/packet_path.rs, with the standard library only (raw sockets).

  flood-absent RATE SECONDS      FastTrack pings from 192.0.2.100-199 (no such hosts on the LAN)
                                 to 198.51.100.30-39:1214, a new source port each, RATE per second
  spoof-ping SRC DST DPORT SPORT one FastTrack ping with a forged source address
  freeze PID THREAD SECONDS      stops one thread of PID (by name) with PTRACE_SEIZE+INTERRUPT,
                                 prints "frozen TID", holds it SECONDS, then detaches
  tcp-serve ADDR PORT            accepts one connection, prints the byte count it received
  tcp-send ADDR PORT BYTES       sends BYTES over one connection, prints "sent N"
  frag-ping SRC DST DPORT SPORT  one FastTrack ping (IPv4 or IPv6) cut in two IP fragments:
                                 the UDP header and 8 bytes of the ping, then its last 4 bytes
Prints one line of JSON per command where it reports something.
"""
import ctypes
import json
import os
import socket
import struct
import sys
import time

# The packet building blocks are packets.py's (tests/offload_loop.rs); no bytecode is left behind.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from packets import PING, checksum, pseudo  # noqa: E402


def ipv4_udp(src, dst, sport, dport, payload):
    udp_len = 8 + len(payload)
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0)
    csum = checksum(pseudo(src, dst, socket.IPPROTO_UDP, udp_len) + udp + payload) or 0xFFFF
    udp = struct.pack("!HHHH", sport, dport, udp_len, csum)
    total = 20 + udp_len
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + udp + payload


def raw_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    return s


def flood_absent(rate, seconds):
    s = raw_socket()
    interval = 1.0 / rate
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < seconds:
        src = "192.0.2.%d" % (100 + sent % 100)
        dst = "198.51.100.%d" % (30 + sent % 10)
        s.sendto(ipv4_udp(src, dst, 1024 + sent % 60000, 1214, PING), (dst, 0))
        sent += 1
        delay = start + sent * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    print(json.dumps({"command": "flood-absent", "sent": sent, "seconds": seconds}), flush=True)


def spoof_ping(src, dst, dport, sport):
    raw_socket().sendto(ipv4_udp(src, dst, sport, dport, PING), (dst, 0))
    print(json.dumps({"command": "spoof-ping", "sent": 1}), flush=True)


PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 17, 0x4206, 0x4207


def freeze(pid, name, seconds):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    tid = None
    for t in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
            if f.read().strip() == name:
                tid = int(t)
    if tid is None:
        sys.exit("no thread named %s in %d" % (name, pid))
    if libc.ptrace(PTRACE_SEIZE, tid, None, None) != 0 or libc.ptrace(PTRACE_INTERRUPT, tid, None, None) != 0:
        sys.exit("ptrace: %s" % os.strerror(ctypes.get_errno()))
    os.waitpid(tid, 0x40000000)  # __WALL: wait until only this thread is stopped
    print(json.dumps({"command": "freeze", "frozen": tid}), flush=True)
    time.sleep(seconds)
    libc.ptrace(PTRACE_DETACH, tid, None, None)
    print(json.dumps({"command": "freeze", "released": tid}), flush=True)


def tcp_serve(addr, port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(1)
    print(json.dumps({"ready": True}), flush=True)
    conn, _ = srv.accept()
    conn.settimeout(20)
    total = 0
    try:
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            total += len(chunk)
    except socket.timeout:
        pass
    print(json.dumps({"command": "tcp-serve", "received": total}), flush=True)


def tcp_send(addr, port, size):
    conn = socket.create_connection((addr, port), timeout=20)
    block = bytes(range(256)) * 256
    sent = 0
    while sent < size:
        sent += conn.send(block[: min(len(block), size - sent)])
    conn.shutdown(socket.SHUT_WR)
    conn.close()
    print(json.dumps({"command": "tcp-send", "sent": sent}), flush=True)


def pseudo6(src, dst, proto, length):
    return (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
            + struct.pack("!IxxxB", length, proto))


def frag_ping(src, dst, dport, sport):
    """The ping's UDP datagram (20 bytes) in two fragments: 16 bytes at offset 0 (more to come),
    4 bytes at offset 16 (8-octet unit 2)."""
    v6 = ":" in dst
    udp_len = 8 + len(PING)
    header = pseudo6(src, dst, 17, udp_len) if v6 else pseudo(src, dst, socket.IPPROTO_UDP, udp_len)
    csum = checksum(header + struct.pack("!HHHH", sport, dport, udp_len, 0) + PING) or 0xFFFF
    datagram = struct.pack("!HHHH", sport, dport, udp_len, csum) + PING
    parts = [(0, True, datagram[:16]), (2, False, datagram[16:])]
    ident = os.getpid() & 0xFFFF
    if v6:
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        for offset, more, data in parts:
            frag = struct.pack("!BBHI", 17, 0, offset << 3 | int(more), ident)
            ip = struct.pack("!IHBB16s16s", 6 << 28, 8 + len(data), 44, 64,
                             socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst))
            s.sendto(ip + frag + data, (dst, 0, 0, 0))
    else:
        s = raw_socket()
        for offset, more, data in parts:
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(data), ident, int(more) << 13 | offset,
                             64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
            ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
            s.sendto(ip + data, (dst, 0))
    print(json.dumps({"command": "frag-ping", "sent": len(parts)}), flush=True)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "flood-absent":
        flood_absent(float(args[0]), float(args[1]))
    elif cmd == "spoof-ping":
        spoof_ping(args[0], args[1], int(args[2]), int(args[3]))
    elif cmd == "freeze":
        freeze(int(args[0]), args[1], float(args[2]))
    elif cmd == "tcp-serve":
        tcp_serve(args[0], int(args[1]))
    elif cmd == "tcp-send":
        tcp_send(args[0], int(args[1]), int(args[2]))
    elif cmd == "frag-ping":
        frag_ping(args[0], args[1], int(args[2]), int(args[3]))
    else:
        sys.exit(__doc__)
