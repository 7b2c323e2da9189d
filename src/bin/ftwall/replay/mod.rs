//! `ftwall replay`: the engine over pcap / pcapng files.
//!
//! One engine for the whole invocation, files in the order given; capture timestamps are the
//! engine clock, and engine timers run before each record whose timestamp reached them. Each
//! file is streamed through a [`Window`] (read in 1 MiB chunks; memory is bounded by one chunk
//! plus the largest record, itself capped at [`MAX_RECORD`], and the pcapng interface blocks of
//! one section, capped at [`MAX_INTERFACES`]; never by the file size) and parsed
//! with `pcap-file`'s slice parsers, so every error can name the byte offset of the record that
//! failed. A failed file is reported and the others are still processed; the exit code is then 2.
//!
//! Output modes: a table of drops (default), one JSON line per record (`--jsonl`), or one JSON
//! line per flow at the end (`--flows`, see [`flows`]: bounded by `--max-flows`).

mod flows;

use clap::Args;
use flows::FlowTable;
use ftwall::wire::link;
use ftwall::{Decision, Engine, EngineConfig, Event, Proto, Timestamp, Verdict};
use ipnet::IpNet;
use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::{PcapError, TsResolution};
use std::fmt::Write as _;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Options of `ftwall replay`.
#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// Configuration file (TOML); default: built-in defaults.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Inside network (repeatable); replaces the configuration's `lan`.
    #[arg(long, value_name = "CIDR")]
    pub(crate) lan: Vec<IpNet>,
    /// Print one JSON object per record instead of a table of drops.
    #[arg(long)]
    pub(crate) jsonl: bool,
    /// Print one JSON object per flow (first-seen order, at the end) instead of a table of
    /// drops: packets and payload bytes each way, verdict counts, the first drop and the payload
    /// bytes accepted before it.
    #[arg(long, conflicts_with = "jsonl")]
    pub(crate) flows: bool,
    /// Most flows `--flows` tracks; packets of flows first seen beyond it are counted together
    /// in the summary instead.
    #[arg(long, value_name = "N", requires = "flows", default_value_t = flows::DEFAULT_MAX_FLOWS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub(crate) max_flows: usize,
    /// Capture files (pcap or pcapng), processed in order by one engine.
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
}

/// How much of a file is read at a time.
const CHUNK: usize = 1 << 20;
/// Largest record (pcap packet or pcapng block) accepted; a larger one is reported as corrupt
/// instead of being buffered whole.
const MAX_RECORD: usize = 16 << 20;
/// Most pcapng interface description blocks accepted in one section (the parser keeps them
/// all, so memory would otherwise grow with a file of interface blocks alone).
const MAX_INTERFACES: usize = 65_536;
/// The reason replay reports (accepted) for a capture record that is not an IP packet: ARP,
/// LLDP, a truncated frame. Such a record never reaches the engine, so the name is replay's own,
/// not an [`ftwall::Reason`].
const NOT_IP: &str = "not_ip";

/// A sliding window over a file: the parsers see `data()`, consumed bytes are dropped when more
/// is read, and the file offset of `data()`'s first byte is tracked for error messages.
struct Window<R> {
    reader: R,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    start: usize,
    /// File offset of `buf[0]`.
    base: usize,
    /// Bytes read at a time ([`CHUNK`]; tests cut files finer).
    chunk: usize,
}

impl<R: Read> Window<R> {
    fn new(reader: R) -> Self {
        Self::with_chunk(reader, CHUNK)
    }

