//! A TCP proxy that puts a network's round trip between a client and a server on
//! loopback: each direction is delayed by half the round trip, a connection costs a
//! round trip before the client may send (and the server sees it half a round trip
//! later, as with a real SYN, SYN-ACK, ACK), and FTP passive data ports are proxied
//! too, by listening on the server's passive port range on another loopback address
//! (the `229`/`227` replies are inside TLS, so they cannot be rewritten; a client
//! that connects to the proxy's address finds its data ports there).
//!
//! It also counts round trips without a clock: every chunk it forwards gets a
//! logical time one past the latest that its sender had been given (Lamport's rule,
//! across all connections of the client, and of the server), a connection's setup
//! taking two such steps. Half the latest logical time the client saw is the number
//! of round trips on the critical path of everything that went through the proxy, the
//! same whatever the load on the machine, as long as the delay is long against the
//! time the programs take to answer.

use std::io;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Bytes read at a time.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight per direction: 4 MiB, like a TCP window, so memory stays bounded
/// while a fast sender waits out the delay.
const IN_FLIGHT: usize = 64;

/// What to proxy and how far away the server is to seem.
#[derive(Debug, Clone)]
pub struct Options {
    /// The address clients connect to (port 0: any free port).
    pub listen: SocketAddr,
    /// The server.
    pub upstream: SocketAddr,
    /// The round trip time to add.
    pub rtt: Duration,
    /// The server's FTP passive ports: each is listened on at `listen`'s address and
    /// forwarded to the same port at `upstream`'s.
    pub data_ports: Option<RangeInclusive<u16>>,
}

/// What went through the proxy so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Connections accepted (control and data).
    pub connections: u64,
    /// Bytes from the clients to the server, and back.
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// The latest logical time delivered to the client side, and to the server side.
    pub client_seen: u64,
    pub server_seen: u64,
}

impl Counts {
    /// Round trips on the critical path so far (each one is two logical steps).
    pub fn round_trips(&self) -> f64 {
        self.client_seen as f64 / 2.0
    }
}

/// A running proxy; dropping it closes its listeners (connections go on to their end).
pub struct Proxy {
    /// Where clients connect.
    pub address: SocketAddr,
    counts: Arc<Mutex<Counts>>,
    listening: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for task in &self.listening {
            task.abort();
        }
    }
}

impl Proxy {
    pub fn counts(&self) -> Counts {
        *self.counts.lock().expect("not poisoned")
    }
}

/// Binds every listener and starts serving in the background.
pub async fn start(options: Options) -> io::Result<Proxy> {
    let counts = Arc::new(Mutex::new(Counts::default()));
    let control = TcpListener::bind(options.listen).await?;
    let address = control.local_addr()?;
    let mut listeners = vec![(control, options.upstream)];
    for port in options.data_ports.clone().into_iter().flatten() {
        let listener = TcpListener::bind(SocketAddr::new(address.ip(), port)).await?;
        listeners.push((listener, SocketAddr::new(options.upstream.ip(), port)));
    }
    let mut listening = Vec::new();
    for (listener, upstream) in listeners {
        let counts = Arc::clone(&counts);
        let rtt = options.rtt;
        listening.push(tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream, rtt, Arc::clone(&counts)));
            }
        }));
    }
    Ok(Proxy {
        address,
        counts,
        listening,
    })
}

/// When a chunk read at `read_at` reaches the other side: half a round trip later,
/// and for the client's bytes not before the connection would be set up (`ready`).
pub fn delivery(read_at: Instant, ready: Instant, rtt: Duration) -> Instant {
    read_at.max(ready) + rtt / 2
}

/// Which way a chunk goes.
#[derive(Clone, Copy)]
enum Way {
    Up,
    Down,
}

