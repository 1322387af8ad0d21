#!/usr/bin/env python3
"""Run every example query against an ingested output and check the known answers.

    python3 scripts/check_queries.py OUTPUT_DIR MANIFEST_JSON [--queries DIR] [--timezone TZ]

OUTPUT_DIR is a local destination folder written by `cdr-ingest run` (the queries
use relative globs such as `calls/**/*.parquet`, so the script changes into it).
MANIFEST_JSON is what `cdr-ingest generate --manifest M.json` wrote for the drop
that was ingested. Use a drop generated WITHOUT `--quirks` for the exact checks:
with quirks the first day's file repeats the last calls of the day before the
range, which the worker rightly writes under that earlier date, outside the
manifest.

Every `*.sql` file in examples/queries (or --queries) must start with a `--`
comment, run, and return rows. The queries read the normalized `calls` dataset
only, so the same SQL answers for every provider and feed: each provider found in
`calls` is checked on its own (its rows copied into a view folder, the queries run
there). The hosted PBX (`cdr`, `queue`, `recordings`) gets every check below; the
providers of the other feeds (`contact_center_ai`: voice sessions; the call-history
exports' `cloud_contact_center`; `push_pbx`: records pushed to `serve`) get the
calls, answered, voicemail and missed calls per day (and talk seconds and cost for
pushed records) of `calls_per_day.sql`, the total of `busiest_hours.sql`, and one
row per call, against what their generators put in the manifest. For the questions whose
answers the generator knows (calls, answered, talk seconds/minutes and cost per day;
calls per hour; calls, answered, talk seconds and cost per destination; missed
inbound and abandoned queue calls; queue calls, connected and abandoned; calls with
a recording) the results must match the manifest exactly; money is compared as
exact decimals (`cost * 10000` against `*_charge_e4`). With `--quirks`, a call whose
CDR row was set aside still has its `calls` row from the queue report or its
recording: the checks count those rows in, and check they are no more than the rows
set aside. The other queries get consistency checks.

The queries run with the session TimeZone set to --timezone (default
America/Los_Angeles, deliberately not UTC) to prove that their hours and
timestamps are UTC whatever the session's zone.

Prints one line per check (`ok` or `MISMATCH`, with the values) and exits 1 on
any mismatch or query error, 0 otherwise. Needs the `duckdb` Python package
(`pip install duckdb==1.4.4`).
"""

import argparse
import collections
import datetime
import json
import os
import sys
import tempfile
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

try:
    import duckdb
except ImportError:  # pragma: no cover
    sys.exit("check_queries.py: the duckdb package is missing: pip install duckdb==1.4.4")

# Columns each query must return (a subset; more are allowed).
EXPECTED_COLUMNS = {
    "calls_per_day.sql": ["date", "calls", "answered", "voicemail", "missed", "inbound",
                          "outbound", "internal", "talk_seconds", "talk_minutes", "cost"],
    "busiest_hours.sql": ["hour", "calls", "answered"],
    "answer_rate_by_destination.sql": ["destination", "calls", "answered", "answer_rate_pct",
                                       "talk_seconds", "talk_minutes", "cost"],
    "missed_and_abandoned.sql": ["date", "started_at", "call_id", "kind", "callback_number",
                                 "outcome", "queue_id"],
    "first_time_callers.sql": ["date", "number_e164", "first_call_at", "new_callers_that_day"],
    "last_agent_for_number.sql": ["number_e164", "last_contact_at", "channel", "agent_id",
                                  "call_id"],
    "queue_wait_and_abandonment.sql": ["queue_id", "queue_name", "calls", "connected", "abandoned",
                                       "abandonment_rate_pct", "avg_wait", "max_wait"],
    "calls_with_recording.sql": ["call_id", "started_at", "object_key"],
}


