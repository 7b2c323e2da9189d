//! The engine over a capture file: the `ftwall` library's whole API on one page. Every IP
//! packet goes to [`Engine::handle_packet`] with the capture's own clock, timers run when
//! [`Engine::poll_timeout`] says they are due, and what the engine wants logged
//! ([`Engine::poll_event`]) or done ([`Engine::poll_action`]) is drained after each packet. The
//! `ftwall` daemon and `ftwall replay` are this loop with real IO around it.
//!
//! ```sh
//! cargo run --example replay_pcap -- tests/fixtures/startup.pcap 192.0.2.0/24
//! ```
//!
//! Prints one `frame verdict reason` line per IP packet, and the engine's events on stderr. Its
//! test replays the golden captures in `tests/fixtures/` (`cargo test --example replay_pcap`).

use ftwall::wire::link;
use ftwall::{Engine, EngineConfig, Reason, Timestamp, Verdict};
use pcap_file::pcap::PcapReader;
use std::error::Error;

/// The frame number, verdict and reason of every IP packet.
type Verdicts = Vec<(u64, Verdict, Reason)>;

/// Runs a fresh engine over a (classic) pcap file.
fn replay(pcap: impl std::io::Read, config: EngineConfig) -> Result<Verdicts, Box<dyn Error>> {
    let mut reader = PcapReader::new(pcap)?;
    let link_type = u32::from(reader.header().datalink);
    let mut engine = Engine::new(config);
    let mut verdicts = Vec::new();
    let mut frame = 0;
    while let Some(record) = reader.next_packet() {
        let record = record?;
        frame += 1;
        let now = Timestamp::from_micros(u64::try_from(record.timestamp.as_micros())?);
        if engine.poll_timeout().is_some_and(|due| due <= now) {
            engine.handle_timeout(now); // lock expiries, half-way probes
        }
        let Ok(packet) = link::l3_payload(link_type, &record.data) else { continue };
        let decision = engine.handle_packet(now, packet);
        verdicts.push((frame, decision.verdict, decision.reason));
        while let Some(event) = engine.poll_event() {
            eprintln!("frame {frame}: {event:?}"); // a daemon logs these
        }
        while engine.poll_action().is_some() {} // a daemon forges pongs, saves state, ...
    }
    Ok(verdicts)
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let file = args.next().ok_or("usage: replay_pcap FILE.pcap [LAN_NETWORK...]")?;
    let lan = args.map(|net| net.parse()).collect::<Result<_, _>>()?;
    for (frame, verdict, reason) in
        replay(std::fs::File::open(file)?, EngineConfig { lan, ..EngineConfig::default() })?
    {
        println!("{frame} {} {}", verdict.as_str(), reason.as_str());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The example gives every frame of the golden captures the verdict their generator wrote
    /// down (`tests/fixtures/gen_fixtures.rs`), as `ftwall replay` does in `tests/golden.rs`.
    #[test]
    fn replays_the_golden_captures_to_their_expected_verdicts() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let lan = vec!["192.0.2.0/24".parse().unwrap(), "2001:db8:1::/64".parse().unwrap()];
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "pcap") {
                continue;
            }
            files += 1;
            let got = replay(
                std::fs::File::open(&path).unwrap(),
                EngineConfig { lan: lan.clone(), ..EngineConfig::default() },
            )
            .unwrap();
            let expected: Vec<(u64, String, String)> =
                std::fs::read_to_string(path.with_extension("expected.jsonl"))
                    .unwrap()
                    .lines()
                    .map(|line| {
                        let v: serde_json::Value = serde_json::from_str(line).unwrap();
                        let text = |key: &str| v[key].as_str().unwrap().to_string();
                        (v["frame"].as_u64().unwrap(), text("verdict"), text("reason"))
                    })
                    .collect();
            let got: Vec<(u64, String, String)> =
                got.into_iter().map(|(f, v, r)| (f, v.as_str().into(), r.as_str().into())).collect();
            assert_eq!(got, expected, "{}", path.display());
        }
        assert!(files >= 5, "the classic pcap fixtures: {files}");
    }
}
