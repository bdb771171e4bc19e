//! The connection: URL, database and credentials from the flags, and the three module commands.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Value};

use crate::args::ConnArgs;
use crate::errors::{explain, Context, Exit, Failure};
use crate::reply::{jobs_from_value, Fields};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Every command this tool sends answers at once; a server silent this long is treated as gone.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Where to connect and as whom.
#[derive(Clone)]
pub struct Target {
    info: ConnectionInfo,
    /// `host:port` (or the socket path), for messages.
    pub addr: String,
    pub user: Option<String>,
}

impl Target {
    /// The URL with `-n`, `--user` and `--pass` applied over it.
    pub fn from_args(args: &ConnArgs) -> Result<Target, Failure> {
        let mut info = args.url.as_str().into_connection_info().map_err(|e| {
            Failure::new(
                Exit::Usage,
                format!(
                    "bad URL {:?}: {e}: write redis://[user:pass@]host:port[/db] or rediss://…",
                    args.url
                ),
            )
        })?;
        if let Some(db) = args.db {
            if db < 0 {
                return Err(Failure::new(Exit::Usage, "-n/--db must be 0 or more"));
            }
            info.redis.db = db;
        }
        if let Some(user) = &args.user {
            info.redis.username = Some(user.clone());
        }
        if let Some(pass) = &args.pass {
            info.redis.password = Some(pass.clone());
        }
        let addr = match &info.addr {
            ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
            ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port}"),
            ConnectionAddr::Unix(path) => path.display().to_string(),
        };
        let user = info.redis.username.clone();
        Ok(Target { info, addr, user })
    }

    pub fn db(&self) -> i64 {
        self.info.redis.db
    }

    fn context<'a>(&'a self, command: &'a str) -> Context<'a> {
        Context {
            command,
            addr: &self.addr,
            user: self.user.as_deref(),
        }
    }

    /// Connects (TLS and AUTH included) within a deadline. redis-rs waits for the replies of its
    /// handshake without a timeout, so a silent process on the port would hang it: connect on a
    /// helper thread and give up on it instead.
    pub fn connect(&self) -> Result<Session, Failure> {
        let info = self.info.clone();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let result = redis::Client::open(info)
                .and_then(|c| c.get_connection_with_timeout(CONNECT_TIMEOUT))
                .and_then(|con| {
                    con.set_read_timeout(Some(READ_TIMEOUT))?;
                    con.set_write_timeout(Some(READ_TIMEOUT))?;
                    Ok(con)
                });
            let _ = tx.send(result);
        });
        let con = match rx.recv_timeout(CONNECT_TIMEOUT) {
            Ok(Ok(con)) => con,
            Ok(Err(e)) => return Err(explain(&e, &self.context("connect"))),
            Err(_) => {
                return Err(Failure::new(
                    Exit::Connection,
                    format!(
                        "no answer from {} within {}s: is it a Redis server, and does the URL say \
                         rediss:// if it wants TLS?",
                        self.addr,
                        CONNECT_TIMEOUT.as_secs()
                    ),
                ))
            }
        };
        Ok(Session {
            con,
            target: self.clone(),
        })
    }
}

/// An open connection.
pub struct Session {
    con: redis::Connection,
    pub target: Target,
}

impl Session {
    fn query(&mut self, cmd: &redis::Cmd, name: &str) -> Result<Value, Failure> {
        cmd.query::<Value>(&mut self.con)
            .map_err(|e| explain(&e, &self.target.context(name)))
    }

    /// `SWEEP.CLEAR args…` (with `ASYNC` among them): the job id.
    pub fn clear_async(&mut self, args: &[Vec<u8>]) -> Result<u64, Failure> {
        let mut cmd = redis::cmd("SWEEP.CLEAR");
        for a in args {
            cmd.arg(a.as_slice());
        }
        match self.query(&cmd, "SWEEP.CLEAR")? {
            Value::Int(id) if id > 0 => Ok(id as u64),
            other => Err(Failure::new(
                Exit::Nothing,
                format!("SWEEP.CLEAR … ASYNC answered {other:?}, not a job id: is the module on {} a redis-sweep?", self.target.addr),
            )),
        }
    }

    pub fn status(&mut self, id: u64) -> Result<Fields, Failure> {
        let v = self.query(redis::cmd("SWEEP.STATUS").arg(id), "SWEEP.STATUS")?;
        Fields::from_value(&v).map_err(|e| Failure::new(Exit::Nothing, e.to_string()))
    }

    pub fn status_all(&mut self) -> Result<Vec<Fields>, Failure> {
        let v = self.query(&redis::cmd("SWEEP.STATUS"), "SWEEP.STATUS")?;
        jobs_from_value(&v).map_err(|e| Failure::new(Exit::Nothing, e.to_string()))
    }

    pub fn cancel(&mut self, id: u64) -> Result<Fields, Failure> {
        let v = self.query(redis::cmd("SWEEP.CANCEL").arg(id), "SWEEP.CANCEL")?;
        Fields::from_value(&v).map_err(|e| Failure::new(Exit::Nothing, e.to_string()))
    }

    /// Keys in the selected database, for the confirmation prompt; None if it cannot be had.
    pub fn dbsize(&mut self) -> Option<i64> {
        redis::cmd("DBSIZE").query::<i64>(&mut self.con).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(
        url: &str,
        db: Option<i64>,
        user: Option<&str>,
        pass: Option<&str>,
    ) -> Result<Target, Failure> {
        Target::from_args(&ConnArgs {
            url: url.into(),
            db,
            user: user.map(Into::into),
            pass: pass.map(Into::into),
            json: false,
        })
    }

    #[test]
    fn flags_override_the_url() {
        let t = target("redis://alice:secret@10.0.0.1:7000/3", None, None, None).unwrap();
        assert_eq!(t.addr, "10.0.0.1:7000");
        assert_eq!(t.db(), 3);
        assert_eq!(t.user.as_deref(), Some("alice"));
        assert_eq!(t.info.redis.password.as_deref(), Some("secret"));
        let t = target(
            "redis://alice:secret@h:1/3",
            Some(5),
            Some("bob"),
            Some("pw"),
        )
        .unwrap();
        assert_eq!((t.db(), t.user.as_deref()), (5, Some("bob")));
        assert_eq!(t.info.redis.password.as_deref(), Some("pw"));
    }

    #[test]
    fn tls_and_resp3_urls() {
        let t = target("rediss://cache.example:6380/#insecure", None, None, None).unwrap();
        assert!(matches!(
            t.info.addr,
            ConnectionAddr::TcpTls { insecure: true, .. }
        ));
        assert_eq!(t.addr, "cache.example:6380");
        let t = target("redis://h:1/?protocol=resp3", None, None, None).unwrap();
        assert_eq!(t.info.redis.protocol, redis::ProtocolVersion::RESP3);
    }

    #[test]
    fn bad_urls_are_usage_errors() {
        for url in ["http://h:1", "not a url", "redis://h:1/x"] {
            let e = target(url, None, None, None)
                .err()
                .unwrap_or_else(|| panic!("{url} accepted"));
            assert_eq!(e.exit, Exit::Usage, "{url}");
        }
        assert_eq!(
            target("redis://h:1", Some(-1), None, None)
                .err()
                .unwrap()
                .exit,
            Exit::Usage
        );
    }
}
