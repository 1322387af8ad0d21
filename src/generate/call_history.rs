//! Call-history exports of the cloud contact center (`shared/PROVIDER.md` §4), as
//! people make them from its web interface: CSV or XLSX, the header in Russian or
//! English, each covering a range of time, overlapping.
//!
//! # The calls
//!
//! Calls sit on a grid: call `k` is in slot `k` of `spacing` seconds (its time a random
//! second of the slot), so two exports whose ranges overlap hold the same calls there.
//! Everything about a call comes from `(seed, k)`: type (70 % outbound), numbers
//! (`+7495…` the company's, `+7999…`, `+7916…` the customer's), operator (empty for
//! calls nobody took), queue (inbound), campaign (outbound; inbound calls have none),
//! attempt result (weighted over all 14 documented results), ring and talk seconds
//! (talk only when answered), price (outbound answered: 1.20 a started minute),
//! scenario, attempts (1–3), tags, topics, notes (some with `,`, `;`, `"` or a line
//! break). A call before [`ExportSpec::revised_before`] is written as a later export
//! sees it: about one call in five has its notes and tags edited since (the rule that a
//! newer export's values win needs such rows).
//!
//! # A day of a drop ([`write`])
//!
//! `call_history/YYYY-MM/YYYY-MM-DD.xlsx` (Russian) on even days since 1970, `.csv`
//! (English) on odd ones, covering D−1 18:00 to D+1 00:00 UTC (so the last six hours
//! of the day before are in two exports, edited in the later one), one call every
//! `86_400 / cdr_rows_per_day` seconds, times in UTC, the quirks when any of the
//! drop's quirks is on; mtime D+1 02:00:00 UTC.
//!
//! # What a file holds
//!
//! Header texts in [`HEADER_RU`] or [`HEADER_EN`] order; the type and the result in the
//! file's language; times as wall-clock times at [`ExportSpec::utc_offset_minutes`],
//! without a zone. CSV: Russian files are `;`-separated with a UTF-8 BOM and CRLF,
//! times `DD.MM.YYYY HH:MM:SS`, prices `1,20`, durations `MM:SS` (`H:MM:SS` from an
//! hour); English files are `,`-separated, LF, times `YYYY-MM-DD HH:MM:SS`, prices
//! `1.20`, durations in seconds. A field is quoted when it holds the delimiter, `"` or
//! a line break. XLSX: one sheet `Calls`/`Звонки`, inline strings; times and
//! durations as text like the CSV of the language.
//!
//! # Quirks ([`ExportSpec::quirks`])
//!
//! CSV: a column `Customer ID`/`ID клиента` the table does not know, after `Notes`;
//! one row (the 3rd) whose time is `31.02.2024 25:00:00` (English: `2024-02-31
//! 25:00:00`), a bad row. XLSX, besides those: a first sheet `Summary`/`Сводка` with a
//! few lines and no header; on the data sheet a title row (`Call history` merged
//! across the header's width), a blank row, then the header; times as Excel serials
//! with a date format, durations as serials with `[hh]:mm:ss`, prices and attempts as
//! numbers, phone numbers as numbers (no `+`: written as text when they have one, so
//! the company's numbers stay text and the customer's become numbers); a run of rows
//! of one campaign whose `Campaign` cells are merged (the value only in the first).

use std::io::{self, Write};
use std::path::Path;

use chrono::DateTime;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::rng::Rng;
use super::{DAY_SECONDS, DayManifest, DropSpec, Quirks, day_number, day_start, system_time};

/// The stream tag of call-history calls.
const STREAM_CALL_HISTORY: u64 = 11;

/// The header of a Russian export, in the order written.
pub const HEADER_RU: [&str; 18] = [
    "Время",
    "Тип",
    "Звонок с",
    "Звонок к",
    "Оператор",
    "Очередь",
    "Длительность дозвона",
    "Длительность разговора",
    "Запись",
    "Цена",
    "Сценарий",
    "Кампания",
    "Результат попытки",
    "Код завершения",
    "Попытки",
    "Теги",
    "Тематики",
    "Заметки",
];

