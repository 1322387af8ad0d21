//! Rows split by call date into one Parquet file per date, spooled to anonymous
//! temporary files so memory stays bounded whatever the input size.

use std::collections::BTreeMap;
use std::fs::File;

use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;

use super::table_parquet::{TableBatch, schema};
use crate::formats::table::Table;

/// Rows per Arrow batch handed to the Parquet writer.
const BATCH_ROWS: usize = 32 * 1024;
/// Rows per row group: bounds the encoded data the writer holds before flushing.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// One finished partition file, ready to upload.
#[derive(Debug)]
pub struct Part {
    pub date: NaiveDate,
    pub file: File,
    pub rows: u64,
}

struct Open {
    builder: TableBatch,
    writer: ArrowWriter<File>,
    rows: u64,
}

/// Writes one table's rows into per-date Parquet files.
pub struct PartitionedWriter {
    table: &'static Table,
    props: WriterProperties,
    open: BTreeMap<NaiveDate, Open>,
}

impl PartitionedWriter {
    pub fn new(table: &'static Table) -> Self {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(3).expect("valid zstd level"),
            ))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            // No library version in the file: the same rows give the same bytes across upgrades.
            .set_created_by("cdr-ingest".to_string())
            .build();
        PartitionedWriter {
            table,
            props,
            open: BTreeMap::new(),
        }
    }

    /// Adds one row to the file of `date`.
    pub fn push(
        &mut self,
        date: NaiveDate,
        add: impl FnOnce(&mut TableBatch),
    ) -> Result<(), ParquetError> {
        let part = match self.open.entry(date) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let file = tempfile::tempfile().map_err(|e| ParquetError::External(Box::new(e)))?;
                let writer =
                    ArrowWriter::try_new(file, schema(self.table), Some(self.props.clone()))?;
                e.insert(Open {
                    builder: TableBatch::new(self.table),
                    writer,
                    rows: 0,
                })
            }
        };
        add(&mut part.builder);
        part.rows += 1;
        if part.builder.len() >= BATCH_ROWS {
            part.writer.write(&part.builder.take())?;
        }
        Ok(())
    }

    /// Rows added so far, all dates together.
    pub fn rows(&self) -> u64 {
        self.open.values().map(|p| p.rows).sum()
    }

    /// Closes every file and returns them in date order.
    pub fn finish(self) -> Result<Vec<Part>, ParquetError> {
        let mut parts = Vec::with_capacity(self.open.len());
        for (date, mut open) in self.open {
            if !open.builder.is_empty() {
                open.writer.write(&open.builder.take())?;
            }
            let file = open.writer.into_inner()?;
            parts.push(Part {
                date,
                file,
                rows: open.rows,
            });
        }
        Ok(parts)
    }
}
