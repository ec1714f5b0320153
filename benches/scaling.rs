//! Scaling curves: the load generator (`tally::loadgen`) run against a fresh
//! `tallyd` for growing account counts and growing journals, with the start-up
//! (recovery) time of `tallyd` on each resulting data directory.
//!
//! ```text
//! cargo build --release -p tally-server && cargo bench --bench scaling
//! cargo build --release -p tally-server && cargo bench --bench scaling -- --quick --out /tmp/scaling
//! ```
//!
//! Two series, each run on its own fresh data directory, one after the other:
//!
//! - **accounts**: 10^3, 10^4, 10^5, 10^6, 10^7 accounts (`--accounts-list`),
//!   500,000 transfers each (`--transfers`);
//! - **journal**: 10^5, 10^6, 10^7 transfers (`--journal-list`; 10^8 too with
//!   `--with-1e8`) over 10,000 accounts (`--accounts`).
//!
//! For each run: the load report (transfers/s, postings/s, batch latency),
//! tallyd's peak memory (VmHWM) over the run, the journal length, the data
//! directory's size; then tallyd is stopped (SIGTERM) and started again on the
//! directory, and the start-up time is measured from spawning the process to
//! its `tallyd listening on` line (it replays and verifies the whole journal
//! first), with its peak memory at that point. The directory is then removed.
//!
//! Output, in `--out DIR` (default `docs/scaling`): `scaling.csv` (one row per
//! run, written as each run ends), `scaling.md` (the table, with the machine)
//! and `scaling.svg` (six small plots: transfers/s, peak memory and start-up
//! time against accounts and against journal length).
//!
//! Other options: `--quick` (10^3 and 10^4 accounts with 10^4 transfers;
//! journals of 10^4 and 10^5 transfers over 1,000 accounts), `--series
//! accounts|journal|both`, `--work-dir DIR` (where the data directories go;
//! default the system's temporary directory), `--start-timeout SECONDS`
//! (3,600), and the workload options of `load`, applied to every run:
//! `--batch`, `--clients`, `--hot-accounts`, `--hot-share`,
//! `--two-phase-share`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use tally::loadgen::{self, RunOptions, Target};
use tally::workload::{json_number, peak_memory_kib, take_option, Workload};

struct Options {
    out: PathBuf,
    work_dir: PathBuf,
    accounts_list: Vec<usize>,
    transfers_for_accounts: usize,
    journal_list: Vec<usize>,
    accounts_for_journal: usize,
    series_accounts: bool,
    series_journal: bool,
    start_timeout: Duration,
    /// The workload options given, as a template for every run.
    template: Workload,
}

fn list(text: &str, flag: &str) -> Vec<usize> {
    text.split(',')
        .map(|n| {
            parse_count(n)
                .unwrap_or_else(|| panic!("{flag}: {n:?} is not a count (e.g. 1000 or 1e6)"))
        })
        .collect()
}

/// `1000`, `1_000` or `1e3`.
fn parse_count(text: &str) -> Option<usize> {
    let text = text.trim().replace('_', "");
    if let Some((mantissa, exponent)) = text.split_once(['e', 'E']) {
        let mantissa: usize = mantissa.parse().ok()?;
        let exponent: u32 = exponent.parse().ok()?;
        return mantissa.checked_mul(10usize.checked_pow(exponent)?);
    }
    text.parse().ok()
}

fn has_flag(args: &mut Vec<String>, flag: &str) -> bool {
    let before = args.len();
    args.retain(|arg| arg != flag);
    args.len() != before
}

