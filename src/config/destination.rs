//! `[destination]`: the bucket or folder that receives the output and the ledger, and
//! the store's options.

use std::collections::BTreeMap;

use url::Url;

use super::key::{Key, Table, Text};
use super::reader::Section;
use crate::sink::destination;

/// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`,
/// `file:///absolute/path` (or `memory://` in tests). Required.
const URL: Text = Text {
    name: "url",
    default: None,
};
/// `object_store` configuration keys for the store (e.g. `endpoint`, `region`,
/// `allow_http`), overriding the environment.
const OPTIONS: Table = Table { name: "options" };

/// Every key of `[destination]`.
pub const KEYS: &[Key] = &[Key::Text(URL), Key::Table(OPTIONS)];

/// The bucket or folder that receives the output and the ledger.
#[derive(Debug, Clone)]
pub struct DestinationSettings {
    pub url: Url,
    /// `object_store` configuration keys for the store (e.g. `endpoint`, `region`).
    pub options: BTreeMap<String, String>,
}

pub(super) fn read(s: &mut Section<'_>) -> Option<DestinationSettings> {
    let options = OPTIONS.read(s);
    let Some(text) = URL.read_set(s) else {
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
        _ => {
            if !names_bucket(s, &url) {
                return None;
            }
        }
    }
    check_options(s, &url, &options, "this store takes no options");
    Some(DestinationSettings { url, options })
}

/// Whether a cloud URL (`s3://`, `gs://`, `az://`) names its bucket or container; if
/// not, says how to write it. For `[source]` and `[destination]` alike.
pub(super) fn names_bucket(s: &mut Section<'_>, url: &Url) -> bool {
    if url.host_str().is_some_and(|host| !host.is_empty()) {
        return true;
    }
    let scheme = url.scheme();
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
    false
}

/// Reports the keys of `options` (the section's `options` table) that are not
/// configuration keys of `url`'s store; `none_hint` says why, for a URL whose store
/// takes no options at all.
pub(super) fn check_options(
    s: &mut Section<'_>,
    url: &Url,
    options: &BTreeMap<String, String>,
    none_hint: &str,
) {
    let unknown = crate::store::unknown_options(url, options);
    if unknown.is_empty() {
        return;
    }
    let hint = if crate::store::is_cloud(url.scheme()) {
        format!(
            "not {}:// configuration keys of object_store (e.g. endpoint, region, allow_http)",
            url.scheme()
        )
    } else {
        none_hint.to_string()
    };
    s.issue("options", format!("{}: {hint}", unknown.join(", ")));
}

#[cfg(test)]
mod tests {
    use super::super::Settings;
    use super::super::tests::{env_with_password, issues_of};

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
}
