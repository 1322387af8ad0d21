//! Backfill progress: a bar on a terminal (files and recordings, bytes, rate, ETA), a
//! plain progress log line every ten seconds otherwise (a container's log collector).
//! While the bar is drawn, log lines are written above it, not into it.

use std::io::{self, IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;

use crate::pipeline::{FileOutcome, FileReport, Observer};

/// Between two plain progress lines.
const LINE_EVERY: Duration = Duration::from_secs(10);

/// The bar on the terminal, if one is drawn: [`LogWriter`] moves it out of the way.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Counts the daily files and the recordings done against their totals and reports it.
/// The recordings' total is known once their folder is listed, after the files.
pub struct Progress {
    bar: Option<ProgressBar>,
    files_total: u64,
    files_done: AtomicU64,
    recordings_total: AtomicU64,
    recordings_done: AtomicU64,
    bytes: AtomicU64,
    started: Instant,
    last_line: Mutex<Instant>,
}

/// Where a backfill stands, in numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Snapshot {
    files_done: u64,
    files_total: u64,
    recordings_done: u64,
    recordings_total: u64,
    bytes: u64,
    /// Rounded to a tenth.
    mb_per_sec: f64,
    eta_secs: u64,
}

impl Snapshot {
    fn finished(&self) -> bool {
        self.files_done >= self.files_total && self.recordings_done >= self.recordings_total
    }
}

impl Progress {
    /// `files_total`: the daily files of the backfill (days × daily categories).
    pub fn new(files_total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let style =
                ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}  ETA {eta}")
                    .expect("a valid template")
                    .progress_chars("=> ");
            let bar =
                ProgressBar::with_draw_target(Some(files_total), ProgressDrawTarget::stderr())
                    .with_style(style);
            *BAR.lock().expect("not poisoned") = Some(bar.clone());
            bar
        });
        Progress {
            bar,
            files_total,
            files_done: AtomicU64::new(0),
            recordings_total: AtomicU64::new(0),
            recordings_done: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            started: Instant::now(),
            last_line: Mutex::new(Instant::now()),
        }
    }

    fn snapshot(&self) -> Snapshot {
        let files_done = self.files_done.load(Ordering::Relaxed);
        let recordings_done = self.recordings_done.load(Ordering::Relaxed);
        let recordings_total = self.recordings_total.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        let done = files_done + recordings_done;
        let left = (self.files_total + recordings_total).saturating_sub(done);
        Snapshot {
            files_done,
            files_total: self.files_total,
            recordings_done,
            recordings_total,
            bytes,
            mb_per_sec: (bytes as f64 / seconds / 1e6 * 10.0).round() / 10.0,
            eta_secs: (seconds / done.max(1) as f64 * left as f64).round() as u64,
        }
    }

    /// Shows the new state: on the bar, or as a log line if one is due.
    fn report(&self) {
        let now = self.snapshot();
        if let Some(bar) = &self.bar {
            bar.set_length(now.files_total + now.recordings_total);
            bar.set_position(now.files_done + now.recordings_done);
            bar.set_message(message(&now));
            return;
        }
        let mut last = self.last_line.lock().expect("not poisoned");
        if last.elapsed() >= LINE_EVERY || now.finished() {
            *last = Instant::now();
            tracing::info!(
                files_done = now.files_done,
                files_total = now.files_total,
                recordings_done = now.recordings_done,
                recordings_total = now.recordings_total,
                bytes = now.bytes,
                mb_per_sec = now.mb_per_sec,
                eta_secs = now.eta_secs,
                "backfill progress"
            );
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            *BAR.lock().expect("not poisoned") = None;
            bar.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn file_done(&self, file: &FileReport) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        if let Ok(FileOutcome::Ingested(i)) = &file.result {
            self.bytes.fetch_add(i.bytes, Ordering::Relaxed);
        }
        self.report();
    }

    fn recordings_found(&self, count: u64) {
        self.recordings_total.fetch_add(count, Ordering::Relaxed);
        self.report();
    }

    fn recordings_done(&self, count: u64, bytes: u64) {
        self.recordings_done.fetch_add(count, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.report();
    }
}

/// The bar's text after it.
fn message(now: &Snapshot) -> String {
    let recordings = if now.recordings_total > 0 {
        format!(
            ", {}/{} recordings",
            now.recordings_done, now.recordings_total
        )
    } else {
        String::new()
    };
    format!(
        "{}/{} files{recordings}  {:.1} MB, {:.1} MB/s",
        now.files_done,
        now.files_total,
        now.bytes as f64 / 1e6,
        now.mb_per_sec
    )
}

/// The log's writer: stderr, with the progress bar (while one is drawn) cleared
/// before each line and drawn again after it, so lines never land inside the bar.
pub struct LogWriter;

/// One log line being written.
pub struct LogLine;

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine
    }
}

