//! Configuration: one TOML file (plus environment overrides) turned into validated
//! [`Settings`] in one pure step, reporting every problem at once.

mod reader;
mod secret;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use reader::{ConfigIssue, ENV_PREFIX, env_name};
use reader::{Reader, Section};
pub use secret::Secret;
use url::Url;

use crate::feeds::{self, FEEDS};
use crate::formats::queue_zip::ZipLimits;
use crate::model::Category;
use crate::retention::{Keep, Target};
use crate::schedule::{self, ScheduleSettings};
use crate::sink::destination;

/// The environment variable holding the source password unless `password_env` says otherwise.
pub const DEFAULT_PASSWORD_ENV: &str = "CDR_INGEST_SOURCE_PASSWORD";

/// `CDR_INGEST_*` variables that override no key and are still not mistakes: the
/// password's default name, the global options (cli.rs), the fault-injection switch
/// (crash.rs) and the binary the benchmark scripts run (scripts/bench-retention.sh).
const OTHER_VARIABLES: [&str; 5] = [
    DEFAULT_PASSWORD_ENV,
    "CDR_INGEST_CONFIG",
    "CDR_INGEST_LOG_FORMAT",
    "CDR_INGEST_CRASH_AT",
    "CDR_INGEST_BIN",
];

/// Everything the worker needs, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: SourceSettings,
    pub destination: DestinationSettings,
    pub ingest: IngestSettings,
    pub schedule: ScheduleSettings,
    pub retention: RetentionSettings,
}

/// How long each feed's data (and the quarantine) is kept in the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Per feed; a feed not listed is kept forever.
    pub data: BTreeMap<Category, Keep>,
    pub quarantine: Keep,
}

impl RetentionSettings {
    pub fn keep(&self, target: Target) -> Keep {
        match target {
            Target::Data(category) => self.data.get(&category).copied().unwrap_or(Keep::Forever),
            Target::Quarantine => self.quarantine,
        }
    }
}

/// How files are handled once found.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// The data categories to ingest, in the order a day is processed.
    pub categories: Vec<Category>,
    /// Caps on what a queue-call zip may expand to.
    pub zip_limits: ZipLimits,
    /// Tries of a damaged file (it may still be uploading) before it is reported as failed.
    pub max_tries: u32,
    /// A recording modified more recently than this may still be uploading: left for later.
    pub recordings_min_age: Duration,
    /// Connections used at once to copy recordings.
    pub transfers: usize,
    /// How long a worker's claim on a unit of work (a category of a day) lasts if it
    /// is not released, e.g. because the worker crashed.
    pub lease: Duration,
    /// After SIGTERM/SIGINT, how long files in flight may take to finish before they
    /// are abandoned.
    pub shutdown_grace: Duration,
}

/// Where the drop is read from.
#[derive(Debug, Clone)]
pub enum SourceEndpoint {
    /// The provider's server, explicit FTP over TLS (`AUTH TLS` on the plain port).
    Ftps(FtpsSettings),
    /// SFTP over SSH, for accounts that deliver that way.
    Sftp(SftpSettings),
    /// A local or mounted folder in the same layout (`file:///path`).
    LocalDir(PathBuf),
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
}

/// The provider's server and where the drop lives on it.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub endpoint: SourceEndpoint,
    /// Limit for connecting and for each command or read.
    pub timeout: Duration,
    pub folders: RemoteFolders,
}

