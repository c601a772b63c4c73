//! Small pieces the serving modules share: a fast thread-local random generator, a hash that is
//! the same on every replica and release (sticky routing must agree across them), prediction ids
//! and UTC timestamps.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};
use std::time::{SystemTime, UNIX_EPOCH};

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

thread_local! {
    // Seeded per thread from the process's random hasher keys: not for secrets, only for
    // traffic splits and ids.
    static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()) | 1);
}

/// A uniformly random `u64` (SplitMix64 over a thread-local counter).
pub(crate) fn random_u64() -> u64 {
    STATE.with(|s| {
        let next = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(next);
        splitmix(next)
    })
}

/// A uniformly random number in `0..n` (`n` > 0), without modulo bias worth measuring.
pub(crate) fn below(x: u64, n: u64) -> u64 {
    ((u128::from(x) * u128::from(n)) >> 64) as u64
}

/// FNV-1a over the bytes, finished with SplitMix64's mixer: fixed forever, unlike std's hasher.
pub(crate) fn stable_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    splitmix(h)
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// A UUID version 7 (time-ordered: 48 bits of Unix milliseconds, then random bits), so ids
/// sort by time in logs and files.
pub(crate) fn prediction_id(now_micros: i64) -> String {
    let millis = (now_micros / 1000) as u64 & 0xFFFF_FFFF_FFFF;
    let r = random_u64();
    let r2 = random_u64();
    let hi = (millis << 16) | 0x7000 | (r & 0x0FFF);
    let lo = (r2 & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// RFC 3339 UTC with microseconds: `2025-01-02T03:04:05.678901Z`.
pub(crate) fn rfc3339_micros(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z", t / 3600, t / 60 % 60, t % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(rfc3339_micros(1_709_211_845_000_123), "2024-02-29T13:04:05.000123Z");
    }

    #[test]
    fn ids_are_uuid_v7_and_sort_by_time() {
        let a = prediction_id(1_700_000_000_000_000);
        let b = prediction_id(1_700_000_000_001_000);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "7");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
        assert!(a < b);
        assert_ne!(prediction_id(0), prediction_id(0));
    }

    #[test]
    fn stable_hash_is_fixed_and_below_is_in_range() {
        // Pinned: replicas and releases must route an entity alike.
        assert_eq!(stable_hash("acct_7"), stable_hash("acct_7"));
        assert_ne!(stable_hash("acct_7"), stable_hash("acct_8"));
        assert_eq!(stable_hash(""), splitmix(0xcbf2_9ce4_8422_2325));
        for _ in 0..1000 {
            assert!(below(random_u64(), 7) < 7);
        }
        assert_eq!(below(u64::MAX, 100), 99);
        assert_eq!(below(0, 100), 0);
    }
}
