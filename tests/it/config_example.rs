//! `config/example.toml` is the reference for every key: it must parse, and the
//! command line must report every problem in a bad file at once.

use std::collections::BTreeSet;
use std::process::Command;

use cdr_ingest::config::{Key, NumberOrWord, Settings, env_name, sections};

#[test]
fn the_example_config_parses() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.toml"))
        .unwrap();
    let env = |name: &str| (name == "CDR_INGEST_SOURCE_PASSWORD").then(|| "x".to_string());
    let settings = Settings::parse(&text, &env).unwrap_or_else(|issues| panic!("{issues:?}"));
    assert_eq!(settings.source.endpoint(), "ftp.provider.example:21");
    assert_eq!(
        settings.source.folders.of(cdr_ingest::feeds::cdr::CATEGORY),
        "CDRs"
    );
}

#[test]
fn validate_reports_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[source]\nurl = \"ftps://h\"\ntimeout_secs = -1\ncolour = 1\n[destination]\nurl = \"gopher://x\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
        .args(["validate", "--config", file.to_str().unwrap()])
        .env_remove("CDR_INGEST_SOURCE_PASSWORD")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for key in [
        "source.url",
        "source.timeout_secs",
        "source.colour",
        "source.password_env",
        "destination.url",
    ] {
        assert!(stderr.contains(key), "{key} missing from: {stderr}");
    }
    assert!(stderr.contains("has 5 problems"), "{stderr}");
}

#[test]
fn commands_that_never_connect_do_not_need_the_source_password() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let out = dir.path().join("out");
    std::fs::write(
        &file,
        format!(
            "[source]\nurl = \"ftps://u@h\"\n[destination]\nurl = \"file://{}\"\n",
            out.display()
        ),
    )
    .unwrap();
    for args in [
        &["status", "--days", "1"][..],
        &["quarantine"][..],
        &["retention", "--dry-run"][..],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
            .args(args)
            .args(["--config", file.to_str().unwrap()])
            .env_remove("CDR_INGEST_SOURCE_PASSWORD")
            .output()
            .unwrap();
        assert_ne!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let validate = Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
        .args(["validate", "--config", file.to_str().unwrap()])
        .env_remove("CDR_INGEST_SOURCE_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(
        validate.status.code(),
        Some(2),
        "validate still wants the password"
    );
}

