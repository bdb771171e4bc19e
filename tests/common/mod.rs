//! The harness every integration test shares: each `Server` is a real `redis-server` (or whatever
//! `REDIS_SERVER` names) on a free loopback port, in a temporary directory of its own, with the
//! module loaded unless asked otherwise. Dropping it shuts the server down and removes the
//! directory. Nothing here sleeps a fixed time: it polls a condition until a deadline.
//!
//! Each `tests/*.rs` file includes this with `mod common;` and uses only part of it.
#![allow(dead_code)]

pub mod cluster;
pub mod ops;
pub mod reply;

use std::fs::{self, File, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Generous: two cores may be busy with parallel builds and other servers.
const START_DEADLINE: Duration = Duration::from_secs(20);
const STOP_DEADLINE: Duration = Duration::from_secs(5);
/// Long enough for any slow test step, short enough that a hang fails the test instead of CI.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How much longer every deadline is: under valgrind (`make test-memory` sets
/// `SWEEP_VALGRIND=1`) a server runs 10-50 times slower, and a step that takes a second here
/// takes a minute there; its exit (the leak report) takes seconds too.
fn slow(d: Duration) -> Duration {
    if std::env::var("SWEEP_VALGRIND").as_deref() == Ok("1") {
        d * 10
    } else {
        d
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(5);
/// Another process may take the port between our probe and the server's bind; retry on a new one.
const START_ATTEMPTS: u32 = 3;

#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Passed last, so they override the harness's own arguments (the server applies the last).
    pub extra_args: Vec<String>,
    pub load_module: bool,
    /// Arguments after the module path on the `--loadmodule` line (module configs, options).
    pub module_args: Vec<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            extra_args: Vec::new(),
            load_module: true,
            module_args: Vec::new(),
        }
    }
}

pub struct Server {
    pub port: u16,
    pub dir: PathBuf,
    pub pid: u32,
    child: Child,
    opts: ServerOptions,
}

impl Server {
    /// A server with the module loaded and nothing else special.
    pub fn start() -> Server {
        Server::start_with(ServerOptions::default())
    }

    pub fn start_with(opts: ServerOptions) -> Server {
        if opts.load_module {
            module_path(); // fails with its hint before anything is created
        }
        let dir = fresh_dir();
        let (port, child) = launch(&dir, &opts, free_port()).unwrap_or_else(|why| {
            let _ = fs::remove_dir_all(&dir); // the panic message carries the logs
            panic!("{why}")
        });
        Server {
            port,
            dir,
            pid: child.id(),
            child,
            opts,
        }
    }

    pub fn client(&self) -> redis::Client {
        client_for(self.port)
    }

    /// A connection whose reads time out, so a server that hangs fails the test.
    pub fn conn(&self) -> redis::Connection {
        let con = connect(self.port, CONNECT_TIMEOUT)
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}\n{}", self.addr(), self.log()));
        con.set_read_timeout(Some(slow(READ_TIMEOUT))).unwrap();
        con.set_write_timeout(Some(slow(READ_TIMEOUT))).unwrap();
        con
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The server's log file (`--logfile`), across restarts.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    /// `field` from `INFO section`, e.g. `info_field("server", "process_id")`.
    pub fn info_field(&self, section: &str, field: &str) -> Option<String> {
        let info: String = redis::cmd("INFO")
            .arg(section)
            .query(&mut self.conn())
            .unwrap_or_else(|e| panic!("INFO {section} failed: {e}"));
        info_value(&info, field)
    }

    /// The Redis API level the server claims (`redis_version`): Valkey reports 7.2.4 here, which is
    /// what matters to a module. Use `server_name` to tell the servers apart.
    pub fn server_major_minor(&self) -> (u32, u32) {
        let version = self
            .info_field("server", "redis_version")
            .expect("INFO server has no redis_version");
        let (major, minor, _) = parse_version(&version)
            .unwrap_or_else(|| panic!("cannot parse redis_version {version:?}"));
        (major, minor)
    }

    /// "redis", "valkey", ...: Valkey and Redict report `server_name`; Redis (up to 8.x) does not.
    pub fn server_name(&self) -> String {
        self.info_field("server", "server_name")
            .unwrap_or_else(|| "redis".to_string())
    }

