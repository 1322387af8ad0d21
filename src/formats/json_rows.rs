//! JSON objects as a row source: a JSON-lines body, or objects one after another (a
//! document holding one object is one record).
//!
//! Each object is a record; its keys are column names, matched as a header's are, and
//! its values strings, numbers, booleans or null. A number is typed from its text as
//! written, like a CSV field (`0.0120` stays exact money, `1e5` is not a whole number
//! there either); null is an empty field; an array or object value is kept as its JSON
//! text. A record's position is the line it starts on. The records name their own
//! fields, so there is no header: a record that lacks a required column is set aside,
//! where a CSV file would fail. Something that is not a JSON object is set aside up to
//! the next line that starts with `{`, so one bad line of a body does not stop the
//! rest. The input is held in memory: pushed records and session files are small.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::rows::{Record, RowSource};
use super::table::{FileError, Unreadable, fingerprint};

/// A field: its name and its text.
type Field<'a> = (Cow<'a, str>, Cow<'a, str>);

/// The objects in a JSON text.
pub struct JsonRows<'a> {
    input: &'a [u8],
    /// Where the next record may start, and its line.
    at: usize,
    line: u64,
    /// The record last lent out; its buffer is reused for the next.
    record: JsonRecord<'a>,
}

/// One JSON object, or the text that should have been one.
#[derive(Debug)]
pub struct JsonRecord<'a> {
    line: u64,
    text: &'a [u8],
    fields: Vec<Field<'a>>,
    problem: Option<Unreadable>,
}

impl<'a> JsonRows<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        JsonRows {
            input,
            at: if input.starts_with(b"\xef\xbb\xbf") {
                3
            } else {
                0
            },
            line: 1,
            record: JsonRecord {
                line: 0,
                text: &[],
                fields: Vec::new(),
                problem: None,
            },
        }
    }
}

impl<'a> RowSource for JsonRows<'a> {
    type Record = JsonRecord<'a>;

    fn header(&mut self) -> Result<Option<Vec<String>>, FileError> {
        Ok(None)
    }

    fn next_record(&mut self) -> Result<Option<&JsonRecord<'a>>, FileError> {
        let blank = self.input[self.at..]
            .iter()
            .take_while(|b| is_whitespace(**b))
            .count();
        self.line += lines(&self.input[self.at..self.at + blank]);
        let start = self.at + blank;
        if start == self.input.len() {
            self.at = start;
            return Ok(None);
        }
        let record = &mut self.record;
        record.fields.clear();
        let end = match object(&self.input[start..], &mut record.fields) {
            Ok(length) => {
                record.problem = None;
                start + length
            }
            Err(detail) => {
                record.fields.clear();
                let end = resync(self.input, start);
                record.problem = Some(match std::str::from_utf8(&self.input[start..end]) {
                    Ok(_) => Unreadable::NotJson(detail),
                    Err(_) => Unreadable::NotText,
                });
                end
            }
        };
        record.line = self.line;
        record.text = &self.input[start..end];
        self.line += lines(record.text);
        self.at = end;
        Ok(Some(&self.record))
    }
}

impl Record for JsonRecord<'_> {
    fn line(&self) -> u64 {
        self.line
    }

    fn unreadable(&self) -> Option<Unreadable> {
        self.problem.clone()
    }

    fn width(&self) -> usize {
        self.fields.len()
    }

    fn get(&self, index: usize) -> Option<&str> {
        self.fields.get(index).map(|(_, text)| text.as_ref())
    }

    fn name(&self, index: usize) -> Option<&str> {
        self.fields.get(index).map(|(name, _)| name.as_ref())
    }

    fn raw(&self) -> String {
        String::from_utf8_lossy(self.text).trim().to_string()
    }

    /// Over names and texts in name order: the same object with its keys in another
    /// order, or spaced otherwise, is the same record.
    fn fingerprint(&self) -> u64 {
        let mut order: Vec<&Field<'_>> = self.fields.iter().collect();
        order.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut lengths = Vec::with_capacity(2 * order.len());
        let mut joined = Vec::new();
        for (name, text) in order {
            for part in [name.as_bytes(), text.as_bytes()] {
                lengths.push(part.len());
                joined.extend_from_slice(part);
            }
        }
        fingerprint(lengths.into_iter(), &joined)
    }
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn lines(text: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', text).count() as u64
}