/// Regressions: `s3://` (no bucket) passed `validate` and failed `run` with exit 1; a
/// bad value from a variable was reported as the file's; a misspelt variable was
/// ignored; a TOML error lost its line breaks.
#[test]
fn validate_finds_what_run_would_trip_over_and_says_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("local.toml");
    let validate = |text: &str, env: &[(&str, &str)]| {
        std::fs::write(&file, text).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
            .args(["validate", "--config", file.to_str().unwrap()])
            .env("CDR_INGEST_SOURCE_PASSWORD", "x")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let source = "[source]\nurl = \"ftps://u@h\"\n";

    let (code, stderr) = validate(&format!("{source}[destination]\nurl = \"s3://\"\n"), &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("destination.url: names no bucket"),
        "{stderr}"
    );

    let good = format!("{source}[destination]\nurl = \"s3://bucket/cdr\"\n");
    let (code, stderr) = validate(&good, &[("CDR_INGEST_SOURCE_TIMEOUT_SECS", "abc")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("CDR_INGEST_SOURCE_TIMEOUT_SECS (overriding source.timeout_secs): must be a whole number"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("local.toml has"),
        "the file is not where the problem is: {stderr}"
    );

    let (code, stderr) = validate(&good, &[("CDR_INGEST_SOURCE_TIMOUT_SECS", "5")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("CDR_INGEST_SOURCE_TIMOUT_SECS: overrides no configuration key"),
        "{stderr}"
    );
    let (code, stderr) = validate(
        &good,
        &[
            ("CDR_INGEST_LOG_FORMAT", "json"),
            ("CDR_INGEST_CRASH_AT", "nowhere"),
        ],
    );
    assert_eq!(
        code,
        Some(0),
        "variables read elsewhere are not mistakes: {stderr}"
    );

    let (code, stderr) = validate("[source]\nurl = \"ftps://u@h\n", &[]);
    assert_eq!(code, Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.trim_start().starts_with('|') && l.contains('^')),
        "the caret is on a line of its own: {stderr}"
    );
}

/// The commands that never contact the source succeed with none of its secrets there
/// (no password variable, an SFTP key file that is not mounted, a passphrase variable
/// not set), and the ones that connect still name what is missing.
#[test]
fn offline_commands_need_no_secret_and_connecting_ones_say_which_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, "").unwrap();
    let ftps = dir.path().join("ftps.toml");
    std::fs::write(
        &ftps,
        format!(
            "[source]\nurl = \"ftps://u@h\"\n[destination]\nurl = \"file://{}\"\n",
            out.display()
        ),
    )
    .unwrap();
    let sftp = dir.path().join("sftp.toml");
    std::fs::write(
        &sftp,
        format!(
            "[source]\nurl = \"sftp://u@h\"\nkey_file = \"{}\"\nkey_passphrase_env = \"CDR_TEST_UNSET_PASSPHRASE\"\nknown_hosts = \"{}\"\n[destination]\nurl = \"file://{}\"\n",
            dir.path().join("not_mounted_key").display(),
            known_hosts.display(),
            out.display()
        ),
    )
    .unwrap();
    let cdr_ingest = |args: &[&str], file: &std::path::Path| {
        let output = Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
            .args(args)
            .args(["--config", file.to_str().unwrap()])
            .env_remove("CDR_INGEST_SOURCE_PASSWORD")
            .env_remove("CDR_TEST_UNSET_PASSPHRASE")
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    for file in [&ftps, &sftp] {
        for args in [
            &["status", "--days", "1"][..],
            &["quarantine"][..],
            &["verify"][..],
            &["retention", "--dry-run"][..],
            &["purge", "--category", "cdr", "--confirm", "YES"][..],
        ] {
            let (code, stderr) = cdr_ingest(args, file);
            assert_eq!(code, Some(0), "{args:?} with {}: {stderr}", file.display());
        }
    }
    for args in [
        &["validate", "--connect"][..],
        &["run", "--date", "2024-03-01"][..],
    ] {
        let (code, stderr) = cdr_ingest(args, &ftps);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("source.password_env: the environment variable CDR_INGEST_SOURCE_PASSWORD is not set"),
            "{args:?}: {stderr}"
        );
        let (code, stderr) = cdr_ingest(args, &sftp);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        for missing in [
            "source.key_file: ",
            "source.key_passphrase_env: the environment variable CDR_TEST_UNSET_PASSPHRASE is not set",
        ] {
            assert!(stderr.contains(missing), "{args:?}: {stderr}");
        }
    }
}

/// Every key the reader accepts, as `section.key`, from the sections' own tables.
fn accepted_keys() -> BTreeSet<String> {
    sections()
        .iter()
        .flat_map(|(section, keys)| keys.iter().map(move |k| format!("{section}.{}", k.name())))
        .collect()
}

fn read_doc(name: &str) -> String {
    std::fs::read_to_string(format!("{}/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The keys `config/example.toml` shows, set or commented out (`# key = value`); a
/// table such as `[destination.options]` is the key `destination.options`.
fn example_keys(text: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let (mut section, mut in_table) = (String::new(), false);
    for line in text.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_table = header.contains('.');
            if in_table {
                keys.insert(header.to_string());
            }
            section = header.split('.').next().unwrap().to_string();
            continue;
        }
        let Some((key, _)) = line.split_once(" = ") else {
            continue;
        };
        if !in_table
            && !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            keys.insert(format!("{section}.{key}"));
        }
    }
    keys
}

/// The rows of README's configuration table: the keys of the first column (a row may
/// name several), and the second column.
fn readme_rows(text: &str) -> Vec<(Vec<String>, String)> {
    let start = text
        .find("## Configuration")
        .expect("README has a Configuration section");
    let section = &text[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    section[..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let keys = cells[1]
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect();
            (keys, cells[2].to_string())
        })
        .collect()
}

