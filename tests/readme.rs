//! The README runs (issue 11): every client snippet in README.md is the content of a tested
//! example file, and every `redis-cli` transcript is run against a server with the module and its
//! output compared with what the README shows.
//!
//! In README.md:
//! - a fenced block of client code (python, ts, rust, ...) is preceded by
//!   `<!-- example: PATH -->` and must equal that file (which `make test-clients` runs);
//! - a fenced block whose first line starts with `$ redis-cli` is a transcript. A preceding
//!   `<!-- transcript: CMD; CMD; ... | vary: FIELD FIELD -->` gives the commands that make its
//!   dataset (run first, on a fresh server) and the fields whose values change from run to run
//!   (`elapsed_ms`, `slices` and `progress` always do): their values are compared by position
//!   only. A line `...` ends the comparison of that command's output.
mod common;

use std::path::Path;
use std::process::Command;

use common::Server;

const CLIENT_LANGUAGES: [&str; 7] = [
    "python",
    "py",
    "ts",
    "typescript",
    "js",
    "javascript",
    "rust",
];
const ALWAYS_VARY: [&str; 3] = ["elapsed_ms", "slices", "progress"];

struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    lang: String,
    body: String,
    /// The HTML comment just above the fence, if any.
    marker: Option<String>,
}

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn blocks(text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(lang) = lines[i].strip_prefix("```") else {
            i += 1;
            continue;
        };
        let open = i;
        let mut body = String::new();
        i += 1;
        while i < lines.len() && !lines[i].starts_with("```") {
            body.push_str(lines[i]);
            body.push('\n');
            i += 1;
        }
        let marker = lines[..open]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| l.trim().strip_prefix("<!--"))
            .and_then(|l| l.strip_suffix("-->"))
            .map(|l| l.trim().to_string());
        out.push(Block {
            line: open + 1,
            lang: lang.trim().to_string(),
            body,
            marker,
        });
        i += 1;
    }
    out
}

#[test]
fn every_client_snippet_is_a_tested_example_file() {
    let text = readme();
    let mut checked = 0;
    for block in blocks(&text) {
        if !CLIENT_LANGUAGES.contains(&block.lang.as_str()) {
            continue;
        }
        let path = block
            .marker
            .as_deref()
            .and_then(|m| m.strip_prefix("example:"))
            .map(str::trim)
            .unwrap_or_else(|| {
                panic!(
                    "README.md line {}: a {} block without `<!-- example: PATH -->` above it: \
                     put the code in a tested file under examples/ and name it",
                    block.line, block.lang
                )
            });
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        let content = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("README.md line {}: {}: {e}", block.line, file.display()));
        assert_eq!(
            block.body, content,
            "README.md line {}: the block differs from {path}",
            block.line
        );
        checked += 1;
    }
    assert!(checked >= 2, "expected the client examples in README.md");
}

/// Splits a shell command line as `sh` would for the simple quoting a transcript uses.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    w.push(q);
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => w.extend(chars.next()),
                        _ => w.push(q),
                    }
                }
            }
            c if c.is_whitespace() => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// Replaces the value of each field in `vary` by `<varies>`, in redis-cli's RESP2 layout
