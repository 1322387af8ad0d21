-- Question: which inbound callers called for the first time, day by day ("has this
-- number called before?"), e.g. to greet them or hand them to onboarding?
--
-- Returns one row per (day, number) for each outside number on the day of its first
-- inbound call in the whole dataset, newest day first:
--   date                  DATE       the day of the number's first call (UTC partition)
--   number_e164           VARCHAR    the caller's number in E.164 (see below)
--   number                VARCHAR    the number as presented on that first call (from_number)
--   first_call_at         TIMESTAMP  its first call, UTC
--   first_called          VARCHAR    what that first call was for: the queue's name, or
--                                    the number dialled (did)
--   calls_that_day        BIGINT     inbound calls from the number that day
--   answered_that_day     BIGINT     of which outcome = 'answered'
--   new_callers_that_day  BIGINT     first-time callers that day (same for every row of the day)
--   days_of_history       INTEGER    days of data before this date: with 0 (the first
--                                    day in the output) every caller is "new"
--
-- Run from the output folder (the destination root):
--   cd /var/lib/cdr-ingest && duckdb -c ".read /path/to/cdr-ingest/examples/queries/first_time_callers.sql"
-- For the count per day only:
--   SELECT date, any_value(new_callers_that_day) FROM (<this query>) GROUP BY date ORDER BY date;
-- 'anonymous' and other non-numbers are left out. Numbers come in E.164 (+48…),
-- national (0…) or international (00…) form and are compared in E.164, reading
-- national numbers as the account's own country: change '+48' below to yours.
-- Note that "first in the dataset" depends on how far back the output goes
-- (retention, first ingested day).
WITH inbound AS (
    SELECT
        date,
        started_at,
        call_id,
        from_number,
        coalesce(queue_name, did) AS called,
        outcome,
        CASE WHEN NOT regexp_full_match(from_number, '\+?[0-9]{5,}') THEN NULL
             WHEN from_number LIKE '+%'  THEN from_number
             WHEN from_number LIKE '00%' THEN '+' || from_number[3:]
             WHEN from_number LIKE '0%'  THEN '+48' || from_number[2:]
             ELSE from_number END AS number_e164
    FROM read_parquet('calls/**/*.parquet', hive_partitioning = true)
    WHERE direction = 'inbound'
),
firsts AS (
    SELECT
        number_e164,
        arg_min(date, (started_at, call_id))        AS date,
        min(started_at)                             AS first_call,
        arg_min(from_number, (started_at, call_id)) AS number,
        arg_min(called, (started_at, call_id))      AS first_called
    FROM inbound
    WHERE number_e164 IS NOT NULL
    GROUP BY number_e164
),
that_day AS (
    SELECT
        number_e164,
        date,
        count(*)                                     AS calls,
        count(*) FILTER (WHERE outcome = 'answered') AS answered
    FROM inbound
    WHERE number_e164 IS NOT NULL
    GROUP BY ALL
)
SELECT
    f.date,
    f.number_e164,
    f.number,
    f.first_call AT TIME ZONE 'UTC'                      AS first_call_at,
    f.first_called,
    d.calls                                              AS calls_that_day,
    d.answered                                           AS answered_that_day,
    count(*) OVER (PARTITION BY f.date)                  AS new_callers_that_day,
    (f.date - (SELECT min(date) FROM inbound))::INTEGER  AS days_of_history
FROM firsts f
JOIN that_day d USING (number_e164, date)
ORDER BY f.date DESC, f.first_call, f.number_e164;
