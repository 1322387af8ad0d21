//! The session metadata parser against the generator's oracle: every file of a
//! generated drop parsed, the newest version of each session chosen by `updated_at`,
//! and the result compared with what the generator says it wrote. The feed's own
//! tests (listing, newest wins in the bucket) are the `changes` branch's.

use std::collections::BTreeMap;

use cdr_ingest::formats::sessions_json::{
    SESSION_PARTICIPANTS, SESSION_TRANSFERS, SESSIONS, SessionDocument,
};
use cdr_ingest::formats::table::{Table, Value};
use cdr_ingest::generate::sessions::write_as_of;
use cdr_ingest::generate::{DropSpec, Quirks};
use chrono::NaiveDate;

fn column(table: &Table, name: &str) -> usize {
    table.columns.iter().position(|c| c.name == name).unwrap()
}

#[test]
fn a_generated_day_parses_to_what_the_generator_wrote() {
    let root = tempfile::tempdir().unwrap();
    let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
    let spec = DropSpec {
        sessions_per_day: 120,
        quirks: Quirks::all(),
        ..DropSpec::new(7, day, day)
    };
    let manifest = write_as_of(root.path(), &spec, day, None).unwrap();

    let mut broken = Vec::new();
    let mut newest: BTreeMap<i64, (i64, String, SessionDocument)> = BTreeMap::new();
    for file in &manifest.files {
        let bytes = std::fs::read(root.path().join(file)).unwrap();
        match SessionDocument::parse(file, &bytes) {
            Err(refused) => {
                assert_eq!(&refused.file, file);
                broken.push(file.clone());
            }
            Ok(document) => {
                let version = document.version();
                let updated = version
                    .updated_at
                    .expect("the generator dates every version")
                    .0;
                let slot = newest.entry(version.id);
                match slot {
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert((updated, file.clone(), document));
                    }
                    std::collections::btree_map::Entry::Occupied(mut o) => {
                        if updated > o.get().0 {
                            o.insert((updated, file.clone(), document));
                        }
                    }
                }
            }
        }
    }
    assert_eq!(broken, manifest.broken_files);
    let current: BTreeMap<u64, String> = newest
        .iter()
        .map(|(id, (_, file, _))| (*id as u64, file.clone()))
        .collect();
    assert_eq!(current, manifest.current);

    let mut per_status: BTreeMap<String, usize> = BTreeMap::new();
    let mut handle: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    let (mut participants, mut transfers, mut bad) = (0, 0, Vec::new());
    let (status, agent, seconds, day_of) = (
        column(&SESSIONS, "status"),
        column(&SESSIONS, "agent_name"),
        column(&SESSIONS, "handle_duration"),
        column(&SESSION_PARTICIPANTS, "session_created_at"),
    );
    for (_, file, document) in newest.values() {
        let set_aside = document
            .write_rows::<()>(|table, row| {
                assert_eq!(
                    row.date,
                    document.version().created_at,
                    "children share the partition"
                );
                if std::ptr::eq(table, &SESSIONS) {
                    let Value::Text(name) = row.values[status] else {
                        panic!(
                            "every generated status has a name: {:?}",
                            row.values[status]
                        );
                    };
                    *per_status.entry(name.to_string()).or_default() += 1;
                    if let (Value::Text(agent), Value::Whole(s)) =
                        (row.values[agent], row.values[seconds])
                    {
                        let entry = handle.entry(agent.to_string()).or_default();
                        entry.0 += 1;
                        entry.1 += s as u64;
                    }
                } else if std::ptr::eq(table, &SESSION_PARTICIPANTS) {
                    assert!(matches!(row.values[day_of], Value::Micros(_)));
                    participants += 1;
                } else {
                    assert!(std::ptr::eq(table, &SESSION_TRANSFERS));
                    transfers += 1;
                }
                Ok(())
            })
            .unwrap();
        bad.extend(set_aside.into_iter().map(|q| (file.clone(), q.pointer)));
    }
    assert_eq!(per_status, manifest.per_status);
    assert_eq!(
        (participants, transfers),
        (manifest.participants, manifest.transfers)
    );
    assert_eq!(bad, manifest.bad_items);
    assert_eq!(handle, manifest.handle_per_agent);
    assert_eq!(newest.len(), manifest.sessions);
}