    /// Stops the server with a plain SHUTDOWN, which keeps its data the way the configuration says
    /// (AOF with `appendonly yes`, an RDB file if save points are set), and starts it again in the
    /// same directory, on the same port if that is still free.
    pub fn restart(&mut self) {
        let reply = redis::cmd("SHUTDOWN").query::<()>(&mut self.conn());
        if wait_for_exit(&mut self.child, slow(STOP_DEADLINE)).is_none() {
            panic!(
                "server on {} did not exit after SHUTDOWN (reply: {reply:?})\n{}",
                self.addr(),
                self.log()
            );
        }
        let port = if port_is_free(self.port) {
            self.port
        } else {
            free_port()
        };
        let (port, child) =
            launch(&self.dir, &self.opts, port).unwrap_or_else(|why| panic!("{why}"));
        self.port = port;
        self.pid = child.id();
        self.child = child;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // Best effort: if the server does not answer, it gets killed below anyway.
            if let Ok(mut con) = connect(self.port, CONNECT_TIMEOUT) {
                let _ = con.set_read_timeout(Some(slow(STOP_DEADLINE)));
                let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut con);
            }
            if wait_for_exit(&mut self.child, slow(STOP_DEADLINE)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if thread::panicking() {
            // The test's output shows this only when the test failed.
            eprintln!(
                "--- log of the server on {} (dir {}) ---\n{}",
                self.addr(),
                self.dir.display(),
                tail(&self.log(), 60)
            );
        }
        if std::env::var_os("KEEP_TEST_DIRS").is_some() {
            eprintln!("KEEP_TEST_DIRS: kept {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The module under test: `REDIS_SWEEP_MODULE` (set by `make test`), else the release build.
pub fn module_path() -> PathBuf {
    let path = match std::env::var_os("REDIS_SWEEP_MODULE") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/libredis_sweep.so"),
    };
    assert!(
        path.is_file(),
        "module {} not found: run `make test`, or `cargo build --release` before `cargo test`, \
         or point REDIS_SWEEP_MODULE at the built .so",
        path.display()
    );
    path
}

/// `REDIS_SERVER` lets the same tests run against another Redis or Valkey binary.
pub fn server_binary() -> String {
    std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_string())
}

/// `(major, minor, patch)` of `server_binary()`, from its `--version` (`... v=7.0.15 ...`).
/// Unlike `redis_version` in INFO, this is Valkey's own version for Valkey.
pub fn binary_version() -> (u32, u32, u32) {
    static VERSION: OnceLock<(u32, u32, u32)> = OnceLock::new();
    *VERSION.get_or_init(|| {
        let bin = server_binary();
        let out = Command::new(&bin)
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("cannot run `{bin} --version`: {e} (run scripts/setup.sh)"));
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .find_map(|word| word.strip_prefix("v="))
            .and_then(parse_version)
            .unwrap_or_else(|| panic!("no v=X.Y.Z in `{bin} --version`: {text:?}"))
    })
}

/// Polls `f` every few milliseconds until it is true; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(POLL);
    }
}

// --- starting a server ---

enum StartFailure {
    /// Someone else holds the port: worth another try on a new one.
    PortTaken(String),
    Died(String),
}

/// Starts a server in `dir`, trying `port` first and fresh ports after a port clash.
fn launch(dir: &Path, opts: &ServerOptions, mut port: u16) -> Result<(u16, Child), String> {
    let mut attempt = 1;
    loop {
        match spawn_ready(dir, port, opts) {
            Ok(child) => return Ok((port, child)),
            Err(StartFailure::PortTaken(_)) if attempt < START_ATTEMPTS => {
                attempt += 1;
                port = free_port();
            }
            Err(StartFailure::PortTaken(why) | StartFailure::Died(why)) => {
                return Err(format!(
                    "{} failed to start in {}: {why}",
                    server_binary(),
                    dir.display()
                ))
            }
        }
    }
}

