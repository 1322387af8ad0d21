//! The contact center's call-history export (`shared/PROVIDER.md` §4): CSV, XLSX or
//! XLS, one row per call attempt, the header in the language of the interface it was
//! exported from (Russian or English), no call id.
//!
//! [`CALL_HISTORY`] maps both languages' header texts to one snake_case name per
//! column. A call is identified by its [`KEY`] columns (time, type, from, to,
//! operator, campaign), written as the derived `call_key` column: the same call in
//! two exports, in either language, as CSV or as a sheet that stored its numbers as
//! numbers, has the same key. A CSV's delimiter is `,` or `;`
//! (whichever its header row has more of); a workbook is read by
//! [`super::sheet_rows`].

use std::io::{BufRead, BufReader, Read};
use std::sync::OnceLock;

use super::csv_rows::CsvRows;
use super::table::{Column, Kind, Table};

const fn col(
    name: &'static str,
    kind: Kind,
    required: bool,
    headers: &'static [&'static str],
) -> Column {
    Column {
        name,
        kind,
        required,
        headers,
    }
}

/// The call's direction, as the `Тип` column writes it.
pub const CALL_TYPES: &[(&str, &str)] = &[
    ("Входящий", "inbound"),
    ("Исходящий", "outbound"),
    ("Inbound", "inbound"),
    ("Outbound", "outbound"),
    ("Incoming", "inbound"),
    ("Outgoing", "outbound"),
];

/// The attempt results the product documents, in Russian and English, and the stable
/// code each becomes.
pub const ATTEMPT_RESULTS: &[(&str, &str)] = &[
    ("Вызов принят", "answered"),
    ("Answered", "answered"),
    ("Абонент не отвечает", "no_answer"),
    ("No answer", "no_answer"),
    ("Номер занят", "busy"),
    ("Busy", "busy"),
    ("Номер недоступен", "unreachable"),
    ("Unreachable", "unreachable"),
    ("Вызов отклонен", "rejected"),
    ("Rejected", "rejected"),
    ("Автоответчик", "voicemail"),
    ("Answering machine", "voicemail"),
    ("Voicemail", "voicemail"),
    ("Брошенный", "abandoned"),
    ("Abandoned", "abandoned"),
    ("Заблокирован DNC", "dnc_blocked"),
    ("Blocked by DNC", "dnc_blocked"),
    ("Blocked by the do-not-call list", "dnc_blocked"),
    ("Ошибка дозвона", "dial_error"),
    ("Dial error", "dial_error"),
    ("Запрос отменен", "cancelled"),
    ("Request cancelled", "cancelled"),
    ("Request canceled", "cancelled"),
    ("Неправильный номер", "wrong_number"),
    ("Wrong number", "wrong_number"),
    ("Недостаточно средств", "insufficient_funds"),
    ("Insufficient funds", "insufficient_funds"),
    ("Потерян оператором", "missed_by_operator"),
    ("Missed by operator", "missed_by_operator"),
    ("Missed by agent", "missed_by_operator"),
    ("Завершен в IVR", "ended_in_ivr"),
    ("Ended in IVR", "ended_in_ivr"),
];

/// Positions in [`CALL_HISTORY`] of the columns that identify a call.
pub const KEY: &[usize] = &[1, 2, 3, 4, 5, 12];

/// The export's columns, in the order we write them.
pub static CALL_HISTORY: Table = Table {
    dataset: "call_history",
    columns: &[
        col("call_key", Kind::Key(KEY), false, &[]),
        col("time", Kind::LocalTimestamp, true, &["Время", "Time"]),
        col(
            "type",
            Kind::Label(CALL_TYPES),
            true,
            &["Тип", "Type", "Direction"],
        ),
        col(
            "from",
            Kind::Phone,
            true,
            &["Звонок с", "Call from", "From", "Caller"],
        ),
        col(
            "to",
            Kind::Phone,
            true,
            &["Звонок к", "Call to", "To", "Callee"],
        ),
        col(
            "operator",
            Kind::Text,
            true,
            &["Оператор", "Operator", "Agent"],
        ),
        col("queue", Kind::Text, false, &["Очередь", "Queue"]),
        col(
            "ring_duration",
            Kind::Duration,
            false,
            &[
                "Длительность дозвона",
                "Ring duration",
                "Ringing duration",
                "Ringing time",
            ],
        ),
        col(
            "talk_duration",
            Kind::Duration,
            false,
            &[
                "Длительность разговора",
                "Talk duration",
                "Talk time",
                "Call duration",
            ],
        ),
        col(
            "recording",
            Kind::Text,
            false,
            &["Запись", "Recording", "Record"],
        ),
        col("price", Kind::Money, false, &["Цена", "Price", "Cost"]),
        col("scenario", Kind::Text, false, &["Сценарий", "Scenario"]),
        col("campaign", Kind::Text, true, &["Кампания", "Campaign"]),
        col(
            "attempt_result",
            Kind::Label(ATTEMPT_RESULTS),
            false,
            &[
                "Результат попытки",
                "Attempt result",
                "Call result",
                "Result",
            ],
        ),
        col(
            "completion_code",
            Kind::Text,
            false,
            &["Код завершения", "Completion code", "Result code"],
        ),
        col(
            "attempts",
            Kind::Whole,
            false,
            &["Попытки", "Attempts", "Attempt"],
        ),
        col("tags", Kind::Text, false, &["Теги", "Tags"]),
        col("topics", Kind::Text, false, &["Тематики", "Topics"]),
        col(
            "notes",
            Kind::Text,
            false,
            &["Заметки", "Notes", "Comments", "Comment"],
        ),
        col("extra", Kind::Extra, false, &[]),
    ],
    id_column: 0,
    date_column: 1,
    schema: OnceLock::new(),
};

