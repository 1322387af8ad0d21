//! Arrow schema and column builders for any [`Table`]: the provider's column names
//! and types, a readable `<name>_name` column beside each code column, a
//! `<name>_text` column (the text as sent) beside each label's code, and the
//! provenance columns `_source_file` and `_source_line`. The partition column
//! `date` lives in the object key, not in the file.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, Decimal128Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::formats::table::{Kind, Row, Table, Value};
use crate::model::{DECIMAL_PRECISION, DECIMAL_SCALE};

/// The time zone written into timestamp columns.
const UTC: &str = "UTC";

/// The Arrow schema of a table's dataset.
pub fn schema(table: &'static Table) -> SchemaRef {
    table
        .schema
        .get_or_init(|| {
            let mut fields = Vec::new();
            for (index, column) in table.columns.iter().enumerate() {
                let nullable = !table.is_key(index);
                let data_type = match column.kind {
                    Kind::Text
                    | Kind::Phone
                    | Kind::Code(_)
                    | Kind::Label(_)
                    | Kind::Key(_)
                    | Kind::Extra => DataType::Utf8,
                    Kind::Timestamp | Kind::LocalTimestamp => {
                        DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
                    }
                    Kind::Whole | Kind::Duration => DataType::Int64,
                    Kind::Decimal | Kind::Money => {
                        DataType::Decimal128(DECIMAL_PRECISION, DECIMAL_SCALE)
                    }
                };
                fields.push(Field::new(column.name, data_type, nullable));
                let beside = match column.kind {
                    Kind::Code(_) => Some("name"),
                    Kind::Label(_) => Some("text"),
                    _ => None,
                };
                if let Some(suffix) = beside {
                    fields.push(Field::new(
                        format!("{}_{suffix}", column.name),
                        DataType::Utf8,
                        true,
                    ));
                }
            }
            fields.push(Field::new("_source_file", DataType::Utf8, false));
            fields.push(Field::new("_source_line", DataType::Int64, false));
            Arc::new(Schema::new(fields))
        })
        .clone()
}

enum Builder {
    Text(StringBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Whole(Int64Builder),
    Decimal(Decimal128Builder),
    Code(StringBuilder, StringBuilder),
    /// A label's code and its text as sent.
    Label(StringBuilder, StringBuilder),
}

/// Column builders for one batch of a table's rows.
pub struct TableBatch {
    table: &'static Table,
    columns: Vec<Builder>,
    source_file: StringBuilder,
    source_line: Int64Builder,
}

impl TableBatch {
    pub fn new(table: &'static Table) -> Self {
        let columns = table
            .columns
            .iter()
            .map(|c| match c.kind {
                Kind::Text | Kind::Phone | Kind::Key(_) | Kind::Extra => {
                    Builder::Text(StringBuilder::new())
                }
                Kind::Timestamp | Kind::LocalTimestamp => {
                    Builder::Timestamp(TimestampMicrosecondBuilder::new().with_timezone(UTC))
                }
                Kind::Whole | Kind::Duration => Builder::Whole(Int64Builder::new()),
                Kind::Label(_) => Builder::Label(StringBuilder::new(), StringBuilder::new()),
                Kind::Decimal | Kind::Money => Builder::Decimal(
                    Decimal128Builder::new()
                        .with_precision_and_scale(DECIMAL_PRECISION, DECIMAL_SCALE)
                        .expect("valid decimal type"),
                ),
                Kind::Code(_) => Builder::Code(StringBuilder::new(), StringBuilder::new()),
            })
            .collect();
        TableBatch {
            table,
            columns,
            source_file: StringBuilder::new(),
            source_line: Int64Builder::new(),
        }
    }

    pub fn push(&mut self, row: &Row<'_, '_>, source_file: &str) {
        for (builder, value) in self.columns.iter_mut().zip(row.values) {
            match (builder, *value) {
                (Builder::Text(b), Value::Text(s)) => b.append_value(s),
                (Builder::Timestamp(b), Value::Micros(t)) => b.append_value(t),
                (Builder::Whole(b), Value::Whole(n)) => b.append_value(n),
                (Builder::Decimal(b), Value::Decimal(d)) => b.append_value(d),
                (Builder::Code(letter, name), Value::Code(code, readable)) => {
                    letter.append_value(code);
                    name.append_option(readable);
                }
                (Builder::Label(code, text), Value::Code(sent, stable)) => {
                    code.append_option(stable);
                    text.append_value(sent);
                }
                (Builder::Code(first, second), _) | (Builder::Label(first, second), _) => {
                    first.append_null();
                    second.append_null();
                }
                (Builder::Text(b), _) => b.append_null(),
                (Builder::Timestamp(b), _) => b.append_null(),
                (Builder::Whole(b), _) => b.append_null(),
                (Builder::Decimal(b), _) => b.append_null(),
            }
        }
        self.source_file.append_value(source_file);
        self.source_line.append_value(row.line as i64);
    }

    pub fn len(&self) -> usize {
        self.source_line.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hands over the rows gathered so far and starts afresh.
    pub fn take(&mut self) -> RecordBatch {
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len() + 4);
        for builder in &mut self.columns {
            match builder {
                Builder::Text(b) => arrays.push(Arc::new(b.finish())),
                Builder::Timestamp(b) => arrays.push(Arc::new(b.finish())),
                Builder::Whole(b) => arrays.push(Arc::new(b.finish())),
                Builder::Decimal(b) => arrays.push(Arc::new(b.finish())),
                Builder::Code(first, second) | Builder::Label(first, second) => {
                    arrays.push(Arc::new(first.finish()));
                    arrays.push(Arc::new(second.finish()));
                }
            }
        }
        arrays.push(Arc::new(self.source_file.finish()));
        arrays.push(Arc::new(self.source_line.finish()));
        RecordBatch::try_new(schema(self.table), arrays).expect("builders match the schema")
    }
}
