//! Property tests: any bytes given to the parsers (CSV tables, JSON objects, queue
//! zips, recording names) give records or reasons to set them aside, never a panic.
//! Inputs that once found a problem are kept in `tests/it/fixtures/parsers/` and
//! replayed every run.

use std::io::Cursor;

use cdr_ingest::formats::cdr_csv::CDR;
use cdr_ingest::formats::json_rows::JsonRows;
use cdr_ingest::formats::queue_csv::{QUEUE_CALL, QUEUE_USER_CALL};
use cdr_ingest::formats::queue_zip::{QueueZip, ZipLimits};
use cdr_ingest::formats::recording_name;
use cdr_ingest::formats::sessions_json::SessionDocument;
use cdr_ingest::formats::table::{self, Table};
use proptest::prelude::*;

/// Reads `bytes` as `table` to the end, counting rows and rejections.
fn read_all(table: &'static Table, bytes: &[u8]) -> (usize, usize) {
    let (mut ok, mut rejected) = (0, 0);
    let _ = table::read::<_, ()>(
        table,
        bytes,
        |_| Ok(()),
        |row, _| {
            match row {
                Ok(_) => ok += 1,
                Err(_) => rejected += 1,
            }
            Ok(())
        },
    );
    (ok, rejected)
}

/// A plausible CDR file to mutate: header plus rows with quotes, commas and CRLF.
fn cdr_like() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        Just(String::new()),
        "[0-9]{1,12}(\\.[0-9]{1,4})?",
        "2024-0[1-9]-[0-2][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9]",
        "\"[a-zA-Z ,\"]{0,12}\"",
        "[\\PC]{0,8}",
    ];
    (prop::collection::vec(prop::collection::vec(field, 0..16), 0..20), any::<bool>()).prop_map(|(rows, crlf)| {
        let end = if crlf { "\r\n" } else { "\n" };
        let mut text = format!("\u{feff}id,calldate,src_id,src,clid,dst,dst_name,duration,billsec,disposition,destination,rate,charge,t_cause{end}");
        for row in rows {
            text.push_str(&row.join(","));
            text.push_str(end);
        }
        text.into_bytes()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_as_a_csv_table(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        for table in [&CDR, &QUEUE_CALL, &QUEUE_USER_CALL] {
            read_all(table, &bytes);
        }
    }

    #[test]
    fn mutated_cdr_files(mut bytes in cdr_like(), flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..8)) {
        for (at, value) in flips {
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] = value;
            }
        }
        let (ok, rejected) = read_all(&CDR, &bytes);
        // Every data line is accounted for, one way or the other. A `\r` not followed
        // by `\n` also ends a record, as for the csv crate and old Mac files (found by
        // this test: a flipped `\n` after a `\r`; the case is kept in
        // proptest-regressions/). Its line number is that of the `\n` lines, as grep
        // and editors count them.
        let lone_cr = bytes.windows(2).filter(|w| w[0] == b'\r' && w[1] != b'\n').count()
            + usize::from(bytes.last() == Some(&b'\r'));
        let line_ends = bytes.iter().filter(|b| **b == b'\n').count() + lone_cr;
        prop_assert!(ok + rejected <= line_ends + 1);
    }

    #[test]
    fn any_bytes_as_a_queue_zip(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        if let Ok(mut zip) = QueueZip::open(Cursor::new(bytes), ZipLimits::default(), &[]) {
            for entry in zip.entries.clone() {
                if let Ok(reader) = zip.reader(entry.index) {
                    let _ = table::read::<_, ()>(entry.table, reader, |_| Ok(()), |_, _| Ok(()));
                }
            }
        }
    }

    #[test]
    fn any_recording_name(name in "\\PC{0,80}") {
        let _ = recording_name::parse(&name);
    }

    #[test]
    fn recording_names_round_trip(user in "[a-z][a-z0-9-]{0,12}", caller in "(anonymous|\\+?[0-9]{3,12})", called in "[0-9+]{3,12}", id in "[0-9]{10}\\.[0-9]{1,4}") {
        let name = format!("2024_03_01_10_00_00-{user}-{caller}-{called}-{id}.mp3");
        let parsed = recording_name::parse(&name).unwrap();
        prop_assert_eq!(parsed.sip_user, user.as_str());
        prop_assert_eq!(parsed.caller_id, caller.as_str());
        prop_assert_eq!(parsed.called_no, called.as_str());
        prop_assert_eq!(parsed.unique_id, id.as_str());
    }
}

