//! A TOML reader that collects every problem instead of stopping at the first.
//!
//! serde's `deny_unknown_fields` reports one error and stops; an operator fixing a
//! config file wants the whole list at once, each naming the key and what is allowed.
//! Keys are taken out of the table as they are read, so whatever is left over is an
//! unknown key. An environment variable `CDR_INGEST_<SECTION>_<KEY>` overrides a key;
//! a problem with its value names the variable, and a `CDR_INGEST_*` variable that
//! overrides no key is reported like an unknown key in the file.

use std::collections::BTreeSet;
use std::fmt;

use toml::{Table, Value};

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key, e.g. `source.url`, or the file itself; for a variable that
    /// overrides no key, the variable.
    pub key: String,
    /// The environment variable the value came from, if not from the file: the
    /// operator has to fix it there.
    pub variable: Option<String>,
    pub message: String,
}

impl ConfigIssue {
    /// A problem with the file (or a key's value in it).
    pub fn in_file(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigIssue {
            key: key.into(),
            variable: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.variable {
            Some(variable) if *variable == self.key => write!(f, "{variable}: {}", self.message),
            Some(variable) => write!(f, "{variable} (overriding {}): {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Where overrides come from; tests pass a map instead of the process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Reads keys out of a parsed file, remembering every issue.
pub struct Reader<'a> {
    root: Table,
    env: EnvLookup<'a>,
    /// Whether secrets (passwords, passphrases) must be there: not for commands that
    /// never connect to the source.
    secrets_required: bool,
    pub issues: Vec<ConfigIssue>,
    /// Every override variable a key was looked up under, and every variable the
    /// configuration names (a password's): the `CDR_INGEST_*` variables that are known.
    variables: BTreeSet<String>,
}

/// What every override variable's name starts with.
pub const ENV_PREFIX: &str = "CDR_INGEST_";

/// The environment variable that overrides `section.key`.
pub fn env_name(section: &str, key: &str) -> String {
    format!("{ENV_PREFIX}{section}_{key}").to_ascii_uppercase()
}

impl<'a> Reader<'a> {
    pub fn new(root: Table, env: EnvLookup<'a>, secrets_required: bool) -> Self {
        Reader {
            root,
            env,
            secrets_required,
            issues: Vec::new(),
            variables: BTreeSet::new(),
        }
    }

    pub fn issue(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.issues.push(ConfigIssue::in_file(key, message));
    }

    /// Takes a `[section]` table out of the root (empty if absent).
    pub fn section(&mut self, name: &'static str) -> Section<'a> {
        let table = match self.root.remove(name) {
            None => Table::new(),
            Some(Value::Table(t)) => t,
            Some(other) => {
                self.issue(
                    name,
                    format!("must be a table ([{name}]), found {}", other.type_str()),
                );
                Table::new()
            }
        };
        Section {
            name,
            table,
            env: self.env,
            secrets_required: self.secrets_required,
            issues: Vec::new(),
            from_env: Vec::new(),
            variables: Vec::new(),
            read: Vec::new(),
        }
    }

    /// Records what a section found, including its unknown keys.
    pub fn close(&mut self, section: Section<'_>) {
        self.issues.extend(section.issues);
        self.variables.extend(section.variables);
        for key in section.table.keys() {
            self.issues.push(ConfigIssue::in_file(
                format!("{}.{key}", section.name),
                "unknown key (check the spelling; config/example.toml lists every key)",
            ));
        }
    }

    /// Reports top-level keys nobody asked for; returns the issues and the variables
    /// that are known (for [`stray_variables`], when several readers share them).
    pub fn finish_keys(mut self) -> (Vec<ConfigIssue>, BTreeSet<String>) {
        let unknown: Vec<String> = self.root.keys().cloned().collect();
        for key in unknown {
            self.issue(
                key,
                "unknown section or key (known sections: [source], [destination], [ingest], [schedule], [retention], [metrics], [serve], [[accounts]])",
            );
        }
        (self.issues, self.variables)
    }
}

/// The variables of `env_names` that start with `CDR_INGEST_` but are not `known`
/// (override no key, named by no key) and none of `others`.
pub fn stray_variables(
    env_names: &[String],
    known: &BTreeSet<String>,
    others: &[&str],
) -> Vec<ConfigIssue> {
    let mut stray: Vec<&String> = env_names
        .iter()
        .filter(|name| name.starts_with(ENV_PREFIX))
        .filter(|name| !known.contains(*name) && !others.contains(&name.as_str()))
        .collect();
    stray.sort();
    stray.dedup();
    stray
        .into_iter()
        .map(|name| ConfigIssue {
            key: name.clone(),
            variable: Some(name.clone()),
            message: format!(
                "overrides no configuration key (check the spelling; overrides are named {ENV_PREFIX}<SECTION>_<KEY>, e.g. CDR_INGEST_SOURCE_TIMEOUT_SECS)"
            ),
        })
        .collect()
}

/// One `[section]` being read.
pub struct Section<'a> {
    name: &'static str,
    table: Table,
    env: EnvLookup<'a>,
    secrets_required: bool,
    issues: Vec<ConfigIssue>,
    /// Keys whose value came from an override variable, with that variable.
    from_env: Vec<(String, String)>,
    /// Override variables looked up, and variables the configuration names.
    variables: Vec<String>,
    /// The keys asked for, to check them against the section's table of keys.
    read: Vec<String>,
}

impl Section<'_> {
    pub fn secrets_required(&self) -> bool {
        self.secrets_required
    }

    /// The keys asked for so far, in order.
    pub fn keys_read(&self) -> &[String] {
        &self.read
    }

    fn key(&self, key: &str) -> String {
        format!("{}.{key}", self.name)
    }

    pub fn issue(&mut self, key: &str, message: impl Into<String>) {
        let variable = self
            .from_env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, variable)| variable.clone());
        self.issues.push(ConfigIssue {
            key: self.key(key),
            variable,
            message: message.into(),
        });
    }

    /// Records that the configuration names the variable `name` (where a secret is),
    /// so that it is not taken for a misspelt override.
    pub fn names_variable(&mut self, name: &str) {
        self.variables.push(name.to_string());
    }

    /// The value from the environment override if set, else from the file.
    fn take(&mut self, key: &str) -> Option<Value> {
        self.read.push(key.to_string());
        let from_file = self.table.remove(key);
        let variable = env_name(self.name, key);
        let value = match (self.env)(&variable) {
            Some(text) => {
                self.from_env.push((key.to_string(), variable.clone()));
                Some(Value::String(text))
            }
            None => from_file,
        };
        self.variables.push(variable);
        value
    }

    pub fn string(&mut self, key: &str) -> Option<String> {
        match self.take(key)? {
            Value::String(s) => Some(s),
            other => {
                self.issue(key, format!("must be a string, found {}", other.type_str()));
                None
            }
        }
    }

    /// A string or a number, as text (for values like `"forever"` or `30`).
    pub fn take_scalar(&mut self, key: &str) -> Option<String> {
        match self.take(key)? {
            Value::String(s) => Some(s),
            Value::Integer(i) => Some(i.to_string()),
            other => Some(format!("a {}", other.type_str())),
        }
    }

    pub fn bool(&mut self, key: &str) -> Option<bool> {
        match self.take(key)? {
            Value::Boolean(b) => Some(b),
            Value::String(s) if s == "true" => Some(true),
            Value::String(s) if s == "false" => Some(false),
            other => {
                self.issue(
                    key,
                    format!("must be true or false, found {}", other.type_str()),
                );
                None
            }
        }
    }

    /// A table of scalar values, as strings (e.g. a store's options). Not overridable
    /// from the environment as a whole; its keys have their own variables.
    pub fn string_map(&mut self, key: &str) -> Option<std::collections::BTreeMap<String, String>> {
        self.read.push(key.to_string());
        match self.table.remove(key)? {
            Value::Table(table) => {
                let mut map = std::collections::BTreeMap::new();
                for (name, value) in table {
                    match value {
                        Value::String(s) => map.insert(name, s),
                        Value::Integer(i) => map.insert(name, i.to_string()),
                        Value::Boolean(b) => map.insert(name, b.to_string()),
                        Value::Float(f) => map.insert(name, f.to_string()),
                        other => {
                            self.issue(
                                key,
                                format!(
                                    "{name} must be a string, number or boolean, found {}",
                                    other.type_str()
                                ),
                            );
                            None
                        }
                    };
                }
                Some(map)
            }
            other => {
                self.issue(key, format!("must be a table, found {}", other.type_str()));
                None
            }
        }
    }

    /// A list of strings; from the environment, comma-separated.
    pub fn string_list(&mut self, key: &str) -> Option<Vec<String>> {
        match self.take(key)? {
            Value::Array(items) => {
                let strings: Option<Vec<String>> = items
                    .into_iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect();
                if strings.is_none() {
                    self.issue(key, "must be a list of strings, e.g. [\"cdr\", \"queue\"]");
                }
                strings
            }
            Value::String(s) => Some(
                s.split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect(),
            ),
            other => {
                self.issue(
                    key,
                    format!("must be a list of strings, found {}", other.type_str()),
                );
                None
            }
        }
    }

    /// An integer in `range`, e.g. seconds.
    pub fn integer(&mut self, key: &str, range: std::ops::RangeInclusive<i64>) -> Option<i64> {
        let value = match self.take(key)? {
            Value::Integer(i) => Some(i),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        match value {
            Some(i) if range.contains(&i) => Some(i),
            _ => {
                self.issue(
                    key,
                    format!(
                        "must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// Every issue of `reader`, with the variables of `env_names` that override no key.
    fn finish(reader: Reader<'_>, env_names: &[String], others: &[&str]) -> Vec<ConfigIssue> {
        let (mut issues, known) = reader.finish_keys();
        issues.extend(stray_variables(env_names, &known, others));
        issues
    }

    #[test]
    fn every_issue_is_collected() {
        let root: Table =
            toml::from_str("[source]\nurl = 3\nflag = \"maybe\"\nspeling = 1\n[extra]\nx = 1\n")
                .unwrap();
        let mut reader = Reader::new(root, &no_env, true);
        let mut s = reader.section("source");
        assert_eq!(s.string("url"), None);
        assert_eq!(s.bool("flag"), None);
        reader.close(s);
        let issues = finish(reader, &[], &[]);
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            ["source.url", "source.flag", "source.speling", "extra"]
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let root: Table = toml::from_str("[source]\ntimeout_secs = 5\n").unwrap();
        let env = |name: &str| (name == "CDR_INGEST_SOURCE_TIMEOUT_SECS").then(|| "7".to_string());
        let mut reader = Reader::new(root, &env, true);
        let mut s = reader.section("source");
        assert_eq!(s.integer("timeout_secs", 1..=600), Some(7));
        reader.close(s);
        assert!(finish(reader, &[], &[]).is_empty());
    }

    /// Regression: a bad value from a variable was reported as the file's key.
    #[test]
    fn a_bad_override_names_its_variable() {
        let root: Table = toml::from_str("[source]\n").unwrap();
        let env =
            |name: &str| (name == "CDR_INGEST_SOURCE_TIMEOUT_SECS").then(|| "abc".to_string());
        let mut reader = Reader::new(root, &env, true);
        let mut s = reader.section("source");
        assert_eq!(s.integer("timeout_secs", 1..=600), None);
        reader.close(s);
        let issues = finish(reader, &[], &[]);
        assert_eq!(issues.len(), 1);
        assert_eq!(
            issues[0].variable.as_deref(),
            Some("CDR_INGEST_SOURCE_TIMEOUT_SECS")
        );
        assert_eq!(
            issues[0].to_string(),
            "CDR_INGEST_SOURCE_TIMEOUT_SECS (overriding source.timeout_secs): must be a whole number from 1 to 600"
        );
    }

    /// Regression: a misspelt override was ignored without a word.
    #[test]
    fn a_variable_that_overrides_no_key_is_an_issue() {
        let root: Table = toml::from_str("[source]\n").unwrap();
        let mut reader = Reader::new(root, &no_env, true);
        let mut s = reader.section("source");
        assert_eq!(s.integer("timeout_secs", 1..=600), None);
        s.names_variable("CDR_INGEST_FTP_PASSWORD");
        reader.close(s);
        let names = [
            "CDR_INGEST_SOURCE_TIMOUT_SECS",
            "CDR_INGEST_SOURCE_TIMEOUT_SECS",
            "CDR_INGEST_LOG_FORMAT",
            "CDR_INGEST_FTP_PASSWORD",
            "HOME",
        ]
        .map(String::from);
        let issues = finish(reader, &names, &["CDR_INGEST_LOG_FORMAT"]);
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["CDR_INGEST_SOURCE_TIMOUT_SECS"]);
        assert!(
            issues[0]
                .to_string()
                .starts_with("CDR_INGEST_SOURCE_TIMOUT_SECS: overrides no configuration key"),
            "{}",
            issues[0]
        );
    }
}
