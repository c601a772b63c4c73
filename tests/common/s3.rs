//! An S3 server on 127.0.0.1 for the object-store tests: moto's server (PyPI `moto[server]`,
//! which `scripts/setup.sh` installs), speaking the S3 REST protocol with conditional writes
//! (`If-Match`, `If-None-Match`). It does not check signatures, so any key works; unsigned listings and
//! writes work too (reads need a signature: read through a mirror). Shared by
//! `tests/pod_cli.rs` and `runtime/tests/mirror_s3.rs` (included with `#[path]`).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running S3 server; stopped when dropped.
pub struct S3Server {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// Starts the server, or `None` (with a line saying so) when moto is not installed outside CI;
/// under CI a missing server fails the test.
pub fn start_s3() -> Option<S3Server> {
    let have = Command::new("python3")
        .args(["-c", "import moto.server, flask"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(
            std::env::var_os("CI").is_none(),
            "moto's S3 server is not installed: run scripts/setup.sh (pip install 'moto[server]')"
        );
        eprintln!("SKIPPED: moto's S3 server is not installed (scripts/setup.sh installs it)");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("python3")
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto's S3 server");
    let server = S3Server { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.request("GET", "/", "").is_none() {
        assert!(Instant::now() < deadline, "moto's S3 server did not answer on port {port} within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(server)
}

impl S3Server {
    /// `AWS_ENDPOINT_URL` for it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The variables a pod's Secret would hold for it.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// Creates `bucket`.
    #[track_caller]
    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = self.request("PUT", &format!("/{bucket}"), "").expect("the S3 server answers");
        assert_eq!(status, 200, "create bucket {bucket}: {body}");
    }

    /// The keys under `prefix` in `bucket` (ListObjectsV2, first 1000).
    #[track_caller]
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (status, body) =
            self.request("GET", &format!("/{bucket}?list-type=2&prefix={prefix}"), "").expect("the S3 server answers");
        assert_eq!(status, 200, "list {bucket}/{prefix}: {body}");
        body.split("<Key>").skip(1).filter_map(|s| s.split("</Key>").next()).map(str::to_string).collect()
    }

    /// Writes `body` at `key` in `bucket` (as another writer would).
    #[track_caller]
    pub fn put(&self, bucket: &str, key: &str, body: &str) {
        let (status, text) = self.request("PUT", &format!("/{bucket}/{key}"), body).expect("the S3 server answers");
        assert_eq!(status, 200, "put {bucket}/{key}: {text}");
    }

    /// One unsigned request: (status, body); `None` when nothing answers.
    pub fn request(&self, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        s.write_all(head.as_bytes()).ok()?;
        s.write_all(body.as_bytes()).ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text.split(' ').nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string());
        Some((status, body))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
