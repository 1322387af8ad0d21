//! Shared helpers: the test servers' coordinates, a per-test remote folder and
//! destination, running the binary, and reading the output back.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The binary with `run --config CONFIG --from FROM --to TO`; callers add the
/// environment and pipes they need.
pub fn run_range(config: &Path, from: &str, to: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cdr-ingest"));
    let config = config.to_str().unwrap();
    command.args(["run", "--config", config, "--from", from, "--to", to]);
    command
}

/// Writes a config at `path` that reads the drop in the local folder `drop` into
/// the local destination `out`, taking recordings as soon as they are listed.
pub fn local_config(path: &Path, drop: &Path, out: &Path) -> PathBuf {
    std::fs::write(
        path,
        format!(
            "[source]\nurl = \"file://{}\"\n[destination]\nurl = \"file://{}\"\n[ingest]\nrecordings_min_age_secs = 0\n",
            drop.display(),
            out.display()
        ),
    )
    .unwrap();
    path.to_path_buf()
}

/// Writes a config at `path` that reads only `categories` (e.g. `"cdr", "queue"`) of
/// the drop in the local folder `drop` into the local destination `out`.
pub fn local_config_of(path: &Path, drop: &Path, out: &Path, categories: &str) -> PathBuf {
    std::fs::write(
        path,
        format!(
            "[source]\nurl = \"file://{}\"\n[destination]\nurl = \"file://{}\"\n[ingest]\ncategories = [{categories}]\n",
            drop.display(),
            out.display()
        ),
    )
    .unwrap();
    path.to_path_buf()
}

/// The vsftpd server started by `scripts/test.sh`.
pub struct Ftps {
    pub port: u16,
    pub user: String,
    pub password: String,
    pub root: PathBuf,
    pub ca_file: PathBuf,
    pub untrusted_ca_file: PathBuf,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test.sh, which starts the test servers"))
}

pub fn ftps() -> Ftps {
    Ftps {
        port: env("CDR_TEST_FTPS_PORT").parse().expect("a port number"),
        user: env("CDR_TEST_FTPS_USER"),
        password: env("CDR_TEST_FTPS_PASSWORD"),
        root: env("CDR_TEST_FTPS_ROOT").into(),
        ca_file: env("CDR_TEST_CA_FILE").into(),
        untrusted_ca_file: env("CDR_TEST_UNTRUSTED_CA_FILE").into(),
    }
}

/// One test's own remote folder on the shared server and its own destination.
pub struct Case {
    pub server: Ftps,
    pub name: String,
    pub remote: PathBuf,
    pub work: tempfile::TempDir,
}

impl Case {
    pub fn new(name: &str) -> Case {
        let server = ftps();
        let remote = server.root.join(name);
        let _ = std::fs::remove_dir_all(&remote);
        std::fs::create_dir_all(remote.join("CDRs")).unwrap();
        Case {
            server,
            name: name.to_string(),
            remote,
            work: tempfile::tempdir().unwrap(),
        }
    }

    /// Where the output goes (a `file://` destination).
    pub fn out(&self) -> PathBuf {
        self.work.path().join("out")
    }

    /// Puts a CDR file on the server with the modification time the provider would give it.
    pub fn put_cdr(&self, day: &str, content: &[u8], modified: SystemTime) {
        let path = self.remote.join("CDRs").join(format!("{day}.csv"));
        std::fs::write(&path, content).unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
    }

    /// How many times vsftpd has sent this case's CDR file of `day` (from its transfer log).
    pub fn downloads_of(&self, day: &str) -> usize {
        self.downloads_of_path(&format!("CDRs/{day}.csv"))
    }

    /// How many times vsftpd has sent this case's file at `path` (relative to its folder).
    pub fn downloads_of_path(&self, path: &str) -> usize {
        let log = PathBuf::from(env("CDR_TEST_WORK_DIR")).join("xferlog");
        let needle = format!("/{}/{path} ", self.name);
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&needle))
            .count()
    }

    /// Writes a config file for CDRs only; `source_extra` lines are added to `[source]`.
    pub fn config(&self, source_extra: &str) -> PathBuf {
        self.config_with(source_extra, "categories = [\"cdr\"]")
    }

    /// Writes a config file with lines added to `[source]` and to `[ingest]`.
    pub fn config_with(&self, source_extra: &str, ingest: &str) -> PathBuf {
        let path = self.work.path().join("config.toml");
        let text = format!(
            "[source]\nurl = \"ftps://{user}@localhost:{port}\"\nca_file = \"{ca}\"\ncdrs = \"{name}/CDRs\"\nqueue_calls = \"{name}/QueueCalls\"\nrecordings = \"{name}/recordings\"\ntimeout_secs = 10\n{source_extra}\n[destination]\nurl = \"file://{out}\"\n[ingest]\n{ingest}\n",
            user = self.server.user,
            port = self.server.port,
            ca = self.server.ca_file.display(),
            name = self.name,
            out = self.out().display(),
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `run --config CONFIG --from FROM --to TO` (a single day when they are equal).
    pub fn run_days(&self, config: &Path, from: &str, to: &str) -> Run {
        let config = config.to_str().unwrap();
        if from == to {
            self.run(&["run", "--config", config, "--date", from])
        } else {
            self.run(&["run", "--config", config, "--from", from, "--to", to])
        }
    }

    /// Runs the binary with the right password in the environment.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_password(args, &self.server.password)
    }

    pub fn run_with_password(&self, args: &[&str], password: &str) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
            .args(args)
            .env("CDR_INGEST_SOURCE_PASSWORD", password)
            .env("CDR_INGEST_LOG_FORMAT", "text")
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        Run::from(output)
    }
}

/// What one run of the binary printed and how it exited.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A fixed point in time, so the tests do not depend on the clock.
pub fn at(unix_seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(unix_seconds)
}

/// Every file under `dir`, relative and sorted, with its bytes; the run record and
/// leases are left out, as they change with every run by design.
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    files.retain(|(key, _)| !key.starts_with("_state/runs/") && !key.starts_with("_state/leases/"));
    files.sort();
    files
}

/// A JSON file (a ledger entry, say), parsed.
pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

/// All record batches of a Parquet file.
pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A TCP relay to `target` that cuts each of the first `cuts` connections once the
/// server has sent `cut_after` bytes through it: a connection that breaks mid-download.
/// Returns the port it listens on.
pub fn cutting_proxy(target: u16, cut_after: u64, cuts: usize) -> u16 {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (index, client) in listener.incoming().enumerate() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                return;
            };
            let limit = if index < cuts { cut_after } else { u64::MAX };
            let (client_in, server_out) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let (mut from, mut to) = (client_in, server_out);
                let _ = std::io::copy(&mut from, &mut to);
                let _ = to.shutdown(Shutdown::Both);
            });
            std::thread::spawn(move || {
                let (mut from, mut to) = (server, client);
                let mut sent = 0u64;
                let mut buffer = [0u8; 16 * 1024];
                while let Ok(n) = from.read(&mut buffer) {
                    if n == 0 || to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                    sent += n as u64;
                    if sent >= limit {
                        break;
                    }
                }
                let _ = to.shutdown(Shutdown::Both);
                let _ = from.shutdown(Shutdown::Both);
            });
        }
    });
    port
}

/// SplitMix64, for the seeded explorers: a seed gives the same schedule on any machine.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below(u64::from(hi - lo + 1)) as u32
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
