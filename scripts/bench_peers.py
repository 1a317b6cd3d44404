"""Per-category totals over one transactions CSV: kappa vs DuckDB, Polars, Spark, Flink.

Run by scripts/bench-peers.sh (which makes the venv). Each engine reads the same file
end to end; results must match kappa's to the cent (total, count, quantity per
category) before any time is reported. Prints a table and appends rows to the CSV.

    bench_peers.py FILE RUNS RESULTS_CSV BIN_DIR COMMIT [ENGINES]

ENGINES is a comma list out of duckdb,polars,spark,flink (default duckdb,polars); kappa
always runs. The JVM engines (Spark local[2], PyFlink parallelism 2) start once per
process: that start (session or TableEnvironment creation, which launches the JVM) and a
trivial one-row job are timed and reported apart from the query, which is then timed in
the warm JVM. Their timed queries write to a discarding sink (Spark `noop` format or
memory sink, Flink `blackhole`); the check reads the 6 result rows from a collected
6-row result (Spark) or a filesystem sink (Flink).
"""

import csv
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal


def cents(text):
    """Exact cents of a decimal string such as '4222.60'."""
    return int(Decimal(str(text)) * 100)


def kappa(path, bin_dir, workers):
    out = subprocess.run(
        [os.path.join(bin_dir, "category_totals"), "--mode", "batch", "--input", path, "-w", str(workers)],
        check=True, capture_output=True, text=True).stdout
    rows = list(csv.DictReader(out.splitlines()))
    return {r["category"]: (cents(r["total"]), int(r["count"]), int(r["quantity"])) for r in rows}


def duckdb_totals(path):
    import duckdb
    con = duckdb.connect()
    rows = con.execute(
        """SELECT product_category, sum(total_amount), count(*), sum(quantity)
           FROM read_csv(?, header = true,
                         types = {'total_amount': 'DECIMAL(18,2)', 'product_price': 'DECIMAL(18,2)'})
           GROUP BY product_category""", [path]).fetchall()
    return {c: (cents(t), int(n), int(q)) for c, t, n, q in rows}


def polars_totals(path):
    import polars as pl
    df = (pl.scan_csv(path, schema_overrides={"total_amount": pl.String})
          .with_columns(pl.col("total_amount").str.split_exact(".", 1).alias("parts"))
          .with_columns((pl.col("parts").struct.field("field_0").cast(pl.Int64) * 100
                         + pl.col("parts").struct.field("field_1").str.pad_end(2, "0").cast(pl.Int64))
                        .alias("cents"))
          .group_by("product_category")
          .agg(pl.col("cents").sum(), pl.len(), pl.col("quantity").sum())
          .collect())
    return {c: (int(t), int(n), int(q)) for c, t, n, q in df.iter_rows()}


CATEGORY_COLUMNS = ["transaction_id", "customer_id", "product_category", "product_price", "quantity",
                    "timestamp", "customer_age", "customer_city", "payment_method", "total_amount"]


def timed(f):
    start = time.perf_counter()
    value = f()
    return value, time.perf_counter() - start


