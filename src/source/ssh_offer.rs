//! What an SSH server offers in its first key exchange message (RFC 4253 §7.1), read
//! over a separate connection after libssh2 could not agree on algorithms with it, so
//! the error can name what is missing on which side instead of "Unable to exchange
//! encryption keys".

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ssh2::{MethodType, Session};

/// The server's identification line and the lines it may send before: at most this much.
const MAX_BANNER: u64 = 8 * 1024;
/// RFC 4253 §6.1: implementations need only handle packets of 35,000 bytes.
const MAX_PACKET: usize = 35_000;
const SSH_MSG_KEXINIT: u8 = 20;

/// The algorithm lists of a server's KEXINIT (client-to-server direction).
#[derive(Debug, PartialEq, Eq)]
pub struct Offer {
    pub kex: Vec<String>,
    pub host_key: Vec<String>,
    pub cipher: Vec<String>,
    pub mac: Vec<String>,
}

/// Reads the offer of the server at `address`; `None` if it does not send one.
pub fn fetch(address: SocketAddr, timeout: Duration) -> Option<Offer> {
    let tcp = TcpStream::connect_timeout(&address, timeout).ok()?;
    tcp.set_read_timeout(Some(timeout)).ok()?;
    tcp.set_write_timeout(Some(timeout)).ok()?;
    (&tcp).write_all(b"SSH-2.0-cdr_ingest_probe\r\n").ok()?;
    let mut reader = BufReader::new(&tcp);
    let mut banner = Vec::new();
    let mut before = (&mut reader).take(MAX_BANNER);
    loop {
        banner.clear();
        if before.read_until(b'\n', &mut banner).ok()? == 0 {
            return None;
        }
        if banner.starts_with(b"SSH-") {
            break;
        }
    }
    let mut header = [0u8; 5];
    reader.read_exact(&mut header).ok()?;
    let length = u32::from_be_bytes(header[..4].try_into().ok()?) as usize;
    if !(2..=MAX_PACKET).contains(&length) {
        return None;
    }
    let mut rest = vec![0u8; length - 1];
    reader.read_exact(&mut rest).ok()?;
    let payload = rest.get(..rest.len().checked_sub(usize::from(header[4]))?)?;
    parse_kexinit(payload)
}

/// The lists in a KEXINIT payload: message type, 16-byte cookie, then name-lists.
fn parse_kexinit(payload: &[u8]) -> Option<Offer> {
    if payload.first() != Some(&SSH_MSG_KEXINIT) {
        return None;
    }
    let mut rest = payload.get(17..)?;
    let mut lists = Vec::new();
    for _ in 0..6 {
        let length = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let names = std::str::from_utf8(rest.get(4..4 + length)?).ok()?;
        lists.push(
            names
                .split(',')
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>(),
        );
        rest = &rest[4 + length..];
    }
    let mut lists = lists.into_iter();
    let (kex, host_key, cipher, _, mac) = (
        lists.next()?,
        lists.next()?,
        lists.next()?,
        lists.next()?,
        lists.next()?,
    );
    Some(Offer {
        kex,
        host_key,
        cipher,
        mac,
    })
}

/// What this client and `offer` have no algorithm in common for, each with both
/// sides' lists and the server setting that controls it; empty if all match.
pub fn mismatches(offer: &Offer) -> Vec<String> {
    let Ok(session) = Session::new() else {
        return Vec::new();
    };
    [
        ("key exchange", "KexAlgorithms", MethodType::Kex, &offer.kex),
        (
            "host key algorithm",
            "HostKeyAlgorithms (and HostKey)",
            MethodType::HostKey,
            &offer.host_key,
        ),
        ("cipher", "Ciphers", MethodType::CryptCs, &offer.cipher),
        ("MAC", "MACs", MethodType::MacCs, &offer.mac),
    ]
    .into_iter()
    .filter_map(|(what, setting, method, theirs)| {
        let ours = session.supported_algs(method).ok()?;
        if theirs.iter().any(|name| ours.contains(&name.as_str())) {
            return None;
        }
        let theirs = if theirs.is_empty() {
            "none".to_string()
        } else {
            theirs.join(",")
        };
        Some(format!(
            "no {what} in common: the server offers {theirs}; this client supports {} (the server's {setting})",
            ours.join(",")
        ))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_list(names: &str) -> Vec<u8> {
        let mut out = (names.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(names.as_bytes());
        out
    }

    #[test]
    fn a_kexinit_gives_its_lists_and_a_truncated_one_nothing() {
        let mut payload = vec![SSH_MSG_KEXINIT];
        payload.extend_from_slice(&[7; 16]);
        for list in [
            "curve25519-sha256,diffie-hellman-group14-sha256",
            "ssh-ed25519",
            "aes128-ctr",
            "aes128-ctr",
            "hmac-sha2-256",
            "hmac-sha2-256",
            "none",
            "none",
            "",
            "",
        ] {
            payload.extend(name_list(list));
        }
        payload.extend_from_slice(&[0, 0, 0, 0, 0]);
        let offer = parse_kexinit(&payload).unwrap();
        assert_eq!(
            offer.kex,
            ["curve25519-sha256", "diffie-hellman-group14-sha256"]
        );
        assert_eq!(offer.host_key, ["ssh-ed25519"]);
        assert_eq!(offer.mac, ["hmac-sha2-256"]);
        assert_eq!(mismatches(&offer), Vec::<String>::new());
        assert_eq!(parse_kexinit(&payload[..40]), None);
        assert_eq!(parse_kexinit(&[21]), None);
    }

    #[test]
    fn an_empty_host_key_list_is_named() {
        let offer = Offer {
            kex: vec!["curve25519-sha256".into()],
            host_key: vec![],
            cipher: vec!["aes128-ctr".into()],
            mac: vec!["hmac-sha2-256".into()],
        };
        let found = mismatches(&offer);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(
                "no host key algorithm in common: the server offers none; this client supports "
            ) && found[0].contains("ssh-ed25519"),
            "{found:?}"
        );
    }
}
