//! Checks the shared harness itself: a server starts (with and without the module), is the process
//! it claims to be, keeps its data across `restart`, and leaves nothing behind.
mod common;

use common::{Server, ServerOptions};
use std::collections::HashMap;

fn module_names(server: &Server) -> Vec<String> {
    let modules: Vec<HashMap<String, redis::Value>> = redis::cmd("MODULE")
        .arg("LIST")
        .query(&mut server.conn())
        .unwrap();
    modules
        .iter()
        .filter_map(|m| redis::from_redis_value(m.get("name")?).ok())
        .collect()
}

#[test]
fn starts_with_the_module_loaded() {
    let server = Server::start();
    // Redis 8 loads modules of its own (vectorset): ours must be there, once.
    let names = module_names(&server);
    assert_eq!(
        names.iter().filter(|n| *n == "sweep").count(),
        1,
        "{names:?}"
    );
    assert_eq!(
        server.info_field("server", "process_id"),
        Some(server.pid.to_string())
    );
}

#[test]
fn starts_without_the_module_and_cleans_up() {
    let server = Server::start_with(ServerOptions {
        load_module: false,
        ..Default::default()
    });
    assert!(!module_names(&server).iter().any(|n| n == "sweep"));
    let mut con = server.conn();
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query::<()>(&mut con)
        .unwrap();
    let v: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(v, "v");
    assert!(server.server_major_minor() >= (6, 0));

    let dir = server.dir.clone();
    drop(server);
    if std::env::var_os("KEEP_TEST_DIRS").is_none() {
        assert!(!dir.exists(), "{} was not removed", dir.display());
    }
}

#[test]
fn restart_keeps_data_with_appendonly() {
    let mut server = Server::start_with(ServerOptions {
        load_module: false,
        extra_args: vec!["--appendonly".into(), "yes".into()],
        ..Default::default()
    });
    redis::cmd("SET")
        .arg("kept")
        .arg("1")
        .query::<()>(&mut server.conn())
        .unwrap();
    let old_pid = server.pid;

    server.restart();

    assert_ne!(server.pid, old_pid);
    assert_eq!(
        server.info_field("server", "process_id"),
        Some(server.pid.to_string())
    );
    let v: Option<String> = redis::cmd("GET")
        .arg("kept")
        .query(&mut server.conn())
        .unwrap();
    assert_eq!(v.as_deref(), Some("1"));
}
