#!/usr/bin/env python3
"""Turns scripts/bench.sh's measurements into bench/RESULTS.md (a benchmark helper).

    bench_report.py RESULTS_TSV WORK_DIR OUT_MD MACHINE VERSIONS REPS SECTION...

RESULTS_TSV has one line per timed run: run id, section, case, tool, setting, units
(files or rows), bytes, wall seconds, peak RSS KiB; each case's figures are taken from
the latest run that measured it. Each SECTION given replaces its own
block in OUT_MD (between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`), so a
section rerun alone leaves the others' figures, and their dates, as they were.
"""

import collections
import datetime as dt
import json
import re
import statistics
import sys
from pathlib import Path

ORDER = ("recordings", "cdr", "scale", "day", "history", "latency")
TITLES = {
    "recordings": "1. Recordings: cdr-ingest vs rclone and lftp",
    "cdr": "2. CDRs: one day of 1,000,000 rows to Parquet",
    "scale": "3. Scale",
    "day": "4. A full day end to end",
    "history": "5. A daily pass with five years of history",
    "latency": "6. Recordings across a network: 0 / 10 / 40 ms round trip",
}


def mib(kib):
    return f"{int(kib) / 1024:.0f}"


def load(tsv):
    by_run = collections.defaultdict(lambda: collections.defaultdict(list))
    for line in Path(tsv).read_text().splitlines():
        run, section, case, tool, setting, units, size, wall, rss = line.split("\t")
        by_run[(section, case, tool, setting)][run].append((float(wall), int(rss), int(units), int(size)))
    runs = {key: samples[max(samples)] for key, samples in by_run.items()}
    latest = {key: max(samples) for key, samples in by_run.items()}
    return runs, latest


def stats(samples):
    walls = sorted(s[0] for s in samples)
    return walls[0], statistics.median(walls), max(s[1] for s in samples), samples[0][2], samples[0][3]


