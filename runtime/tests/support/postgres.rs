//! A real PostgreSQL server for tests. In: Debian's server binaries (`scripts/setup.sh` installs
//! them; `MLOPS_PG_BIN` may name another directory holding `initdb` and `pg_ctl`). Out: a
//! running server on 127.0.0.1 with a fresh database and a connection string to it, stopped
//! when dropped — or, for the one shared by a test process ([`TestPostgres::shared`]), by a
//! watchdog when the process exits.
//!
//! `initdb` and `pg_ctl` refuse to run as root, so as root the server runs as the `postgres`
//! OS user (through `runuser`, or `su` where there is no `runuser`) in a temporary directory
//! given to that user. The server is tuned for tests: no fsync, unix sockets in the temporary
//! directory, TCP on 127.0.0.1 only.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Name of the database created for tests.
pub const DATABASE: &str = "mlops_test";

/// A running PostgreSQL server.
pub struct TestPostgres {
    bin: PathBuf,
    data: PathBuf,
    /// Run the server's tools as the `postgres` OS user (we are root).
    run_as: Option<Account>,
    port: u16,
    connection: String,
    watchdog: Option<Child>,
    // Last: removed after the server has stopped.
    _dir: tempfile::TempDir,
}

#[derive(Clone, Copy)]
struct Account {
    uid: u32,
    gid: u32,
}

