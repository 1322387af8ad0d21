-- Question: per queue, how long do callers wait and how many give up (abandon)?
--
-- Returns one row per queue_id (all days together), most calls first:
--   queue_id              VARCHAR        queue identifier
--   queue_name            VARCHAR        the queue's name as the CDRs call it (cdr.dst_name
--                                        of its calls; NULL if no CDR is in the output)
--   calls                 BIGINT         calls that entered the queue (queue_call rows)
--   connected             BIGINT         connected to an agent (final_dst_type 'U', t_cause 'C')
--   abandoned             BIGINT         caller hung up while waiting (t_cause 'H')
--   abandonment_rate_pct  DECIMAL(5,1)   abandoned / calls, percent
--   to_voicemail          BIGINT         sent to voicemail (final_dst_type 'V')
--   to_other_queue        BIGINT         passed to another queue ('Q')
--   to_ivr                BIGINT         sent to an IVR ('R')
--   avg_hold_time         DECIMAL(10,1)  seconds in the queue, all calls
--   max_hold_time         BIGINT         longest wait, seconds
--   avg_hold_abandoned    DECIMAL(10,1)  seconds abandoned callers waited before hanging up
--   avg_talk_time         DECIMAL(10,1)  conn_time of connected calls, seconds
--
-- Run from the output folder (the destination root):
--   cd /var/lib/cdr-ingest && duckdb -c ".read /path/to/cdr-ingest/examples/queries/queue_wait_and_abandonment.sql"
-- Per day as well: add `q.date` to the SELECT list (GROUP BY ALL picks it up).
WITH qc AS (
    SELECT * FROM read_parquet('queue_call/**/*.parquet', hive_partitioning = true)
),
names AS (
    SELECT q.queue_id, mode(c.dst_name) AS queue_name
    FROM qc q
    JOIN read_parquet('cdr/**/*.parquet', hive_partitioning = true) c ON c.id = q.call_id
    GROUP BY q.queue_id
)
SELECT
    q.queue_id,
    n.queue_name,
    count(*)                                                               AS calls,
    count(*) FILTER (WHERE q.final_dst_type = 'U' AND q.t_cause = 'C')     AS connected,
    count(*) FILTER (WHERE q.t_cause = 'H')                                AS abandoned,
    round(100.0 * count(*) FILTER (WHERE q.t_cause = 'H') / count(*), 1)::DECIMAL(5, 1)
                                                                           AS abandonment_rate_pct,
    count(*) FILTER (WHERE q.final_dst_type = 'V')                         AS to_voicemail,
    count(*) FILTER (WHERE q.final_dst_type = 'Q')                         AS to_other_queue,
    count(*) FILTER (WHERE q.final_dst_type = 'R')                         AS to_ivr,
    round(avg(q.hold_time), 1)::DECIMAL(10, 1)                             AS avg_hold_time,
    max(q.hold_time)                                                       AS max_hold_time,
    round(avg(q.hold_time) FILTER (WHERE q.t_cause = 'H'), 1)::DECIMAL(10, 1) AS avg_hold_abandoned,
    round(avg(q.conn_time) FILTER (WHERE q.final_dst_type = 'U' AND q.t_cause = 'C'), 1)::DECIMAL(10, 1)
                                                                           AS avg_talk_time
FROM qc q
LEFT JOIN names n USING (queue_id)
GROUP BY ALL
ORDER BY calls DESC, q.queue_id;