class Checker:
    def __init__(self):
        self.failures = 0
        self.passed = 0

    def check(self, name, got, want):
        if got == want:
            self.passed += 1
            print(f"ok       {name}: {fmt(got)}")
        else:
            self.failures += 1
            if isinstance(got, (set, frozenset)) and isinstance(want, (set, frozenset)):
                print(f"MISMATCH {name}: only in the output {fmt(got - want)}, "
                      f"only in the manifest {fmt(want - got)}")
            else:
                print(f"MISMATCH {name}: got {fmt(got)}, want {fmt(want)}")
        return got == want

    def true(self, name, cond, detail=""):
        if cond:
            self.passed += 1
            print(f"ok       {name}" + (f": {detail}" if detail else ""))
        else:
            self.failures += 1
            print(f"MISMATCH {name}" + (f": {detail}" if detail else ""))
        return cond

    def error(self, name, err):
        self.failures += 1
        print(f"ERROR    {name}: {err}")


def fmt(v):
    if isinstance(v, (set, frozenset)):
        v = sorted(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {v[k]}" for k in sorted(v)) + "}"
    if isinstance(v, list) and len(v) > 12:
        return f"[{', '.join(map(str, v[:12]))}, … ({len(v)} items)]"
    return str(v)


def minutes_2dp(billsec):
    """billsec / 60 rounded to 0.01 (half up; with /60 there are never exact ties)."""
    return (Decimal(Fraction(billsec, 60).numerator) / Decimal(Fraction(billsec, 60).denominator)
            ).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def as_e4(cost):
    """An exact decimal cost in units of 0.0001; the cost must be a whole number of them."""
    if cost is None:
        return 0
    d = Decimal(cost) * 10000
    return int(d) if d == d.to_integral_value() else d


def run(con, path):
    cur = con.execute(path.read_text())
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()], cols


def main():
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("output_dir")
    ap.add_argument("manifest")
    ap.add_argument("--queries", default=str(here.parent / "examples" / "queries"))
    ap.add_argument("--timezone", default="America/Los_Angeles")
    ap.add_argument("--manifest-days-only", action="store_true",
                    help="query only the manifest's date= partitions")
    args = ap.parse_args()

    manifest = json.loads(Path(args.manifest).read_text())
    days = {d["date"]: d for d in manifest["days"]}
    # The CDR checks also expect the calls of the day before the range that the first
    # file repeats (the queue and recording checks have nothing of that day).
    cdr_days = dict(days)
    before = manifest.get("before_range")
    if before and not args.manifest_days_only:
        cdr_days[before["date"]] = before
    queries = sorted(Path(args.queries).resolve().glob("*.sql"))
    out = Path(args.output_dir).resolve()
    if args.manifest_days_only:
        tmp = tempfile.TemporaryDirectory(prefix="check_queries.")
        view = Path(tmp.name)
        for dataset in ("calls", "cdr", "queue_call", "queue_user_call", "recording_index"):
            (view / dataset).mkdir()
            for part in sorted((out / dataset).glob("date=*")):
                if part.name[len("date="):] in days:
                    # DuckDB's ** does not descend into linked folders: link the files
                    (view / dataset / part.name).mkdir()
                    for f in part.glob("*.parquet"):
                        (view / dataset / part.name / f.name).symlink_to(f)
        if (out / "recordings").is_dir():
            (view / "recordings").symlink_to(out / "recordings")
        print(f"# querying {view}: the manifest's days of {out}")
        out = view
    c = Checker()
    c.true("query files found", len(queries) > 0, f"{len(queries)} in {args.queries}")
    for name in EXPECTED_COLUMNS:
        c.true(f"{name} exists", any(q.name == name for q in queries))

    con = duckdb.connect()
    con.execute(f"SET TimeZone = '{args.timezone}'")
    print(f"# session TimeZone = {args.timezone}; output = {out}")
    providers = [p for (p,) in con.execute(
        f"SELECT DISTINCT provider FROM read_parquet('{out}/calls/**/*.parquet', "
        "hive_partitioning = true) ORDER BY 1").fetchall()]
    c.true("calls: the hosted PBX's calls are there", "hosted_pbx" in providers,
           ", ".join(providers))
    views = tempfile.TemporaryDirectory(prefix="check_queries.providers.")
    for provider in providers:
        view = Path(views.name) / provider
        view.mkdir()
        con.execute(f"""COPY (SELECT * EXCLUDE (date), date::VARCHAR AS date
                              FROM read_parquet('{out}/calls/**/*.parquet', hive_partitioning = true)
                              WHERE provider = '{provider}')
                        TO '{view}/calls' (FORMAT parquet, PARTITION_BY (date))""")
        for other in out.iterdir():
            if other.name != "calls":
                (view / other.name).symlink_to(other)
        os.chdir(view)
        print(f"# provider {provider}: {view}")
        if provider == "hosted_pbx":
            check_hosted_pbx(c, con, queries, days, cdr_days, out)
        else:
            check_other(c, con, queries, provider, days)
    os.chdir("/")
    views.cleanup()
    print(f"# {c.passed} ok, {c.failures} failed")
    con.close()
    if args.manifest_days_only:
        tmp.cleanup()
    return 1 if c.failures else 0


