//! One line of an FTP folder listing, as servers really write them: `MLSD` facts (any
//! case, any order, RFC 3659), Unix `ls -l` lines (vsftpd, pure-ftpd, ProFTPD) and
//! DOS/IIS lines (`03-01-24  01:00AM       123456 name`, `<DIR>`). Names may hold
//! spaces and any UTF-8.

use chrono::{DateTime, NaiveDateTime, Utc};

/// What a listing line is.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    /// A file with its size and time (`None`: the line had no usable time).
    File {
        name: String,
        size: u64,
        modified: Option<DateTime<Utc>>,
    },
    /// A symbolic link: a LIST line shows only the link, so what it points to (a file or
    /// a folder, its size and time) has to be asked for.
    Link { name: String },
    /// A folder (not `.` or `..`), for a listing that goes down the tree.
    Folder { name: String },
    /// `.`/`..`, or anything else that is neither a file nor a folder.
    Other,
    /// Not in a format this client knows.
    Unknown,
}

/// Parses a line of an `MLSD` reply.
pub fn parse_mlsd(line: &str) -> Entry {
    // entry = [facts] SP pathname; every fact ends with ";" and none contains one, so
    // the first "; " ends the facts and the rest, spaces and all, is the name.
    let Some((facts, name)) = line.split_once("; ") else {
        return Entry::Unknown;
    };
    if name.is_empty() {
        return Entry::Unknown;
    }
    let (mut kind, mut size, mut modified) = (None, None, None);
    for fact in facts.split(';') {
        let Some((key, value)) = fact.split_once('=') else {
            continue;
        };
        match key.to_ascii_lowercase().as_str() {
            "type" => kind = Some(value.to_ascii_lowercase()),
            "size" => size = value.parse::<u64>().ok(),
            "modify" => modified = mlsd_time(value),
            _ => {}
        }
    }
    let name = name.to_string();
    match kind.as_deref() {
        Some("file") => match size {
            Some(size) => Entry::File {
                name,
                size,
                modified,
            },
            None => Entry::Unknown,
        },
        // "OS.unix=slink:/target" (ProFTPD), "OS.unix=symlink" (others).
        Some(os) if os.starts_with("os.unix=slink") || os.starts_with("os.unix=symlink") => {
            Entry::Link { name }
        }
        Some("dir") => Entry::Folder { name },
        Some(_) => Entry::Other,
        None => Entry::Unknown,
    }
}

