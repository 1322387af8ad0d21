//! `cdr-ingest demo`: the whole job on the example week, safe to run twice.

use std::process::Command;

use crate::util::Run;

#[test]
fn the_demo_ingests_a_week_answers_and_is_safe_to_rerun() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("cdr-demo");
    let demo = || {
        Run::from(
            Command::new(env!("CARGO_BIN_EXE_cdr-ingest"))
                .args(["demo", "--out", out.to_str().unwrap()])
                .output()
                .unwrap(),
        )
    };
    let first = demo();
    assert_eq!(first.code, 0, "{first:?}");
    assert!(first.stdout.contains("summary: 14 ingested"), "{first:?}");
    assert!(
        first.stdout.contains("answers: ") && first.stdout.contains("% answered"),
        "{first:?}"
    );
    assert!(
        first.stdout.contains("busiest hour")
            && first.stdout.contains("took the most queue calls: ")
            && first.stdout.contains("calls (from calls/)")
            && first.stdout.contains("to call back"),
        "{first:?}"
    );
    assert!(
        first
            .stdout
            .contains("answers: 280 contact-center sessions by status: finished "),
        "{first:?}"
    );
    // The pushed records: every one acknowledged is one row, however often it was sent.
    let pushed = first
        .stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("answers: ")?
                .split_once(" pushed calls in push_cdr for ")
        })
        .unwrap_or_else(|| panic!("no pushed answer: {first:?}"));
    let acknowledged = pushed.1.split(' ').next().unwrap();
    assert_eq!(pushed.0, acknowledged, "{first:?}");
    assert!(
        first
            .stdout
            .contains("3 malformed bodies refused with err 1")
            && first
                .stdout
                .contains(&format!("{acknowledged} acknowledged, 0 given up")),
        "{first:?}"
    );
    assert!(out.join("data/cdr").is_dir() && out.join("data/recordings").is_dir());
    assert!(out.join("data/sessions").is_dir() && out.join("data/session_participants").is_dir());
    // Regression: the planted quirks looked like errors, amid one line per recording.
    assert!(
        first
            .stdout
            .contains("quirks, planted on purpose; the warnings above are expected")
            && first.stdout.contains("x_custom")
            && first.stdout.contains("quarantined\": each CDR file")
            && first
                .stdout
                .contains("duplicates dropped\": each file starts")
            && first.stdout.contains("not copied\": stray files"),
        "{first:?}"
    );
    // Short enough to read at a glance: a line per daily file, the listed feeds' lines,
    // a warning per file with an unknown column (CDRs and call-history exports), the
    // quirks explained, the pushed records (with a warning per malformed body) and the
    // answers.
    let lines = first.stdout.lines().count() + first.stderr.lines().count();
    assert!(lines < 66, "{lines} lines: {first:?}");
    assert!(!first.stderr.contains("recording copied"), "{first:?}");
    let again = demo();
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("nothing new to ingest"), "{again:?}");
    let answers = |run: &Run| {
        run.stdout
            .lines()
            .filter(|l| l.starts_with("answers: "))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(answers(&again), answers(&first));
}
