//! Rows set aside: one JSON object per line with the source file, line, reason and
//! the row itself, spooled to a temporary file until the source file is complete.

use std::fs::File;
use std::io::{BufWriter, Write};

use serde::{Deserialize, Serialize};

/// One quarantined row, as stored in `_quarantine/…/*.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    pub file: String,
    pub line: u64,
    pub reason: String,
    pub raw: String,
}

/// Collects the rejected rows of one source file.
pub struct QuarantineWriter {
    out: Option<BufWriter<File>>,
    count: u64,
}

impl Default for QuarantineWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl QuarantineWriter {
    pub fn new() -> Self {
        QuarantineWriter {
            out: None,
            count: 0,
        }
    }

    pub fn push(&mut self, entry: &QuarantineEntry) -> std::io::Result<()> {
        let out = match &mut self.out {
            Some(out) => out,
            None => self.out.insert(BufWriter::new(tempfile::tempfile()?)),
        };
        serde_json::to_writer(&mut *out, entry)?;
        out.write_all(b"\n")?;
        self.count += 1;
        Ok(())
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The spooled file, if anything was set aside.
    pub fn finish(self) -> std::io::Result<Option<File>> {
        self.out
            .map(|out| out.into_inner().map_err(|e| e.into_error()))
            .transpose()
    }
}
