//! The delay proxy of `scripts/bench.sh latency` (`examples/delay_proxy`): it forwards
//! every byte both ways, proxies vsftpd's passive data ports, and counts round trips
//! by logical time (no clock is read here). And, through it, what a recording costs
//! over FTPS in round trips.

#[path = "../../examples/delay_proxy/proxy.rs"]
mod proxy;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cdr_ingest::generate::{DropSpec, write_drop};
use chrono::NaiveDate;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::util::{Case, Rng};

/// A chunk read before the connection would be up waits for it, then half a round trip.
#[test]
fn delivery_is_half_a_round_trip_after_the_connection_is_up() {
    let rtt = Duration::from_millis(40);
    let t0 = tokio::time::Instant::now();
    let ready = t0 + rtt;
    assert_eq!(proxy::delivery(t0, ready, rtt), t0 + rtt + rtt / 2);
    let later = t0 + Duration::from_secs(1);
    assert_eq!(proxy::delivery(later, ready, rtt), later + rtt / 2);
}

/// An echo server's answer comes back byte for byte, in both directions, with the
/// half-close passed on; one exchange is one connection and two round trips (the
/// setup's and the echo's), however long the payload takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_go_through_intact_both_ways() {
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = echo.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = echo.accept().await.unwrap();
        let (mut read, mut write) = socket.split();
        tokio::io::copy(&mut read, &mut write).await.unwrap();
        write.shutdown().await.unwrap();
    });
    let proxy = proxy::start(proxy::Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream,
        rtt: Duration::from_millis(10),
        data_ports: None,
    })
    .await
    .unwrap();
    let mut rng = Rng(7);
    let payload: Vec<u8> = (0..3 * 1024 * 1024 + 17)
        .map(|_| rng.next() as u8)
        .collect();
    let client = TcpStream::connect(proxy.address).await.unwrap();
    let (mut read, mut write) = client.into_split();
    let sent = payload.clone();
    let writer = tokio::spawn(async move {
        write.write_all(&sent).await.unwrap();
        write.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    read.read_to_end(&mut back).await.unwrap();
    writer.await.unwrap();
    assert!(back == payload, "the echo differs from what was sent");
    let counts = proxy.counts();
    assert_eq!(counts.connections, 1);
    assert_eq!(counts.bytes_up, payload.len() as u64);
    assert_eq!(counts.bytes_down, payload.len() as u64);
    assert!(counts.round_trips() >= 2.0, "{counts:?}");
}

/// vsftpd's passive ports (pasv_min_port..pasv_max_port in its config).
fn vsftpd_passive_ports() -> std::ops::RangeInclusive<u16> {
    let work = PathBuf::from(std::env::var("CDR_TEST_WORK_DIR").unwrap());
    let config = std::fs::read_to_string(work.join("vsftpd.conf")).unwrap();
    let value = |key: &str| -> u16 {
        config
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in vsftpd.conf"))
    };
    value("pasv_min_port=")..=value("pasv_max_port=")
}

/// What one run through a proxy 40 ms from vsftpd saw.
struct Through {
    copied: usize,
    counts: proxy::Counts,
}

/// A delay proxy 40 ms in front of vsftpd, its data ports included.
async fn proxy_in_front_of_vsftpd(case: &Case) -> proxy::Proxy {
    proxy::start(proxy::Options {
        listen: "127.0.0.2:0".parse().unwrap(),
        upstream: SocketAddr::from(([127, 0, 0, 1], case.server.port)),
        rtt: Duration::from_millis(40),
        data_ports: Some(vsftpd_passive_ports()),
    })
    .await
    .unwrap()
}

/// Copies `files` recordings of 256 KiB from vsftpd through `proxy`, over one
/// connection (the logical clock is one for all of the client's connections); the
/// counts are the proxy's totals after the run.
async fn copy_through_proxy(case: &Case, proxy: &proxy::Proxy, files: usize) -> Through {
    let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
    let _ = std::fs::remove_dir_all(case.remote.join("recordings"));
    let _ = std::fs::remove_dir_all(case.out());
    let mut spec = DropSpec::new(11, day, day);
    spec.cdr_rows_per_day = files * 4;
    spec.recordings_per_day = Some(files);
    spec.recording_bytes = 256 * 1024..=256 * 1024;
    spec.queue = false;
    write_drop(&case.remote, &spec).unwrap();
    let config = case.work.path().join("through-proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nurl = \"ftps://{user}@127.0.0.2:{port}\"\nca_file = \"{ca}\"\nrecordings = \"{name}/recordings\"\ntimeout_secs = 20\n[destination]\nurl = \"file://{out}\"\n[ingest]\ncategories = [\"recordings\"]\ntransfers = 1\nrecordings_min_age_secs = 0\n",
            user = case.server.user,
            port = proxy.address.port(),
            ca = case.server.ca_file.display(),
            name = case.name,
            out = case.out().display(),
        ),
    )
    .unwrap();
    let run = {
        let config = config.clone();
        let password = case.server.password.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
                .args(["run", "--config", config.to_str().unwrap(), "--date"])
                .arg(day.to_string())
                .env("CDR_INGEST_SOURCE_PASSWORD", password)
                .env("CDR_INGEST_LOG_FORMAT", "text")
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let copied = walk(&case.out().join("recordings"))
        .filter(|p| p.extension().is_some_and(|e| e == "mp3"))
        .count();
    Through {
        copied,
        counts: proxy.counts(),
    }
}

fn walk(dir: &std::path::Path) -> Box<dyn Iterator<Item = PathBuf>> {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    Box::new(entries.into_iter().flat_map(|p| {
        if p.is_dir() {
            walk(&p)
        } else {
            Box::new(std::iter::once(p))
        }
    }))
}

/// Through the proxy, vsftpd's data connections (one per file, on its passive
/// ports) reach it and every recording arrives whole; and each recording costs the
/// round trips the difference between a run of 9 and one of 3 shows: at most four.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ftps_through_the_proxy_costs_few_round_trips_per_recording() {
    let case = Case::new("delay-proxy");
    let proxy = proxy_in_front_of_vsftpd(&case).await;
    let few = copy_through_proxy(&case, &proxy, 3).await;
    let all = copy_through_proxy(&case, &proxy, 9).await;
    assert_eq!((few.copied, all.copied), (3, 9));
    // The control connection, the listing's data connection, one per file.
    assert!(few.counts.connections > 3 + 1, "{:?}", few.counts);
    assert!(few.counts.bytes_down > 3 * 256 * 1024, "{:?}", few.counts);
    let more = all.counts.connections - few.counts.connections;
    assert!(more > 9 + 1, "{:?} after {:?}", all.counts, few.counts);
    let bytes = all.counts.bytes_down - few.counts.bytes_down;
    assert!(
        bytes > 9 * 256 * 1024,
        "{:?} after {:?}",
        all.counts,
        few.counts
    );
    // The second run's own round trips, less the first's: six files' worth.
    let first = few.counts.round_trips();
    let second = all.counts.round_trips() - first;
    let per_file = (second - first) / 6.0;
    eprintln!("round trips: 3 files {first}, 9 files {second}, per file {per_file:.2}");
    // Six before the data connection was opened alongside RETR and the next EPSV sent
    // behind the close_notify (see source::ftps).
    assert!(per_file <= 4.0, "{per_file:.2} round trips per recording");
}
