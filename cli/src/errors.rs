//! Exit codes, and turning what went wrong into one line that says what to do.

use redis::{ErrorKind, RedisError};

use crate::args::flag_of_option;

/// The process's exit code; README "Command line" and `--help` list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Done = 0,
    Nothing = 1,
    Usage = 2,
    Refused = 3,
    Connection = 4,
    Cancelled = 5,
    Aborted = 6,
    Interrupted = 130,
}

impl Exit {
    /// The exit code for a job's final `state`.
    pub fn of_state(state: Option<&str>) -> Exit {
        match state {
            Some("done") => Exit::Done,
            Some("cancelled") => Exit::Cancelled,
            Some("aborted" | "lost") => Exit::Aborted,
            _ => Exit::Nothing,
        }
    }
}

/// Something that ends the program, with the line to print on stderr.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            message: message.into(),
        }
    }
}

/// What the failed command was, for the message.
pub struct Context<'a> {
    /// `SWEEP.CLEAR`, `SWEEP.STATUS`, …
    pub command: &'a str,
    /// `127.0.0.1:6379`
    pub addr: &'a str,
    /// The ACL user connected as, when one was given.
    pub user: Option<&'a str>,
}

/// The server's error as it sent it: `CODE message`.
fn server_text(err: &RedisError) -> String {
    match (err.code(), err.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        (None, Some(detail)) => detail.to_string(),
        (None, None) => err.to_string(),
    }
}

/// True when the connection, not the command, failed.
pub fn is_connection_error(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_refusal()
        || err.is_connection_dropped()
        || err.is_timeout()
        || matches!(err.kind(), ErrorKind::AuthenticationFailed)
}

/// The one line for an error of `ctx.command`, and the exit code it gives.
pub fn explain(err: &RedisError, ctx: &Context) -> Failure {
    let text = server_text(err);
    let code = err.code().unwrap_or("");
    let detail = err.detail().unwrap_or("");
    let user = ctx.user.unwrap_or("default");
    let refused = |m: String| Failure::new(Exit::Refused, m);
    let connection = |m: String| Failure::new(Exit::Connection, m);

    if matches!(err.kind(), ErrorKind::AuthenticationFailed) || code == "WRONGPASS" {
        return connection(format!(
            "authentication to {} failed for user '{user}' ({text}): check --user and --pass, \
             REDISCLI_AUTH, or the user:pass@ part of the URL",
            ctx.addr
        ));
    }
    if code == "NOAUTH" {
        return connection(format!(
            "{} needs a password ({text}): give --pass (or REDISCLI_AUTH, or user:pass@ in the URL)",
            ctx.addr
        ));
    }
    if text.contains("certificate") || text.contains("tls handshake") || text.contains("TLS") {
        return connection(format!(
            "TLS with {} failed: {text}: for a private CA set SSL_CERT_FILE=/path/to/ca.pem; \
             #insecure at the end of the URL skips the certificate check",
            ctx.addr
        ));
    }
    if is_connection_error(err) {
        return connection(format!(
            "cannot talk to {}: {err}: is the server running there, and is -u/--url right?",
            ctx.addr
        ));
    }
    if code == "ERR" && detail.starts_with("unknown command") {
        return refused(format!(
            "{} does not know {}: the redis-sweep module is not loaded there; load it with \
             MODULE LOAD /path/to/libredis_sweep.so or a loadmodule line in redis.conf",
            ctx.addr, ctx.command
        ));
    }
    if code == "NOPERM" {
        return refused(format!(
            "{text}: allow user '{user}' the sweep commands (ACL SETUSER {user} +sweep.clear \
             +sweep.status +sweep.cancel), or connect as another user with --user"
        ));
    }
    if code == "READONLY" {
        return refused(format!(
            "{} is a read-only replica ({text}): run the sweep on its primary; the deletions \
             replicate",
            ctx.addr
        ));
    }
    if code == "LOADING" {
        return refused(format!(
            "{} is loading its dataset ({text}): try again when it has finished",
            ctx.addr
        ));
    }
    if code == "ERR" {
        if let Some(option) = unknown_option(detail) {
            let flag = flag_of_option(&option)
                .map(|f| format!(" ({f})"))
                .unwrap_or_default();
            return refused(format!(
                "the redis-sweep module on {} does not support {option}{flag} ({text}): \
                 upgrade the module there, or leave the flag out",
                ctx.addr
            ));
        }
    }
    refused(format!("{} refused by {}: {text}", ctx.command, ctx.addr))
}

