//! Every session ends the way its protocol says goodbye, so the provider's server logs
//! no error for it: FTP `QUIT` → 221 and TLS close_notify on the control and data
//! connections (vsftpd, ProFTPD, which logs an `SSL_shutdown` error for a session
//! without), an SSH disconnect and a graceful close (OpenSSH; ProFTPD's mod_sftp, which
//! logs `Broken pipe` for a connection closed with its answers unread). Checked in the
//! servers' own logs, after a run that opens several connections (the day's files, a
//! pool for recordings).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use cdr_ingest::generate::{DropSpec, write_drop};
use chrono::NaiveDate;

use crate::own_sshd::OwnSshd;
use crate::util::{Case, Run, run_range};

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test.sh"))
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, 1).unwrap()
}

/// A day with CDRs, a queue report and a dozen recordings.
fn drop_into(folder: &Path) {
    let mut spec = DropSpec::new(23, day(), day());
    spec.cdr_rows_per_day = 50;
    spec.recordings_per_day = Some(12);
    write_drop(folder, &spec).unwrap();
}

/// A server's log lines that show a session ended badly.
fn is_error(line: &str) -> bool {
    let line = line.to_lowercase();
    [
        "without ssl shutdown",
        "oops",
        "error",
        "fail",
        "reset by peer",
        "broken pipe",
    ]
    .iter()
    .any(|bad| line.contains(bad))
}

/// vsftpd's log lines by session (process id), of the sessions that mention `needle`.
fn vsftpd_sessions(needle: &str) -> BTreeMap<String, Vec<String>> {
    let log =
        std::fs::read_to_string(Path::new(&env("CDR_TEST_WORK_DIR")).join("vsftpd.log")).unwrap();
    let mut sessions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in log.lines() {
        if let Some(pid) = line.split("[pid ").nth(1).and_then(|s| s.split(']').next()) {
            sessions
                .entry(pid.to_string())
                .or_default()
                .push(line.to_string());
        }
    }
    sessions.retain(|_, lines| lines.iter().any(|l| l.contains(needle)));
    sessions
}

#[test]
fn ftps_sessions_end_with_quit_and_close_notify() {
    let case = Case::new("goodbye-ftps");
    drop_into(&case.remote);
    let run = case.run_days(
        &case.config_with("", "transfers = 3"),
        "2024-03-01",
        "2024-03-01",
    );
    assert_eq!(run.code, 0, "{run:?}");

    // vsftpd logs each session under its process id; ours are the ones that named the
    // case's folder. A session process may still be writing its last lines.
    let ended = |lines: &Vec<String>| {
        lines
            .iter()
            .any(|l| l.contains("FTP response: Client \"127.0.0.1\", \"221"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let sessions = loop {
        let sessions = vsftpd_sessions("goodbye-ftps/");
        if sessions.values().all(ended) || Instant::now() > deadline {
            break sessions;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        sessions.len() >= 2,
        "one connection for the day, more for recordings: {sessions:#?}"
    );
    for (pid, lines) in &sessions {
        let errors: Vec<_> = lines.iter().filter(|l| is_error(l)).collect();
        assert!(errors.is_empty(), "session {pid}: {errors:#?}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("FTP command: Client \"127.0.0.1\", \"QUIT\"")),
            "session {pid} sent no QUIT: {lines:#?}"
        );
        assert!(ended(lines), "session {pid}: {lines:#?}");
    }
}

/// Puts a day into `root`/`case` and runs it with three transfers over `source` (the
/// `[source]` lines before the folders, logging in as `password` if one is needed).
fn run_one_day(root: &str, case: &str, source: &str, password: &str) {
    let dir = Path::new(root).join(case);
    let _ = std::fs::remove_dir_all(&dir);
    drop_into(&dir);
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\n{source}\ncdrs = \"{case}/CDRs\"\nqueue_calls = \"{case}/QueueCalls\"\nrecordings = \"{case}/recordings\"\ntimeout_secs = 10\n[destination]\nurl = \"file://{}\"\n[ingest]\ntransfers = 3\n",
            work.path().join("out").display(),
        ),
    )
    .unwrap();
    let run = Run::from(
        run_range(&config, "2024-03-01", "2024-03-01")
            .env("CDR_INGEST_SOURCE_PASSWORD", password)
            .env("CDR_INGEST_LOG_FORMAT", "text")
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn sftp_sessions_end_with_a_disconnect() {
    let server = OwnSshd::start("");
    let source = format!(
        "url = \"sftp://{}@127.0.0.1:{}\"\nkey_file = \"{}\"\nknown_hosts = \"{}\"",
        env("CDR_TEST_SFTP_USER"),
        server.port,
        env("CDR_TEST_SFTP_KEY"),
        server.known_hosts.display()
    );
    run_one_day(&env("CDR_TEST_SFTP_ROOT"), "goodbye-sftp", &source, "");

    // OpenSSH names each session by the client's port.
    let log = server.log();
    let ports: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("Accepted publickey"))
        .filter_map(|l| l.split(" port ").nth(1)?.split_whitespace().next())
        .collect();
    assert!(ports.len() >= 2, "{log}");
    for port in ports {
        let needle = format!("port {port}");
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.match_indices(&needle).any(|(at, _)| {
                    !l[at + needle.len()..].starts_with(|c: char| c.is_ascii_digit())
                })
            })
            .collect();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("Received disconnect from 127.0.0.1 {needle}:11:"))),
            "session {port} ended without an SSH disconnect: {lines:#?}"
        );
        let errors: Vec<_> = lines
            .iter()
            .filter(|l| is_error(l) || l.starts_with("Connection closed by"))
            .collect();
        assert!(errors.is_empty(), "session {port}: {errors:#?}");
    }
}

