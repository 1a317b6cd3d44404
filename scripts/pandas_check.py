#!/usr/bin/env python3
"""Cross-checks sensor_stats --format json against pandas on the same readings.

Usage (pandas in a venv: python3 -m venv /tmp/venv && /tmp/venv/bin/pip install pandas):

    gen sensors --sensors 20 --rows 200000 --seed 3 --metadata meta.csv -o readings.csv
    sensor_stats --input readings.csv --sensors meta.csv --format json -q --output stats.json
    /tmp/venv/bin/python scripts/pandas_check.py readings.csv meta.csv stats.json

Every window of 1m, 5m, 15m and 1h and every group (sensor, type, site, all) must be
present with pandas' count and status distribution; for mean, std (pandas' ddof=1),
min and max it prints the largest difference, which for exact arithmetic rounded as the
job prints is at most half a unit of the last printed decimal.
"""
import json, sys
import pandas as pd
readings, meta, out = sys.argv[1:4]
df = pd.read_csv(readings)
m = pd.read_csv(meta)
df = df.merge(m[["sensor_id", "sensor_type", "site"]], on="sensor_id")
df["ms"] = (pd.to_datetime(df["timestamp"], utc=True, format="ISO8601") - pd.Timestamp(0, tz="UTC")) // pd.Timedelta("1ms")
metrics = ["temperature", "humidity", "pressure", "vibration", "power_consumption"]
job = pd.DataFrame([json.loads(l) for l in open(out)])
sizes = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}
groups = {"sensor": "sensor_id", "type": "sensor_type", "site": "site", "all": None}
worst = {}
rows = 0
for label, size in sizes.items():
    df["end"] = df["ms"] - df["ms"] % size + size
    for g, col in groups.items():
        keys = ["end"] + ([col] if col else [])
        agg = df.groupby(keys)[metrics].agg(["count", "mean", "std", "min", "max"])
        status = df.groupby(keys)["operational_status"].value_counts().unstack(fill_value=0)
        j = job[(job.window == label) & (job.group == g)].copy()
        j = j.set_index(["time", "key"] if col else ["time"])
        if not col:
            agg.index = agg.index.rename("time")
            status.index = status.index.rename("time")
        else:
            agg.index = agg.index.rename(["time", "key"])
            status.index = status.index.rename(["time", "key"])
        assert len(j) == len(agg), (label, g, len(j), len(agg))
        j = j.loc[agg.index]
        rows += len(j)
        assert (j["count"].values == agg[(metrics[0], "count")].values).all()
        for s in ["normal", "warning", "alert"]:
            want = status[s].values if s in status else 0
            assert (j[s].values == want).all(), (label, g, s)
        for mt in metrics:
            for st in ["mean", "std", "min", "max"]:
                diff = (j[f"{mt}_{st}"].astype(float) - agg[(mt, st)]).abs().max()
                worst[(mt, st)] = max(worst.get((mt, st), 0.0), diff)
print(f"{rows} rows (every window of 1m/5m/15m/1h, every group) match pandas in count and statuses")
for (mt, st), d in sorted(worst.items()):
    print(f"{mt:18} {st:4} largest |job - pandas| = {d:.2e}")
