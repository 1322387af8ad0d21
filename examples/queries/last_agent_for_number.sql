-- Question: for each outside number, which agent last spoke to it in the last 7 days
-- of data, so a returning caller can be routed to them?
--
-- A conversation is an answered call with an outside number:
--   'queue'    a queue call connected to an agent: the queue_user_call row with
--              t_cause = 'C' and a user_id (number = queue_call.cli);
--   'direct'   an answered inbound call to a user's own number, not through a queue
--              or an IVR (agent = cdr.dst_name, else cdr.dst);
--   'outbound' an answered outbound PSTN call (agent = cdr.src_id, number = cdr.dst).
-- Returns one row per number, most recent contact first:
--   number_e164         VARCHAR    the outside number in E.164 (see below)
--   last_contact_at     TIMESTAMP  start of the last conversation, UTC
--   channel             VARCHAR    'queue', 'direct' or 'outbound'
--   agent               VARCHAR    queue: user_id; direct: dst_name (or dst); outbound: src_id
--   agent_user_id       VARCHAR    queue_user_call.user_id (queue only)
--   agent_name          VARCHAR    direct: cdr.dst_name; outbound: the name in cdr.clid
--   agent_number        VARCHAR    direct: the user's DDI (cdr.dst); outbound: extension (cdr.src)
--   queue_id            VARCHAR    queue only
--   call_id             VARCHAR    cdr.id of that conversation
--   talk_seconds        BIGINT     its talk time (queue conn_time, else billsec)
--   contacts_in_window  BIGINT     conversations with the number in the window
--
-- Run from the output folder (the destination root):
--   cd /var/lib/cdr-ingest && duckdb -c ".read /path/to/cdr-ingest/examples/queries/last_agent_for_number.sql"
-- The window is the 7 days before the newest call in the output; for "this week" as
-- of now use `now() - INTERVAL 7 DAY` in `win`. Numbers come in E.164 (+48…),
-- national (0…) or international (00…) form and are compared in E.164, reading
-- national numbers as the PBX's own country: change '+48' below to yours. IVRs are
-- told apart by a dst_name containing 'IVR': adapt to your IVR names.
WITH cdr AS (
    SELECT * FROM read_parquet('cdr/**/*.parquet', hive_partitioning = true)
),
qc AS (
    SELECT * FROM read_parquet('queue_call/**/*.parquet', hive_partitioning = true)
),
quc AS (
    SELECT * FROM read_parquet('queue_user_call/**/*.parquet', hive_partitioning = true)
),
win AS (
    SELECT max(calldate) - INTERVAL 7 DAY AS since FROM cdr
),
talks AS (
    -- queue calls connected to an agent
    SELECT
        q.start_time AS started, 'queue' AS channel, q.cli AS number,
        u.user_id AS agent, u.user_id AS agent_user_id, NULL AS agent_name,
        NULL AS agent_number, q.queue_id, q.call_id, u.conn_time AS talk_seconds
    FROM quc u
    JOIN qc q ON q.call_id = u.call_id AND q.queue_id IS NOT DISTINCT FROM u.queue_id
    WHERE u.t_cause = 'C' AND u.user_id IS NOT NULL
    UNION ALL
    -- inbound calls answered by a user directly (not a queue, not an IVR)
    SELECT
        c.calldate, 'direct', c.src,
        coalesce(c.dst_name, c.dst), NULL, c.dst_name,
        c.dst, NULL, c.id, c.billsec
    FROM cdr c
    WHERE c.src_id IS NULL
      AND NOT (regexp_full_match(c.src, '[0-9]{2,6}') AND regexp_full_match(c.dst, '[0-9]{2,6}'))
      AND c.disposition = 'ANSWERED'
      AND coalesce(c.dst_name, '') NOT ILIKE '%IVR%'
      AND NOT EXISTS (SELECT 1 FROM qc q WHERE q.call_id = c.id)
    UNION ALL
    -- answered outbound calls
    SELECT
        c.calldate, 'outbound', c.dst,
        c.src_id, NULL, nullif(regexp_extract(c.clid, '^"(.*)" <', 1), ''),
        c.src, NULL, c.id, c.billsec
    FROM cdr c
    WHERE c.src_id IS NOT NULL
      AND c.disposition = 'ANSWERED'
),
recent AS (
    SELECT
        t.*,
        CASE WHEN NOT regexp_full_match(t.number, '\+?[0-9]{5,}') THEN NULL
             WHEN t.number LIKE '+%'  THEN t.number
             WHEN t.number LIKE '00%' THEN '+' || t.number[3:]
             WHEN t.number LIKE '0%'  THEN '+48' || t.number[2:]
             ELSE t.number END AS number_e164
    FROM talks t, win
    WHERE t.started >= win.since
)
SELECT
    number_e164,
    started AT TIME ZONE 'UTC'                              AS last_contact_at,
    channel,
    agent,
    agent_user_id,
    agent_name,
    agent_number,
    queue_id,
    call_id,
    talk_seconds,
    count(*) OVER (PARTITION BY number_e164)           AS contacts_in_window
FROM recent
WHERE number_e164 IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY number_e164 ORDER BY started DESC, call_id DESC) = 1
ORDER BY last_contact_at DESC, number_e164;