/// Spawns the server and waits until it answers PING and is really the process we started.
fn spawn_ready(dir: &Path, port: u16, opts: &ServerOptions) -> Result<Child, StartFailure> {
    let mut cmd = Command::new(server_binary());
    cmd.arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir)
        // Absolute: the server applies --dir first, a relative --logfile would land elsewhere.
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .args(["--protected-mode", "no"]);
    // 7.0 introduced these (both default to "no"); 6.x refuses to start when given them.
    if binary_version().0 >= 7 {
        cmd.args([
            "--enable-debug-command",
            "yes",
            "--enable-module-command",
            "yes",
        ]);
    }
    if opts.load_module {
        cmd.arg("--loadmodule")
            .arg(module_path())
            .args(&opts.module_args);
    }
    cmd.args(&opts.extra_args)
        .stdin(Stdio::null())
        .stdout(append(&dir.join("stdout.log")))
        // Errors in the arguments themselves go to stderr, before the log file is opened.
        .stderr(append(&dir.join("stderr.log")));
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (run scripts/setup.sh)", server_binary()));

    let logs = || {
        let read = |name: &str| fs::read_to_string(dir.join(name)).unwrap_or_default();
        format!(
            "--- stderr ---\n{}--- log ---\n{}",
            read("stderr.log"),
            read("redis.log")
        )
    };
    let deadline = Instant::now() + slow(START_DEADLINE);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let logs = logs();
            let why = format!("exited ({status}) on port {port}\n{logs}");
            return Err(if logs.contains("Address already in use") {
                StartFailure::PortTaken(why)
            } else {
                StartFailure::Died(why)
            });
        }
        // Refused while it starts, LOADING while it reads its AOF/RDB: both mean "not yet".
        if let Ok(mut con) = connect(port, Duration::from_secs(1)) {
            let _ = con.set_read_timeout(Some(Duration::from_secs(1)));
            if let Ok(pong) = redis::cmd("PING").query::<String>(&mut con) {
                if pong == "PONG" {
                    return check_pid(child, &mut con, port);
                }
            }
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(StartFailure::Died(format!(
                "no PONG on port {port} within {:?}\n{}",
                slow(START_DEADLINE),
                logs()
            )));
        }
        thread::sleep(POLL);
    }
}

/// Other servers listen on this machine: make sure the one answering is the one we started.
fn check_pid(
    mut child: Child,
    con: &mut redis::Connection,
    port: u16,
) -> Result<Child, StartFailure> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(con)
        .unwrap_or_default();
    let answered = info_value(&info, "process_id").unwrap_or_default();
    if answered == child.id().to_string() {
        return Ok(child);
    }
    let ours = child.id();
    let _ = child.kill();
    let _ = child.wait();
    Err(StartFailure::PortTaken(format!(
        "process {answered:?} answered on port {port}, not the server we started (pid {ours}): \
         another server holds the port, or REDIS_SERVER is a wrapper that does not exec"
    )))
}

// --- small helpers ---

fn client_for(port: u16) -> redis::Client {
    redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap()
}

/// Connects within `timeout`. redis-rs sends CLIENT SETINFO while connecting and waits for the
/// reply without any timeout, so a hung server (or a silent process on the port) would block it
/// forever: connect on a helper thread and give up on it instead.
fn connect(port: u16, timeout: Duration) -> redis::RedisResult<redis::Connection> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(client_for(port).get_connection_with_timeout(timeout));
    });
    rx.recv_timeout(timeout).unwrap_or_else(|_| {
        Err((
            redis::ErrorKind::IoError,
            "no reply to the connection handshake",
        )
            .into())
    })
}

/// A port the kernel just handed out, so nothing was listening on it a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("cannot bind 127.0.0.1:0")
        .port()
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A new, empty directory per server, unique across test binaries and runs.
fn fresh_dir() -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!("redis-sweep-test-{}-{n}-{nanos}", std::process::id());
    let dir = std::env::temp_dir().join(name);
    fs::create_dir(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

fn append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}

fn wait_for_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
            _ => return None,
        }
    }
}

/// The value of `field` in an INFO reply (`field:value` lines).
fn info_value(info: &str, field: &str) -> Option<String> {
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// "7.0.15" -> (7, 0, 15); a missing patch counts as 0.
fn parse_version(s: &str) -> Option<(u32, u32, u32)> {
    let mut parts = s.trim().split('.').map(|p| p.parse::<u32>());
    let major = parts.next()?.ok()?;
    let minor = parts.next()?.ok()?;
    let patch = parts.next().and_then(Result::ok).unwrap_or(0);
    Some((major, minor, patch))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
