//! Per-key cost of `Pattern::matches` on the shapes SWEEP sees most, and on Redis's
//! pathological regression patterns; then of `PatternSet::matches` (OR/EXCEPT) for 1, 4 and 16
//! patterns.

use std::hint::black_box;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sweep_core::glob::Pattern;
use sweep_core::patterns::PatternSet;

fn keys(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix}{i:08x}:payload").into_bytes())
        .collect()
}

fn bench_over(c: &mut Criterion, name: &str, pattern: &[u8], keys: &[Vec<u8>]) {
    let pattern = Pattern::new(pattern);
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(keys.len() as u64));
    group.bench_function("matches", |b| {
        b.iter(|| {
            keys.iter()
                .filter(|k| pattern.matches(black_box(k)))
                .count()
        })
    });
    group.finish();
}

fn prefix(c: &mut Criterion) {
    bench_over(
        c,
        "prefix/hit",
        b"image_proxy:*",
        &keys("image_proxy:", 1000),
    );
    bench_over(
        c,
        "prefix/miss",
        b"image_proxy:*",
        &keys("image_thumb:", 1000),
    );
}

fn classes(c: &mut Criterion) {
    let keys: Vec<Vec<u8>> = (0..1000)
        .map(|i| match i % 3 {
            0 => format!("user:{i}:session{}", i % 10),
            1 => format!("user:{i}:profile"),
            _ => format!("user:x{i}:session1"),
        })
        .map(String::into_bytes)
        .collect();
    bench_over(c, "classes", b"user:[0-9]*:session?", &keys);
}

fn pathological(c: &mut Criterion) {
    bench_over(
        c,
        "nested_stars_40a",
        b"*a*a*a*a*a*a*a*a*a*a*b",
        &[vec![b'a'; 40]],
    );
    // Same shape without a literal tail to reject on, so the middle search runs.
    bench_over(
        c,
        "nested_stars_40a_no_tail",
        b"*a*a*a*a*a*a*a*a*a*a*b*",
        &[vec![b'a'; 40]],
    );
    let mut big_set = b"*[".to_vec();
    big_set.extend((0..40_000u32).map(|i| b'a' + (i % 20) as u8));
    big_set.push(b']');
    let mut key = vec![b'z'; 1000];
    key.push(b'c');
    let compile = big_set.clone();
    bench_over(c, "set_40000", &big_set, &[key.clone(), vec![b'z'; 1000]]);
    c.bench_function("set_40000/compile", |b| {
        b.iter(|| Pattern::new(black_box(&compile)))
    });
}

/// Sixteen cache prefixes, as a clean-up of several caches names them.
const WORDS: [&str; 16] = [
    "image", "thumb", "avatar", "session", "feed", "cart", "price", "search", "geo", "rank",
    "token", "quota", "draft", "inbox", "badge", "promo",
];

/// 1,000 keys: half under one of the sixteen prefixes (each shape's own), half under others.
fn mixed_keys(name: impl Fn(usize) -> String) -> Vec<Vec<u8>> {
    (0..1000)
        .map(|i| {
            if i % 2 == 0 {
                format!("{}:{i:08x}:payload", name(i / 2 % 16))
            } else {
                format!("other{}:{i:08x}:payload", i % 7)
            }
        })
        .map(String::into_bytes)
        .collect()
}

/// `PatternSet::matches` per key for 1, 4 and 16 patterns of three shapes, next to the naive
/// way (every pattern in turn) for comparison.
fn pattern_sets(c: &mut Criterion) {
    type Shape = (&'static str, fn(usize) -> String, fn(usize) -> String);
    let shapes: [Shape; 3] = [
        // `image:*`, `thumb:*`, …: distinct literal prefixes.
        (
            "distinct_prefixes",
            |i| format!("{}:*", WORDS[i]),
            |i| WORDS[i].to_string(),
        ),
        // `tmp:image:*`, `tmp:thumb:*`, …: one shared prefix, then distinct ones.
        (
            "shared_prefix",
            |i| format!("tmp:{}:*", WORDS[i]),
            |i| format!("tmp:{}", WORDS[i]),
        ),
        // `*:image:*`-like: no literal prefix at all, so every pattern runs (the worst case).
        (
            "no_prefix",
            |i| format!("*{}:*", WORDS[i]),
            |i| WORDS[i].to_string(),
        ),
    ];
    for (shape, pattern, key) in shapes {
        let keys = mixed_keys(key);
        let mut group = c.benchmark_group(format!("patterns/{shape}"));
        group.throughput(Throughput::Elements(keys.len() as u64));
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
        for n in [1usize, 4, 16] {
            let all: Vec<Vec<u8>> = (0..n).map(|i| pattern(i).into_bytes()).collect();
            let set = PatternSet::new(&all[0], &all[1..], &[] as &[Vec<u8>]);
            group.bench_with_input(BenchmarkId::new("set", n), &keys, |b, keys| {
                b.iter(|| keys.iter().filter(|k| set.matches(black_box(k))).count())
            });
            let naive: Vec<Pattern> = all.iter().map(|p| Pattern::new(p)).collect();
            group.bench_with_input(BenchmarkId::new("one_by_one", n), &keys, |b, keys| {
                b.iter(|| {
                    keys.iter()
                        .filter(|k| naive.iter().any(|p| p.matches(black_box(k))))
                        .count()
                })
            });
        }
        // The clean-up of the README: three caches but not the pinned entries.
        if shape == "distinct_prefixes" {
            let set = PatternSet::new(b"image:*", &[&b"thumb:*"[..], b"avatar:*"], &[b"*:pinned"]);
            group.bench_with_input(BenchmarkId::new("set_3_except_1", 3), &keys, |b, keys| {
                b.iter(|| keys.iter().filter(|k| set.matches(black_box(k))).count())
            });
        }
        group.finish();
    }
}

criterion_group!(benches, prefix, classes, pathological, pattern_sets);
criterion_main!(benches);
