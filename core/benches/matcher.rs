//! Per-key cost of `Pattern::matches` on the shapes SWEEP sees most, and on Redis's
//! pathological regression patterns.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sweep_core::glob::Pattern;

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

criterion_group!(benches, prefix, classes, pathological);
criterion_main!(benches);