/// The key lists cannot drift apart: each key the reader accepts (enumerated from its
/// tables) is in config/example.toml and in README's table, each key those show is
/// accepted, README names each key's override variable, and every value
/// example.toml sets for a key with a default is that default.
#[test]
fn every_key_is_documented_and_every_documented_key_is_accepted() {
    let accepted = accepted_keys();
    let example = example_keys(&read_doc("config/example.toml"));
    let rows = readme_rows(&read_doc("README.md"));
    let readme: BTreeSet<String> = rows.iter().flat_map(|(keys, _)| keys.clone()).collect();
    for (doc, shown) in [
        ("config/example.toml", &example),
        ("README's table", &readme),
    ] {
        let missing: Vec<&String> = accepted.difference(shown).collect();
        assert!(missing.is_empty(), "{doc} lacks {missing:?}");
        let unknown: Vec<&String> = shown.difference(&accepted).collect();
        assert!(
            unknown.is_empty(),
            "{doc} shows keys the reader refuses: {unknown:?}"
        );
    }
    for (keys, variable) in &rows {
        if let [key] = &keys[..] {
            let (section, name) = key.split_once('.').unwrap();
            if !key.ends_with(".options") {
                assert!(
                    variable.starts_with(&format!("`{}`", env_name(section, name))),
                    "README: {key} is overridden by {}, not {variable}",
                    env_name(section, name)
                );
            }
        }
    }

    let example: toml::Table = toml::from_str(&read_doc("config/example.toml")).unwrap();
    for (section, keys) in sections() {
        for key in keys {
            let Some(value) = example.get(section).and_then(|t| t.get(key.name())) else {
                continue;
            };
            let default = match key {
                Key::Integer(k) => Some(toml::Value::Integer(k.default)),
                Key::Flag(k) => Some(toml::Value::Boolean(k.default)),
                Key::Text(k) => k.default.map(|d| toml::Value::String(d.to_string())),
                Key::List(k) => Some(toml::Value::Array(
                    k.default
                        .iter()
                        .map(|d| toml::Value::String(d.to_string()))
                        .collect(),
                )),
                Key::Retention(k) => Some(toml::Value::String(k.default.to_string())),
                Key::IntegerOrWord(k) => Some(match k.default {
                    NumberOrWord::Number(n) => toml::Value::Integer(n),
                    NumberOrWord::Word => toml::Value::String(k.word.to_string()),
                }),
                Key::Table(_) => None,
            };
            if let Some(default) = default {
                assert_eq!(
                    value,
                    &default,
                    "config/example.toml: {section}.{}",
                    key.name()
                );
            }
        }
    }
}

/// `config/accounts-300.toml` is what `scripts/accounts-example.sh 300` writes, and it
/// is valid: 300 accounts, each under its own prefix, the overrides where it sets them.
#[test]
fn the_300_accounts_example_is_its_scripts_output_and_valid() {
    let root = env!("CARGO_MANIFEST_DIR");
    let committed = std::fs::read_to_string(format!("{root}/config/accounts-300.toml")).unwrap();
    let written = Command::new("bash")
        .args(["scripts/accounts-example.sh", "300"])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(written.status.success());
    assert!(
        written.stdout == committed.as_bytes(),
        "config/accounts-300.toml is not what scripts/accounts-example.sh 300 writes: run it again"
    );
    // The known_hosts file of the example's SFTP accounts is this machine's to make.
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, "").unwrap();
    let file = dir.path().join("accounts.toml");
    std::fs::write(
        &file,
        committed.replace("/etc/cdr-ingest/known_hosts", known_hosts.to_str().unwrap()),
    )
    .unwrap();
    let all = Settings::load_all_offline(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.len(), 300);
    let recordings = cdr_ingest::feeds::recordings::CATEGORY;
    for (i, settings) in all.iter().enumerate() {
        let n = i + 1;
        let account = settings.account.as_ref().unwrap();
        assert_eq!(account.name, format!("acct{n:03}"));
        assert_eq!(
            settings.destination.url.as_str(),
            format!("s3://cdr-archive/provider/account=acct{n:03}/")
        );
        let (keep, lookback) = if n % 25 == 0 { (730, 14) } else { (365, 7) };
        assert_eq!(
            settings
                .retention
                .keep(cdr_ingest::retention::Target::Data(recordings))
                .to_string(),
            format!("{keep} days"),
            "{}",
            account.name
        );
        assert_eq!(settings.schedule.lookback_days, lookback);
        let port = if n % 50 == 0 { 22 } else { 21 };
        assert!(settings.source.endpoint().ends_with(&format!(":{port}")));
    }
}