/// Where a record that is not an object ends: at the next line that starts with `{`.
fn resync(input: &[u8], start: usize) -> usize {
    memchr::memmem::find(&input[start..], b"\n{").map_or(input.len(), |at| start + at + 1)
}

/// Skips the whitespace in `text` from `at`.
fn skip_whitespace(text: &[u8], at: usize) -> usize {
    at + text
        .get(at..)
        .unwrap_or_default()
        .iter()
        .take_while(|b| is_whitespace(**b))
        .count()
}

/// Reads the JSON object at the start of `text` into `fields` and says how long it is,
/// or what is wrong with it.
fn object<'a>(text: &'a [u8], fields: &mut Vec<Field<'a>>) -> Result<usize, &'static str> {
    match text.first() {
        Some(b'{') => {}
        Some(b'[') => return Err("it is an array"),
        _ => return Err("it does not start with {"),
    }
    let mut at = skip_whitespace(text, 1);
    if text.get(at) == Some(&b'}') {
        return Ok(at + 1);
    }
    loop {
        if text.get(at) != Some(&b'"') {
            return Err("a key is not a string");
        }
        let (name, length) = value(&text[at..])?;
        at = skip_whitespace(text, at + length);
        if text.get(at) != Some(&b':') {
            return Err("a key is not followed by :");
        }
        at = skip_whitespace(text, at + 1);
        let (value, length) = value(&text[at..])?;
        fields.push((name, value));
        at = skip_whitespace(text, at + length);
        match text.get(at) {
            Some(b',') => at = skip_whitespace(text, at + 1),
            Some(b'}') => return Ok(at + 1),
            None => return Err("it is cut short"),
            Some(_) => return Err("a value is not followed by , or }"),
        }
    }
}

