//! Turns a directory of scenario results into docs/benchmarks.md and its SVG plots.
//!
//! Results are the JSON files the scenarios write, named `SERVER-SCENARIO.json` (for
//! example `confab-fanout.json`), plus `run-info.md`, which the benchmark script writes
//! with the machine, the time and the load. The prose lives in a template whose
//! `{{name}}` markers are replaced by tables.

use plotters::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, clap::Args)]
pub struct ReportArgs {
    /// Directory of result files.
    #[arg(long)]
    pub results: PathBuf,
    /// Markdown template with `{{name}}` markers.
    #[arg(long)]
    pub template: PathBuf,
    /// Markdown file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Directory for the plots, which the Markdown links relative to `out`.
    #[arg(long)]
    pub plots: PathBuf,
}

/// Servers in table order, with their display names.
const SERVERS: [(&str, &str); 5] = [
    ("confab", "Confab (SQLite, stores every message)"),
    ("reference", "Bare WebSocket reference (bench crate)"),
    ("node", "Node.js socket.io 4.8, minimal broadcast"),
    ("flask-gevent", "Flask-SocketIO on gevent"),
    ("flask-threading", "Flask-SocketIO sample (threading)"),
];

struct Results {
    files: BTreeMap<String, Value>,
}

impl Results {
    fn load(dir: &Path) -> anyhow::Result<Self> {
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let name = path
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                let text = std::fs::read_to_string(&path)?;
                match serde_json::from_str(&text) {
                    Ok(value) => {
                        files.insert(name, value);
                    }
                    Err(err) => eprintln!("skipping {}: {err}", path.display()),
                }
            }
        }
        Ok(Self { files })
    }

    fn get(&self, server: &str, scenario: &str) -> Option<&Value> {
        self.files.get(&format!("{server}-{scenario}"))
    }
}

fn num(v: &Value, pointer: &str) -> Option<f64> {
    v.pointer(pointer).and_then(Value::as_f64)
}

fn ms(us: Option<f64>) -> String {
    us.map(|u| format!("{:.1}", u / 1000.0))
        .unwrap_or_else(|| "–".into())
}