/// The header of an English export.
pub const HEADER_EN: [&str; 18] = [
    "Time",
    "Type",
    "Call from",
    "Call to",
    "Operator",
    "Queue",
    "Ring duration",
    "Talk duration",
    "Recording",
    "Price",
    "Scenario",
    "Campaign",
    "Attempt result",
    "Completion code",
    "Attempts",
    "Tags",
    "Topics",
    "Notes",
];

/// The documented attempt results: Russian text, English text, how often (weight),
/// and the stable code a correct ingest gives it.
const RESULTS: [(&str, &str, u32, &str); 14] = [
    ("Вызов принят", "Answered", 50, "answered"),
    ("Абонент не отвечает", "No answer", 14, "no_answer"),
    ("Номер занят", "Busy", 8, "busy"),
    ("Номер недоступен", "Unreachable", 5, "unreachable"),
    ("Вызов отклонен", "Rejected", 4, "rejected"),
    ("Автоответчик", "Answering machine", 5, "voicemail"),
    ("Брошенный", "Abandoned", 3, "abandoned"),
    ("Заблокирован DNC", "Blocked by DNC", 2, "dnc_blocked"),
    ("Ошибка дозвона", "Dial error", 2, "dial_error"),
    ("Запрос отменен", "Request cancelled", 2, "cancelled"),
    ("Неправильный номер", "Wrong number", 2, "wrong_number"),
    (
        "Недостаточно средств",
        "Insufficient funds",
        1,
        "insufficient_funds",
    ),
    (
        "Потерян оператором",
        "Missed by operator",
        1,
        "missed_by_operator",
    ),
    ("Завершен в IVR", "Ended in IVR", 1, "ended_in_ivr"),
];

const OPERATORS: [&str; 6] = [
    "Иванова Анна",
    "Петров Сергей",
    "Smith, John",
    "Кузнецова Мария",
    "O'Neil \"Pat\"",
    "Сидоров Олег",
];
const CAMPAIGNS: [&str; 4] = ["Весна 2024", "Retention; Q1", "Долги", "Survey"];
const QUEUES: [&str; 3] = ["Поддержка", "Sales", "Billing"];
const TOPICS: [&str; 4] = ["Оплата", "Доставка", "Returns", ""];
const NOTES: [&str; 5] = [
    "",
    "перезвонить завтра",
    "asked for a discount, said \"maybe\"",
    "line 1\nline 2",
    "a; b, c",
];

/// One export file to write.
#[derive(Debug, Clone)]
pub struct ExportSpec {
    pub seed: u64,
    /// The calls of slots whose time is in `from..to` (UTC seconds since 1970).
    pub from: i64,
    pub to: i64,
    /// One call every `spacing` seconds: the same for exports that should overlap.
    pub spacing: i64,
    pub russian: bool,
    pub xlsx: bool,
    /// The offset of the wall-clock times written, in minutes east of UTC.
    pub utc_offset_minutes: i32,
    /// Calls before this time are written with their later edits (see the module doc).
    pub revised_before: i64,
    pub quirks: bool,
}

/// Writes the day's export (see the module doc) and records it in `m`.
pub fn write(root: &Path, spec: &DropSpec, m: &mut DayManifest) -> io::Result<()> {
    let start = day_start(m.date);
    let xlsx = day_number(m.date).is_multiple_of(2);
    let export = ExportSpec {
        seed: spec.seed,
        from: start - 6 * 3600,
        to: start + DAY_SECONDS,
        spacing: (DAY_SECONDS / spec.cdr_rows_per_day.max(1) as i64).max(1),
        russian: xlsx,
        xlsx,
        utc_offset_minutes: 0,
        revised_before: start,
        quirks: spec.quirks != Quirks::default(),
    };
    let rel = format!(
        "call_history/{}/{}.{}",
        m.date.format("%Y-%m"),
        m.date,
        if xlsx { "xlsx" } else { "csv" }
    );
    let path = root.join(&rel);
    std::fs::create_dir_all(path.parent().expect("a folder"))?;
    let written = write_export(&path, &export)?;
    std::fs::File::options()
        .write(true)
        .open(&path)?
        .set_modified(system_time(start + DAY_SECONDS + 2 * 3600))?;
    let day = calls(&ExportSpec {
        from: start,
        ..export
    });
    m.call_history_path = Some(rel);
    m.call_history_rows = written.calls.len() + written.bad_rows;
    m.call_history_bad_rows = written.bad_rows;
    m.call_history_calls = day.len();
    m.call_history_answered = day.iter().filter(|c| c.result == "answered").count();
    Ok(())
}

