//! `[[accounts]]`: many provider accounts in one destination. Each account has a
//! `name`, its own `[source]` and an output prefix (default `account=<name>`, a Hive
//! partition column); the rest of the file is shared, and some of it may be overridden
//! per account ([`OVERRIDABLE`]). Each account becomes the [`Settings`] of a
//! configuration without accounts, so every command runs the same code per account
//! against the destination under the account's prefix.

use std::collections::BTreeSet;

use toml::{Table, Value};
use url::Url;

use super::reader::ConfigIssue;

/// An account of a configuration with `[[accounts]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    /// Where its objects go under the destination, without a trailing `/`
    /// (`account=acme`, or the account's `prefix`).
    pub prefix: String,
}

/// The most characters an account's name may have.
const MAX_NAME: usize = 64;

/// The sections an account may set, and the keys of each it may not (shared by the
/// whole process: one daemon schedule, one lease length, one shutdown).
pub const OVERRIDABLE: [(&str, &[&str]); 4] = [
    ("source", &[]),
    ("ingest", &["lease_secs", "shutdown_grace_secs"]),
    ("schedule", &["cron", "extra_cron"]),
    ("retention", &[]),
];

/// What the accounts of a file become before each is read as a configuration without
/// accounts: the file's root with the account's sections merged over the shared ones.
pub(super) struct Expanded {
    pub account: Account,
    pub root: Table,
    /// Keys (`section.key`) the account sets itself, to blame its problems on it.
    pub own: BTreeSet<String>,
    /// How its problems are named: `accounts.NAME`.
    pub label: String,
}

/// Splits `root` (whose `accounts` value is taken out) into one root per account.
/// `Ok(None)` when there is no `[[accounts]]`.
pub(super) fn expand(root: &mut Table) -> Result<Option<Vec<Expanded>>, Vec<ConfigIssue>> {
    let Some(value) = root.remove("accounts") else {
        return Ok(None);
    };
    let Value::Array(items) = value else {
        return Err(vec![ConfigIssue::in_file(
            "accounts",
            format!(
                "must be an array of tables ([[accounts]]), found {}",
                value.type_str()
            ),
        )]);
    };
    if items.is_empty() {
        return Err(vec![ConfigIssue::in_file(
            "accounts",
            "is empty: give at least one [[accounts]] or none at all",
        )]);
    }
    let mut issues = Vec::new();
    let mut expanded = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let Value::Table(mut table) = item else {
            issues.push(ConfigIssue::in_file(
                format!("accounts[{index}]"),
                "must be a table ([[accounts]])",
            ));
            continue;
        };
        let name = match table.remove("name") {
            Some(Value::String(name)) => match check_name(&name) {
                Ok(()) => Some(name),
                Err(why) => {
                    issues.push(ConfigIssue::in_file(format!("accounts[{index}].name"), why));
                    None
                }
            },
            Some(other) => {
                issues.push(ConfigIssue::in_file(
                    format!("accounts[{index}].name"),
                    format!("must be a string, found {}", other.type_str()),
                ));
                None
            }
            None => {
                issues.push(ConfigIssue::in_file(
                    format!("accounts[{index}].name"),
                    "is required: the account's name (letters, digits, - and _)",
                ));
                None
            }
        };
        let label = match &name {
            Some(name) => format!("accounts.{name}"),
            None => format!("accounts[{index}]"),
        };
        let prefix = match table.remove("prefix") {
            None => name.as_ref().map(|name| format!("account={name}")),
            Some(Value::String(prefix)) => match check_prefix(&prefix) {
                Ok(prefix) => Some(prefix),
                Err(why) => {
                    issues.push(ConfigIssue::in_file(format!("{label}.prefix"), why));
                    None
                }
            },
            Some(other) => {
                issues.push(ConfigIssue::in_file(
                    format!("{label}.prefix"),
                    format!("must be a string, found {}", other.type_str()),
                ));
                None
            }
        };
        let mut merged = root.clone();
        let mut own = BTreeSet::new();
        if !table.contains_key("source") {
            issues.push(ConfigIssue::in_file(
                format!("{label}.source"),
                "is required: the account's own [accounts.source] table (url, password_env or password_file, folders)",
            ));
        }
        for (section, value) in table {
            let Some((_, shared_only)) = OVERRIDABLE.iter().find(|(s, _)| *s == section) else {
                let why = if root_sections().contains(&section.as_str()) {
                    format!("[{section}] is shared by every account and cannot be set per account")
                } else {
                    "unknown key (an account has name, prefix, source, ingest, schedule, retention)"
                        .to_string()
                };
                issues.push(ConfigIssue::in_file(format!("{label}.{section}"), why));
                continue;
            };
            let Value::Table(keys) = value else {
                issues.push(ConfigIssue::in_file(
                    format!("{label}.{section}"),
                    format!("must be a table, found {}", value.type_str()),
                ));
                continue;
            };
            let target = merged
                .entry(section.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            let Value::Table(target) = target else {
                // The shared value is not a table: reading it reports that.
                continue;
            };
            for (key, value) in keys {
                if shared_only.contains(&key.as_str()) {
                    issues.push(ConfigIssue::in_file(
                        format!("{label}.{section}.{key}"),
                        format!(
                            "is shared by every account and cannot be set per account: set it in [{section}]"
                        ),
                    ));
                    continue;
                }
                own.insert(format!("{section}.{key}"));
                target.insert(key, value);
            }
        }
        if let (Some(name), Some(prefix)) = (name, prefix) {
            expanded.push(Expanded {
                account: Account { name, prefix },
                root: merged,
                own,
                label,
            });
        }
    }
    issues.extend(clashes(&expanded));
    if issues.is_empty() {
        Ok(Some(expanded))
    } else {
        Err(issues)
    }
}

