//! `sweep-example clear|progress|cancel [PATTERN] [DEADLINE_MS]` against `REDIS_URL`
//! (`redis://127.0.0.1:6379`; add `?protocol=resp3` for RESP3). Prints `progress ...` lines, then
//! `result deleted N` (and the state for `cancel`).

use std::time::Duration;

use sweep_example::{clear_all_image_caches, clear_with_deadline, clear_with_progress, int};

fn main() -> redis::RedisResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let example = args.first().map(String::as_str).unwrap_or("clear");
    let pattern = args.get(1).map(String::as_str).unwrap_or("image_proxy:*");
    let deadline_ms: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut con = redis::Client::open(url)?.get_connection()?;
    let poll = Duration::from_millis(10);
    match example {
        "clear" => println!("result deleted {}", clear_all_image_caches(&mut con)?),
        "progress" => {
            let show = |s: &sweep_example::Fields| {
                println!(
                    "progress {} {:?} deleted {}",
                    sweep_example::state(s),
                    s.get("progress"),
                    int(s, "deleted")
                )
            };
            let deleted = clear_with_progress(&mut con, pattern, show, poll)?;
            println!("result deleted {deleted}");
        }
        "cancel" => {
            let last =
                clear_with_deadline(&mut con, pattern, Duration::from_millis(deadline_ms), poll)?;
            println!(
                "result deleted {} state {}",
                int(&last, "deleted"),
                sweep_example::state(&last)
            );
        }
        other => {
            eprintln!("unknown example {other}: clear, progress or cancel");
            std::process::exit(2);
        }
    }
    Ok(())
}
