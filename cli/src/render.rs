//! What a person reads: the progress line, the summary at the end, and the tables of `status`.
//! Pure functions of a reply, so the tests pin them down.

use crate::reply::{Fields, Item};

/// Fields the summary shows in its own way; any other field is listed after them as it came.
const SUMMARY_KNOWN: &[&str] = &[
    "id",
    "state",
    "pattern",
    "db",
    "progress",
    "scanned",
    "matched",
    "deleted",
    "denied",
    "expired",
    "elapsed_ms",
    "slices",
    "shards",
];

/// 1234567 → "1,234,567".
pub fn group(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 2290 → "2.29 s", 65000 → "1m05s", 3723000 → "1h02m03s", 87 → "87 ms".
pub fn duration_ms(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.2} s", ms as f64 / 1000.0)
    } else {
        let s = ms / 1000;
        if s < 3600 {
            format!("{}m{:02}s", s / 60, s % 60)
        } else {
            format!("{}h{:02}m{:02}s", s / 3600, (s / 60) % 60, s % 60)
        }
    }
}

/// Keys per second, or None before there is a meaningful time to divide by.
pub fn rate(keys: i64, elapsed_ms: i64) -> Option<i64> {
    (elapsed_ms > 0).then(|| (keys as f64 * 1000.0 / elapsed_ms as f64).round() as i64)
}

/// Time left, from the job's own progress estimate: elapsed × (1 − p) / p.
pub fn eta_ms(progress: f64, elapsed_ms: i64) -> Option<i64> {
    (progress > 0.0 && progress < 1.0 && elapsed_ms > 0)
        .then(|| (elapsed_ms as f64 * (1.0 - progress) / progress).round() as i64)
}

fn count(job: &Fields, name: &str) -> i64 {
    job.int(name).unwrap_or(0)
}

fn pattern_of(job: &Fields) -> String {
    job.text("pattern").unwrap_or("?").to_string()
}

/// The counts part of a progress report, shared by the bar and the plain line:
/// `scanned 902,331  deleted 451,002  412,000 keys/s  elapsed 2.19 s  ETA 2.67 s`.
pub fn progress_counts(job: &Fields, dry_run: bool) -> String {
    let elapsed = count(job, "elapsed_ms");
    let scanned = count(job, "scanned");
    let mut out = format!("scanned {}", group(scanned));
    if dry_run {
        out += &format!("  matched {}", group(count(job, "matched")));
    } else {
        out += &format!("  deleted {}", group(count(job, "deleted")));
    }
    if let Some(r) = rate(scanned, elapsed) {
        out += &format!("  {} keys/s", group(r));
    }
    out += &format!("  elapsed {}", duration_ms(elapsed));
    if let Some(eta) = job.float("progress").and_then(|p| eta_ms(p, elapsed)) {
        out += &format!("  ETA {}", duration_ms(eta));
    }
    out
}

/// The message of the progress bar: its time on the bar's line, the counts on the line below.
pub fn bar_message(job: &Fields, dry_run: bool) -> String {
    let elapsed = count(job, "elapsed_ms");
    let scanned = count(job, "scanned");
    let mut first = format!("elapsed {}", duration_ms(elapsed));
    if let Some(eta) = job.float("progress").and_then(|p| eta_ms(p, elapsed)) {
        first += &format!("  ETA {}", duration_ms(eta));
    }
    let mut second = format!("scanned {}", group(scanned));
    if dry_run {
        second += &format!("  matched {}", group(count(job, "matched")));
    } else {
        second += &format!("  deleted {}", group(count(job, "deleted")));
    }
    if let Some(r) = rate(scanned, elapsed) {
        second += &format!("  {} keys/s", group(r));
    }
    format!("{first}\n  {second}")
}

/// The line printed every few seconds when stderr is not a terminal.
pub fn progress_line(job: &Fields, dry_run: bool) -> String {
    let percent = job.float("progress").unwrap_or(0.0) * 100.0;
    format!(
        "redis-sweep: job {} {} {percent:.1}%  {}",
        count(job, "id"),
        job.text("state").unwrap_or("running"),
        progress_counts(job, dry_run)
    )
}

/// One line per shard under the bar in a cluster sweep.
pub fn shard_line(shard: &Fields, dry_run: bool) -> String {
    let node = shard.text("node").unwrap_or("?");
    let state = shard.text("state").unwrap_or("?");
    let second = if dry_run {
        format!("matched {}", group(count(shard, "matched")))
    } else {
        format!("deleted {}", group(count(shard, "deleted")))
    };
    format!(
        "  {node:<21} {state:<9} scanned {}  {second}",
        group(count(shard, "scanned"))
    )
}

