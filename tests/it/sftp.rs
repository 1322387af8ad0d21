//! SFTP end to end against OpenSSH: key and password logins, host keys checked against
//! known_hosts (plain and hashed), unknown and changed keys refused with their
//! fingerprint, and a connection cut mid-download resumed where it broke off.

use std::path::{Path, PathBuf};

use cdr_ingest::generate::{DropSpec, write_drop};
use chrono::NaiveDate;

use crate::util::{Run, cutting_proxy, json, run_range};

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test.sh"))
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
}

/// A case's folder on the SFTP server with a generated drop of `rows` CDRs a day.
struct Case {
    name: String,
    work: tempfile::TempDir,
}

impl Case {
    fn new(name: &str, days: u32, rows: usize) -> Case {
        let dir = Path::new(&env("CDR_TEST_SFTP_ROOT")).join(name);
        let _ = std::fs::remove_dir_all(&dir);
        let mut spec = DropSpec::new(31, day(1), day(days));
        spec.cdr_rows_per_day = rows;
        spec.recordings_per_day = Some(0);
        spec.queue = false;
        write_drop(&dir, &spec).unwrap();
        Case {
            name: name.to_string(),
            work: tempfile::tempdir().unwrap(),
        }
    }

    fn out(&self) -> PathBuf {
        self.work.path().join("out")
    }

    /// A config for the server at `port`, with `login` lines (key or password, known_hosts).
    fn config(&self, port: u16, login: &str) -> PathBuf {
        self.config_with_cdrs(port, login, &format!("{}/CDRs", self.name))
    }

    fn config_with_cdrs(&self, port: u16, login: &str, cdrs: &str) -> PathBuf {
        let path = self.work.path().join("config.toml");
        let text = format!(
            "[source]\nurl = \"sftp://{user}@127.0.0.1:{port}\"\n{login}\ncdrs = \"{cdrs}\"\ntimeout_secs = 10\n[destination]\nurl = \"file://{out}\"\n[ingest]\ncategories = [\"cdr\"]\n",
            user = env("CDR_TEST_SFTP_USER"),
            out = self.out().display(),
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn run(&self, config: &Path, to: u32) -> Run {
        let output = run_range(config, "2024-03-01", &format!("2024-03-0{to}"))
            .env("CDR_INGEST_SOURCE_PASSWORD", env("CDR_TEST_SFTP_PASSWORD"))
            .env("CDR_INGEST_LOG_FORMAT", "text")
            .output()
            .unwrap();
        Run::from(output)
    }
}

fn key_login(known_hosts: &str) -> String {
    format!(
        "key_file = \"{}\"\nknown_hosts = \"{known_hosts}\"",
        env("CDR_TEST_SFTP_KEY")
    )
}

fn port() -> u16 {
    env("CDR_TEST_SFTP_PORT").parse().unwrap()
}

#[test]
fn a_drop_over_sftp_with_a_key_lands_like_one_over_ftps() {
    let case = Case::new("sftp-key", 2, 200);
    let run = case.run(
        &case.config(port(), &key_login(&env("CDR_TEST_SFTP_KNOWN_HOSTS"))),
        2,
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("summary: 2 ingested"), "{run:?}");
    assert!(
        case.out()
            .join("_state/ledger/cdr/2024-03-02.json")
            .exists()
    );
}

/// Regression: a leading `/` was dropped, so an absolute folder was looked for under
/// the login folder.
#[test]
fn an_absolute_folder_path_is_read_as_absolute() {
    let case = Case::new("sftp-absolute", 1, 20);
    let cdrs = format!("{}/{}/CDRs/", env("CDR_TEST_SFTP_ROOT"), case.name);
    assert!(cdrs.starts_with('/'));
    let login = key_login(&env("CDR_TEST_SFTP_KNOWN_HOSTS"));
    let run = case.run(&case.config_with_cdrs(port(), &login, &cdrs), 1);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("summary: 1 ingested"), "{run:?}");
}

#[test]
fn password_login_with_hashed_known_hosts_works() {
    let case = Case::new("sftp-password", 1, 50);
    let login = format!(
        "known_hosts = \"{}\"",
        env("CDR_TEST_SFTP_KNOWN_HOSTS_HASHED")
    );
    let run = case.run(&case.config(port(), &login), 1);
    assert_eq!(run.code, 0, "{run:?}");
    let password = env("CDR_TEST_SFTP_PASSWORD");
    assert!(!run.stdout.contains(&password) && !run.stderr.contains(&password));
}

#[test]
fn an_unknown_host_key_is_refused_with_its_fingerprint_and_how_to_trust_it() {
    let case = Case::new("sftp-unknown", 1, 10);
    let empty = case.work.path().join("known_hosts");
    std::fs::write(&empty, "").unwrap();
    let run = case.run(&case.config(port(), &key_login(empty.to_str().unwrap())), 1);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "ssh-ed25519 {}",
            env("CDR_TEST_SFTP_HOST_KEY_SHA256")
        )),
        "{run:?}"
    );
    assert!(
        run.stderr.contains(&format!(
            "ssh-keyscan -p {} 127.0.0.1 >> {}",
            port(),
            empty.display()
        )),
        "{run:?}"
    );
    assert!(
        !run.stderr.contains("connecting again"),
        "not retried: {run:?}"
    );
}