fn fmt(x: Option<f64>, digits: usize) -> String {
    x.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

/// Formats the figure at `pointer` in `v`, followed by the lowest and highest of the
/// same figure over the runs in the array at `runs` when there are several, as in
/// "15.09 (14.80–15.40)".
fn with_spread(v: &Value, pointer: &str, runs: &str, field: &str, digits: usize) -> String {
    let reported = fmt(num(v, pointer), digits);
    let figures: Vec<f64> = v
        .pointer(runs)
        .and_then(Value::as_array)
        .map(|runs| runs.iter().filter_map(|r| num(r, field)).collect())
        .unwrap_or_default();
    if figures.len() < 2 {
        return reported;
    }
    let low = figures.iter().copied().fold(f64::INFINITY, f64::min);
    let high = figures.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{reported} ({low:.digits$}–{high:.digits$})")
}

/// Writes the report.
pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let results = Results::load(&args.results)?;
    let template = std::fs::read_to_string(&args.template)?;
    std::fs::create_dir_all(&args.plots)?;
    // The analysis is prose written after reading a run's figures, kept beside the
    // template.
    let analysis = std::fs::read_to_string(args.template.with_file_name("analysis.md"))
        .unwrap_or_else(|_| "(bench/analysis.md missing)\n".into());
    let run_info = std::fs::read_to_string(args.results.join("run-info.md"))
        .unwrap_or_else(|_| "(run-info.md missing from the results)\n".into());

    let plot_dir = args
        .plots
        .strip_prefix(args.out.parent().unwrap_or(Path::new("")))
        .unwrap_or(&args.plots)
        .to_path_buf();
    plot_fanout(
        &results,
        &args.plots.join("fanout-p99.svg"),
        "/p99_us",
        "p99 latency (ms)",
        0.001,
    )?;
    plot_fanout(
        &results,
        &args.plots.join("fanout-cpu.svg"),
        "/server_cpu_us_per_delivery",
        "server CPU per delivery (µs)",
        1.0,
    )?;

    let mut text = template;
    let replacements = [
        ("run_info", run_info),
        ("fanout_table", fanout_table(&results)),
        ("fanout_steps", fanout_steps(&results)),
        ("irc_fanout_table", irc_fanout_table(&results)),
        ("idle_table", idle_table(&results)),
        ("storm_table", storm_table(&results)),
        ("rooms_table", rooms_table(&results)),
        ("history_table", history_table(&results)),
        ("targets_table", targets_table(&results)),
        ("capacity_model", capacity_model(&results)),
        ("plot_dir", plot_dir.display().to_string()),
        ("analysis", analysis),
    ];
    for (name, value) in replacements {
        text = text.replace(&format!("{{{{{name}}}}}"), value.trim_end());
    }
    std::fs::write(&args.out, text)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

fn fanout_table(r: &Results) -> String {
    let mut t = String::from(
        "| Server | Highest passing rate (deliveries/s) | Server CPU per delivery at the comparison rate, median (range) of the runs (µs) | p50 / p99 / max at that rate (ms) | Lost | Server RSS (MiB) | Generator saturated |\n|---|---|---|---|---|---|---|\n",
    );
    for (key, name) in SERVERS {
        let Some(v) = r.get(key, "fanout") else {
            continue;
        };
        let at = &v["at_cpu_rate"];
        let _ = writeln!(
            t,
            "| {name} | {} | {} | {} / {} / {} | {} | {} | {} |",
            fmt(num(v, "/max_passing_per_s"), 0),
            with_spread(
                v,
                "/at_cpu_rate/server_cpu_us_per_delivery",
                "/cpu_runs",
                "/server_cpu_us_per_delivery",
                2
            ),
            ms(num(at, "/p50_us")),
            ms(num(at, "/p99_us")),
            ms(num(at, "/max_us")),
            fmt(num(at, "/lost"), 0),
            fmt(num(at, "/server_rss_kib").map(|k| k / 1024.0), 0),
            if v["generator_saturated"].as_bool() == Some(true) {
                "yes"
            } else {
                "no"
            },
        );
    }
    t
}

/// IRC servers in table order, with their display names.
const IRC_SERVERS: [(&str, &str); 2] = [
    (
        "confab",
        "Confab IRC gateway (SQLite, stores every message)",
    ),
    ("ngircd", "ngIRCd (Debian package), relays only"),
];

fn irc_fanout_table(r: &Results) -> String {
    let mut t = String::from(
        "| Server | Highest passing rate (deliveries/s) | Server CPU per delivery at the comparison rate, median (range) of the runs (µs) | p50 / p99 / max at that rate (ms) | Lost | Dup. | Out of order | Server RSS (MiB) | Generator saturated |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for (key, name) in IRC_SERVERS {
        let Some(v) = r.get(key, "irc-fanout") else {
            continue;
        };
        let at = &v["at_cpu_rate"];
        let _ = writeln!(
            t,
            "| {name} | {} | {} | {} / {} / {} | {} | {} | {} | {} | {} |",
            fmt(num(v, "/max_passing_per_s"), 0),
            with_spread(
                v,
                "/at_cpu_rate/server_cpu_us_per_delivery",
                "/cpu_runs",
                "/server_cpu_us_per_delivery",
                2
            ),
            ms(num(at, "/p50_us")),
            ms(num(at, "/p99_us")),
            ms(num(at, "/max_us")),
            fmt(num(at, "/lost"), 0),
            fmt(num(at, "/duplicated"), 0),
            fmt(num(at, "/out_of_order"), 0),
            fmt(num(at, "/server_rss_kib").map(|k| k / 1024.0), 0),
            if v["generator_saturated"].as_bool() == Some(true) {
                "yes"
            } else {
                "no"
            },
        );
    }
    if t.lines().count() == 2 {
        t.push_str("| (no IRC fan-out results in this run) | | | | | | | | |\n");
    }
    t
}

fn fanout_steps(r: &Results) -> String {
    let mut t = String::from(
        "| Server | Offered (deliveries/s) | Delivered/s | p50 (ms) | p99 (ms) | max (ms) | Lost | Dup. | Out of order | Server CPU/delivery (µs) | Generator CPU/delivery (µs) | Passed |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (key, name) in SERVERS {
        let Some(v) = r.get(key, "fanout") else {
            continue;
        };
        for s in v["steps"].as_array().into_iter().flatten() {
            let _ = writeln!(
                t,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                fmt(num(s, "/offered_per_s"), 0),
                fmt(num(s, "/delivered_per_s"), 0),
                ms(num(s, "/p50_us")),
                ms(num(s, "/p99_us")),
                ms(num(s, "/max_us")),
                fmt(num(s, "/lost"), 0),
                fmt(num(s, "/duplicated"), 0),
                fmt(num(s, "/out_of_order"), 0),
                fmt(num(s, "/server_cpu_us_per_delivery"), 2),
                fmt(num(s, "/generator_cpu_us_per_delivery"), 2),
                if s["passed"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                },
            );
        }
    }
    t
}

/// Returns the RSS per connection of an idle level, counted from the server's size before the
/// first level (see `scenarios::idle`). Results written before the baseline was
/// recorded hold the first level's starting size, which is the same moment.
fn idle_kib_per_connection(levels: &Value, level: &Value) -> Option<f64> {
    let baseline = num(level, "/server_rss_baseline_kib")
        .or_else(|| num(&levels[0], "/server_rss_before_kib"))?;
    let connected = num(level, "/connected")?;
    let after = num(level, "/server_rss_after_kib")?;
    (connected > 0.0).then(|| (after - baseline).max(0.0) / connected)
}

fn idle_table(r: &Results) -> String {
    let mut t = String::from(
        "| Server | Connections | Connected | Open after the hold | Time to connect (s) | RSS per connection (KiB) | First error |\n|---|---|---|---|---|---|---|\n",
    );
    for (key, name) in SERVERS {
        let Some(v) = r.get(key, "idle") else {
            continue;
        };
        for l in v["levels"].as_array().into_iter().flatten() {
            let _ = writeln!(
                t,
                "| {name} | {} | {} | {} | {} | {} | {} |",
                fmt(num(l, "/connections"), 0),
                fmt(num(l, "/connected"), 0),
                fmt(num(l, "/still_open"), 0),
                fmt(num(l, "/connect_secs"), 1),
                fmt(idle_kib_per_connection(&v["levels"], l), 1),
                l["errors"][0]
                    .as_str()
                    .map(|e| e.replace('|', "/"))
                    .unwrap_or_default(),
            );
        }
    }
    t
}

fn storm_table(r: &Results) -> String {
    let mut t = String::from(
        "| Server | Clients | Connect: conn/s, median (range) of the rounds | failed | Reconnect: conn/s in the same round (range) | failed |\n|---|---|---|---|---|---|\n",
    );
    for (key, name) in SERVERS {
        let Some(v) = r.get(key, "storm") else {
            continue;
        };
        let _ = writeln!(
            t,
            "| {name} | {} | {} | {} | {} | {} |",
            fmt(num(v, "/connect/clients"), 0),
            with_spread(
                v,
                "/connect/connections_per_s",
                "/rounds",
                "/connect/connections_per_s",
                0
            ),
            fmt(num(v, "/connect/failed"), 0),
            with_spread(
                v,
                "/reconnect/connections_per_s",
                "/rounds",
                "/reconnect/connections_per_s",
                0
            ),
            fmt(num(v, "/reconnect/failed"), 0),
        );
    }
    t
}

fn rooms_table(r: &Results) -> String {
    let Some(v) = r.get("confab", "rooms") else {
        return "(no many-rooms result)".into();
    };
    let mut t = format!(
        "{} users in {} rooms.\n\n| Offered (deliveries/s) | Delivered/s | p50 (ms) | p99 (ms) | Lost | CPU/delivery (µs) | Passed |\n|---|---|---|---|---|---|---|\n",
        fmt(num(v, "/users"), 0),
        fmt(num(v, "/rooms"), 0)
    );
    for s in v["steps"].as_array().into_iter().flatten() {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} |",
            fmt(num(s, "/offered_per_s"), 0),
            fmt(num(s, "/delivered_per_s"), 0),
            ms(num(s, "/p50_us")),
            ms(num(s, "/p99_us")),
            fmt(num(s, "/lost"), 0),
            fmt(num(s, "/server_cpu_us_per_delivery"), 2),
            if s["passed"].as_bool() == Some(true) {
                "yes"
            } else {
                "no"
            },
        );
    }
    t
}

