//! Configuration: one TOML file (plus environment overrides) turned into validated
//! [`Settings`] in one pure step, reporting every problem at once.
//!
//! One module per section (`source`, `destination`, `ingest`, `schedule`, `retention`,
//! `metrics`) declares its keys (name, kind, range, default, doc: [`key`]) and reads
//! them into its settings; this module holds [`Settings`], loading, and the collection
//! of every problem, with [`reader`] (keys taken out of the table, environment
//! overrides, unknown keys and variables).

mod destination;
mod ingest;
mod key;
mod metrics;
mod reader;
mod retention;
mod schedule;
mod secret;
mod source;

use std::fmt;
use std::path::{Path, PathBuf};

pub use destination::DestinationSettings;
pub use ingest::{ChangedSettings, IngestSettings};
pub use key::Key;
pub use metrics::{MetricsSettings, Pushgateway};
pub use reader::{ConfigIssue, ENV_PREFIX, env_name};
use reader::{Reader, Section};
pub use retention::RetentionSettings;
pub use schedule::ScheduleSettings;
pub use secret::Secret;
pub use source::{
    BucketSettings, DEFAULT_PASSWORD_ENV, FtpsSettings, RemoteFolders, SftpAuth, SftpSettings,
    SourceEndpoint, SourceSettings,
};

/// Every section and its keys: what the reader accepts (the feeds add theirs).
pub fn sections() -> [(&'static str, Vec<Key>); 6] {
    [
        ("source", source::keys()),
        ("destination", destination::KEYS.to_vec()),
        ("ingest", ingest::keys()),
        ("schedule", schedule::KEYS.to_vec()),
        ("retention", retention::keys()),
        ("metrics", metrics::KEYS.to_vec()),
    ]
}

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
    pub metrics: MetricsSettings,
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
    /// `quarantine`, `verify`, `retention`, `purge`): its secrets (password, key
    /// file, passphrase) need not be there.
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
        let source = read_section(&mut reader, "source", |s| source::read(s, env));
        let destination = read_section(&mut reader, "destination", destination::read);
        let ingest = read_section(&mut reader, "ingest", ingest::read);
        let schedule = read_section(&mut reader, "schedule", schedule::read);
        let retention = read_section(&mut reader, "retention", retention::read);
        let metrics = read_section(&mut reader, "metrics", metrics::read);
        let issues = reader.finish(env_names, &OTHER_VARIABLES);
        match (source, destination) {
            (Some(source), Some(destination)) if issues.is_empty() => Ok(Settings {
                source,
                destination,
                ingest,
                schedule,
                retention,
                metrics,
            }),
            _ => Err(issues),
        }
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
