//! Where a pass's metrics go besides the daemon's `/metrics`: a Prometheus Pushgateway
//! (for a `run` from a CronJob, which nothing can scrape) and a node-exporter textfile.
//! Either failing is a warning, never a failed pass.
//!
//! Pushes are POSTs (which replace only the families in the body) into one group for
//! the passes (`job`, and `instance` if set) and one per feed (the same plus `feed`):
//! a feed whose files failed leaves its `last_success` family out, so the Pushgateway
//! keeps the success before, as the textfile does by [`Metrics::carry_over`].

use std::error::Error as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use url::Url;

use super::{CONTENT_TYPE, Metrics};
use crate::config::{MetricsSettings, Pushgateway};
use crate::model::Category;

/// A Pushgateway that does not answer within this is given up on for this pass.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes the textfile and pushes to the Pushgateway, as configured.
pub async fn after_pass(settings: &MetricsSettings, metrics: &Metrics) {
    if let Some(path) = &settings.textfile {
        match write_textfile(path, &metrics.render()) {
            Ok(()) => tracing::debug!(file = %path.display(), "metrics written"),
            Err(e) => tracing::warn!(
                file = %path.display(),
                error = %e,
                "could not write the metrics textfile; the pass itself is not affected"
            ),
        }
    }
    if let Some(gateway) = &settings.pushgateway {
        match push(gateway, metrics).await {
            Ok(()) => tracing::debug!(url = %redact(&gateway.url), "metrics pushed"),
            Err(e) => tracing::warn!(
                error = %e,
                "could not push the metrics to the Pushgateway; the pass itself is not affected"
            ),
        }
    }
}

/// What the textfile holds now (a run before this one wrote it), to carry over.
pub fn previous(settings: &MetricsSettings) -> Option<String> {
    settings
        .textfile
        .as_ref()
        .and_then(|path| std::fs::read_to_string(path).ok())
}

/// Writes `text` to `path` atomically: a temporary file in the same folder, renamed
/// over it, so node-exporter never reads half a file.
pub fn write_textfile(path: &Path, text: &str) -> std::io::Result<()> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Named without `.prom`, so the collector skips it while it is written.
    let mut file = tempfile::Builder::new()
        .prefix(".cdr-ingest-metrics")
        .tempfile_in(folder)?;
    file.write_all(text.as_bytes())?;
    file.as_file().sync_all()?;
    // node-exporter usually runs as another user.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{url}: {detail}")]
    Request { url: String, detail: String },
    #[error("{url}: the Pushgateway answered {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
}

/// Pushes the passes' group, then each feed's.
pub async fn push(gateway: &Pushgateway, metrics: &Metrics) -> Result<(), PushError> {
    let client = reqwest::Client::builder()
        .timeout(PUSH_TIMEOUT)
        .build()
        .map_err(|e| PushError::Request {
            url: redact(&gateway.url),
            detail: chain(&e),
        })?;
    let mut groups = vec![(group_url(gateway, None), metrics.render_passes())];
    groups.extend(
        metrics
            .categories()
            .map(|c| (group_url(gateway, Some(c)), metrics.render_feed(c))),
    );
    for (url, body) in groups {
        let shown = redact(&url);
        let response = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(body)
            .send()
            .await
            .map_err(|e| PushError::Request {
                url: shown.clone(),
                detail: chain(&e.without_url()),
            })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(PushError::Refused {
                url: shown,
                status: status.as_u16(),
                body: body.trim().chars().take(500).collect(),
            });
        }
    }
    Ok(())
}

/// `<url>/metrics/job/<job>[/instance/<instance>][/feed/<feed>]`. The labels were
/// checked to need no escaping (`config::metrics`).
pub fn group_url(gateway: &Pushgateway, feed: Option<Category>) -> Url {
    let mut url = gateway.url.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments
            .pop_if_empty()
            .extend(["metrics", "job", &gateway.job]);
        if let Some(instance) = &gateway.instance {
            segments.extend(["instance", instance]);
        }
        if let Some(feed) = feed {
            segments.extend(["feed", feed.as_str()]);
        }
    }
    url
}

/// A URL without its user name and password, for messages.
fn redact(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// An error with its causes, which reqwest keeps apart ("error sending request" alone
/// says nothing).
fn chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_under_the_job_then_the_instance_then_the_feed() {
        let mut gateway = Pushgateway {
            url: Url::parse("http://pg:9091").unwrap(),
            job: "cdr-ingest".into(),
            instance: None,
        };
        let cdr = crate::feeds::cdr::CATEGORY;
        assert_eq!(
            group_url(&gateway, None).as_str(),
            "http://pg:9091/metrics/job/cdr-ingest"
        );
        gateway.url = Url::parse("https://u:p@pg.example/base/").unwrap();
        gateway.instance = Some("eu-1".into());
        let url = group_url(&gateway, Some(cdr));
        assert_eq!(
            url.as_str(),
            "https://u:p@pg.example/base/metrics/job/cdr-ingest/instance/eu-1/feed/cdr"
        );
        assert_eq!(
            redact(&url),
            "https://pg.example/base/metrics/job/cdr-ingest/instance/eu-1/feed/cdr"
        );
    }

    #[test]
    fn the_textfile_is_replaced_whole_and_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cdr-ingest.prom");
        write_textfile(&path, "a 1\n").unwrap();
        write_textfile(&path, "b 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b 2\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
    }
}
