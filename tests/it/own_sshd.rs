//! A second OpenSSH server of one test's own: the test servers' sshd configuration with
//! some lines replaced, on its own port and with its own log, so a test can configure a
//! server to fail in one way and read only its own sessions in the log.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test.sh"))
}

/// An sshd started by the test, stopped when dropped.
pub struct OwnSshd {
    pub port: u16,
    /// Its log (LogLevel VERBOSE unless the replaced lines say otherwise).
    pub log: PathBuf,
    /// A known_hosts file with its key under `[127.0.0.1]:port`.
    pub known_hosts: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl OwnSshd {
    /// The test servers' configuration with every line whose keyword is set in
    /// `replace` (one `Keyword value` a line) removed and `replace` added.
    pub fn start(replace: &str) -> OwnSshd {
        let work = PathBuf::from(env("CDR_TEST_WORK_DIR"));
        let base = std::fs::read_to_string(work.join("sftp/sshd_config")).unwrap();
        let keyword = |line: &str| {
            line.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_lowercase()
        };
        let replaced: Vec<String> = replace.lines().map(keyword).collect();
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o755);
        let host_key = std::fs::read_to_string(work.join("sftp/ssh_host_ed25519_key.pub")).unwrap();
        let host_key: Vec<&str> = host_key.split_whitespace().take(2).collect();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut config: Vec<String> = base
                .lines()
                .filter(|line| {
                    let k = keyword(line);
                    k != "listenaddress" && k != "pidfile" && !replaced.contains(&k)
                })
                .map(str::to_string)
                .collect();
            config.push(format!("ListenAddress 127.0.0.1:{port}"));
            config.push("PidFile none".into());
            config.extend(replace.lines().map(str::to_string));
            let config_file = dir.path().join("sshd_config");
            std::fs::write(&config_file, config.join("\n") + "\n").unwrap();
            set_mode(&config_file, 0o644);
            let log = dir.path().join("sshd.log");
            let known_hosts = dir.path().join("known_hosts");
            std::fs::write(
                &known_hosts,
                format!("[127.0.0.1]:{port} {} {}\n", host_key[0], host_key[1]),
            )
            .unwrap();
            let user = env("CDR_TEST_SFTP_USER");
            // Through the symlink named after the test servers' PAM service, as they do.
            let mut child = Command::new("setpriv")
                .arg(format!("--reuid={user}"))
                .arg(format!("--regid={user}"))
                .args(["--init-groups", "--"])
                .arg(work.join("sftp/cdr-ingest-test-sftp"))
                .args(["-D", "-e", "-f"])
                .arg(&config_file)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            if wait_for_greeting(&mut child, port, b"SSH-2.0") {
                return OwnSshd {
                    port,
                    log,
                    known_hosts,
                    child,
                    _dir: dir,
                };
            }
        }
        panic!("the test's own sshd did not start");
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Polls until the server on `port` sends a greeting starting with `start`; false if
/// it exited (its port was taken).
pub fn wait_for_greeting(child: &mut Child, port: u16, start: &[u8]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if let Ok(mut socket) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            socket
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let mut greeting = vec![0u8; start.len()];
            if socket.read_exact(&mut greeting).is_ok() && greeting == start {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

impl Drop for OwnSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}
