//! The pipeline against a real S3 server (moto, started by scripts/test.sh): output
//! lands under the bucket prefix and reads back typed; leases keep two runs apart;
//! `validate --connect` tells a missing bucket from a good one; a drop read from a
//! bucket gives what the same drop read from a folder gives.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_schema::{DataType, TimeUnit};
use cdr_ingest::generate::{DropSpec, write_drop};
use chrono::NaiveDate;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::util::{Case, Run, local_config, run_range, tree};

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test.sh"))
}

/// The `[destination]` block for `prefix` in the test bucket (credentials come from
/// the environment, as in production).
fn destination(bucket: &str, prefix: &str) -> String {
    format!(
        "[destination]\nurl = \"s3://{bucket}/{prefix}\"\n[destination.options]\nendpoint = \"{}\"\nregion = \"{}\"\nallow_http = \"true\"\nvirtual_hosted_style_request = \"false\"\n",
        env("CDR_TEST_S3_ENDPOINT"),
        env("CDR_TEST_S3_REGION")
    )
}

/// Points a config file written by `Case` at S3 instead of its local folder.
pub fn use_s3(config: &Path, prefix: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let start = text.find("[destination]").unwrap();
    let end = text.find("[ingest]").unwrap();
    let text = format!(
        "{}{}{}",
        &text[..start],
        destination(&env("CDR_TEST_S3_BUCKET"), prefix),
        &text[end..]
    );
    std::fs::write(config, text).unwrap();
}

pub fn with_credentials(command: &mut Command) -> &mut Command {
    command
        .env("AWS_ACCESS_KEY_ID", env("CDR_TEST_S3_ACCESS_KEY_ID"))
        .env(
            "AWS_SECRET_ACCESS_KEY",
            env("CDR_TEST_S3_SECRET_ACCESS_KEY"),
        )
}

/// The test bucket, reached directly.
pub fn bucket() -> Arc<dyn ObjectStore> {
    Arc::new(
        AmazonS3Builder::new()
            .with_bucket_name(env("CDR_TEST_S3_BUCKET"))
            .with_endpoint(env("CDR_TEST_S3_ENDPOINT"))
            .with_region(env("CDR_TEST_S3_REGION"))
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_access_key_id(env("CDR_TEST_S3_ACCESS_KEY_ID"))
            .with_secret_access_key(env("CDR_TEST_S3_SECRET_ACCESS_KEY"))
            .build()
            .unwrap(),
    )
}

/// Uploads every file under `dir` to `prefix/` in the test bucket, after deleting what
/// an earlier run left there; big files go up in parts, streamed from disk.
pub async fn upload_tree(dir: &Path, prefix: &str) {
    clear(prefix).await;
    let store = bucket();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path.strip_prefix(dir).unwrap().to_str().unwrap();
            let key = Key::parse(format!("{prefix}/{relative}")).unwrap();
            let mut file = tokio::fs::File::open(&path).await.unwrap();
            let mut upload = object_store::buffered::BufWriter::new(store.clone(), key);
            tokio::io::copy(&mut file, &mut upload).await.unwrap();
            tokio::io::AsyncWriteExt::shutdown(&mut upload)
                .await
                .unwrap();
        }
    }
}

/// Deletes whatever an earlier run left under `prefix/` in the test bucket.
pub async fn clear(prefix: &str) {
    let store = bucket();
    let old: Vec<_> = store
        .list(Some(&Key::from(prefix)))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .unwrap();
    for key in old {
        store.delete(&key).await.unwrap();
    }
}

