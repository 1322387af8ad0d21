-- Question: for outbound calls, how often is each destination (country / mobile
-- network) answered, how many minutes are talked and what does it cost?
--
-- Returns one row per `destination` (the provider's name for where the call went;
-- '(unknown)' when it gives none), most calls first:
--   destination      VARCHAR        e.g. 'Poland', 'Germany Mobile', 'USA'
--   calls            BIGINT         outbound calls
--   answered         BIGINT         of which outcome = 'answered'
--   answer_rate_pct  DECIMAL(5,1)   answered / calls, percent
--   talk_seconds     BIGINT         talk time
--   talk_minutes     DECIMAL(18,2)  talk_seconds / 60
--   cost             DECIMAL(38,6)  sum of cost (exact)
--   cost_per_minute  DECIMAL(18,4)  cost / talk minutes (NULL when nobody talked)
--
-- Run from the output folder (the destination root):
--   cd /var/lib/cdr-ingest && duckdb -c ".read /path/to/cdr-ingest/examples/queries/answer_rate_by_destination.sql"
-- Add e.g. `AND date >= DATE '2024-03-01'` to the WHERE clause for one period.
SELECT
    coalesce(destination, '(unknown)')                                       AS destination,
    count(*)                                                                 AS calls,
    count(*) FILTER (WHERE outcome = 'answered')                             AS answered,
    round(100.0 * count(*) FILTER (WHERE outcome = 'answered') / count(*), 1)::DECIMAL(5, 1)
                                                                             AS answer_rate_pct,
    coalesce(sum(talk_seconds), 0)::BIGINT                                   AS talk_seconds,
    round(coalesce(sum(talk_seconds), 0) / 60, 2)::DECIMAL(18, 2)            AS talk_minutes,
    coalesce(sum(cost), 0)                                                   AS cost,
    round(sum(cost) * 60 / nullif(sum(talk_seconds), 0), 4)::DECIMAL(18, 4)  AS cost_per_minute
FROM read_parquet('calls/**/*.parquet', hive_partitioning = true)
WHERE direction = 'outbound'
GROUP BY ALL
ORDER BY calls DESC, destination;
