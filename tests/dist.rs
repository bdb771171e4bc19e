//! The release package (`make dist`), as a user gets it: `make test-dist` unpacks
//! dist/redis-sweep-VERSION-linux-x86_64.tar.gz into target/dist-check and runs these with
//! REDIS_SWEEP_MODULE set to the packaged .so, once per server (Redis 7.0 and the newest Valkey).
//! Ignored by `make test`, which has no package to look at.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::ops::{dbsize, populate};
use common::{module_path, Server};

fn unpacked() -> PathBuf {
    let so = module_path();
    so.parent().unwrap().to_path_buf()
}

#[test]
#[ignore = "make test-dist (needs the unpacked package)"]
fn the_package_holds_what_it_says_and_its_checksums_match() {
    let dir = unpacked();
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        name,
        format!("redis-sweep-{}-linux-x86_64", env!("CARGO_PKG_VERSION")),
        "REDIS_SWEEP_MODULE must be the packaged .so, not {}",
        module_path().display()
    );
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "CHANGELOG.md",
            "LICENSE",
            "README.md",
            "SHA256SUMS",
            "libredis_sweep.so",
            "redis.conf.example"
        ]
    );
    let check = Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(check.status.success(), "sha256sum --check: {check:?}");
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), 5, "{sums}");
    let conf = std::fs::read_to_string(dir.join("redis.conf.example")).unwrap();
    assert!(
        conf.contains("\nloadmodule ./libredis_sweep.so\n"),
        "{conf}"
    );
}

/// The newest glibc symbol version the .so asks for: the oldest glibc it runs on.
fn glibc_floor(so: &Path) -> String {
    let out = Command::new("objdump").arg("-T").arg(so).output().unwrap();
    assert!(out.status.success(), "objdump -T: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut versions: Vec<Vec<u32>> = text
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("(GLIBC_").or(w.strip_prefix("GLIBC_")))
        .map(|v| {
            v.trim_end_matches(')')
                .split('.')
                .map(|n| n.parse().unwrap())
                .collect()
        })
        .collect();
    versions.sort();
    let newest = versions.last().expect("no GLIBC_ symbol versions");
    newest
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

#[test]
#[ignore = "make test-dist (needs the unpacked package)"]
fn the_readme_states_the_glibc_floor_measured_on_the_package() {
    let floor = glibc_floor(&module_path());
    let readme = std::fs::read_to_string(unpacked().join("README.md")).unwrap();
    let stated = format!("needs glibc {floor} or later");
    assert!(
        readme.contains(&stated),
        "the README should say the module {stated:?}"
    );
}

#[test]
#[ignore = "make test-dist (needs the unpacked package)"]
fn the_packaged_module_loads_and_sweeps() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 3000, "image_proxy");
    populate(&mut con, 1000, "other");
    let reply: redis::Value = redis::cmd("SWEEP.CLEAR")
        .arg("image_proxy:*")
        .query(&mut con)
        .unwrap();
    let fields = common::reply::fields(&reply);
    assert_eq!(fields["deleted"], 3000);
    assert_eq!(dbsize(&mut con), 1000);
    eprintln!(
        "loaded {} into {} {:?}",
        module_path().display(),
        server.server_name(),
        common::binary_version()
    );
}
