-- Question: which calls have a recording, and where is it stored (to link each call
-- in a CRM/BI to its audio)?
--
-- Returns one row per call with a recording, newest first:
--   date            DATE           call date (UTC partition)
--   started_at      TIMESTAMP      call start, UTC
--   call_id         VARCHAR        the provider's call id
--   direction       VARCHAR        inbound / outbound / internal
--   from_number     VARCHAR        caller number / extension
--   to_number       VARCHAR        called number / extension
--   agent_id        VARCHAR        who talked (queue calls: the queue report's user id;
--                                  others: the SIP user of the recording)
--   agent_name      VARCHAR
--   talk_seconds    BIGINT
--   object_key      VARCHAR        key of the copy, relative to the destination root
--                                  (e.g. recordings/2024/03/01/<file>.mp3)
--
-- Run from the output folder (the destination root):
--   cd /var/lib/cdr-ingest && duckdb -c ".read /path/to/cdr-ingest/examples/queries/calls_with_recording.sql"
-- Prefix object_key with the destination URL (s3://bucket/prefix/…) for a full address.
-- For answered calls WITHOUT a recording: `WHERE outcome = 'answered' AND recording_key IS NULL`.
SELECT
    date,
    started_at AT TIME ZONE 'UTC' AS started_at,
    call_id,
    direction,
    from_number,
    to_number,
    agent_id,
    agent_name,
    talk_seconds,
    recording_key AS object_key
FROM read_parquet('calls/**/*.parquet', hive_partitioning = true)
WHERE recording_key IS NOT NULL
ORDER BY started_at DESC, call_id;
