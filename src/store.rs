//! Object stores named by URL (`s3://bucket/prefix`, `gs://…`, `az://…`, `memory://`),
//! opened the one way both the destination ([`crate::sink::destination`]) and a bucket
//! source ([`crate::source::bucket`]) need: `object_store`'s own URL parsing and
//! configuration keys.
//!
//! Credentials come from where each cloud's tools look: the `AWS_*`, `GOOGLE_*` and
//! `AZURE_*` environment variables (as `object_store`'s `from_env` reads them), the AWS
//! CLI profile files, then instance or workload credentials. The section's `options`
//! (the same keys, e.g. `endpoint`, `region`, `allow_http`) override the environment.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3ConfigKey;
use object_store::azure::AzureConfigKey;
use object_store::gcp::GoogleConfigKey;
use object_store::prefix::PrefixStore;
use url::Url;

/// Whether a (lower-case) key is one of a store's configuration keys.
type IsKey = fn(&str) -> bool;

/// The environment prefix of a scheme's variables, and its configuration keys.
fn scheme_keys(scheme: &str) -> Option<(&'static str, IsKey)> {
    match scheme {
        "s3" | "s3a" => Some(("AWS_", |k| AmazonS3ConfigKey::from_str(k).is_ok())),
        "gs" => Some(("GOOGLE_", |k| GoogleConfigKey::from_str(k).is_ok())),
        "az" | "adl" | "azure" | "abfs" | "abfss" => {
            Some(("AZURE_", |k| AzureConfigKey::from_str(k).is_ok()))
        }
        _ => None,
    }
}

/// Whether `scheme` names a cloud bucket or container (S3, GCS, Azure).
pub fn is_cloud(scheme: &str) -> bool {
    scheme_keys(scheme).is_some()
}

/// Checks `options` for `url`'s scheme; returns the keys that are not valid there
/// (every key, for a scheme that takes none).
pub fn unknown_options(url: &Url, options: &BTreeMap<String, String>) -> Vec<String> {
    match scheme_keys(url.scheme()) {
        Some((_, known)) => options
            .keys()
            .filter(|k| !known(&k.to_ascii_lowercase()))
            .cloned()
            .collect(),
        None => options.keys().cloned().collect(),
    }
}

/// Opens the store at `url`'s bucket and prefix, with credentials from the environment
/// and `options` over them. Nothing is sent over the network yet.
pub fn open(
    url: &Url,
    options: &BTreeMap<String, String>,
) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    let mut merged: Vec<(String, String)> = Vec::new();
    if let Some((prefix, known)) = scheme_keys(url.scheme()) {
        for (key, value) in std::env::vars() {
            let key = key.to_ascii_lowercase();
            if key.starts_with(&prefix.to_ascii_lowercase()) && known(&key) {
                merged.push((key, value));
            }
        }
    }
    if matches!(url.scheme(), "s3" | "s3a") && !merged.iter().any(|(k, _)| k == "aws_access_key_id")
    {
        merged.extend(aws_profile(&|name| std::env::var(name).ok()));
    }
    // Later entries win, so the configuration file overrides the environment.
    merged.extend(
        options
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone())),
    );
    let (store, prefix) = object_store::parse_url_opts(url, merged)?;
    let store: Arc<dyn ObjectStore> = Arc::from(store);
    Ok(if prefix.as_ref().is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    })
}

/// Credentials and region of the AWS CLI profile (`AWS_PROFILE`, else `default`) from
/// `~/.aws/credentials` and `~/.aws/config` (or `AWS_SHARED_CREDENTIALS_FILE` and
/// `AWS_CONFIG_FILE`), which `object_store` does not read itself. Empty when there is
/// no such file or profile; instance and container credentials then apply.
fn aws_profile(env: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let home = env("HOME").unwrap_or_default();
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let credentials =
        env("AWS_SHARED_CREDENTIALS_FILE").unwrap_or_else(|| format!("{home}/.aws/credentials"));
    let config = env("AWS_CONFIG_FILE").unwrap_or_else(|| format!("{home}/.aws/config"));
    // In the config file every profile but the default is written `[profile NAME]`.
    let config_section = if profile == "default" {
        profile.clone()
    } else {
        format!("profile {profile}")
    };
    let mut found = ini_section(
        &credentials,
        &profile,
        &[
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws_session_token",
        ],
    );
    found.extend(
        ini_section(&config, &config_section, &["region"])
            .into_iter()
            .map(|(_, v)| ("aws_region".to_string(), v)),
    );
    found
}

/// The wanted keys of one `[section]` of an INI file.
fn ini_section(path: &str, section: &str, wanted: &[&str]) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut inside = false;
    let mut found = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
        } else if let (true, Some((key, value))) = (inside, line.split_once('=')) {
            let key = key.trim().to_ascii_lowercase();
            if wanted.contains(&key.as_str()) {
                found.push((key, value.trim().to_string()));
            }
        }
    }
    found
}

/// The URL without user information, for messages.
pub fn redact(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// Which configuration section a store belongs to, so that advice names its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Destination,
}

impl Role {
    fn section(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Destination => "destination",
        }
    }

    fn readme(self) -> &'static str {
        match self {
            Role::Source => "README, Sources",
            Role::Destination => "README, Destinations",
        }
    }
}

/// What an error from the store most likely means for the operator, naming the keys
/// of `role`'s section to check. The error's own text follows; `object_store` never
/// puts credentials in it.
pub fn advice(error: &object_store::Error, role: Role) -> String {
    let text = error.to_string();
    let lower = text.to_ascii_lowercase();
    let (section, readme) = (role.section(), role.readme());
    let hint = match error {
        object_store::Error::NotFound { .. } => {
            format!("the bucket or container does not exist (check {section}.url)")
        }
        object_store::Error::PermissionDenied { .. } => format!(
            "access denied: the credentials lack a permission the worker needs (see {readme})"
        ),
        object_store::Error::Unauthenticated { .. } => {
            format!("the credentials are missing or wrong (see {readme})")
        }
        _ if lower.contains("nosuchbucket") || lower.contains("404") => {
            format!("the bucket or container does not exist (check {section}.url)")
        }
        _ if lower.contains("accessdenied") || lower.contains("403") => format!(
            "access denied: the credentials lack a permission the worker needs (see {readme})"
        ),
        _ if lower.contains("301")
            || lower.contains("permanentredirect")
            || lower.contains("region") =>
        {
            format!("the bucket is in another region: set {section}.options.region")
        }
        _ => format!("check {section}.url, {section}.options and the network"),
    };
    format!("{hint} ({text})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aws_cli_profile_is_read_from_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("credentials");
        let config = dir.path().join("config");
        std::fs::write(&credentials, "[default]\naws_access_key_id = A\n[ops]\naws_access_key_id = B\naws_secret_access_key = S\n").unwrap();
        std::fs::write(
            &config,
            "[default]\nregion = us-east-1\n[profile ops]\nregion = eu-west-1\n",
        )
        .unwrap();
        let env = |name: &str| match name {
            "AWS_PROFILE" => Some("ops".to_string()),
            "AWS_SHARED_CREDENTIALS_FILE" => Some(credentials.display().to_string()),
            "AWS_CONFIG_FILE" => Some(config.display().to_string()),
            _ => None,
        };
        let found = aws_profile(&env);
        assert_eq!(
            found,
            [
                ("aws_access_key_id".to_string(), "B".to_string()),
                ("aws_secret_access_key".to_string(), "S".to_string()),
                ("aws_region".to_string(), "eu-west-1".to_string())
            ]
        );
    }
}