/// A call as an export holds it, and what a correct ingest makes of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedCall {
    /// UTC seconds since 1970.
    pub time: i64,
    pub outbound: bool,
    pub from: String,
    pub to: String,
    pub operator: &'static str,
    pub queue: &'static str,
    pub campaign: &'static str,
    /// The stable code of the attempt result.
    pub result: &'static str,
    pub ring: u32,
    pub talk: u32,
    /// In hundredths.
    pub price_cents: Option<u64>,
    pub attempts: u32,
    pub tags: String,
    pub notes: String,
}

/// What [`write_export`] wrote.
#[derive(Debug, Clone, Default)]
pub struct ExportManifest {
    /// The calls, in the order written (the bad row's call is not among them).
    pub calls: Vec<ExportedCall>,
    /// Rows a correct ingest sets aside.
    pub bad_rows: usize,
    /// Rows whose campaign cell is part of a merged area (quirky XLSX).
    pub merged_rows: usize,
}

/// The calls of `spec`'s range, in time order.
pub fn calls(spec: &ExportSpec) -> Vec<ExportedCall> {
    let first = spec.from.div_euclid(spec.spacing);
    let last = (spec.to - 1).div_euclid(spec.spacing);
    (first..=last)
        .map(|slot| call(spec, slot))
        .filter(|c| (spec.from..spec.to).contains(&c.time))
        .collect()
}

fn call(spec: &ExportSpec, slot: i64) -> ExportedCall {
    let mut rng = Rng::derive(spec.seed, &[STREAM_CALL_HISTORY, slot as u64]);
    let time = slot * spec.spacing + i64::from(rng.below(spec.spacing as u32));
    let outbound = rng.percent(70);
    let weights: Vec<u32> = RESULTS.iter().map(|r| r.2).collect();
    let result = RESULTS[rng.weighted(&weights)].3;
    let answered = result == "answered";
    let company = format!("+7495{:07}", rng.below(10_000_000));
    let customer = if rng.percent(50) {
        format!("+7999{:07}", rng.below(10_000_000))
    } else {
        format!("+7916{:07}", rng.below(10_000_000))
    };
    let (from, to) = if outbound {
        (company, customer)
    } else {
        (customer, company)
    };
    let took = answered || result == "missed_by_operator";
    let operator = if took { *rng.pick(&OPERATORS) } else { "" };
    let queue = if outbound { "" } else { *rng.pick(&QUEUES) };
    let campaign = if outbound { *rng.pick(&CAMPAIGNS) } else { "" };
    let ring = if outbound { rng.range(0, 45) } else { 0 };
    let talk = if answered { rng.range(1, 4000) } else { 0 };
    let price_cents = (outbound && answered).then(|| u64::from(talk.div_ceil(60)) * 120);
    let attempts = rng.range(1, 3);
    let mut tags = ["", "vip", "new, vip", "complaint"][rng.below(4) as usize].to_string();
    let mut notes = rng.pick(&NOTES).to_string();
    let edited = rng.percent(20);
    if time < spec.revised_before && edited {
        notes.push_str(" (edited)");
        tags = if tags.is_empty() {
            "updated".into()
        } else {
            format!("{tags}, updated")
        };
    }
    ExportedCall {
        time,
        outbound,
        from,
        to,
        operator,
        queue,
        campaign,
        result,
        ring,
        talk,
        price_cents,
        attempts,
        tags,
        notes,
    }
}

/// A cell of an export, before it is spelled for CSV or a sheet.
enum Cell {
    Text(String),
    /// A time (UTC seconds), written at the export's offset.
    Time(i64),
    Seconds(u32),
    Cents(u64),
    Number(u64),
    /// A phone number: a number in a quirky sheet unless it has a `+` the sheet keeps.
    Phone(String),
    /// The bad row's time.
    BadTime,
}