/// Inputs kept because they once mattered, replayed on every run.
#[test]
fn the_kept_corpus_still_parses() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/fixtures/parsers");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => {
                read_all(&CDR, &bytes);
            }
            Some("zip") => {
                let _ = QueueZip::open(Cursor::new(bytes), ZipLimits::default(), &[]);
            }
            _ => {
                let _ = recording_name::parse(&String::from_utf8_lossy(&bytes));
            }
        }
        seen += 1;
    }
    assert!(seen >= 4);
}

/// Reads `bytes` as JSON objects of `table` to the end: each row's or rejection's line.
fn read_json(table: &'static Table, bytes: &[u8]) -> Vec<u64> {
    let mut lines = Vec::new();
    let _ = table::read_rows::<_, ()>(
        table,
        JsonRows::new(bytes),
        |_| Ok(()),
        |row, _| {
            lines.push(row.map_or_else(|rejected| rejected.line, |row| row.line));
            Ok(())
        },
    );
    lines
}

/// A plausible JSON-lines body to mutate: one object per line, with the CDR's keys and
/// others, strings with escapes, numbers, nulls and nested values.
fn json_lines_like() -> impl Strategy<Value = (Vec<u8>, usize)> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "id",
            "calldate",
            "src",
            "dst",
            "duration",
            "billsec",
            "disposition",
            "rate",
            "charge"
        ])
        .prop_map(str::to_string),
        "[a-zA-Z_ ]{0,8}",
    ];
    let value = prop_oneof![
        Just("null".to_string()),
        "-?[0-9]{1,12}(\\.[0-9]{1,8})?(e[0-9])?",
        "\"2024-0[1-9]-[0-2][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9]\"",
        "[\\PC]{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just("[1, {\"a\": [\"b\"]}]".to_string()),
        Just("true".to_string()),
    ];
    prop::collection::vec(prop::collection::vec((key, value), 0..12), 0..20).prop_map(|objects| {
        let mut text = String::new();
        for fields in &objects {
            let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k:?}: {v}")).collect();
            text.push_str(&format!("{{{}}}\n", fields.join(", ")));
        }
        (text.into_bytes(), objects.len())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_as_json_objects(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        for table in [&CDR, &QUEUE_CALL, &QUEUE_USER_CALL] {
            read_json(table, &bytes);
        }
    }

    #[test]
    fn mutated_json_lines((mut bytes, objects) in json_lines_like(), flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..8)) {
        let lines = read_json(&CDR, &bytes);
        // Unchanged, each line is one record, at its line.
        prop_assert_eq!(lines, (1..=objects as u64).collect::<Vec<_>>());
        for (at, value) in &flips {
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] = *value;
            }
        }
        // Changed, records still come in order, each at a line of the text.
        let lines = read_json(&CDR, &bytes);
        let last = bytes.iter().filter(|b| **b == b'\n').count() as u64 + 1;
        prop_assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{:?}", lines);
        prop_assert!(lines.iter().all(|line| (1..=last).contains(line)), "{:?}", lines);
    }
}

/// Reads `bytes` as a session file to the end: `None` if it is refused whole, else the
/// rows written and the items set aside.
fn read_session(bytes: &[u8]) -> Option<(usize, usize)> {
    let document = SessionDocument::parse("sessions/x.json", bytes).ok()?;
    let mut rows = 0;
    let set_aside = document
        .write_rows::<()>(|_, _| {
            rows += 1;
            Ok(())
        })
        .unwrap();
    Some((rows, set_aside.len()))
}

/// A JSON value for a session key: the right type, a wrong one, a number as a string,
/// null, unicode, something nested.
fn session_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    prop_oneof![
        Just(json!(null)),
        (0u64..1u64 << 40).prop_map(|n| json!(n)),
        (0u64..100_000).prop_map(|n| json!(n.to_string())),
        (-1000i64..0).prop_map(|n| json!(n)),
        Just(json!(1.5)),
        Just(json!(true)),
        Just(json!("2024-03-01T10:00:00.000Z")),
        Just(json!("2024-03-01T11:00:00+01:00")),
        Just(json!("yesterday")),
        "[\\PC]{0,12}".prop_map(|s| json!(s)),
        Just(
            json!({"name": "Zoë", "id": 3, "materialized_path": "1/2/3", "deep": {"a": [1, [2, {}]]}})
        ),
        Just(json!([1, "two", {"three": null}])),
    ]
}

