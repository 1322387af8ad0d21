//! `ingest.transfers` against a server that caps connections (vsftpd's `max_per_ip`):
//! the connections it refuses give their place back, the count backs off to the cap,
//! and the day completes with every recording copied once.

use cdr_ingest::generate::{DropSpec, write_drop};
use chrono::NaiveDate;

use crate::own_vsftpd::OwnVsftpd;
use crate::util::Case;

#[test]
fn transfers_back_off_to_what_the_server_accepts_and_every_file_is_copied_once() {
    let server = OwnVsftpd::start("max_per_ip=3\nmax_clients=0");
    let case = Case::new("transfer_count");
    let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
    let mut spec = DropSpec::new(24, day, day);
    spec.cdr_rows_per_day = 160;
    spec.recordings_per_day = Some(40);
    // From empty to a few TLS records: sizes the copy must carry byte for byte.
    spec.recording_bytes = 0..=100_000;
    spec.queue = false;
    let manifest = write_drop(&case.remote, &spec).unwrap();
    let recordings = &manifest.days[0].recordings;
    assert_eq!(recordings.len(), 40);

    // "auto" starts at 4 (source.max_connections allows 8); a fixed 6 is lowered too.
    for (n, transfers) in [(0, "\"auto\""), (1, "6")] {
        let out = case.work.path().join(format!("out-{n}"));
        let config = case.work.path().join(format!("config-{n}.toml"));
        std::fs::write(
            &config,
            format!(
                "[source]\nurl = \"ftps://{user}@localhost:{port}\"\nca_file = \"{ca}\"\nrecordings = \"{name}/recordings\"\ntimeout_secs = 10\nmax_connections = 8\n[destination]\nurl = \"file://{out}\"\n[ingest]\ncategories = [\"recordings\"]\nrecordings_min_age_secs = 0\ntransfers = {transfers}\n",
                user = case.server.user,
                port = server.port,
                ca = case.server.ca_file.display(),
                name = case.name,
                out = out.display(),
            ),
        )
        .unwrap();
        let run = case.run_days(&config, "2024-03-01", "2024-03-01");
        assert_eq!(run.code, 0, "{transfers}: {run:?}");
        assert!(
            run.stdout.contains("recordings: 40 copied"),
            "{transfers}: {run:?}"
        );
        assert!(
            run.stderr.contains("the source refused connection")
                && run.stderr.contains("copying with 3 for this pass"),
            "{transfers}: {run:?}"
        );
        assert!(
            !run.stderr.contains("recording failed"),
            "{transfers}: {run:?}"
        );
        for path in recordings {
            let name = path.rsplit('/').next().unwrap();
            let copy = out.join(format!("recordings/2024/03/01/{name}"));
            assert!(
                std::fs::read(&copy).unwrap() == std::fs::read(case.remote.join(path)).unwrap(),
                "{transfers}: {name}"
            );
            // Once per run: a refused connection took no file with it.
            assert_eq!(
                server.downloads_of(&format!("/{}/{path}", case.name)),
                n + 1,
                "{transfers}: {name}"
            );
        }
    }
}
