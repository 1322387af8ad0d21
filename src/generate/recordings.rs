//! `recordings/`: the day's call recordings (fake MP3s named after their CDRs) and, with
//! the `bad_recording_names` quirk, the stray files that do not follow the pattern.
//!
//! One file per answered call where a user talked (outbound, inbound to a user,
//! internal, queue call connected to an agent; not IVR, voicemail or queue transfers),
//! or only the day's first `n` such calls with `recordings_per_day: Some(n)`.
//! Name: `YYYY_mm_dd_HH_mm_ss-SIP_USERNAME-CALLER_ID-CALLED_NO-UNIQUEID.mp3`, where the
//! timestamp is the `calldate`, SIP_USERNAME the user's SIP name (may contain `-`),
//! CALLER_ID the CDR `src` (may be `anonymous` or start with `+`), CALLED_NO the CDR
//! `dst`, UNIQUEID the CDR `id` (contains a dot). Content: an ID3v2.4 tag (TIT2 = the
//! UNIQUEID), then 417-byte MPEG-1 Layer III frames (`FF FB 90 64` + pseudo-random bytes),
//! cut to a size drawn from [`DropSpec::recording_bytes`].

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::SystemTime;

use chrono::Datelike;

use super::calls::{CallStream, USERS, push_id};
use super::rng::{Rng, STREAM_RECORDING};
use super::text::push_datetime;
use super::{
    DayManifest, DropSpec, SMALL_BUFFER, create, day_start, finish, system_time, upload_time,
};

/// MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, joint stereo: 417-byte frames.
const MP3_FRAME_HEADER: [u8; 4] = [0xFF, 0xFB, 0x90, 0x64];
const MP3_FRAME_BYTES: usize = 417;

/// Writes the day's recordings (as many as the spec asks for, maybe none), then the
/// stray files when the `bad_recording_names` quirk is on.
pub(crate) fn write(root: &Path, spec: &DropSpec, m: &mut DayManifest) -> io::Result<()> {
    fs::create_dir_all(root.join("recordings"))?;
    write_recordings(root, spec, m)?;
    if spec.quirks.bad_recording_names {
        write_bad_recording_names(root, m)?;
    }
    Ok(())
}

fn write_recordings(root: &Path, spec: &DropSpec, m: &mut DayManifest) -> io::Result<()> {
    let limit = spec.recordings_per_day.unwrap_or(usize::MAX);
    if limit == 0 {
        return Ok(());
    }
    let mut name = Vec::with_capacity(128);
    for call in CallStream::new(spec.seed, m.date, spec.cdr_rows_per_day) {
        let Some(user) = call.recorded_user else {
            continue;
        };
        name.clear();
        name.extend_from_slice(b"recordings/");
        push_datetime(&mut name, call.start, b'_', b'_', b'_');
        name.push(b'-');
        name.extend_from_slice(USERS[user].sip.as_bytes());
        name.push(b'-');
        name.extend_from_slice(call.src.as_bytes());
        name.push(b'-');
        name.extend_from_slice(call.dst.as_bytes());
        name.push(b'-');
        let id_at = name.len();
        push_id(&mut name, &call);
        let unique_id = String::from_utf8(name[id_at..].to_vec()).expect("ASCII");
        name.extend_from_slice(b".mp3");
        let rel = String::from_utf8(name.clone()).expect("SIP names and numbers are UTF-8");
        let mut rng = Rng::derive(
            spec.seed,
            &[STREAM_RECORDING, call.start as u64, u64::from(call.seq)],
        );
        let size = rng.range_u64(&spec.recording_bytes);
        write_mp3(
            create(root, &rel, SMALL_BUFFER)?,
            &unique_id,
            size,
            &mut rng,
            system_time(call.end()),
        )?;
        m.recordings.push(rel);
        m.recording_bytes += size;
        if m.recordings.len() == limit {
            break;
        }
    }
    Ok(())
}

/// Exactly `size` bytes of "ID3 tag, then MP3 frames", written frame by frame.
fn write_mp3(
    mut w: BufWriter<File>,
    title: &str,
    size: u64,
    rng: &mut Rng,
    mtime: SystemTime,
) -> io::Result<()> {
    let mut tag = Vec::with_capacity(32 + title.len());
    let frame_len = 1 + title.len() as u32; // encoding byte + text
    tag.extend_from_slice(b"ID3\x04\x00\x00");
    tag.extend_from_slice(&syncsafe(10 + frame_len));
    tag.extend_from_slice(b"TIT2");
    tag.extend_from_slice(&syncsafe(frame_len));
    tag.extend_from_slice(&[0, 0, 3]); // no flags; UTF-8
    tag.extend_from_slice(title.as_bytes());
    let mut left = size;
    write_capped(&mut w, &tag, &mut left)?;
    let mut frame = [0u8; MP3_FRAME_BYTES];
    frame[..4].copy_from_slice(&MP3_FRAME_HEADER);
    while left > 0 {
        for chunk in frame[4..].chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes()[..chunk.len()]);
        }
        write_capped(&mut w, &frame, &mut left)?;
    }
    finish(w, mtime)
}

/// Writes as much of `bytes` as `left` allows.
fn write_capped(w: &mut impl Write, bytes: &[u8], left: &mut u64) -> io::Result<()> {
    let n = bytes
        .len()
        .min(usize::try_from(*left).unwrap_or(usize::MAX));
    *left -= n as u64;
    w.write_all(&bytes[..n])
}