fn cells(spec: &ExportSpec, call: &ExportedCall, topic: &'static str) -> Vec<Cell> {
    let result = RESULTS
        .iter()
        .find(|r| r.3 == call.result)
        .expect("a generated result");
    let text = |s: &str| Cell::Text(s.to_string());
    let kind = match (spec.russian, call.outbound) {
        (true, true) => "Исходящий",
        (true, false) => "Входящий",
        (false, true) => "Outbound",
        (false, false) => "Inbound",
    };
    vec![
        Cell::Time(call.time),
        text(kind),
        Cell::Phone(call.from.clone()),
        Cell::Phone(call.to.clone()),
        text(call.operator),
        text(call.queue),
        Cell::Seconds(call.ring),
        Cell::Seconds(call.talk),
        if call.talk > 0 {
            Cell::Text(format!("https://kit.example/records/{}.mp3", call.time))
        } else {
            text("")
        },
        match call.price_cents {
            Some(cents) => Cell::Cents(cents),
            None => text(""),
        },
        text(if call.outbound {
            "Обзвон"
        } else {
            "Входящая линия"
        }),
        text(call.campaign),
        text(if spec.russian { result.0 } else { result.1 }),
        text(if call.result == "answered" {
            "200"
        } else {
            "486"
        }),
        Cell::Number(u64::from(call.attempts)),
        Cell::Text(call.tags.clone()),
        text(topic),
        Cell::Text(call.notes.clone()),
    ]
}

/// Writes the export `spec` describes to `path`.
pub fn write_export(path: &Path, spec: &ExportSpec) -> io::Result<ExportManifest> {
    let calls = calls(spec);
    let mut manifest = ExportManifest::default();
    let mut rows = Vec::with_capacity(calls.len() + 1);
    for (n, call) in calls.into_iter().enumerate() {
        let topic = TOPICS[(call.time as usize) % TOPICS.len()];
        let mut row = cells(spec, &call, topic);
        if spec.quirks {
            row.push(Cell::Number(1000 + n as u64));
        }
        if spec.quirks && n == 2 {
            row[0] = Cell::BadTime;
            manifest.bad_rows += 1;
        } else {
            manifest.calls.push(call);
        }
        rows.push(row);
    }
    let mut header: Vec<&str> = if spec.russian {
        HEADER_RU.to_vec()
    } else {
        HEADER_EN.to_vec()
    };
    if spec.quirks {
        header.push(if spec.russian {
            "ID клиента"
        } else {
            "Customer ID"
        });
    }
    let file = std::fs::File::create(path)?;
    if spec.xlsx {
        manifest.merged_rows = write_xlsx(file, spec, &header, &rows, &manifest)?;
    } else {
        write_csv(
            io::BufWriter::with_capacity(1 << 20, file),
            spec,
            &header,
            &rows,
        )?;
    }
    Ok(manifest)
}

/// `YYYY-MM-DD HH:MM:SS` or `DD.MM.YYYY HH:MM:SS` at the export's offset.
fn local_time(spec: &ExportSpec, utc: i64) -> String {
    let local = utc + i64::from(spec.utc_offset_minutes) * 60;
    let t = DateTime::from_timestamp(local, 0).expect("a generated time");
    if spec.russian {
        t.format("%d.%m.%Y %H:%M:%S").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    }
}

fn duration_text(spec: &ExportSpec, seconds: u32) -> String {
    if !spec.russian {
        return seconds.to_string();
    }
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

fn cents_text(spec: &ExportSpec, cents: u64) -> String {
    let point = if spec.russian { ',' } else { '.' };
    format!("{}{point}{:02}", cents / 100, cents % 100)
}

fn bad_time(spec: &ExportSpec) -> &'static str {
    if spec.russian {
        "31.02.2024 25:00:00"
    } else {
        "2024-02-31 25:00:00"
    }
}

/// A cell as CSV text (unquoted).
fn cell_text(spec: &ExportSpec, cell: &Cell) -> String {
    match cell {
        Cell::Text(s) | Cell::Phone(s) => s.clone(),
        Cell::Time(t) => local_time(spec, *t),
        Cell::Seconds(s) => duration_text(spec, *s),
        Cell::Cents(c) => cents_text(spec, *c),
        Cell::Number(n) => n.to_string(),
        Cell::BadTime => bad_time(spec).to_string(),
    }
}

