#!/usr/bin/env python3
"""A CDR file in another shape, for scripts/bench.sh: columns in reverse order, every
field quoted, CRLF line ends.  reshape_cdr.py IN OUT"""
import csv
import sys

src, out = sys.argv[1], sys.argv[2]
with open(src, newline='', encoding='utf-8-sig') as f, open(out, 'w', newline='', encoding='utf-8') as g:
    w = csv.writer(g, quoting=csv.QUOTE_ALL, lineterminator='\r\n')
    for row in csv.reader(f):
        w.writerow(row[::-1])
