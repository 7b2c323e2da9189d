//! # ftwall: a FastTrack verdict engine
//!
//! This library is the sans-IO core of the `ftwall` daemon: it performs no network or file IO
//! and reads no clock. The `ftwall` binary (the live NFQUEUE loop and the offline `replay`
//! driver) feeds it packets and drains its outputs, so both see exactly the same decisions.
//!
//! ## Layout
//! - [`wire`]: checked IPv4/IPv6/TCP/UDP views of the L3 buffers NFQUEUE delivers.
//! - [`signatures`]: one pure function per FastTrack tell (UDP discovery, TCP opener, HTTP, GIVE).
//! - [`engine`]: the stateful verdict engine (flows, suspect peers, client time-locks) with the
//!   `handle_*` / `poll_*` interface.
//! - [`capture`]: link-layer decoding of capture records (pcap link types) down to L3.
//! - [`config`]: the TOML configuration.
//! - [`verdict`]: verdicts and reason codes.
//! - [`time`]: the engine's notion of time.

#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod capture;
pub mod config;
pub mod engine;
pub mod signatures;
pub mod time;
pub mod verdict;
pub mod wire;

pub use config::Config;
pub use engine::{Action, Engine, Event};
pub use time::Timestamp;
pub use verdict::{Decision, PacketSummary, Proto, Reason, Verdict};