fn write_csv(
    mut w: impl Write,
    spec: &ExportSpec,
    header: &[&str],
    rows: &[Vec<Cell>],
) -> io::Result<()> {
    let (delimiter, eol) = if spec.russian {
        w.write_all(b"\xEF\xBB\xBF")?;
        (';', "\r\n")
    } else {
        (',', "\n")
    };
    let mut line = String::new();
    let push = |line: &mut String, field: &str, first: bool| {
        if !first {
            line.push(delimiter);
        }
        if field.contains([delimiter, '"', '\n', '\r']) {
            line.push('"');
            line.push_str(&field.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(field);
        }
    };
    for (i, name) in header.iter().enumerate() {
        push(&mut line, name, i == 0);
    }
    line.push_str(eol);
    w.write_all(line.as_bytes())?;
    for row in rows {
        line.clear();
        for (i, cell) in row.iter().enumerate() {
            push(&mut line, &cell_text(spec, cell), i == 0);
        }
        line.push_str(eol);
        w.write_all(line.as_bytes())?;
    }
    w.flush()
}

const XLSX_CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/worksheets/sheet2.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#;
const XLSX_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;
/// Styles: 0 default, 1 a date and time, 2 a duration.
const XLSX_STYLES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><numFmts count="2"><numFmt numFmtId="164" formatCode="dd.mm.yyyy hh:mm:ss"/><numFmt numFmtId="165" formatCode="[hh]:mm:ss"/></numFmts><fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts><fills count="1"><fill><patternFill patternType="none"/></fill></fills><borders count="1"><border/></borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs><cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/><xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/><xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs></styleSheet>"#;

fn write_xlsx(
    file: std::fs::File,
    spec: &ExportSpec,
    header: &[&str],
    rows: &[Vec<Cell>],
    manifest: &ExportManifest,
) -> io::Result<usize> {
    let mut zip = ZipWriter::new(io::BufWriter::with_capacity(1 << 20, file));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    let put = |zip: &mut ZipWriter<_>, name: &str, text: &str| -> io::Result<()> {
        zip.start_file(name, options).map_err(io::Error::other)?;
        zip.write_all(text.as_bytes())
    };
    put(&mut zip, "[Content_Types].xml", XLSX_CONTENT_TYPES)?;
    put(&mut zip, "_rels/.rels", XLSX_RELS)?;
    put(&mut zip, "xl/styles.xml", XLSX_STYLES)?;
    let (summary, data) = if spec.russian {
        ("Сводка", "Звонки")
    } else {
        ("Summary", "Calls")
    };
    // Without the quirks the data sheet is the only one.
    let sheets: Vec<(&str, usize)> = if spec.quirks {
        vec![(summary, 1), (data, 2)]
    } else {
        vec![(data, 2)]
    };
    let mut workbook = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>"#,
    );
    let mut rels = String::from(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId0" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>"#,
    );
    for (n, (name, part)) in sheets.iter().enumerate() {
        workbook.push_str(&format!(
            r#"<sheet name="{name}" sheetId="{}" r:id="rId{part}"/>"#,
            n + 1
        ));
        rels.push_str(&format!(
            r#"<Relationship Id="rId{part}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet{part}.xml"/>"#
        ));
    }
    workbook.push_str("</sheets></workbook>");
    rels.push_str("</Relationships>");
    put(&mut zip, "xl/workbook.xml", &workbook)?;
    put(&mut zip, "xl/_rels/workbook.xml.rels", &rels)?;
    if spec.quirks {
        let mut sheet = SheetXml::default();
        sheet.row(1, &[XlsxCell::Text(summary.to_string())]);
        sheet.row(
            3,
            &[
                XlsxCell::Text(
                    if spec.russian {
                        "Звонков"
                    } else {
                        "Calls"
                    }
                    .into(),
                ),
                XlsxCell::Number(manifest.calls.len().to_string()),
            ],
        );
        put(&mut zip, "xl/worksheets/sheet1.xml", &sheet.finish(&[]))?;
    }

    zip.start_file("xl/worksheets/sheet2.xml", options)
        .map_err(io::Error::other)?;
    let mut sheet = SheetXml::default();
    let mut merges = Vec::new();
    let mut r = 1;
    if spec.quirks {
        sheet.row(
            r,
            &[XlsxCell::Text(
                if spec.russian {
                    "История звонков"
                } else {
                    "Call history"
                }
                .into(),
            )],
        );
        merges.push(format!("A1:{}1", column_name(header.len() - 1)));
        r += 2;
    }
    let header_cells: Vec<XlsxCell> = header
        .iter()
        .map(|h| XlsxCell::Text(h.to_string()))
        .collect();
    sheet.row(r, &header_cells);
    zip.write_all(sheet.take().as_bytes())?;
    let campaign_column = 11;
    let merged = if spec.quirks {
        merged_run(rows, campaign_column)
    } else {
        0..0
    };
    for (n, row) in rows.iter().enumerate() {
        r += 1;
        let mut cells: Vec<XlsxCell> = row.iter().map(|c| xlsx_cell(spec, c)).collect();
        if merged.contains(&n) && n > merged.start {
            cells[campaign_column] = XlsxCell::Empty;
        }
        if n + 1 == merged.end {
            let first = r - (merged.len() as u32 - 1);
            merges.push(format!("L{first}:L{r}"));
        }
        sheet.row(r, &cells);
        if sheet.len() > 1 << 16 {
            zip.write_all(sheet.take().as_bytes())?;
        }
    }
    zip.write_all(sheet.finish(&merges).as_bytes())?;
    zip.finish().map_err(io::Error::other)?.flush()?;
    Ok(merged.len())
}

