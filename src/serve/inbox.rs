//! The inbox: each accepted pushed record as one small JSON object in the destination,
//! written create-only under a key made from the record's key (`ivruniqueid` and
//! `type`), before the sender is told it is stored. A resent record, or the same record
//! posted to two replicas at once, finds the object there and is stored once. The
//! compaction (`compact.rs`) turns the inbox into Parquet and empties it; a resend that
//! arrives after that is dropped there, against the day's Parquet.
//!
//! ```text
//! _state/push/inbox/<ivruniqueid>__<type>.json  one accepted record, until compacted
//! _quarantine/push_cdr/date=<received day>/<received µs>-<hash>.jsonl   a body that did not parse
//! ```

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use serde::{Deserialize, Serialize};

use crate::formats::push_record::{Format, PushRecord};
use crate::sink::{layout, retry};
use crate::state::json::FORMAT_VERSION;

/// The folder of accepted records not yet compacted.
pub const INBOX: &str = "_state/push/inbox";

/// What an inbox object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub format_version: u32,
    /// When this worker stored it.
    pub received_at: DateTime<Utc>,
    pub record: PushRecord,
}

/// What storing a record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Written now.
    New,
    /// Already there: a resend, or another replica stored it first.
    Duplicate,
}

/// The inbox object of a record: `<ivruniqueid>__<type>.json`, each byte outside
/// `[A-Za-z0-9.-]` written as `_XX` (so `__` never comes from the values): every key
/// has its own name, and every name is a valid object key in every store.
pub fn object(record: &PushRecord) -> Path {
    let (id, kind) = record.key();
    Path::from(format!("{INBOX}/{}", object_name(id, kind)))
}

/// `<ivruniqueid>__<type>.json`, escaped as [`object`] says.
pub fn object_name(id: &str, kind: &str) -> String {
    format!("{}__{}.json", escape(id), escape(kind))
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'-' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("_{byte:02X}"));
        }
    }
    out
}

/// Stores `record` create-only; transient store errors are tried again before failing.
pub async fn store(
    store: &Arc<dyn ObjectStore>,
    record: PushRecord,
    now: DateTime<Utc>,
) -> Result<Stored, object_store::Error> {
    let key = object(&record);
    let accepted = Accepted {
        format_version: FORMAT_VERSION,
        received_at: now,
        record,
    };
    let payload = PutPayload::from(serde_json::to_vec(&accepted).expect("a record serializes"));
    let put = retry::with_backoff("put", retry::is_transient, || {
        store.put_opts(&key, payload.clone(), PutMode::Create.into())
    })
    .await;
    match put {
        Ok(_) => Ok(Stored::New),
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => Ok(Stored::Duplicate),
        Err(e) => Err(e),
    }
}

/// One line of the quarantine of bodies that did not parse.
#[derive(Debug, Serialize, Deserialize)]
pub struct Rejected {
    pub received_at: DateTime<Utc>,
    pub format: String,
    pub reason: String,
    /// The body as sent (lossy where it is not UTF-8).
    pub raw: String,
}

/// Keeps a body that did not parse, so it can be looked at and fixed.
pub async fn quarantine(
    store: &Arc<dyn ObjectStore>,
    format: Format,
    body: &[u8],
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Path, object_store::Error> {
    let hash = xxhash_rust::xxh3::xxh3_64(body);
    let key = Path::from(format!(
        "{}/date={}/{}-{hash:016x}.jsonl",
        layout::quarantine_root(super::DATASET),
        now.date_naive(),
        now.timestamp_micros()
    ));
    let line = Rejected {
        received_at: now,
        format: format.name().into(),
        reason: reason.into(),
        raw: String::from_utf8_lossy(body).into_owned(),
    };
    let mut bytes = serde_json::to_vec(&line).expect("a line serializes");
    bytes.push(b'\n');
    let payload = PutPayload::from(bytes);
    retry::with_backoff("put", retry::is_transient, || {
        store.put(&key, payload.clone())
    })
    .await?;
    Ok(key)
}

/// Every record in the inbox, oldest first by the store's time.
pub async fn list(store: &Arc<dyn ObjectStore>) -> Result<Vec<ObjectMeta>, object_store::Error> {
    list_under(store, INBOX).await
}

/// Every object under `folder`, oldest first by the store's time.
pub async fn list_under(
    store: &Arc<dyn ObjectStore>,
    folder: &str,
) -> Result<Vec<ObjectMeta>, object_store::Error> {
    let prefix = Path::from(folder);
    let mut listed: Vec<ObjectMeta> = retry::with_backoff("list", retry::is_transient, || {
        store.list(Some(&prefix)).try_collect::<Vec<_>>()
    })
    .await?;
    listed.sort_by(|a, b| (a.last_modified, &a.location).cmp(&(b.last_modified, &b.location)));
    Ok(listed)
}

/// Reads one inbox object; `Ok(None)` if it is gone (another compaction took it).
pub async fn read(
    store: &Arc<dyn ObjectStore>,
    key: &Path,
) -> Result<Option<Result<Accepted, String>>, object_store::Error> {
    let got = retry::with_backoff("get", retry::is_transient, || async {
        store.get(key).await?.bytes().await
    })
    .await;
    match got {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes).map_err(|e| format!("{key}: {e}")),
        )),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes a compacted record from the inbox.
pub async fn remove(store: &Arc<dyn ObjectStore>, key: &Path) -> Result<(), object_store::Error> {
    match retry::with_backoff("delete", retry::is_transient, || store.delete(key)).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_its_own_valid_name() {
        let record = |id: &str, kind: &str| {
            let mut r: PushRecord = serde_json::from_value(serde_json::json!({
                "ivruniqueid": id, "type": kind, "time": 1,
                "caller": null, "target": null, "duration": null, "status": null,
                "leg1_dial_status_name": null, "targetextension": null, "callerextension": null,
                "did": null, "queueid": null, "queuename": null, "record": null,
                "price_agorot": null, "dialtime": null, "representative_name": null,
                "representative_code": null, "targetextension_name": null,
                "callerextension_name": null, "target_country": null, "caller_country": null,
                "seconds_waiting_in_queue": null, "original_ivr_unique_id": null,
                "department_name": null, "department_id": null, "top_department_name": null,
                "top_department_id": null, "ivr": [], "extra": null
            }))
            .unwrap();
            r.time = 2;
            object(&r).to_string()
        };
        assert_eq!(
            record("1709287200.17", "Click2Call leg1"),
            "_state/push/inbox/1709287200.17__Click2Call_20leg1.json"
        );
        assert_ne!(record("a_20", "b"), record("a ", "b"));
        assert_ne!(record("a__b", "c"), record("a", "b__c"));
        assert_eq!(
            record("a/../b", "x"),
            "_state/push/inbox/a_2F.._2Fb__x.json"
        );
    }
}
