//! `QueueCalls/YYYY-MM-DD-queue-calls.zip`: the day's queue-call reports, two CSVs of
//! the calls to a queue the CDR file also has.
//!
//! Deflated; two entries. Row `id`s are `<days since 1970-01-01> * 1_000_000_000 + n`
//! (`n` counts from 1 within the file), so unique across days.
//!
//! `YYYY-MM-DD-queue_call.csv` ([`QUEUE_CALL_HEADER`]): one row per CDR of that day
//! whose `dst_name` is a queue name, in CDR order:
//! `id,call_id,queue_id,ddi,cli,callers,agents,start_time,hold_time,conn_time,final_dst_type,final_dst_id,t_cause`
//! - `call_id` = the CDR `id`; `queue_id` `11` Sales queue, `12` Support, 2nd line,
//!   `13` Billing queue; `ddi` = the CDR `dst`; `cli` = the CDR `src`;
//! - `callers` = callers already waiting (0–5); `agents` = agents in the queue;
//! - `start_time` = the CDR `calldate`; `hold_time` + `conn_time` = the CDR `duration`,
//!   `conn_time` = the CDR `billsec` (seconds);
//! - `final_dst_type` / `final_dst_id`: `U` + agent `user_id` (connected, or the agent
//!   that was ringing when the caller hung up), `V` + voicemail box `9xx`, `Q` + the other
//!   `queue_id`, `R` + IVR id (`21` Main IVR, `22` Sales IVR);
//! - `t_cause`: `C` connected (CDR `ANSWERED`), `H` caller hung up = abandoned
//!   (CDR `NO ANSWER`, `Cancelled`).
//!
//! `YYYY-MM-DD-queue_user_call.csv` ([`QUEUE_USER_CALL_HEADER`]): for each queue call,
//! in order, one row per agent it rang in turn, then, if it ended in `V`, `Q` or `R`,
//! one more row for that destination:
//! `id,call_id,queue_id,user_id,location_id,start_time,ring_time,conn_time,disposition,final_dst_type,final_dst_id,t_cause`
//! - agent rows: `user_id` `1001`..`1040` (extension − 100 + 1000), `location_id` `1`..`3`,
//!   `start_time` = when it started ringing, `ring_time` seconds; `final_dst_type` `U`,
//!   `final_dst_id` = `user_id`; the agent who picked up has `t_cause` `C` and
//!   `conn_time` = talk time, all others `H` and `0`;
//! - destination row: `user_id` and `location_id` empty, `ring_time` `0`,
//!   `conn_time` = the CDR `billsec`, `t_cause` `C`;
//! - `disposition` = ring order `1, 2, 3…` within the call.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use chrono::{DateTime, Datelike, Timelike};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::calls::{
    Call, CallStream, MAX_RUNG, QueueEnd, QueueVisit, location_id, push_id, user_id,
};
use super::text::{eol, push_datetime, push_u64, write_csv_header};
use super::{
    BIG_BUFFER, DAY_SECONDS, DayManifest, DropSpec, create, day_number, day_start, finish,
    queue_zip_path, upload_time,
};

/// Header of `YYYY-MM-DD-queue_call.csv`.
pub const QUEUE_CALL_HEADER: &str = "id,call_id,queue_id,ddi,cli,callers,agents,start_time,hold_time,conn_time,final_dst_type,final_dst_id,t_cause";
/// Header of `YYYY-MM-DD-queue_user_call.csv`.
pub const QUEUE_USER_CALL_HEADER: &str = "id,call_id,queue_id,user_id,location_id,start_time,ring_time,conn_time,disposition,final_dst_type,final_dst_id,t_cause";

/// Upper bound of one queue_user_call line's bytes times lines per CDR row, to know
/// when an entry may pass 4 GiB and needs ZIP64 (decided up front: streamed entries
/// cannot switch later).
const MAX_QUEUE_BYTES_PER_CDR_ROW: u64 = 120 * (MAX_RUNG as u64 + 1);

