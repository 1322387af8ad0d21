//! The CDR table: Arrow schema and column builders for [`CdrRecord`]s.
//!
//! The provider's column names are kept; `_source_file` and `_source_line` record
//! where each row came from. The partition column `date` lives in the object key.

use std::sync::{Arc, OnceLock};

use arrow_array::RecordBatch;
use arrow_array::builder::{
    ArrayBuilder, Decimal128Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::partitioned::BatchBuilder;
use crate::model::{CdrRecord, DECIMAL_PRECISION, DECIMAL_SCALE};

/// The time zone written into timestamp columns.
const UTC: &str = "UTC";

/// Column builders for one batch of CDRs.
pub struct CdrBatch {
    id: StringBuilder,
    calldate: TimestampMicrosecondBuilder,
    src_id: StringBuilder,
    src: StringBuilder,
    clid: StringBuilder,
    dst: StringBuilder,
    dst_name: StringBuilder,
    duration: Int64Builder,
    billsec: Int64Builder,
    disposition: StringBuilder,
    destination: StringBuilder,
    rate: Decimal128Builder,
    charge: Decimal128Builder,
    t_cause: StringBuilder,
    source_file: StringBuilder,
    source_line: Int64Builder,
}

impl Default for CdrBatch {
    fn default() -> Self {
        let decimal = || {
            Decimal128Builder::new()
                .with_precision_and_scale(DECIMAL_PRECISION, DECIMAL_SCALE)
                .expect("valid decimal type")
        };
        CdrBatch {
            id: StringBuilder::new(),
            calldate: TimestampMicrosecondBuilder::new().with_timezone(UTC),
            src_id: StringBuilder::new(),
            src: StringBuilder::new(),
            clid: StringBuilder::new(),
            dst: StringBuilder::new(),
            dst_name: StringBuilder::new(),
            duration: Int64Builder::new(),
            billsec: Int64Builder::new(),
            disposition: StringBuilder::new(),
            destination: StringBuilder::new(),
            rate: decimal(),
            charge: decimal(),
            t_cause: StringBuilder::new(),
            source_file: StringBuilder::new(),
            source_line: Int64Builder::new(),
        }
    }
}

impl CdrBatch {
    pub fn push(&mut self, r: &CdrRecord<'_>, source_file: &str) {
        self.id.append_value(r.id);
        self.calldate.append_value(r.calldate.0);
        self.src_id.append_option(r.src_id);
        self.src.append_option(r.src);
        self.clid.append_option(r.clid);
        self.dst.append_option(r.dst);
        self.dst_name.append_option(r.dst_name);
        self.duration.append_option(r.duration);
        self.billsec.append_option(r.billsec);
        self.disposition.append_option(r.disposition);
        self.destination.append_option(r.destination);
        self.rate.append_option(r.rate.map(|d| d.0));
        self.charge.append_option(r.charge.map(|d| d.0));
        self.t_cause.append_option(r.t_cause);
        self.source_file.append_value(source_file);
        self.source_line.append_value(r.line as i64);
    }
}

impl BatchBuilder for CdrBatch {
    fn schema() -> SchemaRef {
        static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
        SCHEMA
            .get_or_init(|| {
                let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
                let money = |name: &str| {
                    Field::new(
                        name,
                        DataType::Decimal128(DECIMAL_PRECISION, DECIMAL_SCALE),
                        true,
                    )
                };
                Arc::new(Schema::new(vec![
                    text("id", false),
                    Field::new(
                        "calldate",
                        DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
                        false,
                    ),
                    text("src_id", true),
                    text("src", true),
                    text("clid", true),
                    text("dst", true),
                    text("dst_name", true),
                    Field::new("duration", DataType::Int64, true),
                    Field::new("billsec", DataType::Int64, true),
                    text("disposition", true),
                    text("destination", true),
                    money("rate"),
                    money("charge"),
                    text("t_cause", true),
                    text("_source_file", false),
                    Field::new("_source_line", DataType::Int64, false),
                ]))
            })
            .clone()
    }

    fn len(&self) -> usize {
        self.id.len()
    }

    fn take(&mut self) -> RecordBatch {
        let columns: Vec<arrow_array::ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.calldate.finish()),
            Arc::new(self.src_id.finish()),
            Arc::new(self.src.finish()),
            Arc::new(self.clid.finish()),
            Arc::new(self.dst.finish()),
            Arc::new(self.dst_name.finish()),
            Arc::new(self.duration.finish()),
            Arc::new(self.billsec.finish()),
            Arc::new(self.disposition.finish()),
            Arc::new(self.destination.finish()),
            Arc::new(self.rate.finish()),
            Arc::new(self.charge.finish()),
            Arc::new(self.t_cause.finish()),
            Arc::new(self.source_file.finish()),
            Arc::new(self.source_line.finish()),
        ];
        RecordBatch::try_new(Self::schema(), columns).expect("builders match the schema")
    }
}
