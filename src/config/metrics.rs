//! `[metrics]`: where the pass metrics go (`crate::metrics`): an HTTP listener for
//! `/metrics` and `/healthz` (the `daemon`), a Prometheus Pushgateway and a
//! node-exporter textfile (any command that runs passes). Everything is off by default.

use std::net::SocketAddr;
use std::path::PathBuf;

use url::Url;

use super::key::{Key, Text};
use super::reader::Section;

/// `daemon`: the address to serve `GET /metrics` and `GET /healthz` on, as `IP:PORT`
/// (e.g. `"0.0.0.0:9464"`); not set or `""`: no listener. Off by default so that two
/// daemons on one machine, or a daemon beside its tests, never fight over a port.
const LISTEN: Text = Text {
    name: "listen",
    default: None,
};
/// After each pass, push its metrics to this Prometheus Pushgateway
/// (`http://pushgateway:9091`), for a `run` from a CronJob that nothing scrapes.
const PUSHGATEWAY_URL: Text = Text {
    name: "pushgateway_url",
    default: None,
};
/// The `job` label of the Pushgateway group the metrics are pushed to.
const PUSHGATEWAY_JOB: Text = Text {
    name: "pushgateway_job",
    default: Some("cdr-ingest"),
};
/// An `instance` label for the Pushgateway group, when several workers (e.g. one per
/// destination) push under the same job; not set: the group is the job alone.
const PUSHGATEWAY_INSTANCE: Text = Text {
    name: "pushgateway_instance",
    default: None,
};
/// After each pass, write its metrics to this file (atomically), for node-exporter's
/// textfile collector (`--collector.textfile.directory`); the name must end in `.prom`.
const TEXTFILE: Text = Text {
    name: "textfile",
    default: None,
};

/// Every key of `[metrics]`, in the order they are read.
pub const KEYS: &[Key] = &[
    Key::Text(LISTEN),
    Key::Text(PUSHGATEWAY_URL),
    Key::Text(PUSHGATEWAY_JOB),
    Key::Text(PUSHGATEWAY_INSTANCE),
    Key::Text(TEXTFILE),
];

/// Where the pass metrics go; each is off when `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSettings {
    /// The daemon's `/metrics` and `/healthz` listener.
    pub listen: Option<SocketAddr>,
    pub pushgateway: Option<Pushgateway>,
    pub textfile: Option<PathBuf>,
}

/// A Pushgateway and the group (job and instance labels) the metrics go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushgateway {
    pub url: Url,
    pub job: String,
    pub instance: Option<String>,
}

pub(super) fn read(s: &mut Section<'_>) -> MetricsSettings {
    let listen = LISTEN
        .read_set(s)
        .filter(|text| !text.trim().is_empty())
        .and_then(|text| match text.trim().parse::<SocketAddr>() {
            Ok(address) => Some(address),
            Err(_) => {
                s.issue(
                    LISTEN.name,
                    format!("{text:?} is not IP:PORT; e.g. \"0.0.0.0:9464\", \"127.0.0.1:9464\" or \"[::]:9464\""),
                );
                None
            }
        });
    let url = PUSHGATEWAY_URL
        .read_set(s)
        .filter(|text| !text.trim().is_empty());
    let job = PUSHGATEWAY_JOB.read(s);
    let instance = PUSHGATEWAY_INSTANCE
        .read_set(s)
        .filter(|text| !text.is_empty());
    for (key, value) in [
        (PUSHGATEWAY_JOB, Some(&job)),
        (PUSHGATEWAY_INSTANCE, instance.as_ref()),
    ] {
        if value.is_some_and(|v| !is_group_label(v)) {
            s.issue(
                key.name,
                "must be letters, digits and _ . : - only (the Pushgateway takes it in a URL path)",
            );
        }
    }
    let pushgateway = url.and_then(|text| match Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            Some(Pushgateway { url, job, instance })
        }
        _ => {
            s.issue(
                PUSHGATEWAY_URL.name,
                format!(
                    "{text:?} is not an http:// or https:// URL, e.g. \"http://pushgateway:9091\""
                ),
            );
            None
        }
    });
    let textfile = TEXTFILE
        .read_set(s)
        .filter(|text| !text.is_empty())
        .and_then(|text| {
            if text.ends_with(".prom") {
                Some(PathBuf::from(text))
            } else {
                // node-exporter's textfile collector reads `*.prom` only: any other
                // name would be written and never read.
                s.issue(
                    TEXTFILE.name,
                    format!("{text:?} must end in .prom (node-exporter's textfile collector reads only *.prom)"),
                );
                None
            }
        });
    MetricsSettings {
        listen,
        pushgateway,
        textfile,
    }
}

/// Whether `value` can stand in a Pushgateway URL's path as it is (no `/`, nothing to
/// escape) and is not empty.
fn is_group_label(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{issues_of, settings_of};
    use super::*;

    #[test]
    fn everything_is_off_by_default_and_each_key_is_checked() {
        let base = "[destination]\nurl = \"file:///x\"\n";
        assert_eq!(settings_of(base).metrics, MetricsSettings::default());

        let settings = settings_of(&format!(
            "{base}[metrics]\nlisten = \"127.0.0.1:9464\"\npushgateway_url = \"http://pg:9091/base/\"\npushgateway_instance = \"eu-1\"\ntextfile = \"/var/lib/node-exporter/cdr-ingest.prom\"\n"
        ));
        let metrics = settings.metrics;
        assert_eq!(metrics.listen, Some("127.0.0.1:9464".parse().unwrap()));
        let pushgateway = metrics.pushgateway.unwrap();
        assert_eq!(pushgateway.url.as_str(), "http://pg:9091/base/");
        assert_eq!(pushgateway.job, "cdr-ingest");
        assert_eq!(pushgateway.instance.as_deref(), Some("eu-1"));
        assert_eq!(
            metrics.textfile,
            Some(PathBuf::from("/var/lib/node-exporter/cdr-ingest.prom"))
        );
        assert_eq!(
            settings_of(&format!("{base}[metrics]\nlisten = \"\"\n"))
                .metrics
                .listen,
            None
        );

        let issues = issues_of(&format!(
            "{base}[metrics]\nlisten = \"localhost\"\npushgateway_url = \"pg:9091\"\npushgateway_job = \"\"\npushgateway_instance = \"a/b\"\ntextfile = \"/tmp/metrics.txt\"\n"
        ));
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "metrics.listen",
                "metrics.pushgateway_job",
                "metrics.pushgateway_instance",
                "metrics.pushgateway_url",
                "metrics.textfile"
            ]
        );
    }
}
