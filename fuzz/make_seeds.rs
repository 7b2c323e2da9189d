//! Writes seed corpora for the fuzz targets from the committed fixtures:
//! `cargo run --manifest-path fuzz/Cargo.toml --bin make_seeds` (from the project root), which
//! fills `fuzz/corpus/<target>/`.

use ftwall::engine::{BanEntry, LockEntry, PeerEntry, Snapshot, Strength};
use ftwall::wire::link;
use ftwall::{state, Timestamp};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use std::fs;
use std::path::Path;

/// Every L3 packet of every fixture, by file.
fn fixture_packets(dir: &Path) -> Vec<Vec<Vec<u8>>> {
    let mut files: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let mut packets = Vec::new();
        match path.extension().and_then(|e| e.to_str()) {
            Some("pcap") => {
                let mut r = PcapReader::new(fs::File::open(&path).unwrap()).unwrap();
                let link = u32::from(r.header().datalink);
                while let Some(Ok(p)) = r.next_packet() {
                    if let Ok(l3) = link::l3_payload(link, &p.data) {
                        packets.push(l3.to_vec());
                    }
                }
            }
            Some("pcapng") => {
                let mut r = PcapNgReader::new(fs::File::open(&path).unwrap()).unwrap();
                while let Some(Ok(block)) = r.next_block() {
                    if let Block::EnhancedPacket(p) = block {
                        if let Ok(l3) = link::l3_payload(1, &p.data) {
                            packets.push(l3.to_vec());
                        }
                    }
                }
            }
            _ => continue,
        }
        out.push(packets);
    }
    out
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let corpus = root.join("fuzz/corpus");
    for t in ["parse_packet", "engine_sequence", "state_file", "config_file"] {
        fs::create_dir_all(corpus.join(t)).unwrap();
    }
    let files = fixture_packets(&root.join("tests/fixtures"));
    let mut n = 0;
    for (f, packets) in files.iter().enumerate() {
        let mut sequence = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            fs::write(corpus.join(format!("parse_packet/f{f}-{i}")), p).unwrap();
            n += 1;
            if p.len() <= 255 {
                sequence.extend_from_slice(&[0, 10, p.len() as u8]);
                sequence.extend_from_slice(p);
            }
        }
        fs::write(corpus.join(format!("engine_sequence/f{f}")), &sequence).unwrap();
    }
    let snapshot = Snapshot {
        peers: vec![
            PeerEntry::new("198.51.100.20".parse().unwrap(), Some(1214), None, Strength::Strong),
            PeerEntry {
                client: Some("192.0.2.10".parse().unwrap()),
                ..PeerEntry::new("198.51.100.21".parse().unwrap(), Some(1214), None, Strength::Weak)
            },
        ],
        locks: vec![LockEntry::new(
            "192.0.2.10".parse().unwrap(),
            Timestamp::from_secs(99),
            Some(3531),
            Some("198.51.100.20:1214".parse().unwrap()),
        )],
    bans: vec![BanEntry::new("198.51.100.0/24".parse().unwrap(), None, None)],
    };
    fs::write(corpus.join("state_file/seed"), state::encode(&snapshot, Timestamp::from_secs(1))).unwrap();
    fs::copy(root.join("examples/ftwall.toml"), corpus.join("config_file/example.toml")).unwrap();
    println!(
        "wrote {n} packet seeds, {} sequences, state and config seeds to {}",
        files.len(),
        corpus.display()
    );
}