/// The summary a sweep ends with, for a person (and to paste into a ticket).
pub fn summary(job: &Fields, dry_run: bool) -> String {
    let state = job.text("state").unwrap_or("unknown");
    let elapsed = count(job, "elapsed_ms");
    let (scanned, matched, deleted) = (
        count(job, "scanned"),
        count(job, "matched"),
        count(job, "deleted"),
    );
    let (denied, expired) = (count(job, "denied"), count(job, "expired"));
    let mut out = String::new();
    let headline = match state {
        "done" if dry_run => "dry run done".to_string(),
        "running" => "still running".to_string(),
        other => other.to_string(),
    };
    out += &format!(
        "{headline}: job {} '{}' on db {}",
        count(job, "id"),
        pattern_of(job),
        count(job, "db")
    );
    if state != "done" {
        if let Some(p) = job.float("progress") {
            out += &format!(", stopped at {:.1}%", p * 100.0);
        }
    }
    out.push('\n');
    let mut line = |name: &str, value: String| out += &format!("  {name:<12}{value:>13}\n");
    if dry_run {
        line("would delete", group(matched - denied - expired));
    } else {
        line("deleted", group(deleted));
    }
    line("denied", group(denied));
    line("expired", group(expired));
    line("matched", group(matched));
    line("scanned", group(scanned));
    line("elapsed", duration_ms(elapsed));
    if let Some(r) = rate(scanned, elapsed) {
        let verb = if dry_run { "matched" } else { "deleted" };
        let second = rate(if dry_run { matched } else { deleted }, elapsed).unwrap_or(0);
        out += &format!(
            "  {:<12}{:>13} keys scanned/s, {} {verb}/s\n",
            "rate",
            group(r),
            group(second)
        );
    }
    for (name, item) in &job.0 {
        if !SUMMARY_KNOWN.contains(&name.as_str()) {
            out += &format!("  {name:<12}{:>13}\n", item.display());
        }
    }
    let shards = job.maps("shards");
    if !shards.is_empty() {
        out += &indent(&table(&shards, &shard_columns(&shards)), "  ");
    }
    out
}

/// The columns of a shard table: `node`, `state`, then every other field in the order met.
fn shard_columns(shards: &[&Fields]) -> Vec<String> {
    let mut cols: Vec<String> = vec!["node".into(), "state".into()];
    for s in shards {
        for (name, _) in &s.0 {
            if !cols.contains(name) {
                cols.push(name.clone());
            }
        }
    }
    cols
}

/// The columns of `status` without an id.
pub const STATUS_COLUMNS: &[&str] = &[
    "id",
    "state",
    "pattern",
    "db",
    "progress",
    "scanned",
    "matched",
    "deleted",
    "denied",
    "expired",
    "elapsed_ms",
];

/// Columns for a list of jobs: the usual ones, plus `nodes` when some job has it.
pub fn status_columns(jobs: &[&Fields]) -> Vec<String> {
    let mut cols: Vec<String> = STATUS_COLUMNS.iter().map(|c| c.to_string()).collect();
    if jobs.iter().any(|j| j.get("nodes").is_some()) {
        cols.push("nodes".into());
    }
    cols
}

/// A plain text table with a header row: numbers right-aligned, text left-aligned.
pub fn table(rows: &[&Fields], columns: &[String]) -> String {
    let cells: Vec<Vec<(String, bool)>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| match row.get(c) {
                    Some(Item::Int(i)) => (i.to_string(), true),
                    Some(Item::Float(f)) => (format!("{f}"), true),
                    Some(other) => (other.display(), false),
                    None => (String::new(), false),
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].0.chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let header: Vec<String> = columns
        .iter()
        .zip(&widths)
        .map(|(c, w)| format!("{:<w$}", c.to_uppercase()))
        .collect();
    out += header.join("  ").trim_end();
    out.push('\n');
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|((text, numeric), w)| {
                if *numeric {
                    format!("{text:>w$}")
                } else {
                    format!("{text:<w$}")
                }
            })
            .collect();
        out += line.join("  ").trim_end();
        out.push('\n');
    }
    out
}

/// One job, field by field (`status ID`, `cancel ID`), then its shards as a table.
pub fn detail(job: &Fields) -> String {
    let width = job.0.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (name, item) in &job.0 {
        if name != "shards" {
            out += &format!("{name:<width$}  {}\n", item.display());
        }
    }
    let shards = job.maps("shards");
    if !shards.is_empty() {
        out += "shards\n";
        out += &indent(&table(&shards, &shard_columns(&shards)), "  ");
    }
    out
}

