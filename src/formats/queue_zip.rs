//! Opening a day's queue-call zip safely: names are checked (no `..`, no absolute
//! paths), and the entry count, total uncompressed size and compression ratio are
//! capped before anything is decompressed, so a zip bomb is refused, not unpacked.
//! Reads are capped again while decompressing, in case the headers lie.

use std::io::{Read, Seek};

use thiserror::Error;
use zip::ZipArchive;

use super::queue_csv::table_for_entry;
use super::table::Table;

/// Caps on what a zip may expand to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipLimits {
    pub max_entries: usize,
    pub max_uncompressed_bytes: u64,
    pub max_compression_ratio: u64,
}

impl ZipLimits {
    /// The caps unless `[ingest]` says otherwise (`zip_max_*`).
    pub const DEFAULT: ZipLimits = ZipLimits {
        max_entries: 16,
        max_uncompressed_bytes: 4 << 30,
        max_compression_ratio: 100,
    };
}

impl Default for ZipLimits {
    fn default() -> Self {
        ZipLimits::DEFAULT
    }
}

/// Why a zip is refused.
#[derive(Debug, Error)]
pub enum ZipError {
    /// Truncated or damaged: it may still be uploading.
    #[error("the zip is truncated or damaged ({0}); it may still be uploading")]
    Damaged(String),
    #[error("entry {0:?} has an unsafe name (absolute or leading outside the archive); refused")]
    UnsafeName(String),
    #[error("the zip has {found} entries, more than the {limit} allowed (ingest.zip_max_entries)")]
    TooManyEntries { found: usize, limit: usize },
    #[error(
        "the zip would expand to {found} bytes, more than the {limit} allowed (ingest.zip_max_uncompressed_bytes)"
    )]
    TooBig { found: u64, limit: u64 },
    #[error(
        "entry {name:?} is compressed {ratio}:1, more than the {limit}:1 allowed (ingest.zip_max_compression_ratio); this looks like a zip bomb"
    )]
    RatioTooHigh {
        name: String,
        ratio: u64,
        limit: u64,
    },
    #[error("the zip has no {0} entry")]
    MissingEntry(&'static str),
}

/// One queue CSV inside the archive.
#[derive(Debug, Clone)]
pub struct Entry {
    pub index: usize,
    /// The enclosed (safe) name.
    pub name: String,
    pub table: &'static Table,
    /// Uncompressed size as declared by the archive.
    pub size: u64,
}

/// A checked archive and which entry holds which table.
pub struct QueueZip<R> {
    archive: ZipArchive<R>,
    /// The queue CSVs, in archive order.
    pub entries: Vec<Entry>,
    /// Entries that are neither queue file (listed so the caller can warn).
    pub ignored: Vec<String>,
}

