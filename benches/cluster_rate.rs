//! The event rate one Redis sustains with the cluster schema of docs/cluster.md, with N
//! simulated gateways: each is a publisher (pipelines of `SET PREFIX:lock:ADDR RECORD PX ms` +
//! `PUBLISH PREFIX:events MESSAGE`, the daemon's own round trip, as fast as Redis answers) and a
//! subscriber (counts every message and its propagation time, `sent_us` to receipt). Prints,
//! per run, the changes published per second, the messages delivered per second (each change
//! goes to N subscribers) and the propagation time p50/p99 under that load.
//!
//! `cargo run --release --example cluster_rate -- redis://127.0.0.1:6379 N SECONDS [PREFIX]`
//! (`benches/cluster.sh` starts a Redis in a namespace of its own and runs N = 2, 8, 32).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BATCH: usize = 64;

fn wall_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64
}

fn main() -> redis::RedisResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).map_or("redis://127.0.0.1:6379", String::as_str).to_string();
    let gateways: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2);
    let seconds: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(5);
    // A daemon's prefix to load it with the changes (its subscriber merges every one).
    let prefix = args.get(4).cloned().unwrap_or_else(|| format!("bench{}", std::process::id()));
    let channel = format!("{prefix}:events");
    let client = redis::Client::open(url.as_str())?;
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(AtomicU64::new(0));
    let lags = Arc::new(Mutex::new(Vec::<u64>::new()));
    let mut threads = Vec::new();
    let ready = Arc::new(AtomicU64::new(0));
    for _ in 0..gateways {
        let mut con = client.get_connection_with_timeout(Duration::from_secs(2))?;
        let (stop, delivered, lags, ready, channel) =
            (stop.clone(), delivered.clone(), lags.clone(), ready.clone(), channel.clone());
        threads.push(std::thread::spawn(move || {
            let mut pubsub = con.as_pubsub();
            pubsub.subscribe(&channel).expect("subscribe");
            pubsub.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
            ready.fetch_add(1, Ordering::Relaxed);
            let mut mine = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match pubsub.get_message() {
                    Ok(msg) => {
                        let payload = msg.get_payload_bytes();
                        let value: serde_json::Value = serde_json::from_slice(payload).unwrap_or_default();
                        if let Some(sent) = value["sent_us"].as_u64() {
                            mine.push(wall_us().saturating_sub(sent));
                        }
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if e.is_timeout() => {}
                    Err(e) => panic!("subscriber: {e}"),
                }
            }
            lags.lock().unwrap().extend(mine);
        }));
    }
    while ready.load(Ordering::Relaxed) < gateways as u64 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    for g in 0..gateways {
        let mut con = client.get_connection_with_timeout(Duration::from_secs(2))?;
        let (stop, published, prefix, channel) =
            (stop.clone(), published.clone(), prefix.clone(), channel.clone());
        threads.push(std::thread::spawn(move || {
            let node = format!("gw-{g}");
            let mut n: u32 = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut pipe = redis::pipe();
                for _ in 0..BATCH {
                    n = n.wrapping_add(1);
                    let addr = std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | (g as u128) << 32 | u128::from(n));
                    let until = wall_us() + 120_000_000;
                    let entry = serde_json::json!({"client": addr, "until": until, "port": 3531});
                    let record = serde_json::json!({"from": node, "entry": entry});
                    let message = serde_json::json!({"from": node, "sent_us": wall_us(), "kind": "locks", "id": addr, "entry": entry});
                    pipe.cmd("SET")
                        .arg(format!("{prefix}:lock:{addr}"))
                        .arg(record.to_string())
                        .arg("PX")
                        .arg(120_000)
                        .ignore();
                    pipe.cmd("PUBLISH").arg(&channel).arg(message.to_string()).ignore();
                }
                pipe.query::<()>(&mut con).expect("publish");
                published.fetch_add(BATCH as u64, Ordering::Relaxed);
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    for t in threads {
        t.join().expect("thread");
    }
    let mut lags = std::mem::take(&mut *lags.lock().unwrap());
    lags.sort_unstable();
    let at =
        |p: usize| lags.get((lags.len() * p / 100).min(lags.len().saturating_sub(1))).copied().unwrap_or(0);
    let published = published.load(Ordering::Relaxed);
    let delivered = delivered.load(Ordering::Relaxed);
    println!(
        "{{\"gateways\":{gateways},\"seconds\":{elapsed:.1},\"changes_per_second\":{:.0},\"deliveries_per_second\":{:.0},\"delivered_of_expected\":{:.3},\"lag_p50_us\":{},\"lag_p99_us\":{}}}",
        published as f64 / elapsed,
        delivered as f64 / elapsed,
        delivered as f64 / (published as f64 * gateways as f64).max(1.0),
        at(50),
        at(99)
    );
    Ok(())
}
