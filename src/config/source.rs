//! `[source]`: the provider's server (FTPS, SFTP), a bucket or a local folder, how to
//! log in and trust it, the time limit, and the remote folder of each category.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::Secret;
use super::destination::{check_options, names_bucket};
use super::key::{Flag, Integer, Key, Table, Text};
use super::reader::Section;
use crate::feeds::{FEEDS, Feed};
use crate::model::Category;

/// The environment variable holding the source password unless `password_env` says otherwise.
pub const DEFAULT_PASSWORD_ENV: &str = "CDR_INGEST_SOURCE_PASSWORD";

/// `ftps://USER@HOST:PORT` (port 21 by default), `sftp://USER@HOST:PORT` (22),
/// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`, or
/// `file:///path`; never with the password. Required.
const URL: Text = Text {
    name: "url",
    default: None,
};
/// Name of the environment variable holding the password.
const PASSWORD_ENV: Text = Text {
    name: "password_env",
    default: Some(DEFAULT_PASSWORD_ENV),
};
/// A file holding the password, instead of `password_env`.
const PASSWORD_FILE: Text = Text {
    name: "password_file",
    default: None,
};
/// FTPS: a PEM CA certificate trusted in addition to the system roots.
const CA_FILE: Text = Text {
    name: "ca_file",
    default: None,
};
/// FTPS: accept any server certificate (warned about on every run).
const INSECURE_SKIP_TLS_VERIFY: Flag = Flag {
    name: "insecure_skip_tls_verify",
    default: false,
};
/// FTPS: the newest TLS version offered, `"1.3"` or `"1.2"`. With 1.3 each data
/// connection makes a fresh key exchange; `"1.2"` has it resume the control
/// connection's session without one (cheaper per file for client and server, and the
/// way around servers whose TLS 1.3 session reuse is broken, as rclone's
/// `disable_tls13`).
const TLS_MAX_VERSION: Text = Text {
    name: "tls_max_version",
    default: Some("1.3"),
};
/// SFTP: a private key to log in with instead of a password.
const KEY_FILE: Text = Text {
    name: "key_file",
    default: None,
};
/// SFTP: the environment variable holding the key's passphrase.
const KEY_PASSPHRASE_ENV: Text = Text {
    name: "key_passphrase_env",
    default: None,
};
/// SFTP: the OpenSSH `known_hosts` file the server's key must be in; by default
/// `~/.ssh/known_hosts` of the user running the worker.
const KNOWN_HOSTS: Text = Text {
    name: "known_hosts",
    default: None,
};
/// SFTP: accept any host key (warned about on every run).
const INSECURE_ACCEPT_ANY_HOST_KEY: Flag = Flag {
    name: "insecure_accept_any_host_key",
    default: false,
};
/// A bucket source: `object_store` configuration keys for the store (e.g. `endpoint`,
/// `region`, `allow_http`), overriding the environment, as `destination.options`.
const OPTIONS: Table = Table { name: "options" };
/// Limit in seconds for connecting and for each command or read.
const TIMEOUT_SECS: Integer = Integer {
    name: "timeout_secs",
    min: 1,
    max: 3600,
    default: 30,
};
/// How long a source file may spend failing (waits and failed tries, not the time they
/// spent transferring, over all its operations) before its retries stop; a listing and
/// opening the connection have the same bound each (`pipeline::connection`).
const RETRY_MAX_SECS: Integer = Integer {
    name: "retry_max_secs",
    min: 0,
    max: 86_400,
    default: 300,
};
/// Most entries one folder listing may have: a listing that goes on past it is
/// refused, so a broken server cannot list without end.
const MAX_LISTING_ENTRIES: Integer = Integer {
    name: "max_listing_entries",
    min: 1,
    max: 1_000_000_000,
    default: 1_000_000,
};

/// Logins to the source at once, all workers on the destination together: each
/// connection first takes one of this many slot leases (`_state/leases/connections/`).
/// Providers cap logins per account.
const MAX_CONNECTIONS: Integer = Integer {
    name: "max_connections",
    min: 1,
    max: 64,
    default: 4,
};

/// The remote folder a feed reads, relative to the login folder or absolute (leading
/// `/`): each feed declares its key and default (`feeds::Feed::folder`).
fn folder_key(feed: &Feed) -> Text {
    let (name, default) = feed.folder;
    Text {
        name,
        default: Some(default),
    }
}

