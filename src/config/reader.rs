//! A TOML reader that collects every problem instead of stopping at the first.
//!
//! serde's `deny_unknown_fields` reports one error and stops; an operator fixing a
//! config file wants the whole list at once, each naming the key and what is allowed.
//! Keys are taken out of the table as they are read, so whatever is left over is an
//! unknown key. An environment variable `CDR_INGEST_<SECTION>_<KEY>` overrides a key.

use std::fmt;

use toml::{Table, Value};

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key, e.g. `source.url`, or the file itself.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
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
}

/// The environment variable that overrides `section.key`.
pub fn env_name(section: &str, key: &str) -> String {
    format!("CDR_INGEST_{}_{}", section, key).to_ascii_uppercase()
}

impl<'a> Reader<'a> {
    pub fn new(root: Table, env: EnvLookup<'a>, secrets_required: bool) -> Self {
        Reader {
            root,
            env,
            secrets_required,
            issues: Vec::new(),
        }
    }

    pub fn issue(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.issues.push(ConfigIssue {
            key: key.into(),
            message: message.into(),
        });
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
        }
    }

    /// Records what a section found, including its unknown keys.
    pub fn close(&mut self, section: Section<'_>) {
        self.issues.extend(section.issues);
        for key in section.table.keys() {
            self.issues.push(ConfigIssue {
                key: format!("{}.{key}", section.name),
                message: "unknown key (check the spelling; config/example.toml lists every key)"
                    .into(),
            });
        }
    }

    /// Reports top-level keys nobody asked for.
    pub fn finish(mut self) -> Vec<ConfigIssue> {
        let unknown: Vec<String> = self.root.keys().cloned().collect();
        for key in unknown {
            self.issue(
                key,
                "unknown section or key (known sections: [source], [destination], [ingest], [schedule], [retention])",
            );
        }
        self.issues
    }
}

/// One `[section]` being read.
pub struct Section<'a> {
    name: &'static str,
    table: Table,
    env: EnvLookup<'a>,
    secrets_required: bool,
    issues: Vec<ConfigIssue>,
}

impl Section<'_> {
    pub fn secrets_required(&self) -> bool {
        self.secrets_required
    }

    fn key(&self, key: &str) -> String {
        format!("{}.{key}", self.name)
    }

    pub fn issue(&mut self, key: &str, message: impl Into<String>) {
        let key = self.key(key);
        self.issues.push(ConfigIssue {
            key,
            message: message.into(),
        });
    }

    /// The value from the environment override if set, else from the file.
    fn take(&mut self, key: &str) -> Option<Value> {
        let from_file = self.table.remove(key);
        match (self.env)(&env_name(self.name, key)) {
            Some(text) => Some(Value::String(text)),
            None => from_file,
        }
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
        let issues = reader.finish();
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
        assert!(reader.finish().is_empty());
    }
}