impl Options {
    fn parse() -> Options {
        let mut args: Vec<String> = std::env::args().skip(1).collect();
        let quick = has_flag(&mut args, "--quick");
        let with_1e8 = has_flag(&mut args, "--with-1e8");
        let out = take_option(&mut args, "--out").unwrap_or_else(|| "docs/scaling".into());
        let work_dir = take_option(&mut args, "--work-dir")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let (mut accounts_list, mut transfers_for_accounts) =
            (vec![1_000, 10_000, 100_000, 1_000_000, 10_000_000], 500_000);
        let (mut journal_list, mut accounts_for_journal) =
            (vec![100_000, 1_000_000, 10_000_000], 10_000);
        if quick {
            (accounts_list, transfers_for_accounts) = (vec![1_000, 10_000], 10_000);
            (journal_list, accounts_for_journal) = (vec![10_000, 100_000], 1_000);
        }
        if with_1e8 {
            journal_list.push(100_000_000);
        }
        if let Some(text) = take_option(&mut args, "--accounts-list") {
            accounts_list = list(&text, "--accounts-list");
        }
        if let Some(text) = take_option(&mut args, "--journal-list") {
            journal_list = list(&text, "--journal-list");
        }
        if let Some(text) = take_option(&mut args, "--transfers") {
            transfers_for_accounts = parse_count(&text).expect("--transfers N");
        }
        if let Some(text) = take_option(&mut args, "--accounts") {
            accounts_for_journal = parse_count(&text).expect("--accounts N");
        }
        let (series_accounts, series_journal) = match take_option(&mut args, "--series").as_deref()
        {
            None | Some("both") => (true, true),
            Some("accounts") => (true, false),
            Some("journal") => (false, true),
            Some(other) => panic!("--series accounts|journal|both, not {other}"),
        };
        let start_timeout = take_option(&mut args, "--start-timeout")
            .map(|s| Duration::from_secs(s.parse().expect("--start-timeout SECONDS")))
            .unwrap_or(Duration::from_secs(3_600));
        // What is left are the workload options of `load` (--batch, --clients,
        // --hot-accounts, --hot-share, --two-phase-share); --server is refused.
        let template = Workload::from_arg_list(args, "--scaling-has-no-target", None);
        Options {
            out: PathBuf::from(out),
            work_dir,
            accounts_list,
            transfers_for_accounts,
            journal_list,
            accounts_for_journal,
            series_accounts,
            series_journal,
            start_timeout,
            template,
        }
    }

    /// The runs, in order: `(series, accounts, transfers)`.
    fn runs(&self) -> Vec<(&'static str, usize, usize)> {
        let mut runs = Vec::new();
        if self.series_accounts {
            for &accounts in &self.accounts_list {
                runs.push(("accounts", accounts, self.transfers_for_accounts));
            }
        }
        if self.series_journal {
            for &transfers in &self.journal_list {
                runs.push(("journal", self.accounts_for_journal, transfers));
            }
        }
        runs
    }
}

/// One run's figures: a row of the CSV.
#[derive(Debug, Clone)]
struct Row {
    series: &'static str,
    workload: Workload,
    journal_entries: u64,
    open_accounts_s: f64,
    elapsed_s: f64,
    transfers_per_s: f64,
    transactions_per_s: f64,
    postings_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    load_peak_mib: Option<f64>,
    data_dir_mib: f64,
    startup_s: f64,
    startup_peak_mib: Option<f64>,
}

const CSV_HEADER: &str = "series,accounts,transfers,batch,clients,hot_accounts,hot_share,two_phase_share,journal_entries,open_accounts_s,elapsed_s,transfers_per_s,transactions_per_s,postings_per_s,p50_ms,p99_ms,p99_9_ms,max_ms,load_peak_mib,data_dir_mib,startup_s,startup_peak_mib";

impl Row {
    fn csv(&self) -> String {
        let w = &self.workload;
        let opt = |v: Option<f64>| v.map(json_number).unwrap_or_default();
        [
            self.series.to_string(),
            w.accounts.to_string(),
            w.transfers.to_string(),
            w.batch.to_string(),
            w.clients.to_string(),
            w.hot_accounts.to_string(),
            json_number(w.hot_share),
            json_number(w.two_phase_share),
            self.journal_entries.to_string(),
            json_number(self.open_accounts_s),
            json_number(self.elapsed_s),
            json_number(self.transfers_per_s),
            json_number(self.transactions_per_s),
            json_number(self.postings_per_s),
            json_number(self.p50_ms),
            json_number(self.p99_ms),
            json_number(self.p999_ms),
            json_number(self.max_ms),
            opt(self.load_peak_mib),
            json_number(self.data_dir_mib),
            json_number(self.startup_s),
            opt(self.startup_peak_mib),
        ]
        .join(",")
    }
}