def section_recordings(runs, work):
    out = []
    cases = list(dict.fromkeys(k[1] for k in runs if k[0] == "recordings"))
    for case in cases:
        count, rest = case.split("×")
        size, proto = rest.rsplit("-", 1)
        keys = [k for k in runs if k[0] == "recordings" and k[1] == case]
        keys.sort(key=lambda k: (int(k[3]), TOOLS.index(k[2])))
        _, _, _, files, size_bytes = stats(runs[keys[0]])
        out.append(f"**{count} × {size} over {proto.upper()}** ({size_bytes / 2**20:.0f} MiB)\n")
        out.append("| tool | transfers | min s | median s | MiB/s | files/s | peak RSS MiB |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for k in keys:
            lo, med, rss, units, size_bytes = stats(runs[k])
            out.append(f"| {TOOL_LABELS.get(k[2], k[2])} | {k[3]} | {lo:.2f} | {med:.2f} | {size_bytes / 2**20 / med:.0f} "
                       f"| {units / med:.0f} | {mib(rss)} |")
        out.append("")
    if any(k[0] == "recordings" and k[2] == "cdr-ingest-equal" for k in runs):
        out.append("\\* rclone's work: `ingest.recordings_sha256 = false` (rclone computes no checksum "
                   "over FTP, nor over SFTP with the test sshd) and, over FTPS, `source.tls_max_version = "
                   "\"1.2\"` (rclone runs with `disable_tls13`, so each data connection resumes the TLS 1.2 "
                   "session without a key exchange).\n")
    return out


# The recordings section's tools in table order, and how they are shown.
TOOLS = ("cdr-ingest", "cdr-ingest-equal", "rclone", "lftp")
TOOL_LABELS = {"cdr-ingest-equal": "cdr-ingest, rclone's work\\*"}


def simple_table(runs, section, unit_name):
    out = [f"| tool | case | min s | median s | {unit_name}/s | MiB/s | peak RSS MiB |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for k in [k for k in runs if k[0] == section]:
        lo, med, rss, units, size = stats(runs[k])
        out.append(f"| {k[2]} | {k[1]} | {lo:.2f} | {med:.2f} | {units / med:,.0f} "
                   f"| {size / 2**20 / med:.0f} | {mib(rss)} |")
    return out


def section_cdr(runs, work):
    out = simple_table(runs, "cdr", "rows")
    sizes = Path(work, "cdr-sizes.txt")
    if sizes.exists():
        out += ["", sizes.read_text().strip()]
    return out


def section_scale(runs, work):
    out = ["**Recordings in the folder** (1 KiB each, over 10 days, FTPS, 8 transfers)", "",
           "| recordings | pass | wall s | files/s | peak RSS MiB |", "|---:|---|---:|---:|---:|"]
    for k in [k for k in runs if k[0] == "scale" and k[1] == "recordings in folder"]:
        _, med, rss, units, _ = stats(runs[k])
        rate = f"{units / med:,.0f}" if k[2].startswith("copy") else "–"
        out.append(f"| {units:,} | {k[2]} | {med:.2f} | {rate} | {mib(rss)} |")
    out += ["", "**CDR rows in one day**", "",
            "| rows | tool | wall s | rows/s | peak RSS MiB |", "|---:|---|---:|---:|---:|"]
    for k in [k for k in runs if k[0] == "scale" and k[1] == "CDR rows in a day"]:
        _, med, rss, units, _ = stats(runs[k])
        shape = k[3].partition(" ")[2]  # "10000000 quirks, reshaped": another data shape
        rows = f"{units:,}" + (f" ({shape})" if shape else "")
        out.append(f"| {rows} | {k[2]} | {med:.2f} | {units / med:,.0f} | {mib(rss)} |")
    return out


def log_events(path):
    for line in Path(path).read_text().splitlines():
        if line.startswith("{"):
            yield json.loads(line)


def section_day(runs, work):
    out = ["| run | min s | median s | MiB/s | peak RSS MiB |", "|---|---:|---:|---:|---:|"]
    wall = None
    for k in [k for k in runs if k[0] == "day"]:
        lo, wall, rss, _, size = stats(runs[k])
        out.append(f"| `run --date` (CDR, queue zip, recordings; 4 transfers) | {lo:.2f} | {wall:.2f} "
                   f"| {size / 2**20 / wall:.0f} | {mib(rss)} |")
    steps = collections.defaultdict(list)
    for log in sorted(Path(work).glob("day-*.log")):
        for f in log_events(log):
            if f.get("message") == "ingested":
                what = f"`{f['file']}` ({f['rows']:,} rows)"
                if f["file"].endswith(".zip"):
                    steps[f"{what}: transfer (to a temporary file)"].append(f["transfer_ms"])
                    steps[f"{what}: unzip, parse, encode Parquet"].append(f["parse_ms"])
                else:
                    steps[f"{what}: transfer (parsed as it arrives)"].append(f["transfer_ms"])
                    steps[f"{what}: parsing and encoding left after the last byte"].append(f["parse_ms"])
                steps[f"{what}: storing the Parquet files, ledger"].append(f["write_ms"])
            elif f.get("message") == "recordings finished":
                what = f"recordings ({f['copied']:,} copied of {f['listed']:,} listed)"
                steps[f"{what}: listing, ledger lookup"].append(f["list_ms"])
                steps[f"{what}: copying"].append(f["copy_ms"])
                steps[f"{what}: index, ledger"].append(f["index_ms"])
    if steps:
        med = {k: statistics.median(v) for k, v in steps.items()}
        out += ["", "Where the time goes (median of the runs, from the fields of the run's JSON log):", "",
                "| step | ms |", "|---|---:|"]
        out += [f"| {k} | {v:.0f} |" for k, v in med.items()]
        if wall is not None:
            rest = wall * 1000 - sum(med.values())
            out.append(f"| everything else: start-up, logins, `stat`s, retention, run record | {rest:.0f} |")
    return out


def section_history(runs, work):
    text = Path(work, "history.out").read_text().splitlines()
    start = next(i for i, line in enumerate(text) if line.startswith("Machine:"))
    return [line for line in text[start:] if not line.startswith("logs:")]


def section_latency(runs, work):
    out = ["600 × 256 KiB recordings through the delay proxy (`examples/delay_proxy`: each "
           "direction half the round trip late, a connection's setup a round trip, FTP "
           "passive ports proxied). The round-trip counts below the tables do not depend on "
           "the machine's load; wall times do. rclone has no `auto`.", ""]
    keys = [k for k in runs if k[0] == "latency"]
    for proto in ("ftps", "sftp"):
        cases = sorted({k[1] for k in keys if k[1].endswith(proto)}, key=lambda c: int(c.split("ms")[0]))
        if not cases:
            continue
        out.append(f"**{proto.upper()}** (median s; RT/file = wall × transfers / (files × round trip))\n")
        out.append("| round trip | transfers | cdr-ingest s | rclone s | rclone / cdr-ingest | cdr-ingest RT/file | rclone RT/file |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for case in cases:
            rtt = int(case.split("ms")[0])
            # "auto" after the numbers; its RT/file is not computed (its count varies).
            for n in sorted({k[3] for k in keys if k[1] == case}, key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0)):
                med = {}
                for tool in ("cdr-ingest", "rclone"):
                    k = ("latency", case, tool, n)
                    if k in runs:
                        med[tool] = stats(runs[k])[1]
                files = stats(runs[("latency", case, "cdr-ingest", n)])[3] if ("latency", case, "cdr-ingest", n) in runs else 600
                ours, theirs = med.get("cdr-ingest"), med.get("rclone")
                per = lambda w: f"{w * int(n) / (files * rtt / 1000):.1f}" if w and rtt and n.isdigit() else "-"
                seconds = lambda w: f"{w:.2f}" if w else "–"
                ratio = f"{theirs / ours:.2f}×" if ours and theirs else "–"
                out.append(f"| {rtt} ms | {n} | {seconds(ours)} | {seconds(theirs)} | {ratio} | {per(ours)} | {per(theirs)} |")
        out.append("")
    counts = Path(work, "latency-counts.tsv")
    if counts.exists():
        latest = {}
        for line in counts.read_text().splitlines():
            run, proto, tool, files, rts, commands = line.split("\t")
            latest[(proto, tool)] = (int(files), float(rts or "nan"), commands)
        out.append("**Round trips per file, counted** (one transfer, 40 ms, a folder of 40 × 256 KiB; "
                   "critical path: the proxy's logical count of the whole run, listing and logins "
                   "included, divided by the files; commands: FTP commands per file in vsftpd's "
                   "protocol log, `log_ftp_protocol`)\n")
        out.append("| protocol | tool | round trips per file (critical path, whole run) | FTP commands per file |")
        out.append("|---|---|---:|---:|")
        for (proto, tool), (files, rts, commands) in sorted(latest.items()):
            cmd = f"{int(commands) / files:.1f}" if commands not in ("-", "") else "-"
            out.append(f"| {proto.upper()} | {tool} | {rts / files:.2f} | {cmd} |")
        out.append("")
    return out


def main():
    tsv, work, out_md, machine, versions, reps, *sections = sys.argv[1:]
    runs, latest = load(tsv)
    path = Path(out_md)
    text = path.read_text() if path.exists() else ""
    if not text:
        text = ("# Benchmarks\n\nWritten by `scripts/bench.sh` (see its header for what each "
                "section measures); rerun a section with `scripts/bench.sh SECTION`.\n\n"
                + "".join(f"<!-- bench:{s} -->\n<!-- /bench:{s} -->\n\n" for s in ORDER))
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    for s in sections:
        body = [f"## {TITLES[s]}", "",
                f"Measured {today}, {reps} run(s) each, on {machine}.  ",
                f"Versions: {versions}.", ""]
        body += globals()[f"section_{s}"](runs, work)
        used = {run for key, run in latest.items() if key[0] == s}
        problems = [line.split("\t", 1)[1] for line in Path(work, "problems.txt").read_text().splitlines()
                    if line.split("\t", 1)[0] in used and line.split("\t", 1)[1].startswith(s)]
        if problems:
            body += ["", "Problems in this run:", ""] + [f"- {p}" for p in problems]
        block = f"<!-- bench:{s} -->\n" + "\n".join(body).rstrip() + f"\n<!-- /bench:{s} -->"
        if f"<!-- bench:{s} -->" not in text:
            text = text.rstrip() + f"\n\n<!-- bench:{s} -->\n<!-- /bench:{s} -->\n"
        text = re.sub(f"<!-- bench:{s} -->.*?<!-- /bench:{s} -->", lambda _: block, text, flags=re.S)
    path.write_text(text)


if __name__ == "__main__":
    main()
