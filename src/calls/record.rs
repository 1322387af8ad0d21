//! One row of a feed's dataset as read back from its Parquet objects, with typed
//! getters by column name: what a [`super::Mapping`]'s `facts` reads.

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};

/// Row `row` of `batch`. A column the object lacks, or of another type, reads as NULL.
pub struct Record<'a> {
    pub batch: &'a RecordBatch,
    pub row: usize,
    /// The columns its mapping declares (`super::Mapping::columns`).
    pub columns: &'static [&'static str],
}

impl<'a> Record<'a> {
    fn column(&self, name: &str) -> Option<&'a dyn Array> {
        debug_assert!(
            self.columns.contains(&name),
            "a calls mapping reads {name} without listing it in its columns"
        );
        let column = self.batch.column_by_name(name)?;
        (!column.is_null(self.row)).then_some(column.as_ref())
    }

    /// A text column's value; empty text is NULL.
    pub fn text(&self, name: &str) -> Option<&'a str> {
        let value = self.column(name)?.as_string_opt::<i32>()?.value(self.row);
        (!value.trim().is_empty()).then_some(value)
    }

    pub fn owned(&self, name: &str) -> Option<String> {
        self.text(name).map(str::to_string)
    }

    /// A timestamp column's value in UTC microseconds.
    pub fn micros(&self, name: &str) -> Option<i64> {
        Some(
            self.column(name)?
                .as_primitive_opt::<TimestampMicrosecondType>()?
                .value(self.row),
        )
    }

    pub fn whole(&self, name: &str) -> Option<i64> {
        Some(
            self.column(name)?
                .as_primitive_opt::<Int64Type>()?
                .value(self.row),
        )
    }

    pub fn decimal(&self, name: &str) -> Option<i128> {
        Some(
            self.column(name)?
                .as_primitive_opt::<Decimal128Type>()?
                .value(self.row),
        )
    }
}
