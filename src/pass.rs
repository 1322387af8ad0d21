//! One pass: for each requested day, each daily feed's file (several days at once if
//! asked, each over its own connection), then each listed feed's files of all those
//! days, then retention. Every unit of work (a feed's day) is held under a lease; one
//! file's failure is recorded and the pass goes on with the rest.

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, Utc};

use crate::feeds::{self, Feed, Unit};
use crate::model::Category;
use crate::pipeline::connection::Connection;
use crate::pipeline::{
    Context, FileOutcome, FileReport, IngestError, PassOptions, PassReport, millis,
};
use crate::retention::{self, Keep, Removed, RetentionError, Target};
use crate::schedule::Due;
use crate::source::SourceError;
use crate::state::json::StateError;
use crate::state::lease::Lease;

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
    let queue = Mutex::new(days.iter().copied().collect::<VecDeque<_>>());
    let report = Mutex::new(PassReport::default());
    let worker = || async {
        let mut connection = Connection::new(&ctx.settings.source);
        loop {
            if options.shutdown.is_requested()
                || report.lock().expect("not poisoned").source_error.is_some()
            {
                break;
            }
            let Some(day) = queue.lock().expect("not poisoned").pop_front() else {
                break;
            };
            match options
                .shutdown
                .finish_or_abandon(run_day(
                    ctx,
                    &mut connection,
                    day,
                    now,
                    options.respect_retention_history,
                ))
                .await
            {
                Some(Ok(files)) => {
                    if let Some(observer) = options.observer {
                        files.iter().for_each(|file| observer.file_done(file));
                    }
                    report.lock().expect("not poisoned").files.extend(files);
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
    futures::future::join_all(
        (0..options.parallel_days.clamp(1, days.len().max(1))).map(|_| worker()),
    )
    .await;
    let mut report = report.into_inner().expect("not poisoned");
    report
        .not_tried
        .extend(queue.into_inner().expect("not poisoned"));
    report.not_tried.sort();
    report.files.sort_by_key(|f| (f.day, f.category));
    for feed in listed_feeds(ctx) {
        if report.source_error.is_some() || options.shutdown.is_requested() {
            break;
        }
        let mut connection = Connection::new(&ctx.settings.source);
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
        let mut connection = Connection::new(&ctx.settings.source);
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
        // Once per changed date, after every feed's files (a stopped pass leaves its
        // marks to the next).
        report.calls = Some(crate::calls::settle(ctx).await);
        report.retention = enforce_retention(ctx, now.date_naive()).await;
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
                retention::enforce_and_rebuild(ctx, target, keep, today, false).await,
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
    if respect_history {
        if let Some(through) = retention::deleted_through(&ctx.json, target).await? {
            if day <= through {
                return Ok(Some(format!(
                    "removed by retention (through {through}); scheduled passes do not ingest it again, a backfill can"
                )));
            }
        }
    }
    Ok(None)
}

/// The daily files of one day. An error means the source cannot be opened at all.
async fn run_day(
    ctx: &Context,
    connection: &mut Connection<'_>,
    day: NaiveDate,
    now: DateTime<Utc>,
    respect_history: bool,
) -> Result<Vec<FileReport>, SourceError> {
    let mut files = Vec::new();
    for (category, daily) in ctx
        .settings
        .ingest
        .categories
        .iter()
        .filter_map(|&category| feeds::feed(category).daily().map(|daily| (category, daily)))
    {
        if let Some(skipped) = skip_expired(ctx, category, day, now, respect_history).await {
            files.push(skipped);
            continue;
        }
        let lease = match claim(ctx, category, day, now).await {
            Ok(lease) => lease,
            Err(result) => {
                files.push(FileReport {
                    day,
                    category,
                    result,
                });
                continue;
            }
        };
        if let Err(e) = connection.open().await {
            tracing::error!(error = %e, "cannot open the source");
            ctx.leases.release(&lease).await;
            return Err(e);
        }
        let started = std::time::Instant::now();
        let result = daily.ingest_day(ctx, connection, day, now).await;
        ctx.leases.release(&lease).await;
        log_result(day, &result, started.elapsed());
        files.push(FileReport {
            day,
            category,
            result,
        });
    }
    Ok(files)
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
        .acquire_key(crate::sink::layout::folder_lease(category), now)
        .await
    {
        Ok(Lease::Held(key)) => key,
        Ok(Lease::Busy { holder, expires_at }) => {
            tracing::info!(%category, %holder, until = %expires_at, "another worker is taking this folder; skipped");
            return;
        }
        Err(e) => {
            report.listed.push((category, Err(IngestError::State(e))));
            return;
        }
    };
    let taken = crate::pipeline::changed::ingest(ctx, feed, changed, connection, now).await;
    ctx.leases.release(&lease).await;
    report.listed.push((category, taken));
}

/// A listed feed's files of `days`, under a lease per day.
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
    let respect_history = options.respect_retention_history;
    let mut held = Vec::new();
    let mut leases = Vec::new();
    for &day in days {
        if let Some(skipped) = skip_expired(ctx, category, day, now, respect_history).await {
            report.files.push(skipped);
            continue;
        }
        match claim(ctx, category, day, now).await {
            Ok(lease) => {
                held.push(day);
                leases.push(lease);
            }
            Err(result) => report.files.push(FileReport {
                day,
                category,
                result,
            }),
        }
    }
    if !held.is_empty() {
        let copied = listed
            .ingest(ctx, connection, &held, now, options.observer)
            .await;
        report.listed.push((category, copied));
    }
    for lease in &leases {
        ctx.leases.release(lease).await;
    }
}

/// Takes the lease of one unit of work, or gives the outcome to report instead.
async fn claim(
    ctx: &Context,
    category: Category,
    day: NaiveDate,
    now: DateTime<Utc>,
) -> Result<object_store::path::Path, Result<FileOutcome, IngestError>> {
    match ctx.leases.acquire(category, day, now).await {
        Ok(Lease::Held(key)) => Ok(key),
        Ok(Lease::Busy { holder, expires_at }) => {
            tracing::info!(%day, %category, %holder, until = %expires_at, "another worker is ingesting this; skipped");
            Err(Ok(FileOutcome::Busy {
                holder,
                until: expires_at,
            }))
        }
        Err(e) => Err(Err(IngestError::State(e))),
    }
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
