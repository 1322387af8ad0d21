-- Question: at which hours of the day (UTC) do calls come and go? Busiest first.
--
-- Returns 24 rows, one per hour of day 0..23 (hours without calls included, with 0):
--   hour               INTEGER        hour of started_at, UTC
--   calls              BIGINT         calls started in that hour, all days together
--   answered           BIGINT         of which outcome = 'answered'
--   inbound            BIGINT         of which direction = 'inbound'
--   share_pct          DECIMAL(5,1)   calls in that hour / all calls, percent
--   avg_calls_per_day  DECIMAL(10,1)  calls / number of call dates in the data
-- Ordered by calls descending, then hour.
--
-- Run from the output folder (the destination root):
--   cd /var/lib/cdr-ingest && duckdb -c ".read /path/to/cdr-ingest/examples/queries/busiest_hours.sql"
-- `started_at` is a UTC instant; `AT TIME ZONE 'UTC'` keeps the hour in UTC whatever the
-- session's TimeZone (use e.g. 'Europe/Warsaw' instead for local office hours).
WITH c AS (
    SELECT hour(started_at AT TIME ZONE 'UTC') AS hour, date, outcome, direction
    FROM read_parquet('calls/**/*.parquet', hive_partitioning = true)
),
per_hour AS (
    SELECT
        hour,
        count(*)                                       AS calls,
        count(*) FILTER (WHERE outcome = 'answered')   AS answered,
        count(*) FILTER (WHERE direction = 'inbound')  AS inbound
    FROM c
    GROUP BY hour
),
totals AS (
    SELECT count(*) AS calls, count(DISTINCT date) AS days FROM c
)
SELECT
    h.hour::INTEGER                                                         AS hour,
    coalesce(p.calls, 0)                                                    AS calls,
    coalesce(p.answered, 0)                                                 AS answered,
    coalesce(p.inbound, 0)                                                  AS inbound,
    round(100.0 * coalesce(p.calls, 0) / nullif(t.calls, 0), 1)::DECIMAL(5, 1) AS share_pct,
    round(coalesce(p.calls, 0) / nullif(t.days, 0), 1)::DECIMAL(10, 1)     AS avg_calls_per_day
FROM range(24) AS h(hour)
CROSS JOIN totals t
LEFT JOIN per_hour p ON p.hour = h.hour
ORDER BY calls DESC, hour;
