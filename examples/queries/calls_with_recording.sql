-- Question: which answered calls have a recording, and where is it stored (to link
-- each call in a CRM/BI to its audio)?
--
-- Returns one row per answered call with a recording (cdr joined to recording_index
-- on recording_index.unique_id = cdr.id), newest first:
--   date            DATE           call date (UTC partition)
--   calldate        TIMESTAMP      call start, UTC
--   id              VARCHAR        cdr.id (= recording_index.unique_id)
--   src             VARCHAR        caller number / extension
--   dst             VARCHAR        called number / extension
--   dst_name        VARCHAR        called contact / user / queue name
--   src_id          VARCHAR        caller's SIP user (outbound PSTN calls only)
--   sip_user        VARCHAR        SIP user of the recording (from its file name)
--   billsec         BIGINT         billed (talk) seconds
--   object_key      VARCHAR        key of the copy, relative to the destination root
--                                  (e.g. recordings/2024/03/01/<file>.mp3)
--   size            BIGINT         bytes
--   sha256          VARCHAR        of the file
--
-- Run from the output folder (the destination root):
--   cd /var/lib/cdr-ingest && duckdb -c ".read /path/to/cdr-ingest/examples/queries/calls_with_recording.sql"
-- Prefix object_key with the destination URL (s3://bucket/prefix/…) for a full address.
-- For answered calls WITHOUT a recording use a LEFT JOIN and `WHERE r.unique_id IS NULL`.
SELECT
    c.date,
    c.calldate AT TIME ZONE 'UTC' AS calldate,
    c.id,
    c.src,
    c.dst,
    c.dst_name,
    c.src_id,
    r.sip_user,
    c.billsec,
    r.object_key,
    r.size,
    r.sha256
FROM read_parquet('cdr/**/*.parquet', hive_partitioning = true) c
JOIN read_parquet('recording_index/**/*.parquet', hive_partitioning = true) r
  ON r.unique_id = c.id
WHERE c.disposition = 'ANSWERED'
ORDER BY c.calldate DESC, c.id;