def run_all(c, con, queries, prefix):
    """Each query's rows, by file name, for those that ran with their columns."""
    results = {}
    for q in queries:
        text = q.read_text()
        c.true(f"{prefix}{q.name}: starts with a -- comment", text.lstrip().startswith("--"))
        try:
            rows, cols = run(con, q)
        except Exception as e:  # noqa: BLE001 - report any query failure
            c.error(f"{prefix}{q.name}: runs", str(e).splitlines()[0])
            continue
        if prefix:
            # Not every provider has queues, recordings or outbound destinations.
            c.true(f"{prefix}{q.name}: runs", True, f"{len(rows)} rows")
        else:
            c.true(f"{q.name}: runs and returns rows", len(rows) > 0, f"{len(rows)} rows")
        missing = [col for col in EXPECTED_COLUMNS.get(q.name, []) if col not in cols]
        c.true(f"{prefix}{q.name}: has columns", not missing,
               f"missing {missing}" if missing else ", ".join(cols))
        if not missing and rows:
            results[q.name] = rows
    return results


def voice_answers(provider, m):
    """What the manifest says of a provider's calls of one day, or None without any:
    (calls, answered, voicemail, talk seconds or None, cost in 0.0001 or None)."""
    if provider == "contact_center_ai":
        per = m["sessions"]["voice_per_status"]
        voicemail = per.get("voicemail", 0) + per.get("voicemail_received", 0)
        return (sum(per.values()), per.get("finished", 0), voicemail, None, None)
    if provider == "cloud_contact_center":
        return (m["call_history_calls"], m["call_history_answered"], None, None, None)
    if provider == "push_pbx":
        per = m["push_calls_per_status"]
        return (sum(per.values()), per.get("ANSWER", 0), per.get("VOICEMAIL", 0),
                m["push_talk_seconds"], 100 * m["push_price_agorot"])
    return None


def check_other(c, con, queries, provider, days):
    """A provider of the other feeds: the per-day answers its generator knows."""
    p = f"{provider} "
    results = run_all(c, con, queries, p)
    want = {d: voice_answers(provider, m) for d, m in days.items()}
    want = {d: w for d, w in want.items() if w is not None and w[0] > 0}
    c.true(f"{p}the manifest knows its calls", bool(want) or voice_answers(provider, {}) is None)
    (repeated,) = con.execute("""SELECT count(*) - count(DISTINCT (provider, call_id))
        FROM read_parquet('calls/**/*.parquet', hive_partitioning = true)""").fetchone()
    c.check(f"{p}calls: one row per call", repeated, 0)
    rows = results.get("calls_per_day.sql", [])
    by_day = {str(r["date"]): r for r in rows}
    # The call-history export of the first day also covers the evening before it,
    # which the manifest does not count.
    first = min(days)
    c.check(f"{p}calls_per_day: dates", {d for d in by_day if d >= first}, set(want))
    for date, (calls, answered, voicemail, talk, cost) in sorted(want.items()):
        r = by_day.get(date)
        if r is None:
            continue
        q = f"{p}calls_per_day {date}"
        c.check(f"{q} calls", r["calls"], calls)
        c.check(f"{q} answered", r["answered"], answered)
        if voicemail is not None:
            c.check(f"{q} voicemail", r["voicemail"], voicemail)
            c.check(f"{q} missed", r["missed"], calls - answered - voicemail)
        if talk is not None:
            c.check(f"{q} talk_seconds", int(r["talk_seconds"]), talk)
        if cost is not None:
            c.check(f"{q} cost*10000", as_e4(r["cost"]), cost)
    hours = results.get("busiest_hours.sql", [])
    c.check(f"{p}busiest_hours: total calls = calls_per_day's", sum(r["calls"] for r in hours),
            sum(r["calls"] for r in rows))


