//! Who is asking for a lock, and random ids. In: the process environment (`USER`, the host name,
//! `/dev/urandom`, the clock). Out: a [`LockInfo`] describing this process, lineage and lock ids
//! in UUID-v4 form, and whether a recorded holder is still running on this host. Read by hand
//! from `/proc` and `/etc` rather than through a crate: the runtime forbids `unsafe`, and these
//! few facts need no more.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{LockInfo, StateError};

/// A new random lineage id (UUID version 4 form, from `/dev/urandom`), for a state that is
/// being created.
pub fn new_lineage() -> Result<String, StateError> {
    random_uuid()
}

/// A [`LockInfo`] for this process taking the lock for `operation`.
pub(crate) fn lock_info(operation: &str) -> Result<LockInfo, StateError> {
    Ok(LockInfo {
        id: random_uuid()?,
        operation: operation.to_string(),
        who: format!("{}@{}", user(), host()),
        pid: std::process::id(),
        created: rfc3339(unix_now()),
    })
}

/// Whether the holder is known to be dead: it was on this host and no process has its pid.
/// `false` when that cannot be told (another host, no `/proc`).
pub(crate) fn holder_is_dead(info: &LockInfo) -> bool {
    let on_this_host = info.who.rsplit_once('@').is_some_and(|(_, h)| h == host());
    let proc = Path::new("/proc");
    on_this_host && proc.join("self").exists() && !process_alive(&proc.join(info.pid.to_string()))
}

/// A process that has exited but was not reaped yet (a zombie: state `Z` or `X` in
/// `/proc/PID/stat`, as under a container init that never reaps) is as dead as a missing one.
fn process_alive(dir: &Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else { return dir.exists() };
    // `pid (comm) S …`: the command may contain spaces and parentheses; the state follows the last `)`.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X"))
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn random_uuid() -> Result<String, StateError> {
    let path = PathBuf::from("/dev/urandom");
    let mut b = [0u8; 16];
    File::open(&path).and_then(|mut f| f.read_exact(&mut b)).map_err(|source| StateError::Io {
        action: "read random bytes from",
        path,
        source,
    })?;
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32]))
}

/// The user name: `USER` or `LOGNAME`, else the name of our uid in `/etc/passwd`.
fn user() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Some(name) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
            return name;
        }
    }
    let uid = std::fs::read_to_string("/proc/self/status").ok().and_then(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:").and_then(|rest| rest.split_whitespace().next()?.parse().ok()))
    });
    let Some(uid) = uid else { return "unknown".to_string() };
    let uid: u32 = uid;
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| format!("uid{uid}"))
}

/// The host name, from the kernel, `/etc/hostname` or `HOSTNAME`.
fn host() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown-host".to_string())
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's algorithm: count in
/// 400-year eras starting in March, so the leap day ends each counted year).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097; // 0..=146_096
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153; // March = 0
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_706_702_400), "2024-01-31T12:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 86_399), "2000-02-29T23:59:59Z");
        assert_eq!(rfc3339(951_868_800), "2000-03-01T00:00:00Z");
    }

    #[test]
    fn ids_are_uuid_v4_shaped_and_differ() {
        let a = new_lineage().unwrap();
        let b = new_lineage().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
        assert!(matches!(a.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn this_process_is_alive() {
        let info = lock_info("test").unwrap();
        assert!(!holder_is_dead(&info));
        assert!(info.who.contains('@'));
        let gone = LockInfo { pid: u32::MAX, ..info.clone() };
        assert_eq!(holder_is_dead(&gone), Path::new("/proc/self").exists());
        let elsewhere = LockInfo { who: "a@some-other-host.invalid".to_string(), ..gone };
        assert!(!holder_is_dead(&elsewhere));
    }

    #[test]
    fn an_unreaped_holder_counts_as_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Exited, not reaped yet: a zombie until `wait`.
        let zombie = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
        });
        assert!(zombie || !Path::new("/proc/self").exists(), "the child never showed as a zombie");
        let info = LockInfo { pid, ..lock_info("test").unwrap() };
        assert!(holder_is_dead(&info) || !zombie);
        child.wait().unwrap();
        assert!(holder_is_dead(&info) || !Path::new("/proc/self").exists());
    }
}