fn history_table(r: &Results) -> String {
    let mut t = String::from(
        "| Stored messages | Reads | Page size | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) |\n|---|---|---|---|---|---|---|\n",
    );
    for (key, v) in &r.files {
        if !key.starts_with("confab-history") {
            continue;
        }
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} |",
            fmt(num(v, "/stored_messages"), 0),
            fmt(num(v, "/reads"), 0),
            fmt(num(v, "/limit"), 0),
            ms(num(v, "/p50_us")),
            ms(num(v, "/p90_us")),
            ms(num(v, "/p99_us")),
            ms(num(v, "/max_us")),
        );
    }
    t
}

/// Idle levels that both `a` and `b` connected fully, smallest first, with each one's
/// RSS per connection.
fn idle_pairs(r: &Results, a: &str, b: &str) -> Vec<(f64, f64, f64)> {
    let levels = |k: &str| -> Vec<(f64, f64)> {
        let Some(levels) = r.get(k, "idle").map(|v| &v["levels"]) else {
            return Vec::new();
        };
        levels
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| num(l, "/connected") == num(l, "/connections"))
            .filter_map(|l| Some((num(l, "/connections")?, idle_kib_per_connection(levels, l)?)))
            .collect()
    };
    let la = levels(a);
    let lb = levels(b);
    let mut pairs: Vec<_> = la
        .iter()
        .filter_map(|(n, ka)| {
            lb.iter()
                .find(|(m, _)| m == n)
                .map(|(_, kb)| (*n, *ka, *kb))
        })
        .collect();
    pairs.sort_by(|x, y| x.0.total_cmp(&y.0));
    pairs
}