/// A session document to mutate: the keys the tables read and unknown ones, in any
/// order, each with any of [`session_value`]; lists of items of any shape.
fn session_like() -> impl Strategy<Value = (serde_json::Value, bool)> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "lang",
            "call_type",
            "chat_type",
            "status",
            "subStatus",
            "queued_at",
            "ends_at",
            "ended_at",
            "updated_at",
            "wait_duration",
            "call_duration",
            "hold_duration",
            "menu_path",
            "selected_menu",
            "agent_info",
            "rating",
            "feedback",
            "queue_priority_level",
            "handle_durations",
            "x_future_key",
        ])
        .prop_map(str::to_string),
        "[a-zA-Z_]{1,10}",
    ];
    let item = prop::collection::vec(
        (
            prop::sample::select(vec![
                "id",
                "type",
                "status",
                "user_id",
                "connected_at",
                "ended_at",
                "call_duration",
                "from_agent",
                "to_menu_path",
                "other",
            ]),
            session_value(),
        ),
        0..8,
    )
    .prop_map(|fields| {
        serde_json::Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    });
    let list = prop_oneof![
        prop::collection::vec(prop_oneof![item, session_value()], 0..6)
            .prop_map(serde_json::Value::Array),
        session_value(),
    ];
    (
        prop::collection::vec((key, session_value()), 0..16),
        list.clone(),
        list,
        prop_oneof![
            Just(None),
            session_value().prop_map(Some),
            (0u64..1u64 << 50).prop_map(|n| Some(serde_json::json!(n)))
        ],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(fields, participants, transfers, id, pretty, bom)| {
            let mut object = serde_json::Map::new();
            if let Some(id) = id {
                object.insert("id".into(), id);
            }
            object.insert(
                "created_at".into(),
                serde_json::json!("2024-03-01T10:00:00Z"),
            );
            for (key, value) in fields {
                object.insert(key, value);
            }
            object.insert("participants".into(), participants);
            object.insert("transfers".into(), transfers);
            (serde_json::json!({"doc": object, "pretty": pretty}), bom)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_as_a_session_file(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        read_session(&bytes);
    }

    #[test]
    fn mutated_session_files((shape, bom) in session_like(), flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6)) {
        let document = &shape["doc"];
        let text = if shape["pretty"].as_bool().unwrap() {
            serde_json::to_string_pretty(document).unwrap()
        } else {
            serde_json::to_string(document).unwrap()
        };
        let mut bytes = if bom { [b"\xef\xbb\xbf".as_slice(), text.as_bytes()].concat() } else { text.into_bytes() };
        // Unchanged: refused whole only for a reason a pointer names, and every list
        // item is a row or set aside.
        if let Some((rows, set_aside)) = read_session(&bytes) {
            let items = |list: &str| document[list].as_array().map_or(0, Vec::len);
            let lists_not_lists = ["participants", "transfers"]
                .iter()
                .filter(|l| !document[**l].is_null() && !document[**l].is_array())
                .count();
            prop_assert_eq!(rows + set_aside, 1 + items("participants") + items("transfers") + lists_not_lists);
        } else {
            let refused = SessionDocument::parse("x.json", &bytes).unwrap_err();
            prop_assert!(refused.pointer.starts_with('/'), "{:?}", refused);
        }
        for (at, value) in flips {
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] = value;
            }
        }
        read_session(&bytes);
    }
}

/// Shapes a property test rarely reaches: deep nesting, a big document, every key
/// spelt as a string.
#[test]
fn session_files_of_unusual_shapes() {
    let deep = format!(
        "{{\"id\": 1, \"created_at\": \"2024-03-01T10:00:00Z\", \"x\": {}1{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let refused = SessionDocument::parse("deep.json", deep.as_bytes()).unwrap_err();
    assert!(
        refused.reason.contains("recursion limit"),
        "{}",
        refused.reason
    );

    let participants: Vec<String> = (0..20_000)
        .map(|n| format!("{{\"id\": {n}, \"type\": \"agent\", \"user_id\": \"{n}\", \"connected_at\": \"2024-03-01T10:00:00Z\"}}"))
        .collect();
    let big = format!(
        "{{\"id\": \"42\", \"created_at\": \"2024-03-01T10:00:00+02:00\", \"wait_duration\": \"5\", \"status\": \"8\", \"participants\": [{}], \"note\": \"{}\"}}",
        participants.join(","),
        "ł".repeat(1 << 20)
    );
    assert_eq!(read_session(big.as_bytes()), Some((20_001, 0)));
}