#[test]
fn a_changed_host_key_is_refused() {
    let case = Case::new("sftp-changed", 1, 10);
    let run = case.run(
        &case.config(port(), &key_login(&env("CDR_TEST_SFTP_KNOWN_HOSTS_WRONG"))),
        1,
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("has CHANGED"), "{run:?}");
    assert!(
        !run.stderr.contains("connecting again"),
        "not retried: {run:?}"
    );
    assert!(
        run.stderr.contains(&env("CDR_TEST_SFTP_HOST_KEY_SHA256")),
        "{run:?}"
    );
    assert!(!case.out().join("_state/ledger").exists());
}

#[test]
fn accepting_any_host_key_needs_the_insecure_option_and_warns() {
    let case = Case::new("sftp-insecure", 1, 10);
    let login = format!(
        "key_file = \"{}\"\ninsecure_accept_any_host_key = true",
        env("CDR_TEST_SFTP_KEY")
    );
    let run = case.run(&case.config(port(), &login), 1);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("insecure_accept_any_host_key is on"),
        "{run:?}"
    );
}

/// known_hosts entries for the proxy's port, with the real server's key.
fn known_hosts_for(case: &Case, proxy: u16) -> PathBuf {
    let real = std::fs::read_to_string(env("CDR_TEST_SFTP_KNOWN_HOSTS")).unwrap();
    let path = case.work.path().join("known_hosts.proxy");
    std::fs::write(
        &path,
        real.replace(&format!("]:{} ", port()), &format!("]:{proxy} ")),
    )
    .unwrap();
    path
}

#[test]
fn a_connection_cut_mid_download_is_resumed_where_it_broke_off() {
    let case = Case::new("sftp-cut", 1, 20_000);
    let proxy = cutting_proxy(port(), 1 << 20, 1);
    let known_hosts = known_hosts_for(&case, proxy);
    let run = case.run(
        &case.config(proxy, &key_login(known_hosts.to_str().unwrap())),
        1,
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr
            .contains("source operation failed; connecting again to retry"),
        "{run:?}"
    );
    let ledger = json(&case.out().join("_state/ledger/cdr/2024-03-01.json"));
    let file =
        std::fs::read(Path::new(&env("CDR_TEST_SFTP_ROOT")).join("sftp-cut/CDRs/2024-03-01.csv"))
            .unwrap();
    let sha = cdr_ingest::pipeline::hex(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &file).as_ref(),
    );
    assert_eq!(ledger["sha256"], sha);
    assert_eq!(ledger["size"], file.len());
}

#[test]
fn a_download_that_keeps_breaking_fails_that_file_and_the_run_goes_on() {
    let case = Case::new("sftp-broken", 2, 20_000);
    // Day 1 is small enough to pass under the limit; day 2 is not, on every try.
    std::fs::write(
        Path::new(&env("CDR_TEST_SFTP_ROOT")).join("sftp-broken/CDRs/2024-03-01.csv"),
        "id,calldate,src,dst,duration,billsec,disposition\n1,2024-03-01 00:00:00,1,2,3,4,ANSWERED\n",
    )
    .unwrap();
    let proxy = cutting_proxy(port(), 256 * 1024, usize::MAX);
    let known_hosts = known_hosts_for(&case, proxy);
    // Each connection takes the download further: a second of retries is not enough.
    let config = case.config(proxy, &key_login(known_hosts.to_str().unwrap()));
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "timeout_secs = 10\n",
            "timeout_secs = 10\nretry_max_secs = 1\n",
        ),
    )
    .unwrap();
    let run = case.run(&config, 2);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("FAILED 2024-03-02"), "{run:?}");
    assert!(run.stderr.contains("giving up"), "{run:?}");
    assert!(
        case.out()
            .join("_state/ledger/cdr/2024-03-01.json")
            .exists(),
        "{run:?}"
    );
    assert!(
        !case
            .out()
            .join("_state/ledger/cdr/2024-03-02.json")
            .exists()
    );
}
