//! A drop synced to a local folder (`source.url = "file:///…"`) is ingested like one
//! served over FTPS.

use crate::util::{json, local_config, run_range};

use cdr_ingest::generate::{DropSpec, write_drop};

#[test]
fn a_local_folder_source_gives_the_same_counts_as_the_generator() {
    let work = tempfile::tempdir().unwrap();
    let drop = work.path().join("drop");
    let from = chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
    let to = chrono::NaiveDate::from_ymd_opt(2024, 3, 2).unwrap();
    let mut spec = DropSpec::new(3, from, to);
    spec.recordings_per_day = Some(0);
    let manifest = write_drop(&drop, &spec).unwrap();
    let out = work.path().join("out");
    let config = local_config(&work.path().join("config.toml"), &drop, &out);
    let output = run_range(&config, "2024-03-01", "2024-03-02")
        .env_remove("CDR_INGEST_SOURCE_PASSWORD")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for day in &manifest.days {
        let ledger: serde_json::Value =
            json(&out.join(format!("_state/ledger/cdr/{}.json", day.date)));
        assert_eq!(ledger["rows_written"], day.cdr_unique_ids);
        assert_eq!(ledger["rows_rejected"], 0);
    }
}