/// Every key of `[source]`: its own, then each feed's folder.
pub fn keys() -> Vec<Key> {
    let mut keys = OWN_KEYS.to_vec();
    keys.extend(FEEDS.iter().map(|feed| Key::Text(folder_key(feed))));
    keys
}

const OWN_KEYS: &[Key] = &[
    Key::Text(URL),
    Key::Text(PASSWORD_ENV),
    Key::Text(PASSWORD_FILE),
    Key::Text(CA_FILE),
    Key::Flag(INSECURE_SKIP_TLS_VERIFY),
    Key::Text(TLS_MAX_VERSION),
    Key::Text(KEY_FILE),
    Key::Text(KEY_PASSPHRASE_ENV),
    Key::Text(KNOWN_HOSTS),
    Key::Flag(INSECURE_ACCEPT_ANY_HOST_KEY),
    Key::Integer(TIMEOUT_SECS),
    Key::Integer(RETRY_MAX_SECS),
    Key::Integer(MAX_LISTING_ENTRIES),
    Key::Integer(MAX_CONNECTIONS),
    Key::Table(OPTIONS),
];

/// Where the drop is read from.
#[derive(Debug, Clone)]
pub enum SourceEndpoint {
    /// The provider's server, explicit FTP over TLS (`AUTH TLS` on the plain port).
    Ftps(FtpsSettings),
    /// SFTP over SSH, for accounts that deliver that way.
    Sftp(SftpSettings),
    /// A local or mounted folder in the same layout (`file:///path`).
    LocalDir(PathBuf),
    /// A bucket or container in the same layout (`s3://`, `gs://`, `az://`).
    Bucket(BucketSettings),
    /// None: a configuration without `[source]` but with `[serve]` only receives
    /// pushed records; the commands that read a source refuse it.
    None,
}

/// A bucket source: its URL (bucket and prefix) and the store's options.
#[derive(Clone)]
pub struct BucketSettings {
    pub url: Url,
    /// `object_store` configuration keys, over the environment's.
    pub options: BTreeMap<String, String>,
}

impl std::fmt::Debug for BucketSettings {
    /// Option values can be credentials (`secret_access_key`): only their keys show.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketSettings")
            .field("url", &crate::store::redact(&self.url))
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// How to reach, trust and log in to an SFTP server.
#[derive(Debug, Clone)]
pub struct SftpSettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub auth: SftpAuth,
    /// The OpenSSH `known_hosts` file the server's key must be in.
    pub known_hosts: PathBuf,
    /// Accept any host key (warned about on every run).
    pub insecure_accept_any_host_key: bool,
}

/// How to log in over SSH.
#[derive(Debug, Clone)]
pub enum SftpAuth {
    Password(Secret),
    Key {
        file: PathBuf,
        passphrase: Option<Secret>,
    },
}

/// How to reach and trust an FTPS server.
#[derive(Debug, Clone)]
pub struct FtpsSettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    /// Trusted in addition to the system roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (warned about on every run).
    pub insecure_skip_tls_verify: bool,
    /// The newest TLS version offered.
    pub tls_max_version: TlsVersion,
}

/// A TLS protocol version a client may offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// The provider's server and where the drop lives on it.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub endpoint: SourceEndpoint,
    /// Limit for connecting and for each command or read.
    pub timeout: Duration,
    /// The time a source file may spend failing before its retries stop (a
    /// `RetryBudget`, see `pipeline::connection`).
    pub retry_max: Duration,
    /// Most entries one folder listing may have.
    pub max_listing_entries: u64,
    /// Connections at once over every worker (`source.max_connections`).
    pub max_connections: usize,
    pub folders: RemoteFolders,
}

impl SourceSettings {
    /// `host:port` or the folder, for messages (never the password).
    pub fn endpoint(&self) -> String {
        match &self.endpoint {
            SourceEndpoint::Ftps(ftps) => format!("{}:{}", ftps.host, ftps.port),
            SourceEndpoint::Sftp(sftp) => format!("{}:{}", sftp.host, sftp.port),
            SourceEndpoint::LocalDir(root) => root.display().to_string(),
            SourceEndpoint::Bucket(bucket) => crate::store::redact(&bucket.url),
            SourceEndpoint::None => "(no source)".to_string(),
        }
    }
}

/// Each feed's remote folder, relative to the login folder or absolute (leading `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFolders(BTreeMap<Category, String>);