    fn with_chunk(reader: R, chunk: usize) -> Self {
        Self { reader, buf: Vec::with_capacity(chunk), start: 0, base: 0, chunk }
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// File offset of the first unconsumed byte.
    fn offset(&self) -> usize {
        self.base + self.start
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
    }

    /// Reads more of the file after what is buffered. Ok(false) at the end of the file; an
    /// error when the pending record alone would exceed [`MAX_RECORD`].
    fn fill(&mut self) -> Result<bool, FileError> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.base += self.start;
            self.start = 0;
        }
        if self.buf.len() >= MAX_RECORD {
            return Err(FileError::at(self.base, format!("record larger than {} MiB", MAX_RECORD >> 20)));
        }
        let old = self.buf.len();
        let read = (&mut self.reader)
            .take(self.chunk as u64)
            .read_to_end(&mut self.buf)
            .map_err(|e| FileError::at(self.base + old, format!("cannot read: {e}")))?;
        Ok(read > 0)
    }

    /// Reads until at least `n` bytes are buffered or the file ends.
    fn fill_to(&mut self, n: usize) -> Result<(), FileError> {
        while self.data().len() < n && self.fill()? {}
        Ok(())
    }
}

/// Why a file could not be (fully) replayed.
#[derive(Debug)]
struct FileError {
    offset: usize,
    message: String,
}

impl FileError {
    fn at(offset: usize, message: impl Into<String>) -> Self {
        Self { offset, message: message.into() }
    }

    fn parse(offset: usize, err: &PcapError) -> Self {
        let message = match err {
            PcapError::IncompleteBuffer => "truncated record".to_string(),
            other => format!("corrupt record: {other}"),
        };
        Self::at(offset, message)
    }
}

#[derive(Debug, Default)]
struct Totals {
    files: usize,
    failed_files: usize,
    records: u64,
    clients: u64,
    peers: u64,
}

/// What is printed.
enum Mode {
    /// A table of drops.
    Table,
    /// One JSON line per record.
    Jsonl,
    /// One JSON line per flow, at the end.
    Flows(FlowTable),
}

/// Writes records as JSON lines or as a table of drops, or accounts them per flow.
struct Output<W: Write> {
    out: W,
    mode: Mode,
    table_header_written: bool,
    line: String,
}

impl<W: Write> Output<W> {
    fn record(
        &mut self,
        file_json: &str,
        file: &Path,
        frame: u64,
        decision: Option<&Decision>,
    ) -> io::Result<()> {
        self.line.clear();
        if let Mode::Flows(table) = &mut self.mode {
            table.record(frame, decision);
            return Ok(());
        }
        if matches!(self.mode, Mode::Jsonl) {
            self.json_line(file_json, frame, decision);
        } else if let Some(d) = decision.filter(|d| d.verdict == Verdict::Drop) {
            if !self.table_header_written {
                self.table_header_written = true;
                writeln!(
                    self.out,
                    "{:<28} {:>7}  {:<18} {:<5} {:<45}  destination",
                    "file", "frame", "reason", "proto", "source"
                )?;
            }
            let (proto, src, dst) = addresses(d);
            let name = file.display().to_string();
            let _ = writeln!(
                self.line,
                "{name:<28} {frame:>7}  {:<18} {proto:<5} {src:<45}  {dst}",
                d.reason.as_str()
            );
        }
        self.out.write_all(self.line.as_bytes())
    }

    fn json_line(&mut self, file_json: &str, frame: u64, decision: Option<&Decision>) {
        let l = &mut self.line;
        let _ = write!(l, "{{\"file\":{file_json},\"frame\":{frame},");
        match decision {
            None => {
                let _ = write!(
                    l,
                    "\"verdict\":\"accept\",\"reason\":\"{NOT_IP}\",\"proto\":\"other\",\"src\":null,\"dst\":null,\"payload_len\":0}}"
                );
            }
            Some(d) => {
                let _ =
                    write!(l, "\"verdict\":\"{}\",\"reason\":\"{}\",", d.verdict.as_str(), d.reason.as_str());
                match d.packet {
                    Some(_) => {
                        let (proto, src, dst) = addresses(d);
                        let len = d.packet.map_or(0, |p| p.payload_len);
                        let _ = write!(l, "\"proto\":\"{proto}\",\"src\":\"{src}\",\"dst\":\"{dst}\",\"payload_len\":{len}}}");
                    }
                    None => {
                        let _ =
                            write!(l, "\"proto\":\"other\",\"src\":null,\"dst\":null,\"payload_len\":0}}");
                    }
                }
            }
        }
        l.push('\n');
    }
}

