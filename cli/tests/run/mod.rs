//! Running the `redis-sweep` binary from a test: to its end, or in the background to signal it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A run that takes longer than this is a hang: the test fails instead of CI.
const DEADLINE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(5);

pub const BIN: &str = env!("CARGO_BIN_EXE_redis-sweep");

#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `redis-sweep -u URL args…` with stdin closed (not a terminal) to its end.
pub fn cli(url: &str, args: &[&str]) -> Output {
    Running::start_env(url, args, &[]).finish()
}

/// The same with more environment variables.
pub fn cli_env(url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Running::start_env(url, args, env).finish()
}

pub struct Running {
    child: Child,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    stdout: Arc<Mutex<String>>,
}

impl Running {
    pub fn start(url: &str, args: &[&str]) -> Running {
        Running::start_env(url, args, &[])
    }

    pub fn start_env(url: &str, args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut child = Command::new(BIN)
            .arg("-u")
            .arg(url)
            .args(args)
            .env_remove("REDIS_URL")
            .env_remove("REDISCLI_AUTH")
            .env_remove("SSL_CERT_FILE")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut out_pipe = child.stdout.take().unwrap();
        let err_pipe = child.stderr.take().unwrap();
        let (o, e) = (stdout.clone(), stderr.clone());
        let readers = vec![
            thread::spawn(move || {
                let mut text = String::new();
                let _ = out_pipe.read_to_string(&mut text);
                o.lock().unwrap().push_str(&text);
            }),
            thread::spawn(move || {
                for line in BufReader::new(err_pipe).lines().map_while(Result::ok) {
                    let mut all = e.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
            }),
        ];
        Running {
            child,
            stderr,
            readers,
            stdout,
        }
    }

    /// Waits until a line of stderr contains `needle`; returns that line.
    pub fn wait_stderr(&self, needle: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(line) = self
                .stderr
                .lock()
                .unwrap()
                .lines()
                .find(|l| l.contains(needle))
            {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} on stderr: {:?}",
                self.stderr.lock().unwrap()
            );
            thread::sleep(POLL);
        }
    }

    /// Sends a signal (`INT`, …) to the process, as a terminal's Ctrl-C would.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} failed");
    }

    pub fn finish(mut self) -> Output {
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "redis-sweep did not exit within {DEADLINE:?}; stderr: {}",
                    self.stderr.lock().unwrap()
                );
            }
            thread::sleep(POLL);
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let code = status.code().unwrap_or(-1);
        let stdout = self.stdout.lock().unwrap().clone();
        let stderr = self.stderr.lock().unwrap().clone();
        Output {
            code,
            stdout,
            stderr,
        }
    }
}
