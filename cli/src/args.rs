//! The command line (clap derive), and how `clear`'s flags become `SWEEP.CLEAR` options.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use clap::{Args, Parser, Subcommand};

/// Delete keys by glob pattern inside redis-server, with the redis-sweep module, and watch it go.
#[derive(Debug, Parser)]
#[command(name = "redis-sweep", version, about, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: Command,
}

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    the sweep ended `done` (status, cancel: the command succeeded)
  1    nothing was done (confirmation declined), or the outcome is unknown
  2    usage error (bad flags, bad URL)
  3    the server refused the command (module not loaded, NOPERM, READONLY, unknown option,
       unknown job id, too many sweeps)
  4    connection error (cannot connect, TLS, authentication, connection lost)
  5    the sweep was cancelled (Ctrl-C, or SWEEP.CANCEL from elsewhere)
  6    the sweep was aborted by the server (FLUSHDB, SWAPDB, role change, user deleted, a lost
       cluster share)
  130  a second Ctrl-C: exited at once without waiting for the cancellation";

/// Where to connect. Global: they may come before or after the subcommand.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// Server URL: redis://[user:pass@]host:port[/db], rediss:// for TLS (append #insecure to
    /// skip certificate checks), redis+unix:///path; ?protocol=resp3 for RESP3
    #[arg(
        short = 'u',
        long,
        global = true,
        help_heading = "Connection",
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub url: String,
    /// Database number (overrides the URL's)
    #[arg(
        short = 'n',
        long = "db",
        global = true,
        value_name = "DB",
        help_heading = "Connection"
    )]
    pub db: Option<i64>,
    /// ACL user (overrides the URL's)
    #[arg(long, global = true, value_name = "U", help_heading = "Connection")]
    pub user: Option<String>,
    /// Password (overrides the URL's); REDISCLI_AUTH keeps it off the command line
    #[arg(
        long = "pass",
        global = true,
        help_heading = "Connection",
        env = "REDISCLI_AUTH",
        hide_env_values = true,
        value_name = "P"
    )]
    pub pass: Option<String>,
    /// Print one JSON value on stdout instead of the human summary or table
    #[arg(long, global = true, help_heading = "Output")]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start SWEEP.CLEAR as a background job and follow it to its end (Ctrl-C cancels it)
    Clear(ClearArgs),
    /// Show a job (or every job the server remembers) as SWEEP.STATUS reports it
    Status {
        /// Job id; without it, every running job and the most recent finished ones
        id: Option<u64>,
    },
    /// Cancel a running job (SWEEP.CANCEL) and show its final counts
    Cancel {
        /// Job id
        id: u64,
    },
}

#[derive(Debug, Clone, Default, Args)]
pub struct ClearArgs {
    /// Glob pattern, as KEYS and SCAN MATCH read it
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub pattern: OsString,
    /// Another pattern: a key matching any of them is a candidate (repeatable) [OR]
    #[arg(long = "or", value_name = "P", value_parser = clap::value_parser!(OsString))]
    pub or: Vec<OsString>,
    /// Leave alone keys matching this pattern (repeatable) [EXCEPT]
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(OsString))]
    pub except: Vec<OsString>,
    /// Keys visited per scan step [COUNT]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Most keys deleted per slice [BATCH]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: Option<u64>,
    /// Only keys of this type: string, list, set, zset, hash, stream, or a module type [TYPE]
    #[arg(long = "type", value_name = "T")]
    pub key_type: Option<String>,
    /// Only keys idle for at least S seconds [IDLE]
    #[arg(long, value_name = "S")]
    pub idle: Option<u64>,
    /// Only keys using at least B bytes, as MEMORY USAGE reports [MINSIZE]
    #[arg(long, value_name = "B")]
    pub min_size: Option<u64>,
    /// Only keys without a TTL [PERSISTENT]
    #[arg(long, conflicts_with = "volatile")]
    pub persistent: bool,
    /// Only keys with a TTL [VOLATILE]
    #[arg(long)]
    pub volatile: bool,
    /// Stop after N deletions [LIMIT]
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Delete nothing: count what would be deleted [DRYRUN]
    #[arg(long)]
    pub dry_run: bool,
    /// In a cluster, sweep only the node connected to [LOCAL]
    #[arg(long)]
    pub local: bool,
    /// Do not ask before sweeping every key
    #[arg(short = 'y', long, help_heading = "Output")]
    pub yes: bool,
    /// No progress output on stderr (the summary or JSON still comes)
    #[arg(short = 'q', long, help_heading = "Output")]
    pub quiet: bool,
}