impl RemoteFolders {
    /// The folder of `category`'s feed.
    pub fn of(&self, category: Category) -> &str {
        self.0.get(&category).map_or("", String::as_str)
    }
}

/// `serve_only`: the file has `[serve]` and no `[source]`, so the URL may be left out.
pub(super) fn read(
    s: &mut Section<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    serve_only: bool,
) -> Option<SourceSettings> {
    let url = URL.read_set(s);
    let password_env = PASSWORD_ENV.read_set(s);
    if let Some(name) = &password_env {
        s.names_variable(name);
    }
    let password_file = PASSWORD_FILE.read_set(s);
    let ca_file = CA_FILE.read_set(s).map(PathBuf::from);
    let insecure = INSECURE_SKIP_TLS_VERIFY.read(s);
    let tls_max_version = match TLS_MAX_VERSION.read(s).as_str() {
        "1.2" => TlsVersion::Tls12,
        "1.3" => TlsVersion::Tls13,
        other => {
            s.issue(
                TLS_MAX_VERSION.name,
                format!("is {other:?}; it must be \"1.3\" (the default) or \"1.2\""),
            );
            TlsVersion::Tls13
        }
    };
    let key_file = KEY_FILE.read_set(s).map(PathBuf::from);
    let key_passphrase_env = KEY_PASSPHRASE_ENV.read_set(s);
    if let Some(name) = &key_passphrase_env {
        s.names_variable(name);
    }
    let known_hosts = KNOWN_HOSTS.read_set(s);
    let accept_any_host_key = INSECURE_ACCEPT_ANY_HOST_KEY.read(s);
    let timeout = TIMEOUT_SECS.read(s);
    let retry_max = RETRY_MAX_SECS.read(s);
    let max_listing_entries = MAX_LISTING_ENTRIES.read(s);
    let max_connections = MAX_CONNECTIONS.read(s);
    let options = OPTIONS.read(s);
    let folders = RemoteFolders(
        FEEDS
            .iter()
            .map(|feed| (feed.category, folder(s, &folder_key(feed))))
            .collect(),
    );

    let settings = |endpoint| SourceSettings {
        endpoint,
        timeout: Duration::from_secs(timeout as u64),
        retry_max: Duration::from_secs(retry_max as u64),
        max_listing_entries: max_listing_entries as u64,
        max_connections: max_connections as usize,
        folders,
    };
    let Some(url) = url else {
        if serve_only {
            return Some(settings(SourceEndpoint::None));
        }
        s.issue(
            "url",
            "is required, e.g. \"ftps://user@ftp.example.com:21\" (only a configuration for serve alone, with [serve] and no [source], goes without)",
        );
        return None;
    };
    let Ok(url) = Url::parse(&url) else {
        s.issue(
            "url",
            "is not a URL; expected \"ftps://user@host:21\", \"s3://bucket/prefix\" or \"file:///path\"",
        );
        return None;
    };
    let endpoint = match url.scheme() {
        "ftps" => {
            if let Some(ca) = &ca_file
                && !ca.is_file()
            {
                s.issue(
                    "ca_file",
                    format!("{} is not a readable file", ca.display()),
                );
            }
            let password = read_password(s, env, password_env, password_file);
            let (host, port, user) = parse_login_url(s, &url, 21)?;
            SourceEndpoint::Ftps(FtpsSettings {
                host,
                port,
                user,
                password: password?,
                ca_file,
                insecure_skip_tls_verify: insecure,
                tls_max_version,
            })
        }
        "sftp" => {
            let auth = match key_file {
                Some(file) => {
                    // The key is a secret too: a command that does not connect may
                    // run where it is not mounted.
                    if s.secrets_required() && !file.is_file() {
                        s.issue(
                            "key_file",
                            format!("{} is not a readable file", file.display()),
                        );
                    }
                    let passphrase = key_passphrase_env.and_then(|name| match env(&name) {
                        Some(value) => Some(Secret::new(value)),
                        None if !s.secrets_required() => None,
                        None => {
                            s.issue(
                                "key_passphrase_env",
                                format!("the environment variable {name} is not set"),
                            );
                            None
                        }
                    });
                    Some(SftpAuth::Key { file, passphrase })
                }
                None => read_password(s, env, password_env, password_file).map(SftpAuth::Password),
            };
            let known_hosts =
                known_hosts.map_or_else(default_known_hosts, |path| expand_home(&path, env));
            if !accept_any_host_key && !known_hosts.is_file() {
                s.issue(
                    "known_hosts",
                    format!("{} does not exist; create it with ssh-keyscan -p PORT HOST >> {0} (and check the fingerprint with the provider)", known_hosts.display()),
                );
            }
            let (host, port, user) = parse_login_url(s, &url, 22)?;
            SourceEndpoint::Sftp(SftpSettings {
                host,
                port,
                user,
                auth: auth?,
                known_hosts,
                insecure_accept_any_host_key: accept_any_host_key,
            })
        }
        "file" => match url.to_file_path() {
            Ok(root) if root.is_dir() => SourceEndpoint::LocalDir(root),
            Ok(root) => {
                s.issue("url", format!("{} is not a folder", root.display()));
                return None;
            }
            Err(()) => {
                s.issue(
                    "url",
                    "a file:// URL needs an absolute path, e.g. file:///srv/drop",
                );
                return None;
            }
        },
        scheme if crate::store::is_cloud(scheme) => {
            if !names_bucket(s, &url) {
                return None;
            }
            check_options(s, &url, &options, "");
            SourceEndpoint::Bucket(BucketSettings {
                url,
                options: options.clone(),
            })
        }
        "ftp" => {
            s.issue("url", "plain ftp:// is not allowed: the provider requires explicit FTP over TLS; use ftps://");
            return None;
        }
        other => {
            s.issue(
                "url",
                format!("scheme {other}:// is not supported; use ftps://, sftp://, s3://, gs://, az:// or file://"),
            );
            return None;
        }
    };
    if !options.is_empty() && !matches!(endpoint, SourceEndpoint::Bucket(_)) {
        s.issue(
            "options",
            "only a bucket source (s3://, gs://, az://) takes options",
        );
    }
    Some(settings(endpoint))
}