fn mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|kib| kib as f64 / 1024.0)
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Starts `tallyd` on an existing data directory and measures the time from
/// spawning it to its `tallyd listening on` line; returns that time and its
/// peak memory then, after stopping it with SIGTERM.
fn measure_startup(data_dir: &Path, timeout: Duration) -> (Duration, Option<u64>) {
    let spawned = Instant::now();
    let mut child = tally::tallyd_command(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tallyd");
    let (_, listening) = tally::await_listening(&mut child, timeout);
    let startup = listening - spawned;
    let peak = peak_memory_kib(child.id());
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stopping = Instant::now();
    loop {
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        if stopping.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (startup, peak)
}

async fn run_one(
    options: &Options,
    series: &'static str,
    accounts: usize,
    transfers: usize,
) -> Row {
    let workload = Workload {
        accounts,
        transfers,
        json: false,
        target: None,
        ..options.template.clone()
    };
    workload
        .check()
        .unwrap_or_else(|problem| panic!("{problem}"));
    std::fs::create_dir_all(&options.work_dir).expect("work directory");
    let dir = tempfile::Builder::new()
        .prefix(&format!("tally-scaling-{series}-{accounts}-{transfers}-"))
        .tempdir_in(&options.work_dir)
        .expect("data directory");
    let server = tally::Tallyd::start(dir.path());
    let target = Target {
        url: server.url.clone(),
        api_key: Some(tally::ADMIN_TOKEN.to_string()),
    };
    let outcome = loadgen::run(&workload, &target, RunOptions::default())
        .await
        .unwrap_or_else(|error| {
            panic!("{series} run of {accounts} accounts, {transfers} transfers: {error}")
        });
    let load_peak = peak_memory_kib(server.pid());
    tokio::task::spawn_blocking(move || server.terminate())
        .await
        .expect("stop tallyd");
    let data_dir_mib = dir_bytes(dir.path()) as f64 / (1024.0 * 1024.0);
    let path = dir.path().to_path_buf();
    let timeout = options.start_timeout;
    let (startup, startup_peak) =
        tokio::task::spawn_blocking(move || measure_startup(&path, timeout))
            .await
            .expect("start-up measurement");
    let report = &outcome.report;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Row {
        series,
        workload,
        journal_entries: outcome.journal_after,
        open_accounts_s: report.open_elapsed.as_secs_f64(),
        elapsed_s: report.elapsed.as_secs_f64(),
        transfers_per_s: report.transfers_per_second(),
        transactions_per_s: report.transactions_per_second(),
        postings_per_s: report.postings_per_second(),
        p50_ms: ms(report.latency.p50),
        p99_ms: ms(report.latency.p99),
        p999_ms: ms(report.latency.p999),
        max_ms: ms(report.latency.max),
        load_peak_mib: mib(load_peak),
        data_dir_mib,
        startup_s: startup.as_secs_f64(),
        startup_peak_mib: mib(startup_peak),
    }
}

/// The bench's allocator is tallyd's (mimalloc): the bench shares the
/// machine's cores with tallyd, and with the system allocator it spent a
/// tenth of them in malloc and free (docs/benchmarks.md, round 7).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let options = Options::parse();
    let runs = options.runs();
    assert!(!runs.is_empty(), "nothing to run");
    std::fs::create_dir_all(&options.out).expect("output directory");
    let csv_path = options.out.join("scaling.csv");
    let mut csv = format!("{CSV_HEADER}\n");
    std::fs::write(&csv_path, &csv).expect("write scaling.csv");
    let mut rows = Vec::new();
    for (series, accounts, transfers) in runs {
        eprintln!("scaling: {series} series, {accounts} accounts, {transfers} transfers ...");
        let row = run_one(&options, series, accounts, transfers).await;
        eprintln!(
            "scaling:   {:.0} transfers/s, p99 {:.1} ms, peak {} MiB, journal {} entries ({:.0} MiB), start-up {:.2} s",
            row.transfers_per_s,
            row.p99_ms,
            row.load_peak_mib.map_or("n/a".into(), |m| format!("{m:.0}")),
            row.journal_entries,
            row.data_dir_mib,
            row.startup_s
        );
        csv.push_str(&row.csv());
        csv.push('\n');
        std::fs::write(&csv_path, &csv).expect("write scaling.csv");
        rows.push(row);
    }
    let machine = machine();
    std::fs::write(options.out.join("scaling.md"), table(&rows, &machine)).expect("scaling.md");
    std::fs::write(options.out.join("scaling.svg"), plots(&rows, &machine)).expect("scaling.svg");
    println!(
        "scaling: wrote scaling.csv, scaling.md and scaling.svg in {}",
        options.out.display()
    );
    print!("{}", table(&rows, &machine));
}

/// The date, CPU, core count and memory, for the table and the plot.
fn machine() -> String {
    let seconds = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (year, month, day) = civil_date(seconds / 86_400);
    let (hour, minute) = ((seconds % 86_400) / 3_600, (seconds % 3_600) / 60);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.0} GiB", kib / (1024.0 * 1024.0)))
        })
        .unwrap_or_else(|| "unknown memory".into());
    format!(
        "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC, {cores} cores ({cpu}), {memory}"
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_date(days: u64) -> (i64, u32, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `1234567` as `1,234,567`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn table(rows: &[Row], machine: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Scaling runs\n");
    let _ = writeln!(
        md,
        "`cargo bench --bench scaling` — {machine}. Each run on a fresh data directory; \
         start-up is spawn to `tallyd listening on` on the run's directory after SIGTERM.\n"
    );
    if let Some(first) = rows.first() {
        let _ = writeln!(md, "Workload of every run: {}.\n", {
            let w = &first.workload;
            let mut text = format!("batch {}, {} client(s)", w.batch, w.clients);
            if w.hot_accounts > 0 {
                let _ = write!(
                    text,
                    ", {} hot account(s) at share {}",
                    w.hot_accounts, w.hot_share
                );
            }
            if w.two_phase_share > 0.0 {
                let _ = write!(text, ", two-phase share {}", w.two_phase_share);
            }
            text
        });
    }
    let _ = writeln!(
        md,
        "| series | accounts | transfers | journal entries | transfers/s | postings/s | batch p50 | p99 | tallyd peak memory (run) | data directory | start-up | memory after start-up |"
    );
    let _ = writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mem = |v: Option<f64>| v.map_or("n/a".into(), |m| format!("{} MiB", thousands(m)));
    for row in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {:.0} ms | {:.0} ms | {} | {} MiB | {:.2} s | {} |",
            row.series,
            thousands(row.workload.accounts as f64),
            thousands(row.workload.transfers as f64),
            thousands(row.journal_entries as f64),
            thousands(row.transfers_per_s),
            thousands(row.postings_per_s),
            row.p50_ms,
            row.p99_ms,
            mem(row.load_peak_mib),
            thousands(row.data_dir_mib),
            row.startup_s,
            mem(row.startup_peak_mib),
        );
    }
    md
}