impl ClearArgs {
    /// The arguments of `SWEEP.CLEAR` after the command name, `ASYNC` last. Only the options given
    /// are sent, so the server's configured defaults (`sweep.count`, `sweep.batch`) apply.
    pub fn module_args(&self) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = vec![bytes(&self.pattern)];
        let mut opt = |name: &str, value: Option<Vec<u8>>| {
            out.push(name.as_bytes().to_vec());
            out.extend(value);
        };
        for p in &self.or {
            opt("OR", Some(bytes(p)));
        }
        for p in &self.except {
            opt("EXCEPT", Some(bytes(p)));
        }
        let num = |n: &Option<u64>| n.map(|n| n.to_string().into_bytes());
        if let Some(n) = num(&self.count) {
            opt("COUNT", Some(n));
        }
        if let Some(n) = num(&self.batch) {
            opt("BATCH", Some(n));
        }
        if let Some(t) = &self.key_type {
            opt("TYPE", Some(t.as_bytes().to_vec()));
        }
        if let Some(n) = num(&self.idle) {
            opt("IDLE", Some(n));
        }
        if let Some(n) = num(&self.min_size) {
            opt("MINSIZE", Some(n));
        }
        if self.persistent {
            opt("PERSISTENT", None);
        }
        if self.volatile {
            opt("VOLATILE", None);
        }
        if let Some(n) = num(&self.limit) {
            opt("LIMIT", Some(n));
        }
        if self.dry_run {
            opt("DRYRUN", None);
        }
        if self.local {
            opt("LOCAL", None);
        }
        opt("ASYNC", None);
        out
    }

    /// Every pattern that makes a key a candidate: the first and the `--or` ones.
    pub fn patterns(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(&self.pattern)
            .chain(&self.or)
            .map(|p| p.as_bytes())
    }

    /// True when the sweep would delete every key of the database: some candidate pattern matches
    /// every name, no `--except`, no filter and no `--limit`, and it is not a dry run. Such a sweep
    /// asks for confirmation first.
    pub fn sweeps_everything(&self) -> bool {
        !self.dry_run
            && self.except.is_empty()
            && self.key_type.is_none()
            && self.idle.is_none()
            && self.min_size.is_none()
            && !self.persistent
            && !self.volatile
            && self.limit.is_none()
            && self.patterns().any(matches_every_name)
    }
}

/// `*`, `**`, …: the patterns that match every key name (the empty one included).
pub fn matches_every_name(pattern: &[u8]) -> bool {
    !pattern.is_empty() && pattern.iter().all(|&b| b == b'*')
}

