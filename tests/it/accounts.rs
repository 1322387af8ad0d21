//! Many provider accounts in one destination (`[[accounts]]`): against the real
//! servers, one account with a wrong password fails alone (the others complete, exit
//! 1, `status` names it); and a seeded explorer that runs random subsets of accounts
//! in random orders and checks that each account's prefix holds exactly what its own
//! drop gives in a configuration without accounts (nothing of another account).

use std::path::{Path, PathBuf};
use std::process::Command;

use cdr_ingest::generate::{DropSpec, write_drop};
use chrono::NaiveDate;

use crate::util::{Rng, Run, dataset, difference, read_parquet};

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test.sh"))
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
}

/// A drop of `days` days of CDRs only (no recordings, no queue) in `dir`; its CDR
/// rows.
fn cdr_drop(dir: &Path, seed: u64, days: u32, rows: usize) -> usize {
    let _ = std::fs::remove_dir_all(dir);
    let mut spec = DropSpec::new(seed, day(1), day(days));
    spec.cdr_rows_per_day = rows;
    spec.recordings_per_day = Some(0);
    spec.queue = false;
    spec.sessions_per_day = 0;
    let manifest = write_drop(dir, &spec).unwrap();
    manifest.days.iter().map(|d| d.cdr_rows).sum()
}

/// The binary with `args`, the accounts' passwords in their variables.
fn cdr_ingest(args: &[&str], passwords: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cdr-ingest"));
    command
        .args(args)
        .env("CDR_INGEST_LOG_FORMAT", "text")
        .env_remove("CDR_INGEST_SOURCE_PASSWORD");
    for (name, value) in passwords {
        command.env(name, value);
    }
    Run::from(command.output().unwrap())
}

/// Rows in the Parquet files under `dir` (recursively).
fn parquet_rows(dir: &Path) -> usize {
    let mut rows = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rows += parquet_rows(&path);
        } else if path.extension().is_some_and(|e| e == "parquet") {
            rows += read_parquet(&path)
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>();
        }
    }
    rows
}