impl TestPostgres {
    /// The server shared by every test of this process, started by the first caller. Panics,
    /// failing the test, when PostgreSQL is not installed or does not start.
    pub fn shared() -> &'static TestPostgres {
        static SHARED: OnceLock<TestPostgres> = OnceLock::new();
        SHARED.get_or_init(|| TestPostgres::start().unwrap_or_else(|e| panic!("{e}")))
    }

    /// Starts a server of its own, with a database named [`DATABASE`].
    pub fn start() -> Result<TestPostgres, String> {
        let bin = find_bin()?;
        let run_as = if is_root() { Some(postgres_account()?) } else { None };
        let dir = tempfile::Builder::new().prefix("mlops-pg-").tempdir().map_err(|e| format!("temp dir: {e}"))?;
        if let Some(a) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(a.uid), Some(a.gid))
                .map_err(|e| format!("giving {} to the postgres user: {e}", dir.path().display()))?;
        }
        let data = dir.path().join("data");
        let mut server =
            TestPostgres { bin, data, run_as, port: 0, connection: String::new(), watchdog: None, _dir: dir };
        server.run(
            "initdb",
            &[
                "-D",
                path_str(&server.data)?,
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;

        // A free port can be taken between asking and listening; try a few.
        let mut last_error = String::new();
        for _ in 0..5 {
            server.port = free_port()?;
            match server.pg_ctl_start() {
                Ok(()) => {
                    last_error.clear();
                    break;
                }
                Err(e) => last_error = e,
            }
        }
        if !last_error.is_empty() {
            return Err(last_error);
        }
        server.watchdog = server.spawn_watchdog().ok();

        let admin = format!("host=127.0.0.1 port={} user=postgres dbname=postgres", server.port);
        let mut client = connect_retrying(&admin)?;
        client.batch_execute(&format!("CREATE DATABASE {DATABASE}")).map_err(|e| format!("CREATE DATABASE: {e}"))?;
        server.connection = format!("host=127.0.0.1 port={} user=postgres dbname={DATABASE}", server.port);
        Ok(server)
    }

    /// A libpq-style connection string to the test database.
    pub fn connection_string(&self) -> &str {
        &self.connection
    }

    /// A new client connected to the test database.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.connection, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to the test server: {e}"))
    }

    /// Runs `sql` (several statements allowed) in the test database.
    #[track_caller]
    pub fn execute(&self, sql: &str) {
        self.client().batch_execute(sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let socket_dir = self.data.parent().unwrap_or(Path::new("/tmp"));
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k '{}' -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=100",
            self.port,
            path_str(socket_dir)?
        );
        let log = socket_dir.join("server.log");
        let result = self.run(
            "pg_ctl",
            &["-D", path_str(&self.data)?, "-l", path_str(&log)?, "-o", &options, "-w", "-t", "60", "start"],
        );
        result.map_err(|e| {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            format!("{e}\nserver log:\n{tail}")
        })
    }

    /// Runs one of the server's tools (as the postgres user when we are root) and waits for it.
    fn run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let output =
            self.command(tool, args)?.stdin(Stdio::null()).output().map_err(|e| format!("running {tool}: {e}"))?;
        if output.status.success() {
            return Ok(());
        }
        Err(format!(
            "{tool} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }

    fn command(&self, tool: &str, args: &[&str]) -> Result<Command, String> {
        let program = self.bin.join(tool);
        let program = path_str(&program)?;
        let mut cmd = match self.run_as {
            None => {
                let mut c = Command::new(program);
                c.args(args);
                c
            }
            Some(_) if Path::new("/usr/sbin/runuser").exists() || Path::new("/sbin/runuser").exists() => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--", program]).args(args);
                c
            }
            Some(_) => {
                let line = std::iter::once(program).chain(args.iter().copied()).map(shell_quote).collect::<Vec<_>>();
                let mut c = Command::new("su");
                c.args(["postgres", "-s", "/bin/sh", "-c", &format!("exec {}", line.join(" "))]);
                c
            }
        };
        // The postgres user may not be allowed into our working directory.
        cmd.current_dir(self.data.parent().unwrap_or(Path::new("/")));
        Ok(cmd)
    }

    /// A process that stops the server and removes its directory once this process has gone,
    /// since a server in a `static` is never dropped.
    fn spawn_watchdog(&self) -> Result<Child, String> {
        let stop = self.command("pg_ctl", &["-D", path_str(&self.data)?, "-m", "immediate", "-w", "stop"])?;
        let mut line = vec![stop.get_program().to_string_lossy().into_owned()];
        line.extend(stop.get_args().map(|a| a.to_string_lossy().into_owned()));
        let dir = self.data.parent().unwrap_or(Path::new("/nonexistent"));
        let script = format!(
            "while [ -d /proc/{pid} ]; do sleep 1; done; cd / && {stop} >/dev/null 2>&1; rm -rf -- {dir}",
            pid = std::process::id(),
            stop = line.iter().map(|s| shell_quote(s)).collect::<Vec<_>>().join(" "),
            dir = shell_quote(path_str(dir)?),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the watchdog: {e}"))
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if let Ok(path) = path_str(&self.data) {
            let _ = self.run("pg_ctl", &["-D", path, "-m", "immediate", "-w", "stop"]);
        }
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

/// The directory of `initdb` and `pg_ctl`: `MLOPS_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout).
fn find_bin() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("MLOPS_PG_BIN") {
        let dir = PathBuf::from(dir);
        return if dir.join("initdb").is_file() {
            Ok(dir)
        } else {
            Err(format!(
                "MLOPS_PG_BIN={} holds no initdb; point it at PostgreSQL's bin directory, or unset it and \
                 run scripts/setup.sh",
                dir.display()
            ))
        };
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.split('.').next()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "PostgreSQL is not installed: no initdb/pg_ctl under /usr/lib/postgresql/*/bin. \
         Run scripts/setup.sh (it installs Debian's `postgresql` package, as CI does), \
         or set MLOPS_PG_BIN to a directory holding initdb and pg_ctl."
            .to_string()
    })
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// The `postgres` OS user, which Debian's package creates.
fn postgres_account() -> Result<Account, String> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| format!("reading /etc/passwd: {e}"))?;
    passwd
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() > 3 && f[0] == "postgres")
                .then(|| Some(Account { uid: f[2].parse().ok()?, gid: f[3].parse().ok()? }))
        })
        .flatten()
        .ok_or_else(|| {
            "running as root, but there is no `postgres` user to run the server as; run scripts/setup.sh".to_string()
        })
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn connect_retrying(connection: &str) -> Result<postgres::Client, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match postgres::Client::connect(connection, postgres::NoTls) {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() > deadline => {
                return Err(format!("the test server never accepted a connection: {e}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn path_str(p: &Path) -> Result<&str, String> {
    p.to_str().ok_or_else(|| format!("{} is not UTF-8", p.display()))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