/// One accepted connection: the setup's round trip, then both directions.
async fn relay(client: TcpStream, upstream: SocketAddr, rtt: Duration, counts: Arc<Mutex<Counts>>) {
    let accepted = Instant::now();
    let _ = client.set_nodelay(true);
    // SYN (from the client's latest knowledge), SYN-ACK, then the ACK the server accepts on.
    let syn = {
        let mut c = counts.lock().expect("not poisoned");
        c.connections += 1;
        c.client_seen + 1
    };
    let (client_read, client_write) = client.into_split();
    let (up_tx, up_rx) = mpsc::channel(IN_FLIGHT);
    // The client may send as soon as its connect returns (at once, here): its bytes are
    // held until the connection would be up, a round trip after it began.
    let reader = tokio::spawn(read_side(
        client_read,
        up_tx,
        Way::Up,
        accepted + rtt,
        syn + 2,
        rtt,
        Arc::clone(&counts),
    ));
    tokio::time::sleep_until(accepted + rtt).await;
    see(&counts, Side::Client, syn + 1);
    tokio::time::sleep_until(accepted + rtt + rtt / 2).await;
    let server = match TcpStream::connect(upstream).await {
        Ok(server) => server,
        Err(_) => {
            reader.abort();
            return;
        }
    };
    let _ = server.set_nodelay(true);
    see(&counts, Side::Server, syn + 2);
    let (server_read, server_write) = server.into_split();
    let (down_tx, down_rx) = mpsc::channel(IN_FLIGHT);
    let down_reader = read_side(
        server_read,
        down_tx,
        Way::Down,
        accepted,
        0,
        rtt,
        Arc::clone(&counts),
    );
    let up_writer = write_side(server_write, up_rx, Way::Up, Arc::clone(&counts));
    let down_writer = write_side(client_write, down_rx, Way::Down, Arc::clone(&counts));
    tokio::join!(down_reader, up_writer, down_writer);
    let _ = reader.await;
}

/// A chunk (or the end, when empty) and when and at which logical time it arrives.
struct Flight {
    at: Instant,
    logical: u64,
    bytes: Vec<u8>,
}

/// Reads one side and queues what it sent for delivery; the end of the stream (or an
/// error) is queued as an empty chunk.
async fn read_side(
    mut from: impl AsyncRead + Unpin,
    to: mpsc::Sender<Flight>,
    way: Way,
    ready: Instant,
    min_logical: u64,
    rtt: Duration,
    counts: Arc<Mutex<Counts>>,
) {
    loop {
        let mut bytes = vec![0u8; CHUNK];
        let n = from.read(&mut bytes).await.unwrap_or(0);
        bytes.truncate(n);
        let logical = {
            let c = counts.lock().expect("not poisoned");
            let sender_saw = match way {
                Way::Up => c.client_seen,
                Way::Down => c.server_seen,
            };
            (sender_saw + 1).max(min_logical)
        };
        let flight = Flight {
            at: delivery(Instant::now(), ready, rtt),
            logical,
            bytes,
        };
        if to.send(flight).await.is_err() || n == 0 {
            return;
        }
    }
}

/// Delivers queued chunks when they are due; at the end, shuts the write side.
async fn write_side(
    mut to: impl AsyncWrite + Unpin,
    mut from: mpsc::Receiver<Flight>,
    way: Way,
    counts: Arc<Mutex<Counts>>,
) {
    let receiver = match way {
        Way::Up => Side::Server,
        Way::Down => Side::Client,
    };
    while let Some(flight) = from.recv().await {
        tokio::time::sleep_until(flight.at).await;
        if flight.bytes.is_empty() {
            see(&counts, receiver, flight.logical);
            break;
        }
        if to.write_all(&flight.bytes).await.is_err() {
            // The receiver is gone: let the sender's reads drain into nothing.
            while from.recv().await.is_some() {}
            return;
        }
        {
            let mut c = counts.lock().expect("not poisoned");
            match way {
                Way::Up => c.bytes_up += flight.bytes.len() as u64,
                Way::Down => c.bytes_down += flight.bytes.len() as u64,
            }
        }
        see(&counts, receiver, flight.logical);
    }
    let _ = to.shutdown().await;
}

/// One end of every connection.
#[derive(Clone, Copy)]
enum Side {
    Client,
    Server,
}

/// `side` has been given logical time `logical`.
fn see(counts: &Mutex<Counts>, side: Side, logical: u64) {
    let mut c = counts.lock().expect("not poisoned");
    let seen = match side {
        Side::Client => &mut c.client_seen,
        Side::Server => &mut c.server_seen,
    };
    *seen = (*seen).max(logical);
}
