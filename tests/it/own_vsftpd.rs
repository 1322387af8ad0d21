//! A second vsftpd of one test's own: the test servers' vsftpd configuration with some
//! settings replaced (e.g. `max_per_ip=3`), on its own control and passive ports and
//! with its own logs, serving the same folder as the shared one.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::own_sshd::wait_for_greeting;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test.sh"))
}

/// A vsftpd started by the test, stopped when dropped.
pub struct OwnVsftpd {
    pub port: u16,
    /// Its transfer log (xferlog format: one line per file sent).
    pub xferlog: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl OwnVsftpd {
    /// The test servers' configuration with every setting named in `replace` (one
    /// `name=value` a line) replaced.
    pub fn start(replace: &str) -> OwnVsftpd {
        let work = PathBuf::from(env("CDR_TEST_WORK_DIR"));
        let base = std::fs::read_to_string(work.join("vsftpd.conf")).unwrap();
        let name = |line: &str| line.split('=').next().unwrap_or_default().to_string();
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let port = free_port();
            let passive = free_ports(20);
            let xferlog = dir.path().join("xferlog");
            let own = format!(
                "listen_port={port}\npasv_min_port={}\npasv_max_port={}\nxferlog_file={}\nvsftpd_log_file={}\n{replace}",
                passive.start(),
                passive.end(),
                xferlog.display(),
                dir.path().join("vsftpd.log").display(),
            );
            let replaced: Vec<String> = own.lines().map(name).collect();
            let mut config: Vec<&str> = base
                .lines()
                .filter(|line| !replaced.contains(&name(line)))
                .collect();
            config.extend(own.lines());
            let config_file = dir.path().join("vsftpd.conf");
            std::fs::write(&config_file, config.join("\n") + "\n").unwrap();
            // vsftpd writes its fatal "500 OOPS" to fd 0: a writable file.
            let out = std::fs::File::options()
                .create(true)
                .append(true)
                .read(true)
                .open(dir.path().join("vsftpd.out"))
                .unwrap();
            let mut child = Command::new("vsftpd")
                .arg(&config_file)
                .stdin(Stdio::from(out.try_clone().unwrap()))
                .stdout(Stdio::from(out.try_clone().unwrap()))
                .stderr(Stdio::from(out))
                .spawn()
                .unwrap();
            if wait_for_greeting(&mut child, port, b"220") {
                return OwnVsftpd {
                    port,
                    xferlog,
                    child,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("the test's own vsftpd did not start");
    }

    /// How many times it has sent a file whose path ends with `path`.
    pub fn downloads_of(&self, path: &str) -> usize {
        let needle = format!("{path} ");
        std::fs::read_to_string(&self.xferlog)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&needle))
            .count()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `n` consecutive ports that are free now.
fn free_ports(n: u16) -> std::ops::RangeInclusive<u16> {
    loop {
        let start = free_port();
        if start > u16::MAX - n {
            continue;
        }
        let all: Option<Vec<TcpListener>> = (start..start + n)
            .map(|p| TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if all.is_some() {
            return start..=start + n - 1;
        }
    }
}

impl Drop for OwnVsftpd {
    fn drop(&mut self) {
        // Its session processes see their control connections close and end.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