/// (` 11) "elapsed_ms"` then `12) (integer) 111`) and RESP3 layout (`6# "elapsed_ms" => ...`).
fn mask(lines: &[String], vary: &[String]) -> Vec<String> {
    let is_varying = |s: &str| vary.iter().any(|f| s == format!("\"{f}\""));
    let mut out: Vec<String> = Vec::new();
    let mut mask_next = false;
    for line in lines {
        // The element number redis-cli prints: ` 11) ` (RESP2 arrays) or `6# ` (RESP3 maps).
        let indent = line.len() - line.trim_start().len();
        let digits = line[indent..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let at = indent + digits;
        let (prefix, rest) =
            if digits > 0 && (line[at..].starts_with(") ") || line[at..].starts_with("# ")) {
                line.split_at(at + 2)
            } else {
                ("", line.as_str())
            };
        if mask_next {
            out.push(format!("{prefix}<varies>"));
            mask_next = false;
            continue;
        }
        if let Some((name, _)) = rest.split_once(" => ") {
            if is_varying(name) {
                out.push(format!("{prefix}{name} => <varies>"));
                continue;
            }
        }
        mask_next = is_varying(rest);
        out.push(line.clone());
    }
    out
}

fn run_cli(port: u16, command_line: &str) -> Vec<String> {
    let words = shell_words(command_line);
    assert_eq!(words.first().map(String::as_str), Some("redis-cli"));
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--no-raw"])
        .args(&words[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run redis-cli: {e} (run scripts/setup.sh)"));
    assert!(out.status.success(), "{command_line}: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn run_transcript(block: &Block) {
    let (setup, vary) = match block
        .marker
        .as_deref()
        .and_then(|m| m.strip_prefix("transcript:"))
    {
        Some(spec) => match spec.split_once("| vary:") {
            Some((setup, vary)) => (setup.to_string(), vary.to_string()),
            None => (spec.to_string(), String::new()),
        },
        None => (String::new(), String::new()),
    };
    let vary: Vec<String> = ALWAYS_VARY
        .iter()
        .map(|s| s.to_string())
        .chain(vary.split_whitespace().map(str::to_string))
        .collect();

    let server = Server::start();
    let mut con = server.conn();
    for cmd in setup.split(';').map(str::trim).filter(|c| !c.is_empty()) {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        redis::cmd(words[0])
            .arg(&words[1..])
            .query::<redis::Value>(&mut con)
            .unwrap_or_else(|e| panic!("README.md line {}: setup {cmd:?}: {e}", block.line));
    }

    // Commands and the output shown under each.
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    for line in block.body.lines() {
        match line.strip_prefix("$ ") {
            Some(cmd) => steps.push((cmd.to_string(), Vec::new())),
            None => steps
                .last_mut()
                .unwrap_or_else(|| panic!("README.md line {}: output before `$`", block.line))
                .1
                .push(line.to_string()),
        }
    }
    for (cmd, shown) in steps {
        let actual = run_cli(server.port, &cmd);
        let (shown, partial) = match shown.iter().position(|l| l.trim() == "...") {
            Some(at) => (shown[..at].to_vec(), true),
            None => (shown, false),
        };
        let mut actual = mask(&actual, &vary);
        if partial {
            actual.truncate(shown.len());
        }
        if !shown.first().is_some_and(|l| l.starts_with("(error)")) {
            assert!(
                !actual.first().is_some_and(|l| l.starts_with("(error)")),
                "README.md line {}: `{cmd}` failed: {actual:?}",
                block.line
            );
        }
        assert_eq!(
            mask(&shown, &vary),
            actual,
            "README.md line {}: `{cmd}` printed something else than the README shows",
            block.line
        );
    }
}

#[test]
fn every_redis_cli_transcript_prints_what_the_readme_shows() {
    let text = readme();
    let transcripts: Vec<Block> = blocks(&text)
        .into_iter()
        .filter(|b| b.body.starts_with("$ redis-cli"))
        .collect();
    assert!(
        !transcripts.is_empty(),
        "no redis-cli transcript in README.md"
    );
    for block in &transcripts {
        run_transcript(block);
    }
}

#[test]
fn shell_words_and_masking() {
    assert_eq!(
        shell_words(r#"redis-cli -3 SWEEP.CLEAR 'a b*' "c\"d" e"#),
        ["redis-cli", "-3", "SWEEP.CLEAR", "a b*", "c\"d", "e"]
    );
    let vary = vec!["slices".to_string()];
    let lines: Vec<String> = [
        " 1) \"slices\"",
        " 2) (integer) 7",
        "3# \"slices\" => (integer) 9",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        mask(&lines, &vary),
        [
            " 1) \"slices\"",
            " 2) <varies>",
            "3# \"slices\" => <varies>"
        ]
    );
}
