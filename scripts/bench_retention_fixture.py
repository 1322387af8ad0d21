#!/usr/bin/env python3
"""Fixture builder for scripts/bench-retention.sh (a benchmark, not a test).

Writes a `file://` destination shaped like cdr-ingest's output layout (README,
"Output layout") with small dummy bytes: retention only lists and deletes, so the
contents do not matter, only the keys. Per call date D:

    cdr/date=D/D.parquet
    queue_call/date=D/D.parquet
    queue_user_call/date=D/D.parquet
    recording_index/date=D/recordings.parquet
    recordings/YYYY/MM/DD/<name>.mp3            R files (provider naming)
    _state/ledger/{cdr,queue,recordings}/D.json

Commands:

    sync  DEST --end D --days N --recordings R [--size B]
          make DEST hold exactly the N days ending D: days missing (or partly deleted
          by an earlier benchmark) are (re)written, extra objects and days outside the
          window are removed, `_state` other than the ledger is removed. Idempotent,
          so a kept fixture is reused and topped up. Prints one JSON line of figures.
    day   DEST --day D --recordings R [--size B]
          write one day (to put back the day a timed pass is to delete).
    state DEST --through D
          write `_state/retention/{cdr,queue,recordings}.json` as if retention had
          deleted every call date up to D.
"""

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from multiprocessing import Pool

PARTITIONED = ("cdr", "queue_call", "queue_user_call", "recording_index")
LEDGERS = ("cdr", "queue", "recordings")
FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


def payload(size, tag):
    """`size` bytes starting with `tag` (e.g. PAR1 for the Parquet stand-ins)."""
    return (tag + b"\0" * size)[:size]


def recording_names(day, count):
    """Names in the provider's format, YYYY_mm_dd_HH_mm_ss-SIP-CALLER-CALLED-UNIQUEID.mp3,
    spread over the day, so keys have a realistic length."""
    base = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp())
    names = []
    for i in range(count):
        at = base + (i * 86400) // max(count, 1)
        t = dt.datetime.fromtimestamp(at, dt.timezone.utc)
        names.append(
            f"{t:%Y_%m_%d_%H_%M_%S}-agent{i % 40:02d}-+4812{i:07d}-+48221234{i % 1000:03d}-{at}.{i}.mp3"
        )
    return names


def expected(day, recordings):
    """{folder: set(file names)} of one day's fixture objects, relative to DEST."""
    d = day.isoformat()
    files = {f"{p}/date={d}": {f"{d}.parquet"} for p in PARTITIONED[:3]}
    files[f"recording_index/date={d}"] = {"recordings.parquet"}
    files[f"recordings/{day:%Y/%m/%d}"] = set(recording_names(day, recordings))
    return files


