//! SSH/SFTP failures say what to check, each against an OpenSSH configured to fail
//! that way: the SFTP subsystem cannot start, the login method is not offered, no key
//! exchange or host key algorithm in common.

use cdr_ingest::config::Settings;
use cdr_ingest::source::{self, SourceError};

use crate::own_sshd::OwnSshd;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test.sh"))
}

/// Connects to `server` with a key (or the password when `password` is set).
async fn connect(server: &OwnSshd, password: bool) -> SourceError {
    let login = if password {
        String::new()
    } else {
        format!("key_file = \"{}\"\n", env("CDR_TEST_SFTP_KEY"))
    };
    let text = format!(
        "[source]\nurl = \"sftp://{}@127.0.0.1:{}\"\n{login}known_hosts = \"{}\"\ntimeout_secs = 5\n[destination]\nurl = \"memory://\"\n",
        env("CDR_TEST_SFTP_USER"),
        server.port,
        server.known_hosts.display()
    );
    let settings = Settings::parse(&text, &|name| {
        (name == "CDR_INGEST_SOURCE_PASSWORD").then(|| env("CDR_TEST_SFTP_PASSWORD"))
    })
    .unwrap_or_else(|issues| panic!("{issues:?}"))
    .source;
    match source::connect(&settings).await {
        Ok(_) => panic!("connected to a server configured to fail"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_refused_sftp_subsystem_says_to_check_the_servers_subsystem() {
    // No "sftp" subsystem at all (the forced command would serve SFTP anyway).
    let server = OwnSshd::start("Subsystem other internal-sftp\nForceCommand none");
    let message = connect(&server, false).await.to_string();
    assert!(
        message.contains("SFTP subsystem") && message.contains("Subsystem"),
        "{message}"
    );
}

#[tokio::test]
async fn a_login_method_the_server_does_not_offer_names_the_ones_it_does() {
    let server = OwnSshd::start("PasswordAuthentication no\nKbdInteractiveAuthentication no");
    let error = connect(&server, true).await;
    assert!(
        matches!(error, SourceError::LoginRefused { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("offers only publickey"), "{message}");
    assert!(message.contains("source.key_file"), "{message}");
}

#[tokio::test]
async fn no_key_exchange_in_common_names_both_sides_algorithms() {
    let server = OwnSshd::start("KexAlgorithms sntrup761x25519-sha512@openssh.com");
    let message = connect(&server, false).await.to_string();
    assert!(
        message.contains("key exchange") && message.contains("sntrup761x25519-sha512@openssh.com"),
        "{message}"
    );
    assert!(message.contains("curve25519-sha256"), "{message}");
}

#[tokio::test]
async fn no_host_key_algorithm_in_common_names_both_sides_algorithms() {
    // An old server with only a DSA host key; libssh2 1.11 no longer accepts ssh-dss.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ssh_host_dsa_key");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "dsa", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let sftp_user = env("CDR_TEST_SFTP_USER");
    let uid = std::process::Command::new("id")
        .args(["-u", &sftp_user])
        .output()
        .unwrap();
    let uid: u32 = String::from_utf8(uid.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::os::unix::fs::chown(&key, Some(uid), None).unwrap();
    let server = OwnSshd::start(&format!(
        "HostKey {}\nHostKeyAlgorithms ssh-dss",
        key.display()
    ));
    let message = connect(&server, false).await.to_string();
    assert!(
        message.contains("no host key algorithm in common: the server offers ssh-dss;"),
        "{message}"
    );
    assert!(message.contains("ssh-ed25519"), "{message}");
}

#[tokio::test]
async fn a_chroot_the_server_cannot_enter_says_to_check_it() {
    // This sshd runs unprivileged and cannot chroot at all; one running as root ends
    // the session the same way for a folder with the wrong owner.
    let server = OwnSshd::start("ChrootDirectory /tmp");
    let message = connect(&server, false).await.to_string();
    assert!(
        message.contains("SFTP subsystem could not start") && message.contains("ChrootDirectory"),
        "{message}"
    );
}