class Spark:
    """pyspark, local[2], batch (DataFrame) and Structured Streaming (availableNow)."""

    def __init__(self, path, scratch):
        from pyspark.sql import SparkSession
        from pyspark.sql import types as T
        self.path, self.scratch = path, scratch
        self.spark = (SparkSession.builder.master("local[2]").appName("kappa-peers")
                      .config("spark.sql.shuffle.partitions", "2")
                      .config("spark.ui.enabled", "false")
                      .config("spark.ui.showConsoleProgress", "false")
                      .config("spark.sql.streaming.forceDeleteTempCheckpointLocation", "true")
                      .config("spark.driver.memory", "2g")
                      .getOrCreate())
        self.spark.sparkContext.setLogLevel("ERROR")
        types = {"product_price": T.DecimalType(18, 2), "total_amount": T.DecimalType(18, 2),
                 "quantity": T.LongType(), "customer_age": T.IntegerType()}
        self.schema = T.StructType([T.StructField(c, types.get(c, T.StringType())) for c in CATEGORY_COLUMNS])
        # Structured Streaming reads a directory: one holding (a hard link to) the file.
        self.stream_dir = os.path.join(scratch, "spark-stream-in")
        shutil.rmtree(self.stream_dir, ignore_errors=True)
        os.makedirs(self.stream_dir)
        target = os.path.join(self.stream_dir, os.path.basename(path))
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
        self.n = 0

    def trivial(self):
        self.spark.range(1).write.format("noop").mode("overwrite").save()

    def _agg(self, df):
        from pyspark.sql import functions as F
        return df.groupBy("product_category").agg(F.sum("total_amount").alias("total"),
                                                   F.count(F.lit(1)).alias("n"),
                                                   F.sum("quantity").alias("q"))

    def batch_frame(self):
        return self._agg(self.spark.read.schema(self.schema).option("header", "true").csv(self.path))

    def batch_check(self):
        return {r[0]: (cents(r[1]), int(r[2]), int(r[3])) for r in self.batch_frame().collect()}

    def batch_timed(self):
        self.batch_frame().write.format("noop").mode("overwrite").save()

    def stream(self):
        self.n += 1
        name = f"peers_totals_{self.n}"
        src = (self.spark.readStream.schema(self.schema).option("header", "true")
               .option("maxFilesPerTrigger", 1).csv(self.stream_dir))
        q = (self._agg(src).writeStream.outputMode("complete").format("memory").queryName(name)
             .trigger(availableNow=True).start())
        q.awaitTermination()
        if q.exception() is not None:
            raise RuntimeError(str(q.exception()))
        return name

    def stream_check(self):
        rows = self.spark.sql(f"SELECT * FROM {self.stream()}").collect()
        return {r[0]: (cents(r[1]), int(r[2]), int(r[3])) for r in rows}

    def stream_timed(self):
        self.stream()

    def close(self):
        self.spark.stop()


