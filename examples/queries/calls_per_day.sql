-- Question: how many calls were made each day, how many were answered, how many
-- minutes were talked and what did they cost? (On `calls`: any provider, any feed.)
--
-- Returns one row per call date (UTC, the `date` partition), oldest first:
--   date            DATE           call date (UTC)
--   calls           BIGINT         all calls (inbound + outbound + internal + unknown)
--   answered        BIGINT         outcome = 'answered'
--   voicemail       BIGINT         outcome = 'voicemail' (the caller reached a mailbox)
--   missed          BIGINT         any other outcome (no_answer, busy, cancelled, abandoned, …)
--   inbound         BIGINT         direction = 'inbound'
--   outbound        BIGINT         direction = 'outbound'
--   internal        BIGINT         direction = 'internal'
--   talk_seconds    BIGINT         sum of talk time
--   talk_minutes    DECIMAL(18,2)  talk_seconds / 60, to the cent of a minute
--   cost            DECIMAL(38,6)  sum of cost (exact; where the provider gives one)
--
-- Run from the output folder (the destination root):
--   cd /var/lib/cdr-ingest && duckdb -c ".read /path/to/cdr-ingest/examples/queries/calls_per_day.sql"
-- Per provider or feed: add `provider` (or `feed`) to the SELECT list and GROUP BY.
SELECT
    date,
    count(*)                                                   AS calls,
    count(*) FILTER (WHERE outcome = 'answered')               AS answered,
    count(*) FILTER (WHERE outcome = 'voicemail')              AS voicemail,
    count(*) FILTER (WHERE outcome NOT IN ('answered', 'voicemail')) AS missed,
    count(*) FILTER (WHERE direction = 'inbound')              AS inbound,
    count(*) FILTER (WHERE direction = 'outbound')             AS outbound,
    count(*) FILTER (WHERE direction = 'internal')             AS internal,
    coalesce(sum(talk_seconds), 0)::BIGINT                     AS talk_seconds,
    round(coalesce(sum(talk_seconds), 0) / 60, 2)::DECIMAL(18, 2) AS talk_minutes,
    coalesce(sum(cost), 0)                                     AS cost
FROM read_parquet('calls/**/*.parquet', hive_partitioning = true)
GROUP BY date
ORDER BY date;
