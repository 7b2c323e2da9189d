//! `ftwall replay` as a command: output format, non-IP records, and per-file error handling.

use ftwall::wire::link::{LinkRepr, ETHERTYPE_ARP};
use ftwall::wire::{self, IpRepr, TransportRepr, UdpRepr};
use std::path::Path;
use std::process::{Command, Output};

fn replay(args: &[&str], files: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ftwall")).arg("replay").args(args).args(files).output().unwrap()
}

/// A classic little-endian microsecond pcap header for `link_type`.
fn pcap_header(link_type: u32) -> Vec<u8> {
    let mut h = vec![0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0];
    h.extend_from_slice(&link_type.to_le_bytes());
    h
}

fn pcap_record(data: &[u8]) -> Vec<u8> {
    let mut r = vec![0x10, 0, 0, 0, 0x20, 0, 0, 0];
    r.extend_from_slice(&(data.len() as u32).to_le_bytes());
    r.extend_from_slice(&(data.len() as u32).to_le_bytes());
    r.extend_from_slice(data);
    r
}

const MAC1: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const MAC2: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

/// An Ethernet frame with a FastTrack ping from 192.0.2.10:3531 to 198.51.100.20:1214.
fn ping_frame() -> Vec<u8> {
    ping_frame_to("198.51.100.20")
}

/// The same ping to another peer.
fn ping_frame_to(peer: &str) -> Vec<u8> {
    const PING: [u8; 12] = [0x27, 0, 0, 0, 0x29, 0x80, b'K', b'a', b'Z', b'a', b'A', 0];
    let ip = IpRepr::new("192.0.2.10".parse().unwrap(), peer.parse().unwrap()).unwrap();
    let udp = TransportRepr::Udp(UdpRepr { src_port: 3531, dst_port: 1214 });
    LinkRepr::Ethernet { dst: MAC1, src: MAC2, vlan: None }.emit_ip(&wire::emit(&ip, &udp, &PING))
}

fn arp_frame() -> Vec<u8> {
    // An ARP request (hardware Ethernet, protocol IPv4, opcode 1), addresses zero.
    let arp = [0, 1, 8, 0, 6, 4, 0, 1];
    LinkRepr::Ethernet { dst: [0xFF; 6], src: MAC2, vlan: None }.emit(ETHERTYPE_ARP, &arp)
}

#[test]
fn jsonl_has_exact_keys_in_order_and_non_ip_records() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mixed.pcap");
    let mut bytes = pcap_header(1);
    bytes.extend(pcap_record(&ping_frame()));
    bytes.extend(pcap_record(&arp_frame()));
    std::fs::write(&file, bytes).unwrap();
    let out = replay(&["--jsonl", "--lan", "192.0.2.0/24"], &[&file]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    let name = serde_json::to_string(&file.display().to_string()).unwrap();
    assert_eq!(
        lines,
        vec![
            format!("{{\"file\":{name},\"frame\":1,\"verdict\":\"drop\",\"reason\":\"udp_ping\",\"proto\":\"udp\",\"src\":\"192.0.2.10:3531\",\"dst\":\"198.51.100.20:1214\",\"payload_len\":12}}"),
            format!("{{\"file\":{name},\"frame\":2,\"verdict\":\"accept\",\"reason\":\"not_ip\",\"proto\":\"other\",\"src\":null,\"dst\":null,\"payload_len\":0}}"),
        ]
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("udp_ping") && stderr.contains("2 record(s)"), "summary: {stderr}");
    assert!(stderr.contains("    not_ip             1\n"), "summary counts the non-IP record: {stderr}");
}

#[test]
fn table_output_lists_drops() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ping.pcap");
    let mut bytes = pcap_header(1);
    bytes.extend(pcap_record(&ping_frame()));
    std::fs::write(&file, bytes).unwrap();
    let out = replay(&["--lan", "192.0.2.0/24"], &[&file]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("udp_ping")
            && stdout.contains("192.0.2.10:3531")
            && stdout.contains("198.51.100.20:1214"),
        "{stdout}"
    );
}

