-- Question: per queue, how long do callers wait and how many give up (abandon)?
--
-- Returns one row per queue_id (all days together), most calls first:
--   queue_id              VARCHAR        queue identifier
--   queue_name            VARCHAR        its name, where a feed gives it
--   calls                 BIGINT         calls that entered the queue
--   connected             BIGINT         answered by an agent (outcome 'answered', agent known)
--   abandoned             BIGINT         the caller hung up while waiting (outcome 'abandoned')
--   abandonment_rate_pct  DECIMAL(5,1)   abandoned / calls, percent
--   to_voicemail          BIGINT         outcome 'voicemail'
--   avg_wait              DECIMAL(10,1)  seconds in the queue, all calls
--   max_wait              BIGINT         longest wait, seconds
--   avg_wait_abandoned    DECIMAL(10,1)  seconds abandoned callers waited before hanging up
--   avg_talk_time         DECIMAL(10,1)  talk time of connected calls, seconds
--
-- Run from the output folder (the destination root):
--   cd /var/lib/cdr-ingest && duckdb -c ".read /path/to/cdr-ingest/examples/queries/queue_wait_and_abandonment.sql"
-- Per day as well: add `date` to the SELECT list (GROUP BY ALL picks it up).
SELECT
    queue_id,
    mode(queue_name)                                                       AS queue_name,
    count(*)                                                               AS calls,
    count(*) FILTER (WHERE outcome = 'answered' AND agent_id IS NOT NULL)  AS connected,
    count(*) FILTER (WHERE outcome = 'abandoned')                          AS abandoned,
    round(100.0 * count(*) FILTER (WHERE outcome = 'abandoned') / count(*), 1)::DECIMAL(5, 1)
                                                                           AS abandonment_rate_pct,
    count(*) FILTER (WHERE outcome = 'voicemail')                          AS to_voicemail,
    round(avg(wait_seconds), 1)::DECIMAL(10, 1)                            AS avg_wait,
    max(wait_seconds)                                                      AS max_wait,
    round(avg(wait_seconds) FILTER (WHERE outcome = 'abandoned'), 1)::DECIMAL(10, 1)
                                                                           AS avg_wait_abandoned,
    round(avg(talk_seconds) FILTER (WHERE outcome = 'answered' AND agent_id IS NOT NULL), 1)::DECIMAL(10, 1)
                                                                           AS avg_talk_time
FROM read_parquet('calls/**/*.parquet', hive_partitioning = true)
WHERE queue_id IS NOT NULL
GROUP BY queue_id
ORDER BY calls DESC, queue_id;