fn indent(text: &str, by: &str) -> String {
    text.lines().map(|l| format!("{by}{l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::tests::{cluster_job, job_value};
    use redis::Value;

    fn job(extra: Vec<(&str, Value)>) -> Fields {
        Fields::from_value(&job_value(false, extra)).unwrap()
    }

    #[test]
    fn numbers_and_durations() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(2_000_000), "2,000,000");
        assert_eq!(group(-1234), "-1,234");
        assert_eq!(group(i64::MIN), "-9,223,372,036,854,775,808");
        assert_eq!(duration_ms(87), "87 ms");
        assert_eq!(duration_ms(2290), "2.29 s");
        assert_eq!(duration_ms(65_000), "1m05s");
        assert_eq!(duration_ms(3_723_000), "1h02m03s");
        assert_eq!(duration_ms(-5), "0 ms");
        assert_eq!(rate(2_000_000, 2290), Some(873_362));
        assert_eq!(rate(5, 0), None);
        assert_eq!(eta_ms(0.25, 1000), Some(3000));
        assert_eq!(eta_ms(0.0, 1000), None);
        assert_eq!(eta_ms(1.0, 1000), None);
    }

    #[test]
    fn summary_of_a_done_sweep() {
        assert_eq!(
            summary(&job(vec![]), false),
            "done: job 7 'image_proxy:*' on db 0\n\
             \x20 deleted           999,990\n\
             \x20 denied                  4\n\
             \x20 expired                 6\n\
             \x20 matched         1,000,000\n\
             \x20 scanned         2,000,000\n\
             \x20 elapsed            2.29 s\n\
             \x20 rate              873,362 keys scanned/s, 436,677 deleted/s\n"
        );
    }

    #[test]
    fn summary_of_a_dry_run_and_of_a_cancelled_sweep() {
        let dry = summary(&job(vec![]), true);
        assert!(dry.starts_with("dry run done: job 7"), "{dry}");
        assert!(dry.contains("  would delete      999,990\n"), "{dry}");
        assert!(dry.contains("matched/s"), "{dry}");
        let v = Value::Array(vec![
            Value::BulkString(b"id".to_vec()),
            Value::Int(3),
            Value::BulkString(b"state".to_vec()),
            Value::BulkString(b"cancelled".to_vec()),
            Value::BulkString(b"progress".to_vec()),
            Value::BulkString(b"0.4512".to_vec()),
        ]);
        let cancelled = summary(&Fields::from_value(&v).unwrap(), false);
        assert!(
            cancelled.starts_with("cancelled: job 3 '?' on db 0, stopped at 45.1%\n"),
            "{cancelled}"
        );
    }

    #[test]
    fn summary_shows_nodes_shards_and_unknown_fields() {
        let s = summary(&Fields::from_value(&cluster_job(false)).unwrap(), false);
        assert!(s.contains("  nodes                   3\n"), "{s}");
        assert!(s.contains("  or               a:*, b:*\n"), "{s}");
        assert!(
            s.contains("NODE            STATE    SCANNED  DELETED  FLAVOUR"),
            "{s}"
        );
        assert!(
            s.contains("127.0.0.1:7001  running       20       10  unknown-to-us"),
            "{s}"
        );
    }

    #[test]
    fn progress_reports() {
        let mut j = job(vec![]);
        for (n, v) in j.0.iter_mut() {
            if n == "progress" {
                *v = Item::Float(0.25);
            }
            if n == "state" {
                *v = Item::Text("running".into());
            }
        }
        assert_eq!(
            progress_line(&j, false),
            "redis-sweep: job 7 running 25.0%  scanned 2,000,000  deleted 999,990  873,362 keys/s  elapsed 2.29 s  ETA 6.87 s"
        );
        assert!(progress_counts(&j, true).contains("matched 1,000,000"));
        assert_eq!(
            bar_message(&j, false),
            "elapsed 2.29 s  ETA 6.87 s\n  scanned 2,000,000  deleted 999,990  873,362 keys/s"
        );
        let shards = Fields::from_value(&cluster_job(true)).unwrap();
        assert_eq!(
            shard_line(shards.maps("shards")[1], false),
            "  127.0.0.1:7001        running   scanned 20  deleted 10"
        );
    }

    #[test]
    fn status_table_and_detail() {
        let a = job(vec![]);
        let b = Fields::from_value(&cluster_job(false)).unwrap();
        let rows = [&a, &b];
        let t = table(&rows, &status_columns(&rows));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("ID  STATE  PATTERN        DB  PROGRESS  SCANNED"),
            "{t}"
        );
        assert!(lines[0].ends_with("NODES"), "{t}");
        assert!(
            lines[1].starts_with(" 7  done   image_proxy:*   0         1  2000000"),
            "{t}"
        );
        let d = detail(&b);
        assert!(d.starts_with("id          7\nstate       done\n"), "{d}");
        assert!(d.contains("\nshards\n  NODE "), "{d}");
    }
}