/// Every object under `prefix` with its bytes, sorted, leases left out.
pub async fn objects(prefix: &str) -> Vec<(String, Vec<u8>)> {
    let store = bucket();
    let metas: Vec<_> = store
        .list(Some(&Key::from(prefix)))
        .try_collect()
        .await
        .unwrap();
    let mut out = Vec::new();
    for meta in metas {
        let key = meta
            .location
            .as_ref()
            .strip_prefix(&format!("{prefix}/"))
            .unwrap()
            .to_string();
        if key.starts_with("_state/leases") || key.starts_with("_state/runs") {
            continue;
        }
        let bytes = store
            .get(&meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        out.push((key, bytes.to_vec()));
    }
    out.sort();
    out
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
}

#[tokio::test]
async fn a_drop_over_ftps_lands_in_s3_and_reads_back_typed() {
    let case = Case::new("s3-e2e");
    let mut spec = DropSpec::new(13, day(1), day(2));
    spec.recordings_per_day = Some(3);
    let manifest = write_drop(&case.remote, &spec).unwrap();
    let config = case.config_with("", "recordings_min_age_secs = 0");
    use_s3(&config, "s3-e2e");
    let mut command = run_range(&config, "2024-03-01", "2024-03-02");
    command.env("CDR_INGEST_SOURCE_PASSWORD", &case.server.password);
    let run = Run::from(with_credentials(&mut command).output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");

    let objects = objects("s3-e2e").await;
    let keys: Vec<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
    for expected in [
        "cdr/date=2024-03-01/2024-03-01.parquet",
        "queue_call/date=2024-03-01/2024-03-01.parquet",
        "queue_user_call/date=2024-03-02/2024-03-02.parquet",
        "recording_index/date=2024-03-01/recordings.parquet",
        "_state/ledger/cdr/2024-03-02.json",
        "_state/ledger/recordings/2024-03-01.json",
    ] {
        assert!(keys.contains(&expected), "{expected} missing from {keys:?}");
    }
    let recordings = keys.iter().filter(|k| k.starts_with("recordings/")).count();
    assert_eq!(
        recordings,
        manifest
            .days
            .iter()
            .map(|d| d.recordings.len())
            .sum::<usize>()
    );

    let (_, bytes) = objects
        .iter()
        .find(|(k, _)| k == "cdr/date=2024-03-01/2024-03-01.parquet")
        .unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes.clone()))
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
    let schema = batches[0].schema();
    assert_eq!(
        schema.field_with_name("calldate").unwrap().data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(
        schema.field_with_name("charge").unwrap().data_type(),
        &DataType::Decimal128(18, 6)
    );
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    // The file of day 1 holds that day's calls, minus the previous day's repeated tail.
    assert!(
        rows > 0 && rows <= manifest.days[0].cdr_unique_ids,
        "{rows}"
    );
    let ids = batches[0].column_by_name("id").unwrap().as_string::<i32>();
    assert!(ids.iter().all(|id| id.is_some_and(|id| id.contains('.'))));
}

#[tokio::test]
async fn two_runs_at_once_on_s3_give_the_same_dataset_as_one() {
    let work = tempfile::tempdir().unwrap();
    let drop = work.path().join("drop");
    let mut spec = DropSpec::new(17, day(1), day(3));
    spec.cdr_rows_per_day = 2000;
    spec.recordings_per_day = Some(10);
    write_drop(&drop, &spec).unwrap();
    let config = |prefix: &str| {
        let path = work.path().join(format!("{prefix}.toml"));
        let text = format!(
            "[source]\nurl = \"file://{}\"\n{}[ingest]\nrecordings_min_age_secs = 0\n",
            drop.display(),
            destination(&env("CDR_TEST_S3_BUCKET"), prefix)
        );
        std::fs::write(&path, text).unwrap();
        path
    };
    let start = |config: &Path| {
        let mut command = run_range(config, "2024-03-01", "2024-03-03");
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        with_credentials(&mut command).spawn().unwrap()
    };
    let reference = Run::from(
        start(&config("overlap-reference"))
            .wait_with_output()
            .unwrap(),
    );
    assert_eq!(reference.code, 0, "{reference:?}");
    let shared = config("overlap-shared");
    let (first, second) = (start(&shared), start(&shared));
    for child in [first, second] {
        let run = Run::from(child.wait_with_output().unwrap());
        assert_eq!(run.code, 0, "{run:?}");
    }
    let reference = objects("overlap-reference").await;
    assert!(reference.len() > 30);
    assert_eq!(objects("overlap-shared").await, reference);
}

#[test]
fn validate_connect_probes_the_bucket_and_names_a_missing_one() {
    let case = Case::new("s3-validate");
    let config = case.config("");
    use_s3(&config, "probe");
    let run = |config: &Path| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cdr-ingest"));
        command
            .args([
                "validate",
                "--config",
                config.to_str().unwrap(),
                "--connect",
            ])
            .env("CDR_INGEST_SOURCE_PASSWORD", &case.server.password);
        Run::from(with_credentials(&mut command).output().unwrap())
    };
    // The case's queue and recordings folders do not exist, so the source part fails,
    // but the destination is still probed and reported.
    let good = run(&config);
    assert!(
        good.stdout
            .contains("wrote, read and deleted a probe object"),
        "{good:?}"
    );

    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("s3://{}/", env("CDR_TEST_S3_BUCKET")),
        "s3://no-such-bucket-here/",
    );
    std::fs::write(&config, text).unwrap();
    let missing = run(&config);
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(missing.stderr.contains("does not exist"), "{missing:?}");
}