/// The rows whose campaign cells a quirky sheet merges: the first run (from the 4th
/// row on, at most 4 long) of rows sharing a campaign.
fn merged_run(rows: &[Vec<Cell>], column: usize) -> std::ops::Range<usize> {
    let campaign = |n: usize| match rows.get(n).map(|row| &row[column]) {
        Some(Cell::Text(t)) if !t.is_empty() => Some(t.as_str()),
        _ => None,
    };
    for start in 3..rows.len() {
        let mut end = start + 1;
        while end < start + 4 && campaign(end).is_some() && campaign(end) == campaign(start) {
            end += 1;
        }
        if end - start >= 2 {
            return start..end;
        }
    }
    0..0
}

/// A cell as the sheet stores it.
enum XlsxCell {
    Empty,
    Text(String),
    /// A number as its text.
    Number(String),
    /// A serial with style 1 (date and time) or 2 (duration).
    Serial(f64, u8),
}

fn xlsx_cell(spec: &ExportSpec, cell: &Cell) -> XlsxCell {
    if !spec.quirks {
        return XlsxCell::Text(cell_text(spec, cell));
    }
    match cell {
        Cell::Time(t) => {
            let local = *t + i64::from(spec.utc_offset_minutes) * 60;
            // Days since 1899-12-30, the time of day as the fraction.
            XlsxCell::Serial(local as f64 / 86_400.0 + 25_569.0, 1)
        }
        Cell::Seconds(s) => XlsxCell::Serial(f64::from(*s) / 86_400.0, 2),
        Cell::Cents(c) => XlsxCell::Number(format!("{}.{:02}", c / 100, c % 100)),
        Cell::Number(n) => XlsxCell::Number(n.to_string()),
        Cell::Phone(p) if p.starts_with("+7916") => XlsxCell::Number(p[1..].to_string()),
        other => XlsxCell::Text(cell_text(spec, other)),
    }
}

/// `A`, `B`, … `Z`, `AA`, … for a column from 0.
fn column_name(mut column: usize) -> String {
    let mut name = Vec::new();
    loop {
        name.push(b'A' + (column % 26) as u8);
        if column < 26 {
            break;
        }
        column = column / 26 - 1;
    }
    name.reverse();
    String::from_utf8(name).expect("ASCII")
}

/// A worksheet's XML, written a part at a time.
#[derive(Default)]
struct SheetXml {
    text: String,
    started: bool,
}

