//! Engine throughput on a mixed workload: ordinary TCP (handshakes, HTTP requests, bulk data
//! segments), DNS-like UDP, and FastTrack pings, pongs and openers, over many flows.
//!
//! Run with `cargo bench --bench engine`; criterion prints packets/s ("elem/s").

#[path = "workload.rs"]
mod workload;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ftwall::{Engine, EngineConfig, Timestamp};
use std::hint::black_box;

fn bench_engine(c: &mut Criterion) {
    let packets = workload::workload();
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(packets.len() as u64));
    group.sample_size(20);
    group.bench_function("mixed_workload", |b| {
        b.iter_batched_ref(
            || Engine::new(EngineConfig::default()),
            |engine| {
                for (i, p) in packets.iter().enumerate() {
                    black_box(engine.handle_packet(Timestamp::from_micros(i as u64), p));
                    while engine.poll_event().is_some() {}
                    while engine.poll_action().is_some() {}
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_engine);
criterion_main!(benches);
