//! A worksheet of an XLSX or XLS workbook as a positional row source, like a CSV file.
//!
//! The sheet read is the first whose first [`HEADER_SEARCH_ROWS`] rows hold a header
//! row of the table (a title row, blank rows or a logo above it are passed over); its
//! records are the rows below, blank rows skipped, numbered as the spreadsheet numbers
//! them. A merged area's value (kept in its top-left cell) is given to every cell of
//! the area. Cells become text as a person sees them: numbers without a trailing `.0`
//! (a phone number stored as a number keeps its digits), dates and times (Excel serials
//! with a date format) as `YYYY-MM-DD HH:MM:SS` rounded to the second, times of day
//! and durations as `HH:MM:SS`, errors as `#N/A`…; a serial without a date format stays
//! a number, which the table's time parser also reads.
//!
//! XLSX sheets are streamed cell by cell (`calamine`'s cell reader), so memory holds
//! the workbook's shared strings and one row, not the sheet; XLS sheets (at most
//! 65,536 rows) are read whole.

use std::collections::VecDeque;
use std::io::{Read, Seek};

use calamine::{
    CellErrorType, Data, DataRef, Dimensions, ExcelDateTime, Range, Reader, Xls, Xlsx,
    XlsxCellReader,
};
use chrono::{NaiveDate, NaiveDateTime};

use super::call_history::ExportFormat;
use super::csv_rows::reencode;
use super::rows::{Record, RowSource};
use super::table::{FileError, Header, Table, Unreadable, fingerprint};

/// How far down a sheet its header row may be.
pub const HEADER_SEARCH_ROWS: u32 = 50;

/// An open workbook.
pub enum Workbook<R: Read + Seek> {
    Xlsx(Xlsx<R>),
    Xls(Xls<R>),
}

impl<R: Read + Seek> Workbook<R> {
    /// Opens a workbook of `format` (XLSX or XLS).
    pub fn open(input: R, format: ExportFormat) -> Result<Self, FileError> {
        let broken = |e: String| FileError::Workbook(e);
        match format {
            ExportFormat::Xlsx => Xlsx::new(input)
                .map(Workbook::Xlsx)
                .map_err(|e| broken(e.to_string())),
            ExportFormat::Xls => Xls::new(input)
                .map(Workbook::Xls)
                .map_err(|e| broken(e.to_string())),
            ExportFormat::Csv => Err(broken("a CSV file is not a workbook".into())),
        }
    }

    /// The rows of the first sheet with a header row of `table`, and that sheet's name.
    pub fn rows(&mut self, table: &'static Table) -> Result<SheetRows<'_, R>, FileError> {
        let names = match self {
            Workbook::Xlsx(w) => w.sheet_names(),
            Workbook::Xls(w) => w.sheet_names(),
        };
        let mut first_problem = None;
        let mut found = None;
        for name in &names {
            // Merged areas do not matter to find the header (a workbook's are listed
            // after its rows: reading them costs a pass over the sheet).
            let mut cells = self.cells(name, false)?;
            let mut row = SheetRecord::default();
            while cells.next_row(&mut row)? {
                if row.index >= HEADER_SEARCH_ROWS {
                    break;
                }
                let fields = row.fields();
                match Header::parse(table, &fields) {
                    Ok(_) => {
                        found = Some((name.clone(), row.index));
                        break;
                    }
                    Err(e) => {
                        first_problem.get_or_insert_with(|| format!("{name}!{}: {e}", row.line));
                    }
                }
            }
            if found.is_some() {
                break;
            }
        }
        let Some((sheet, header_index)) = found else {
            return Err(match first_problem {
                None => FileError::Empty,
                Some(first) => FileError::NoHeaderRow {
                    sheets: names.join(", "),
                    rows: HEADER_SEARCH_ROWS,
                    first,
                },
            });
        };
        let mut cells = self.cells(&sheet, true)?;
        let mut row = SheetRecord::default();
        while cells.next_row(&mut row)? && row.index < header_index {}
        let header = row.fields();
        Ok(SheetRows {
            sheet,
            width: header.len(),
            header: Some(header),
            cells,
            record: SheetRecord::default(),
        })
    }

    /// The cells of `sheet`, its merged areas filled when `merged`.
    fn cells(&mut self, sheet: &str, merged: bool) -> Result<Cells<'_, R>, FileError> {
        let broken = |e: String| FileError::Workbook(format!("sheet {sheet:?}: {e}"));
        Ok(match self {
            Workbook::Xlsx(w) => {
                let merges = if merged {
                    w.merge_cells_by_sheet_name(sheet)
                        .map_err(|e| broken(e.to_string()))?
                } else {
                    Vec::new()
                };
                let reader = w
                    .worksheet_cells_reader(sheet)
                    .map_err(|e| broken(e.to_string()))?;
                Cells::new(Stream::Xlsx(Some(Box::new(reader)), None), merges)
            }
            Workbook::Xls(w) => {
                let merges = w
                    .merge_cells_by_sheet_name(sheet)
                    .map_err(|e| broken(e.to_string()))?;
                let range = w
                    .worksheet_range(sheet)
                    .map_err(|e| broken(e.to_string()))?;
                Cells::new(Stream::Range(range, 0), merges)
            }
        })
    }
}

