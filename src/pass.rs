//! One pass: for each requested day, each daily feed's file (several at once if asked,
//! each over its own connection), then each listed feed's files of those days (a week
//! at a time), then retention. Every unit of work (a feed's day) is held under a lease,
//! renewed while it is worked on; one file's failure is recorded and the pass goes on
//! with the rest.
//!
//! # N workers
//!
//! Identical workers on one destination share the units through those leases: a unit
//! another worker holds is skipped and come back to once the others are done, until it
//! is taken (its holder finished it: the ledger then says it is done; or its holder
//! died: its lease expires within `ingest.lease_secs` and is taken over). A unit held by
//! a worker whose lease runs longer than ours could (another configuration, a stale
//! record) is reported as busy instead of waited for.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};

use crate::feeds::{self, DailyFeed, Feed, Unit};
use crate::model::Category;
use crate::pipeline::connection::Connection;
use crate::pipeline::{
    Context, CopyReport, FileOutcome, FileReport, IngestError, PassOptions, PassReport, millis,
};
use crate::retention::{self, Keep, Removed, RetentionError, Target};
use crate::schedule::Due;
use crate::source::SourceError;
use crate::state::json::StateError;
use crate::state::lease::{self, HeldLease, Lease};

/// Runs one pass over `days`: each day's files (several days at once if asked), then
/// the recordings of all of them. A connection is opened on first need and again after
/// a failure that broke it (`pipeline::connection`); if it cannot be opened within
/// `source.retry_max_secs` the pass stops there, as everything after would fail the
/// same way. `now` decides what is due and which recordings are
/// old enough to be complete. After a shutdown request no new unit is started.
pub async fn run(
    ctx: &Context,
    days: &[NaiveDate],
    now: DateTime<Utc>,
    options: &PassOptions<'_>,
) -> PassReport {
    let units = Mutex::new(Units::new(
        days.iter()
            .flat_map(|&day| daily_feeds(ctx).map(move |(category, daily)| (day, category, daily)))
            .collect(),
    ));
    let count = units.lock().expect("not poisoned").fresh.len();
    let report = Mutex::new(PassReport::default());
    let poll = poll_interval(ctx);
    let worker = || async {
        let mut connection = ctx.connection();
        loop {
            if options.shutdown.is_requested()
                || report.lock().expect("not poisoned").source_error.is_some()
            {
                break;
            }
            let next = units.lock().expect("not poisoned").next();
            let (day, category, daily) = match next {
                Next::Unit(unit) => unit,
                Next::WaitUntil(when) => {
                    // Its slot is free for others meanwhile (the source's logins).
                    connection.close().await;
                    tokio::select! {
                        () = tokio::time::sleep_until(when) => {}
                        () = options.shutdown.requested() => {}
                    }
                    continue;
                }
                Next::Done => break,
            };
            match options
                .shutdown
                .finish_or_abandon(run_unit(
                    ctx,
                    &mut connection,
                    day,
                    category,
                    daily,
                    now,
                    options.respect_retention_history,
                ))
                .await
            {
                Some(Ok(Claimed::Done(file))) => {
                    if let Some(observer) = options.observer {
                        observer.file_done(&file);
                    }
                    report.lock().expect("not poisoned").files.push(file);
                }
                Some(Ok(Claimed::Busy { holder, until })) => {
                    if let Some(file) = units.lock().expect("not poisoned").busy(
                        ctx,
                        (day, category, daily),
                        holder,
                        until,
                        poll,
                    ) {
                        report.lock().expect("not poisoned").files.push(file);
                    }
                }
                Some(Err(e)) => {
                    let mut report = report.lock().expect("not poisoned");
                    report.source_error.get_or_insert(e);
                    report.not_tried.push(day);
                }
                None => report.lock().expect("not poisoned").not_tried.push(day),
            }
        }
        connection.close().await;
    };
    let workers = options
        .parallel_days
        .clamp(1, count.max(1))
        .min(ctx.settings.source.max_connections);
    futures::future::join_all((0..workers).map(|_| worker())).await;
    let mut report = report.into_inner().expect("not poisoned");
    let units = units.into_inner().expect("not poisoned");
    report
        .not_tried
        .extend(units.fresh.iter().map(|&(day, _, _)| day));
    report
        .files
        .extend(units.later.into_iter().map(|later| later.report()));
    report.not_tried.sort();
    report.not_tried.dedup();
    report.files.sort_by_key(|f| (f.day, f.category));
    for feed in listed_feeds(ctx) {
        if report.source_error.is_some() || options.shutdown.is_requested() {
            break;
        }
        let mut connection = ctx.connection();
        match options
            .shutdown
            .finish_or_abandon(run_listed(
                ctx,
                feed,
                &mut connection,
                days,
                now,
                options,
                &mut report,
            ))
            .await
        {
            Some(()) => {}
            None => report.stopped = true,
        }
        connection.close().await;
    }
    for feed in changed_feeds(ctx) {
        if report.source_error.is_some() || options.shutdown.is_requested() {
            break;
        }
        let mut connection = ctx.connection();
        match options
            .shutdown
            .finish_or_abandon(run_changed(ctx, feed, &mut connection, now, &mut report))
            .await
        {
            Some(()) => {}
            None => report.stopped = true,
        }
    }
    report.stopped |= options.shutdown.is_requested();
    if !report.stopped {
        report.retention = enforce_retention(ctx, now.date_naive()).await;
        // Once per changed date, after every feed's files and retention's deletions (a
        // stopped pass leaves its marks to the next).
        report.calls = Some(crate::calls::settle(ctx).await);
    }
    report
}