#[test]
fn an_account_with_a_wrong_password_fails_alone_and_status_names_it() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let case = "accounts-wrong-password";
    // north on vsftpd, south and west on OpenSSH: two servers, two users, three drops.
    let ftps_root = PathBuf::from(env("CDR_TEST_FTPS_ROOT"));
    let sftp_root = PathBuf::from(env("CDR_TEST_SFTP_ROOT"));
    let north_rows = cdr_drop(&ftps_root.join(format!("{case}-north")), 5, 2, 40);
    cdr_drop(&sftp_root.join(format!("{case}-south")), 6, 2, 40);
    let west_rows = cdr_drop(&sftp_root.join(format!("{case}-west")), 7, 2, 30);
    let sftp = |name: &str, password_env: &str| {
        format!(
            "[[accounts]]\nname = \"{name}\"\n[accounts.source]\nurl = \"sftp://{user}@127.0.0.1:{port}\"\npassword_env = \"{password_env}\"\nknown_hosts = \"{known_hosts}\"\ncdrs = \"{root}/{case}-{name}/CDRs\"\n",
            user = env("CDR_TEST_SFTP_USER"),
            port = env("CDR_TEST_SFTP_PORT"),
            known_hosts = env("CDR_TEST_SFTP_KNOWN_HOSTS"),
            root = sftp_root.display(),
        )
    };
    let config = work.path().join("accounts.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\ntimeout_secs = 10\nretry_max_secs = 2\n[destination]\nurl = \"file://{out}\"\n[ingest]\ncategories = [\"cdr\"]\n\
             [[accounts]]\nname = \"north\"\n[accounts.source]\nurl = \"ftps://{user}@localhost:{port}\"\npassword_env = \"NORTH_PASSWORD\"\nca_file = \"{ca}\"\ncdrs = \"{case}-north/CDRs\"\n\
             {south}{west}",
            out = out.display(),
            user = env("CDR_TEST_FTPS_USER"),
            port = env("CDR_TEST_FTPS_PORT"),
            ca = env("CDR_TEST_CA_FILE"),
            south = sftp("south", "SOUTH_PASSWORD"),
            west = sftp("west", "WEST_PASSWORD"),
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let passwords = [
        ("NORTH_PASSWORD", env("CDR_TEST_FTPS_PASSWORD")),
        ("SOUTH_PASSWORD", "not-the-password".to_string()),
        ("WEST_PASSWORD", env("CDR_TEST_SFTP_PASSWORD")),
    ];
    let passwords: Vec<(&str, &str)> = passwords.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let range = ["--from", "2024-03-01", "--to", "2024-03-02"];

    let run = cdr_ingest(
        &[&["run", "--config", config][..], &range].concat(),
        &passwords,
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains("accounts: 2 ok, 1 failed (south), 0 stopped"),
        "{run:?}"
    );
    assert!(run.stderr.contains("FAILED account south"), "{run:?}");
    // The others are complete, each under its own prefix; nothing at the top.
    assert_eq!(parquet_rows(&out.join("account=north/cdr")), north_rows);
    assert_eq!(parquet_rows(&out.join("account=west/cdr")), west_rows);
    assert_eq!(parquet_rows(&out.join("account=south")), 0);
    let top: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut top = top;
    top.sort();
    assert_eq!(top, ["account=north", "account=south", "account=west"]);

    let status = cdr_ingest(&[&["status", "--config", config][..], &range].concat(), &[]);
    assert!(
        status.stdout.contains("account south: last pass failed"),
        "{status:?}"
    );
    assert!(
        status.stdout.contains("account north: last pass ok"),
        "{status:?}"
    );
    let json = cdr_ingest(
        &[&["status", "--json", "--config", config][..], &range].concat(),
        &[],
    );
    let json: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    let outcomes: Vec<(String, String)> = json["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["account"].as_str().unwrap().to_string(),
                a["status"]["last_pass"]["outcome"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("north".to_string(), "ok".to_string()),
            ("south".to_string(), "failed".to_string()),
            ("west".to_string(), "ok".to_string())
        ]
    );
    let page = work.path().join("status.html");
    cdr_ingest(
        &[
            &[
                "status",
                "--config",
                config,
                "--html",
                page.to_str().unwrap(),
            ][..],
            &range,
        ]
        .concat(),
        &[],
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("id=\"account-south\""), "{html}");

    // Fixed, and asked for alone: it goes in, and the exit code is 0.
    let mut fixed = passwords.clone();
    fixed[1].1 = passwords[2].1;
    let run = cdr_ingest(
        &[
            &["run", "--config", config, "--account", "south"][..],
            &range,
        ]
        .concat(),
        &fixed,
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(parquet_rows(&out.join("account=south/cdr")) > 0);

    let unknown = cdr_ingest(&["status", "--config", config, "--account", "east"], &[]);
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(
        unknown
            .stderr
            .contains("its accounts are north, south, west"),
        "{unknown:?}"
    );
}

/// The days of a round: a range of 1 to 4 days within the drops' four.
fn range(rng: &mut Rng) -> (u32, u32) {
    let from = 1 + rng.below(4) as u32;
    let to = from + rng.below(u64::from(5 - from)) as u32;
    (from, to)
}

fn run_days(config: &Path, accounts: &[&str], (from, to): (u32, u32)) -> Run {
    let (from, to) = (day(from).to_string(), day(to).to_string());
    let mut args = vec![
        "run",
        "--config",
        config.to_str().unwrap(),
        "--from",
        &from,
        "--to",
        &to,
    ];
    for name in accounts {
        args.extend(["--account", name]);
    }
    cdr_ingest(&args, &[])
}

/// Seeded: accounts listed in a random order, passes over random subsets of them (in
/// random `--account` orders) and random days. Invariant: each account's prefix holds
/// exactly what a configuration of that account alone writes for its drop and the
/// same days, so no row of one account is ever under another's prefix, and the layout
/// under a prefix is today's layout.
#[test]
fn account_outputs_never_mix_whatever_the_order() {
    println!("seeds 0..CDR_TEST_ACCOUNT_SEEDS (default 2)");
    let seeds: u64 = std::env::var("CDR_TEST_ACCOUNT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    for seed in 0..seeds {
        explore(seed);
    }
}

fn explore(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xACC0);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let mut names = vec!["alpha", "beta", "gamma"];
    for i in (1..names.len()).rev() {
        names.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let drop_of = |name: &str| work.path().join(format!("drop-{name}"));
    let mut config = format!(
        "[destination]\nurl = \"file://{}\"\n[ingest]\nrecordings_min_age_secs = 0\n",
        out.display()
    );
    for (i, name) in names.iter().enumerate() {
        let mut spec = DropSpec::new(seed * 10 + i as u64, day(1), day(4));
        spec.cdr_rows_per_day = 10 + rng.below(30) as usize;
        spec.recordings_per_day = Some(rng.below(3) as usize);
        spec.sessions_per_day = 0;
        write_drop(&drop_of(name), &spec).unwrap();
        config.push_str(&format!(
            "[[accounts]]\nname = \"{name}\"\n[accounts.source]\nurl = \"file://{}\"\n",
            drop_of(name).display()
        ));
    }
    let config_path = work.path().join("accounts.toml");
    std::fs::write(&config_path, &config).unwrap();
    let mut ranges: Vec<Vec<(u32, u32)>> = vec![Vec::new(); names.len()];
    for _ in 0..3 {
        let mut chosen: Vec<&str> = names.iter().copied().filter(|_| rng.below(3) > 0).collect();
        for i in (1..chosen.len()).rev() {
            chosen.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let days = range(&mut rng);
        let run = run_days(&config_path, &chosen, days);
        assert_eq!(run.code, 0, "seed {seed}: {run:?}");
        let ran: Vec<&str> = if chosen.is_empty() {
            names.clone()
        } else {
            chosen
        };
        for name in ran {
            let i = names.iter().position(|n| *n == name).unwrap();
            ranges[i].push(days);
        }
    }
    for (i, name) in names.iter().enumerate() {
        let oracle = work.path().join(format!("oracle-{name}"));
        let single = work.path().join(format!("single-{name}.toml"));
        // The account alone: its calls carry its name, as under the shared file.
        std::fs::write(
            &single,
            format!(
                "[destination]\nurl = \"file://{}\"\n[ingest]\nrecordings_min_age_secs = 0\n[[accounts]]\nname = \"{name}\"\n[accounts.source]\nurl = \"file://{}\"\n",
                oracle.display(),
                drop_of(name).display()
            ),
        )
        .unwrap();
        let oracle = oracle.join(format!("account={name}"));
        for &days in &ranges[i] {
            let run = run_days(&single, &[], days);
            assert_eq!(run.code, 0, "seed {seed}: {run:?}");
        }
        let prefix = out.join(format!("account={name}"));
        let got = if prefix.exists() {
            dataset(&prefix)
        } else {
            Vec::new()
        };
        let want = if ranges[i].is_empty() {
            Vec::new()
        } else {
            dataset(&oracle)
        };
        assert_eq!(
            got.is_empty(),
            ranges[i].is_empty(),
            "seed {seed}: account {name}"
        );
        assert!(
            got == want,
            "seed {seed} (CDR_TEST_ACCOUNT_SEEDS for more), account {name} after {:?}:\n{}",
            ranges[i],
            difference(&got, &want)
        );
    }
    // Nothing but the accounts' prefixes at the top.
    if out.exists() {
        for entry in std::fs::read_dir(&out).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                names.iter().any(|n| name == format!("account={n}")),
                "seed {seed}: {name} at the top of the destination"
            );
        }
    }
}