/// `[source]` reading the test bucket under `prefix` (credentials from the environment).
fn bucket_source(prefix: &str) -> String {
    format!(
        "[source]\nurl = \"s3://{}/{prefix}\"\n[source.options]\nendpoint = \"{}\"\nregion = \"{}\"\nallow_http = \"true\"\nvirtual_hosted_style_request = \"false\"\n",
        env("CDR_TEST_S3_BUCKET"),
        env("CDR_TEST_S3_ENDPOINT"),
        env("CDR_TEST_S3_REGION")
    )
}

/// `tree`, with the times of the source's files left out of the ledger: a bucket's are
/// upload times, a folder's the files' own.
fn without_source_times(files: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove("modified");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    files
        .into_iter()
        .map(|(key, bytes)| {
            if !key.starts_with("_state/ledger/") {
                return (key, bytes);
            }
            let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            strip(&mut value);
            (key, serde_json::to_vec(&value).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_drop_in_a_bucket_ingests_like_the_same_drop_in_a_folder() {
    let work = tempfile::tempdir().unwrap();
    let drop = work.path().join("drop");
    let mut spec = DropSpec::new(29, day(1), day(3));
    spec.recordings_per_day = Some(6);
    let manifest = write_drop(&drop, &spec).unwrap();
    upload_tree(&drop, "bucket-source/drop").await;

    let from_bucket = work.path().join("from-bucket");
    let config = work.path().join("bucket.toml");
    std::fs::write(
        &config,
        format!(
            "{}[destination]\nurl = \"file://{}\"\n[ingest]\nrecordings_min_age_secs = 0\n",
            bucket_source("bucket-source/drop"),
            from_bucket.display()
        ),
    )
    .unwrap();
    let validate = |config: &Path| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cdr-ingest"));
        command.args([
            "validate",
            "--config",
            config.to_str().unwrap(),
            "--connect",
        ]);
        Run::from(with_credentials(&mut command).output().unwrap())
    };
    let checked = validate(&config);
    assert_eq!(checked.code, 0, "{checked:?}");
    assert!(checked.stdout.contains("  CDRs/: 3 files"), "{checked:?}");
    let recordings: usize = manifest.days.iter().map(|d| d.recordings.len()).sum();
    assert!(
        checked
            .stdout
            .contains(&format!("  recordings/: {recordings} files")),
        "{checked:?}"
    );

    let mut command = run_range(&config, "2024-03-01", "2024-03-03");
    let run = Run::from(with_credentials(&mut command).output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");

    let from_folder = work.path().join("from-folder");
    let local = local_config(&work.path().join("folder.toml"), &drop, &from_folder);
    let run = Run::from(
        run_range(&local, "2024-03-01", "2024-03-03")
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");

    let expected = without_source_times(tree(&from_folder));
    let keys: Vec<&str> = expected.iter().map(|(k, _)| k.as_str()).collect();
    for prefix in [
        "cdr/",
        "queue_call/",
        "queue_user_call/",
        "recordings/",
        "recording_index/",
    ] {
        assert!(
            keys.iter().any(|k| k.starts_with(prefix)),
            "no {prefix} in {keys:?}"
        );
    }
    let actual = without_source_times(tree(&from_bucket));
    let names =
        |files: &[(String, Vec<u8>)]| files.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(names(&actual), names(&expected));
    for ((key, bytes), (_, wanted)) in actual.iter().zip(&expected) {
        assert!(bytes == wanted, "{key} differs");
    }

    // A bucket that is not there is named, with what to check.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("s3://{}/", env("CDR_TEST_S3_BUCKET")),
        "s3://no-such-drop-bucket/",
    );
    std::fs::write(&config, text).unwrap();
    let missing = validate(&config);
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(
        missing
            .stdout
            .contains("s3://no-such-drop-bucket/bucket-source/drop/CDRs: the bucket or container does not exist (check source.url)"),
        "{missing:?}"
    );
    let secret = env("CDR_TEST_S3_SECRET_ACCESS_KEY");
    assert!(!missing.stdout.contains(&secret) && !missing.stderr.contains(&secret));
}