// ---------------------------------------------------------------------------
// A small SVG emitter: line plots with a log-scale x axis.

struct Series {
    name: &'static str,
    color: &'static str,
    points: Vec<(f64, f64)>,
}

struct Panel {
    title: &'static str,
    x_label: &'static str,
    y_label: &'static str,
    series: Vec<Series>,
}

const PANEL_WIDTH: f64 = 340.0;
const PANEL_HEIGHT: f64 = 250.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A round step for about five ticks up to `max`.
fn nice_step(max: f64) -> f64 {
    let raw = (max / 5.0).max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// A tick label: 1.5k, 2M, 0.25.
fn short(value: f64) -> String {
    let (scaled, suffix) = if value.abs() >= 1e6 {
        (value / 1e6, "M")
    } else if value.abs() >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    let text = format!("{scaled:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{suffix}")
}

fn panel(svg: &mut String, left: f64, top: f64, panel: &Panel) {
    let (plot_left, plot_top) = (left + 58.0, top + 30.0);
    let (plot_width, plot_height) = (PANEL_WIDTH - 58.0 - 14.0, PANEL_HEIGHT - 30.0 - 44.0);
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" font-size="13" font-weight="bold" text-anchor="middle">{}</text>"#,
        left + PANEL_WIDTH / 2.0,
        top + 16.0,
        escape(panel.title)
    );
    let points: Vec<(f64, f64)> = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(x, y)| *x > 0.0 && y.is_finite())
        .collect();
    let _ = writeln!(
        svg,
        r##"<rect x="{plot_left:.1}" y="{plot_top:.1}" width="{plot_width:.1}" height="{plot_height:.1}" fill="none" stroke="#888"/>"##
    );
    if points.is_empty() {
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle" fill="#888">no data</text>"##,
            plot_left + plot_width / 2.0,
            plot_top + plot_height / 2.0
        );
        return;
    }
    // x: decades covering the points; y: 0 to a round maximum.
    let log = |x: f64| x.log10();
    // (A point just past a decade, like 101,010 journal entries, does not open
    // a whole decade more.)
    let low = points.iter().map(|p| log(p.0)).fold(f64::MAX, f64::min);
    let high = points.iter().map(|p| log(p.0)).fold(f64::MIN, f64::max);
    let mut x_low = (low + 0.05).floor().min(low);
    let mut x_high = (high - 0.05).ceil().max(high);
    if x_high - x_low < 1.0 {
        let middle = (x_low + x_high) / 2.0;
        (x_low, x_high) = (middle - 0.5, middle + 0.5);
    }
    let y_max_data = points.iter().map(|p| p.1).fold(0.0, f64::max);
    // Room above the data for the legend, when there is one.
    let headroom = if panel.series.len() > 1 { 1.3 } else { 1.05 };
    let step = nice_step(if y_max_data > 0.0 {
        y_max_data * headroom
    } else {
        1.0
    });
    let y_max = ((y_max_data * headroom) / step).ceil().max(1.0) * step;
    let sx = |x: f64| plot_left + (log(x) - x_low) / (x_high - x_low) * plot_width;
    let sy = |y: f64| plot_top + plot_height - y / y_max * plot_height;

    let mut decade = x_low.ceil() as i32;
    while f64::from(decade) <= x_high {
        let x = plot_left + (f64::from(decade) - x_low) / (x_high - x_low) * plot_width;
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{plot_top:.1}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" font-size="11" text-anchor="middle">10<tspan dy="-5" font-size="8">{decade}</tspan></text>"##,
            plot_top + plot_height,
            plot_top + plot_height + 15.0
        );
        decade += 1;
    }
    let mut tick = 0.0;
    while tick <= y_max + step / 2.0 {
        let y = sy(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{plot_left:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
            plot_left + plot_width,
            plot_left - 4.0,
            y + 3.5,
            short(tick)
        );
        tick += step;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
        plot_left + plot_width / 2.0,
        plot_top + plot_height + 32.0,
        escape(panel.x_label)
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate({:.1} {:.1}) rotate(-90)" font-size="11" text-anchor="middle">{}</text>"#,
        left + 13.0,
        plot_top + plot_height / 2.0,
        escape(panel.y_label)
    );
    for (index, series) in panel.series.iter().enumerate() {
        let mut points: Vec<(f64, f64)> = series
            .points
            .iter()
            .copied()
            .filter(|(x, y)| *x > 0.0 && y.is_finite())
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
            path.join(" "),
            series.color
        );
        for &(x, y) in &points {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"><title>{}: {} at {}</title></circle>"#,
                sx(x),
                sy(y),
                series.color,
                escape(series.name),
                short(y),
                thousands(x)
            );
        }
        if panel.series.len() > 1 {
            let y = plot_top + 12.0 + 14.0 * index as f64;
            let _ = writeln!(
                svg,
                r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"/><text x="{:.1}" y="{:.1}" font-size="10">{}</text>"#,
                plot_left + 8.0,
                y - 3.5,
                plot_left + 24.0,
                y - 3.5,
                series.color,
                plot_left + 28.0,
                y,
                escape(series.name)
            );
        }
    }
}