/// `unknown option 'MINSIZE'` → `MINSIZE`.
fn unknown_option(detail: &str) -> Option<String> {
    let rest = detail.strip_prefix("unknown option '")?;
    Some(rest.strip_suffix('\'').unwrap_or(rest).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: &str, detail: &str) -> RedisError {
        // What redis-rs makes of a `-CODE detail` line from the server.
        let line = format!("-{code} {detail}\r\n");
        let mut parser = redis::Parser::new();
        match parser.parse_value(line.as_bytes()) {
            Ok(redis::Value::ServerError(e)) => e.into(),
            Ok(v) => redis::from_owned_redis_value::<()>(v).unwrap_err(),
            Err(e) => e,
        }
    }

    fn ctx() -> Context<'static> {
        Context {
            command: "SWEEP.CLEAR",
            addr: "127.0.0.1:6379",
            user: Some("ops"),
        }
    }

    fn check(err: RedisError, exit: Exit, wants: &[&str]) {
        let f = explain(&err, &ctx());
        assert_eq!(f.exit, exit, "{err:?} -> {}", f.message);
        assert!(!f.message.contains('\n'), "one line: {}", f.message);
        for w in wants {
            assert!(f.message.contains(w), "{:?} lacks {w:?}", f.message);
        }
    }

    #[test]
    fn module_not_loaded() {
        check(
            server(
                "ERR",
                "unknown command 'SWEEP.CLEAR', with args beginning with: 'a*' 'ASYNC' ",
            ),
            Exit::Refused,
            &[
                "does not know SWEEP.CLEAR",
                "module is not loaded",
                "MODULE LOAD",
            ],
        );
    }

    #[test]
    fn no_permission() {
        check(
            server(
                "NOPERM",
                "User ops has no permissions to run the 'sweep.clear' command",
            ),
            Exit::Refused,
            &[
                "NOPERM User ops has no permissions",
                "ACL SETUSER ops +sweep.clear",
            ],
        );
    }

    #[test]
    fn read_only_replica() {
        check(
            server("READONLY", "You can't write against a read only replica."),
            Exit::Refused,
            &["read-only replica", "on its primary"],
        );
    }

    #[test]
    fn option_the_module_lacks_names_the_flag() {
        for (option, flag) in [
            ("OR", "--or"),
            ("EXCEPT", "--except"),
            ("MINSIZE", "--min-size"),
            ("PERSISTENT", "--persistent"),
            ("VOLATILE", "--volatile"),
            ("LOCAL", "--local"),
        ] {
            check(
                server("ERR", &format!("unknown option '{option}'")),
                Exit::Refused,
                &[
                    &format!("does not support {option} ({flag})"),
                    "upgrade the module",
                ],
            );
        }
    }

    #[test]
    fn other_refusals_pass_the_server_text() {
        check(
            server(
                "ERR",
                "too many sweeps running (sweep.max-jobs is 16): wait, or SWEEP.CANCEL one",
            ),
            Exit::Refused,
            &["SWEEP.CLEAR refused by 127.0.0.1:6379: ERR too many sweeps running"],
        );
        check(
            server("ERR", "COUNT must be a positive integer"),
            Exit::Refused,
            &["ERR COUNT must be a positive integer"],
        );
        check(
            server("LOADING", "Redis is loading the dataset in memory"),
            Exit::Refused,
            &["try again"],
        );
    }

    #[test]
    fn authentication() {
        check(
            server(
                "WRONGPASS",
                "invalid username-password pair or user is disabled.",
            ),
            Exit::Connection,
            &[
                "authentication to 127.0.0.1:6379 failed for user 'ops'",
                "--pass",
            ],
        );
        check(
            server("NOAUTH", "Authentication required."),
            Exit::Connection,
            &["needs a password"],
        );
    }

    #[test]
    fn connection_lost() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        check(
            RedisError::from(io),
            Exit::Connection,
            &["cannot talk to 127.0.0.1:6379", "server running"],
        );
    }

    #[test]
    fn tls_failures_say_how_to_trust_the_server() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "invalid peer certificate: UnknownIssuer",
        );
        check(
            RedisError::from(io),
            Exit::Connection,
            &[
                "TLS with 127.0.0.1:6379 failed",
                "SSL_CERT_FILE",
                "#insecure",
            ],
        );
    }

    #[test]
    fn states_to_exit_codes() {
        assert_eq!(Exit::of_state(Some("done")), Exit::Done);
        assert_eq!(Exit::of_state(Some("cancelled")), Exit::Cancelled);
        assert_eq!(Exit::of_state(Some("aborted")), Exit::Aborted);
        assert_eq!(Exit::of_state(Some("running")), Exit::Nothing);
        assert_eq!(Exit::of_state(None), Exit::Nothing);
        let codes = [
            Exit::Done,
            Exit::Nothing,
            Exit::Usage,
            Exit::Refused,
            Exit::Connection,
            Exit::Cancelled,
            Exit::Aborted,
            Exit::Interrupted,
        ];
        let mut seen: Vec<i32> = codes.iter().map(|c| *c as i32).collect();
        seen.dedup();
        assert_eq!(seen.len(), codes.len(), "distinct codes");
    }
}
