-- Question: how many calls were made each day, how many were answered, how many
-- minutes were billed and what did they cost?
--
-- Returns one row per call date (UTC, the `date` partition), oldest first:
--   date            DATE           call date (UTC)
--   calls           BIGINT         all calls (inbound + outbound + internal)
--   answered        BIGINT         calls with disposition = 'ANSWERED'
--   inbound         BIGINT         calls from outside to one of our numbers
--   outbound        BIGINT         outbound PSTN calls (src_id is set)
--   internal        BIGINT         extension to extension
--   billsec         BIGINT         sum of billed seconds
--   billed_minutes  DECIMAL(18,2)  billsec / 60, to the cent of a minute
--   cost            DECIMAL(38,6)  sum of charge (exact; outbound PSTN calls only)
--
-- Run from the output folder (the destination root):
--   cd /var/lib/cdr-ingest && duckdb -c ".read /path/to/cdr-ingest/examples/queries/calls_per_day.sql"
-- Direction: outbound PSTN calls carry src_id; internal calls go from a short
-- extension number to another; everything else is inbound.
SELECT
    date,
    count(*)                                               AS calls,
    count(*) FILTER (WHERE disposition = 'ANSWERED')       AS answered,
    count(*) FILTER (WHERE src_id IS NULL
                       AND NOT (regexp_full_match(src, '[0-9]{2,6}')
                                AND regexp_full_match(dst, '[0-9]{2,6}')))
                                                           AS inbound,
    count(*) FILTER (WHERE src_id IS NOT NULL)             AS outbound,
    count(*) FILTER (WHERE src_id IS NULL
                       AND regexp_full_match(src, '[0-9]{2,6}')
                       AND regexp_full_match(dst, '[0-9]{2,6}'))
                                                           AS internal,
    coalesce(sum(billsec), 0)::BIGINT                      AS billsec,
    round(coalesce(sum(billsec), 0) / 60, 2)::DECIMAL(18, 2) AS billed_minutes,
    coalesce(sum(charge), 0)                               AS cost
FROM read_parquet('cdr/**/*.parquet', hive_partitioning = true)
GROUP BY date
ORDER BY date;
