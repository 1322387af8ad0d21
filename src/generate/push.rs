//! `push/YYYY-MM-DD.jsonl`: the call records a push provider (PROVIDER.md §2) would
//! post for the day's calls, one JSON object a line, in the provider's field names;
//! `push_client.rs` replays them against `serve` in the three formats.
//!
//! One record per call, `ivruniqueid` = the CDR `id`, `time` = its `calldate` (epoch
//! seconds), `caller`/`target` = `src`/`dst`, `duration` = `billsec`, `dialtime` =
//! `duration - billsec`, `status` ANSWER/NOANSWER/BUSY/CONGESTION from the disposition
//! (ABANDONE for a queue call the caller hung up on),
//! `price` = the charge in agorot (charge × 100, rounded half up), `record` = an https
//! URL for a recorded call. `type`: `Queue` for a queue call (with `queueid`,
//! `queuename`, `seconds_waiting_in_queue`), `Incoming Call`, `Extension Outgoing`;
//! every tenth outbound call is a click-to-call: two records, `Click2Call leg1` and
//! `Click2Call leg2`, with the same `ivruniqueid`. Every third inbound call passed
//! an IVR: `IVR` holds 1 or 2 layers (`dtmf_order` 1, 2; `Dtmf` "0" on the last).

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use serde_json::{Value, json};

use super::calls::{CallStream, Direction, Disposition, QueueEnd, push_id};
use super::{BIG_BUFFER, DayManifest, DropSpec, create};

/// `push/YYYY-MM-DD.jsonl`
pub fn push_path(date: chrono::NaiveDate) -> String {
    format!("push/{date}.jsonl")
}

pub(crate) fn write(root: &Path, spec: &DropSpec, m: &mut DayManifest) -> io::Result<()> {
    fs::create_dir_all(root.join("push"))?;
    let path = push_path(m.date);
    let mut out = create(root, &path, BIG_BUFFER)?;
    let mut outbound = 0usize;
    let mut inbound = 0usize;
    for call in CallStream::new(spec.seed, m.date, spec.cdr_rows_per_day) {
        let mut id = Vec::new();
        push_id(&mut id, &call);
        let id = String::from_utf8(id).expect("ids are ASCII");
        let status = match (call.disposition, call.queue.map(|q| q.end)) {
            (_, Some(QueueEnd::Abandoned)) => "ABANDONE",
            (Disposition::Answered, _) => "ANSWER",
            (Disposition::NoAnswer, _) => "NOANSWER",
            (Disposition::Busy, _) => "BUSY",
            (Disposition::Failed, _) => "CONGESTION",
        };
        *m.push_calls_per_status
            .entry(status.to_string())
            .or_default() += 1;
        m.push_talk_seconds += u64::from(call.billsec);
        let mut record = json!({
            "caller": String::from_utf8_lossy(call.src.as_bytes()),
            "target": String::from_utf8_lossy(call.dst.as_bytes()),
            "time": call.start,
            "duration": call.billsec,
            "ivruniqueid": id,
            "status": status,
            "dialtime": call.duration - call.billsec,
            "queueid": 0,
        });
        let fields = record.as_object_mut().expect("an object");
        if let Some(charge) = call.charge_e4() {
            let agorot = (charge + 50) / 100;
            m.push_price_agorot += agorot;
            fields.insert("price".into(), json!(agorot));
        }
        if call.recorded_user.is_some() {
            fields.insert(
                "record".into(),
                json!(format!("https://recordings.example.com/{id}.mp3")),
            );
        }
        let mut kinds = vec!["Incoming Call"];
        match (&call.queue, call.direction) {
            (Some(queue), _) => {
                kinds = vec!["Queue"];
                fields.insert("queueid".into(), json!(queue.queue.id));
                fields.insert("queuename".into(), json!(queue.queue.name));
                fields.insert("seconds_waiting_in_queue".into(), json!(queue.hold()));
            }
            (None, Direction::Outbound | Direction::Internal) => {
                outbound += 1;
                kinds = if outbound.is_multiple_of(10) {
                    vec!["Click2Call leg1", "Click2Call leg2"]
                } else {
                    vec!["Extension Outgoing"]
                };
            }
            (None, Direction::Inbound) => {
                inbound += 1;
                if inbound.is_multiple_of(3) {
                    let layers = 1 + inbound % 2;
                    let ivr: Vec<Value> = (1..=layers)
                        .map(|order| {
                            json!({
                                "layer_id": 100 + order,
                                "layer_name": if order == 1 { "Main menu" } else { "Sales, support" },
                                "layer_number": order,
                                "Dtmf": if order == layers { "0".to_string() } else { (1 + call.seq % 9).to_string() },
                                "dtmf_order": order,
                            })
                        })
                        .collect();
                    m.push_ivr_layers += ivr.len();
                    fields.insert("IVR".into(), Value::Array(ivr));
                }
            }
        }
        for kind in kinds {
            fields.insert("type".into(), json!(kind));
            serde_json::to_writer(&mut out, &*fields)?;
            out.write_all(b"\n")?;
            m.push_records += 1;
        }
    }
    out.flush()?;
    m.push_path = Some(path);
    Ok(())
}