fn plots(rows: &[Row], machine: &str) -> String {
    const BLUE: &str = "#1f77b4";
    const ORANGE: &str = "#ff7f0e";
    let pick = |series: &str, x: fn(&Row) -> f64, y: fn(&Row) -> Option<f64>| {
        rows.iter()
            .filter(|r| r.series == series)
            .filter_map(|r| y(r).map(|y| (x(r), y)))
            .collect::<Vec<_>>()
    };
    let by_accounts: fn(&Row) -> f64 = |r| r.workload.accounts as f64;
    let by_journal: fn(&Row) -> f64 = |r| r.journal_entries as f64;
    let mut panels = Vec::new();
    for (series, x_label, x) in [
        ("accounts", "accounts", by_accounts),
        ("journal", "journal entries", by_journal),
    ] {
        let titles = if series == "accounts" {
            [
                "Throughput vs accounts",
                "Memory vs accounts",
                "Start-up vs accounts",
            ]
        } else {
            [
                "Throughput vs journal",
                "Memory vs journal",
                "Start-up vs journal",
            ]
        };
        panels.push(Panel {
            title: titles[0],
            x_label,
            y_label: "transfers/s",
            series: vec![Series {
                name: "transfers/s",
                color: BLUE,
                points: pick(series, x, |r| Some(r.transfers_per_s)),
            }],
        });
        panels.push(Panel {
            title: titles[1],
            x_label,
            y_label: "tallyd peak memory (MiB)",
            series: vec![
                Series {
                    name: "during the run",
                    color: BLUE,
                    points: pick(series, x, |r| r.load_peak_mib),
                },
                Series {
                    name: "after start-up",
                    color: ORANGE,
                    points: pick(series, x, |r| r.startup_peak_mib),
                },
            ],
        });
        panels.push(Panel {
            title: titles[2],
            x_label,
            y_label: "start-up (s)",
            series: vec![Series {
                name: "start-up",
                color: BLUE,
                points: pick(series, x, |r| Some(r.startup_s)),
            }],
        });
    }
    let width = PANEL_WIDTH * 3.0;
    let height = PANEL_HEIGHT * 2.0 + 40.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="20" font-size="14" text-anchor="middle">Tally scaling (cargo bench --bench scaling): {}</text>"#,
        width / 2.0,
        escape(machine)
    );
    for (index, p) in panels.iter().enumerate() {
        let left = PANEL_WIDTH * (index % 3) as f64;
        let top = 30.0 + PANEL_HEIGHT * (index / 3) as f64;
        panel(&mut svg, left, top, p);
    }
    svg.push_str("</svg>\n");
    svg
}
