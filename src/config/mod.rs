//! Configuration: one TOML file (plus environment overrides) turned into validated
//! [`Settings`] in one pure step, reporting every problem at once.
//!
//! One module per section (`source`, `destination`, `ingest`, `schedule`, `retention`,
//! `metrics`, `serve`) declares its keys (name, kind, range, default, doc: [`key`]) and reads
//! them into its settings; this module holds [`Settings`], loading, and the collection
//! of every problem, with [`reader`] (keys taken out of the table, environment
//! overrides, unknown keys and variables). A file with `[[accounts]]` is read as one
//! [`Settings`] per account ([`accounts`]).

mod accounts;
mod destination;
mod ingest;
mod key;
mod metrics;
mod reader;
mod retention;
mod schedule;
mod secret;
mod serve;
mod source;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

pub use accounts::{Account, OVERRIDABLE, check_name};
pub use destination::DestinationSettings;
pub use ingest::{ChangedSettings, IngestSettings, Transfers};
pub use key::{Key, NumberOrWord};
pub use metrics::{MetricsSettings, Pushgateway};
pub use reader::{ConfigIssue, ENV_PREFIX, env_name};
use reader::{Reader, Section, stray_variables};
pub use retention::RetentionSettings;
pub use schedule::ScheduleSettings;
pub use secret::Secret;
pub use serve::{RecordingFetch, ServeSettings};
pub use source::{
    BucketSettings, DEFAULT_PASSWORD_ENV, FtpsSettings, RemoteFolders, SftpAuth, SftpSettings,
    SourceEndpoint, SourceSettings, TlsVersion,
};

