-- Question: which inbound calls did we miss (callers who hung up in a queue included),
-- and whom should we call back, on which number, and since when are they waiting?
--
-- Returns one row per missed inbound call (disposition other than 'ANSWERED'), an
-- abandoned queue call (queue_call.t_cause = 'H') being one of them, newest first:
--   date             DATE       call date (UTC partition)
--   calldate         TIMESTAMP  when the caller called, UTC
--   call_id          VARCHAR    cdr.id (= queue_call.call_id)
--   kind             VARCHAR    'abandoned in queue' or 'missed'
--   callback_number  VARCHAR    the caller's number (cdr.src), as presented
--   can_call_back    BOOLEAN    false for 'anonymous' / withheld numbers
--   called_number    VARCHAR    the number they dialled (our DDI: cdr.dst)
--   called_name      VARCHAR    whom they tried to reach (user, queue or IVR name)
--   disposition      VARCHAR    'NO ANSWER', 'BUSY', 'FAILED'…
--   t_cause          VARCHAR    the CDR's termination cause
--   queue_id         VARCHAR    queue the call waited in (queue calls only)
--   hold_time        BIGINT     seconds the caller waited in the queue before hanging up
--   callback_e164    VARCHAR    the number in E.164 (see below), to match our calls back;
--                               NULL for 'anonymous' and other non-numbers
--   contacted_later  TIMESTAMP  first later ANSWERED call with that number, UTC: they called
--                               again and got through, or we called them back
--                               (NULL: nobody has spoken to them since)
--
-- Run from the output folder (the destination root):
--   cd /var/lib/cdr-ingest && duckdb -c ".read /path/to/cdr-ingest/examples/queries/missed_and_abandoned.sql"
-- For a call-back list add `WHERE can_call_back AND contacted_later IS NULL` before the
-- final ORDER BY; for an alert, `WHERE m.calldate >= (now() AT TIME ZONE 'UTC') - INTERVAL 1 HOUR`.
-- An abandoned queue call whose CDR is not in the output (e.g. shorter cdr retention)
-- is still listed, with the queue's cli as the number.
-- Numbers come in E.164 (+48…), national (0…) or international (00…) form; they are
-- matched in E.164, reading national numbers as the PBX's own country: change '+48'
-- (twice below) to yours.
WITH cdr AS (
    SELECT * FROM read_parquet('cdr/**/*.parquet', hive_partitioning = true)
),
qc AS (
    SELECT * FROM read_parquet('queue_call/**/*.parquet', hive_partitioning = true)
),
inbound AS (
    SELECT *
    FROM cdr
    WHERE src_id IS NULL
      AND NOT (regexp_full_match(src, '[0-9]{2,6}') AND regexp_full_match(dst, '[0-9]{2,6}'))
),
talks AS (   -- answered calls with an outside number: inbound from it, outbound to it
    SELECT calldate, src AS number FROM inbound WHERE disposition = 'ANSWERED'
    UNION ALL
    SELECT calldate, dst FROM cdr WHERE src_id IS NOT NULL AND disposition = 'ANSWERED'
),
talks_e164 AS (
    SELECT calldate,
           CASE WHEN NOT regexp_full_match(number, '\+?[0-9]{5,}') THEN NULL
                WHEN number LIKE '+%'  THEN number
                WHEN number LIKE '00%' THEN '+' || number[3:]
                WHEN number LIKE '0%'  THEN '+48' || number[2:]
                ELSE number END AS number_e164
    FROM talks
),
missed AS (
    SELECT
        c.date,
        c.calldate AT TIME ZONE 'UTC'                             AS calldate,
        c.id                                                      AS call_id,
        CASE WHEN q.t_cause = 'H' THEN 'abandoned in queue' ELSE 'missed' END AS kind,
        c.src                                                     AS callback_number,
        c.dst                                                     AS called_number,
        c.dst_name                                                AS called_name,
        c.disposition,
        c.t_cause,
        q.queue_id,
        q.hold_time
    FROM inbound c
    LEFT JOIN qc q ON q.call_id = c.id
    WHERE c.disposition IS DISTINCT FROM 'ANSWERED'
    UNION ALL
    SELECT
        q.date,
        q.start_time AT TIME ZONE 'UTC',
        q.call_id,
        'abandoned in queue',
        q.cli,
        q.ddi,
        NULL,
        NULL,
        NULL,
        q.queue_id,
        q.hold_time
    FROM qc q
    WHERE q.t_cause = 'H'
      AND NOT EXISTS (SELECT 1 FROM cdr c WHERE c.id = q.call_id)
)
SELECT
    m.date,
    m.calldate,
    m.call_id,
    m.kind,
    m.callback_number,
    m.callback_e164 IS NOT NULL                                  AS can_call_back,
    m.called_number,
    m.called_name,
    m.disposition,
    m.t_cause,
    m.queue_id,
    m.hold_time,
    m.callback_e164,
    (SELECT min(t.calldate) AT TIME ZONE 'UTC'
       FROM talks_e164 t
      WHERE t.number_e164 = m.callback_e164
        AND t.calldate AT TIME ZONE 'UTC' > m.calldate)          AS contacted_later
FROM (
    SELECT *,
           CASE WHEN NOT regexp_full_match(callback_number, '\+?[0-9]{5,}') THEN NULL
                WHEN callback_number LIKE '+%'  THEN callback_number
                WHEN callback_number LIKE '00%' THEN '+' || callback_number[3:]
                WHEN callback_number LIKE '0%'  THEN '+48' || callback_number[2:]
                ELSE callback_number END AS callback_e164
    FROM missed
) m
ORDER BY m.calldate DESC, m.call_id;
