//! A loopback mock of the Hugging Face Hub for tests, speaking what hf-hub 1.0 sends (see
//! shared/docs/hub-protocol.md), with switchable faults.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const REPO: &str = "zalando-datasets/fashion_mnist";
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
pub const TRAIN: &str = "fashion_mnist/train/0000.parquet";
pub const TEST: &str = "fashion_mnist/test/0000.parquet";
pub const TOKEN: &str = "test-token-not-real";

/// The shared fixture folder, or `None` after skipping the test (see `common::shared_with`).
pub fn hub_fixture() -> Option<PathBuf> {
    crate::common::shared_with("data/fashion-mnist/hub", &[TRAIN, TEST])
}

/// What the mock does wrong.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Files answered with 404 (HEAD and GET).
    pub not_found: Vec<String>,
    /// Files whose GET answers 500 with a short body (HEAD is fine).
    pub get_500: Vec<String>,
    /// Leave out Content-Length from HEAD (so only the parquet check can catch a bad body).
    pub head_without_size: bool,
    /// Files served cut to half their size (HEAD announces the cut size).
    pub truncated: Vec<String>,
    /// Accept connections and never answer.
    pub hang: bool,
    /// Files whose GET sends half the body and then stalls.
    pub stall_get: Vec<String>,
}

/// Files below `dir`, as repository paths relative to `root`.
pub fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            list_files(root, &p, out);
        } else {
            out.push(
                p.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/"),
            );
        }
    }
}

/// A request the mock saw: method, raw path, Authorization header.
type Seen = (String, String, Option<String>);

/// A loopback Hub serving the fixture folder.
pub struct MockHub {
    pub url: String,
    pub faults: Arc<Mutex<Faults>>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub stop: Arc<AtomicBool>,
    pub thread: Option<JoinHandle<()>>,
}

/// A 64-hex "sha256-like" ETag from the content (FNV-1a, repeated).
pub fn etag(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}").repeat(4)
}

pub fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
    head: bool,
) {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let _ = stream.write_all(out.as_bytes());
    if !head {
        let _ = stream.write_all(body);
    }
    let _ = stream.flush();
}

pub fn handle(
    mut stream: TcpStream,
    root: PathBuf,
    faults: Faults,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let mut lines = text.lines();
    let mut first = lines.next().unwrap_or_default().split_whitespace();
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    seen.lock().unwrap().push((
        method.clone(),
        path.clone(),
        headers.get("authorization").cloned(),
    ));
    if faults.hang {
        // Hold the connection open without a word until the test ends.
        let t0 = Instant::now();
        while !stop.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(20));
        }
        return;
    }
    let head = method == "HEAD";
    // Any repository: the info route lists every file of the served folder.
    let info_repo = path
        .strip_prefix("/api/datasets/")
        .and_then(|r| r.strip_suffix("/revision/refs%2Fconvert%2Fparquet"));
    let resolved = path
        .strip_prefix("/datasets/")
        .and_then(|r| r.split_once("/resolve/refs%2Fconvert%2Fparquet/"))
        .map(|(_, file)| file);
    if let (true, Some(repo)) = (method == "GET", info_repo) {
        let mut files = Vec::new();
        list_files(&root, &root, &mut files);
        files.push("README.md".to_string());
        let siblings: Vec<_> = files
            .iter()
            .map(|f| serde_json::json!({"rfilename": f}))
            .collect();
        let body = serde_json::json!({"id": repo, "sha": COMMIT, "siblings": siblings}).to_string();
        respond(
            &mut stream,
            "200 OK",
            &[("Content-Type", "application/json".into())],
            body.as_bytes(),
            false,
        );
    } else if let Some(file) = resolved {
        let file = file.to_string();
        let commit = ("X-Repo-Commit", COMMIT.to_string());
        let data = std::fs::read(root.join(&file)).ok();
        match data {
            Some(_) if faults.not_found.contains(&file) => respond(
                &mut stream,
                "404 Not Found",
                &[commit, ("X-Error-Code", "EntryNotFound".into())],
                b"Entry not found",
                head,
            ),
            None => respond(
                &mut stream,
                "404 Not Found",
                &[commit],
                b"Entry not found",
                head,
            ),
            Some(mut data) => {
                if faults.truncated.contains(&file) {
                    data.truncate(data.len() / 2);
                }
                let tag = ("ETag", format!("\"{}\"", etag(&data)));
                if !head && faults.stall_get.contains(&file) {
                    // Headers and half the body, then silence.
                    let out = format!(
                        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                        data.len()
                    );
                    let _ = stream.write_all(out.as_bytes());
                    let _ = stream.write_all(&data[..data.len() / 2]);
                    let _ = stream.flush();
                    let t0 = Instant::now();
                    while !stop.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(30) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                } else if !head && faults.get_500.contains(&file) {
                    respond(
                        &mut stream,
                        "500 Internal Server Error",
                        &[],
                        b"boom",
                        false,
                    );
                } else if head && faults.head_without_size {
                    // Announce no size: HEAD with neither Content-Length nor X-Linked-Size.
                    let out = format!(
                        "HTTP/1.1 200 OK\r\nConnection: close\r\nETag: {}\r\nX-Repo-Commit: {COMMIT}\r\n\r\n",
                        tag.1
                    );
                    let _ = stream.write_all(out.as_bytes());
                } else {
                    respond(
                        &mut stream,
                        "200 OK",
                        &[tag, commit, ("Content-Length", data.len().to_string())],
                        &data,
                        head,
                    );
                }
            }
        }
    } else {
        respond(&mut stream, "404 Not Found", &[], b"not found", head);
    }
}

impl MockHub {
    pub fn start(root: &Path) -> MockHub {
        Self::start_at(root, "127.0.0.1:0")
    }

    /// A mock listening on `addr` (`host:port`), e.g. the port of one stopped earlier, so a
    /// client configured while the Hub was unreachable finds it back.
    pub fn start_at(root: &Path, addr: &str) -> MockHub {
        let listener = TcpListener::bind(addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let faults = Arc::new(Mutex::new(Faults::default()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s, st, root) = (
            faults.clone(),
            seen.clone(),
            stop.clone(),
            root.to_path_buf(),
        );
        let thread = std::thread::spawn(move || {
            let mut workers = Vec::new();
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let (fa, se, sto, ro) = (
                            f.lock().unwrap().clone(),
                            s.clone(),
                            st.clone(),
                            root.clone(),
                        );
                        workers.push(std::thread::spawn(move || handle(stream, ro, fa, se, sto)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for w in workers {
                let _ = w.join();
            }
        });
        MockHub {
            url,
            faults,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    pub fn set(&self, faults: Faults) {
        *self.faults.lock().unwrap() = faults;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Stops the server and closes its port.
    pub fn stop(mut self) -> String {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.url.clone()
    }
}

impl Drop for MockHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