/// The shared destination `url` with an account's `prefix` below its path: where the
/// account's objects are, for opening and for messages.
pub(super) fn under(url: &Url, prefix: &str) -> Url {
    let mut url = url.clone();
    let path = format!("{}/{prefix}/", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

/// The sections of a file, for saying that one is shared.
fn root_sections() -> Vec<&'static str> {
    super::sections().iter().map(|(name, _)| *name).collect()
}

/// Two accounts with one name (in any case: a file system may not tell them apart),
/// or one's prefix inside another's.
fn clashes(accounts: &[Expanded]) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    for (i, a) in accounts.iter().enumerate() {
        for b in &accounts[..i] {
            if a.account.name.eq_ignore_ascii_case(&b.account.name) {
                issues.push(ConfigIssue::in_file(
                    format!("{}.name", a.label),
                    format!("is the name of another account ({:?})", b.account.name),
                ));
            } else if nested(&a.account.prefix, &b.account.prefix) {
                issues.push(ConfigIssue::in_file(
                    format!("{}.prefix", a.label),
                    format!(
                        "{}/ overlaps {}/ of account {:?}: each account needs a prefix of its own",
                        a.account.prefix, b.account.prefix, b.account.name
                    ),
                ));
            }
        }
    }
    issues
}

/// Whether one prefix is the other or a folder inside it (compared case-blind).
fn nested(a: &str, b: &str) -> bool {
    let (a, b) = (
        format!("{}/", a.to_ascii_lowercase()),
        format!("{}/", b.to_ascii_lowercase()),
    );
    a.starts_with(&b) || b.starts_with(&a)
}

/// An account's name goes into object keys and a partition value: letters, digits,
/// `-` and `_`, starting with a letter or digit.
pub fn check_name(name: &str) -> Result<(), String> {
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if first_ok
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an account name: use 1 to {MAX_NAME} letters, digits, - and _, starting with a letter or digit (it becomes a folder and the value of the account partition column)"
        ))
    }
}

/// A prefix is folders under the destination: segments of letters, digits, `-`, `_`,
/// `.` and `=`, none `.` or `..`, and not starting with `_` (the state's folders do).
/// Returns it without a trailing `/`.
fn check_prefix(prefix: &str) -> Result<String, String> {
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '='))
    };
    if !trimmed.starts_with('_') && trimmed.split('/').all(segment_ok) {
        Ok(trimmed.to_string())
    } else {
        Err(format!(
            "{prefix:?} is not a prefix: give folders like \"account=acme\" or \"resellers/acme\" (letters, digits, - _ . =, no leading / or _, no . or .. folders)"
        ))
    }
}

/// Names `issue` after the account when its key is the account's own (set in its
/// table, or a `[source]` key the shared `[source]` does not give either); a problem
/// with a shared key is the same for every account and is reported once.
pub(super) fn attribute(issue: ConfigIssue, expanded: &Expanded, shared: &Table) -> ConfigIssue {
    let mut parts = issue.key.splitn(3, '.');
    let (section, key) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let dotted = format!("{section}.{key}");
    let in_shared = shared
        .get(section)
        .and_then(Value::as_table)
        .is_some_and(|t| t.contains_key(key));
    let own =
        expanded.own.contains(&dotted) || (section == "source" && !in_shared && !key.is_empty());
    if own {
        ConfigIssue {
            key: format!("{}.{}", expanded.label, issue.key),
            ..issue
        }
    } else {
        issue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_as_folders_and_partition_values() {
        for good in ["acme", "ACME-01", "a_b", "7"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "-x",
            "_x",
            "a/b",
            "a=b",
            "a b",
            "..",
            "a.b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefixes_are_folders_without_traversal() {
        assert_eq!(check_prefix("account=acme/").as_deref(), Ok("account=acme"));
        assert_eq!(check_prefix("r/acme").as_deref(), Ok("r/acme"));
        for bad in ["", "/x", "_state", "a//b", "a/../b", "a/./b", "a b", "a\\b"] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
        assert!(nested("r/acme", "r"));
        assert!(nested("A", "a"));
        assert!(!nested("r/acme", "r/acme2"));
    }

    #[test]
    fn an_accounts_destination_is_below_the_shared_one() {
        for (shared, expected) in [
            ("s3://b/cdr", "s3://b/cdr/account=a/"),
            ("s3://b/cdr/", "s3://b/cdr/account=a/"),
            ("s3://b", "s3://b/account=a/"),
            ("file:///srv/out", "file:///srv/out/account=a/"),
            ("memory://", "memory:///account=a/"),
        ] {
            let url = Url::parse(shared).unwrap();
            assert_eq!(under(&url, "account=a").as_str(), expected, "{shared}");
        }
    }
}