/// Writes the day's queue zip, unless the spec turns queue reports off.
pub(crate) fn write(root: &Path, spec: &DropSpec, m: &mut DayManifest) -> io::Result<()> {
    if !spec.queue {
        return Ok(());
    }
    fs::create_dir_all(root.join("QueueCalls"))?;
    let rel = queue_zip_path(m.date);
    let date = m.date;
    let mut zip = ZipWriter::new(create(root, &rel, BIG_BUFFER)?);
    let upload =
        DateTime::from_timestamp(day_start(date) + DAY_SECONDS + 3600, 0).expect("validated");
    let stamp = zip::DateTime::from_date_and_time(
        upload.year() as u16,
        upload.month() as u8,
        upload.day() as u8,
        upload.hour() as u8,
        upload.minute() as u8,
        upload.second() as u8,
    )
    .map_err(io::Error::other)?;
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        // Level 1: the benchmarks' 1M-row days deflate twice as fast as at the default
        // level, for a 60 % bigger zip; nothing tests compression ratio.
        .compression_level(Some(1))
        .last_modified_time(stamp)
        .system(zip::System::Unix)
        .unix_permissions(0o644)
        .large_file(
            spec.cdr_rows_per_day as u64 * MAX_QUEUE_BYTES_PER_CDR_ROW >= u64::from(u32::MAX),
        );
    let id_base = day_number(date) * 1_000_000_000;
    let eol = eol(spec);
    let mut line = Vec::with_capacity(256);

    zip.start_file(format!("{date}-queue_call.csv"), options)
        .map_err(io::Error::other)?;
    {
        let mut w = BufWriter::with_capacity(BIG_BUFFER, &mut zip);
        write_csv_header(&mut w, spec, QUEUE_CALL_HEADER)?;
        for call in CallStream::new(spec.seed, date, spec.cdr_rows_per_day) {
            let Some(visit) = call.queue else { continue };
            m.queue_calls += 1;
            match visit.end {
                QueueEnd::Agent => m.queue_connected += 1,
                QueueEnd::Abandoned => m.queue_abandoned += 1,
                _ => {}
            }
            format_queue_call(&mut line, id_base + m.queue_calls as u64, &call, &visit);
            w.write_all(&line)?;
            w.write_all(eol)?;
        }
        w.flush()?;
    }

    zip.start_file(format!("{date}-queue_user_call.csv"), options)
        .map_err(io::Error::other)?;
    {
        let mut w = BufWriter::with_capacity(BIG_BUFFER, &mut zip);
        write_csv_header(&mut w, spec, QUEUE_USER_CALL_HEADER)?;
        let mut rows = 0u64;
        for call in CallStream::new(spec.seed, date, spec.cdr_rows_per_day) {
            let Some(visit) = call.queue else { continue };
            let mut at = call.start;
            for (i, &(user, ring)) in visit.rung().iter().enumerate() {
                let connected = matches!(visit.end, QueueEnd::Agent) && i + 1 == visit.rung_count;
                let uc = UserCall {
                    user: Some(user),
                    start: at,
                    ring,
                    conn: if connected { call.billsec } else { 0 },
                    order: i + 1,
                    final_dst: ("U", user_id(user)),
                    connected,
                };
                rows += 1;
                format_queue_user_call(&mut line, id_base + rows, &call, &visit, &uc);
                w.write_all(&line)?;
                w.write_all(eol)?;
                at += i64::from(ring);
            }
            if let QueueEnd::Voicemail | QueueEnd::OtherQueue(_) | QueueEnd::Ivr(_) = visit.end {
                let uc = UserCall {
                    user: None,
                    start: at,
                    ring: 0,
                    conn: call.billsec,
                    order: visit.rung_count + 1,
                    final_dst: visit.final_dst(),
                    connected: true,
                };
                rows += 1;
                format_queue_user_call(&mut line, id_base + rows, &call, &visit, &uc);
                w.write_all(&line)?;
                w.write_all(eol)?;
            }
        }
        w.flush()?;
        m.queue_user_calls = rows as usize;
    }
    let w = zip.finish().map_err(io::Error::other)?;
    m.queue_path = Some(rel);
    finish(w, upload_time(date))
}

fn format_queue_call(out: &mut Vec<u8>, id: u64, call: &Call, visit: &QueueVisit) {
    out.clear();
    push_u64(out, id);
    out.push(b',');
    push_id(out, call);
    out.push(b',');
    push_u64(out, visit.queue.id);
    out.push(b',');
    out.extend_from_slice(call.dst.as_bytes());
    out.push(b',');
    out.extend_from_slice(call.src.as_bytes());
    out.push(b',');
    push_u64(out, u64::from(visit.callers));
    out.push(b',');
    push_u64(out, visit.queue.members as u64);
    out.push(b',');
    push_datetime(out, call.start, b'-', b' ', b':');
    out.push(b',');
    push_u64(out, u64::from(visit.hold()));
    out.push(b',');
    push_u64(out, u64::from(call.billsec));
    let (kind, dst) = visit.final_dst();
    out.push(b',');
    out.extend_from_slice(kind.as_bytes());
    out.push(b',');
    push_u64(out, dst);
    out.push(b',');
    out.push(if let QueueEnd::Abandoned = visit.end {
        b'H'
    } else {
        b'C'
    });
}