/// Protocol name and printable source / destination of a decision's packet.
fn addresses(d: &Decision) -> (&'static str, String, String) {
    let Some(p) = d.packet else { return (Proto::Other.as_str(), "-".into(), "-".into()) };
    let show = |ip: std::net::IpAddr, port: Option<u16>| match port {
        Some(port) => std::net::SocketAddr::new(ip, port).to_string(),
        None => ip.to_string(),
    };
    (p.proto.as_str(), show(p.src, p.src_port), show(p.dst, p.dst_port))
}

pub(crate) fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    // The whole file is read and checked as the daemon would; replay uses the engine's part.
    let mut config = match &args.config {
        Some(path) => crate::config::load_config(Some(path))?.0.engine,
        None => EngineConfig::default(),
    };
    if !args.lan.is_empty() {
        config.lan = args.lan.clone();
    }
    let mut engine = Engine::new(config);
    let mut output = Output {
        out: BufWriter::with_capacity(1 << 16, io::stdout().lock()),
        mode: if args.flows {
            Mode::Flows(FlowTable::new(args.max_flows))
        } else if args.jsonl {
            Mode::Jsonl
        } else {
            Mode::Table
        },
        table_header_written: false,
        line: String::new(),
    };
    let mut totals = Totals::default();
    let started = Instant::now();
    for path in &args.files {
        totals.files += 1;
        if let Err(err) = replay_file(&mut engine, path, &mut output, &mut totals) {
            totals.failed_files += 1;
            output.out.flush()?;
            eprintln!("ftwall replay: {}: {} at byte offset {}", path.display(), err.message, err.offset);
        }
    }
    let flows = match &output.mode {
        Mode::Flows(table) => {
            table.write(&mut output.out)?;
            Some(table)
        }
        _ => None,
    };
    output.out.flush()?;
    print_summary(&engine, &totals, flows, started.elapsed().as_secs_f64());
    Ok(if totals.failed_files > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

fn replay_file<W: Write>(
    engine: &mut Engine,
    path: &Path,
    output: &mut Output<W>,
    totals: &mut Totals,
) -> Result<(), FileError> {
    if let Mode::Flows(table) = &mut output.mode {
        table.begin_file(path.display().to_string());
    }
    let file = std::fs::File::open(path).map_err(|e| FileError::at(0, format!("cannot read: {e}")))?;
    let mut window = Window::new(file);
    window.fill_to(4)?;
    let file_json = serde_json::to_string(&path.display().to_string()).expect("strings serialise");
    let mut frame = 0u64;
    let mut on_record = |ts_micros: u64, link_type: u32, bytes: &[u8]| -> Result<(), FileError> {
        frame += 1;
        totals.records += 1;
        let now = Timestamp::from_micros(ts_micros);
        engine.drive(now);
        let decision = link::l3_payload(link_type, bytes).ok().map(|l3| engine.handle_packet(now, l3));
        while let Some(event) = engine.poll_event() {
            match event {
                Event::ClientIdentified { .. } => totals.clients += 1,
                Event::PeerIdentified { .. } => totals.peers += 1,
                _ => {}
            }
        }
        // Replay sends nothing: actions (spoofed pongs, probes, state changes) are discarded.
        while engine.poll_action().is_some() {}
        output
            .record(&file_json, path, frame, decision.as_ref())
            .map_err(|e| FileError::at(0, format!("cannot write output: {e}")))
    };
    match window.data().get(..4) {
        Some([0x0A, 0x0D, 0x0D, 0x0A]) => replay_pcapng(&mut window, &mut on_record),
        Some(_) => replay_pcap(&mut window, &mut on_record),
        None => Err(FileError::at(0, "not a pcap or pcapng file (too short)")),
    }
}

/// Runs `parse` over the window until it yields a value, reading more while the buffered bytes
/// end mid-record. `parse` returns the value and how many bytes it used.
fn next_in<R: Read, T>(
    window: &mut Window<R>,
    mut parse: impl FnMut(&[u8]) -> Result<(usize, T), PcapError>,
) -> Result<Option<T>, FileError> {
    loop {
        if window.data().is_empty() && !window.fill()? {
            return Ok(None);
        }
        match parse(window.data()) {
            Ok((used, value)) => {
                window.consume(used);
                return Ok(Some(value));
            }
            Err(PcapError::IncompleteBuffer) => {
                if !window.fill()? {
                    return Err(FileError::parse(window.offset(), &PcapError::IncompleteBuffer));
                }
            }
            Err(e) => return Err(FileError::parse(window.offset(), &e)),
        }
    }
}

/// Parses and handles records until the file ends. `record` gets the window's bytes and the
/// file offset of their first byte, parses one record and handles it while it is still in the
/// window (no copy), returning the bytes used and the handling's outcome; the first error of
/// either kind ends the file.
fn each_in<R: Read>(
    window: &mut Window<R>,
    mut record: impl FnMut(&[u8], usize) -> Result<(usize, Result<(), FileError>), PcapError>,
) -> Result<(), FileError> {
    loop {
        let offset = window.offset();
        match next_in(window, |data| record(data, offset))? {
            Some(handled) => handled?,
            None => return Ok(()),
        }
    }
}

type OnRecord<'a> = dyn FnMut(u64, u32, &[u8]) -> Result<(), FileError> + 'a;

fn replay_pcap<R: Read>(window: &mut Window<R>, on_record: &mut OnRecord<'_>) -> Result<(), FileError> {
    let parser = next_in(window, |data| PcapParser::new(data).map(|(rest, p)| (data.len() - rest.len(), p)))?
        .ok_or_else(|| FileError::parse(0, &PcapError::IncompleteBuffer))?;
    let link_type = u32::from(parser.header().datalink);
    if !link::is_supported_link_type(link_type) {
        return Err(FileError::at(20, format!("unsupported link type {link_type}")));
    }
    let nanosecond = parser.header().ts_resolution == TsResolution::NanoSecond;
    // Raw records, like libpcap: a fraction >= 1 s or orig_len < incl_len is tolerated.
    each_in(window, |data, _| {
        let (rest, packet) = parser.next_raw_packet(data)?;
        let frac_micros =
            if nanosecond { u64::from(packet.ts_frac) / 1000 } else { u64::from(packet.ts_frac) };
        let micros = u64::from(packet.ts_sec) * 1_000_000 + frac_micros;
        Ok((data.len() - rest.len(), on_record(micros, link_type, &packet.data)))
    })
}

/// Converts a pcapng timestamp (in units of the interface's `if_tsresol`, default 10^-6 s) to
/// microseconds. pcap-file hands the raw 64-bit count over as if it were nanoseconds.
fn pcapng_micros(raw: u128, tsresol: Option<u8>) -> u64 {
    let micros = match tsresol.unwrap_or(6) {
        r if r & 0x80 != 0 => {
            let shift = u32::from(r & 0x7F);
            if shift >= 64 {
                0
            } else {
                (raw.saturating_mul(1_000_000)) >> shift
            }
        }
        r => {
            let r = u32::from(r);
            if r >= 6 {
                raw / 10u128.pow((r - 6).min(30))
            } else {
                raw.saturating_mul(10u128.pow(6 - r))
            }
        }
    };
    u64::try_from(micros).unwrap_or(u64::MAX)
}

fn replay_pcapng<R: Read>(window: &mut Window<R>, on_record: &mut OnRecord<'_>) -> Result<(), FileError> {
    let mut parser =
        next_in(window, |data| PcapNgParser::new(data).map(|(rest, p)| (data.len() - rest.len(), p)))?
            .ok_or_else(|| FileError::parse(0, &PcapError::IncompleteBuffer))?;
    each_in(window, |data, offset| {
        let (rest, block) = parser.next_block(data)?;
        // The parser keeps every interface block of the section: bound them.
        if parser.interfaces().len() > MAX_INTERFACES {
            let message = format!("more than {MAX_INTERFACES} interface blocks in one section");
            return Ok((data.len() - rest.len(), Err(FileError::at(offset, message))));
        }
        Ok((data.len() - rest.len(), pcapng_record(&parser, &block, offset, on_record)))
    })
}

/// Hands one pcapng block to `on_record` if it is a packet.
fn pcapng_record(
    parser: &PcapNgParser,
    block: &Block<'_>,
    offset: usize,
    on_record: &mut OnRecord<'_>,
) -> Result<(), FileError> {
    let (interface_id, raw_ts, bytes) = match block {
        Block::EnhancedPacket(p) => (p.interface_id, p.timestamp.as_nanos(), &p.data),
        // Simple packet blocks carry no timestamp and always belong to interface 0.
        Block::SimplePacket(p) => (0, 0, &p.data),
        Block::Packet(p) => (u32::from(p.interface_id), u128::from(p.timestamp), &p.data),
        _ => return Ok(()),
    };
    let Some(interface) = parser.interfaces().get(interface_id as usize) else {
        return Err(FileError::at(offset, format!("packet refers to undeclared interface {interface_id}")));
    };
    let link_type = u32::from(interface.linktype);
    if !link::is_supported_link_type(link_type) {
        return Err(FileError::at(
            offset,
            format!("unsupported link type {link_type} (interface {interface_id})"),
        ));
    }
    let tsresol = interface.options.iter().find_map(|o| match o {
        InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
        _ => None,
    });
    on_record(pcapng_micros(raw_ts, tsresol), link_type, bytes)
}

fn print_summary(engine: &Engine, totals: &Totals, flows: Option<&FlowTable>, seconds: f64) {
    let stats = engine.stats();
    let rate = if seconds > 0.0 { totals.records as f64 / seconds } else { 0.0 };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "ftwall replay: {} file(s), {} record(s), {} packet(s) judged in {seconds:.3} s ({rate:.0} records/s)",
        totals.files, totals.records, stats.packets
    );
    let _ = writeln!(s, "  drops: {}", stats.dropped);
    for (reason, n) in stats.by_reason() {
        if n > 0 && reason.natural_verdict() == Verdict::Drop {
            let _ = writeln!(s, "    {:<18} {n}", reason.as_str());
        }
    }
    let _ = writeln!(s, "  accepted: {}", stats.accepted);
    for (reason, n) in stats.by_reason() {
        if n > 0 && reason.natural_verdict() == Verdict::Accept {
            let _ = writeln!(s, "    {:<18} {n}", reason.as_str());
        }
    }
    let non_ip = totals.records - stats.packets;
    if non_ip > 0 {
        let _ = writeln!(s, "    {NOT_IP:<18} {non_ip}");
    }
    let _ = writeln!(s, "  clients identified: {}, peers identified: {}", totals.clients, totals.peers);
    if let Some(table) = flows {
        table.summary(&mut s);
    }
    if totals.failed_files > 0 {
        let _ = writeln!(s, "  failed files: {}", totals.failed_files);
    }
    eprint!("{s}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (timestamp, link type, bytes) of every record of a capture read through `reader`.
    fn records(reader: impl Read, chunk: usize) -> Result<Vec<(u64, u32, Vec<u8>)>, String> {
        let mut window = Window::with_chunk(reader, chunk);
        window.fill_to(4).map_err(|e| e.message)?;
        let mut out = Vec::new();
        let mut on_record = |ts: u64, link: u32, bytes: &[u8]| {
            out.push((ts, link, bytes.to_vec()));
            Ok(())
        };
        let pcapng = window.data().starts_with(&[0x0A, 0x0D, 0x0D, 0x0A]);
        let result = if pcapng {
            replay_pcapng(&mut window, &mut on_record)
        } else {
            replay_pcap(&mut window, &mut on_record)
        };
        result.map_err(|e| format!("{} at {}", e.message, e.offset))?;
        Ok(out)
    }

    #[test]
    fn streaming_gives_the_same_records_however_the_file_is_cut() {
        for name in ["startup.pcap", "http_split.pcapng", "decoys.pcapng"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
            let bytes = std::fs::read(path).unwrap();
            let whole = records(&bytes[..], CHUNK).unwrap();
            assert!(!whole.is_empty(), "{name}");
            for chunk in [1, 7, 100, 4096] {
                assert_eq!(records(&bytes[..], chunk).unwrap(), whole, "{name}, {chunk}-byte reads");
            }
            // A cut inside the last record is named at that record's offset.
            let cut = &bytes[..bytes.len() - 3];
            let err = records(cut, 5).unwrap_err();
            assert!(err.starts_with("truncated record at "), "{err}");
        }
    }

    /// A pcapng section header block, then `interfaces` interface description blocks
    /// (Ethernet, snaplen 65535, no options).
    fn pcapng_section(interfaces: usize) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(28 + interfaces * 20);
        bytes.extend_from_slice(&0x0A0D_0D0Au32.to_le_bytes());
        bytes.extend_from_slice(&28u32.to_le_bytes());
        bytes.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
        bytes.extend_from_slice(&[1, 0, 0, 0]);
        bytes.extend_from_slice(&(-1i64).to_le_bytes());
        bytes.extend_from_slice(&28u32.to_le_bytes());
        for _ in 0..interfaces {
            bytes.extend_from_slice(&1u32.to_le_bytes());
            bytes.extend_from_slice(&20u32.to_le_bytes());
            bytes.extend_from_slice(&1u16.to_le_bytes());
            bytes.extend_from_slice(&0u16.to_le_bytes());
            bytes.extend_from_slice(&65_535u32.to_le_bytes());
            bytes.extend_from_slice(&20u32.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn interface_blocks_are_capped_per_section() {
        // As many as allowed, in each of two sections: fine.
        let mut two_sections = pcapng_section(MAX_INTERFACES);
        two_sections.extend(pcapng_section(MAX_INTERFACES));
        assert_eq!(records(&two_sections[..], CHUNK).unwrap(), vec![]);
        // One more in a section: refused at that block, not kept.
        let bytes = pcapng_section(MAX_INTERFACES + 1);
        let err = records(&bytes[..], CHUNK).unwrap_err();
        assert_eq!(
            err,
            format!("more than 65536 interface blocks in one section at {}", 28 + MAX_INTERFACES * 20)
        );
    }

    #[test]
    fn an_oversized_record_is_refused_not_buffered() {
        // A pcap header, then a record header claiming 4 GiB of data, then a lot of bytes.
        let mut bytes =
            vec![0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 1, 0, 0, 0];
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        let endless = bytes.as_slice().chain(io::repeat(0));
        let err = records(endless, CHUNK).unwrap_err();
        assert_eq!(err, format!("record larger than 16 MiB at 24"));
    }

    #[test]
    fn pcapng_timestamp_resolutions() {
        assert_eq!(pcapng_micros(1_500_000, None), 1_500_000);
        assert_eq!(pcapng_micros(1_500_000_000, Some(9)), 1_500_000);
        assert_eq!(pcapng_micros(15, Some(1)), 1_500_000);
        assert_eq!(pcapng_micros(3 << 20, Some(0x80 | 20)), 3_000_000);
    }
}