/// The JSON value at the start of `text` as a field's text, and its length.
fn value(text: &[u8]) -> Result<(Cow<'_, str>, usize), &'static str> {
    let mut stream = serde_json::Deserializer::from_slice(text).into_iter::<Scalar<'_>>();
    let scalar = match stream.next() {
        Some(Ok(scalar)) => scalar,
        Some(Err(e)) if e.is_eof() => return Err("it is cut short"),
        None => return Err("it is cut short"),
        Some(Err(_)) => return Err("a value is not valid JSON"),
    };
    let length = stream.byte_offset();
    let text = match scalar {
        Scalar::Text(text) => text,
        Scalar::Null => Cow::Borrowed(""),
        // Numbers and booleans as written; arrays and objects as their JSON text,
        // whose strings serde_json skipped without checking them.
        Scalar::Other => Cow::Borrowed(
            std::str::from_utf8(&text[..length]).map_err(|_| "a value is not valid JSON")?,
        ),
    };
    Ok((text, length))
}

/// What a JSON value is, as far as a field's text needs to know.
enum Scalar<'a> {
    /// A string, borrowed from the input unless it had escapes.
    Text(Cow<'a, str>),
    Null,
    /// A number, a boolean, an array or an object: its text is taken as written.
    Other,
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::cdr_csv::CDR;
    use crate::formats::table::{Rejected, Row, Value, read, read_rows};

    /// Each typed row (its values' `Debug` text, line, id, date) and each rejection.
    #[derive(Debug, Default)]
    struct Rows {
        ok: Vec<(Vec<String>, u64, String, i64)>,
        rejected: Vec<Rejected>,
    }

    impl Rows {
        fn push(&mut self, row: Result<Row<'_, '_>, Rejected>) {
            match row {
                Ok(row) => self.ok.push((
                    row.values.iter().map(|v| format!("{v:?}")).collect(),
                    row.line,
                    row.id.to_string(),
                    row.date.0,
                )),
                Err(rejected) => self.rejected.push(rejected),
            }
        }

        fn reasons(&self) -> Vec<(u64, &str)> {
            self.rejected
                .iter()
                .map(|r| (r.line, r.reason.as_str()))
                .collect()
        }
    }

    fn from_csv(text: &[u8]) -> Rows {
        let mut rows = Rows::default();
        read::<_, ()>(
            &CDR,
            text,
            |_| Ok(()),
            |row, _| {
                rows.push(row);
                Ok(())
            },
        )
        .unwrap()
        .unwrap();
        rows
    }

    fn from_json(text: &[u8]) -> Rows {
        let mut rows = Rows::default();
        read_rows::<_, ()>(
            &CDR,
            JsonRows::new(text),
            |_| panic!("JSON objects have no header row"),
            |row, _| {
                rows.push(row);
                Ok(())
            },
        )
        .unwrap()
        .unwrap();
        rows
    }

    /// A CDR row, each field as CSV text and as a JSON value.
    const CALL: &[(&str, &str, &str)] = &[
        ("id", "7", "\"7\""),
        ("calldate", "2024-03-01 10:00:00", "\"2024-03-01 10:00:00\""),
        ("src", "0221", "\"0221\""),
        ("dst", "+4822", "\"+4822\""),
        ("duration", "10", "10"),
        ("billsec", "5", "5"),
        ("disposition", "ANSWERED", "\"ANSWERED\""),
        ("rate", "0.0120", "0.0120"),
        ("charge", "", "null"),
    ];

    /// The call with `changes` (column, CSV text, JSON value), as a CSV line and as a
    /// JSON object.
    fn call(changes: &[(&str, &str, &str)]) -> (String, String) {
        let field = |&(name, csv, json): &(&'static str, &'static str, &'static str)| {
            changes
                .iter()
                .find(|c| c.0 == name)
                .map_or((csv, json), |c| (c.1, c.2))
        };
        let csv: Vec<&str> = CALL.iter().map(|c| field(c).0).collect();
        let json: Vec<String> = CALL
            .iter()
            .map(|c| format!("\"{}\":{}", c.0, field(c).1))
            .collect();
        (csv.join(","), format!("{{{}}}", json.join(",")))
    }

    fn csv_header() -> String {
        CALL.iter().map(|c| c.0).collect::<Vec<_>>().join(",")
    }

    #[test]
    fn the_same_rows_as_csv_and_as_json_objects_give_identical_values() {
        let csv = format!(
            "{}\n{}\n{}\n",
            "id,calldate,src_id,src,clid,dst,dst_name,duration,billsec,disposition,destination,rate,charge,t_cause",
            "1709287200.1,2024-03-01 10:00:00,,+4822,\"\"\"Zoë Ł\"\" <+4822>\",0221,\"Support, 2nd line\",10,5,ANSWERED,,0.0120,0.0024,Normal",
            "1709287260.2,2024-03-01T10:01:00Z,alice,0221,,+4930123,,0,0,NO ANSWER,Germany,999999999999.999999,,Busy",
        );
        // Keys in another order, numbers as JSON numbers or strings, a null, an absent
        // optional column, escapes, an unknown key holding an object.
        let json = concat!(
            r#"{"id":"1709287200.1","calldate":"2024-03-01 10:00:00","src_id":null,"src":"+4822","clid":"\"Zo\u00eb \u0141\" <+4822>","dst":"0221","dst_name":"Support, 2nd line","duration":10,"billsec":5,"disposition":"ANSWERED","rate":0.0120,"charge":"0.0024","t_cause":"Normal"}"#,
            "\n",
            r#"{"t_cause":"Busy", "rate":999999999999.999999, "destination":"Germany", "disposition":"NO ANSWER", "billsec":0, "duration":"0", "dst":"+4930123", "src":"0221", "src_id":"alice", "calldate":"2024-03-01T10:01:00Z", "id":1709287260.2, "x_custom":{"a":[1, 2]}}"#,
            "\n",
        );
        let (csv, json) = (from_csv(csv.as_bytes()), from_json(json.as_bytes()));
        assert!(csv.rejected.is_empty(), "{:?}", csv.rejected);
        assert!(json.rejected.is_empty(), "{:?}", json.rejected);
        assert_eq!(csv.ok.len(), 2);
        for (c, j) in csv.ok.iter().zip(&json.ok) {
            assert_eq!(c.0, j.0, "values");
            assert_eq!((&c.2, c.3), (&j.2, j.3), "id and date");
        }
        let first = &json.ok[0].0;
        assert_eq!(first[4], format!("{:?}", Value::Text("\"Zoë Ł\" <+4822>")));
        assert_eq!(first[11], format!("{:?}", Value::Decimal(12_000)));
        assert_eq!(first[10], format!("{:?}", Value::Null));
        assert_eq!(
            json.ok[1].0[11],
            format!("{:?}", Value::Decimal(999_999_999_999_999_999)),
            "a JSON number is exact money, not a float"
        );
        // Each row's line: after the header in the CSV, from the first line in JSON.
        assert_eq!([csv.ok[0].1, csv.ok[1].1], [2, 3]);
        assert_eq!([json.ok[0].1, json.ok[1].1], [1, 2]);
    }

    #[test]
    fn a_bad_value_gives_the_same_reason_as_csv_and_as_json() {
        let bad: &[&[(&str, &str, &str)]] = &[
            &[("calldate", "2024-13-45 25:61:00", "\"2024-13-45 25:61:00\"")],
            &[("duration", "12s", "\"12s\"")],
            &[("duration", "1.5", "1.5")],
            &[("billsec", "-1", "-1")],
            &[("rate", "1e5", "1e5")],
            &[("charge", "x", "\"x\"")],
            &[("rate", "0.1234567", "0.1234567")],
            &[("id", "", "\"\"")],
            &[("id", "", "null")],
            &[("calldate", "", "null")],
        ];
        let (good_csv, good_json) = call(&[]);
        let mut csv = format!("{}\n{good_csv}\n", csv_header());
        let mut json = format!("{good_json}\n");
        for changes in bad {
            let (c, j) = call(changes);
            csv.push_str(&format!("{c}\n"));
            json.push_str(&format!("{j}\n"));
        }
        let (csv_rows, json_rows) = (from_csv(csv.as_bytes()), from_json(json.as_bytes()));
        assert_eq!((csv_rows.ok.len(), json_rows.ok.len()), (1, 1));
        assert_eq!(csv_rows.ok[0].0, json_rows.ok[0].0);
        let (csv_reasons, json_reasons) = (csv_rows.reasons(), json_rows.reasons());
        assert_eq!(csv_reasons.len(), bad.len());
        for (index, (c, j)) in csv_reasons.iter().zip(&json_reasons).enumerate() {
            assert_eq!(c.1, j.1, "the same reason for {:?}", bad[index]);
            // CSV: the header and the good row come first; JSON: the good row.
            assert_eq!((c.0, j.0), (index as u64 + 3, index as u64 + 2));
        }
        assert!(
            json_reasons[1].1.starts_with("duration: \"12s\""),
            "{}",
            json_reasons[1].1
        );
        assert_eq!(
            json_reasons[2].1,
            "duration: \"1.5\" is not a whole non-negative number"
        );
        assert_eq!(json_reasons[7].1, "id is empty");
        assert_eq!(json_reasons[8].1, "id is empty");
        assert_eq!(csv_rows.rejected[1].raw, call(bad[1]).0);
        assert_eq!(json_rows.rejected[1].raw, call(bad[1]).1);
    }

    #[test]
    fn bytes_that_are_not_utf8_give_the_same_reason() {
        let csv = format!("{}\n", csv_header()).into_bytes();
        let csv = [csv, b"7,2024-03-01 10:00:00,\xff,2,10,5,A,,\n".to_vec()].concat();
        let json = b"{\"id\":\"7\",\"calldate\":\"2024-03-01 10:00:00\",\"src\":\"\xff\"}\n";
        let (csv, json) = (from_csv(&csv), from_json(json));
        assert_eq!(csv.reasons(), [(2, "is not valid UTF-8")]);
        assert_eq!(json.reasons(), [(1, "is not valid UTF-8")]);
    }

    #[test]
    fn a_record_that_is_not_an_object_does_not_stop_the_rest() {
        let (_, object) = call(&[]);
        let text = format!(
            "[1, 2]\n{object}\n{{\"id\": \"8\", \"calldate\"\n{object} trailing\n\n{{\"id\":\n"
        );
        let rows = from_json(text.as_bytes());
        assert_eq!(
            rows.reasons(),
            [
                (1, "is not a JSON object: it is an array"),
                (3, "is not a JSON object: a key is not followed by :"),
                (4, "is not a JSON object: it does not start with {"),
                (6, "is not a JSON object: it is cut short"),
            ]
        );
        assert_eq!(rows.rejected[1].raw, "{\"id\": \"8\", \"calldate\"");
        assert_eq!(rows.rejected[2].raw, "trailing");
        assert_eq!(
            rows.ok.iter().map(|r| r.1).collect::<Vec<_>>(),
            [2, 4],
            "the good objects, by line"
        );
    }

    #[test]
    fn a_document_over_several_lines_is_one_record_at_the_line_it_starts() {
        let text = "\u{feff}\n{\n  \"id\": \"7\",\n  \"calldate\": \"2024-03-01 10:00:00\",\n  \"src\": \"1\", \"dst\": \"2\",\n  \"duration\": 10, \"billsec\": 5, \"disposition\": \"ANSWERED\"\n}\n{\n  \"id\": \"8\"\n}\n";
        let rows = from_json(text.as_bytes());
        assert_eq!(rows.ok.len(), 1);
        assert_eq!(rows.ok[0].1, 2);
        assert_eq!(
            rows.reasons(),
            [(
                8,
                "lacks the required columns calldate, src, dst, duration, billsec, disposition"
            )]
        );
        assert_eq!(rows.rejected[0].raw, "{\n  \"id\": \"8\"\n}");
    }

    #[test]
    fn names_are_matched_as_a_header_s_are() {
        let (_, object) = call(&[]);
        let twice = object.replacen('{', "{\"ID\":\"9\",", 1);
        let spaced = object.replace("\"src\"", "\" SRC \"");
        let rows = from_json(format!("{twice}\n{spaced}\n").as_bytes());
        assert_eq!(rows.reasons(), [(1, "has column \"id\" twice")]);
        assert_eq!(rows.ok.len(), 1);
        assert!(from_json(b"").ok.is_empty());
        assert!(from_json(b" \n\t\r\n").rejected.is_empty());
    }

    #[test]
    fn nested_values_are_kept_as_json_text() {
        let (_, object) = call(&[("dst", "", r#"[1, {"a": "b"}]"#)]);
        let rows = from_json(object.as_bytes());
        assert_eq!(
            rows.ok[0].0[5],
            format!("{:?}", Value::Text(r#"[1, {"a": "b"}]"#))
        );
        let (_, object) = call(&[("duration", "", "true")]);
        assert_eq!(
            from_json(object.as_bytes()).reasons(),
            [(1, "duration: \"true\" is not a whole non-negative number")]
        );
    }

    #[test]
    fn the_same_object_spelt_otherwise_shares_a_fingerprint() {
        let fingerprints = |text: &str| {
            let mut found = Vec::new();
            read_rows::<_, ()>(
                &CDR,
                JsonRows::new(text.as_bytes()),
                |_| Ok(()),
                |row, _| {
                    found.push(row.unwrap().fingerprint);
                    Ok(())
                },
            )
            .unwrap()
            .unwrap();
            found
        };
        let (_, object) = call(&[]);
        let reordered = format!(
            "{{ {} }}",
            object[1..object.len() - 1]
                .split(',')
                .rev()
                .collect::<Vec<_>>()
                .join(" , ")
        );
        let (_, changed) = call(&[("billsec", "", "6")]);
        let (_, extra) = call(&[]);
        let extra = extra.replacen('{', "{\"x_custom\":1,", 1);
        let found = fingerprints(&format!("{object}\n{reordered}\n{changed}\n{extra}\n"));
        assert_eq!(found[0], found[1]);
        assert_ne!(found[0], found[2]);
        assert_ne!(found[0], found[3], "unknown keys count too");
    }
}
