//! The FastTrack simulator as a stand-alone program (the same code as `ftwall sim`), built by
//! `cargo test` for the end-to-end tests. See `src/bin/ftwall/sim.rs`.

use clap::Parser;

#[path = "../src/bin/ftwall/sim.rs"]
mod sim;

#[derive(Parser)]
#[command(about = "FastTrack client simulator and responder for testing ftwall deployments")]
struct Cli {
    #[command(flatten)]
    sim: sim::SimArgs,
}

fn main() -> std::io::Result<()> {
    sim::run(Cli::parse().sim)
}