fn targets_table(r: &Results) -> String {
    let mut t = String::from("| Target | Measured | Met |\n|---|---|---|\n");
    let mut row = |target: &str, measured: String, met: Option<bool>| {
        let met = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "no ratio",
        };
        let _ = writeln!(t, "| {target} | {measured} | {met} |");
    };
    let cpu = |k: &str| {
        r.get(k, "fanout")
            .and_then(|v| num(v, "/at_cpu_rate/server_cpu_us_per_delivery"))
    };
    let max = |k: &str| {
        r.get(k, "fanout")
            .and_then(|v| num(v, "/max_passing_per_s"))
    };

    match (cpu("confab"), cpu("node")) {
        (Some(c), Some(n)) if n > 0.0 => row(
            "Fan-out CPU per delivery ≤ 1/10 of Node",
            format!("{c:.2} µs vs {n:.2} µs: {:.2}× Node's", c / n),
            Some(c <= n / 10.0),
        ),
        _ => row("Fan-out CPU per delivery ≤ 1/10 of Node", "–".into(), None),
    }
    // A highest passing rate of 0 means that no step passed, which gives no ratio.
    match (max("confab"), max("node")) {
        (Some(c), Some(n)) if n > 0.0 => row(
            "Highest passing fan-out rate ≥ 5× Node",
            format!("{c:.0}/s vs {n:.0}/s: {:.2}×", c / n),
            Some(c >= 5.0 * n),
        ),
        (Some(c), Some(n)) => row(
            "Highest passing fan-out rate ≥ 5× Node",
            format!("Confab {c:.0}/s, Node {n:.0}/s (0: no step passed)"),
            None,
        ),
        _ => row("Highest passing fan-out rate ≥ 5× Node", "–".into(), None),
    }
    match (max("confab"), max("reference")) {
        (Some(c), Some(b)) if c > 0.0 => row(
            "Fan-out within 2× of the bare WebSocket reference",
            format!("reference {b:.0}/s, Confab {c:.0}/s: {:.2}×", b / c),
            Some(b / c <= 2.0),
        ),
        (Some(c), Some(b)) => row(
            "Fan-out within 2× of the bare WebSocket reference",
            format!("reference {b:.0}/s, Confab {c:.0}/s (0: no step passed)"),
            Some(false),
        ),
        _ => row(
            "Fan-out within 2× of the bare WebSocket reference",
            "–".into(),
            None,
        ),
    }
    if let (Some(c), Some(b)) = (cpu("confab"), cpu("reference"))
        && b > 0.0
    {
        row(
            "Fan-out CPU per delivery within 2× of the reference",
            format!("{c:.2} µs vs {b:.2} µs: {:.2}×", c / b),
            Some(c <= 2.0 * b),
        );
    }
    let pairs = idle_pairs(r, "confab", "node");
    match pairs.last() {
        Some(&(_, c, node)) if node > 0.0 => row(
            "Idle memory per connection ≤ 1/3 of Node",
            pairs
                .iter()
                .map(|(n, c, node)| format!("at {n:.0}: {c:.1} KiB vs {node:.1} KiB"))
                .collect::<Vec<_>>()
                .join("; "),
            Some(c <= node / 3.0),
        ),
        _ => row("Idle memory per connection ≤ 1/3 of Node", "–".into(), None),
    }
    let held = r.get("confab", "idle").and_then(|v| {
        v["levels"]
            .as_array()?
            .iter()
            .filter_map(|l| Some((num(l, "/connections")?, num(l, "/still_open")?)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    });
    match held {
        Some((n, open)) => row(
            "19,500 idle connections held by one process",
            format!("{open:.0} of {n:.0} open after the hold"),
            Some(n >= 19_500.0 && open >= n),
        ),
        None => row(
            "19,500 idle connections held by one process",
            "–".into(),
            None,
        ),
    }
    let storm = |k: &str| {
        r.get(k, "storm")
            .and_then(|v| num(v, "/connect/connections_per_s"))
    };
    match (storm("confab"), storm("node")) {
        (Some(c), Some(n)) if n > 0.0 => row(
            "Connect storm ≥ 5× Node's connections per second",
            format!("{c:.0}/s vs {n:.0}/s: {:.2}×", c / n),
            Some(c >= 5.0 * n),
        ),
        _ => row(
            "Connect storm ≥ 5× Node's connections per second",
            "–".into(),
            None,
        ),
    }
    let biggest_history = r
        .files
        .iter()
        .filter(|(k, _)| k.starts_with("confab-history"))
        .filter_map(|(_, v)| Some((num(v, "/stored_messages")?, num(v, "/p99_us")?)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match biggest_history {
        Some((n, p99)) => row(
            "History page of 50: p99 < 5 ms with 10M stored",
            format!("{n:.0} stored: p99 {:.2} ms", p99 / 1000.0),
            Some(n >= 10_000_000.0 && p99 < 5000.0),
        ),
        None => row(
            "History page of 50: p99 < 5 ms with 10M stored",
            "–".into(),
            None,
        ),
    }
    t
}

fn capacity_model(r: &Results) -> String {
    let cpu = r
        .get("confab", "fanout")
        .and_then(|v| num(v, "/at_cpu_rate/server_cpu_us_per_delivery"));
    let per_conn = r.get("confab", "idle").and_then(|v| {
        let levels = &v["levels"];
        levels
            .as_array()?
            .iter()
            .filter_map(|l| Some((num(l, "/connections")?, idle_kib_per_connection(levels, l)?)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, k)| k)
    });
    let (Some(cpu), Some(kib)) = (cpu, per_conn) else {
        return "(needs Confab's fan-out and idle results)".into();
    };
    let per_core = 1e6 / cpu;
    let max_passing = r
        .get("confab", "fanout")
        .and_then(|v| num(v, "/max_passing_per_s"));
    let per_gib = 1024.0 * 1024.0 / kib;
    let mut t = String::new();
    let _ = writeln!(t, "| Quantity | Estimate |\n|---|---|");
    let _ = writeln!(
        t,
        "| Deliveries per second per core (1 / CPU per delivery) | {per_core:.0} |"
    );
    if let Some(max) = max_passing {
        let _ = writeln!(
            t,
            "| Deliveries per second per core at the highest passing fan-out rate, where frames share writes | {max:.0} |"
        );
    }
    let _ = writeln!(
        t,
        "| Idle connections per GiB (1 GiB / RSS per connection) | {per_gib:.0} |"
    );
    let _ = writeln!(
        t,
        "| One 32-core, 64 GiB machine: deliveries/s (32 × per core) | {:.0} |",
        32.0 * per_core
    );
    let _ = writeln!(
        t,
        "| One 32-core, 64 GiB machine: connections (48 GiB for connections) | {:.0} |",
        48.0 * per_gib
    );
    let _ = writeln!(
        t,
        "| Three such nodes: deliveries/s, if every delivery is local to its node | {:.0} |",
        3.0 * 32.0 * per_core
    );
    let _ = writeln!(
        t,
        "| Three such nodes: connections | {:.0} |",
        3.0 * 48.0 * per_gib
    );
    t
}

/// Plots one step field against the offered rate, a line per server.
fn plot_fanout(
    r: &Results,
    path: &Path,
    pointer: &str,
    label: &str,
    scale: f64,
) -> anyhow::Result<()> {
    let mut series = Vec::new();
    for (key, name) in SERVERS {
        let Some(v) = r.get(key, "fanout") else {
            continue;
        };
        let mut points: Vec<(f64, f64)> = v["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| Some((num(s, "/offered_per_s")?, num(s, pointer)? * scale)))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !points.is_empty() {
            series.push((name, points));
        }
    }
    let x_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .fold(1.0, f64::max);
    let y_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .fold(0.001, f64::max);

    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max * 1.05, 0.0..y_max * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("offered deliveries per second")
        .y_desc(label)
        .draw()?;
    for (i, (name, points)) in series.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
