#!/usr/bin/env python3
"""The anomaly notebook's detector, as its streaming loop runs it, for comparison with
`anomalies --detector distance`: per key, in batches of 100 samples, add the batch to a
sliding window of 500, refit a StandardScaler and an IsolationForest (50 trees,
contamination 0.1, random_state 42) on the window, then predict the batch.

Reads `gen anomalies` CSV (timestamp,key,x1..xN,label) and prints precision, recall and
F1 over all predicted samples. Needs numpy and scikit-learn (not used by the project).

    python3 scripts/iforest_baseline.py FILE [--window 500] [--batch 100]
"""
import argparse
import csv
import sys
from collections import defaultdict, deque

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.preprocessing import StandardScaler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--window", type=int, default=500)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--contamination", default="0.1")
    args = ap.parse_args()
    contamination = args.contamination if args.contamination == "auto" else float(args.contamination)
    by_key = defaultdict(list)
    with open(args.file) as f:
        rows = csv.reader(f)
        next(rows)
        for r in rows:
            by_key[r[1]].append((r[0], [float(v) for v in r[2:-1]], r[-1] != "normal"))
    tp = fp = fn = 0
    for key, samples in sorted(by_key.items()):
        samples.sort(key=lambda s: s[0])
        window = deque(maxlen=args.window)
        for start in range(0, len(samples), args.batch):
            batch = samples[start:start + args.batch]
            x = np.array([s[1] for s in batch])
            labels = np.array([s[2] for s in batch])
            window.extend(x)
            if len(window) < 100:
                continue
            data = np.array(window)
            scaler = StandardScaler().fit(data)
            forest = IsolationForest(contamination=contamination, random_state=42, n_estimators=50)
            forest.fit(scaler.transform(data))
            flagged = forest.predict(scaler.transform(x)) == -1
            tp += int(np.sum(flagged & labels))
            fp += int(np.sum(flagged & ~labels))
            fn += int(np.sum(~flagged & labels))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    print(f"precision {p:.4f} recall {r:.4f} F1 {f1:.4f} (tp {tp} fp {fp} fn {fn})")


if __name__ == "__main__":
    sys.exit(main())
