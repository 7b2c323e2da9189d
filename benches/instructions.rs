//! Instructions per packet of the engine on the same mixed workload as `benches/engine.rs`,
//! for machines too loaded for wall-clock figures. Run under callgrind, which counts only
//! `replay` (the packets through `Engine::handle_packet`, events and actions drained), not the
//! workload's construction nor the engine's creation:
//!
//! ```sh
//! cargo build --release --example instructions
//! valgrind --tool=callgrind --toggle-collect='*instructions*replay*' \
//!     --callgrind-out-file=/tmp/cg.out target/release/examples/instructions 3
//! ```
//!
//! The example prints the packet count; instructions per packet are callgrind's `Collected`
//! total divided by it (`benches/README.md`). Without valgrind it prints the wall-clock rate.

#[path = "workload.rs"]
mod workload;

use ftwall::{Engine, EngineConfig, Timestamp};
use std::hint::black_box;

/// One pass of the workload through a fresh engine, as one criterion iteration does.
#[inline(never)]
fn replay(engine: &mut Engine, packets: &[Vec<u8>]) {
    for (i, p) in packets.iter().enumerate() {
        black_box(engine.handle_packet(Timestamp::from_micros(i as u64), p));
        while engine.poll_event().is_some() {}
        while engine.poll_action().is_some() {}
    }
}

fn main() {
    let passes: u64 = std::env::args().nth(1).map_or(3, |n| n.parse().expect("passes: a number"));
    let packets = workload::workload();
    let start = std::time::Instant::now();
    for _ in 0..passes {
        let mut engine = Engine::new(EngineConfig::default());
        replay(&mut engine, &packets);
    }
    let elapsed = start.elapsed();
    let total = passes * packets.len() as u64;
    println!("packets: {total} ({passes} passes of {})", packets.len());
    println!(
        "wall clock (engine creation included): {:.2} M packets/s",
        total as f64 / elapsed.as_secs_f64() / 1e6
    );
}