/// The records of one sheet, below its header row.
pub struct SheetRows<'w, R: Read + Seek> {
    /// The sheet's name, for the quarantine.
    pub sheet: String,
    header: Option<Vec<String>>,
    /// The header row's width: a row whose last cells are empty is that wide too.
    width: usize,
    cells: Cells<'w, R>,
    record: SheetRecord,
}

impl<R: Read + Seek> RowSource for SheetRows<'_, R> {
    type Record = SheetRecord;

    fn header(&mut self) -> Result<Option<Vec<String>>, FileError> {
        Ok(self.header.take())
    }

    fn next_record(&mut self) -> Result<Option<&SheetRecord>, FileError> {
        loop {
            if !self.cells.next_row(&mut self.record)? {
                return Ok(None);
            }
            if self.record.width > 0 {
                self.record.pad_to(self.width);
                return Ok(Some(&self.record));
            }
        }
    }
}

/// Where a sheet's cells come from.
enum Stream<'w, R: Read + Seek> {
    /// XLSX, streamed, with the first cell of the next row once it was read, or
    /// `None` once the sheet's end was read (the reader must not be asked again).
    Xlsx(
        Option<Box<XlsxCellReader<'w, R>>>,
        Option<(u32, u32, String)>,
    ),
    /// XLS, read whole, and the next row's offset in it.
    Range(Range<Data>, usize),
}

/// A sheet's cells, row by row, with merged areas filled.
struct Cells<'w, R: Read + Seek> {
    stream: Stream<'w, R>,
    /// Merged areas by first row, not yet reached.
    merges: VecDeque<Dimensions>,
    /// Merged areas the current row may be in, with their value.
    open: Vec<(Dimensions, String)>,
}

impl<'w, R: Read + Seek> Cells<'w, R> {
    fn new(stream: Stream<'w, R>, mut merges: Vec<Dimensions>) -> Self {
        merges.sort_by_key(|d| d.start);
        Cells {
            stream,
            merges: merges.into(),
            open: Vec::new(),
        }
    }

    /// Reads the next row that has cells into `row`; false at the end of the sheet.
    fn next_row(&mut self, row: &mut SheetRecord) -> Result<bool, FileError> {
        row.clear();
        let broken = |e: String| FileError::Workbook(e);
        match &mut self.stream {
            Stream::Xlsx(open, pending) => {
                let mut index = None;
                if let Some((r, c, text)) = pending.take() {
                    index = Some(r);
                    row.set(c, &text);
                }
                while let Some(reader) = open {
                    let Some(cell) = reader.next_cell().map_err(|e| broken(e.to_string()))? else {
                        *open = None;
                        break;
                    };
                    let (r, c) = cell.get_position();
                    let text = data_ref_text(cell.get_value());
                    match index {
                        Some(current) if r != current => {
                            *pending = Some((r, c, text));
                            break;
                        }
                        _ => {
                            index = Some(r);
                            row.set(c, &text);
                        }
                    }
                }
                let Some(index) = index else {
                    return Ok(false);
                };
                row.index = index;
            }
            Stream::Range(range, offset) => {
                let Some(cells) = range.rows().nth(*offset) else {
                    return Ok(false);
                };
                let (first_row, first_column) = range.start().unwrap_or_default();
                row.index = first_row + *offset as u32;
                for (c, value) in cells.iter().enumerate() {
                    row.set(first_column + c as u32, &data_text(value));
                }
                *offset += 1;
            }
        }
        self.fill_merged(row);
        row.finish();
        Ok(true)
    }

    /// Gives the value of each merged area the row is in to the area's empty cells.
    fn fill_merged(&mut self, row: &mut SheetRecord) {
        let r = row.index;
        self.open.retain(|(area, _)| area.end.0 >= r);
        while self.merges.front().is_some_and(|area| area.start.0 <= r) {
            let area = self.merges.pop_front().expect("checked above");
            if area.end.0 < r {
                continue;
            }
            // The area's value is in its top-left cell, on its first row.
            let value = if area.start.0 == r {
                row.cell(area.start.1).to_string()
            } else {
                String::new()
            };
            self.open.push((area, value));
        }
        for (area, value) in &self.open {
            if value.is_empty() {
                continue;
            }
            for c in area.start.1..=area.end.1 {
                if row.cell(c).is_empty() {
                    row.set(c, value);
                }
            }
        }
    }
}

