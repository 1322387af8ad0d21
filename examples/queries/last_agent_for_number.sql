-- Question: for each outside number, which agent last spoke to it in the last 7 days
-- of data, so a returning caller can be routed to them?
--
-- A conversation is an answered call with an outside number and a known agent:
-- inbound (number = from_number; 'queue' when it came through a queue, else 'direct')
-- or outbound (number = to_number). Returns one row per number, most recent contact first:
--   number_e164         VARCHAR    the outside number in E.164 (see below)
--   last_contact_at     TIMESTAMP  start of the last conversation, UTC
--   channel             VARCHAR    'queue', 'direct' or 'outbound'
--   agent_id            VARCHAR    who talked: a queue call's agent as the queue report
--                                  names it (user id), else the SIP user (recording, CDR)
--   agent_name          VARCHAR    the agent's name, where a feed gives it
--   queue_id            VARCHAR    queue calls only
--   queue_name          VARCHAR
--   call_id             VARCHAR    the provider's id of that conversation
--   talk_seconds        BIGINT     its talk time
--   contacts_in_window  BIGINT     conversations with the number in the window
--
-- Run from the output folder (the destination root):
--   cd /var/lib/cdr-ingest && duckdb -c ".read /path/to/cdr-ingest/examples/queries/last_agent_for_number.sql"
-- The window is the 7 days before the newest call in the output; for "this week" as
-- of now use `now() - INTERVAL 7 DAY` in `win`. Numbers come in E.164 (+48…),
-- national (0…) or international (00…) form and are compared in E.164, reading
-- national numbers as the account's own country: change '+48' below to yours.
WITH calls AS (
    SELECT * FROM read_parquet('calls/**/*.parquet', hive_partitioning = true)
),
win AS (
    SELECT max(started_at) - INTERVAL 7 DAY AS since FROM calls
),
talks AS (
    SELECT
        started_at,
        CASE WHEN direction = 'outbound' THEN 'outbound'
             WHEN queue_id IS NOT NULL THEN 'queue'
             ELSE 'direct' END                                    AS channel,
        CASE WHEN direction = 'outbound' THEN to_number ELSE from_number END AS number,
        agent_id, agent_name, queue_id, queue_name, call_id, talk_seconds
    FROM calls, win
    WHERE outcome = 'answered'
      AND direction IN ('inbound', 'outbound')
      AND agent_id IS NOT NULL
      AND started_at >= win.since
),
recent AS (
    SELECT
        t.*,
        CASE WHEN NOT regexp_full_match(t.number, '\+?[0-9]{5,}') THEN NULL
             WHEN t.number LIKE '+%'  THEN t.number
             WHEN t.number LIKE '00%' THEN '+' || t.number[3:]
             WHEN t.number LIKE '0%'  THEN '+48' || t.number[2:]
             ELSE t.number END AS number_e164
    FROM talks t
)
SELECT
    number_e164,
    started_at AT TIME ZONE 'UTC'                      AS last_contact_at,
    channel,
    agent_id,
    agent_name,
    queue_id,
    queue_name,
    call_id,
    talk_seconds,
    count(*) OVER (PARTITION BY number_e164)           AS contacts_in_window
FROM recent
WHERE number_e164 IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY number_e164 ORDER BY started_at DESC, call_id DESC) = 1
ORDER BY last_contact_at DESC, number_e164;
