//! Writes one call-history export with the generator (`generate::call_history`), for
//! `scripts/bench-call-history.sh`: the same calls as XLSX and as CSV.
//!
//!   call_history_export OUT ROWS [--xlsx] [--english] [--quirks]
//!
//! ROWS calls, one every 10 seconds from 2024-03-01 00:00 UTC, written as Moscow time.

use std::path::PathBuf;

use cdr_ingest::generate::call_history::{ExportSpec, write_export};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(out), Some(rows)) = (
        args.first(),
        args.get(1).and_then(|r| r.parse::<i64>().ok()),
    ) else {
        eprintln!("usage: call_history_export OUT ROWS [--xlsx] [--english] [--quirks]");
        std::process::exit(2);
    };
    let flag = |name: &str| args.iter().any(|a| a == name);
    let from = 1_709_251_200;
    let spacing = 10;
    let spec = ExportSpec {
        seed: 1,
        from,
        to: from + rows * spacing,
        spacing,
        russian: !flag("--english"),
        xlsx: flag("--xlsx"),
        utc_offset_minutes: 180,
        revised_before: from,
        quirks: flag("--quirks"),
    };
    let manifest = write_export(&PathBuf::from(out), &spec)?;
    println!(
        "{out}: {} calls, {} bad rows",
        manifest.calls.len(),
        manifest.bad_rows
    );
    Ok(())
}