impl<R: Read + Seek> QueueZip<R> {
    /// Checks the whole directory of the archive against `limits`.
    pub fn open(
        reader: R,
        limits: ZipLimits,
        expected: &[&'static Table],
    ) -> Result<Self, ZipError> {
        let mut archive = ZipArchive::new(reader).map_err(|e| ZipError::Damaged(e.to_string()))?;
        if archive.len() > limits.max_entries {
            return Err(ZipError::TooManyEntries {
                found: archive.len(),
                limit: limits.max_entries,
            });
        }
        let mut total = 0u64;
        let mut entries = Vec::new();
        let mut ignored = Vec::new();
        for index in 0..archive.len() {
            let entry = archive
                .by_index_raw(index)
                .map_err(|e| ZipError::Damaged(e.to_string()))?;
            let raw_name = String::from_utf8_lossy(entry.name_raw()).into_owned();
            // `enclosed_name` quietly makes `/etc/x` relative; an absolute name is refused
            // here instead, as an archive that carries one was not made by the provider.
            let absolute =
                raw_name.starts_with(['/', '\\']) || raw_name.as_bytes().get(1) == Some(&b':');
            let Some(name) = entry.enclosed_name().filter(|_| !absolute) else {
                return Err(ZipError::UnsafeName(raw_name));
            };
            if entry.is_dir() {
                continue;
            }
            total = total.saturating_add(entry.size());
            if total > limits.max_uncompressed_bytes {
                return Err(ZipError::TooBig {
                    found: total,
                    limit: limits.max_uncompressed_bytes,
                });
            }
            let ratio = entry.size() / entry.compressed_size().max(1);
            if ratio > limits.max_compression_ratio {
                return Err(ZipError::RatioTooHigh {
                    name: raw_name,
                    ratio,
                    limit: limits.max_compression_ratio,
                });
            }
            let name = name.to_string_lossy().into_owned();
            match table_for_entry(&name) {
                Some(table) => entries.push(Entry {
                    index,
                    name,
                    table,
                    size: entry.size(),
                }),
                None => ignored.push(name),
            }
        }
        for table in expected {
            if !entries.iter().any(|e| std::ptr::eq(e.table, *table)) {
                return Err(ZipError::MissingEntry(table.dataset));
            }
        }
        Ok(QueueZip {
            archive,
            entries,
            ignored,
        })
    }

    /// A decompressing reader over entry `index`, capped at its declared size.
    pub fn reader(&mut self, index: usize) -> Result<impl Read + '_, ZipError> {
        let entry = self
            .archive
            .by_index(index)
            .map_err(|e| ZipError::Damaged(e.to_string()))?;
        let declared = entry.size();
        Ok(entry.take(declared))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use zip::write::SimpleFileOptions;

    use super::*;
    use crate::formats::queue_csv::{QUEUE_CALL, QUEUE_USER_CALL};

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in entries {
            writer
                .start_file(*name, SimpleFileOptions::default())
                .unwrap();
            writer.write_all(bytes).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    const BOTH: &[&Table] = &[&QUEUE_CALL, &QUEUE_USER_CALL];

    fn open(bytes: Vec<u8>, limits: ZipLimits) -> Result<QueueZip<Cursor<Vec<u8>>>, ZipError> {
        QueueZip::open(Cursor::new(bytes), limits, BOTH)
    }

    #[test]
    fn a_good_zip_maps_its_entries() {
        let bytes = zip_of(&[
            ("d-queue_call.csv", b"id\n"),
            ("d-queue_user_call.csv", b"id\n"),
            ("notes.txt", b"x"),
        ]);
        let mut zip = open(bytes, ZipLimits::default()).unwrap();
        assert_eq!(zip.entries.len(), 2);
        assert_eq!(zip.ignored, ["notes.txt"]);
        let mut text = String::new();
        zip.reader(zip.entries[0].index)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "id\n");
    }

    #[test]
    fn unsafe_names_are_refused() {
        for name in [
            "../../x-queue_call.csv",
            "/etc/x-queue_call.csv",
            "a/../../x-queue_call.csv",
            "C:\\x-queue_call.csv",
        ] {
            let bytes = zip_of(&[(name, b"id\n"), ("d-queue_user_call.csv", b"id\n")]);
            assert!(
                matches!(
                    open(bytes, ZipLimits::default()),
                    Err(ZipError::UnsafeName(_))
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn bombs_and_floods_are_refused() {
        let zeros = vec![b'0'; 1 << 20];
        let bomb = zip_of(&[
            ("d-queue_call.csv", &zeros),
            ("d-queue_user_call.csv", b"id\n"),
        ]);
        assert!(matches!(
            open(bomb.clone(), ZipLimits::default()),
            Err(ZipError::RatioTooHigh { .. })
        ));
        let small = ZipLimits {
            max_uncompressed_bytes: 1000,
            max_compression_ratio: 10_000,
            ..ZipLimits::default()
        };
        assert!(matches!(open(bomb, small), Err(ZipError::TooBig { .. })));
        let many: Vec<(String, &[u8])> = (0..20).map(|i| (format!("{i}.txt"), &b"x"[..])).collect();
        let many: Vec<(&str, &[u8])> = many.iter().map(|(n, b)| (n.as_str(), *b)).collect();
        assert!(matches!(
            open(zip_of(&many), ZipLimits::default()),
            Err(ZipError::TooManyEntries { found: 20, .. })
        ));
    }

    #[test]
    fn truncated_or_incomplete_zips_are_damaged_or_missing_an_entry() {
        let bytes = zip_of(&[
            ("d-queue_call.csv", b"id\n"),
            ("d-queue_user_call.csv", b"id\n"),
        ]);
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                matches!(
                    open(bytes[..cut].to_vec(), ZipLimits::default()),
                    Err(ZipError::Damaged(_))
                ),
                "cut at {cut}"
            );
        }
        let one = zip_of(&[("d-queue_call.csv", b"id\n")]);
        assert!(matches!(
            open(one, ZipLimits::default()),
            Err(ZipError::MissingEntry("queue_user_call"))
        ));
    }
}
