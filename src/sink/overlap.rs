//! Exactly one row per id across files. The provider repeats the previous day's last
//! calls at the top of the next day's file, so a partition (one call date) can get the
//! same call from two source files. The rule, whatever order the files come in: a
//! call belongs to the file of its own day when that file has it, else to the file
//! that brought it. So a file's rows for another day ("spill") drop the ids that day's
//! own file already wrote, and a day's own file, when written, removes its ids from
//! the spill other files left in its partition.

use std::collections::HashSet;
use std::fs::File;

use arrow_array::cast::AsArray;
use arrow_array::{BooleanArray, RecordBatch};
use arrow_select::filter::filter_record_batch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::errors::ParquetError;
use parquet::file::reader::ChunkReader;

use super::partitioned::write_file;
use crate::formats::table::Table;

/// The ids of `table` rows in a Parquet file, all of them or only those in `among`.
pub fn ids<R: ChunkReader + 'static>(
    table: &'static Table,
    input: R,
    among: Option<&HashSet<String>>,
) -> Result<HashSet<String>, ParquetError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(input)?;
    let id = table.columns[table.id_column].name;
    let index = builder
        .schema()
        .index_of(id)
        .map_err(|e| ParquetError::General(e.to_string()))?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
    let mut found = HashSet::new();
    for batch in builder.with_projection(mask).build()? {
        let batch = batch.map_err(|e| ParquetError::General(e.to_string()))?;
        for value in batch.column(0).as_string::<i32>().iter().flatten() {
            if among.is_none_or(|wanted| wanted.contains(value)) {
                found.insert(value.to_string());
            }
        }
    }
    Ok(found)
}

/// The file without the rows whose id is in `drop`, with the number of rows left, or
/// `None` when nothing is left.
pub fn without<R: ChunkReader + 'static>(
    table: &'static Table,
    input: R,
    drop: &HashSet<String>,
) -> Result<Option<(File, u64)>, ParquetError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(input)?.build()?;
    let id = table.columns[table.id_column].name;
    let mut kept: Vec<RecordBatch> = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| ParquetError::General(e.to_string()))?;
        let ids = batch
            .column_by_name(id)
            .ok_or_else(|| ParquetError::General(format!("no {id} column")))?
            .as_string::<i32>()
            .clone();
        let keep: BooleanArray = ids
            .iter()
            .map(|v| Some(!v.is_some_and(|v| drop.contains(v))))
            .collect();
        let filtered =
            filter_record_batch(&batch, &keep).map_err(|e| ParquetError::General(e.to_string()))?;
        if filtered.num_rows() > 0 {
            kept.push(filtered);
        }
    }
    let rows: u64 = kept.iter().map(|b| b.num_rows() as u64).sum();
    if rows == 0 {
        return Ok(None);
    }
    Ok(Some((write_file(table, &kept)?, rows)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::cdr_csv::CDR;
    use crate::formats::table::read;
    use crate::sink::table_parquet::TableBatch;

    /// A Parquet file of the CDR rows in `csv`.
    fn parse_for_tests(csv: &str) -> File {
        let mut batch = TableBatch::new(&CDR);
        read::<_, ()>(
            &CDR,
            csv.as_bytes(),
            |_| Ok(()),
            |row, _| {
                batch.push(&row.unwrap(), "test.csv");
                Ok(())
            },
        )
        .unwrap()
        .unwrap();
        write_file(&CDR, &[batch.take()]).unwrap()
    }

    #[test]
    fn rows_with_given_ids_are_removed_and_an_emptied_file_is_none() {
        let csv = "id,calldate,src,dst,duration,billsec,disposition\n1,2024-03-01 00:00:00,1,2,3,4,A\n2,2024-03-01 00:00:01,1,2,3,4,A\n3,2024-03-01 00:00:02,1,2,3,4,A\n";
        let file = parse_for_tests(csv);
        let all = ids(&CDR, file.try_clone().unwrap(), None).unwrap();
        assert_eq!(all.len(), 3);
        let wanted: HashSet<String> = ["2".to_string(), "9".to_string()].into();
        assert_eq!(
            ids(&CDR, file.try_clone().unwrap(), Some(&wanted)).unwrap(),
            ["2".to_string()].into()
        );
        let (rest, rows) = without(&CDR, file.try_clone().unwrap(), &wanted)
            .unwrap()
            .unwrap();
        assert_eq!(rows, 2);
        assert_eq!(
            ids(&CDR, rest, None).unwrap(),
            ["1".to_string(), "3".to_string()].into()
        );
        assert!(without(&CDR, file, &all).unwrap().is_none());
    }
}
