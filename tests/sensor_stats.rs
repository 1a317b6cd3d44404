//! `sensor_stats` against a reference fold written in the test, without floats.
//!
//! The reference reads the generated CSV with `split`, turns each decimal into an integer
//! by moving its point, and folds count, sum, sum of squares, minimum, maximum and
//! statuses per (window size, window end, group, key) in a `BTreeMap`. The job's printed
//! means and standard deviations are checked against the reference's integers by the
//! inequalities that define rounding, so no float is involved on either side.

mod common;

use std::collections::BTreeMap;

use common::{TempDir, run, run_ok, two_processes};

const DECIMALS: [u32; 5] = [2, 2, 2, 3, 2];
const SIZES: [(&str, u64); 4] = [("1m", 60_000), ("5m", 300_000), ("15m", 900_000), ("1h", 3_600_000)];

/// A decimal's text as an integer in units of `10^-d`.
fn units(text: &str, d: u32) -> i128 {
    let (neg, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    assert!(frac.len() <= d as usize, "{text}");
    let digits = format!("{int}{frac:0<width$}", width = d as usize);
    let v: i128 = digits.parse().unwrap();
    if neg { -v } else { v }
}

/// Milliseconds since the epoch of `2026-10-01T00:00:07.100Z` (the generator's shape).
fn millis(ts: &str) -> u64 {
    let (date, clock) = ts.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (hms, ms) = clock.split_once('.').unwrap_or((clock, "0"));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 { (d[0] - 1, d[1] + 9) } else { (d[0], d[1] - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let ms: i64 = format!("{ms:0<3}").parse().unwrap();
    (((days * 24 + t[0]) * 60 + t[1]) * 60 + t[2]) as u64 * 1000 + ms as u64
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Agg {
    count: i128,
    sum: [i128; 5],
    sum_sq: [i128; 5],
    min: [i128; 5],
    max: [i128; 5],
    statuses: [i128; 3],
}

type Key = (u64, String, u64, String, String);

/// The reference fold over the default tumbling sizes: (size in ms, its label, end,
/// group, key) → aggregate.
fn reference(csv: &str, meta: &str) -> BTreeMap<Key, Agg> {
    reference_sliding(csv, meta, &SIZES, None)
}

/// The reference fold over windows of `sizes` that start every `slide` (tumbling without
/// one): a reading at `t` is in every window `[start, start + size)` holding `t`, with
/// `start` a multiple of the slide.
fn reference_sliding(csv: &str, meta: &str, sizes: &[(&str, u64)], slide: Option<u64>) -> BTreeMap<Key, Agg> {
    // Per sensor, its (since, type, site) rows; `since` is the 4th or 6th field, if any.
    let mut placements: BTreeMap<&str, Vec<(u64, &str, &str)>> = BTreeMap::new();
    for l in meta.lines().skip(1) {
        let f: Vec<&str> = l.split(',').collect();
        let since = match f.len() {
            4 | 6 => millis(f[f.len() - 1]),
            _ => 0,
        };
        placements.entry(f[0]).or_default().push((since, f[1], f[2]));
    }
    let mut out: BTreeMap<Key, Agg> = BTreeMap::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let time = millis(f[1]);
        let values: Vec<i128> = (0..5).map(|m| units(f[2 + m], DECIMALS[m])).collect();
        let status = ["normal", "warning", "alert"].iter().position(|s| *s == f[7]).unwrap();
        // The row with the latest `since` not after the reading; none: the reading is rejected.
        let Some(&(_, sensor_type, site)) =
            placements[f[0]].iter().filter(|p| p.0 <= time).max_by_key(|p| p.0)
        else {
            continue;
        };
        for &(label, size) in sizes {
            let step = slide.unwrap_or(size);
            let ends = (0..size / step).map(|k| time - time % step + step + k * step);
            for (end, (group, key)) in ends.flat_map(|end| {
                [("sensor", f[0]), ("type", sensor_type), ("site", site), ("all", "all")].map(|g| (end, g))
            }) {
                let a = out
                    .entry((size, label.to_owned(), end, group.to_owned(), key.to_owned()))
                    .or_insert_with(|| Agg { min: [i128::MAX; 5], max: [i128::MIN; 5], ..Agg::default() });
                a.count += 1;
                for (m, &x) in values.iter().enumerate() {
                    a.sum[m] += x;
                    a.sum_sq[m] += x * x;
                    a.min[m] = a.min[m].min(x);
                    a.max[m] = a.max[m].max(x);
                }
                a.statuses[status] += 1;
            }
        }
    }
    out
}

/// Checks every row of the job's CSV output against the reference.
fn check(output: &str, expected: &BTreeMap<Key, Agg>) {
    check_sizes(output, expected, &SIZES)
}

/// Checks every row of the job's CSV output, with windows of `sizes`, against the reference.
fn check_sizes(output: &str, expected: &BTreeMap<Key, Agg>, sizes: &[(&str, u64)]) {
    let mut lines = output.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header.len(), 28);
    assert_eq!(&header[..5], ["time", "window", "group", "key", "count"]);
    let order = |g: &str| ["sensor", "type", "site", "all"].iter().position(|x| *x == g).unwrap();
    let mut seen = 0;
    let mut previous: Option<(u64, u64, usize, String)> = None;
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let (end, label, group, key) = (f[0].parse::<u64>().unwrap(), f[1], f[2], f[3]);
        let size = sizes.iter().find(|(l, _)| *l == label).unwrap().1;
        let a = expected
            .get(&(size, label.to_owned(), end, group.to_owned(), key.to_owned()))
            .unwrap_or_else(|| panic!("unexpected row {line}"));
        // Rows are sorted by time, size, group, key.
        let sort_key = (end, size, order(group), key.to_owned());
        assert!(previous.as_ref().is_none_or(|p| *p < sort_key), "order at {line}");
        previous = Some(sort_key);
        let n = a.count;
        assert_eq!(f[4].parse::<i128>().unwrap(), n, "{line}");
        for m in 0..5 {
            let d = DECIMALS[m];
            let mean = units(f[5 + 4 * m], d + 2);
            // mean = round(100 S / n): |100 S − mean·n| ≤ n/2.
            assert!((2 * (100 * a.sum[m] - mean * n)).abs() <= n, "mean of metric {m}: {line}");
            match f[6 + 4 * m] {
                "" => assert_eq!(n, 1, "{line}"),
                text => {
                    let r = units(text, d + 1);
                    let x = 100 * (n * a.sum_sq[m] - a.sum[m] * a.sum[m]);
                    let den = n * (n - 1);
                    assert!((2 * r - 1).max(0).pow(2) * den <= 4 * x, "std of metric {m} too big: {line}");
                    assert!(4 * x < (2 * r + 1).pow(2) * den, "std of metric {m} too small: {line}");
                }
            }
            assert_eq!(units(f[7 + 4 * m], d), a.min[m], "{line}");
            assert_eq!(units(f[8 + 4 * m], d), a.max[m], "{line}");
        }
        let statuses: Vec<i128> = f[25..28].iter().map(|x| x.parse().unwrap()).collect();
        assert_eq!(statuses, a.statuses, "{line}");
        seen += 1;
    }
    assert_eq!(seen, expected.len(), "every reference row is in the output");
}

struct Data {
    dir: TempDir,
    readings: String,
    meta: String,
}

fn generate(name: &str, sensors: u32, rows: u64) -> Data {
    let dir = TempDir::new(name);
    let (r, m) = (dir.path("readings.csv"), dir.path("meta.csv"));
    run_ok(
        "gen",
        &[
            "sensors",
            "--sensors",
            &sensors.to_string(),
            "--rows",
            &rows.to_string(),
            "--seed",
            "5",
            "--interval",
            "2s",
            "--metadata",
            m.to_str().unwrap(),
            "-o",
            r.to_str().unwrap(),
        ],
    );
    Data { readings: std::fs::read_to_string(&r).unwrap(), meta: std::fs::read_to_string(&m).unwrap(), dir }
}

impl Data {
    fn args<'a>(&'a self, workers: &'a str) -> Vec<String> {
        [
            "--input",
            self.dir.path("readings.csv").to_str().unwrap(),
            "--sensors",
            self.dir.path("meta.csv").to_str().unwrap(),
            "-w",
            workers,
            "-q",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

fn job(args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok("sensor_stats", &args)
}

#[test]
fn every_statistic_of_every_window_size_and_group_matches_the_reference_fold() {
    // 15 sensors every 2 s for a little over 2 h: whole and partial hours, all four sizes.
    let data = generate("sensor-stats-ref", 15, 15 * 3_900);
    let expected = reference(&data.readings, &data.meta);
    let one = job(&data.args("1"));
    check(&one, &expected);
    // The anomaly episodes show in the data: some alerts, mostly not.
    let all = expected.iter().filter(|(k, _)| k.3 == "all" && k.1 == "1h");
    let (alerts, total) = all.fold((0, 0), |(a, t), (_, v)| (a + v.statuses[2], t + v.count));
    assert!(alerts * 10 > total && alerts * 10 < 9 * total, "{alerts} alerts of {total}");
}

#[test]
fn sliding_windows_of_several_sizes_match_the_reference_fold_for_any_worker_count() {
    // 6 sensors every 2 s for 100 minutes: 10m and 1h windows starting every 5 minutes,
    // so each reading is in 2 + 12 windows, the first and last ones partly filled.
    let data = generate("sensor-stats-slide", 6, 6 * 3_000);
    let sizes = [("10m", 600_000), ("1h", 3_600_000)];
    let expected = reference_sliding(&data.readings, &data.meta, &sizes, Some(300_000));
    let with = |workers: &str| {
        let mut args = data.args(workers);
        args.extend(["--windows", "10m,1h", "--slide", "5m"].map(String::from));
        job(&args)
    };
    let one = with("1");
    check_sizes(&one, &expected, &sizes);
    assert!(one.lines().count() > 500, "{} rows", one.lines().count());
    assert_eq!(with("3"), one, "-w 3");
}

#[test]
fn a_sensor_that_moves_counts_at_its_new_site_from_the_time_of_the_move_on() {
    // 8 sensors every 2 s for 50 minutes. SENSOR_001 moves to a new site at 00:05:30.5,
    // inside a 1-minute cell and a 5-minute window; SENSOR_002 changes type and site twice
    // (the metadata rows out of order); SENSOR_003 is only installed at 00:20:00, so its
    // earlier readings are rejected.
    let data = generate("sensor-stats-moves", 8, 8 * 1_500);
    let start = data.readings.lines().nth(1).unwrap().split(',').nth(1).unwrap();
    let day = &start[..11];
    let mut meta: Vec<String> = data.meta.lines().map(str::to_owned).collect();
    meta.retain(|l| !l.starts_with("SENSOR_003,"));
    meta.extend([
        format!("SENSOR_001,industrial,moved-site,{day}00:05:30.500Z"),
        format!("SENSOR_002,medical,late-site,0,0,{day}00:40:00Z"),
        format!("SENSOR_002,agricultural,moved-site,{day}00:12:00Z"),
        format!("SENSOR_003,industrial,new-site,{day}00:20:00Z"),
    ]);
    let meta = meta.join("\n") + "\n";
    std::fs::write(data.dir.path("meta.csv"), &meta).unwrap();
    let expected = reference(&data.readings, &meta);
    let rejects = data.dir.path("rejects.txt");
    let mut args = data.args("1");
    args.extend(["--rejects".to_owned(), rejects.to_str().unwrap().to_owned()]);
    let one = job(&args);
    check(&one, &expected);
    // The moves show in the output: the new site has readings from 00:05 on, and the
    // window holding the move splits SENSOR_001's readings between its two sites.
    let moved: Vec<&str> = one.lines().filter(|l| l.contains(",5m,site,moved-site,")).collect();
    assert!(moved[0].starts_with(&format!("{},", millis(&format!("{day}00:10:00Z")))), "{moved:?}");
    let rejected = std::fs::read_to_string(&rejects).unwrap();
    let early = data
        .readings
        .lines()
        .filter(|l| l.starts_with("SENSOR_003,") && l.split(',').nth(1).unwrap()[11..] < *"00:20:00")
        .count();
    assert!(early > 100, "{early}");
    assert_eq!(rejected.lines().count(), early, "{rejected}");
    assert!(
        rejected.lines().all(|l| l.contains("sensor 'SENSOR_003' is not in --sensors before")),
        "{rejected}"
    );
    for workers in ["2", "3"] {
        let mut args = data.args(workers);
        args.extend(["--rejects".to_owned(), data.dir.path("r.txt").to_str().unwrap().to_owned()]);
        assert_eq!(job(&args), one, "-w {workers}");
    }
}

#[test]
fn output_is_byte_identical_for_one_two_and_three_workers_two_processes_and_any_order() {
    let data = generate("sensor-stats-workers", 7, 7 * 2_000);
    let one = job(&data.args("1"));
    assert!(one.lines().count() > 100);
    for workers in ["2", "3"] {
        assert_eq!(job(&data.args(workers)), one, "-w {workers}");
    }
    // Every reading shipped to the centre instead of per-worker partials: the same bytes.
    let mut shipped = data.args("3");
    shipped.extend(["--ship", "readings"].map(String::from));
    assert_eq!(job(&shipped), one, "--ship readings");
    let args = data.args("1");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(two_processes("sensor_stats", &args), one, "-n 2");
    // The same readings shuffled (deterministically), some as JSON lines: the same bytes.
    let mut lines: Vec<&str> = data.readings.lines().skip(1).collect();
    let mut state = 12345u64;
    for i in (1..lines.len()).rev() {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        lines.swap(i, (state >> 33) as usize % (i + 1));
    }
    let header: Vec<&str> = data.readings.lines().next().unwrap().split(',').collect();
    let mut shuffled = header.join(",") + "\n";
    for (i, line) in lines.iter().enumerate() {
        if i % 3 == 0 {
            let f: Vec<&str> = line.split(',').collect();
            let mut fields = Vec::new();
            for (k, name) in header.iter().enumerate() {
                let quoted = matches!(*name, "sensor_id" | "timestamp" | "operational_status");
                fields.push(if quoted {
                    format!("\"{name}\": \"{}\"", f[k])
                } else {
                    format!("\"{name}\": {}", f[k])
                });
            }
            shuffled.push_str(&format!("{{{}}}\n", fields.join(", ")));
        } else {
            shuffled.push_str(line);
            shuffled.push('\n');
        }
    }
    std::fs::write(data.dir.path("readings.csv"), shuffled).unwrap();
    assert_eq!(job(&data.args("2")), one, "shuffled, mixed CSV and JSON lines");
}

#[test]
fn bad_values_and_unknown_sensors_are_rejected_with_line_numbers() {
    let data = generate("sensor-stats-rejects", 3, 30);
    let mut lines: Vec<String> = data.readings.lines().map(str::to_owned).collect();
    let good = lines[5].clone();
    lines[3] = good.replacen("SENSOR_", "GHOST_", 1);
    let f: Vec<&str> = good.split(',').collect();
    lines[8] = format!("{},{},12.345,{}", f[0], f[1], f[3..].join(","));
    lines[12] = good.replace("normal", "melting").replace("alert", "melting").replace("warning", "melting");
    std::fs::write(data.dir.path("readings.csv"), lines.join("\n") + "\n").unwrap();
    let rejects = data.dir.path("rejects.txt");
    let mut args = data.args("2");
    args.extend(["--rejects".to_owned(), rejects.to_str().unwrap().to_owned()]);
    let out = job(&args);
    let text = std::fs::read_to_string(&rejects).unwrap();
    let found: Vec<&str> = text.lines().collect();
    assert_eq!(found.len(), 3, "{text}");
    assert!(found[0].contains(":4: unknown sensor 'GHOST_"), "{text}");
    assert!(found[1].contains(":9: bad temperature 12.345: more than 2 decimals"), "{text}");
    assert!(found[2].contains(":13: unknown operational_status 'melting'"), "{text}");
    // The other 27 readings are counted.
    let all: i64 = out
        .lines()
        .filter(|l| l.contains(",1h,all,"))
        .map(|l| l.split(',').nth(4).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(all, 27);
}

#[test]
fn bad_flags_and_metadata_are_one_line_usage_errors() {
    let data = generate("sensor-stats-usage", 2, 4);
    let bad_meta = data.dir.path("bad-meta.csv");
    std::fs::write(&bad_meta, "sensor_id,sensor_type,site\nSENSOR_000,industrial\n").unwrap();
    let input = data.dir.path("readings.csv");
    let cases: [(&[&str], &str); 6] = [
        (&["--rules", "/nonexistent/rules.txt"], "--rules needs --alerts PATH"),
        (
            &["--rules", "/nonexistent/rules.txt", "--alerts", "/tmp/x"],
            "cannot read --rules /nonexistent/rules.txt",
        ),
        (&["--windows", "1m,7x"], "--windows: invalid duration '7x'"),
        (&["--windows", "10m", "--slide", "3m"], "must be a whole multiple of --slide"),
        (&["--sensors", bad_meta.to_str().unwrap()], "bad-meta.csv: line 2: expected 3 to 6 fields"),
        (&["--sensors", "/nonexistent/meta.csv"], "cannot read --sensors /nonexistent/meta.csv"),
    ];
    for (extra, message) in cases {
        let mut args = vec!["--input", input.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = run("sensor_stats", &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(message), "{extra:?}: {stderr}");
    }
}

/// The episodes of "temperature > LIMIT held for HOLD ms" per sensor, brute force: a
/// reading is in an episode when some earlier reading of the sensor starts a run of
/// readings all above the limit that has lasted at least HOLD by this reading.
fn threshold_episodes(csv: &str, limit: i128, hold: u64) -> Vec<String> {
    let mut by_sensor: BTreeMap<&str, Vec<(u64, i128)>> = BTreeMap::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        by_sensor.entry(f[0]).or_default().push((millis(f[1]), units(f[2], 2)));
    }
    let mut rows = Vec::new();
    for (sensor, mut readings) in by_sensor {
        readings.sort();
        let mut was = false;
        for i in 0..readings.len() {
            let active = (0..=i).any(|j| {
                readings[j..=i].iter().all(|r| r.1 > limit) && readings[i].0 - readings[j].0 >= hold
            });
            if active != was {
                rows.push(format!(
                    "{},{sensor},hot,critical,{}",
                    readings[i].0,
                    if active { "start" } else { "end" }
                ));
                was = active;
            }
        }
    }
    rows.sort();
    rows
}

#[test]
fn alert_episodes_match_a_brute_force_reference_for_any_worker_count() {
    let data = generate("sensor-stats-alerts", 6, 6 * 1_500);
    let rules = data.dir.path("rules.txt");
    std::fs::write(
        &rules,
        "# crafted for the test\nhot critical temperature > 35.5 for 6s\nshare warning alert share > 50% over 5m\njump info vibration rate > 1 per 1s\n",
    )
    .unwrap();
    let alerts = data.dir.path("alerts.csv");
    let with_rules = |workers: &str| {
        let mut args = data.args(workers);
        args.extend(
            ["--rules", rules.to_str().unwrap(), "--alerts", alerts.to_str().unwrap()].map(String::from),
        );
        job(&args);
        std::fs::read_to_string(&alerts).unwrap()
    };
    let one = with_rules("1");
    assert_eq!(one.lines().next(), Some("time,sensor,rule,severity,event"));
    for rule in [",hot,", ",share,", ",jump,"] {
        assert!(one.contains(rule), "rule {rule} fired at least once");
    }
    assert_eq!(with_rules("2"), one, "-w 2");
    assert_eq!(with_rules("3"), one, "-w 3");
    let mut hot: Vec<String> = one.lines().filter(|l| l.contains(",hot,")).map(str::to_owned).collect();
    hot.sort();
    assert_eq!(hot, threshold_episodes(&data.readings, 3550, 6_000));
    // Episodes alternate start, end per sensor and rule: never one row per reading.
    let mut state: BTreeMap<(String, String), bool> = BTreeMap::new();
    for line in one.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let open = state.entry((f[1].into(), f[2].into())).or_default();
        assert_eq!(*open, f[4] == "end", "{line}");
        *open = !*open;
    }
}

#[test]
fn a_sensor_going_silent_is_offline_whether_the_watermark_moves_or_the_input_ends() {
    let dir = TempDir::new("sensor-stats-silent");
    let mut csv = String::from(
        "sensor_id,timestamp,temperature,humidity,pressure,vibration,power_consumption,operational_status,latitude,longitude\n",
    );
    let start = 1_790_812_800_000u64; // 2026-10-01T00:00:00Z
    for s in 0..600u64 {
        for (sensor, until) in [("A", 600), ("B", 100), ("C", 580)] {
            if s < until {
                csv.push_str(&format!(
                    "{sensor},{},20.00,50.00,1000.00,0.500,100.00,normal,0,0\n",
                    start + s * 1000
                ));
            }
        }
    }
    std::fs::write(dir.path("r.csv"), csv).unwrap();
    std::fs::write(dir.path("rules.txt"), "off critical silent for 30s\n").unwrap();
    let alerts = dir.path("alerts.csv");
    let run_with = |extra: &[&str]| {
        let mut args: Vec<String> = vec![
            "--input".to_owned(),
            dir.path("r.csv").to_str().unwrap().to_owned(),
            "--rules".to_owned(),
            dir.path("rules.txt").to_str().unwrap().to_owned(),
            "--alerts".to_owned(),
            alerts.to_str().unwrap().to_owned(),
            "-q".to_owned(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        job(&args);
        std::fs::read_to_string(&alerts).unwrap()
    };
    // B's last reading is at 99 s: offline from 129 s. At the end of input the
    // watermark passes every time, so A and C go offline 30 s after their last readings.
    // The rows are the same whether the watermark moves (--lateness 0s) or jumps at the
    // end, and for any number of workers.
    let expected = format!(
        "time,sensor,rule,severity,event\n{},B,off,critical,start\n{},C,off,critical,start\n{},A,off,critical,start\n",
        start + 129_000,
        start + 609_000,
        start + 629_000
    );
    assert_eq!(run_with(&["--lateness", "0s", "-w", "2"]), expected);
    assert_eq!(run_with(&["--lateness", "0s", "-w", "1"]), expected);
    assert_eq!(run_with(&["-w", "3"]), expected);
}

/// Whether Mosquitto listens on 127.0.0.1:1883. Under CI (`CI=true`) its absence fails
/// the test; elsewhere the test is skipped with a message.
fn broker_running() -> bool {
    let address = "127.0.0.1:1883".parse().unwrap();
    let up = std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(2)).is_ok();
    if !up {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "no MQTT broker on 127.0.0.1:1883: CI must start Mosquitto"
        );
        eprintln!("skipped: no MQTT broker on 127.0.0.1:1883 (start mosquitto to run this test)");
    }
    up
}

#[test]
fn mqtt_delivery_with_or_without_a_checkpoint_gives_the_same_bytes_as_the_file() {
    if !broker_running() {
        return;
    }
    // Mosquitto queues at most 1000 messages for a disconnected session by default.
    let data = generate("sensor-stats-mqtt", 5, 950);
    let pid = std::process::id();
    let topic = format!("kappa-test/{pid}/site-0/readings");
    let client = format!("kappa-test-{pid}");
    let input = |count: u64| {
        format!("mqtt://127.0.0.1:1883/kappa-test/{pid}/+/readings?count={count}&client-id={client}")
    };
    let meta = data.dir.path("meta.csv");
    let subscriber = |count: u64, workers: &str| {
        run_ok(
            "sensor_stats",
            &["--input", &input(count), "--sensors", meta.to_str().unwrap(), "-w", workers, "-q"],
        )
    };
    // A first run creates the persistent session and its subscription, and ends at once;
    // the broker then keeps the messages for it until the second run takes them.
    subscriber(0, "1");
    let publish = || {
        let url = format!("mqtt://127.0.0.1:1883/{topic}");
        let args = ["sensors", "--sensors", "5", "--rows", "950", "--seed", "5", "--interval", "2s"];
        run_ok("gen", &[&args[..], &["--publish", &url]].concat());
    };
    publish();
    let over_mqtt = subscriber(950, "2");
    let from_file = job(&data.args("1"));
    assert!(from_file.lines().count() > 20);
    assert_eq!(over_mqtt, from_file);

    // Again with --checkpoint: the messages are journaled and the job takes state
    // snapshots (its sources leave their final state in the folder), to the same bytes.
    publish();
    let (out, checkpoint) = (data.dir.path("out.csv"), data.dir.path("checkpoint"));
    let ck = ["--output", out.to_str().unwrap(), "--checkpoint", checkpoint.to_str().unwrap()];
    run_ok(
        "sensor_stats",
        &[
            &["--input", &input(950), "--sensors", meta.to_str().unwrap(), "-w", "2", "-q"][..],
            &ck,
            &["--checkpoint-every", "10ms"],
        ]
        .concat(),
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), from_file);
    assert!(checkpoint.join("p0/finished").is_dir(), "the job took snapshots");
}

#[test]
fn an_mqtt_job_killed_after_journaling_and_before_acknowledging_counts_each_message_once() {
    if !broker_running() {
        return;
    }
    let data = generate("sensor-stats-mqtt-kill", 5, 950);
    let pid = std::process::id();
    let topic = format!("kappa-test/{pid}-kill/site-0/readings");
    let client = format!("kappa-test-{pid}-kill");
    let input =
        format!("mqtt://127.0.0.1:1883/kappa-test/{pid}-kill/+/readings?count=950&client-id={client}");
    let meta = data.dir.path("meta.csv");
    let (out, checkpoint) = (data.dir.path("out.csv"), data.dir.path("checkpoint"));
    let args = [
        "--input",
        &input,
        "--sensors",
        meta.to_str().unwrap(),
        "-w",
        "2",
        "-q",
        "--output",
        out.to_str().unwrap(),
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--checkpoint-every",
        "10ms",
    ];
    let run_with = |crash: Option<&str>| {
        let mut command = std::process::Command::new(common::bin("sensor_stats"));
        command.args(args);
        if let Some(point) = crash {
            command.env("KAPPA_CRASH_AT", point);
        }
        command.output().expect("sensor_stats runs")
    };
    // The session and its subscription first, with nothing to read: an empty run with the
    // same client id, outside the checkpoint.
    let empty = input.replace("count=950", "count=0");
    run_ok("sensor_stats", &["--input", &empty, "--sensors", meta.to_str().unwrap(), "-q"]);
    let url = format!("mqtt://127.0.0.1:1883/{topic}");
    let publish =
        ["sensors", "--sensors", "5", "--rows", "950", "--seed", "5", "--interval", "2s", "--publish", &url];
    run_ok("gen", &publish);
    // Killed with batches journaled whose messages the broker has not had acknowledged:
    // it delivers them again to each restart.
    for point in ["mqtt-journaled:3", "mqtt-journaled:5"] {
        let killed = run_with(Some(point));
        assert!(!killed.status.success(), "the job was killed at {point}");
    }
    let last = run_with(None);
    assert!(last.status.success(), "{}", String::from_utf8_lossy(&last.stderr));
    let from_file = job(&data.args("1"));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), from_file, "each message counted once");
}