def check_hosted_pbx(c, con, queries, days, cdr_days, out):
    """The hosted PBX's three feeds: every answer the manifest knows."""
    results = run_all(c, con, queries, "")

    # Rows of `calls` the CDR file does not have (its copy of the call was set aside in
    # the quarantine, but the queue report or a recording knows the call): the checks
    # of the CDR's numbers add them, and there are never more than the rows set aside.
    def extra(select, group):
        sql = f"""SELECT {group}, {select}
                  FROM read_parquet('calls/**/*.parquet', hive_partitioning = true)
                  WHERE feed <> 'cdr' GROUP BY ALL"""
        return {str(r[0]): r[1:] for r in con.execute(sql).fetchall()}

    (extras,) = con.execute("""SELECT count(*) FROM read_parquet('calls/**/*.parquet',
        hive_partitioning = true) WHERE feed <> 'cdr'""").fetchone()
    c.true("calls: rows without a CDR are at most the CDR rows set aside", extras <= sum(
        m["cdr_bad_rows"] for m in days.values()), f"{extras} rows")
    (repeated,) = con.execute("""SELECT count(*) - count(DISTINCT (provider, call_id))
        FROM read_parquet('calls/**/*.parquet', hive_partitioning = true)""").fetchone()
    c.check("calls: one row per call", repeated, 0)

    # ---------------------------------------------------------------- calls_per_day
    rows = results.get("calls_per_day.sql")
    if rows:
        by_day = {str(r["date"]): r for r in rows}
        c.check("calls_per_day: dates", set(by_day), set(cdr_days))
        more = extra("""count(*), count(*) FILTER (WHERE outcome IN ('answered', 'voicemail')),
                        count(*) FILTER (WHERE direction = 'inbound'),
                        coalesce(sum(talk_seconds), 0)""", "date")
        for date, m in sorted(cdr_days.items()):
            r = by_day.get(date)
            if r is None:
                continue
            (x_calls, x_answered, x_inbound, x_talk) = more.get(date, (0, 0, 0, 0))
            p = f"calls_per_day {date}"
            c.check(f"{p} calls", r["calls"], m["calls"] + x_calls)
            c.check(f"{p} answered + voicemail (the CDR's ANSWERED)",
                    r["answered"] + r["voicemail"], m["calls_answered"] + x_answered)
            c.check(f"{p} missed", r["missed"], m["calls"] + x_calls - m["calls_answered"] - x_answered)
            c.check(f"{p} inbound", r["inbound"], m["calls_inbound"] + x_inbound)
            c.check(f"{p} outbound", r["outbound"], m["calls_outbound"])
            c.check(f"{p} internal", r["internal"], m["calls_internal"])
            c.check(f"{p} talk_seconds", int(r["talk_seconds"]), m["total_billsec"] + int(x_talk))
            c.check(f"{p} talk_minutes", Decimal(r["talk_minutes"]),
                    minutes_2dp(m["total_billsec"] + int(x_talk)))
            c.check(f"{p} cost*10000", as_e4(r["cost"]), m["total_charge_e4"])
        total = sum(m["calls"] for m in cdr_days.values()) + extras
        c.check("calls_per_day: total calls", sum(r["calls"] for r in rows), total)

    # ---------------------------------------------------------------- busiest_hours
    rows = results.get("busiest_hours.sql")
    if rows:
        more = extra("count(*)", "hour(started_at AT TIME ZONE 'UTC')")
        want = [sum(m["calls_per_hour"][h] for m in cdr_days.values()) + more.get(str(h), (0,))[0]
                for h in range(24)]
        c.check("busiest_hours: hours 0..23 once each", sorted(r["hour"] for r in rows),
                list(range(24)))
        got = {r["hour"]: r["calls"] for r in rows}
        for h in range(24):
            c.check(f"busiest_hours hour {h:02d} calls", got.get(h), want[h])
        counts = [r["calls"] for r in rows]
        c.true("busiest_hours: busiest first", counts == sorted(counts, reverse=True),
               f"top hours {[r['hour'] for r in rows[:3]]} with {counts[:3]} calls")
        c.check("busiest_hours: busiest hour", rows[0]["hour"],
                max(range(24), key=lambda h: (want[h], -h)))

    # --------------------------------------------------- answer_rate_by_destination
    rows = results.get("answer_rate_by_destination.sql")
    if rows:
        want = collections.defaultdict(collections.Counter)
        for m in cdr_days.values():
            for dest, s in m["destinations"].items():
                want[dest].update(s)
        got = {r["destination"]: r for r in rows}
        c.check("answer_rate_by_destination: destinations", set(got), set(want))
        for dest in sorted(want):
            r, w = got.get(dest), want[dest]
            if r is None:
                continue
            p = f"answer_rate_by_destination {dest!r}"
            c.check(f"{p} calls", r["calls"], w["calls"])
            c.check(f"{p} answered", r["answered"], w["answered"])
            c.check(f"{p} talk_seconds", int(r["talk_seconds"]), w["billsec"])
            c.check(f"{p} talk_minutes", Decimal(r["talk_minutes"]), minutes_2dp(w["billsec"]))
            c.check(f"{p} cost*10000", as_e4(r["cost"]), w["charge_e4"])
            rate = Fraction(100 * w["answered"], w["calls"])
            c.true(f"{p} answer_rate_pct", abs(Fraction(r["answer_rate_pct"]) - rate) <= Fraction(1, 20),
                   f"{r['answer_rate_pct']} ~ {float(rate):.3f}")

    # --------------------------------------------------------- missed_and_abandoned
    rows = results.get("missed_and_abandoned.sql")
    if rows:
        more = extra(
            "count(*) FILTER (WHERE direction = 'inbound' AND outcome NOT IN ('answered', 'voicemail'))",
            "date")
        missed = collections.Counter(str(r["date"]) for r in rows if r["kind"] != "voicemail")
        abandoned = collections.Counter(str(r["date"]) for r in rows
                                        if r["kind"] == "abandoned in queue")
        for date, m in sorted(cdr_days.items()):
            c.check(f"missed_and_abandoned {date} missed inbound (the CDR's not ANSWERED)",
                    missed.get(date, 0), m["inbound_missed"] + more.get(date, (0,))[0])
            c.check(f"missed_and_abandoned {date} abandoned in queue", abandoned.get(date, 0),
                    m["queue_abandoned"])
        c.check("missed_and_abandoned: total abandoned", sum(abandoned.values()),
                sum(m["queue_abandoned"] for m in days.values()))
        c.check("missed_and_abandoned: answered rows", [r["call_id"] for r in rows
                                                        if r["outcome"] == "answered"], [])
        c.check("missed_and_abandoned: call ids unique", len({r["call_id"] for r in rows}), len(rows))
        c.check("missed_and_abandoned: abandoned rows without queue_id",
                [r["call_id"] for r in rows
                 if r["kind"] == "abandoned in queue" and r["queue_id"] is None], [])

    # ----------------------------------------------------------- first_time_callers
    rows = results.get("first_time_callers.sql")
    if rows:
        c.check("first_time_callers: each number once", len({r["number_e164"] for r in rows}),
                len(rows))
        per_day = collections.Counter(str(r["date"]) for r in rows)
        c.check("first_time_callers: new_callers_that_day = rows of the day",
                {str(r["date"]): r["new_callers_that_day"] for r in rows}, dict(per_day))
        (distinct,) = con.execute(r"""
            SELECT count(DISTINCT from_number)
            FROM read_parquet('calls/**/*.parquet', hive_partitioning = true)
            WHERE direction = 'inbound' AND regexp_full_match(from_number, '\+?[0-9]{5,}')
        """).fetchone()
        c.check("first_time_callers: rows = distinct inbound caller numbers (as presented)",
                len(rows), distinct)
        c.true("first_time_callers: first_call_at on its date (UTC)",
               all(r["first_call_at"].date() == r["date"] for r in rows))

    # -------------------------------------------------------- last_agent_for_number
    rows = results.get("last_agent_for_number.sql")
    if rows:
        c.check("last_agent_for_number: each number once", len({r["number_e164"] for r in rows}),
                len(rows))
        (newest,) = con.execute("""
            SELECT max(started_at) AT TIME ZONE 'UTC'
            FROM read_parquet('calls/**/*.parquet', hive_partitioning = true)""").fetchone()
        since = newest - datetime.timedelta(days=7)
        c.check("last_agent_for_number: contacts before the 7-day window",
                [r["number_e164"] for r in rows if r["last_contact_at"] < since], [])
        c.check("last_agent_for_number: channels",
                {r["channel"] for r in rows} - {"queue", "direct", "outbound"}, set())
        c.check("last_agent_for_number: rows without agent",
                [r["number_e164"] for r in rows if r["agent_id"] is None], [])
        final = dict(con.execute("""
            SELECT call_id, final_dst_id
            FROM read_parquet('queue_call/**/*.parquet', hive_partitioning = true)
            WHERE final_dst_type = 'U' AND t_cause = 'C'""").fetchall())
        wrong = [(r["call_id"], r["agent_id"], final.get(r["call_id"]))
                 for r in rows if r["channel"] == "queue"
                 and final.get(r["call_id"]) != r["agent_id"]]
        c.check("last_agent_for_number: queue agent = queue_call.final_dst_id", wrong, [])

    # --------------------------------------------------- queue_wait_and_abandonment
    rows = results.get("queue_wait_and_abandonment.sql")
    if rows:
        p = "queue_wait_and_abandonment"
        c.check(f"{p}: queue ids unique", len({r["queue_id"] for r in rows}), len(rows))
        c.check(f"{p}: calls", sum(r["calls"] for r in rows),
                sum(m["queue_calls"] for m in days.values()))
        c.check(f"{p}: connected", sum(r["connected"] for r in rows),
                sum(m["queue_connected"] for m in days.values()))
        c.check(f"{p}: abandoned", sum(r["abandoned"] for r in rows),
                sum(m["queue_abandoned"] for m in days.values()))
        c.true(f"{p}: every queue has its name", all(r["queue_name"] for r in rows),
               ", ".join(f"{r['queue_id']} {r['queue_name']}" for r in rows))
        for r in rows:
            rate = Fraction(100 * r["abandoned"], r["calls"])
            c.true(f"{p} queue {r['queue_id']}: abandonment_rate_pct and waits",
                   abs(Fraction(r["abandonment_rate_pct"]) - rate) <= Fraction(1, 20)
                   and r["avg_wait"] is not None and r["max_wait"] is not None
                   and 0 <= r["avg_wait"] <= r["max_wait"],
                   f"{r['abandonment_rate_pct']} %, avg {r['avg_wait']} s, max {r['max_wait']} s")

    # --------------------------------------------------------- calls_with_recording
    rows = results.get("calls_with_recording.sql")
    if rows:
        want = [Path(p).name for m in days.values() for p in m["recordings"]]
        c.check("calls_with_recording: calls with a recording = recordings", len(rows), len(want))
        names = {Path(r["object_key"]).name for r in rows}
        c.check("calls_with_recording: recording file names = the manifest's",
                names if names != set(want) else len(names),
                set(want) if names != set(want) else len(set(want)))
        c.check("calls_with_recording: one row per call", len({r["call_id"] for r in rows}), len(rows))
        bad = [r["object_key"] for r in rows if not (out / r["object_key"]).is_file()]
        c.check("calls_with_recording: object_key exists", bad, [])
        per_day = collections.Counter(str(r["date"]) for r in rows)
        c.check("calls_with_recording: per day",
                dict(per_day), {d: len(m["recordings"]) for d, m in days.items() if m["recordings"]})



if __name__ == "__main__":
    sys.exit(main())
