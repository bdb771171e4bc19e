//! `redis-sweep` as a person sees it: in a real terminal (tmux), reading the screen with
//! `capture-pane` and typing with `send-keys`. Ignored by `cargo test`; `make test-tty` runs them
//! (scripts/setup.sh installs tmux).

#[path = "../../tests/common/mod.rs"]
mod common;

mod run;

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::ops::{dbsize, populate, status};
use common::Server;
use run::BIN;

const WAIT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(20);
const KEYS: usize = 2_000_000;

/// A tmux server of its own (its own socket file), with one window running a shell command;
/// killed, and its socket removed, on drop.
struct Tmux {
    socket: std::path::PathBuf,
}

impl Tmux {
    fn run(name: &str, command: &str) -> Tmux {
        let socket =
            std::env::temp_dir().join(format!("redis-sweep-tmux-{}-{name}", std::process::id()));
        let tmux = Tmux { socket };
        // A shell that prints the exit code, then waits to be read; 100x24 like a small terminal.
        let shell = format!("{command}; echo exit=$?; sleep 600");
        tmux.cmd(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "100",
            "-y",
            "24",
            &shell,
        ]);
        tmux
    }

    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .output()
            .unwrap_or_else(|e| panic!("cannot run tmux ({e}): run scripts/setup.sh"));
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "t"])
    }

    /// Polls the screen until `f` accepts it; returns that screen.
    fn wait_for(&self, what: &str, mut f: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if f(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{screen}"
            );
            thread::sleep(POLL);
        }
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend(keys);
        self.cmd(&args);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The number after `word ` on the screen (`scanned 1,234` → 1234).
fn number_after(screen: &str, word: &str) -> Option<i64> {
    let at = screen.find(&format!("{word} "))? + word.len() + 1;
    let digits: String = screen[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The bar's line: `⠙ job 3 [████      ]  45%  elapsed …`, and its percentage.
fn bar(screen: &str) -> Option<(String, i64)> {
    let line = screen
        .lines()
        .find(|l| l.contains(" job ") && l.contains('['))?;
    let after = &line[line.find(']')? + 1..];
    let percent = after
        .split_whitespace()
        .next()?
        .strip_suffix('%')?
        .parse()
        .ok()?;
    Some((line.to_string(), percent))
}

fn command_line(server: &Server, args: &str) -> String {
    format!("{BIN} -u redis://127.0.0.1:{} {args}", server.port)
}

#[test]
#[ignore = "needs tmux and a 2,000,000-key dataset: run by `make test-tty`"]
fn the_bar_moves_and_ctrl_c_cancels_the_sweep() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, KEYS, "tty");
    let tmux = Tmux::run("bar", &command_line(&server, "clear 'tty:*'"));

    // The bar shows up with counts, a rate and an estimate, then moves.
    let first = tmux.wait_for("the bar with keys scanned", |s| {
        bar(s).is_some() && number_after(s, "scanned").unwrap_or(0) > 0 && s.contains("ETA")
    });
    let scanned_first = number_after(&first, "scanned").unwrap();
    let (_, percent_first) = bar(&first).unwrap();
    assert!(first.contains("keys/s"), "{first}");
    assert!(first.contains("deleted "), "{first}");
    let moved = tmux.wait_for("the bar to move", |s| {
        number_after(s, "scanned").unwrap_or(0) > scanned_first
    });
    let (line, percent) = bar(&moved).unwrap();
    assert!(percent >= percent_first, "{first}\n---\n{moved}");
    assert!(
        percent < 100,
        "the sweep ended before Ctrl-C: make KEYS larger\n{moved}"
    );
    let id: i64 = line
        .split_whitespace()
        .skip_while(|w| *w != "job")
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no job id in {line:?}"));

    // Ctrl-C: the job is cancelled, the summary gives the counts reached, exit code 5.
    tmux.keys(&["C-c"]);
    let end = tmux.wait_for("the exit code", |s| s.contains("exit="));
    assert!(end.contains("exit=5"), "{end}");
    assert!(
        end.contains(&format!("cancelled: job {id} 'tty:*' on db 0, stopped at")),
        "{end}"
    );
    assert!(
        !end.contains("^C"),
        "the terminal echoed ^C into the bar:\n{end}"
    );
    let job = status(&mut con, id);
    assert_eq!(job["state"], "cancelled");
    let deleted: i64 = job["deleted"].parse().unwrap();
    assert!(
        end.contains(&format!("deleted {:>17}", group(deleted))),
        "the summary's deleted is the server's {deleted}:\n{end}"
    );
    assert!(deleted > 0 && deleted < KEYS as i64, "{job:?}");

    // And the keys stop going: DBSIZE holds still (the job stops before the next slice).
    let left = dbsize(&mut con);
    assert_eq!(left, KEYS as i64 - deleted);
    let watch_until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < watch_until {
        assert_eq!(dbsize(&mut con), left, "keys still going after the cancel");
        thread::sleep(POLL);
    }
    assert_eq!(
        server.info_field("sweep", "sweep_jobs_running").as_deref(),
        Some("0")
    );
}

#[test]
#[ignore = "needs tmux: run by `make test-tty`"]
fn sweeping_every_key_asks_first_in_a_terminal() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 1000, "k");

    let tmux = Tmux::run("no", &command_line(&server, "clear '*'"));
    let prompt = tmux.wait_for("the prompt", |s| s.contains("Type yes to go on:"));
    assert!(
        prompt.contains("this deletes every key of db 0 on 127.0.0.1:"),
        "{prompt}"
    );
    assert!(prompt.contains("(now 1,000 keys)"), "{prompt}");
    tmux.keys(&["n", "Enter"]);
    let end = tmux.wait_for("the exit code", |s| s.contains("exit="));
    assert!(end.contains("exit=1"), "{end}");
    assert!(end.contains("nothing deleted"), "{end}");
    assert_eq!(dbsize(&mut con), 1000);
    drop(tmux);

    let tmux = Tmux::run("yes", &command_line(&server, "clear '*'"));
    tmux.wait_for("the prompt", |s| s.contains("Type yes to go on:"));
    tmux.keys(&["yes", "Enter"]);
    let end = tmux.wait_for("the exit code", |s| s.contains("exit="));
    assert!(end.contains("exit=0"), "{end}");
    assert_eq!(dbsize(&mut con), 0);
    drop(tmux);

    // --yes, or a dry run, does not ask.
    populate(&mut con, 10, "k");
    let tmux = Tmux::run("dry", &command_line(&server, "clear '*' --dry-run"));
    let end = tmux.wait_for("the exit code", |s| s.contains("exit="));
    assert!(
        end.contains("exit=0") && end.contains("would delete"),
        "{end}"
    );
    assert_eq!(dbsize(&mut con), 10);
}

fn group(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
