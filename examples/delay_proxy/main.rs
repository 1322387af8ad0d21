//! `delay_proxy`: a TCP proxy that makes a server on loopback seem a round trip away
//! (see `proxy.rs`), for `scripts/bench.sh latency`.
//!
//!   delay_proxy --listen 127.0.0.2:0 --to 127.0.0.1:2121 --rtt-ms 40 [--data-ports 30000-30039]
//!
//! Prints `listening on ADDRESS` once every listener is bound; on SIGTERM or SIGINT
//! prints what went through it (`connections=… bytes_up=… bytes_down=… round_trips=…`)
//! and exits.

mod proxy;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

fn usage() -> ! {
    eprintln!(
        "usage: delay_proxy --listen ADDR:PORT --to ADDR:PORT --rtt-ms MS [--data-ports MIN-MAX]"
    );
    std::process::exit(2)
}

fn options() -> proxy::Options {
    let mut args = std::env::args().skip(1);
    let (mut listen, mut upstream, mut rtt, mut data_ports) = (None, None, None, None);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--listen" => listen = value.parse::<SocketAddr>().ok(),
            "--to" => upstream = value.parse::<SocketAddr>().ok(),
            "--rtt-ms" => rtt = value.parse::<u64>().ok().map(Duration::from_millis),
            "--data-ports" => {
                let (min, max) = value.split_once('-').unwrap_or_else(|| usage());
                match (min.parse::<u16>(), max.parse::<u16>()) {
                    (Ok(min), Ok(max)) if min <= max => data_ports = Some(min..=max),
                    _ => usage(),
                }
            }
            _ => usage(),
        }
    }
    match (listen, upstream, rtt) {
        (Some(listen), Some(upstream), Some(rtt)) => proxy::Options {
            listen,
            upstream,
            rtt,
            data_ports,
        },
        _ => usage(),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let options = options();
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let proxy = proxy::start(options).await?;
    println!("listening on {}", proxy.address);
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    let c = proxy.counts();
    println!(
        "connections={} bytes_up={} bytes_down={} round_trips={}",
        c.connections,
        c.bytes_up,
        c.bytes_down,
        c.round_trips()
    );
    Ok(())
}
