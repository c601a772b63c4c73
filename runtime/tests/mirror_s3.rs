//! The data directory mirrored through a real S3 server (moto's, on 127.0.0.1): two pods'
//! directories that share nothing but the bucket see each other's files, commit files last,
//! deletions, conflicts, area locks held across pods and taken over when stale, and every
//! failure named with the URL and the fix.

#[path = "../../tests/common/s3.rs"]
mod s3;

use mlops_runtime::objstore::{Mirror, MirrorError};
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("mlops-mirror-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
    fn write(&self, rel: &str, text: &str) {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.0.join(rel)).ok()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn env(s: &s3::S3Server) -> Vec<(String, String)> {
    s.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn lock_held(s: &s3::S3Server, area: &str) -> bool {
    s.keys("locks", area).contains(&format!("{area}/.mlops-lock"))
}

fn open(s: &s3::S3Server, url: &str, dir: &Path) -> Mirror {
    Mirror::open_with(url, dir, env(s)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn two_directories_that_share_only_the_bucket_see_each_others_files() {
    let Some(s) = s3::start_s3() else { return };
    s.create_bucket("models");
    let (a, b) = (Dir::new("a"), Dir::new("b"));
    let url = "s3://models/churn/prod";
    let (ma, mb) = (open(&s, url, &a.0), open(&s, url, &b.0));

    a.write("predictions/ep/pods/a/00.jsonl", "{\"x\":1}\n");
    a.write("registry/models/j/1/model.json", "{}");
    a.write("registry/index.json", "{\"v\":1}");
    a.write("registry/.index.json.tmp-7", "half");
    a.write("registry/registry.lock", "42");
    let pushed = ma.push(&[""]).unwrap();
    assert_eq!((pushed.uploaded, pushed.conflicts.len()), (3, 0), "{pushed:?}");
    let mut keys = s.keys("models", "churn/prod/");
    keys.sort();
    assert_eq!(
        keys,
        [
            "churn/prod/predictions/ep/pods/a/00.jsonl",
            "churn/prod/registry/index.json",
            "churn/prod/registry/models/j/1/model.json"
        ],
        "hidden temporaries and lock files are never mirrored"
    );
    // Nothing changed: nothing to upload.
    assert_eq!(ma.push(&[""]).unwrap().uploaded, 0);

    // b pulls only what it reads.
    let pulled = mb.pull(&["registry"]).unwrap();
    assert_eq!(pulled.downloaded, 2);
    assert_eq!(b.read("registry/index.json").as_deref(), Some("{\"v\":1}"));
    assert_eq!(b.read("predictions/ep/pods/a/00.jsonl"), None);
    assert_eq!(mb.pull(&["registry"]).unwrap().downloaded, 0, "unchanged objects are not downloaded again");

    // A change and a deletion travel; a file b changed itself is not overwritten by a pull.
    a.write("registry/index.json", "{\"v\":2}");
    std::fs::remove_file(a.0.join("registry/models/j/1/model.json")).unwrap();
    let pushed = ma.push(&["registry"]).unwrap();
    assert_eq!((pushed.uploaded, pushed.deleted), (1, 1), "{pushed:?}");
    let pulled = mb.pull(&[""]).unwrap();
    assert_eq!(b.read("registry/index.json").as_deref(), Some("{\"v\":2}"));
    assert_eq!(b.read("registry/models/j/1/model.json"), None, "{pulled:?}");
    assert_eq!(b.read("predictions/ep/pods/a/00.jsonl").as_deref(), Some("{\"x\":1}\n"));

    std::thread::sleep(Duration::from_millis(20));
    b.write("predictions/ep/pods/a/00.jsonl", "{\"mine\":true}\n");
    a.write("predictions/ep/pods/a/00.jsonl", "{\"x\":1}\n{\"x\":2}\n");
    ma.push(&["predictions"]).unwrap();
    let pulled = mb.pull(&["predictions"]).unwrap();
    assert_eq!(pulled.conflicts, ["predictions/ep/pods/a/00.jsonl"]);
    assert_eq!(b.read("predictions/ep/pods/a/00.jsonl").as_deref(), Some("{\"mine\":true}\n"));
    // Its push then wins, and says so.
    let pushed = mb.push(&["predictions"]).unwrap();
    assert_eq!(pushed.conflicts, ["predictions/ep/pods/a/00.jsonl"]);
    let c = Dir::new("c");
    open(&s, url, &c.0).pull(&["predictions"]).unwrap();
    assert_eq!(c.read("predictions/ep/pods/a/00.jsonl").as_deref(), Some("{\"mine\":true}\n"));
}

#[test]
fn an_area_lock_has_one_holder_across_pods_and_a_stale_one_is_taken_over() {
    let Some(s) = s3::start_s3() else { return };
    s.create_bucket("locks");
    let (a, b) = (Dir::new("la"), Dir::new("lb"));
    let (ma, mb) = (open(&s, "s3://locks", &a.0), open(&s, "s3://locks", &b.0));

    let held = ma.lock_area("registry", Duration::ZERO, Duration::from_secs(60)).unwrap();
    assert!(lock_held(&s, "registry"));
    let busy = mb.lock_area("registry", Duration::from_millis(500), Duration::from_secs(60)).unwrap_err();
    assert!(matches!(busy, MirrorError::Locked { .. }), "{busy}");
    let text = busy.to_string();
    assert!(text.contains("s3://locks/registry is busy") && text.contains("holds its lock"), "{text}");

    // The holder writes and commits: the next holder pulls what it wrote.
    a.write("registry/index.json", "{\"v\":1}");
    let committed = held.commit().unwrap();
    assert_eq!(committed.uploaded, 1);
    assert!(!lock_held(&s, "registry"), "released");
    let next = mb.lock_area("registry", Duration::ZERO, Duration::from_secs(60)).unwrap();
    assert_eq!(b.read("registry/index.json").as_deref(), Some("{\"v\":1}"), "pulled when taken");
    drop(next);
    assert!(!lock_held(&s, "registry"), "dropped without commit: released too");

    // A holder that died: its lock is taken over once older than the ttl.
    s.put("locks", "features/.mlops-lock", r#"{"holder": "gone-pod (pid 1)", "since_ms": 1000}"#);
    let taken = mb.lock_area("features", Duration::ZERO, Duration::from_secs(60)).unwrap();
    drop(taken);
}

#[test]
fn stores_that_cannot_be_used_are_named_with_the_fix() {
    let Some(s) = s3::start_s3() else { return };
    let dir = Dir::new("bad");
    let missing = Mirror::open_with("s3://no-such-bucket/x", &dir.0, env(&s)).unwrap_err().to_string();
    assert!(missing.contains("s3://no-such-bucket/x") && missing.contains("check the bucket exists"), "{missing}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut vars = env(&s);
    vars.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    vars.push(("AWS_ENDPOINT_URL".into(), format!("http://127.0.0.1:{closed}")));
    let started = std::time::Instant::now();
    let down = Mirror::open_with("s3://models", &dir.0, vars).unwrap_err().to_string();
    assert!(down.contains("s3://models") && down.contains("AWS_ENDPOINT_URL"), "{down}");
    eprintln!("an unreachable store failed after {:?}", started.elapsed());

    let scheme = Mirror::open_with("gs://models", &dir.0, env(&s)).unwrap_err().to_string();
    assert!(scheme.contains("not `s3://`") && scheme.contains("AWS_ENDPOINT_URL"), "{scheme}");
}