class Flink:
    """PyFlink Table API, batch and streaming mode, parallelism 2, all SQL in the JVM."""

    def __init__(self, path, scratch, streaming):
        from pyflink.table import EnvironmentSettings, TableEnvironment
        settings = EnvironmentSettings.in_streaming_mode() if streaming else EnvironmentSettings.in_batch_mode()
        self.env = TableEnvironment.create(settings)
        self.env.get_config().set("parallelism.default", "2")
        self.streaming, self.scratch = streaming, scratch
        self.out = os.path.join(scratch, "flink-" + ("stream" if streaming else "batch") + "-out")
        cols = ", ".join(f"`{c}` STRING" for c in CATEGORY_COLUMNS)
        # The filesystem csv format has no header option: every column is read as text,
        # the header row is dropped by a filter, and the query casts (parses) the fields.
        self.env.execute_sql(f"""CREATE TEMPORARY TABLE src ({cols}) WITH (
            'connector' = 'filesystem', 'path' = 'file://{os.path.abspath(path)}', 'format' = 'csv')""")
        self.env.execute_sql("""CREATE TEMPORARY VIEW totals AS
            SELECT product_category, SUM(CAST(total_amount AS DECIMAL(18, 2))) AS total,
                   COUNT(*) AS n, SUM(CAST(quantity AS BIGINT)) AS q
            FROM src WHERE transaction_id <> 'transaction_id' GROUP BY product_category""")
        self.env.execute_sql("""CREATE TEMPORARY TABLE hole (c STRING, t DECIMAL(38, 2), n BIGINT, q BIGINT)
            WITH ('connector' = 'blackhole')""")
        self.env.execute_sql("CREATE TEMPORARY TABLE hole1 (x INT) WITH ('connector' = 'blackhole')")
        # Streaming mode emits an update stream; the filesystem sink takes it as debezium-json.
        fmt = "debezium-json" if streaming else "csv"
        self.env.execute_sql(f"""CREATE TEMPORARY TABLE outfs (c STRING, t DECIMAL(38, 2), n BIGINT, q BIGINT)
            WITH ('connector' = 'filesystem', 'path' = 'file://{self.out}', 'format' = '{fmt}')""")

    def trivial(self):
        self.env.execute_sql("INSERT INTO hole1 VALUES (1)").wait()

    def timed(self):
        self.env.execute_sql("INSERT INTO hole SELECT * FROM totals").wait()

    def check(self):
        shutil.rmtree(self.out, ignore_errors=True)
        self.env.execute_sql("INSERT INTO outfs SELECT * FROM totals").wait()
        files = [f for f in glob.glob(os.path.join(self.out, "**", "*"), recursive=True)
                 + glob.glob(os.path.join(self.out, "**", ".*"), recursive=True) if os.path.isfile(f)]
        # Part files roll (part-<uuid>-<subtask>-<n>): replay each subtask's files in order
        # of n; a key's updates all come from one subtask.
        files.sort(key=lambda f: [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", os.path.basename(f))])
        got = {}
        for f in files:
            for line in open(f):
                if not line.strip():
                    continue
                if not self.streaming:
                    c, t, n, q = next(csv.reader([line]))
                    got[c] = (cents(t), int(n), int(q))
                    continue
                change = json.loads(line, parse_float=Decimal)  # replay the changelog: "d" retracts, "c" sets
                if change.get("after"):
                    a = change["after"]
                    got[a["c"]] = (cents(a["t"]), int(a["n"]), int(a["q"]))
                elif change.get("before"):
                    got.pop(change["before"]["c"], None)
        return got


def main():
    path, runs, results, bin_dir, commit = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    wanted = (sys.argv[6] if len(sys.argv) > 6 else "duckdb,polars").split(",")
    unknown = set(wanted) - {"duckdb", "polars", "spark", "flink"}
    if unknown:
        sys.exit(f"bench_peers: unknown engine(s) {sorted(unknown)}")
    scratch = os.path.dirname(os.path.abspath(path))
    reference = kappa(path, bin_dir, 1)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    rows = sum(1 for _ in open(path)) - 1
    print(f"{rows} rows, {len(reference)} categories, {runs} runs each (median), file read end to end")

    def record(name, metric, value):
        with open(results, "a") as f:
            load1 = open("/proc/loadavg").read().split()[0]
            stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            f.write(f"{stamp},{commit},{os.cpu_count()},{cpu.replace(',', '')},{load1},peers,"
                    f"{name} category totals h={rows},{metric},{value:.4f},s\n")

    def bench(name, check, run):
        got = check()  # warm-up, and the check
        if got != reference:
            sys.exit(f"bench_peers: {name} disagrees with kappa:\n{got}\nvs\n{reference}")
        med = statistics.median(timed(run)[1] for _ in range(runs))
        print(f"  {name:16} {med:8.3f} s  {rows / med:12.0f} records/s  (results match to the cent)")
        record(name, "wall_s", med)

    def start(name, make):
        """The JVM engine's start (JVM launch + session), then a trivial job, timed apart."""
        engine, secs = timed(make)
        print(f"  {name + ' start':16} {secs:8.3f} s  (JVM launch and session creation, once per process)")
        record(name, "start_s", secs)
        engine.trivial()  # its first job also loads classes: the median is over later ones
        med = statistics.median(timed(engine.trivial)[1] for _ in range(runs))
        print(f"  {name + ' 1-row job':16} {med:8.3f} s  (trivial job in the warm JVM, median)")
        record(name, "trivial_job_s", med)
        return engine

    engines = [("kappa w=1", lambda: kappa(path, bin_dir, 1)),
               ("kappa w=2", lambda: kappa(path, bin_dir, 2))]
    engines += [("duckdb", lambda: duckdb_totals(path))] if "duckdb" in wanted else []
    engines += [("polars", lambda: polars_totals(path))] if "polars" in wanted else []
    for name, run in engines:
        bench(name, run, run)
    if "spark" in wanted:
        spark = start("spark", lambda: Spark(path, scratch))
        bench("spark batch", spark.batch_check, spark.batch_timed)
        bench("spark stream", spark.stream_check, spark.stream_timed)
        spark.close()
    if "flink" in wanted:
        batch = start("flink", lambda: Flink(path, scratch, streaming=False))
        bench("flink batch", batch.check, batch.timed)
        stream = Flink(path, scratch, streaming=True)
        bench("flink stream", stream.check, stream.timed)


if __name__ == "__main__":
    main()