/// A run of one day against ProFTPD over `source` (the `[source]` lines before the
/// folders); returns the PIDs of its sessions (from the commands log) once each has
/// ended, with their lines of `log` (mod_tls's or mod_sftp's).
fn proftpd_sessions(case: &str, source: &str, log: &str) -> BTreeMap<String, Vec<String>> {
    run_one_day(
        &env("CDR_TEST_PROFTPD_ROOT"),
        case,
        source,
        &env("CDR_TEST_PROFTPD_PASSWORD"),
    );
    let work_dir = Path::new(&env("CDR_TEST_WORK_DIR")).to_path_buf();
    let read = |name: &str| std::fs::read_to_string(work_dir.join(name)).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(10);
    // A session's PID: the first word of a commands log line (FTP), or in brackets
    // in mod_tls's and mod_sftp's logs ("mod_sftp/1.1.1[PID]: …").
    let pid_of = |line: &str| -> Option<String> {
        match line.split_once("]: ") {
            Some((head, _)) => head.rsplit('[').next().map(str::to_string),
            None => line.split(' ').next().map(str::to_string),
        }
    };
    loop {
        let lines: Vec<String> = read("proftpd-commands.log")
            .lines()
            .chain(read(log).lines())
            .map(str::to_string)
            .collect();
        let pids: std::collections::BTreeSet<String> = lines
            .iter()
            .filter(|l| l.contains(&format!("{case}/")))
            .filter_map(|l| pid_of(l))
            .collect();
        // ProFTPD logs "FTP session closed." / "SSH2 session closed." when one ends.
        let system = read("proftpd.out") + &read("proftpd.log");
        let ended = |pid: &String| {
            system
                .lines()
                .any(|l| l.contains(&format!("[{pid}]")) && l.contains("session closed"))
        };
        if pids.iter().all(ended) || Instant::now() > deadline {
            return pids
                .iter()
                .map(|pid| {
                    let own = lines
                        .iter()
                        .filter(|l| pid_of(l).as_ref() == Some(pid))
                        .cloned()
                        .collect();
                    (pid.clone(), own)
                })
                .collect();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn proftpd_ftps_sessions_end_without_an_ssl_shutdown_error() {
    let source = format!(
        "url = \"ftps://{}@localhost:{}\"\nca_file = \"{}\"",
        env("CDR_TEST_PROFTPD_USER"),
        env("CDR_TEST_PROFTPD_PORT"),
        env("CDR_TEST_CA_FILE")
    );
    let sessions = proftpd_sessions("goodbye-proftpd-ftps", &source, "proftpd-tls.log");
    assert!(sessions.len() >= 2, "{sessions:#?}");
    for (pid, lines) in &sessions {
        let errors: Vec<_> = lines
            .iter()
            .filter(|l| is_error(l) || l.contains("SSL_shutdown") || l.contains("unexpected eof"))
            .collect();
        assert!(errors.is_empty(), "session {pid}: {errors:#?}");
        assert!(
            lines.iter().any(|l| l.trim_end() == format!("{pid} QUIT")),
            "session {pid} sent no QUIT: {lines:#?}"
        );
    }
}

#[test]
fn proftpd_sftp_sessions_end_without_a_broken_pipe() {
    let source = format!(
        "url = \"sftp://{}@127.0.0.1:{}\"\nkey_file = \"{}\"\nknown_hosts = \"{}\"",
        env("CDR_TEST_PROFTPD_USER"),
        env("CDR_TEST_PROFTPD_SFTP_PORT"),
        env("CDR_TEST_SFTP_KEY"),
        env("CDR_TEST_PROFTPD_SFTP_KNOWN_HOSTS")
    );
    let sessions = proftpd_sessions("goodbye-proftpd-sftp", &source, "proftpd-sftp.log");
    assert!(sessions.len() >= 2, "{sessions:#?}");
    for (pid, lines) in &sessions {
        let errors: Vec<_> = lines.iter().filter(|l| is_error(l)).collect();
        assert!(errors.is_empty(), "session {pid}: {errors:#?}");
    }
}