fn bytes(s: &OsString) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// The module option a `clear` flag maps to, for error messages (`MINSIZE` → `--min-size`).
pub fn flag_of_option(option: &str) -> Option<&'static str> {
    let flag = match option.to_ascii_uppercase().as_str() {
        "OR" => "--or",
        "EXCEPT" => "--except",
        "COUNT" => "--count",
        "BATCH" => "--batch",
        "TYPE" => "--type",
        "IDLE" => "--idle",
        "MINSIZE" => "--min-size",
        "PERSISTENT" => "--persistent",
        "VOLATILE" => "--volatile",
        "LIMIT" => "--limit",
        "DRYRUN" => "--dry-run",
        "LOCAL" => "--local",
        _ => return None,
    };
    Some(flag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(line: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("redis-sweep").chain(line.iter().copied()))
    }

    fn clear(line: &[&str]) -> ClearArgs {
        match parse(line)
            .unwrap_or_else(|e| panic!("{line:?}: {e}"))
            .command
        {
            Command::Clear(c) => c,
            other => panic!("not a clear: {other:?}"),
        }
    }

    /// The SWEEP.CLEAR arguments `clear` sends for a command line, as one string.
    fn sent(line: &[&str]) -> String {
        clear(line)
            .module_args()
            .iter()
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    macro_rules! maps {
        ($name:ident, [$($arg:expr),*], $want:expr) => {
            #[test]
            fn $name() {
                assert_eq!(sent(&["clear", $($arg),*]), $want);
            }
        };
    }

    maps!(pattern_alone, ["cache:*"], "cache:* ASYNC");
    maps!(
        or_repeated,
        ["a:*", "--or", "b:*", "--or", "c:*"],
        "a:* OR b:* OR c:* ASYNC"
    );
    maps!(
        except_repeated,
        ["a:*", "--except", "a:keep:*", "--except", "a:x"],
        "a:* EXCEPT a:keep:* EXCEPT a:x ASYNC"
    );
    maps!(count, ["a", "--count", "2000"], "a COUNT 2000 ASYNC");
    maps!(batch, ["a", "--batch", "100"], "a BATCH 100 ASYNC");
    maps!(key_type, ["a", "--type", "hash"], "a TYPE hash ASYNC");
    maps!(idle, ["a", "--idle", "3600"], "a IDLE 3600 ASYNC");
    maps!(idle_zero, ["a", "--idle", "0"], "a IDLE 0 ASYNC");
    maps!(
        min_size,
        ["a", "--min-size", "1024"],
        "a MINSIZE 1024 ASYNC"
    );
    maps!(persistent, ["a", "--persistent"], "a PERSISTENT ASYNC");
    maps!(volatile, ["a", "--volatile"], "a VOLATILE ASYNC");
    maps!(limit, ["a", "--limit", "10"], "a LIMIT 10 ASYNC");
    maps!(limit_zero, ["a", "--limit", "0"], "a LIMIT 0 ASYNC");
    maps!(dry_run, ["a", "--dry-run"], "a DRYRUN ASYNC");
    maps!(local, ["a", "--local"], "a LOCAL ASYNC");
    maps!(
        everything_in_spec_order,
        ["p", "--local", "--dry-run", "--limit", "5", "--volatile", "--min-size", "9",
         "--idle", "7", "--type", "set", "--batch", "3", "--count", "2", "--except", "e",
         "--or", "o"],
        "p OR o EXCEPT e COUNT 2 BATCH 3 TYPE set IDLE 7 MINSIZE 9 VOLATILE LIMIT 5 DRYRUN LOCAL ASYNC"
    );
    // Connection flags never reach the module.
    maps!(
        connection_flags_not_sent,
        [
            "a",
            "-u",
            "redis://h:1/2",
            "-n",
            "3",
            "--user",
            "u",
            "--pass",
            "p",
            "--json",
            "--yes",
            "-q"
        ],
        "a ASYNC"
    );
    // A pattern that looks like a flag after `--`, and one with spaces, go through whole.
    maps!(dash_pattern, ["--", "--weird*"], "--weird* ASYNC");
    maps!(spaced_pattern, ["a b*"], "a b* ASYNC");

    #[test]
    fn binary_pattern_is_sent_as_bytes() {
        use std::os::unix::ffi::OsStringExt;
        let raw = OsString::from_vec(vec![b'k', 0xff, b'*']);
        let cli =
            Cli::try_parse_from([OsString::from("redis-sweep"), "clear".into(), raw]).unwrap();
        let Command::Clear(c) = cli.command else {
            panic!()
        };
        assert_eq!(c.module_args()[0], vec![b'k', 0xff, b'*']);
    }

    #[test]
    fn global_connection_flags_anywhere() {
        for line in [
            &["-u", "redis://h:7/1", "-n", "2", "--json", "status"][..],
            &["status", "-u", "redis://h:7/1", "-n", "2", "--json"][..],
        ] {
            let cli = parse(line).unwrap();
            assert_eq!(cli.conn.url, "redis://h:7/1");
            assert_eq!(cli.conn.db, Some(2));
            assert!(cli.conn.json);
        }
    }

    #[test]
    fn usage_errors() {
        for line in [
            &["clear"][..],                                    // no pattern
            &["clear", "a", "--persistent", "--volatile"][..], // at most one of the two
            &["clear", "a", "--count", "0"][..],               // COUNT is 1 and up
            &["clear", "a", "--batch", "0"][..],
            &["clear", "a", "--count", "-1"][..],
            &["clear", "a", "--limit", "x"][..],
            &["clear", "a", "--idle", "-5"][..],
            &["clear", "a", "--nope"][..],
            &["cancel"][..],
            &["cancel", "x"][..],
            &["status", "1", "2"][..],
            &["frobnicate"][..],
        ] {
            let err = parse(line).expect_err(&format!("{line:?} should be refused"));
            assert_eq!(err.exit_code(), 2, "{line:?}: {err}");
        }
    }

    #[test]
    fn asks_before_sweeping_everything() {
        assert!(clear(&["clear", "*"]).sweeps_everything());
        assert!(clear(&["clear", "**"]).sweeps_everything());
        assert!(clear(&["clear", "a:*", "--or", "*"]).sweeps_everything());
        assert!(
            clear(&["clear", "*", "--batch", "5", "--count", "9", "--local"]).sweeps_everything()
        );
        assert!(!clear(&["clear", "*", "--dry-run"]).sweeps_everything());
        assert!(!clear(&["clear", "*", "--except", "keep:*"]).sweeps_everything());
        assert!(!clear(&["clear", "*", "--type", "hash"]).sweeps_everything());
        assert!(!clear(&["clear", "*", "--limit", "10"]).sweeps_everything());
        assert!(!clear(&["clear", "*", "--volatile"]).sweeps_everything());
        assert!(!clear(&["clear", "a*"]).sweeps_everything());
        assert!(!clear(&["clear", "\\*"]).sweeps_everything());
        assert!(!clear(&["clear", "*?"]).sweeps_everything());
    }

    #[test]
    fn every_module_option_names_its_flag() {
        let all = sent(&[
            "clear",
            "p",
            "--or",
            "o",
            "--except",
            "e",
            "--count",
            "2",
            "--batch",
            "3",
            "--type",
            "set",
            "--idle",
            "7",
            "--min-size",
            "9",
            "--volatile",
            "--limit",
            "5",
            "--dry-run",
            "--local",
        ]);
        for word in all
            .split(' ')
            .filter(|w| w.chars().all(|c| c.is_ascii_uppercase()))
        {
            if word == "ASYNC" {
                continue;
            }
            let flag = flag_of_option(word).unwrap_or_else(|| panic!("{word} has no flag"));
            assert!(
                parse(&["clear", "p", flag, "1"]).is_ok() || parse(&["clear", "p", flag]).is_ok()
            );
        }
        assert_eq!(flag_of_option("persistent"), Some("--persistent"));
        assert_eq!(flag_of_option("FOO"), None);
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
