//! The recording index: one Parquet file per call date listing its recordings with
//! the parts of their names, so BI tools can join a call (`cdr.id`) to its recording
//! (`unique_id`) and find the object (`object_key`).

use std::sync::Arc;

use arrow_array::builder::{Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::formats::recording_name;

/// One copied recording, as the index lists it and the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingFile {
    pub name: String,
    pub size: u64,
    pub modified: Option<String>,
    pub sha256: String,
    /// Where the copy is, relative to the destination.
    pub key: String,
}

/// The index of `files` (one date's, sorted by name) as Parquet bytes.
pub fn build(files: &[RecordingFile]) -> Result<Vec<u8>, ParquetError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("unique_id", DataType::Utf8, false),
        Field::new(
            "started",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("sip_user", DataType::Utf8, false),
        Field::new("caller_id", DataType::Utf8, false),
        Field::new("called_no", DataType::Utf8, false),
        Field::new("file_name", DataType::Utf8, false),
        Field::new("object_key", DataType::Utf8, false),
        Field::new("size", DataType::Int64, false),
        Field::new("sha256", DataType::Utf8, false),
    ]));
    let text = StringBuilder::new;
    let (mut unique_id, mut sip_user, mut caller_id, mut called_no) =
        (text(), text(), text(), text());
    let (mut file_name, mut object_key, mut sha256) = (text(), text(), text());
    let mut started = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut size = Int64Builder::new();
    for file in files {
        // Only names that parsed are ever copied, so this holds.
        let Ok(name) = recording_name::parse(&file.name) else {
            continue;
        };
        unique_id.append_value(name.unique_id);
        started.append_value(name.started.and_utc().timestamp_micros());
        sip_user.append_value(name.sip_user);
        caller_id.append_value(name.caller_id);
        called_no.append_value(name.called_no);
        file_name.append_value(&file.name);
        object_key.append_value(&file.key);
        size.append_value(file.size as i64);
        sha256.append_value(&file.sha256);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(unique_id.finish()),
        Arc::new(started.finish()),
        Arc::new(sip_user.finish()),
        Arc::new(caller_id.finish()),
        Arc::new(called_no.finish()),
        Arc::new(file_name.finish()),
        Arc::new(object_key.finish()),
        Arc::new(size.finish()),
        Arc::new(sha256.finish()),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_created_by("cdr-ingest".to_string())
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(props))?;
    writer.write(&batch)?;
    writer.into_inner()
}
