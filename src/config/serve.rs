//! `[serve]`: the `serve` command's listener (address, TLS), who may post (the token's
//! variable), the limits that keep a slow or hostile client from exhausting the
//! worker, and how soon pushed records are compacted into Parquet.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::key::{Flag, Integer, Key, Text};
use super::reader::Section;
use super::secret::Secret;

/// The address `serve` listens on, as `IP:PORT`.
const LISTEN: Text = Text {
    name: "listen",
    default: Some("0.0.0.0:8080"),
};
/// A PEM file with the server's certificate chain: set with `tls_key_file` for HTTPS.
const TLS_CERT_FILE: Text = Text {
    name: "tls_cert_file",
    default: None,
};
/// A PEM file with the server's private key.
const TLS_KEY_FILE: Text = Text {
    name: "tls_key_file",
    default: None,
};
/// The environment variable holding the token a sender must give (`POST /push/TOKEN`,
/// or the `X-Push-Token` header); `serve` does not start without it.
const TOKEN_ENV: Text = Text {
    name: "token_env",
    default: Some("CDR_PUSH_TOKEN"),
};
/// A request body larger than this is refused with 413.
const MAX_BODY_BYTES: Integer = Integer {
    name: "max_body_bytes",
    min: 1024,
    max: 64 << 20,
    default: 1 << 20,
};
/// A client must send a request's headers within this many seconds of connecting (or
/// of its previous request on the connection).
const HEADER_TIMEOUT_SECS: Integer = Integer {
    name: "header_timeout_secs",
    min: 1,
    max: 600,
    default: 10,
};
/// And its body within this many seconds of its headers.
const BODY_TIMEOUT_SECS: Integer = Integer {
    name: "body_timeout_secs",
    min: 1,
    max: 600,
    default: 30,
};
/// Connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: Integer = Integer {
    name: "max_connections",
    min: 1,
    max: 100_000,
    default: 512,
};
/// A stored record is compacted into `push_cdr/` within this many seconds.
const FLUSH_SECS: Integer = Integer {
    name: "flush_secs",
    min: 1,
    max: 86_400,
    default: 60,
};

/// Download each record's `record` URL (HTTPS) into `recordings/` with a row in
/// `push_recording_index`; failures are tried again at every flush.
const FETCH_RECORDINGS: Flag = Flag {
    name: "fetch_recordings",
    default: false,
};
/// A recording larger than this is not downloaded (and reported).
const RECORDING_MAX_BYTES: Integer = Integer {
    name: "recording_max_bytes",
    min: 1024,
    max: 1 << 40,
    default: 512 << 20,
};
/// Time limit of one recording's download.
const RECORDING_TIMEOUT_SECS: Integer = Integer {
    name: "recording_timeout_secs",
    min: 1,
    max: 3600,
    default: 300,
};
/// A PEM CA certificate trusted for the recordings' URLs besides the system roots.
const RECORDING_CA_FILE: Text = Text {
    name: "recording_ca_file",
    default: None,
};

/// Every key of `[serve]`, in the order they are read.
pub const KEYS: &[Key] = &[
    Key::Text(LISTEN),
    Key::Text(TLS_CERT_FILE),
    Key::Text(TLS_KEY_FILE),
    Key::Text(TOKEN_ENV),
    Key::Integer(MAX_BODY_BYTES),
    Key::Integer(HEADER_TIMEOUT_SECS),
    Key::Integer(BODY_TIMEOUT_SECS),
    Key::Integer(MAX_CONNECTIONS),
    Key::Integer(FLUSH_SECS),
    Key::Flag(FETCH_RECORDINGS),
    Key::Integer(RECORDING_MAX_BYTES),
    Key::Integer(RECORDING_TIMEOUT_SECS),
    Key::Text(RECORDING_CA_FILE),
];

/// How `serve` runs.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub listen: SocketAddr,
    /// Certificate chain and key files, for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The variable the token is in, for messages.
    pub token_env: String,
    /// The token, if the variable is set (`serve` refuses to start without it).
    pub token: Option<Secret>,
    pub max_body_bytes: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub flush: Duration,
    /// Download the recordings, with these limits.
    pub fetch_recordings: Option<RecordingFetch>,
}

/// How the recordings are downloaded.
#[derive(Debug, Clone)]
pub struct RecordingFetch {
    pub max_bytes: u64,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
}

pub(super) fn read(s: &mut Section<'_>, env: &dyn Fn(&str) -> Option<String>) -> ServeSettings {
    let text = LISTEN.read(s);
    let listen = text.trim().parse::<SocketAddr>().unwrap_or_else(|_| {
        s.issue(
            LISTEN.name,
            format!("{text:?} is not IP:PORT; e.g. \"0.0.0.0:8080\" or \"[::]:8443\""),
        );
        SocketAddr::from(([0, 0, 0, 0], 8080))
    });
    let cert = TLS_CERT_FILE.read_set(s).filter(|t| !t.is_empty());
    let key = TLS_KEY_FILE.read_set(s).filter(|t| !t.is_empty());
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) => None,
        (Some(_), None) => {
            s.issue(TLS_KEY_FILE.name, "must be set with tls_cert_file");
            None
        }
        (None, Some(_)) => {
            s.issue(TLS_CERT_FILE.name, "must be set with tls_key_file");
            None
        }
    };
    let token_env = TOKEN_ENV.read(s);
    if token_env.is_empty() {
        s.issue(TOKEN_ENV.name, "must name an environment variable");
    }
    s.names_variable(&token_env);
    let token = env(&token_env).filter(|t| !t.is_empty()).map(Secret::new);
    let seconds = |key: Integer, s: &mut Section<'_>| Duration::from_secs(key.read(s) as u64);
    let max_body_bytes = MAX_BODY_BYTES.read(s) as usize;
    let header_timeout = seconds(HEADER_TIMEOUT_SECS, s);
    let body_timeout = seconds(BODY_TIMEOUT_SECS, s);
    let max_connections = MAX_CONNECTIONS.read(s) as usize;
    let flush = seconds(FLUSH_SECS, s);
    let fetch = FETCH_RECORDINGS.read(s);
    let recording = RecordingFetch {
        max_bytes: RECORDING_MAX_BYTES.read(s) as u64,
        timeout: seconds(RECORDING_TIMEOUT_SECS, s),
        ca_file: RECORDING_CA_FILE
            .read_set(s)
            .filter(|t| !t.is_empty())
            .map(PathBuf::from),
    };
    ServeSettings {
        listen,
        tls,
        token_env,
        token,
        max_body_bytes,
        header_timeout,
        body_timeout,
        max_connections,
        flush,
        fetch_recordings: fetch.then_some(recording),
    }
}