fn folder(s: &mut Section<'_>, key: &Text) -> String {
    let value = key.read(s);
    let trimmed = value.trim_matches('/');
    if trimmed.is_empty() || trimmed.split('/').any(|part| part == "..") {
        s.issue(
            key.name,
            "must be a folder path, relative to the login folder or absolute, without \"..\"",
        );
    }
    // An absolute path stays absolute: an SFTP login usually starts in a home folder
    // that is not the root.
    if value.starts_with('/') {
        format!("/{trimmed}")
    } else {
        trimmed.to_string()
    }
}

/// `~/.ssh/known_hosts` of the user running the worker.
fn default_known_hosts() -> PathBuf {
    std::env::var_os("HOME").map_or_else(
        || PathBuf::from(".ssh/known_hosts"),
        |home| PathBuf::from(home).join(".ssh/known_hosts"),
    )
}

fn expand_home(path: &str, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    match (path.strip_prefix("~/"), env("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

fn parse_login_url(
    s: &mut Section<'_>,
    url: &Url,
    default_port: u16,
) -> Option<(String, u16, String)> {
    if url.password().is_some() {
        // Never echo the URL back: it holds the secret.
        s.issue(
            "url",
            "must not contain a password; use password_env or password_file",
        );
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        s.issue("url", "has no host name");
        return None;
    };
    if url.username().is_empty() {
        s.issue(
            "url",
            format!(
                "has no user name; write it as {}://USER@host:{default_port}",
                url.scheme()
            ),
        );
        return None;
    }
    let user = percent_decode(url.username());
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Some((host, url.port().unwrap_or(default_port), user))
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("u={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn read_password(
    s: &mut Section<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    password_env: Option<String>,
    password_file: Option<String>,
) -> Option<Secret> {
    if !s.secrets_required() {
        // Never used: the command does not connect to the source.
        return Some(Secret::new(String::new()));
    }
    match (password_env, password_file) {
        (Some(_), Some(_)) => {
            s.issue(
                "password_file",
                "set either password_env or password_file, not both",
            );
            None
        }
        (None, Some(file)) => match std::fs::read_to_string(&file) {
            // A trailing newline is an artefact of how secret files are written.
            Ok(text) => Some(Secret::new(text.trim_end_matches(['\r', '\n']).to_string())),
            Err(e) => {
                s.issue("password_file", format!("cannot read {file}: {e}"));
                None
            }
        },
        (name, None) => {
            let name = name.unwrap_or_else(|| DEFAULT_PASSWORD_ENV.to_string());
            match env(&name) {
                Some(value) => Some(Secret::new(value)),
                None => {
                    s.issue(
                        "password_env",
                        format!("the environment variable {name} is not set; set it to the source password, or use password_file"),
                    );
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Settings;
    use super::super::tests::env_with_password;
    use super::*;

    #[test]
    fn minimal_config_gets_defaults() {
        let settings = Settings::parse(
            "[source]\nurl = \"ftps://drop@ftp.example.com\"\n[destination]\nurl = \"file:///tmp/out\"\n",
            &env_with_password,
        )
        .unwrap();
        let SourceEndpoint::Ftps(ftps) = &settings.source.endpoint else {
            panic!("an FTPS source");
        };
        assert_eq!(ftps.host, "ftp.example.com");
        assert_eq!(ftps.port, 21);
        assert_eq!(ftps.user, "drop");
        assert_eq!(ftps.password.expose(), "s3cret");
        assert_eq!(
            settings.source.folders.of(crate::feeds::cdr::CATEGORY),
            "CDRs"
        );
        assert_eq!(settings.source.timeout, Duration::from_secs(30));
    }

    #[test]
    fn folders_keep_a_leading_slash_and_lose_trailing_ones() {
        let settings = Settings::parse(
            "[source]\nurl = \"ftps://drop@h\"\ncdrs = \"/data/CDRs/\"\nrecordings = \"rec/\"\n[destination]\nurl = \"file:///x\"\n",
            &env_with_password,
        )
        .unwrap();
        assert_eq!(
            settings.source.folders.of(crate::feeds::cdr::CATEGORY),
            "/data/CDRs"
        );
        assert_eq!(
            settings
                .source
                .folders
                .of(crate::feeds::recordings::CATEGORY),
            "rec"
        );
        for bad in ["/", "a/../b"] {
            let issues = Settings::parse(
                &format!("[source]\nurl = \"ftps://drop@h\"\ncdrs = \"{bad}\"\n[destination]\nurl = \"file:///x\"\n"),
                &env_with_password,
            )
            .unwrap_err();
            assert_eq!(issues[0].key, "source.cdrs", "{bad}");
        }
    }

    #[test]
    fn a_bucket_source_takes_its_store_options_and_needs_no_password() {
        let settings = Settings::parse(
            "[source]\nurl = \"s3://drop-bucket/pbx/\"\n[source.options]\nendpoint = \"http://127.0.0.1:9000\"\nsecret_access_key = \"hunter2\"\n[destination]\nurl = \"file:///x\"\n",
            &|_| None,
        )
        .unwrap_or_else(|issues| panic!("{issues:?}"));
        let SourceEndpoint::Bucket(bucket) = &settings.source.endpoint else {
            panic!("a bucket source");
        };
        assert_eq!(bucket.url.as_str(), "s3://drop-bucket/pbx/");
        assert_eq!(bucket.options["endpoint"], "http://127.0.0.1:9000");
        assert_eq!(settings.source.endpoint(), "s3://drop-bucket/pbx/");
        // Option values can be credentials.
        assert!(!format!("{settings:?}").contains("hunter2"));

        for (text, key, message) in [
            (
                "url = \"gs://\"",
                "source.url",
                "names no bucket; write it as \"gs://BUCKET/prefix\"",
            ),
            (
                "url = \"az://c/p\"\n[source.options]\nbucket_region = \"x\"",
                "source.options",
                "bucket_region: not az:// configuration keys",
            ),
            (
                "url = \"ftps://drop@h\"\n[source.options]\nregion = \"x\"",
                "source.options",
                "only a bucket source",
            ),
        ] {
            let issues = Settings::parse(
                &format!("[source]\n{text}\n[destination]\nurl = \"file:///x\"\n"),
                &env_with_password,
            )
            .unwrap_err();
            assert_eq!(issues.len(), 1, "{text}: {issues:?}");
            assert_eq!(issues[0].key, key, "{text}");
            assert!(issues[0].message.starts_with(message), "{issues:?}");
        }
    }

    #[test]
    fn password_in_url_is_refused_without_echoing_it() {
        let issues = Settings::parse(
            "[source]\nurl = \"ftps://drop:hunter2@h\"\n[destination]\nurl = \"file:///x\"\n",
            &env_with_password,
        )
        .unwrap_err();
        assert_eq!(issues.len(), 1);
        assert!(!issues[0].to_string().contains("hunter2"));
    }
}