impl SourceSettings {
    /// `host:port` or the folder, for messages (never the password).
    pub fn endpoint(&self) -> String {
        match &self.endpoint {
            SourceEndpoint::Ftps(ftps) => format!("{}:{}", ftps.host, ftps.port),
            SourceEndpoint::Sftp(sftp) => format!("{}:{}", sftp.host, sftp.port),
            SourceEndpoint::LocalDir(root) => root.display().to_string(),
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

/// The bucket or folder that receives the output and the ledger.
#[derive(Debug, Clone)]
pub struct DestinationSettings {
    pub url: Url,
    /// `object_store` configuration keys for the store (e.g. `endpoint`, `region`).
    pub options: BTreeMap<String, String>,
}

/// Every problem found in a configuration.
#[derive(Debug)]
pub struct ConfigErrors {
    pub file: PathBuf,
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        let from_env = self.issues.iter().filter(|i| i.variable.is_some()).count();
        let file = self.file.display();
        // Say where to look: a value from a variable is not in the file.
        let (whence, verb) = if from_env == 0 {
            (file.to_string(), "has")
        } else if from_env == n {
            (
                format!("the {ENV_PREFIX}* environment variables (with {file})"),
                "have",
            )
        } else {
            (
                format!("{file} and the {ENV_PREFIX}* environment variables"),
                "have",
            )
        };
        write!(
            f,
            "{whence} {verb} {n} problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for issue in &self.issues {
            // A multi-line message (a TOML error with its caret) stays in lines,
            // indented under its item.
            write!(f, "\n  - {}", issue.to_string().replace('\n', "\n    "))?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Settings {
    /// Reads and validates `file`, with overrides from the process environment.
    pub fn load(file: &Path) -> Result<Settings, ConfigErrors> {
        Settings::load_with(file, true)
    }

    /// The same for commands that never connect to the source (`status`,
    /// `quarantine`, `retention`, `purge`): its secrets need not be set.
    pub fn load_offline(file: &Path) -> Result<Settings, ConfigErrors> {
        Settings::load_with(file, false)
    }

    fn load_with(file: &Path, secrets_required: bool) -> Result<Settings, ConfigErrors> {
        let env = |name: &str| std::env::var(name).ok();
        let env_names: Vec<String> = std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .filter(|name| name.starts_with(ENV_PREFIX))
            .collect();
        let text = std::fs::read_to_string(file).map_err(|e| ConfigErrors {
            file: file.to_owned(),
            issues: vec![ConfigIssue::in_file(
                "(file)",
                format!("cannot read it: {e}"),
            )],
        })?;
        Settings::parse_with(&text, &env, &env_names, secrets_required).map_err(|issues| {
            ConfigErrors {
                file: file.to_owned(),
                issues,
            }
        })
    }

    /// Validates a configuration text; `env` supplies overrides and secrets. (It
    /// cannot list the environment, so a misspelt override is found by [`Settings::load`].)
    pub fn parse(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, Vec<ConfigIssue>> {
        Settings::parse_with(text, env, &[], true)
    }

    /// `env_names`: the environment's variables, to find `CDR_INGEST_*` ones that
    /// override no key.
    fn parse_with(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        env_names: &[String],
        secrets_required: bool,
    ) -> Result<Settings, Vec<ConfigIssue>> {
        let root: toml::Table = toml::from_str(text).map_err(|e| {
            // The error's lines (the line quoted, a caret under the column) are kept.
            vec![ConfigIssue::in_file("(syntax)", e.to_string().trim_end())]
        })?;
        let mut reader = Reader::new(root, env, secrets_required);
        let mut section = reader.section("source");
        let source = read_source(&mut section, env);
        reader.close(section);
        let mut section = reader.section("destination");
        let destination = read_destination(&mut section);
        reader.close(section);
        let mut section = reader.section("ingest");
        let ingest = read_ingest(&mut section);
        reader.close(section);
        let mut section = reader.section("schedule");
        let schedule = read_schedule(&mut section);
        reader.close(section);
        let mut section = reader.section("retention");
        let retention = read_retention(&mut section);
        reader.close(section);
        let issues = reader.finish(env_names, &OTHER_VARIABLES);
        match (source, destination) {
            (Some(source), Some(destination)) if issues.is_empty() => Ok(Settings {
                source,
                destination,
                ingest,
                schedule,
                retention,
            }),
            _ => Err(issues),
        }
    }
}

fn read_source(
    s: &mut Section<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<SourceSettings> {
    let url = s.string("url");
    let password_env = s.string("password_env");
    if let Some(name) = &password_env {
        s.names_variable(name);
    }
    let password_file = s.string("password_file");
    let ca_file = s.string("ca_file").map(PathBuf::from);
    let insecure = s.bool("insecure_skip_tls_verify").unwrap_or(false);
    let key_file = s.string("key_file").map(PathBuf::from);
    let key_passphrase_env = s.string("key_passphrase_env");
    if let Some(name) = &key_passphrase_env {
        s.names_variable(name);
    }
    let known_hosts = s.string("known_hosts");
    let accept_any_host_key = s.bool("insecure_accept_any_host_key").unwrap_or(false);
    let timeout = s.integer("timeout_secs", 1..=3600).unwrap_or(30);
    let folders = RemoteFolders(
        FEEDS
            .iter()
            .map(|feed| {
                let (key, default) = feed.folder;
                (feed.category, folder(s, key, default))
            })
            .collect(),
    );

    let Some(url) = url else {
        s.issue(
            "url",
            "is required, e.g. \"ftps://user@ftp.example.com:21\"",
        );
        return None;
    };
    let Ok(url) = Url::parse(&url) else {
        s.issue(
            "url",
            "is not a URL; expected \"ftps://user@host:21\" or \"file:///path\"",
        );
        return None;
    };
    let endpoint = match url.scheme() {
        "ftps" => {
            if let Some(ca) = &ca_file {
                if !ca.is_file() {
                    s.issue(
                        "ca_file",
                        format!("{} is not a readable file", ca.display()),
                    );
                }
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
            })
        }
        "sftp" => {
            let auth = match key_file {
                Some(file) => {
                    if !file.is_file() {
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
        "ftp" => {
            s.issue("url", "plain ftp:// is not allowed: the provider requires explicit FTP over TLS; use ftps://");
            return None;
        }
        other => {
            s.issue(
                "url",
                format!("scheme {other}:// is not supported; use ftps:// or file://"),
            );
            return None;
        }
    };
    Some(SourceSettings {
        endpoint,
        timeout: Duration::from_secs(timeout as u64),
        folders,
    })
}

fn folder(s: &mut Section<'_>, key: &str, default: &str) -> String {
    let value = s.string(key).unwrap_or_else(|| default.to_string());
    let trimmed = value.trim_matches('/');
    if trimmed.is_empty() || trimmed.split('/').any(|part| part == "..") {
        s.issue(
            key,
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

fn read_ingest(s: &mut Section<'_>) -> IngestSettings {
    let defaults = ZipLimits::default();
    let number =
        |s: &mut Section<'_>, key: &str, range: std::ops::RangeInclusive<i64>, default: u64| {
            s.integer(key, range).map_or(default, |n| n as u64)
        };
    let categories = match s.string_list("categories") {
        None => FEEDS.iter().map(|f| f.category).collect(),
        Some(names) => {
            let mut categories = Vec::new();
            for name in &names {
                match feeds::by_name(name).map(|f| f.category) {
                    Some(c) if !categories.contains(&c) => categories.push(c),
                    Some(_) => {}
                    None => s.issue(
                        "categories",
                        format!("{name:?} is not a category; allowed: {}", feeds::names()),
                    ),
                }
            }
            if names.is_empty() {
                s.issue(
                    "categories",
                    format!("must name at least one of {}", feeds::names()),
                );
            }
            categories.sort_by_key(|c| feeds::position(*c));
            categories
        }
    };
    IngestSettings {
        categories,
        zip_limits: ZipLimits {
            max_entries: number(
                s,
                "zip_max_entries",
                1..=100_000,
                defaults.max_entries as u64,
            ) as usize,
            max_uncompressed_bytes: number(
                s,
                "zip_max_uncompressed_bytes",
                1..=1 << 50,
                defaults.max_uncompressed_bytes,
            ),
            max_compression_ratio: number(
                s,
                "zip_max_compression_ratio",
                1..=100_000,
                defaults.max_compression_ratio,
            ),
        },
        max_tries: number(s, "max_tries", 1..=1000, 5) as u32,
        recordings_min_age: Duration::from_secs(number(
            s,
            "recordings_min_age_secs",
            0..=86_400,
            120,
        )),
        transfers: number(s, "transfers", 1..=64, 4) as usize,
        lease: Duration::from_secs(number(s, "lease_secs", 10..=7 * 86_400, 3600)),
        shutdown_grace: Duration::from_secs(number(s, "shutdown_grace_secs", 0..=3600, 30)),
    }
}

fn read_retention(s: &mut Section<'_>) -> RetentionSettings {
    let mut keep = |key: &str| match s.take_scalar(key) {
        None => Keep::Forever,
        Some(text) => Keep::parse(&text).unwrap_or_else(|| {
            s.issue(
                key,
                format!("is {text:?}; it must be \"forever\" or a number of days from 1 to 999"),
            );
            Keep::Forever
        }),
    };
    RetentionSettings {
        data: FEEDS
            .iter()
            .map(|feed| (feed.category, keep(feed.category.as_str())))
            .collect(),
        quarantine: keep("quarantine"),
    }
}

fn read_schedule(s: &mut Section<'_>) -> ScheduleSettings {
    let defaults = ScheduleSettings::default();
    let lookback_days = s
        .integer("lookback_days", 1..=3650)
        .map_or(defaults.lookback_days, |n| n as u32);
    let late_after = s
        .integer("late_after_hours", 0..=24 * 365)
        .map_or(defaults.late_after, |h| {
            Duration::from_secs(h as u64 * 3600)
        });
    let drop_time = match s.string("drop_time_utc") {
        None => defaults.drop_time,
        Some(text) => match chrono::NaiveTime::parse_from_str(&text, "%H:%M") {
            Ok(time) => time,
            Err(_) => {
                s.issue(
                    "drop_time_utc",
                    "must be a time of day as HH:MM, e.g. \"01:00\"",
                );
                defaults.drop_time
            }
        },
    };
    let mut passes = Vec::new();
    let cron_text = s
        .string("cron")
        .unwrap_or_else(|| schedule::DEFAULT_CRON.to_string());
    let extra = s.string_list("extra_cron").unwrap_or_default();
    for (key, text) in
        std::iter::once(("cron", cron_text)).chain(extra.into_iter().map(|t| ("extra_cron", t)))
    {
        match cron::Schedule::from_str(&text) {
            Ok(schedule) => passes.push(schedule),
            // The parser's message points at the column on a line of its own: kept.
            Err(e) => s.issue(
                key,
                format!("{text:?} is not a cron expression; use 6 fields, seconds first, in UTC, e.g. \"0 15 1 * * *\":\n{}", e.to_string().trim_end()),
            ),
        }
    }
    ScheduleSettings {
        lookback_days,
        drop_time,
        late_after,
        passes,
    }
}

fn read_destination(s: &mut Section<'_>) -> Option<DestinationSettings> {
    let options = s.string_map("options").unwrap_or_default();
    let Some(text) = s.string("url") else {
        s.issue(
            "url",
            "is required, e.g. \"s3://bucket/prefix\" or \"file:///var/lib/cdr-ingest\"",
        );
        return None;
    };
    let Ok(url) = Url::parse(&text) else {
        s.issue(
            "url",
            "is not a URL; expected e.g. \"s3://bucket/prefix\" or \"file:///var/lib/cdr-ingest\"",
        );
        return None;
    };
    if !destination::supported(&url) {
        s.issue(
            "url",
            format!(
                "scheme {}:// is not supported; use s3://, gs://, az://, file:// or memory://",
                url.scheme()
            ),
        );
        return None;
    }
    // Found here, offline, rather than when a run first opens the store.
    match url.scheme() {
        "memory" => {}
        "file" => {
            if url.to_file_path().is_err() {
                s.issue(
                    "url",
                    "a file:// URL needs an absolute path, e.g. \"file:///var/lib/cdr-ingest\"",
                );
                return None;
            }
        }
        scheme => {
            if url.host_str().is_none_or(str::is_empty) {
                let bucket = if matches!(scheme, "s3" | "s3a" | "gs") {
                    "bucket"
                } else {
                    "container"
                };
                s.issue(
                    "url",
                    format!(
                        "names no {bucket}; write it as \"{scheme}://{}/prefix\"",
                        bucket.to_ascii_uppercase()
                    ),
                );
                return None;
            }
        }
    }
    let unknown = destination::unknown_options(&url, &options);
    if !unknown.is_empty() {
        let hint = match url.scheme() {
            "file" | "memory" => "this store takes no options".to_string(),
            scheme => format!(
                "not {scheme}:// configuration keys of object_store (e.g. endpoint, region, allow_http)"
            ),
        };
        s.issue("options", format!("{}: {hint}", unknown.join(", ")));
    }
    Some(DestinationSettings { url, options })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with_password(name: &str) -> Option<String> {
        (name == DEFAULT_PASSWORD_ENV).then(|| "s3cret".to_string())
    }

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
        assert_eq!(settings.source.folders.of(feeds::cdr::CATEGORY), "CDRs");
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
            settings.source.folders.of(feeds::cdr::CATEGORY),
            "/data/CDRs"
        );
        assert_eq!(
            settings.source.folders.of(feeds::recordings::CATEGORY),
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
    fn all_problems_are_reported_together() {
        let issues = Settings::parse(
            "[source]\nurl = \"ftps://h\"\ntimeout_secs = 0\ncolour = 1\n[destination]\nurl = \"gopher://x\"\n",
            &|_| None,
        )
        .unwrap_err();
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "source.timeout_secs",
                "source.password_env",
                "source.url",
                "source.colour",
                "destination.url"
            ]
        );
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

    #[test]
    fn a_cloud_destination_needs_a_bucket_and_a_file_one_an_absolute_path() {
        for url in ["s3://", "gs://", "az://", "file://relative/out"] {
            let issues = Settings::parse(
                &format!("[source]\nurl = \"ftps://drop@h\"\n[destination]\nurl = \"{url}\"\n"),
                &env_with_password,
            )
            .unwrap_err();
            assert_eq!(issues.len(), 1, "{url}: {issues:?}");
            assert_eq!(issues[0].key, "destination.url", "{url}");
        }
        assert!(
            issues_of("[destination]\nurl = \"s3://\"\n")[0]
                .message
                .starts_with("names no bucket; write it as \"s3://BUCKET/prefix\"")
        );
    }

    fn issues_of(rest: &str) -> Vec<ConfigIssue> {
        Settings::parse(
            &format!("[source]\nurl = \"ftps://drop@h\"\n{rest}"),
            &env_with_password,
        )
        .unwrap_err()
    }

    #[test]
    fn problems_from_variables_name_them_and_misspelt_ones_are_problems() {
        let env = |name: &str| match name {
            "CDR_INGEST_SOURCE_TIMEOUT_SECS" => Some("abc".to_string()),
            "CDR_INGEST_FTP_PASSWORD" => Some("s3cret".to_string()),
            _ => None,
        };
        let names = [
            "CDR_INGEST_SOURCE_TIMEOUT_SECS",
            "CDR_INGEST_SCHEDULE_LOOKBACK",
            "CDR_INGEST_FTP_PASSWORD",
            "CDR_INGEST_LOG_FORMAT",
        ]
        .map(String::from);
        let issues = Settings::parse_with(
            "[source]\nurl = \"ftps://drop@h\"\npassword_env = \"CDR_INGEST_FTP_PASSWORD\"\n[destination]\nurl = \"file:///x\"\n",
            &env,
            &names,
            true,
        )
        .unwrap_err();
        let keys: Vec<(&str, Option<&str>)> = issues
            .iter()
            .map(|i| (i.key.as_str(), i.variable.as_deref()))
            .collect();
        assert_eq!(
            keys,
            [
                (
                    "source.timeout_secs",
                    Some("CDR_INGEST_SOURCE_TIMEOUT_SECS")
                ),
                (
                    "CDR_INGEST_SCHEDULE_LOOKBACK",
                    Some("CDR_INGEST_SCHEDULE_LOOKBACK")
                ),
            ]
        );
        let errors = ConfigErrors {
            file: PathBuf::from("local.toml"),
            issues: issues[..1].to_vec(),
        };
        assert_eq!(
            errors.to_string(),
            "the CDR_INGEST_* environment variables (with local.toml) have 1 problem:\n  - CDR_INGEST_SOURCE_TIMEOUT_SECS (overriding source.timeout_secs): must be a whole number from 1 to 3600"
        );
    }

    #[test]
    fn toml_and_cron_errors_keep_their_lines() {
        let issues =
            Settings::parse("[source]\nurl = \"ftps://drop@h\n", &env_with_password).unwrap_err();
        assert_eq!(issues[0].key, "(syntax)");
        let errors = ConfigErrors {
            file: PathBuf::from("local.toml"),
            issues,
        }
        .to_string();
        let lines: Vec<&str> = errors.lines().collect();
        assert!(lines.len() > 3, "{errors}");
        assert!(
            lines[1].starts_with("  - (syntax): TOML parse error at line 2"),
            "{errors}"
        );
        assert!(
            lines[2..].iter().all(|l| l.starts_with("    ")),
            "indented under its item: {errors}"
        );
        assert!(lines.iter().any(|l| l.contains('^')), "{errors}");

        let issues =
            issues_of("[destination]\nurl = \"file:///x\"\n[schedule]\ncron = \"0 15 1 * *\"\n");
        assert_eq!(issues[0].key, "schedule.cron");
        assert!(issues[0].message.contains(":\n"), "{:?}", issues[0].message);
    }
}
