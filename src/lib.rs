//! # ftwall: a FastTrack verdict engine
//!
//! This library is the sans-IO core of the `ftwall` daemon: it performs no network or file IO
//! and reads no clock. The `ftwall` binary (the live NFQUEUE loop and the offline `replay`
//! driver) feeds it packets and drains its outputs, so both see exactly the same decisions.
//!
//! ## Layout
//! - [`wire`]: one file per header: checked IPv4/IPv6/TCP/UDP views of the L3 buffers NFQUEUE
//!   delivers (`parse`), the same headers written with their checksums (`emit`), and
//!   [`wire::link`], link-layer decoding of capture records (pcap link types) down to L3.
//! - [`signatures`]: one pure function per FastTrack tell (UDP discovery, TCP opener, HTTP, GIVE).
//! - [`engine`]: the stateful verdict engine (flows, suspect peers, client time-locks) with the
//!   `handle_*` / `poll_*` interface.
//! - [`config`]: the engine's part of the TOML configuration (the daemon owns the rest).
//! - [`state`]: the state-file format (suspect peers and locks across restarts).
//! - [`verdict`]: verdicts and reason codes.
//! - [`time`]: the engine's notion of time.
//!
//! ## Example
//!
//! A client pings a supernode; the engine drops the ping, locks the client and asks the shell to
//! answer with a forged pong:
//!
//! ```
//! use ftwall::{Action, EngineConfig, Engine, Reason, Timestamp, Verdict};
//!
//! let config = EngineConfig { lan: vec!["192.0.2.0/24".parse().unwrap()], ..EngineConfig::default() };
//! let mut engine = Engine::new(config);
//! let ping: [u8; 40] = [
//!     0x45, 0, 0, 40, 0, 1, 0, 0, 64, 17, 0, 0, 192, 0, 2, 10, 198, 51, 100, 20, // IPv4
//!     0x0D, 0xCB, 0x04, 0xBE, 0, 20, 0, 0, // UDP 3531 -> 1214
//!     0x27, 0, 0, 0, 0x29, 0x80, b'K', b'a', b'Z', b'a', b'A', 0, // FastTrack ping
//! ];
//! let decision = engine.handle_packet(Timestamp::from_secs(1_000), &ping);
//! assert_eq!((decision.verdict, decision.reason), (Verdict::Drop, Reason::UdpPing));
//! assert_eq!(engine.locked_count(), 1);
//! assert!(std::iter::from_fn(|| engine.poll_action())
//!     .any(|a| matches!(a, Action::SendSpoofedPong { .. })));
//! // Half-way through the 120 s lock the engine asks for a probe of the client.
//! assert_eq!(engine.poll_timeout(), Some(Timestamp::from_secs(1_060)));
//! ```

#![forbid(unsafe_code)]
// Sans-IO, checked: clippy.toml lists the clock, file, socket, process and thread calls the core
// must not make (Cargo.toml's [lints] sets `missing_docs` and `unreachable_pub`).
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::dbg_macro)]

pub mod config;
pub mod engine;
pub mod signatures;
pub mod state;
pub mod time;
pub mod verdict;
pub mod wire;

pub use config::EngineConfig;
pub use engine::{Action, Engine, Event};
pub use time::Timestamp;
pub use verdict::{Decision, FlowEnds, PacketSummary, Proto, Reason, Settled, Verdict};