/// What an export is, by its name's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Xlsx,
    Xls,
}

impl ExportFormat {
    /// The format of a file called `name` (`*.csv`, `*.xlsx`, `*.xls`, any case).
    pub fn of(name: &str) -> Option<ExportFormat> {
        let (_, extension) = name.rsplit_once('.')?;
        match extension.to_ascii_lowercase().as_str() {
            "csv" => Some(ExportFormat::Csv),
            "xlsx" => Some(ExportFormat::Xlsx),
            "xls" => Some(ExportFormat::Xls),
            _ => None,
        }
    }
}

/// The rows of a CSV export, split at `;` or `,`: whichever the header row has more of.
pub fn csv_rows<R: Read>(input: R) -> std::io::Result<CsvRows<BufReader<R>>> {
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let peek = input.fill_buf()?;
    let first_line = peek.split(|&b| b == b'\n').next().unwrap_or_default();
    let count = |c: u8| first_line.iter().filter(|&&b| b == c).count();
    let delimiter = if count(b';') > count(b',') {
        b';'
    } else {
        b','
    };
    Ok(CsvRows::with_delimiter(input, delimiter))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::table::{Rejected, Typing, Value, label, read_rows_with};
    use chrono_tz::Tz;

    /// Every typed row as `column=value` texts, and every rejected row.
    fn parse(text: &str, zone: Tz) -> (Vec<Vec<String>>, Vec<Rejected>, Vec<String>) {
        let mut ok = Vec::new();
        let mut rejected = Vec::new();
        let mut unknown = Vec::new();
        read_rows_with::<_, ()>(
            &CALL_HISTORY,
            csv_rows(text.as_bytes()).unwrap(),
            Typing { zone },
            |h| {
                unknown.clone_from(&h.unknown);
                Ok(())
            },
            |row, _| {
                match row {
                    Ok(r) => ok.push(
                        CALL_HISTORY
                            .columns
                            .iter()
                            .zip(r.values)
                            .filter(|(_, v)| **v != Value::Null)
                            .map(|(c, v)| format!("{}={v:?}", c.name))
                            .collect(),
                    ),
                    Err(r) => rejected.push(r),
                }
                Ok(())
            },
        )
        .unwrap()
        .unwrap();
        (ok, rejected, unknown)
    }

    const RU: &str = "Время;Тип;Звонок с;Звонок к;Оператор;Очередь;Длительность дозвона;Длительность разговора;Запись;Цена;Сценарий;Кампания;Результат попытки;Код завершения;Попытки;Теги;Тематики;Заметки";
    const EN: &str = "Time,Type,Call from,Call to,Operator,Queue,Ring duration,Talk duration,Recording,Price,Scenario,Campaign,Attempt result,Completion code,Attempts,Tags,Topics,Notes";

    #[test]
    fn russian_and_english_exports_of_one_call_have_one_key() {
        let moscow: Tz = "Europe/Moscow".parse().unwrap();
        let (ru, rejected, _) = parse(
            &format!(
                "\u{feff}{RU}\r\n01.03.2024 13:45:07;Исходящий;+74950000000;+79990000001;Иванова Анна;;00:12;1:02:03;https://r/1.mp3;1,50 ₽;Обзвон;Весна;Вызов принят;200;2;vip, new;Оплата;перезвонить\r\n"
            ),
            moscow,
        );
        assert!(rejected.is_empty(), "{rejected:?}");
        let (en, rejected, _) = parse(
            &format!(
                "{EN}\n2024-03-01 10:45:07Z,Outbound,+74950000000,+79990000001,Иванова Анна,,12,3723,https://r/1.mp3,1.5,Обзвон,Весна,Answered,200,2,\"vip, new\",Оплата,перезвонить\n"
            ),
            Tz::UTC,
        );
        assert!(rejected.is_empty(), "{rejected:?}");
        let key = "call_key=Text(\"2024-03-01T10:45:07Z|outbound|74950000000|79990000001|Иванова Анна|Весна\")";
        assert_eq!(ru[0][0], key);
        assert_eq!(en[0][0], key);
        let ru = ru[0].join(" ");
        for expected in [
            "type=Code(\"Исходящий\", Some(\"outbound\"))",
            "ring_duration=Whole(12)",
            "talk_duration=Whole(3723)",
            "price=Decimal(1500000)",
            "attempt_result=Code(\"Вызов принят\", Some(\"answered\"))",
            "attempts=Whole(2)",
            "tags=Text(\"vip, new\")",
        ] {
            assert!(ru.contains(expected), "{expected} not in {ru}");
        }
    }

    #[test]
    fn every_documented_result_has_a_code_in_both_languages() {
        let ru = [
            "Ошибка дозвона",
            "Номер недоступен",
            "Запрос отменен",
            "Автоответчик",
            "Неправильный номер",
            "Номер занят",
            "Абонент не отвечает",
            "Вызов принят",
            "Недостаточно средств",
            "Потерян оператором",
            "Вызов отклонен",
            "Заблокирован DNC",
            "Брошенный",
            "Завершен в IVR",
        ];
        let codes = |texts: &[&str]| -> Vec<&str> {
            texts
                .iter()
                .map(|t| {
                    ATTEMPT_RESULTS
                        .iter()
                        .find(|(text, _)| label(text) == label(t))
                        .unwrap_or_else(|| panic!("{t} has no code"))
                        .1
                })
                .collect()
        };
        let mut ru_codes = codes(&ru);
        let mut en_codes: Vec<&str> = ATTEMPT_RESULTS
            .iter()
            .filter(|(t, _)| t.is_ascii())
            .map(|(_, c)| *c)
            .collect();
        ru_codes.sort_unstable();
        en_codes.sort_unstable();
        en_codes.dedup();
        assert_eq!(
            ru_codes, en_codes,
            "each code has a Russian and an English text"
        );
    }

    #[test]
    fn spelling_variants_unknown_results_and_unknown_columns() {
        let text = format!(
            "{EN},Customer ID\n2024-03-01 10:00,inbound,+1,+2,,Support,,0:05,,,,,  ЗАПРОС  ОТМЕНЁН ,,,,,,42\n2024-03-01 10:01,Inbound,+1,+2,,,,,,,,,Something new,,,,,,\n"
        );
        let (ok, rejected, unknown) = parse(&text, Tz::UTC);
        assert!(rejected.is_empty(), "{rejected:?}");
        assert_eq!(unknown, ["Customer ID"]);
        let first = ok[0].join(" ");
        assert!(first.contains("Some(\"cancelled\")"), "{first}");
        assert!(
            first.contains("extra=Text(\"{\\\"Customer ID\\\":\\\"42\\\"}\")"),
            "{first}"
        );
        let second = ok[1].join(" ");
        assert!(
            second.contains("attempt_result=Code(\"Something new\", None)"),
            "{second}"
        );
        assert!(!second.contains("extra="), "{second}");
    }

    #[test]
    fn bad_values_are_rejected_with_the_column() {
        let text = format!(
            "{EN}\n,Outbound,+1,+2,,,,,,,,,,,,,,\nyesterday,Outbound,+1,+2,,,,,,,,,,,,,,\n2024-03-01 10:00:00,Outbound,+1,+2,,,1:5,,,,,,,,,,,\n2024-03-01 10:00:00,Outbound,+1,+2,,,,,,free,,,,,,,,\n"
        );
        let (ok, rejected, _) = parse(&text, Tz::UTC);
        assert!(ok.is_empty());
        let reasons: Vec<&str> = rejected.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(reasons[0], "time is empty");
        assert!(
            reasons[1].starts_with("time: \"yesterday\""),
            "{}",
            reasons[1]
        );
        assert!(
            reasons[2].starts_with("ring_duration: \"1:5\""),
            "{}",
            reasons[2]
        );
        assert!(reasons[3].starts_with("price: \"free\""), "{}", reasons[3]);
    }

    #[test]
    fn a_key_column_missing_from_the_header_fails_the_file() {
        let mut rows = csv_rows("Время,Тип,Звонок с,Звонок к,Оператор\n".as_bytes()).unwrap();
        let names = crate::formats::rows::RowSource::header(&mut rows)
            .unwrap()
            .unwrap();
        let err = crate::formats::table::Header::parse(&CALL_HISTORY, &names).unwrap_err();
        assert!(err.to_string().contains("campaign"), "{err}");
    }

    #[test]
    fn key_parts_with_the_separator_stay_apart() {
        let (ok, _, _) = parse(
            &format!(
                "{EN}\n2024-03-01 10:00:00,Outbound,a|b,c,,,,,,,,,,,,,,\n2024-03-01 10:00:00,Outbound,a,b|c,,,,,,,,,,,,,,\n"
            ),
            Tz::UTC,
        );
        assert_ne!(ok[0][0], ok[1][0]);
    }
}
