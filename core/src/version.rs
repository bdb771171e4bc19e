//! The module version `MODULE LIST` reports, from the crate's semver.

/// Encodes `MAJOR.MINOR.PATCH` the way Redis modules report their version: `major * 10000 +
/// minor * 100 + patch`, so `1.2.3` is 10203 and versions compare as integers. A pre-release or
/// build suffix (`1.2.3-rc.1`, `1.2.3+abc`) is ignored. Anything else (a part missing, not a
/// number, minor or patch above 99, a result beyond `i32`) gives 0: such a version cannot be
/// encoded without clashing with another. `const`, so the module computes it at compile time.
pub const fn encode(semver: &str) -> i32 {
    let bytes = semver.as_bytes();
    let mut parts = [0i64; 3];
    let mut part = 0;
    let mut digits = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_digit() {
            // Leading zeros are not semver ("01.2.3").
            if digits == 1 && parts[part] == 0 {
                return 0;
            }
            parts[part] = parts[part] * 10 + (b - b'0') as i64;
            digits += 1;
            if parts[part] > i32::MAX as i64 {
                return 0;
            }
        } else if b == b'.' && part < 2 && digits > 0 {
            part += 1;
            digits = 0;
        } else if (b == b'-' || b == b'+') && part == 2 && digits > 0 {
            // The suffix itself is not checked, only that there is one.
            if i + 1 == bytes.len() {
                return 0;
            }
            break;
        } else {
            return 0;
        }
        i += 1;
    }
    if part != 2 || digits == 0 || parts[1] > 99 || parts[2] > 99 {
        return 0;
    }
    let v = parts[0] * 10_000 + parts[1] * 100 + parts[2];
    if v > i32::MAX as i64 {
        return 0;
    }
    v as i32
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn encodes_semver_as_redis_modules_do() {
        for (semver, expected) in [
            ("0.1.0", 100),
            ("1.2.3", 10203),
            ("1.0.0", 10000),
            ("0.0.1", 1),
            ("2.10.99", 21099),
            ("10.0.0", 100000),
            ("1.2.3-rc.1", 10203),
            ("1.2.3+build.7", 10203),
            ("214748.36.47", 2147483647),
        ] {
            assert_eq!(encode(semver), expected, "{semver}");
        }
    }

    #[test]
    fn refuses_what_cannot_be_encoded() {
        for semver in [
            "",
            "1",
            "1.2",
            "1.2.",
            "1..3",
            ".1.2",
            "1.2.3.4",
            "1.100.0",
            "1.2.100",
            "a.b.c",
            "1.2.3x",
            "01.2.3",
            "1.02.3",
            "1.2.3-",
            "214748.36.48",
            "99999999999.0.0",
            "1.2-rc.3",
        ] {
            assert_eq!(encode(semver), 0, "{semver}");
        }
    }

    // Evaluated at compile time, as the module's registration does.
    const _: () = assert!(encode("1.2.3") == 10203);
}