/// One row of a sheet: its cells' text one after another, and where each ends.
#[derive(Debug, Default)]
pub struct SheetRecord {
    /// The row's index in the sheet, from 0.
    index: u32,
    /// The row as the spreadsheet numbers it, from 1.
    line: u64,
    cells: Vec<String>,
    /// Cells up to the last one with text.
    width: usize,
    text: String,
    ends: Vec<usize>,
}

impl SheetRecord {
    fn clear(&mut self) {
        for cell in &mut self.cells {
            cell.clear();
        }
        self.width = 0;
    }

    fn set(&mut self, column: u32, text: &str) {
        let column = column as usize;
        if self.cells.len() <= column {
            self.cells.resize_with(column + 1, String::new);
        }
        self.cells[column].clear();
        self.cells[column].push_str(text);
    }

    fn cell(&self, column: u32) -> &str {
        self.cells.get(column as usize).map_or("", String::as_str)
    }

    /// Joins the cells into one text for [`Record`].
    fn finish(&mut self) {
        self.line = u64::from(self.index) + 1;
        self.width = self
            .cells
            .iter()
            .rposition(|c| !c.trim().is_empty())
            .map_or(0, |last| last + 1);
        self.text.clear();
        self.ends.clear();
        for cell in &self.cells[..self.width] {
            self.text.push_str(cell);
            self.ends.push(self.text.len());
        }
    }

    /// Empty cells up to `width`, for a row whose last cells are empty.
    fn pad_to(&mut self, width: usize) {
        while self.width < width {
            self.ends.push(self.text.len());
            self.width += 1;
        }
    }

    fn fields(&self) -> Vec<String> {
        (0..self.width)
            .map(|i| self.get(i).unwrap_or_default().to_string())
            .collect()
    }
}

impl Record for SheetRecord {
    fn line(&self) -> u64 {
        self.line
    }

    fn unreadable(&self) -> Option<Unreadable> {
        None
    }

    fn width(&self) -> usize {
        self.width
    }

    fn get(&self, index: usize) -> Option<&str> {
        let end = *self.ends.get(index)?;
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        Some(&self.text[start..end])
    }

    fn name(&self, _: usize) -> Option<&str> {
        None
    }

    fn raw(&self) -> String {
        let fields: csv::ByteRecord = (0..self.width)
            .map(|i| self.get(i).unwrap_or_default())
            .collect();
        reencode(&fields)
    }

    fn fingerprint(&self) -> u64 {
        let mut start = 0;
        let lengths = self.ends.iter().map(|&end| {
            let length = end - start;
            start = end;
            length
        });
        fingerprint(lengths, self.text.as_bytes())
    }
}

/// A streamed XLSX cell as text.
fn data_ref_text(value: &DataRef<'_>) -> String {
    match value {
        DataRef::Int(n) => n.to_string(),
        DataRef::Float(f) => number_text(*f),
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::SharedString(s) => (*s).to_string(),
        DataRef::Bool(b) => bool_text(*b),
        DataRef::DateTime(t) => date_time_text(t),
        DataRef::Error(e) => error_text(e),
        DataRef::Empty => String::new(),
    }
}

/// An XLS cell as text.
fn data_text(value: &Data) -> String {
    match value {
        Data::Int(n) => n.to_string(),
        Data::Float(f) => number_text(*f),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Bool(b) => bool_text(*b),
        Data::DateTime(t) => date_time_text(t),
        Data::Error(e) => error_text(e),
        Data::Empty => String::new(),
    }
}

/// A whole number without `.0` (up to 15 digits, what a double holds exactly), others
/// in their shortest exact form.
fn number_text(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

fn bool_text(value: bool) -> String {
    if value { "TRUE" } else { "FALSE" }.to_string()
}

fn error_text(error: &CellErrorType) -> String {
    error.to_string()
}

/// A date-formatted serial: a duration or a time of day (less than a day) as
/// `HH:MM:SS`, a date and time as `YYYY-MM-DD HH:MM:SS`, rounded to the second.
fn date_time_text(value: &ExcelDateTime) -> String {
    let serial = value.as_f64();
    if value.is_duration() || (0.0..1.0).contains(&serial) {
        let seconds = (serial * 86_400.0).round().max(0.0) as u64;
        return format!(
            "{:02}:{:02}:{:02}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        );
    }
    let (year, month, day, hour, minute, second, milli) = value.to_ymd_hms_milli();
    let time =
        NaiveDate::from_ymd_opt(i32::from(year), u32::from(month), u32::from(day)).and_then(|d| {
            d.and_hms_milli_opt(
                u32::from(hour),
                u32::from(minute),
                u32::from(second),
                u32::from(milli),
            )
        });
    match time {
        Some(time) => round_to_second(time)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        None => number_text(serial),
    }
}

fn round_to_second(time: NaiveDateTime) -> NaiveDateTime {
    let millis = time.and_utc().timestamp_subsec_millis();
    let whole = time - chrono::Duration::milliseconds(i64::from(millis));
    if millis >= 500 {
        whole + chrono::Duration::seconds(1)
    } else {
        whole
    }
}