/// ID3v2.4 sizes: 7 bits per byte.
fn syncsafe(n: u32) -> [u8; 4] {
    [
        (n >> 21) as u8 & 0x7F,
        (n >> 14) as u8 & 0x7F,
        (n >> 7) as u8 & 0x7F,
        n as u8 & 0x7F,
    ]
}

fn write_bad_recording_names(root: &Path, m: &mut DayManifest) -> io::Result<()> {
    let day = m.date.format("%Y_%m_%d").to_string();
    let year = m.date.year();
    let start = day_start(m.date) + 10 * 3600;
    let mut stamp = Vec::new();
    push_datetime(&mut stamp, start, b'_', b'_', b'_');
    let stamp = String::from_utf8(stamp).expect("ASCII");
    let files: [(String, &[u8]); 4] = [
        (
            format!("{day}-broken.mp3"),
            b"ID3\x04\x00\x00\x00\x00\x00\x00",
        ),
        (format!("{day}-notes.txt"), b"not a recording\n"),
        (
            format!("{stamp}-sales-anna.mp3"),
            b"ID3\x04\x00\x00\x00\x00\x00\x00",
        ),
        (
            format!("{year}_13_45_25_61_00-sales-anna-101-+48221234567-{start}.0.mp3"),
            b"\xFF\xFB\x90\x64",
        ),
    ];
    for (name, content) in files {
        let rel = format!("recordings/{name}");
        let mut w = create(root, &rel, SMALL_BUFFER)?;
        w.write_all(content)?;
        finish(w, upload_time(m.date))?;
        m.bad_recording_names.push(rel);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::calls::IVRS;
    use crate::generate::testing::{TempDir, check_cdr_file, is_queue_cdr, mtime, spec_all_quirks};
    use crate::generate::write_drop;
    use std::collections::HashSet;
    use std::fs;

    /// Splits a recording name from both ends as PROVIDER.md says:
    /// (timestamp, sip, caller, called, unique id).
    fn parse_recording(name: &str) -> Option<(String, String, String, String, String)> {
        let stem = name.strip_prefix("recordings/")?.strip_suffix(".mp3")?;
        let (stamp, rest) = (stem.get(..19)?, stem.get(19..)?.strip_prefix('-')?);
        chrono::NaiveDateTime::parse_from_str(stamp, "%Y_%m_%d_%H_%M_%S").ok()?;
        let mut parts = rest.rsplitn(4, '-');
        let (id, called, caller, sip) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        Some((
            stamp.into(),
            sip.into(),
            caller.into(),
            called.into(),
            id.into(),
        ))
    }

    #[test]
    fn recordings_match_cdrs_and_pattern() {
        let spec = spec_all_quirks();
        let dir = TempDir::new("recordings");
        let drop = write_drop(&dir.0, &spec).unwrap();
        let sips: HashSet<&str> = USERS.iter().map(|u| u.sip).collect();
        for m in &drop.days {
            let own = check_cdr_file(&dir.0, &spec, m);
            assert!(!m.recordings.is_empty());
            let mut bytes = 0;
            for name in &m.recordings {
                let (stamp, sip, caller, called, id) = parse_recording(name).expect(name);
                let cdr = own
                    .get(&id)
                    .unwrap_or_else(|| panic!("{name}: no CDR {id}"));
                assert!(id.contains('.'));
                assert_eq!(cdr[9], "ANSWERED");
                assert_eq!(
                    (caller.as_str(), called.as_str()),
                    (cdr[3].as_str(), cdr[5].as_str())
                );
                assert_eq!(stamp.replace('_', ""), cdr[1].replace(['-', ' ', ':'], ""));
                assert!(sips.contains(sip.as_str()), "{sip}");
                let path = dir.0.join(name);
                let content = fs::read(&path).unwrap();
                assert!(spec.recording_bytes.contains(&(content.len() as u64)));
                bytes += content.len() as u64;
                if content.len() > 200 {
                    assert!(content.starts_with(b"ID3\x04"));
                    assert!(content.windows(2).any(|w| w == [0xFF, 0xFB]));
                }
                let start =
                    chrono::NaiveDateTime::parse_from_str(&cdr[1], "%Y-%m-%d %H:%M:%S").unwrap();
                let end = start.and_utc().timestamp() + cdr[7].parse::<i64>().unwrap();
                assert_eq!(mtime(&path), system_time(end));
            }
            assert_eq!(bytes, m.recording_bytes);
            // One recording per answered call that reached a user: all answered calls
            // except IVR and voicemail / transferred queue calls.
            let not_recorded = own
                .values()
                .filter(|f| {
                    f[9] == "ANSWERED" && (is_queue_cdr(f) || IVRS.iter().any(|i| i.ddi == f[5]))
                })
                .count();
            assert!(m.recordings.len() + not_recorded >= m.calls_answered);
            assert!(m.recordings.len() < m.calls_answered);
            assert!(m.recordings.iter().any(|r| r.contains("-anonymous-")));
            assert!(m.recordings.iter().any(|r| r.contains("-sales-")));
            assert_eq!(m.bad_recording_names.len(), 4);
            for bad in &m.bad_recording_names {
                assert!(parse_recording(bad).is_none(), "{bad} should not parse");
                assert_eq!(mtime(&dir.0.join(bad)), upload_time(m.date));
            }
        }
        let limited = DropSpec {
            recordings_per_day: Some(5),
            ..spec.clone()
        };
        let dir2 = TempDir::new("recordings-limited");
        let m2 = write_drop(&dir2.0, &limited).unwrap();
        assert!(m2.days.iter().all(|d| d.recordings.len() == 5));
        assert_eq!(m2.days[0].recordings[..], drop.days[0].recordings[..5]);
    }
}
