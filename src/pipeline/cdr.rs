//! One day's CDR file: check the ledger → download while parsing (the CSV streams
//! straight into the parser) → confirm it is whole → commit.

use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};

use super::connection::Connection;
use super::file::{self, Check, Fetched};
use super::parse::parse;
use super::transfer;
use super::{Context, FileOutcome, IngestError};
use crate::formats::cdr_csv::CDR;
use crate::model::Category;

/// The remote path of a day's CDR file.
pub fn remote_path(folder: &str, day: NaiveDate) -> String {
    format!("{folder}/{day}.csv")
}

/// Ingests the CDR file of `day` unless the ledger shows it is already in.
pub async fn ingest_day(
    ctx: &Context,
    connection: &mut Connection<'_>,
    day: NaiveDate,
    now: DateTime<Utc>,
) -> Result<FileOutcome, IngestError> {
    let path = remote_path(&ctx.settings.source.folders.cdrs, day);
    let (remote, previous) =
        match file::check(ctx, connection, Category::Cdr, day, &path, now).await? {
            Check::Done(outcome) => return Ok(outcome),
            Check::Fetch { remote, previous } => (remote, previous),
        };
    let started = Instant::now();
    let (mut sink, reader) = transfer::channel();
    let source_file = path.clone();
    let size = remote.size;
    let parser = tokio::task::spawn_blocking(move || parse(&CDR, reader, &source_file, size));
    let downloaded = connection.download(&path, &mut sink).await;
    let (bytes, sha256) = sink.finish();
    let transferred = Instant::now();
    let parsed = parser
        .await
        .map_err(|e| IngestError::Internal(e.to_string()))?;
    let parse_done = Instant::now();
    downloaded?;
    let parsed = parsed.map_err(|e| e.with_path(&path))?;
    file::confirm_complete(connection, &remote, bytes).await?;
    file::commit(
        ctx,
        Fetched {
            category: Category::Cdr,
            day,
            remote,
            previous,
            bytes,
            sha256,
            parsed: vec![parsed],
            started,
            transferred,
            parse_done,
            today: now.date_naive(),
        },
    )
    .await
}
