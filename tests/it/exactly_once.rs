//! Exactly once across files: the provider repeats the previous day's last calls at
//! the top of the next day's file; each call must still appear once, in the partition
//! of its call date, whatever order the days are ingested in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use cdr_ingest::generate::{DropSpec, Quirks, cdr_path, write_drop};
use chrono::NaiveDate;

use crate::util::{Run, read_parquet, run_range, tree};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
}

/// Every CDR row as text, keyed by id, with the partition it is in.
fn rows(out: &Path) -> BTreeMap<String, Vec<String>> {
    let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, _) in tree(out).into_iter().filter(|(k, _)| k.starts_with("cdr/")) {
        let partition = key.split('/').nth(1).unwrap().to_string();
        for batch in read_parquet(&out.join(&key)) {
            for row in 0..batch.num_rows() {
                let id = batch
                    .column_by_name("id")
                    .unwrap()
                    .as_string::<i32>()
                    .value(row)
                    .to_string();
                let mut text = vec![partition.clone()];
                text.extend(columns(&batch, row));
                rows.entry(id).or_default().extend(text);
            }
        }
    }
    rows
}

fn columns(batch: &RecordBatch, row: usize) -> Vec<String> {
    batch
        .columns()
        .iter()
        .map(|c| arrow_cast_display(c.as_ref(), row))
        .collect()
}

fn arrow_cast_display(array: &dyn arrow_array::Array, row: usize) -> String {
    format!("{:?}", array.slice(row, 1))
}

struct Drop {
    work: tempfile::TempDir,
}

impl Drop {
    fn new() -> Drop {
        let work = tempfile::tempdir().unwrap();
        let mut spec = DropSpec::new(61, day(1), day(6));
        spec.cdr_rows_per_day = 200;
        spec.recordings_per_day = Some(0);
        spec.queue = false;
        spec.quirks = Quirks {
            repeat_previous_tail: 4,
            ..Quirks::default()
        };
        write_drop(&work.path().join("drop"), &spec).unwrap();
        Drop { work }
    }

    fn config(&self, name: &str) -> PathBuf {
        let path = self.work.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "[source]\nurl = \"file://{}\"\n[destination]\nurl = \"file://{}\"\n[ingest]\ncategories = [\"cdr\"]\n",
                self.work.path().join("drop").display(),
                self.work.path().join(name).display()
            ),
        )
        .unwrap();
        path
    }

    fn run(&self, name: &str, from: u32, to: u32) {
        let config = self.config(name);
        let output = run_range(&config, &day(from).to_string(), &day(to).to_string())
            .output()
            .unwrap();
        let run = Run::from(output);
        assert_eq!(run.code, 0, "{run:?}");
    }

    fn rows(&self, name: &str) -> BTreeMap<String, Vec<String>> {
        rows(&self.work.path().join(name))
    }
}

#[test]
fn each_call_appears_once_whatever_order_the_days_come_in() {
    let drop = Drop::new();
    drop.run("in-order", 1, 6);
    for d in (1..=6).rev() {
        drop.run("newest-first", d, d);
    }
    drop.run("overlapping", 3, 6);
    drop.run("overlapping", 1, 4);

    let reference = drop.rows("in-order");
    // 6 days of 200 calls, plus the 4 calls of 29 February repeated in the file of the 1st.
    assert_eq!(reference.len(), 6 * 200 + 4);
    for (id, row) in &reference {
        // One partition and one set of values per id: the row appears once.
        assert_eq!(row.len(), 17, "{id} appears more than once: {row:?}");
    }
    assert!(
        drop.rows("newest-first") == reference,
        "newest-first differs from in-order"
    );
    assert!(
        drop.rows("overlapping") == reference,
        "two overlapping backfills differ from in-order"
    );
}

impl Drop {
    /// Rewrites a day's CDR file through `edit` (on its lines, header first), with a
    /// later modification time, as a corrected upload would be.
    fn correct(&self, d: u32, edit: impl FnOnce(&mut Vec<String>)) {
        let path = self.work.path().join("drop").join(cdr_path(day(d)));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        edit(&mut lines);
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap()
            + std::time::Duration::from_secs(3600);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
    }
}

/// Regression: a corrected day-D file that drops a call the D+1 file also repeats
/// left it nowhere (D+1's copy had been dropped as the own file's); it now comes back
/// from D+1's file, as in a clean run of the corrected drop.
#[test]
fn a_call_dropped_from_its_own_day_comes_back_from_the_next_days_file() {
    let drop = Drop::new();
    drop.run("corrected", 1, 6);
    let mut dropped = String::new();
    drop.correct(2, |lines| dropped = lines.pop().unwrap());
    let id = dropped.split(',').next().unwrap().to_string();
    drop.run("corrected", 1, 6);
    drop.run("clean", 1, 6);
    let rows = drop.rows("corrected");
    assert!(
        rows[&id].contains(&"date=2024-03-02".to_string()),
        "{id} is back in its day's partition"
    );
    assert!(rows == drop.rows("clean"), "differs from a clean run");
}

/// Regression: a corrected file that no longer repeats the previous day's calls kept
/// them as its contribution to that day (the ledger's kept-rows keys were read as data
/// keys), so they came back when that day's own file later dropped one.
#[test]
fn a_file_corrected_without_the_repeated_calls_no_longer_contributes_them() {
    let drop = Drop::new();
    drop.run("corrected", 1, 6);
    drop.correct(3, |lines| {
        lines.drain(1..=4);
    });
    drop.run("corrected", 1, 6);
    let mut dropped = String::new();
    drop.correct(2, |lines| dropped = lines.pop().unwrap());
    let id = dropped.split(',').next().unwrap().to_string();
    drop.run("corrected", 1, 6);
    drop.run("clean", 1, 6);
    let rows = drop.rows("corrected");
    assert!(!rows.contains_key(&id), "{id} is in no file any more");
    assert!(rows == drop.rows("clean"), "differs from a clean run");
}

/// Regression (found by the schedule test): an ingestion killed before its ledger
/// entry left the file's rows for the day before in that day's partition; when the
/// file was then corrected to no longer repeat them, the next run did not know to
/// remove them. The entry now says what an attempt may write before it writes.
#[test]
fn rows_left_by_a_killed_ingestion_go_when_the_file_changes_before_the_rerun() {
    let drop = Drop::new();
    drop.run("killed", 1, 2);
    let config = drop.config("killed");
    let killed = Run::from(
        run_range(&config, "2024-03-03", "2024-03-03")
            .env("CDR_INGEST_CRASH_AT", "before-ledger")
            .output()
            .unwrap(),
    );
    assert!(
        killed.stderr.contains("aborting at before-ledger"),
        "{killed:?}"
    );
    drop.correct(3, |lines| {
        lines.drain(1..=4);
    });
    drop.run("killed", 1, 6);
    drop.run("clean", 1, 6);
    let without_runs = |name: &str| -> Vec<(String, Vec<u8>)> {
        tree(&drop.work.path().join(name))
            .into_iter()
            .filter(|(key, _)| !key.contains('#'))
            .collect()
    };
    assert_eq!(
        without_runs("killed")
            .iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>(),
        without_runs("clean")
            .iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>()
    );
    assert!(
        without_runs("killed") == without_runs("clean"),
        "other bytes"
    );
}
