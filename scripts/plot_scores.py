#!/usr/bin/env python3
"""Plots one key of the anomalies job's output as an SVG: its values, NAB's labelled
windows, the scores with the threshold, and the alert episodes. Standard library only.

    anomalies --input nyc_taxi.csv --key realKnownCause/nyc_taxi.csv --detector cad \\
        --range=8:39197 --output scores.csv --alerts alerts.csv
    scripts/plot_scores.py scores.csv alerts.csv labels/combined_windows.json \\
        realKnownCause/nyc_taxi.csv 0.75 > plot.svg
"""

import csv
import datetime
import json
import sys

WIDTH, LEFT, RIGHT = 960, 60, 20
TOP_Y, TOP_H, BOTTOM_Y, BOTTOM_H = 30, 220, 290, 110
HEIGHT = BOTTOM_Y + BOTTOM_H + 40


def millis(text):
    """A NAB label time ('2014-10-30 15:30:00.000000', UTC) in epoch milliseconds."""
    t = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f")
    return int(t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


def main():
    if len(sys.argv) != 6:
        sys.exit("usage: plot_scores.py SCORES.csv ALERTS.csv LABELS.json KEY THRESHOLD")
    scores_path, alerts_path, labels_path, key, threshold = sys.argv[1:]
    threshold = float(threshold)
    rows = [r for r in csv.DictReader(open(scores_path)) if r["key"] == key]
    if not rows:
        sys.exit(f"plot_scores.py: no rows for key {key} in {scores_path}")
    times = [int(r["time"]) for r in rows]
    values = [float(r["value"]) for r in rows]
    scores = [float(r["score"]) for r in rows]
    alerts = [r for r in csv.DictReader(open(alerts_path)) if r["key"] == key]
    windows = [(millis(a), millis(b)) for a, b in json.load(open(labels_path)).get(key, [])]

    t0, t1 = times[0], times[-1]
    lo, hi = min(values), max(values)

    def x(t):
        return LEFT + (t - t0) / (t1 - t0) * (WIDTH - LEFT - RIGHT)

    def y_value(v):
        return TOP_Y + TOP_H - (v - lo) / ((hi - lo) or 1) * TOP_H

    def y_score(s):
        return BOTTOM_Y + BOTTOM_H - s * BOTTOM_H

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="18" font-size="13">{key}: values, labelled windows (shaded), '
        f"alerts (red); scores below, threshold {threshold}</text>",
    ]
    for a, b in windows:
        for y, h in ((TOP_Y, TOP_H), (BOTTOM_Y, BOTTOM_H)):
            out.append(
                f'<rect x="{x(a):.1f}" y="{y}" width="{max(x(b) - x(a), 1):.1f}" height="{h}" '
                f'fill="#f2c94c" fill-opacity="0.35"/>'
            )
    # Values: the min and max of each pixel column, so spikes survive.
    columns = {}
    for t, v in zip(times, values):
        c = int(x(t))
        low, high = columns.get(c, (v, v))
        columns[c] = (min(low, v), max(high, v))
    points = []
    for c in sorted(columns):
        low, high = columns[c]
        points.append(f"{c},{y_value(high):.1f} {c},{y_value(low):.1f}")
    out.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="#2d6cdf" stroke-width="1"/>')
    for a in alerts:
        t = int(a["start"])
        i = min(range(len(times)), key=lambda k: abs(times[k] - t))
        out.append(f'<circle cx="{x(t):.1f}" cy="{y_value(values[i]):.1f}" r="5" fill="none" stroke="red" stroke-width="2"/>')
    # Scores: a stem per pixel column, as high as its highest score.
    peaks = {}
    for t, s in zip(times, scores):
        c = int(x(t))
        peaks[c] = max(peaks.get(c, 0.0), s)
    for c, s in sorted(peaks.items()):
        if s > 0:
            colour = "red" if s >= threshold else "#777"
            out.append(f'<line x1="{c}" y1="{y_score(0)}" x2="{c}" y2="{y_score(s):.1f}" stroke="{colour}"/>')
    out.append(
        f'<line x1="{LEFT}" y1="{y_score(threshold):.1f}" x2="{WIDTH - RIGHT}" y2="{y_score(threshold):.1f}" '
        f'stroke="red" stroke-dasharray="4 3"/>'
    )
    # Axes and labels.
    for y, h in ((TOP_Y, TOP_H), (BOTTOM_Y, BOTTOM_H)):
        out.append(f'<rect x="{LEFT}" y="{y}" width="{WIDTH - LEFT - RIGHT}" height="{h}" fill="none" stroke="#999"/>')
    out.append(f'<text x="{LEFT - 4}" y="{TOP_Y + 10}" text-anchor="end">{hi:g}</text>')
    out.append(f'<text x="{LEFT - 4}" y="{TOP_Y + TOP_H}" text-anchor="end">{lo:g}</text>')
    out.append(f'<text x="{LEFT - 4}" y="{BOTTOM_Y + 10}" text-anchor="end">1</text>')
    out.append(f'<text x="{LEFT - 4}" y="{BOTTOM_Y + BOTTOM_H}" text-anchor="end">0</text>')
    day = datetime.datetime.fromtimestamp(t0 / 1000, datetime.timezone.utc).replace(day=1, hour=0, minute=0, second=0)
    while True:
        day = (day + datetime.timedelta(days=32)).replace(day=1)
        t = int(day.timestamp() * 1000)
        if t > t1:
            break
        out.append(f'<text x="{x(t):.1f}" y="{HEIGHT - 22}" text-anchor="middle">{day:%Y-%m}</text>')
        out.append(f'<line x1="{x(t):.1f}" y1="{BOTTOM_Y + BOTTOM_H}" x2="{x(t):.1f}" y2="{BOTTOM_Y + BOTTOM_H + 5}" stroke="#999"/>')
    out.append("</svg>")
    print("\n".join(out))


if __name__ == "__main__":
    main()