/// Deletes what has aged out of every target with a limit.
async fn enforce_retention(
    ctx: &Context,
    today: NaiveDate,
) -> Vec<(Target, Result<Removed, RetentionError>)> {
    let mut results = Vec::new();
    for target in Target::all() {
        let keep = ctx.settings.retention.keep(target);
        if keep != Keep::Forever {
            results.push((
                target,
                retention::enforce(&ctx.store, &ctx.json, target, keep, today, false).await,
            ));
        }
    }
    results
}

/// The report of a unit retention keeps from being ingested, if it does.
async fn skip_expired(
    ctx: &Context,
    category: Category,
    day: NaiveDate,
    now: DateTime<Utc>,
    respect_history: bool,
) -> Option<FileReport> {
    let result = match expired(
        ctx,
        Target::Data(category),
        day,
        now.date_naive(),
        respect_history,
    )
    .await
    {
        Ok(None) => return None,
        Ok(Some(reason)) => {
            tracing::info!(%day, %category, %reason, "skipped");
            Ok(FileOutcome::Expired { reason })
        }
        Err(e) => Err(IngestError::State(e)),
    };
    Some(FileReport {
        day,
        category,
        result,
    })
}

/// Why `day` of `target` is not to be ingested, if it is not (`status` shows it as
/// expired).
pub(crate) async fn expired(
    ctx: &Context,
    target: Target,
    day: NaiveDate,
    today: NaiveDate,
    respect_history: bool,
) -> Result<Option<String>, StateError> {
    let keep = ctx.settings.retention.keep(target);
    if keep.oldest_kept(today).is_some_and(|oldest| day < oldest) {
        return Ok(Some(format!(
            "older than the retention limit ({keep}); not ingested"
        )));
    }
    if respect_history
        && let Some(through) = retention::deleted_through(&ctx.json, target).await?
        && day <= through
    {
        return Ok(Some(format!(
            "removed by retention (through {through}); scheduled passes do not ingest it again, a backfill can"
        )));
    }
    Ok(None)
}

