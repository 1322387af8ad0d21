-- Question: for outbound calls to the public network, how often is each destination
-- (country / mobile network) answered, how many minutes are billed and what does it cost?
--
-- Returns one row per `destination` (the provider's destination name; '(unknown)'
-- when an outbound call has none), most calls first:
--   destination      VARCHAR        e.g. 'Poland', 'Germany Mobile', 'USA'
--   calls            BIGINT         outbound PSTN calls (src_id is set)
--   answered         BIGINT         of which disposition = 'ANSWERED'
--   answer_rate_pct  DECIMAL(5,1)   answered / calls, percent
--   billsec          BIGINT         billed seconds
--   billed_minutes   DECIMAL(18,2)  billsec / 60
--   cost             DECIMAL(38,6)  sum of charge (exact)
--   cost_per_minute  DECIMAL(18,4)  cost / billed minutes (NULL when nothing was billed)
--
-- Run from the output folder (the destination root):
--   cd /var/lib/cdr-ingest && duckdb -c ".read /path/to/cdr-ingest/examples/queries/answer_rate_by_destination.sql"
-- Add e.g. `AND date >= DATE '2024-03-01'` to the WHERE clause for one period.
SELECT
    coalesce(destination, '(unknown)')                                       AS destination,
    count(*)                                                                 AS calls,
    count(*) FILTER (WHERE disposition = 'ANSWERED')                         AS answered,
    round(100.0 * count(*) FILTER (WHERE disposition = 'ANSWERED') / count(*), 1)::DECIMAL(5, 1)
                                                                             AS answer_rate_pct,
    coalesce(sum(billsec), 0)::BIGINT                                        AS billsec,
    round(coalesce(sum(billsec), 0) / 60, 2)::DECIMAL(18, 2)                 AS billed_minutes,
    coalesce(sum(charge), 0)                                                 AS cost,
    round(sum(charge) * 60 / nullif(sum(billsec), 0), 4)::DECIMAL(18, 4)     AS cost_per_minute
FROM read_parquet('cdr/**/*.parquet', hive_partitioning = true)
WHERE src_id IS NOT NULL
GROUP BY ALL
ORDER BY calls DESC, destination;
