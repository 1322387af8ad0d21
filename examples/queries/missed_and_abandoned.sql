-- Question: which inbound calls did we miss (callers who hung up in a queue, or who
-- reached a mailbox, included), and whom should we call back, on which number, and
-- since when are they waiting?
--
-- Returns one row per inbound call whose outcome is not 'answered', newest first:
--   date             DATE       call date (UTC partition)
--   started_at       TIMESTAMP  when the caller called, UTC
--   call_id          VARCHAR    the provider's call id
--   kind             VARCHAR    'abandoned in queue', 'voicemail' or 'missed'
--   callback_number  VARCHAR    the caller's number (from_number), as presented
--   can_call_back    BOOLEAN    false for 'anonymous' / withheld numbers
--   called_number    VARCHAR    the number they dialled (did)
--   queue_id         VARCHAR    the queue they waited in (queue calls only)
--   queue_name       VARCHAR
--   wait_seconds     BIGINT     seconds they waited in the queue
--   outcome          VARCHAR    no_answer, busy, cancelled, abandoned, voicemail, failed, …
--   outcome_detail   VARCHAR    the provider's own code
--   callback_e164    VARCHAR    the number in E.164 (see below), to match our calls back;
--                               NULL for 'anonymous' and other non-numbers
--   contacted_later  TIMESTAMP  first later answered call with that number, UTC: they called
--                               again and got through, or we called them back
--                               (NULL: nobody has spoken to them since)
--
-- Run from the output folder (the destination root):
--   cd /var/lib/cdr-ingest && duckdb -c ".read /path/to/cdr-ingest/examples/queries/missed_and_abandoned.sql"
-- For a call-back list add `WHERE can_call_back AND contacted_later IS NULL` before the
-- final ORDER BY; for an alert, `WHERE m.started_at >= (now() AT TIME ZONE 'UTC') - INTERVAL 1 HOUR`.
-- Numbers come in E.164 (+48…), national (0…) or international (00…) form; they are
-- matched in E.164, reading national numbers as the account's own country: change
-- '+48' (twice below) to yours.
WITH calls AS (
    SELECT * FROM read_parquet('calls/**/*.parquet', hive_partitioning = true)
),
talks_e164 AS (   -- answered calls with an outside number: inbound from it, outbound to it
    SELECT started_at,
           CASE WHEN NOT regexp_full_match(number, '\+?[0-9]{5,}') THEN NULL
                WHEN number LIKE '+%'  THEN number
                WHEN number LIKE '00%' THEN '+' || number[3:]
                WHEN number LIKE '0%'  THEN '+48' || number[2:]
                ELSE number END AS number_e164
    FROM (
        SELECT started_at,
               CASE WHEN direction = 'outbound' THEN to_number ELSE from_number END AS number
        FROM calls
        WHERE outcome = 'answered' AND direction IN ('inbound', 'outbound')
    )
),
missed AS (
    SELECT
        date,
        started_at AT TIME ZONE 'UTC'                         AS started_at,
        call_id,
        CASE outcome WHEN 'abandoned' THEN 'abandoned in queue'
                     WHEN 'voicemail' THEN 'voicemail'
                     ELSE 'missed' END                        AS kind,
        from_number                                           AS callback_number,
        did                                                   AS called_number,
        queue_id,
        queue_name,
        wait_seconds,
        outcome,
        outcome_detail,
        CASE WHEN NOT regexp_full_match(from_number, '\+?[0-9]{5,}') THEN NULL
             WHEN from_number LIKE '+%'  THEN from_number
             WHEN from_number LIKE '00%' THEN '+' || from_number[3:]
             WHEN from_number LIKE '0%'  THEN '+48' || from_number[2:]
             ELSE from_number END                             AS callback_e164
    FROM calls
    WHERE direction = 'inbound' AND outcome <> 'answered'
)
SELECT
    m.date,
    m.started_at,
    m.call_id,
    m.kind,
    m.callback_number,
    m.callback_e164 IS NOT NULL                                  AS can_call_back,
    m.called_number,
    m.queue_id,
    m.queue_name,
    m.wait_seconds,
    m.outcome,
    m.outcome_detail,
    m.callback_e164,
    (SELECT min(t.started_at) AT TIME ZONE 'UTC'
       FROM talks_e164 t
      WHERE t.number_e164 = m.callback_e164
        AND t.started_at AT TIME ZONE 'UTC' > m.started_at)      AS contacted_later
FROM missed m
ORDER BY m.started_at DESC, m.call_id;
