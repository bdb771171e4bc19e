//! Showing a running job: a live bar on a terminal (indicatif), a plain line every few seconds
//! otherwise, or nothing with `--quiet`. Everything goes to stderr; stdout keeps the result.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg, Termios};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::render::{bar_message, progress_line, shard_line};
use crate::reply::Fields;

/// The bar's length: progress is a fraction, shown in millionths.
const BAR_LEN: u64 = 1_000_000;
/// How often the plain line comes when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(3);

pub enum Progress {
    Bar(Bars),
    Plain { next: Instant, dry_run: bool },
    Quiet,
}

/// One bar; in a cluster sweep its message carries a line per shard under the counts.
pub struct Bars {
    main: ProgressBar,
    dry_run: bool,
}

impl Progress {
    pub fn new(terminal: bool, quiet: bool, dry_run: bool) -> Progress {
        if quiet {
            return Progress::Quiet;
        }
        if !terminal {
            return Progress::Plain {
                next: Instant::now() + PLAIN_EVERY,
                dry_run,
            };
        }
        let main =
            ProgressBar::with_draw_target(Some(BAR_LEN), ProgressDrawTarget::stderr_with_hz(10));
        main.set_style(
            ProgressStyle::with_template(
                "{spinner:.green} job {prefix} [{bar:25.cyan/blue}] {percent:>3}%  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("█▉▊▋▌▍▎▏ "),
        );
        main.enable_steady_tick(Duration::from_millis(100));
        quiet_terminal();
        Progress::Bar(Bars { main, dry_run })
    }

    /// The job has its id.
    pub fn started(&mut self, id: u64, what: &str) {
        match self {
            Progress::Bar(b) => b.main.set_prefix(id.to_string()),
            Progress::Plain { .. } => eprintln!("redis-sweep: job {id} started: {what}"),
            Progress::Quiet => {}
        }
    }

    /// A fresh SWEEP.STATUS of the job.
    pub fn update(&mut self, job: &Fields) {
        match self {
            Progress::Bar(b) => b.update(job),
            Progress::Plain { next, dry_run } => {
                if Instant::now() >= *next {
                    eprintln!("{}", progress_line(job, *dry_run));
                    *next = Instant::now() + PLAIN_EVERY;
                }
            }
            Progress::Quiet => {}
        }
    }

    /// A line of news (Ctrl-C received…), printed without breaking the bar.
    pub fn note(&self, line: &str) {
        match self {
            Progress::Bar(b) => b.main.println(line),
            Progress::Plain { .. } => eprintln!("{line}"),
            Progress::Quiet => {}
        }
    }

    /// The job has ended: leave the bar at its final state on the screen.
    pub fn finish(&mut self, job: &Fields) {
        if let Progress::Bar(b) = self {
            b.update(job);
            b.main.disable_steady_tick();
            if job.text("state") == Some("done") {
                b.main.finish();
            } else {
                b.main.abandon();
            }
        }
    }
}

impl Bars {
    fn update(&mut self, job: &Fields) {
        let progress = job.float("progress").unwrap_or(0.0).clamp(0.0, 1.0);
        self.main.set_position((progress * BAR_LEN as f64) as u64);
        let mut message = bar_message(job, self.dry_run);
        for shard in job.maps("shards") {
            message.push('\n');
            message += &shard_line(shard, self.dry_run);
        }
        self.main.set_message(message);
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// The terminal's settings before the bar turned its echo off.
static SAVED_TERMINAL: Mutex<Option<Termios>> = Mutex::new(None);

/// While the bar is drawn, the terminal does not echo what is typed: the `^C` it would print on
/// Ctrl-C (and any key) lands in the middle of the bar and leaves a stale copy of it on screen.
fn quiet_terminal() {
    let stderr = std::io::stderr();
    let Ok(saved) = tcgetattr(&stderr) else {
        return;
    };
    let mut quiet = saved.clone();
    quiet
        .local_flags
        .remove(LocalFlags::ECHO | LocalFlags::ECHOCTL);
    if tcsetattr(&stderr, SetArg::TCSANOW, &quiet).is_ok() {
        if let Ok(mut slot) = SAVED_TERMINAL.lock() {
            *slot = Some(saved);
        }
    }
}

/// Puts the terminal's echo back; also called on the way out after a second Ctrl-C.
pub fn restore_terminal() {
    let saved = SAVED_TERMINAL.lock().ok().and_then(|mut s| s.take());
    if let Some(saved) = saved {
        let _ = tcsetattr(std::io::stderr(), SetArg::TCSANOW, &saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::tests::cluster_job;

    #[test]
    fn the_bar_carries_a_line_per_shard() {
        let mut bars = Bars {
            main: ProgressBar::hidden(),
            dry_run: false,
        };
        bars.main.set_length(BAR_LEN);
        let job = Fields::from_value(&cluster_job(false)).unwrap();
        bars.update(&job);
        assert_eq!(bars.main.position(), BAR_LEN);
        let message = bars.main.message();
        let lines: Vec<&str> = message.lines().collect();
        assert_eq!(lines.len(), 4, "{message}");
        assert!(
            lines[1].starts_with("  scanned 2,000,000  deleted 999,990"),
            "{message}"
        );
        assert!(
            lines[2].starts_with("  127.0.0.1:7000        done"),
            "{message}"
        );
        assert!(
            lines[3].starts_with("  127.0.0.1:7001        running"),
            "{message}"
        );
    }
}