impl SheetXml {
    fn row(&mut self, r: u32, cells: &[XlsxCell]) {
        if !self.started {
            self.text.push_str(
                r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
            );
            self.started = true;
        }
        self.text.push_str(&format!(r#"<row r="{r}">"#));
        for (c, cell) in cells.iter().enumerate() {
            let at = format!("{}{r}", column_name(c));
            match cell {
                XlsxCell::Empty => {}
                XlsxCell::Text(t) if t.is_empty() => {}
                XlsxCell::Text(t) => self.text.push_str(&format!(
                    r#"<c r="{at}" t="inlineStr"><is><t xml:space="preserve">{}</t></is></c>"#,
                    escape(t)
                )),
                XlsxCell::Number(n) => self
                    .text
                    .push_str(&format!(r#"<c r="{at}"><v>{n}</v></c>"#)),
                XlsxCell::Serial(v, style) => self
                    .text
                    .push_str(&format!(r#"<c r="{at}" s="{style}"><v>{v}</v></c>"#)),
            }
        }
        self.text.push_str("</row>");
    }

    fn len(&self) -> usize {
        self.text.len()
    }

    fn take(&mut self) -> String {
        std::mem::take(&mut self.text)
    }

    fn finish(mut self, merges: &[String]) -> String {
        if !self.started {
            self.row(1, &[]);
        }
        self.text.push_str("</sheetData>");
        if !merges.is_empty() {
            self.text
                .push_str(&format!(r#"<mergeCells count="{}">"#, merges.len()));
            for m in merges {
                self.text.push_str(&format!(r#"<mergeCell ref="{m}"/>"#));
            }
            self.text.push_str("</mergeCells>");
        }
        self.text.push_str("</worksheet>");
        self.text
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::testing::{TempDir, date, mtime};

    #[test]
    fn a_day_alternates_language_and_format_and_overlaps_the_day_before() {
        let dir = TempDir::new("call-history-day");
        let mut spec = DropSpec::new(5, date("2024-03-01"), date("2024-03-02"));
        spec.cdr_rows_per_day = 96;
        let mut days = Vec::new();
        for day in ["2024-03-01", "2024-03-02"] {
            let mut m = DayManifest {
                date: date(day),
                ..DayManifest::default()
            };
            write(&dir.0, &spec, &mut m).unwrap();
            days.push(m);
        }
        // 2024-03-01 is day 19,783 since 1970: odd, an English CSV.
        assert_eq!(
            days[0].call_history_path.as_deref(),
            Some("call_history/2024-03/2024-03-01.csv")
        );
        assert_eq!(
            days[1].call_history_path.as_deref(),
            Some("call_history/2024-03/2024-03-02.xlsx")
        );
        for m in &days {
            assert_eq!(m.call_history_calls, 96);
            // A day and the six hours before it.
            assert_eq!(m.call_history_rows, 96 + 24);
            assert_eq!(m.call_history_bad_rows, 0);
            let path = dir.0.join(m.call_history_path.as_ref().unwrap());
            assert_eq!(
                mtime(&path),
                system_time(day_start(m.date) + DAY_SECONDS + 7200)
            );
        }
        let csv =
            std::fs::read_to_string(dir.0.join("call_history/2024-03/2024-03-01.csv")).unwrap();
        assert!(csv.starts_with(&HEADER_EN.join(",")), "{}", &csv[..200]);
    }

    #[test]
    fn a_later_export_edits_some_calls_of_the_overlap() {
        let spec = |revised_before| ExportSpec {
            seed: 1,
            from: 0,
            to: 86_400,
            spacing: 300,
            russian: false,
            xlsx: false,
            utc_offset_minutes: 0,
            revised_before,
            quirks: false,
        };
        let (first, later) = (calls(&spec(0)), calls(&spec(86_400)));
        assert_eq!(first.len(), later.len());
        let edited = first.iter().zip(&later).filter(|(a, b)| a != b).count();
        assert!(
            (40..=80).contains(&edited),
            "{edited} of 288 edited: about one in five"
        );
        for (a, b) in first.iter().zip(&later) {
            assert_eq!((a.time, &a.from, a.result), (b.time, &b.from, b.result));
        }
    }
}
