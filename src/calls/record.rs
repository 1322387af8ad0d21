//! One row of a feed's dataset as read back from its Parquet objects, with typed
//! getters by column name: what a [`super::Mapping`]'s `facts` reads.

use std::borrow::Cow;

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};

/// Row `row` of a batch, through its [`Record::arrays`]. A column the object lacks, or
/// of another type, reads as NULL.
pub struct Record<'a> {
    pub row: usize,
    /// The columns its mapping declares (`super::Mapping::columns`).
    pub columns: &'static [&'static str],
    /// The batch's array of each of `columns` ([`Record::arrays`]), looked up once a
    /// batch: by name for every field of every row, the lookups were about 10 % of the
    /// CPU of a 1M-row day's run (`perf`).
    pub arrays: &'a [Option<&'a dyn Array>],
}

impl<'a> Record<'a> {
    /// The arrays of `columns` in `batch`, for the records of its rows.
    pub fn arrays(batch: &'a RecordBatch, columns: &[&str]) -> Vec<Option<&'a dyn Array>> {
        columns
            .iter()
            .map(|name| batch.column_by_name(name).map(|c| c.as_ref()))
            .collect()
    }

    fn column(&self, name: &str) -> Option<&'a dyn Array> {
        // The mapping's names and the ones it reads are the same literals, so the
        // address finds them; the text is compared only if the compiler made two.
        let same = |c: &&str| std::ptr::eq(c.as_ptr(), name.as_ptr()) && c.len() == name.len();
        let index = self.columns.iter().position(same).or_else(|| {
            let found = self.columns.iter().position(|c| *c == name);
            debug_assert!(
                found.is_some(),
                "a calls mapping reads {name} without listing it in its columns"
            );
            found
        })?;
        let column = self.arrays[index]?;
        (!column.is_null(self.row)).then_some(column)
    }

    /// A text column's value; empty text is NULL.
    pub fn text(&self, name: &str) -> Option<&'a str> {
        let value = self.column(name)?.as_string_opt::<i32>()?.value(self.row);
        // Most values start with a visible ASCII character: no need to trim them.
        let visible = value.as_bytes().first().is_some_and(u8::is_ascii_graphic);
        (visible || !value.trim().is_empty()).then_some(value)
    }

    /// A text column's value as a call's text, borrowed from the batch.
    pub fn value(&self, name: &str) -> Option<Cow<'a, str>> {
        self.text(name).map(Cow::Borrowed)
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
