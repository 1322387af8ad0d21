//! `status --html FILE`: the page of a real destination (the browser check is
//! `scripts/status-page-screenshot.sh`), and days retention removed shown as expired.

use std::process::Command;

use cdr_ingest::generate::{DropSpec, Quirks, write_drop};

use crate::util::{Run, local_config, run_range};

#[test]
fn status_writes_a_page_of_every_day_and_feed_and_shows_expired_days() {
    let work = tempfile::tempdir().unwrap();
    let (drop, out) = (work.path().join("drop"), work.path().join("out"));
    let day = |d: &str| d.parse().unwrap();
    let mut spec = DropSpec::new(5, day("2024-03-01"), day("2024-03-03"));
    spec.cdr_rows_per_day = 60;
    spec.recordings_per_day = Some(3);
    spec.quirks = Quirks::all();
    write_drop(&drop, &spec).unwrap();
    let config = local_config(&work.path().join("config.toml"), &drop, &out);
    let run = Run::from(
        run_range(&config, "2024-03-01", "2024-03-03")
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let page = work.path().join("status.html");
    let status = |retention: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cdr-ingest"));
        command.args(["status", "--config", config.to_str().unwrap()]);
        command.args(["--from", "2024-02-29", "--to", "2024-03-03"]);
        command.args(["--html", page.to_str().unwrap()]);
        if let Some(days) = retention {
            command.env("CDR_INGEST_RETENTION_CDR", days);
        }
        Run::from(command.output().unwrap())
    };
    // 2024-02-29 has no files of its own: overdue, so the exit code says so.
    let first = status(None);
    assert_eq!(first.code, 1, "{first:?}");
    assert!(
        first.stdout.contains("status page written to")
            && first.stdout.contains("4 day(s), 3 overdue or failed"),
        "{first:?}"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert_eq!(html.matches("<td class=\"cell ").count(), 4 * 3, "{html}");
    assert_eq!(html.matches("class=\"cell s-ingested\"").count(), 3 * 3);
    assert_eq!(html.matches("class=\"cell s-overdue\"").count(), 3);
    assert!(html.contains("<th>cdr</th><th>queue</th><th>recordings</th>"));
    assert!(html.contains("mode</th><td>run</td>"), "{html}");
    // Regression: a day retention no longer keeps, or removed, was shown as overdue.
    let expired = status(Some("10"));
    assert_eq!(expired.code, 1, "{expired:?}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(
        html.matches("class=\"cell s-expired\"").count(),
        1,
        "{html}"
    );
    assert!(html.contains("older than the retention limit (10 days)"));
    let retention = Run::from(
        Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
            .args(["retention", "--config", config.to_str().unwrap()])
            .env("CDR_INGEST_RETENTION_CDR", "10")
            .output()
            .unwrap(),
    );
    assert_eq!(retention.code, 0, "{retention:?}");
    let removed = status(Some("10"));
    assert_eq!(removed.code, 1, "{removed:?}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(
        html.matches("class=\"cell s-expired\"").count(),
        4,
        "{html}"
    );
    assert_eq!(
        html.matches("class=\"cell s-overdue\"").count(),
        2,
        "{html}"
    );
    // Only what the temporary file was: nothing else is left beside the page.
    let left: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