/// One point a queue call was offered to.
struct UserCall {
    /// `None` for a voicemail / queue / IVR destination.
    user: Option<usize>,
    start: i64,
    ring: u32,
    conn: u32,
    order: usize,
    final_dst: (&'static str, u64),
    connected: bool,
}

fn format_queue_user_call(
    out: &mut Vec<u8>,
    id: u64,
    call: &Call,
    visit: &QueueVisit,
    uc: &UserCall,
) {
    out.clear();
    push_u64(out, id);
    out.push(b',');
    push_id(out, call);
    out.push(b',');
    push_u64(out, visit.queue.id);
    out.push(b',');
    if let Some(user) = uc.user {
        push_u64(out, user_id(user));
        out.push(b',');
        push_u64(out, location_id(user));
    } else {
        out.push(b',');
    }
    out.push(b',');
    push_datetime(out, uc.start, b'-', b' ', b':');
    out.push(b',');
    push_u64(out, u64::from(uc.ring));
    out.push(b',');
    push_u64(out, u64::from(uc.conn));
    out.push(b',');
    push_u64(out, uc.order as u64);
    out.push(b',');
    out.extend_from_slice(uc.final_dst.0.as_bytes());
    out.push(b',');
    push_u64(out, uc.final_dst.1);
    out.push(b',');
    out.push(if uc.connected { b'C' } else { b'H' });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::testing::{
        TempDir, check_cdr_file, csv_lines, is_queue_cdr, mtime, spec_all_quirks, split_csv,
    };
    use crate::generate::write_drop;
    use std::collections::{HashMap, HashSet};
    use std::fs::File;
    use std::io::Read;

    /// (name, content) of each entry, in archive order.
    fn unzip(path: &Path) -> Vec<(String, Vec<u8>)> {
        let mut archive = zip::ZipArchive::new(File::open(path).unwrap()).unwrap();
        let mut out = Vec::new();
        for i in 0..archive.len() {
            let mut f = archive.by_index(i).unwrap();
            assert_eq!(f.compression(), CompressionMethod::Deflated);
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).unwrap();
            out.push((f.name().unwrap().into_owned(), bytes));
        }
        out
    }

    #[test]
    fn queue_zip_matches_cdrs() {
        let spec = spec_all_quirks();
        let dir = TempDir::new("queue");
        let drop = write_drop(&dir.0, &spec).unwrap();
        let mut row_ids = HashSet::new();
        for m in &drop.days {
            let own = check_cdr_file(&dir.0, &spec, m);
            let zip_path = dir.0.join(m.queue_path.as_ref().unwrap());
            assert_eq!(
                m.queue_path.as_deref(),
                Some(queue_zip_path(m.date).as_str())
            );
            let entries = unzip(&zip_path);
            let qc_name = format!("{}-queue_call.csv", m.date);
            let quc_name = format!("{}-queue_user_call.csv", m.date);
            let names: Vec<&String> = entries.iter().map(|(name, _)| name).collect();
            assert_eq!(names, [&qc_name, &quc_name]);

            let (header, qc) = csv_lines(&entries[0].1, true);
            assert_eq!(header, QUEUE_CALL_HEADER);
            assert_eq!(qc.len(), m.queue_calls);
            let queue_cdrs = own.values().filter(|f| is_queue_cdr(f)).count();
            assert_eq!(queue_cdrs, m.queue_calls);
            let mut calls = HashMap::new();
            let (mut connected, mut abandoned) = (0, 0);
            for line in &qc {
                let f = split_csv(line);
                assert_eq!(f.len(), 13);
                assert!(row_ids.insert(format!("qc{}", f[0])));
                let cdr = &own[&f[1]];
                assert_eq!((&f[3], &f[4], &f[7]), (&cdr[5], &cdr[3], &cdr[1]));
                let (hold, conn): (u64, u64) = (f[8].parse().unwrap(), f[9].parse().unwrap());
                assert_eq!(hold + conn, cdr[7].parse::<u64>().unwrap());
                assert_eq!(conn, cdr[8].parse::<u64>().unwrap());
                assert!(["U", "V", "Q", "R"].contains(&f[10].as_str()));
                match (f[10].as_str(), f[12].as_str()) {
                    ("U", "C") => connected += 1,
                    ("U", "H") => abandoned += 1,
                    (_, t) => assert_eq!(t, "C"),
                }
                assert_eq!(cdr[9] == "ANSWERED", f[12] == "C");
                calls.insert(f[1].clone(), f);
            }
            assert_eq!(
                (connected, abandoned),
                (m.queue_connected, m.queue_abandoned)
            );

            let (header, quc) = csv_lines(&entries[1].1, true);
            assert_eq!(header, QUEUE_USER_CALL_HEADER);
            assert_eq!(quc.len(), m.queue_user_calls);
            let mut order: HashMap<String, (u64, u64)> = HashMap::new();
            for line in &quc {
                let f = split_csv(line);
                assert_eq!(f.len(), 12);
                assert!(row_ids.insert(format!("quc{}", f[0])));
                let qcall = &calls[&f[1]];
                assert_eq!(f[2], qcall[2]);
                let (expected_order, rung) = order.entry(f[1].clone()).or_default();
                *expected_order += 1;
                assert_eq!(f[8], expected_order.to_string());
                if f[9] == "U" {
                    assert_eq!(f[3], f[10]);
                    *rung += f[6].parse::<u64>().unwrap();
                } else {
                    assert!(f[3].is_empty() && f[4].is_empty());
                    assert_eq!(
                        (&f[9], &f[10], &f[11]),
                        (&qcall[10], &qcall[11], &"C".to_owned())
                    );
                }
                if f[11] == "C" {
                    assert_eq!(f[7], qcall[9]);
                    assert_eq!(f[9], qcall[10]);
                }
            }
            assert_eq!(order.len(), m.queue_calls);
            for (call_id, (_, rung)) in order {
                assert_eq!(
                    rung.to_string(),
                    calls[&call_id][8],
                    "hold time = sum of ring times"
                );
            }
            assert_eq!(mtime(&zip_path), upload_time(m.date));
        }
    }
}