/// The daily feeds asked for, in the order of the configuration.
fn daily_feeds(ctx: &Context) -> impl Iterator<Item = (Category, &'static dyn DailyFeed)> + '_ {
    ctx.settings
        .ingest
        .categories
        .iter()
        .filter_map(|&category| feeds::feed(category).daily().map(|daily| (category, daily)))
}

/// A daily feed's day.
type DailyUnit = (NaiveDate, Category, &'static dyn DailyFeed);

/// The daily units of a pass not done yet: those not tried, and those another worker
/// held, to come back to.
struct Units {
    fresh: VecDeque<DailyUnit>,
    later: Vec<Later<DailyUnit>>,
}

/// A unit another worker held when it was tried, and when to try it again.
struct Later<U> {
    unit: U,
    at: Instant,
    holder: String,
    until: DateTime<Utc>,
}

impl Later<DailyUnit> {
    /// The report of a unit still held by another worker when the pass ended.
    fn report(self) -> FileReport {
        let (day, category, _) = self.unit;
        FileReport {
            day,
            category,
            result: Ok(FileOutcome::Busy {
                holder: self.holder,
                until: self.until,
            }),
        }
    }
}

enum Next {
    Unit(DailyUnit),
    /// Only units other workers held are left: the earliest may be tried then.
    WaitUntil(Instant),
    Done,
}

impl Units {
    fn new(fresh: VecDeque<DailyUnit>) -> Self {
        Units {
            fresh,
            later: Vec::new(),
        }
    }

    /// The next unit to try: a fresh one, else one held before whose wait is over.
    fn next(&mut self) -> Next {
        if let Some(unit) = self.fresh.pop_front() {
            return Next::Unit(unit);
        }
        let Some(earliest) = (0..self.later.len()).min_by_key(|&i| self.later[i].at) else {
            return Next::Done;
        };
        if self.later[earliest].at <= Instant::now() {
            Next::Unit(self.later.remove(earliest).unit)
        } else {
            Next::WaitUntil(self.later[earliest].at)
        }
    }

    /// Another worker holds `unit`: it is tried again after `poll`, or, if its holder's
    /// lease runs longer than ours could, reported as busy (the report returned).
    fn busy(
        &mut self,
        ctx: &Context,
        unit: DailyUnit,
        holder: String,
        until: DateTime<Utc>,
        poll: Duration,
    ) -> Option<FileReport> {
        let later = Later {
            unit,
            at: Instant::now() + poll,
            holder,
            until,
        };
        if waits_for(ctx, until) {
            self.later.push(later);
            None
        } else {
            Some(later.report())
        }
    }
}

/// Whether a unit whose lease expires at `until` is come back to: its holder renews a
/// lease as long as ours (so it is one of our kind, working, or it died and the lease
/// expires soon), not one far longer.
fn waits_for(ctx: &Context, until: DateTime<Utc>) -> bool {
    let lease = ctx.leases.duration();
    let longest = Utc::now() + chrono::Duration::from_std(lease + lease / 6).unwrap_or_default();
    until <= longest
}

/// How long to wait before trying a unit another worker held again: a tenth of a lease,
/// from 1 to 30 seconds.
fn poll_interval(ctx: &Context) -> Duration {
    (ctx.leases.duration() / 10).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// How a unit's lease was asked for.
enum Claimed {
    /// Tried (or skipped for retention): its report.
    Done(FileReport),
    /// Another worker holds it.
    Busy {
        holder: String,
        until: DateTime<Utc>,
    },
}

/// The daily file of one feed's day, under the unit's lease. An error means the source
/// cannot be opened at all.
async fn run_unit(
    ctx: &Context,
    connection: &mut Connection<'_>,
    day: NaiveDate,
    category: Category,
    daily: &'static dyn DailyFeed,
    now: DateTime<Utc>,
    respect_history: bool,
) -> Result<Claimed, SourceError> {
    if let Some(skipped) = skip_expired(ctx, category, day, now, respect_history).await {
        return Ok(Claimed::Done(skipped));
    }
    let lease = match claim(ctx, category, day).await {
        Ok(Lease::Held(lease)) => lease,
        Ok(Lease::Busy { holder, expires_at }) => {
            return Ok(Claimed::Busy {
                holder,
                until: expires_at,
            });
        }
        Err(e) => {
            return Ok(Claimed::Done(FileReport {
                day,
                category,
                result: Err(IngestError::State(e)),
            }));
        }
    };
    if let Err(e) = connection.open().await {
        tracing::error!(error = %e, "cannot open the source");
        lease.release().await;
        return Err(e);
    }
    let started = std::time::Instant::now();
    let result = fenced(
        std::slice::from_ref(&lease),
        daily.ingest_day(ctx, connection, day, now),
    )
    .await;
    lease.release().await;
    log_result(day, &result, started.elapsed());
    Ok(Claimed::Done(FileReport {
        day,
        category,
        result,
    }))
}

/// `work`'s result, unless a lease in `held` is lost first: then the work stops where
/// it is, before its commit, and the unit is reported as failed (tried again by the
/// next run, or by whoever holds the lease now).
async fn fenced<T>(
    held: &[HeldLease],
    work: impl std::future::Future<Output = Result<T, IngestError>>,
) -> Result<T, IngestError> {
    tokio::select! {
        result = work => result,
        lost = lease::first_lost(held) => Err(IngestError::State(lost)),
    }
}

/// The listed feeds asked for, in the order of the registry.
fn listed_feeds(ctx: &Context) -> impl Iterator<Item = &'static Feed> + '_ {
    ctx.settings
        .ingest
        .categories
        .iter()
        .map(|&category| feeds::feed(category))
        .filter(|feed| matches!(feed.unit, Unit::Listed(_)))
}

/// The changed-files feeds asked for, in the order of the registry.
fn changed_feeds(ctx: &Context) -> impl Iterator<Item = &'static Feed> + '_ {
    ctx.settings
        .ingest
        .categories
        .iter()
        .map(|&category| feeds::feed(category))
        .filter(|feed| matches!(feed.unit, Unit::Changed(_)))
}

/// What changed in a changed-files feed's folder, under the folder's lease. Its
/// files are not of a pass's days: every pass takes what is new.
async fn run_changed(
    ctx: &Context,
    feed: &'static Feed,
    connection: &mut Connection<'_>,
    now: DateTime<Utc>,
    report: &mut PassReport,
) {
    let Unit::Changed(changed) = feed.unit else {
        return;
    };
    let category = feed.category;
    let lease = match ctx
        .leases
        .acquire_key(crate::sink::layout::folder_lease(category), Utc::now())
        .await
    {
        Ok(Lease::Held(lease)) => lease,
        Ok(Lease::Busy { holder, expires_at }) => {
            tracing::info!(%category, %holder, until = %expires_at, "another worker is taking this folder; skipped");
            return;
        }
        Err(e) => {
            report.listed.push((category, Err(IngestError::State(e))));
            return;
        }
    };
    let taken = fenced(
        std::slice::from_ref(&lease),
        crate::pipeline::changed::ingest(ctx, feed, changed, connection, now),
    )
    .await;
    lease.release().await;
    report.listed.push((category, taken));
}

/// How many days of a listed feed one listing of its folder serves: a unit of work for
/// one worker, so that N workers share a long backfill, while a nightly pass (a week)
/// lists the folder once.
const LISTED_DAYS: usize = 7;

/// A listed feed's files of `days`, up to [`LISTED_DAYS`] at a time, each day under its
/// lease; days other workers hold are come back to as daily units are.
async fn run_listed(
    ctx: &Context,
    feed: &'static Feed,
    connection: &mut Connection<'_>,
    days: &[NaiveDate],
    now: DateTime<Utc>,
    options: &PassOptions<'_>,
    report: &mut PassReport,
) {
    let Unit::Listed(listed) = feed.unit else {
        return;
    };
    let category = feed.category;
    let poll = poll_interval(ctx);
    let mut fresh = VecDeque::new();
    for &day in days {
        match skip_expired(ctx, category, day, now, options.respect_retention_history).await {
            Some(skipped) => report.files.push(skipped),
            None => fresh.push_back(day),
        }
    }
    let mut later: Vec<Later<NaiveDate>> = Vec::new();
    let mut copied: Option<CopyReport> = None;
    while !options.shutdown.is_requested() {
        let (mut held_days, mut held) = (Vec::new(), Vec::new());
        while held.len() < LISTED_DAYS {
            let Some(day) = fresh.pop_front() else { break };
            match claim(ctx, category, day).await {
                Ok(Lease::Held(lease)) => {
                    held_days.push(day);
                    held.push(lease);
                }
                Ok(Lease::Busy { holder, expires_at }) => {
                    let unit = Later {
                        unit: day,
                        at: Instant::now() + poll,
                        holder,
                        until: expires_at,
                    };
                    if waits_for(ctx, expires_at) {
                        later.push(unit);
                    } else {
                        report.files.push(busy_day(category, unit));
                    }
                }
                Err(e) => report.files.push(FileReport {
                    day,
                    category,
                    result: Err(IngestError::State(e)),
                }),
            }
        }
        if held.is_empty() {
            let Some(earliest) = later.iter().map(|l| l.at).min() else {
                break;
            };
            // Its slot is free for others meanwhile: the holder of a day this waits for
            // may need it to finish that day.
            connection.close().await;
            tokio::select! {
                () = tokio::time::sleep_until(earliest) => {}
                () = options.shutdown.requested() => {}
            }
            fresh.extend(later.drain(..).map(|l| l.unit));
            continue;
        }
        let result = fenced(
            &held,
            listed.ingest(ctx, connection, &held_days, now, options.observer),
        )
        .await;
        for lease in &held {
            lease.release().await;
        }
        match result {
            Ok(batch) => match &mut copied {
                Some(copied) => copied.absorb(batch),
                None => copied = Some(batch),
            },
            Err(e) => report.listed.push((category, Err(e))),
        }
    }
    if let Some(copied) = copied {
        report.listed.push((category, Ok(copied)));
    }
    report
        .files
        .extend(later.into_iter().map(|unit| busy_day(category, unit)));
}

/// The report of a listed feed's day another worker held.
fn busy_day(category: Category, unit: Later<NaiveDate>) -> FileReport {
    FileReport {
        day: unit.unit,
        category,
        result: Ok(FileOutcome::Busy {
            holder: unit.holder,
            until: unit.until,
        }),
    }
}

/// Asks for the lease of one unit of work, by the wall clock (a lease must expire in
/// real time, whatever day the pass is about).
async fn claim(ctx: &Context, category: Category, day: NaiveDate) -> Result<Lease, StateError> {
    let lease = ctx.leases.acquire(category, day, Utc::now()).await;
    if let Ok(Lease::Busy { holder, expires_at }) = &lease {
        tracing::info!(%day, %category, %holder, until = %expires_at, "another worker is ingesting this; skipped for now");
    }
    lease
}

fn log_result(
    day: NaiveDate,
    result: &Result<FileOutcome, IngestError>,
    took: std::time::Duration,
) {
    let duration_ms = millis(took);
    match result {
        Ok(FileOutcome::Ingested(i)) => tracing::info!(
            %day,
            file = %i.path,
            bytes = i.bytes,
            rows = i.rows_written,
            rejected = i.rows_rejected,
            duplicates = i.duplicates_dropped,
            duration_ms,
            transfer_ms = i.phases.transfer_ms,
            parse_ms = i.phases.parse_ms,
            write_ms = i.phases.write_ms,
            "ingested"
        ),
        Ok(FileOutcome::Unchanged { path }) => {
            tracing::info!(%day, file = %path, "already ingested (same size and time); nothing transferred")
        }
        Ok(FileOutcome::SameContent { path }) => {
            tracing::info!(%day, file = %path, "new time but same content; ledger updated, output kept")
        }
        Ok(FileOutcome::NotThereYet {
            path,
            due: Due::NotYet,
        }) => {
            tracing::info!(%day, file = %path, "not due yet: the provider uploads each day's files at 01:00 GMT the next day")
        }
        Ok(FileOutcome::NotThereYet {
            path,
            due: Due::Late { due },
        }) => {
            tracing::warn!(%day, file = %path, %due, "late: due but not on the server yet; tried again on the next pass")
        }
        Ok(FileOutcome::NotThereYet {
            path,
            due: Due::Overdue { due },
        }) => {
            tracing::error!(%day, file = %path, %due, "overdue: not on the server long after it was due")
        }
        Ok(FileOutcome::Busy { .. } | FileOutcome::Expired { .. }) => {}
        Err(e) => tracing::error!(%day, error = %e, "failed"),
    }
}