/// Every section and its keys: what the reader accepts (the feeds add theirs).
pub fn sections() -> [(&'static str, Vec<Key>); 7] {
    [
        ("source", source::keys()),
        ("destination", destination::KEYS.to_vec()),
        ("ingest", ingest::keys()),
        ("schedule", schedule::KEYS.to_vec()),
        ("retention", retention::keys()),
        ("metrics", metrics::KEYS.to_vec()),
        ("serve", serve::KEYS.to_vec()),
    ]
}

/// `CDR_INGEST_*` variables that override no key and are still not mistakes: the
/// password's default name, the global options (cli.rs), the fault-injection switches
/// (crash.rs) and the binary the benchmark scripts run (scripts/bench-retention.sh).
const OTHER_VARIABLES: [&str; 6] = [
    DEFAULT_PASSWORD_ENV,
    "CDR_INGEST_CONFIG",
    "CDR_INGEST_LOG_FORMAT",
    "CDR_INGEST_CRASH_AT",
    "CDR_INGEST_PAUSE_AT",
    "CDR_INGEST_BIN",
];

/// Everything the worker needs, checked: for a file with `[[accounts]]`, one account's.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The account, in a file with `[[accounts]]`; its objects are under its prefix.
    pub account: Option<Account>,
    pub source: SourceSettings,
    pub destination: DestinationSettings,
    pub ingest: IngestSettings,
    pub schedule: ScheduleSettings,
    pub retention: RetentionSettings,
    pub metrics: MetricsSettings,
    pub serve: ServeSettings,
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
    /// Reads and validates `file`, which must have no `[[accounts]]`, with overrides
    /// from the process environment.
    pub fn load(file: &Path) -> Result<Settings, ConfigErrors> {
        single(file, Settings::load_all(file)?)
    }

    /// The same for commands that never connect to the source (`status`,
    /// `quarantine`, `verify`, `retention`, `purge`): its secrets (password, key
    /// file, passphrase) need not be there.
    pub fn load_offline(file: &Path) -> Result<Settings, ConfigErrors> {
        single(file, Settings::load_all_offline(file)?)
    }

    /// Reads and validates `file`: the settings of each of its `[[accounts]]`, in the
    /// file's order, or of the file alone when it has none.
    pub fn load_all(file: &Path) -> Result<Vec<Settings>, ConfigErrors> {
        Settings::load_with(file, true)
    }

    /// [`Settings::load_all`] without the source's secrets.
    pub fn load_all_offline(file: &Path) -> Result<Vec<Settings>, ConfigErrors> {
        Settings::load_with(file, false)
    }

    fn load_with(file: &Path, secrets_required: bool) -> Result<Vec<Settings>, ConfigErrors> {
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

    /// Validates a configuration text without `[[accounts]]`; `env` supplies overrides
    /// and secrets. (It cannot list the environment, so a misspelt override is found
    /// by [`Settings::load`].)
    pub fn parse(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, Vec<ConfigIssue>> {
        only(Settings::parse_all(text, env)?)
    }

    /// Validates a configuration text: each account's settings, or the file's alone.
    pub fn parse_all(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<Settings>, Vec<ConfigIssue>> {
        Settings::parse_with(text, env, &[], true)
    }

    /// `env_names`: the environment's variables, to find `CDR_INGEST_*` ones that
    /// override no key.
    fn parse_with(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        env_names: &[String],
        secrets_required: bool,
    ) -> Result<Vec<Settings>, Vec<ConfigIssue>> {
        let mut root: toml::Table = toml::from_str(text).map_err(|e| {
            // The error's lines (the line quoted, a caret under the column) are kept.
            vec![ConfigIssue::in_file("(syntax)", e.to_string().trim_end())]
        })?;
        let Some(accounts) = accounts::expand(&mut root)? else {
            let (settings, mut issues, known) = Settings::read(root, env, secrets_required);
            issues.extend(stray_variables(env_names, &known, &OTHER_VARIABLES));
            return match settings {
                Some(settings) if issues.is_empty() => Ok(vec![settings]),
                _ => Err(issues),
            };
        };
        // Each account is read as a file of its own; a problem with a shared key is
        // the same in every account and reported once, and a variable is known if any
        // account knows it (each names its own password's).
        let mut all = Vec::new();
        let mut issues: Vec<ConfigIssue> = Vec::new();
        let mut known = BTreeSet::new();
        for expanded in accounts {
            let (settings, found, variables) =
                Settings::read(expanded.root.clone(), env, secrets_required);
            known.extend(variables);
            for issue in found {
                let issue = accounts::attribute(issue, &expanded, &root);
                if !issues.contains(&issue) {
                    issues.push(issue);
                }
            }
            if let Some(mut settings) = settings {
                settings.destination.url =
                    accounts::under(&settings.destination.url, &expanded.account.prefix);
                settings.account = Some(expanded.account);
                all.push(settings);
            }
        }
        issues.extend(stray_variables(env_names, &known, &OTHER_VARIABLES));
        if issues.is_empty() {
            Ok(all)
        } else {
            Err(issues)
        }
    }

    /// Reads the sections of `root`: the settings if the source and destination could
    /// be read, every problem, and the variables the configuration knows.
    fn read(
        root: toml::Table,
        env: &dyn Fn(&str) -> Option<String>,
        secrets_required: bool,
    ) -> (Option<Settings>, Vec<ConfigIssue>, BTreeSet<String>) {
        let serve_only = root.contains_key("serve") && !root.contains_key("source");
        let mut reader = Reader::new(root, env, secrets_required);
        let source = read_section(&mut reader, "source", |s| source::read(s, env, serve_only));
        let destination = read_section(&mut reader, "destination", destination::read);
        let ingest = read_section(&mut reader, "ingest", ingest::read);
        let schedule = read_section(&mut reader, "schedule", schedule::read);
        let retention = read_section(&mut reader, "retention", retention::read);
        let metrics = read_section(&mut reader, "metrics", metrics::read);
        let serve = read_section(&mut reader, "serve", |s| serve::read(s, env));
        let (issues, known) = reader.finish_keys();
        let settings = match (source, destination) {
            (Some(source), Some(destination)) => Some(Settings {
                account: None,
                source,
                destination,
                ingest,
                schedule,
                retention,
                metrics,
                serve,
            }),
            _ => None,
        };
        (settings, issues, known)
    }
}

/// The one settings of a file read by a caller that takes no accounts.
fn single(file: &Path, all: Vec<Settings>) -> Result<Settings, ConfigErrors> {
    only(all).map_err(|issues| ConfigErrors {
        file: file.to_owned(),
        issues,
    })
}

fn only(mut all: Vec<Settings>) -> Result<Settings, Vec<ConfigIssue>> {
    if all.len() == 1 && all[0].account.is_none() {
        Ok(all.remove(0))
    } else {
        Err(vec![ConfigIssue::in_file(
            "accounts",
            "this needs a configuration without [[accounts]]",
        )])
    }
}

/// Reads `[name]` with `read`, which must ask for each key of its `KEYS` and only
/// those, so that [`sections`] is the list of keys the reader accepts.
fn read_section<'a, T>(
    reader: &mut Reader<'a>,
    name: &'static str,
    read: impl FnOnce(&mut Section<'a>) -> T,
) -> T {
    let mut section = reader.section(name);
    let value = read(&mut section);
    if cfg!(debug_assertions) {
        let mut read: Vec<&str> = section.keys_read().iter().map(String::as_str).collect();
        let sections = sections();
        let keys = sections.iter().find(|(n, _)| *n == name).map(|(_, k)| k);
        let mut listed: Vec<&str> = keys.into_iter().flatten().map(Key::name).collect();
        read.sort_unstable();
        listed.sort_unstable();
        assert_eq!(read, listed, "the keys [{name}] reads are not its KEYS");
    }
    reader.close(section);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn env_with_password(name: &str) -> Option<String> {
        (name == DEFAULT_PASSWORD_ENV).then(|| "s3cret".to_string())
    }

    pub(super) fn issues_of(rest: &str) -> Vec<ConfigIssue> {
        Settings::parse(
            &format!("[source]\nurl = \"ftps://drop@h\"\n{rest}"),
            &env_with_password,
        )
        .unwrap_err()
    }

    /// The settings of `[source]` on an FTPS URL followed by `rest`.
    pub(super) fn settings_of(rest: &str) -> Settings {
        Settings::parse(
            &format!("[source]\nurl = \"ftps://drop@h\"\n{rest}"),
            &env_with_password,
        )
        .unwrap_or_else(|issues| panic!("{issues:?}"))
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

    const TWO_ACCOUNTS: &str = "[destination]\nurl = \"s3://b/cdr\"\n[source]\ntimeout_secs = 10\ncdrs = \"calls\"\n[ingest]\nmax_tries = 3\n\
        [[accounts]]\nname = \"acme\"\n[accounts.source]\nurl = \"ftps://acme@h\"\npassword_env = \"ACME_PASSWORD\"\n\
        [[accounts]]\nname = \"beta\"\nprefix = \"resellers/beta/\"\n[accounts.source]\nurl = \"sftp://beta@h\"\ninsecure_accept_any_host_key = true\ntimeout_secs = 20\npassword_file = \"/run/beta\"\n[accounts.ingest]\nmax_tries = 9\n";

    #[test]
    fn each_account_is_the_shared_file_with_its_own_source_and_overrides() {
        let env = |name: &str| (name == "ACME_PASSWORD").then(|| "x".to_string());
        let all = Settings::parse_with(TWO_ACCOUNTS, &env, &[], false)
            .unwrap_or_else(|issues| panic!("{issues:?}"));
        let names: Vec<(&str, &str)> = all
            .iter()
            .map(|s| {
                let a = s.account.as_ref().unwrap();
                (a.name.as_str(), a.prefix.as_str())
            })
            .collect();
        assert_eq!(
            names,
            [("acme", "account=acme"), ("beta", "resellers/beta")]
        );
        assert_eq!(all[0].destination.url.as_str(), "s3://b/cdr/account=acme/");
        assert_eq!(
            all[1].destination.url.as_str(),
            "s3://b/cdr/resellers/beta/"
        );
        assert_eq!(all[0].source.endpoint(), "h:21");
        assert_eq!(all[1].source.endpoint(), "h:22");
        assert_eq!(all[0].source.timeout.as_secs(), 10, "the shared [source]");
        assert_eq!(all[1].source.timeout.as_secs(), 20, "the account's own");
        let cdr = crate::feeds::cdr::CATEGORY;
        assert_eq!(all[1].source.folders.of(cdr), "calls");
        assert_eq!((all[0].ingest.max_tries, all[1].ingest.max_tries), (3, 9));
    }

    #[test]
    fn a_file_without_accounts_has_no_account_and_parse_refuses_accounts() {
        let settings = settings_of("[destination]\nurl = \"file:///x\"\n");
        assert!(settings.account.is_none());
        assert_eq!(settings.destination.url.as_str(), "file:///x");
        let text = TWO_ACCOUNTS.replace(
            "password_file = \"/run/beta\"",
            "password_env = \"ACME_PASSWORD\"",
        );
        let env = |name: &str| (name == "ACME_PASSWORD").then(|| "x".to_string());
        let issues = Settings::parse(&text, &env).unwrap_err();
        assert_eq!(issues[0].key, "accounts");
    }

    #[test]
    fn account_problems_name_the_account_and_shared_ones_come_once() {
        let text = "[destination]\nurl = \"file:///x\"\n[source]\ncolour = 1\n[schedule]\nlookback_days = 0\n\
            [[accounts]]\nname = \"acme\"\n[accounts.source]\nurl = \"gopher://h\"\n[accounts.schedule]\ncron = \"* * * * * *\"\n\
            [[accounts]]\nname = \"ACME\"\n[accounts.source]\n\
            [[accounts]]\nname = \"no/slash\"\nsource = {}\n\
            [[accounts]]\nname = \"d\"\nprefix = \"account=acme/x\"\ndestination = {}\n[accounts.source]\nurl = \"ftps://d@h\"\n";
        let issues = Settings::parse_with(text, &|_| None, &[], false).unwrap_err();
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "accounts.acme.schedule.cron",
                "accounts[2].name",
                "accounts.d.destination",
                "accounts.ACME.name",
                // Inside acme's prefix, and ACME's (case-blind).
                "accounts.d.prefix",
                "accounts.d.prefix",
            ],
            "{issues:#?}"
        );
        // With the accounts themselves right, what is left of their sources is read.
        let text = "[destination]\nurl = \"file:///x\"\n[source]\ncolour = 1\n[schedule]\nlookback_days = 0\n\
            [[accounts]]\nname = \"acme\"\n[accounts.source]\nurl = \"gopher://h\"\n\
            [[accounts]]\nname = \"beta\"\n[accounts.source]\n";
        let issues = Settings::parse_with(text, &|_| None, &[], false).unwrap_err();
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "accounts.acme.source.url",
                "source.colour",
                "schedule.lookback_days",
                "accounts.beta.source.url",
            ],
            "{issues:#?}"
        );
    }

    #[test]
    fn a_variable_one_account_names_is_not_stray() {
        let names = ["ACME_PASSWORD", "CDR_INGEST_BETA_PASSWORD"].map(String::from);
        let text = TWO_ACCOUNTS.replace(
            "password_file = \"/run/beta\"",
            "password_env = \"CDR_INGEST_BETA_PASSWORD\"",
        );
        let env = |name: &str| names.contains(&name.to_string()).then(|| "x".to_string());
        let all = Settings::parse_with(&text, &env, &names, true)
            .unwrap_or_else(|issues| panic!("{issues:?}"));
        assert_eq!(all.len(), 2);
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
