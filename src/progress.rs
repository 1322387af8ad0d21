//! Backfill progress: a bar on a terminal (files, bytes, rate, ETA), a plain progress
//! log line every ten seconds otherwise (a container's log collector).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::pipeline::{FileOutcome, FileReport};

/// Between two plain progress lines.
const LINE_EVERY: Duration = Duration::from_secs(10);

/// Counts files done against the total and reports it.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: AtomicU64,
    bytes: AtomicU64,
    started: Instant,
    last_line: Mutex<Instant>,
}

impl Progress {
    pub fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let style = ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} files  {msg}  ETA {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> ");
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
                .with_style(style)
        });
        Progress {
            bar,
            total,
            done: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            started: Instant::now(),
            last_line: Mutex::new(Instant::now()),
        }
    }

    pub fn file_done(&self, file: &FileReport) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Ok(FileOutcome::Ingested(i)) = &file.result {
            self.bytes.fetch_add(i.bytes, Ordering::Relaxed);
        }
        let bytes = self.bytes.load(Ordering::Relaxed);
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = bytes as f64 / seconds / 1e6;
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{:.1} MB, {rate:.1} MB/s", bytes as f64 / 1e6));
            bar.inc(1);
            return;
        }
        let mut last = self.last_line.lock().expect("not poisoned");
        if last.elapsed() >= LINE_EVERY || done == self.total {
            *last = Instant::now();
            let eta_secs =
                (seconds / done as f64 * (self.total - done.min(self.total)) as f64).round() as u64;
            tracing::info!(day = %file.day, files_done = done, files_total = self.total, bytes, mb_per_sec = format_args!("{rate:.1}"), eta_secs, "backfill progress");
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
