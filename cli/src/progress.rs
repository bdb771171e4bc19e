//! Showing a running job: a live bar on a terminal (indicatif), a plain line every few seconds
//! otherwise, or nothing with `--quiet`. Everything goes to stderr; stdout keeps the result.

use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

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

pub struct Bars {
    multi: MultiProgress,
    main: ProgressBar,
    /// One line per cluster shard, by node, created when `shards` first shows up.
    shards: Vec<(String, ProgressBar)>,
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
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let main = multi.add(ProgressBar::new(BAR_LEN));
        main.set_style(
            ProgressStyle::with_template(
                "{spinner:.green} job {prefix} [{bar:30.cyan/blue}] {percent:>3}%  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("█▉▊▋▌▍▎▏ "),
        );
        main.enable_steady_tick(Duration::from_millis(100));
        Progress::Bar(Bars {
            multi,
            main,
            shards: Vec::new(),
            dry_run,
        })
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
            Progress::Bar(b) => {
                let _ = b.multi.println(line);
            }
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
            for (_, bar) in &b.shards {
                bar.finish();
            }
        }
    }
}

impl Bars {
    fn update(&mut self, job: &Fields) {
        let progress = job.float("progress").unwrap_or(0.0).clamp(0.0, 1.0);
        self.main.set_position((progress * BAR_LEN as f64) as u64);
        self.main.set_message(bar_message(job, self.dry_run));
        for shard in job.maps("shards") {
            let node = shard.text("node").unwrap_or("?").to_string();
            let line = shard_line(shard, self.dry_run);
            match self.shards.iter().find(|(n, _)| *n == node) {
                Some((_, bar)) => bar.set_message(line),
                None => {
                    let bar = self.multi.add(ProgressBar::new(1));
                    bar.set_style(
                        ProgressStyle::with_template("{msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    bar.set_message(line);
                    self.shards.push((node, bar));
                }
            }
        }
    }
}
