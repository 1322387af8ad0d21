//! The server's side of our sessions killed (`kill -9`) at chosen moments of a run —
//! logging in, a stat, a listing, the CSV, the zip, the first, a middle and the last
//! recording — over vsftpd (FTPS) and OpenSSH (SFTP): the same run must recover and
//! exit 0 with the dataset of an uninterrupted run.
//!
//! Each moment is a pause point of the binary (`CDR_INGEST_PAUSE_AT`, see
//! `cdr_ingest::crash::pause`): it stops itself there; the test finds the server
//! processes that hold the other end of its sockets (through `/proc`), kills their
//! whole session, waits until they are gone and lets the run go on. Only this run's
//! sessions are killed, so the tests running beside it are not disturbed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cdr_ingest::generate::{DropSpec, write_drop};
use chrono::NaiveDate;

use crate::util::{dataset, difference};

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test.sh"))
}

/// The drop's folder under the served root (the same folder for both servers).
const FOLDER: &str = "reconnect";
const DAY: &str = "2024-03-01";
const RECORDINGS: usize = 5;

/// One day with a CSV of several chunks, a queue zip and a few recordings, written once.
fn drop_folder() {
    static WRITTEN: OnceLock<()> = OnceLock::new();
    WRITTEN.get_or_init(|| {
        let dir = Path::new(&env("CDR_TEST_FTPS_ROOT")).join(FOLDER);
        let _ = std::fs::remove_dir_all(&dir);
        let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let mut spec = DropSpec::new(23, day, day);
        spec.cdr_rows_per_day = 10_000;
        spec.recordings_per_day = Some(RECORDINGS);
        write_drop(&dir, &spec).unwrap();
    });
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Protocol {
    Ftps,
    Sftp,
}

impl Protocol {
    /// The `[source]` lines that reach the server and trust it.
    fn source(self) -> String {
        match self {
            Protocol::Ftps => format!(
                "url = \"ftps://{}@localhost:{}\"\nca_file = \"{}\"\n",
                env("CDR_TEST_FTPS_USER"),
                env("CDR_TEST_FTPS_PORT"),
                env("CDR_TEST_CA_FILE")
            ),
            Protocol::Sftp => format!(
                "url = \"sftp://{}@127.0.0.1:{}\"\nkey_file = \"{}\"\nknown_hosts = \"{}\"\n",
                env("CDR_TEST_SFTP_USER"),
                env("CDR_TEST_SFTP_PORT"),
                env("CDR_TEST_SFTP_KEY"),
                env("CDR_TEST_SFTP_KNOWN_HOSTS")
            ),
        }
    }

    fn password(self) -> String {
        match self {
            Protocol::Ftps => env("CDR_TEST_FTPS_PASSWORD"),
            Protocol::Sftp => env("CDR_TEST_SFTP_PASSWORD"),
        }
    }

    /// The server's listening process, whose children are the sessions.
    fn server_pid(self) -> u32 {
        let file = match self {
            Protocol::Ftps => "vsftpd.pid",
            Protocol::Sftp => "sftp/sshd.pid",
        };
        let path = Path::new(&env("CDR_TEST_WORK_DIR")).join(file);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .parse()
            .unwrap()
    }

    /// A config reading every feed of the drop into `out`, one transfer at a time so
    /// that "the N-th recording" is the same one in every run.
    fn config(self, work: &Path, out: &Path) -> PathBuf {
        let path = work.join("config.toml");
        let text = format!(
            "[source]\n{source}cdrs = \"{FOLDER}/CDRs\"\nqueue_calls = \"{FOLDER}/QueueCalls\"\nrecordings = \"{FOLDER}/recordings\"\ntimeout_secs = 10\n[destination]\nurl = \"file://{out}\"\n[ingest]\nrecordings_min_age_secs = 0\ntransfers = 1\n",
            source = self.source(),
            out = out.display(),
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn start(self, config: &Path, log: &Path, pause_at: Option<&str>) -> Child {
        let log = std::fs::File::create(log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_cdr-ingest"));
        command
            .args(["run", "--config", config.to_str().unwrap(), "--date", DAY])
            .env("CDR_INGEST_SOURCE_PASSWORD", self.password())
            .env("CDR_INGEST_LOG_FORMAT", "text")
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        match pause_at {
            Some(at) => command.env("CDR_INGEST_PAUSE_AT", at),
            None => command.env_remove("CDR_INGEST_PAUSE_AT"),
        };
        command.spawn().unwrap()
    }
}

/// The dataset of an uninterrupted run, once per protocol (listings of the two servers
/// give recordings' times at different precisions).
fn reference(protocol: Protocol) -> &'static [(String, Vec<u8>)] {
    static FTPS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    static SFTP: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    let cell = match protocol {
        Protocol::Ftps => &FTPS,
        Protocol::Sftp => &SFTP,
    };
    cell.get_or_init(|| {
        drop_folder();
        let work = tempfile::tempdir().unwrap();
        let out = work.path().join("out");
        let log = work.path().join("log");
        let config = protocol.config(work.path(), &out);
        let status = wait(protocol.start(&config, &log, None), &log);
        assert_eq!(status, 0, "the uninterrupted run failed:\n{}", read(&log));
        let data = dataset(&out);
        let recordings = data.iter().filter(|(key, _)| key.ends_with(".mp3")).count();
        assert_eq!(recordings, RECORDINGS, "{:?}", read(&log));
        data
    })
}

fn read(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// The exit code, within a deadline (a run that hangs is killed and fails the test).
fn wait(mut child: Child, log: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run did not end within 180 s:\n{}", read(log));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The state letter of a process (`T` stopped, `Z` zombie), or `None` once it is gone.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()
}

/// Socket inodes a process holds open.
fn sockets(pid: u32) -> HashSet<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    fds.filter_map(|fd| {
        let target = std::fs::read_link(fd.ok()?.path()).ok()?;
        let target = target.to_str()?;
        target
            .strip_prefix("socket:[")?
            .strip_suffix(']')?
            .parse()
            .ok()
    })
    .collect()
}

/// Every TCP socket of the machine: (local port, remote port, inode).
fn tcp_sockets() -> Vec<(u16, u16, u64)> {
    let port = |address: &str| u16::from_str_radix(address.rsplit(':').next()?, 16).ok();
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    Some((port(fields[1])?, port(fields[2])?, fields[9].parse().ok()?))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Kills (`kill -9`) every session process of the server `master` that serves one of
/// `client`'s connections — the whole session, each child of `master` and everything
/// under it — and waits until they are gone. Returns how many were killed.
fn kill_sessions_of(client: u32, master: u32) -> usize {
    let ours = sockets(client);
    let table = tcp_sockets();
    let client_ports: HashSet<u16> = table
        .iter()
        .filter(|(_, _, inode)| ours.contains(inode))
        .map(|&(local, _, _)| local)
        .collect();
    let server_ends: HashSet<u64> = table
        .iter()
        .filter(|(_, remote, inode)| {
            *inode != 0 && client_ports.contains(remote) && !ours.contains(inode)
        })
        .map(|&(_, _, inode)| inode)
        .collect();
    let pids = all_pids();
    let session_of = |mut pid: u32| loop {
        match parent(pid) {
            Some(p) if p == master => return Some(pid),
            Some(0 | 1) | None => return None,
            Some(p) => pid = p,
        }
    };
    let sessions: HashSet<u32> = pids
        .iter()
        .filter(|&&pid| !sockets(pid).is_disjoint(&server_ends))
        .filter_map(|&pid| session_of(pid))
        .collect();
    let doomed: Vec<u32> = pids
        .into_iter()
        .filter(|&pid| session_of(pid).is_some_and(|s| sessions.contains(&s)))
        .collect();
    for &pid in &doomed {
        // SAFETY: kill(2) on a process of the test server's session.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while doomed
        .iter()
        .any(|&pid| state(pid).is_some_and(|s| s != 'Z'))
    {
        assert!(
            Instant::now() < deadline,
            "session processes {doomed:?} still alive"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    doomed.len()
}

/// Runs the day with its sessions killed at `at`; the run must end well anyway.
fn interrupted(protocol: Protocol, at: &str) {
    let reference = reference(protocol);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let log = work.path().join("log");
    let config = protocol.config(work.path(), &out);
    let mut child = protocol.start(&config, &log, Some(at));
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(120);
    while state(pid) != Some('T') {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the run ended ({status}) without reaching {at}:\n{}",
                read(&log)
            );
        }
        assert!(
            Instant::now() < deadline,
            "{at} not reached within 120 s:\n{}",
            read(&log)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed = kill_sessions_of(pid, protocol.server_pid());
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGCONT);
    }
    let code = wait(child, &log);
    let text = read(&log);
    assert!(
        killed > 0,
        "no session of the run found to kill at {at}:\n{text}"
    );
    assert_eq!(code, 0, "{protocol:?}, sessions killed at {at}:\n{text}");
    let got = dataset(&out);
    assert!(
        got == reference,
        "{protocol:?}, sessions killed at {at}: not the dataset of an uninterrupted run:\n{}\n{text}",
        difference(&got, reference)
    );
}

/// One test per moment and protocol. The subjects are path endings: the day's CSV,
/// its zip, the recordings folder and its files (copied in listing order, one at a
/// time); `:N` is the N-th time the point is reached.
macro_rules! moments {
    ($($name:ident => $at:expr,)*) => {
        mod ftps {
            $(#[test]
            fn $name() {
                super::interrupted(super::Protocol::Ftps, $at);
            })*
        }
        mod sftp {
            $(#[test]
            fn $name() {
                super::interrupted(super::Protocol::Sftp, $at);
            })*
        }
    };
}

moments! {
    first_login => "login:1",
    login_of_the_recordings_connection => "login:2",
    stat_of_the_csv => "stat@2024-03-01.csv:1",
    start_of_the_csv => "download@2024-03-01.csv:1",
    middle_of_the_csv => "received@2024-03-01.csv:3",
    stat_after_the_csv => "stat@2024-03-01.csv:2",
    stat_of_the_zip => "stat@queue-calls.zip:1",
    download_of_the_zip => "received@queue-calls.zip:1",
    stat_after_the_zip => "stat@queue-calls.zip:2",
    listing_of_the_recordings => "list@recordings:1",
    middle_of_the_listing => "listed@recordings:3",
    first_recording => "download@.mp3:1",
    middle_recording => "download@.mp3:3",
    last_recording => "download@.mp3:5",
}