/// `YYYYMMDDHHMMSS[.fraction]`, in UTC (RFC 3659 §2.3).
fn mlsd_time(value: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(value, "%Y%m%d%H%M%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// Parses a line of a `LIST` reply: Unix `ls -l` style or DOS/IIS style.
pub fn parse_list(line: &str) -> Entry {
    // `ls -l`'s block count heads the listing.
    if line
        .strip_prefix("total ")
        .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
    {
        return Entry::Other;
    }
    if let Ok(file) = suppaftp::list::ListParser::parse_posix(line) {
        let name = file.name().to_string();
        return if file.is_symlink() {
            Entry::Link { name }
        } else if file.is_file() {
            Entry::File {
                name,
                size: file.size() as u64,
                modified: Some(DateTime::<Utc>::from(file.modified())),
            }
        } else if file.is_directory() && name != "." && name != ".." {
            Entry::Folder { name }
        } else {
            Entry::Other
        };
    }
    parse_dos(line)
}

/// `MM-DD-YY  HH:MMAM  (<DIR> | size)  name`, as IIS writes it (also with a four-digit
/// year, a 24-hour time or thousands separators, which IIS and Windows FTP servers
/// write depending on their settings).
fn parse_dos(line: &str) -> Entry {
    let mut rest = line;
    let mut field = || {
        let trimmed = rest.trim_start();
        let end = trimmed.find(' ').unwrap_or(trimmed.len());
        let (token, after) = trimmed.split_at(end);
        rest = after;
        token
    };
    let (date, time, size) = (field(), field(), field());
    let name = rest.strip_prefix(' ').map(|r| r.trim_start()).unwrap_or("");
    let Some(modified) = dos_time(date, time) else {
        return Entry::Unknown;
    };
    if name.is_empty() {
        return Entry::Unknown;
    }
    if size.eq_ignore_ascii_case("<DIR>") {
        return match name {
            "." | ".." => Entry::Other,
            _ => Entry::Folder {
                name: name.to_string(),
            },
        };
    }
    match size.replace([',', '.'], "").parse::<u64>() {
        Ok(size) => Entry::File {
            name: name.to_string(),
            size,
            modified: Some(modified),
        },
        Err(_) => Entry::Unknown,
    }
}

fn dos_time(date: &str, time: &str) -> Option<DateTime<Utc>> {
    let text = format!("{date} {}", time.to_ascii_uppercase());
    [
        "%m-%d-%y %I:%M%p",
        "%m-%d-%Y %I:%M%p",
        "%m-%d-%y %H:%M",
        "%m-%d-%Y %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(&text, format).ok())
    .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64, modified: &str) -> Entry {
        Entry::File {
            name: name.into(),
            size,
            modified: Some(DateTime::parse_from_rfc3339(modified).unwrap().into()),
        }
    }

    /// Lines as real servers send them (IIS, FileZilla Server, ProFTPD, pure-ftpd,
    /// vsftpd, Serv-U), with what each is.
    #[test]
    fn real_listing_lines_parse() {
        let cases = [
            // IIS (Windows Server), its default "MS-DOS" listing style.
            (
                "03-01-24  01:00AM       123456 2024-03-01.csv",
                file("2024-03-01.csv", 123456, "2024-03-01T01:00:00Z"),
            ),
            (
                "10-19-20  03:19PM       <DIR>          pub",
                Entry::Folder { name: "pub".into() },
            ),
            (
                "04-08-14  03:09PM                  403 readme with spaces.txt",
                file("readme with spaces.txt", 403, "2014-04-08T15:09:00Z"),
            ),
            // Microsoft FTP Service, from a user's report (secsy/goftp#54): names
            // with spaces, commas and "&".
            (
                "10-09-20  09:36PM       <DIR>          aspnet_client",
                Entry::Folder {
                    name: "aspnet_client".into(),
                },
            ),
            (
                "10-16-20  05:21PM                15518 Old schedules.html",
                file("Old schedules.html", 15518, "2020-10-16T17:21:00Z"),
            ),
            (
                "10-09-20  09:36PM                97485 SWHandweaving-new, with logo.ims",
                file(
                    "SWHandweaving-new, with logo.ims",
                    97485,
                    "2020-10-09T21:36:00Z",
                ),
            ),
            (
                "10-16-20  05:21PM                12736 Programs & Workshops.html",
                file("Programs & Workshops.html", 12736, "2020-10-16T17:21:00Z"),
            ),
            // IIS with "four-digit years" on (jlaffaye/ftp#354), and a 24-hour clock.
            (
                "03-01-2024  13:05            1,234,567 Aufnahme Zoë.mp3",
                file("Aufnahme Zoë.mp3", 1234567, "2024-03-01T13:05:00Z"),
            ),
            (
                "12-31-2023  11:59PM                    0 empty.csv",
                file("empty.csv", 0, "2023-12-31T23:59:00Z"),
            ),
            // Unix ls -l: vsftpd, pure-ftpd, ProFTPD.
            (
                "-rw-r--r--    1 1001     1001         6941 Mar 02  2024 2024-03-01.csv",
                file("2024-03-01.csv", 6941, "2024-03-02T00:00:00Z"),
            ),
            (
                "-rw-r--r--   1 cdrftp   cdrftp      45062 Jan 15  2023 2024_03_01_10_00_00-zoë łukasiewicz-+48 22-101-1.mp3",
                file(
                    "2024_03_01_10_00_00-zoë łukasiewicz-+48 22-101-1.mp3",
                    45062,
                    "2023-01-15T00:00:00Z",
                ),
            ),
            (
                "drwxr-xr-x    2 1001     1001         4096 Mar 02  2024 subfolder",
                Entry::Folder {
                    name: "subfolder".into(),
                },
            ),
            (
                "lrwxrwxrwx    1 0        0              19 Mar 02  2024 today.csv -> CDRs/2024-03-01.csv",
                Entry::Link {
                    name: "today.csv".into(),
                },
            ),
            ("total 12", Entry::Other),
            // MLSD: pure-ftpd, ProFTPD, FileZilla Server (facts in any order and case,
            // with or without a fraction of a second).
            (
                "type=file;size=6941;modify=20240302010000;UNIX.mode=0644;UNIX.uid=1001;UNIX.gid=1001;unique=803g1a2b; 2024-03-01.csv",
                file("2024-03-01.csv", 6941, "2024-03-02T01:00:00Z"),
            ),
            (
                "modify=20240302010000.123;perm=adfrw;size=10;type=file; name with spaces; and a semicolon.csv",
                file(
                    "name with spaces; and a semicolon.csv",
                    10,
                    "2024-03-02T01:00:00.123Z",
                ),
            ),
            (
                "Type=File;Size=3;Modify=20230115103000; zoë.csv",
                file("zoë.csv", 3, "2023-01-15T10:30:00Z"),
            ),
            (
                "type=cdir;modify=20240302010000;perm=flcdmpe; .",
                Entry::Other,
            ),
            (
                "type=pdir;modify=20240302010000;perm=flcdmpe; ..",
                Entry::Other,
            ),
            (
                "type=dir;modify=20240302010000;perm=flcdmpe; recordings",
                Entry::Folder {
                    name: "recordings".into(),
                },
            ),
            (
                "type=OS.unix=slink:/srv/ftp/CDRs/2024-03-01.csv;modify=20240302010000;UNIX.mode=0777; today.csv",
                Entry::Link {
                    name: "today.csv".into(),
                },
            ),
        ];
        for (line, expected) in cases {
            let parsed = if line.contains("; ") && line.contains('=') {
                parse_mlsd(line)
            } else {
                parse_list(line)
            };
            assert_eq!(parsed, expected, "{line}");
        }
    }

    #[test]
    fn garbage_is_unknown() {
        for line in [
            "",
            "HELLO WORLD",
            "03-01-24 garbage",
            "03-01-24  01:00AM  notasize name",
            "03-01-24  01:00AM       123",
            "type=file;modify=20240302010000; no-size.csv",
            "size=3; no-type.csv",
            "no facts at all",
        ] {
            let parsed = if line.contains('=') {
                parse_mlsd(line)
            } else {
                parse_list(line)
            };
            assert_eq!(parsed, Entry::Unknown, "{line:?}");
        }
    }
}