#[test]
fn bad_files_are_named_with_offsets_and_others_still_processed() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.pcap");
    let truncated = dir.path().join("truncated.pcap");
    let unknown = dir.path().join("unknown.pcap");
    let garbage = dir.path().join("garbage.pcap");
    let mut bytes = pcap_header(1);
    bytes.extend(pcap_record(&ping_frame()));
    std::fs::write(&good, &bytes).unwrap();
    let mut cut = bytes.clone();
    cut.extend(pcap_record(&ping_frame()));
    cut.truncate(bytes.len() + 30);
    std::fs::write(&truncated, &cut).unwrap();
    std::fs::write(&unknown, pcap_header(147)).unwrap();
    std::fs::write(&garbage, b"this is not a capture file at all").unwrap();

    let out = replay(&["--jsonl", "--lan", "192.0.2.0/24"], &[&truncated, &unknown, &garbage, &good]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let truncated_offset = bytes.len();
    assert!(
        stderr.contains(&format!("truncated.pcap: truncated record at byte offset {truncated_offset}")),
        "{stderr}"
    );
    assert!(stderr.contains("unknown.pcap: unsupported link type 147 at byte offset 20"), "{stderr}");
    assert!(stderr.contains("garbage.pcap:"), "{stderr}");
    // The truncated file's complete record and the good file are still replayed.
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().filter(|l| l.contains("\"udp_ping\"")).count(), 2, "{stdout}");
    assert!(stdout.contains("good.pcap"));

    let missing = dir.path().join("missing.pcap");
    let out = replay(&[], &[&missing]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.pcap: cannot read"));
}

#[test]
fn a_bad_configuration_gives_the_same_message_to_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("empty.pcap");
    std::fs::write(&capture, pcap_header(1)).unwrap();
    for (text, expected) in [
        (
            "mode = \"monitor\"\n[timelock]\nsecs = 3\n",
            ":3:1: unknown field `secs`, expected one of `seconds`",
        ),
        ("queue_max_len = 5\n", ":1:1: unknown field `queue_max_len`, expected one of `mode`"),
        ("[peers]\ncapacity = \"many\"\n", ":2:12: invalid type: string \"many\", expected usize"),
        ("[flows]\ncapacity = 0\n", ": invalid value for `flows.capacity`: must be between 1 and 4194304"),
        (
            "[flows]\ncapacity = 1000000000\n",
            ": invalid value for `flows.capacity`: must be between 1 and 4194304",
        ),
    ] {
        let file = dir.path().join("ftwall.toml");
        std::fs::write(&file, text).unwrap();
        let f = file.to_str().unwrap();
        let want = format!("ftwall: error: {f}{expected}");
        for args in [
            vec!["check-config", f],
            vec!["config", "--config", f],
            vec!["replay", "--config", f, capture.to_str().unwrap()],
            vec!["ctl", "--config", f, "status"],
            vec!["run", "--config", f],
        ] {
            let out = Command::new(env!("CARGO_BIN_EXE_ftwall")).args(&args).output().unwrap();
            assert!(!out.status.success(), "{args:?} accepted {text:?}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().last().unwrap_or_default();
            assert!(last.starts_with(&want), "{args:?}: {last:?}, want {want:?}");
        }
    }
}

#[test]
fn flows_prints_one_line_per_flow_and_counts_what_it_could_not_track() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flows.pcap");
    let mut bytes = pcap_header(1);
    for frame in [ping_frame(), arp_frame(), ping_frame_to("198.51.100.21"), ping_frame()] {
        bytes.extend(pcap_record(&frame));
    }
    std::fs::write(&file, bytes).unwrap();
    let name = serde_json::to_string(&file.display().to_string()).unwrap();
    let flow = |peer: &str, packets: u32, frame: u32| {
        format!(
            "{{\"proto\":\"udp\",\"inside\":\"192.0.2.10:3531\",\"outside\":\"{peer}:1214\",\"packets_out\":{packets},\"packets_in\":0,\"bytes_out\":{},\"bytes_in\":0,\"accepted\":0,\"dropped\":{packets},\"first_drop\":{{\"file\":{name},\"frame\":{frame},\"reason\":\"udp_ping\",\"leaked_out\":0,\"leaked_in\":0}}}}",
            12 * packets
        )
    };

    let out = replay(&["--flows", "--lan", "192.0.2.0/24"], &[&file]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [flow("198.51.100.20", 2, 1), flow("198.51.100.21", 1, 3)]
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("  flows: 2 (2 with a drop)\n"), "{stderr}");
    assert!(stderr.contains("  leaked before the first drop: 0 payload byte(s) out, 0 in\n"), "{stderr}");
    assert!(stderr.contains("    not_ip             1\n"), "{stderr}");

    let out = replay(&["--flows", "--max-flows", "1", "--lan", "192.0.2.0/24"], &[&file]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{}\n", flow("198.51.100.20", 2, 1)));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "  flows not tracked (table full at 1 flows, --max-flows): 1 packet(s), 0 accepted, 1 dropped, 12 payload byte(s)\n"
        ),
        "{stderr}"
    );

    // One output mode at a time; the cap belongs to --flows.
    for args in [&["--flows", "--jsonl"][..], &["--max-flows", "5"], &["--flows", "--max-flows", "0"]] {
        let out = replay(args, &[&file]);
        assert_eq!(out.status.code(), Some(2), "{args:?} accepted");
        assert!(out.stdout.is_empty());
    }
}