def write(path, data):
    fd = os.open(path, FLAGS, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def sync_day(args):
    """Makes one day's data objects exactly the fixture's; returns (created, removed)."""
    dest, day, recordings, size = args
    created = removed = 0
    for folder, names in expected(day, recordings).items():
        path = os.path.join(dest, folder)
        try:
            present = set(os.listdir(path))
        except FileNotFoundError:
            os.makedirs(path, exist_ok=True)
            present = set()
        for extra in present - names:  # e.g. a run's `date=D/<other day>.parquet`
            target = os.path.join(path, extra)
            if os.path.isdir(target):
                shutil.rmtree(target)
            else:
                os.unlink(target)
            removed += 1
        tag = b"ID3" if folder.startswith("recordings/") else b"PAR1"
        data = payload(size, tag)
        for name in names - present:
            write(os.path.join(path, name), data)
            created += 1
    return created, removed


def ledger_payload(category, day, size):
    return payload(size, json.dumps({"format_version": 1, "category": category, "day": day.isoformat(), "fixture": True}).encode())


def days_of(end, count):
    return [end - dt.timedelta(days=i) for i in range(count - 1, -1, -1)]


def prune(dest, window):
    """Removes everything that is not a fixture object of a day in `window`."""
    removed = 0
    keep_dates = {f"date={d.isoformat()}" for d in window}
    keep_ymd = {f"{d:%Y/%m/%d}" for d in window}
    for entry in os.listdir(dest):
        if entry not in PARTITIONED + ("recordings", "_state"):
            p = os.path.join(dest, entry)
            shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
            removed += 1
    for folder in PARTITIONED:
        root = os.path.join(dest, folder)
        if os.path.isdir(root):
            for entry in os.listdir(root):
                if entry not in keep_dates:
                    p = os.path.join(root, entry)
                    shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
                    removed += 1
    root = os.path.join(dest, "recordings")
    if os.path.isdir(root):
        for dirpath, dirnames, filenames in os.walk(root):
            rel = os.path.relpath(dirpath, root)
            depth = 0 if rel == "." else rel.count("/") + 1
            if depth == 3:
                dirnames[:] = []
                if rel not in keep_ymd:
                    shutil.rmtree(dirpath)
                    removed += 1
                continue
            for name in filenames:
                os.unlink(os.path.join(dirpath, name))
                removed += 1
            # Leave only year/month folders that lead to a kept day.
            for name in list(dirnames):
                sub = name if rel == "." else f"{rel}/{name}"
                if not any(k.startswith(sub + "/") or k == sub for k in keep_ymd):
                    shutil.rmtree(os.path.join(dirpath, name))
                    dirnames.remove(name)
                    removed += 1
    state = os.path.join(dest, "_state")
    if os.path.isdir(state):
        for entry in os.listdir(state):
            if entry != "ledger":
                p = os.path.join(state, entry)
                shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
                removed += 1
    return removed


def sync_ledgers(dest, window, size):
    created = removed = 0
    names = {f"{d.isoformat()}.json": d for d in window}
    ledger = os.path.join(dest, "_state", "ledger")
    os.makedirs(ledger, exist_ok=True)
    for entry in os.listdir(ledger):
        if entry not in LEDGERS:
            p = os.path.join(ledger, entry)
            shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
            removed += 1
    for category in LEDGERS:
        folder = os.path.join(ledger, category)
        os.makedirs(folder, exist_ok=True)
        present = set(os.listdir(folder))
        for extra in present - names.keys():
            os.unlink(os.path.join(folder, extra))
            removed += 1
        for name in names.keys() - present:
            write(os.path.join(folder, name), ledger_payload(category, names[name], size))
            created += 1
    return created, removed


def cmd_sync(a):
    started = time.monotonic()
    os.makedirs(a.dest, exist_ok=True)
    window = days_of(a.end, a.days)
    removed = prune(a.dest, window)
    created = 0
    jobs = [(a.dest, d, a.recordings, a.size) for d in window]
    with Pool(os.cpu_count() or 1) as pool:
        for c, r in pool.imap_unordered(sync_day, jobs, chunksize=8):
            created += c
            removed += r
    c, r = sync_ledgers(a.dest, window, a.size)
    created += c
    removed += r
    per_day = a.recordings + 7
    print(json.dumps({
        "days": a.days,
        "first_day": window[0].isoformat(),
        "last_day": window[-1].isoformat(),
        "recordings_per_day": a.recordings,
        "files": per_day * a.days,
        "bytes": per_day * a.days * a.size,
        "created": created,
        "removed": removed,
        "seconds": round(time.monotonic() - started, 2),
    }))


def cmd_day(a):
    created, _ = sync_day((a.dest, a.day, a.recordings, a.size))
    folder = os.path.join(a.dest, "_state", "ledger")
    for category in LEDGERS:
        os.makedirs(os.path.join(folder, category), exist_ok=True)
        write(os.path.join(folder, category, f"{a.day.isoformat()}.json"), ledger_payload(category, a.day, a.size))
        created += 1
    print(json.dumps({"day": a.day.isoformat(), "created": created}))


def cmd_state(a):
    # The shape the worker writes (see `_state/retention/<category>.json`).
    folder = os.path.join(a.dest, "_state", "retention")
    os.makedirs(folder, exist_ok=True)
    for category in LEDGERS:
        body = json.dumps({"format_version": 1, "deleted_through": a.through.isoformat()}, indent=2)
        write(os.path.join(folder, f"{category}.json"), body.encode())


def main():
    date = dt.date.fromisoformat
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sync")
    s.add_argument("dest")
    s.add_argument("--end", type=date, required=True)
    s.add_argument("--days", type=int, required=True)
    s.add_argument("--recordings", type=int, required=True)
    s.add_argument("--size", type=int, default=100)
    s.set_defaults(run=cmd_sync)
    d = sub.add_parser("day")
    d.add_argument("dest")
    d.add_argument("--day", type=date, required=True)
    d.add_argument("--recordings", type=int, required=True)
    d.add_argument("--size", type=int, default=100)
    d.set_defaults(run=cmd_day)
    t = sub.add_parser("state")
    t.add_argument("dest")
    t.add_argument("--through", type=date, required=True)
    t.set_defaults(run=cmd_state)
    a = parser.parse_args()
    a.run(a)


if __name__ == "__main__":
    sys.exit(main())