impl Write for LogLine {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        above_bar(|bar| write_above(bar, &mut io::stderr(), line))?;
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// Runs `write` with the bar on screen, if there is one, for it to write around; the
/// report's lines on stdout (`out!`) go the same way, as they share the terminal.
pub fn above_bar<R>(write: impl FnOnce(Option<&ProgressBar>) -> R) -> R {
    let bar = BAR.lock().map_or(None, |bar| bar.clone());
    write(bar.as_ref())
}

/// Writes `line` to `out`, out of `bar`'s way if there is one.
fn write_above(bar: Option<&ProgressBar>, out: &mut dyn Write, line: &[u8]) -> io::Result<()> {
    match bar {
        Some(bar) => bar.suspend(|| out.write_all(line)),
        None => out.write_all(line),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A terminal that records what is done to it, shared with the log's output.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<Vec<String>>>);

    impl Screen {
        fn push(&self, op: String) -> io::Result<()> {
            self.0.lock().unwrap().push(op);
            Ok(())
        }
    }

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            120
        }
        fn move_cursor_up(&self, n: usize) -> io::Result<()> {
            self.push(format!("up {n}"))
        }
        fn move_cursor_down(&self, n: usize) -> io::Result<()> {
            self.push(format!("down {n}"))
        }
        fn move_cursor_right(&self, n: usize) -> io::Result<()> {
            self.push(format!("right {n}"))
        }
        fn move_cursor_left(&self, n: usize) -> io::Result<()> {
            self.push(format!("left {n}"))
        }
        fn write_line(&self, s: &str) -> io::Result<()> {
            self.push(format!("bar {s}"))
        }
        fn write_str(&self, s: &str) -> io::Result<()> {
            self.push(format!("bar {s}"))
        }
        fn clear_line(&self) -> io::Result<()> {
            self.push("clear".into())
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Write for Screen {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.push(format!("log {}", String::from_utf8_lossy(buf)))?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Regression: log lines were printed into the bar (`…ETA 0s      2026-12-01T05:50:39Z
    /// INFO … recording copied`).
    #[test]
    fn a_log_line_goes_above_the_bar_which_is_drawn_again_below_it() {
        let screen = Screen::default();
        let bar = ProgressBar::with_draw_target(
            Some(10),
            ProgressDrawTarget::term_like(Box::new(screen.clone())),
        )
        .with_style(ProgressStyle::with_template("[{pos}/{len}]").unwrap());
        bar.set_position(3);
        bar.tick();
        let mut out = screen.clone();
        write_above(Some(&bar), &mut out, b"INFO recording copied\n").unwrap();
        // Moving the cursor up no lines is nothing.
        let ops: Vec<String> = screen
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|op| *op != "up 0")
            .cloned()
            .collect();
        let log = ops
            .iter()
            .position(|op| op == "log INFO recording copied\n")
            .unwrap_or_else(|| panic!("{ops:?}"));
        assert_eq!(ops[log - 1], "clear", "the bar is cleared first: {ops:?}");
        assert!(
            ops[..log].iter().any(|op| op.contains("[3/10]")),
            "the bar was drawn before: {ops:?}"
        );
        assert!(
            ops[log + 1..].iter().any(|op| op.contains("[3/10]")),
            "and is drawn again after: {ops:?}"
        );
    }

    /// Regression: the bar and the lines counted the daily files only, and sat at
    /// "181/182 files, ETA 0s" while the recordings copied.
    #[test]
    fn recordings_count_and_the_numbers_are_numbers() {
        let progress = Progress {
            bar: None,
            files_total: 2,
            files_done: AtomicU64::new(0),
            recordings_total: AtomicU64::new(0),
            recordings_done: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            started: Instant::now(),
            last_line: Mutex::new(Instant::now()),
        };
        progress.files_done.store(2, Ordering::Relaxed);
        progress.recordings_found(4);
        let halfway = progress.snapshot();
        assert!(!halfway.finished());
        progress.recordings_done(4, 3_000_000);
        let done = progress.snapshot();
        assert!(done.finished());
        assert_eq!((done.recordings_done, done.recordings_total), (4, 4));
        assert_eq!(done.bytes, 3_000_000);
        assert_eq!(done.eta_secs, 0);
        assert_eq!(done.mb_per_sec, (done.mb_per_sec * 10.0).round() / 10.0);
        assert!(message(&done).starts_with("2/2 files, 4/4 recordings  3.0 MB, "));
    }
}
