//! Hub datasets through hf-hub 1.0, offline-first, with a watchdog and download validation.
//!
//! * The standard Hugging Face cache is used (same layout as the Python client), and a cached
//!   dataset is answered with `local_files_only(true)`: no network at all.
//! * `HF_HUB_OFFLINE=1` (or `offline`) stops there.
//! * Otherwise the repository listing (`siblings`) names the parquet shards, and each is
//!   downloaded with a small retry count; a watchdog aborts a request when the server has not
//!   answered (or sent a byte) for `network_timeout`, since hf-hub sets no timeouts itself.
//! * hf-hub stores the body of a failed GET as if it were the file: every file is checked
//!   (size against the announced size, opens as parquet, has the columns, decodes). A bad file
//!   is removed from the cache (snapshot link and blob) and the error says so.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

use hf_hub::progress::{DownloadEvent, ProgressEvent, ProgressHandler};
use hf_hub::{split_id, HFClient, HFError};

use super::error::DataError;
use super::imageset::{complete_label_names, DataSource, Dataset, ImageSet};
use super::parquet::{self, Columns};
use super::spec::{HubDataset, LoadOptions, LoadProgress};

/// The public Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// The endpoint used: `opts.endpoint`, else `HF_ENDPOINT`, else the public Hub (no trailing `/`).
pub fn resolve_endpoint(opts: &LoadOptions) -> String {
    opts.endpoint
        .clone()
        .or_else(|| std::env::var("HF_ENDPOINT").ok())
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
        .trim()
        .trim_end_matches('/')
        .to_string()
}

/// The hub cache folder used: `opts.cache_dir`, else hf-hub's resolution (`HF_HUB_CACHE`,
/// `$HF_HOME/hub`, `~/.cache/huggingface/hub`).
pub fn resolve_cache_dir(opts: &LoadOptions) -> PathBuf {
    opts.cache_dir
        .clone()
        .unwrap_or_else(hf_hub::resolve_cache_dir)
}

/// `datasets--owner--name`, the repository's folder in the cache.
pub fn repo_folder(repo: &str) -> String {
    format!("datasets--{}", repo.replace('/', "--"))
}

/// A progress report from hf-hub: file, bytes done, bytes total, and whether the total is the
/// file's announced size (per-file events) rather than a transfer estimate (Xet aggregates).
type Report = (String, u64, u64, bool);

/// Forwards hf-hub download events of one file (which must be `Send + Sync`) to the loading
/// thread.
struct ChannelProgress {
    file: String,
    tx: Mutex<Sender<Report>>,
}

impl ProgressHandler for ChannelProgress {
    fn on_progress(&self, event: &ProgressEvent) {
        let Ok(tx) = self.tx.lock() else { return };
        match event {
            ProgressEvent::Download(DownloadEvent::Progress { files }) => {
                for f in files {
                    let _ = tx.send((f.filename.clone(), f.bytes_completed, f.total_bytes, true));
                }
            }
            ProgressEvent::Download(DownloadEvent::AggregateProgress {
                bytes_completed,
                total_bytes,
                ..
            }) => {
                let _ = tx.send((self.file.clone(), *bytes_completed, *total_bytes, false));
            }
            _ => {}
        }
    }
}

/// One dataset fetch: client, runtime and context for messages.
struct Fetch<'a> {
    ds: &'a HubDataset,
    opts: &'a LoadOptions,
    endpoint: String,
    cache_dir: PathBuf,
    client: HFClient,
    rt: tokio::runtime::Runtime,
}

/// Runs `fut` on `rt`, forwarding download progress, and gives up when nothing has happened
/// for `timeout` (the future is dropped, which cancels its requests and releases its locks).
fn run_watched<F: Future>(
    rt: &tokio::runtime::Runtime,
    fut: F,
    timeout: Duration,
    rx: &Receiver<Report>,
    progress: &mut dyn FnMut(LoadProgress),
    sizes: &mut HashMap<String, u64>,
) -> Option<F::Output> {
    rt.block_on(async {
        let mut fut = std::pin::pin!(fut);
        let mut sleep = Box::pin(tokio::time::sleep(timeout));
        std::future::poll_fn(|cx| {
            let out = fut.as_mut().poll(cx);
            let mut active = false;
            while let Ok((file, done, total, announced)) = rx.try_recv() {
                if announced && total > 0 {
                    sizes.insert(file.clone(), total);
                }
                progress(LoadProgress::Downloading { file, done, total });
                active = true;
            }
            if let Poll::Ready(v) = out {
                return Poll::Ready(Some(v));
            }
            if active {
                sleep.as_mut().reset(tokio::time::Instant::now() + timeout);
            }
            match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    })
}

/// The message of an error and its sources, without repeats.
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        src = s.source();
    }
    parts.join(": ")
}

/// The innermost source of an error (for a network failure: "Connection refused", a DNS
/// failure, ...).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// What an I/O error in the Hub's cache means to the user: the cache is where downloads are
/// written, so a folder that exists but cannot be written (another user's, read-only) fails
/// as much as one that cannot be read. Says where the cache is and how to put it elsewhere.
fn cache_trouble(cache_dir: &std::path::Path, io: &std::io::Error) -> String {
    format!(
        "cannot use the Hugging Face cache {} ({io}): it must be a folder you can read and write; \
         set HF_HOME (or HF_HUB_CACHE) to another, or give --dataset PATH (a local copy) or \
         --dataset shapes",
        cache_dir.display()
    )
}

impl Fetch<'_> {
    /// A network-level failure.
    fn network(&self, detail: String) -> DataError {
        DataError::Network {
            repo: self.ds.repo.to_string(),
            endpoint: self.endpoint.clone(),
            detail,
            advice: Default::default(),
        }
    }

    /// Maps an hf-hub error for `file` to a [`DataError`].
    fn map_err(&self, e: HFError, file: &str) -> DataError {
        let hub = |detail: String| DataError::Hub {
            repo: self.ds.repo.to_string(),
            file: file.to_string(),
            endpoint: self.endpoint.clone(),
            detail,
        };
        match &e {
            HFError::Request { source, .. } => {
                let what = if source.is_connect() {
                    "cannot connect"
                } else if source.is_timeout() {
                    "timed out"
                } else {
                    "request failed"
                };
                self.network(format!("{what} ({})", root_cause(source)))
            }
            HFError::RepoNotFound { .. } => hub(
                "repository not found (check the name, and HF_ENDPOINT when using a mirror)".into(),
            ),
            HFError::RevisionNotFound { revision, .. } => hub(format!("revision {revision} not found")),
            HFError::EntryNotFound { .. } => hub(
                "file not found (404); if HF_ENDPOINT points at a mirror, it may lack the file: \
                 unset it, or pass a local copy with --dataset PATH"
                    .into(),
            ),
            HFError::AuthRequired { .. } | HFError::Forbidden { .. } => hub(format!(
                "{e}; this dataset needs a Hugging Face token: set HF_TOKEN (or run `hf auth login`)"
            )),
            HFError::CacheLockTimeout { path } => hub(format!(
                "another download holds the cache lock {}; wait for it to finish or delete the lock",
                path.display()
            )),
            HFError::Io(io) => hub(cache_trouble(&self.cache_dir, io)),
            _ => hub(chain(&e)),
        }
    }

    /// The cached shards of every split, when all known shards are cached (no network).
    fn cached_files(&self) -> Option<Vec<Vec<(String, PathBuf)>>> {
        let (owner, name) = split_id(self.ds.repo);
        let repo = self.client.dataset(owner, name);
        let mut out = Vec::new();
        for split in self.ds.splits {
            let mut files = Vec::new();
            for f in split.files {
                let fut = repo
                    .download_file()
                    .filename(f.to_string())
                    .revision(self.ds.revision.to_string())
                    .local_files_only(true)
                    .send();
                let path = self.rt.block_on(fut).ok()?;
                files.push((f.to_string(), path));
            }
            // Further shards downloaded from a listing live beside the known ones.
            if let Some(dir) = files
                .first()
                .and_then(|(_, p)| p.parent().map(Path::to_path_buf))
            {
                if let Ok(entries) = std::fs::read_dir(&dir) {
                    let mut extra: Vec<(String, PathBuf)> = entries
                        .filter_map(|e| e.ok())
                        .filter_map(|e| {
                            let n = e.file_name().to_string_lossy().to_string();
                            let repo_path = format!("{}{n}", split.prefix);
                            (n.ends_with(".parquet") && !files.iter().any(|(f, _)| *f == repo_path))
                                .then(|| (repo_path, e.path()))
                        })
                        .collect();
                    files.append(&mut extra);
                    files.sort();
                }
            }
            out.push(files);
        }
        Some(out)
    }

    /// The shards of each split from the repository listing (the known names when the listing
    /// has none).
    fn list_files(
        &self,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<Vec<Vec<String>>, DataError> {
        let (owner, name) = split_id(self.ds.repo);
        let repo = self.client.dataset(owner, name);
        progress(LoadProgress::Resolving {
            what: format!("{}@{} on {}", self.ds.repo, self.ds.revision, self.endpoint),
        });
        let (_tx, rx) = channel();
        let fut = repo.info().revision(self.ds.revision.to_string()).send();
        let info = run_watched(
            &self.rt,
            fut,
            self.opts.network_timeout,
            &rx,
            progress,
            &mut HashMap::new(),
        )
        .ok_or_else(|| self.timeout())?
        .map_err(|e| self.map_err(e, self.ds.revision))?;
        let siblings: Vec<String> = info
            .siblings
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.rfilename)
            .collect();
        Ok(self
            .ds
            .splits
            .iter()
            .map(|split| {
                let mut listed: Vec<String> = siblings
                    .iter()
                    .filter(|f| f.starts_with(split.prefix) && f.ends_with(".parquet"))
                    .cloned()
                    .collect();
                listed.sort();
                if listed.is_empty() {
                    split.files.iter().map(|f| f.to_string()).collect()
                } else {
                    listed
                }
            })
            .collect())
    }

    /// The error for a server that stopped answering.
    fn timeout(&self) -> DataError {
        self.network(format!(
            "no answer for {:.1} s (the server or the network is not responding)",
            self.opts.network_timeout.as_secs_f64()
        ))
    }

    /// Downloads one file into the cache and checks its size against the announced one.
    fn download(
        &self,
        file: &str,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<PathBuf, DataError> {
        let (owner, name) = split_id(self.ds.repo);
        let repo = self.client.dataset(owner, name);
        let (tx, rx) = channel();
        let fut = repo
            .download_file()
            .filename(file.to_string())
            .revision(self.ds.revision.to_string())
            .progress(ChannelProgress {
                file: file.to_string(),
                tx: Mutex::new(tx),
            })
            .send();
        let mut sizes = HashMap::new();
        let res = run_watched(
            &self.rt,
            fut,
            self.opts.network_timeout,
            &rx,
            progress,
            &mut sizes,
        );
        let path = match res {
            None => return Err(self.timeout()),
            Some(Err(e)) => {
                if matches!(e, HFError::EntryNotFound { .. }) {
                    self.forget_missing(file);
                }
                return Err(self.map_err(e, file));
            }
            Some(Ok(p)) => p,
        };
        let got = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if let Some(&want) = sizes.get(file) {
            if got != want {
                let removed = remove_cached(&path);
                return Err(DataError::BadDownload {
                    repo: self.ds.repo.to_string(),
                    file: file.to_string(),
                    origin: format!("downloaded from {}", self.endpoint),
                    reason: format!(
                        "received {got} bytes but the server announced {want}; it probably sent \
                         an error page"
                    ),
                    removed,
                });
            }
        }
        Ok(path)
    }

    /// Removes hf-hub's "file does not exist" markers for `file`, so that a 404 from a broken
    /// mirror does not outlive the mirror's repair.
    fn forget_missing(&self, file: &str) {
        let dir = self
            .cache_dir
            .join(repo_folder(self.ds.repo))
            .join(".no_exist");
        if let Ok(commits) = std::fs::read_dir(&dir) {
            for c in commits.filter_map(|e| e.ok()) {
                let _ = std::fs::remove_file(c.path().join(file));
            }
        }
    }

    /// Decodes the splits; a bad file is removed from the cache and reported.
    fn decode(
        &self,
        files: &[Vec<(String, PathBuf)>],
        origin: &str,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<Dataset, DataError> {
        let cols = Columns {
            image: Some(self.ds.image_column),
            label: Some(self.ds.label_column),
        };
        let channels = self.opts.channels.or(Some(self.ds.channels));
        let mut sets: Vec<ImageSet> = Vec::new();
        for (split, split_files) in self.ds.splits.iter().zip(files) {
            progress(LoadProgress::Decoding {
                split: split.name.to_string(),
            });
            let paths: Vec<PathBuf> = split_files.iter().map(|(_, p)| p.clone()).collect();
            match parquet::read_split(&paths, cols, channels, self.opts.image_size) {
                Ok(s) => sets.push(s.set),
                Err(DataError::Format { path, reason }) => {
                    let file = split_files
                        .iter()
                        .find(|(_, p)| *p == path)
                        .map(|(f, _)| f.clone())
                        .unwrap_or_else(|| path.display().to_string());
                    let removed = remove_cached(&path);
                    return Err(DataError::BadDownload {
                        repo: self.ds.repo.to_string(),
                        file,
                        origin: origin.to_string(),
                        reason,
                        removed,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        let mut sets = sets.into_iter();
        let train = sets.next().expect("a Hub dataset has a train split");
        let test = sets.next();
        let names = self.ds.label_names.iter().map(|s| s.to_string()).collect();
        let refs: Vec<&ImageSet> = std::iter::once(&train).chain(test.as_ref()).collect();
        let label_names = complete_label_names(names, &refs);
        progress(LoadProgress::Ready);
        Ok(Dataset {
            name: self.ds.name.to_string(),
            source: DataSource::Hub {
                repo: self.ds.repo.to_string(),
                revision: self.ds.revision.to_string(),
                cache_dir: self.cache_dir.clone(),
            },
            train,
            test,
            label_names,
        })
    }
}

/// Removes a cached file: the snapshot entry and, when it is a link, the blob it points to.
/// Returns the path of the removed data (the blob, or the file itself).
pub fn remove_cached(snapshot: &Path) -> PathBuf {
    let mut removed = snapshot.to_path_buf();
    if let Ok(target) = std::fs::read_link(snapshot) {
        let blob = snapshot.parent().map(|d| d.join(&target)).unwrap_or(target);
        let blob = blob.canonicalize().unwrap_or(blob);
        let _ = std::fs::remove_file(&blob);
        let _ = std::fs::remove_file(PathBuf::from(format!("{}.incomplete", blob.display())));
        removed = blob;
    }
    let _ = std::fs::remove_file(snapshot);
    removed
}

/// Loads a Hub dataset, from the cache when it is there, else downloading it (unless offline).
pub fn load_hub(
    ds: &HubDataset,
    opts: &LoadOptions,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<Dataset, DataError> {
    let endpoint = resolve_endpoint(opts);
    let cache_dir = resolve_cache_dir(opts);
    let mut builder = HFClient::builder()
        .endpoint(endpoint.clone())
        .cache_dir(cache_dir.clone())
        .retry_max_attempts(opts.retries)
        .retry_base_delay(Duration::from_millis(100));
    if let Some(t) = &opts.token {
        builder = builder.token(t.clone());
    }
    let client = builder.build().map_err(|e| {
        DataError::InvalidOption(format!(
            "cannot use Hub endpoint '{endpoint}' (HF_ENDPOINT): {e}"
        ))
    })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DataError::io(&cache_dir, e))?;
    let fetch = Fetch {
        ds,
        opts,
        endpoint,
        cache_dir,
        client,
        rt,
    };
    progress(LoadProgress::Resolving {
        what: format!("{} in the cache {}", ds.repo, fetch.cache_dir.display()),
    });
    let offline = opts.is_offline();
    // A corrupt cached file that was removed, said again if downloading it fails.
    let mut removed = None;
    match fetch.cached_files() {
        Some(files) => match fetch.decode(&files, "found in the cache", progress) {
            Ok(d) => return Ok(d),
            Err(e @ DataError::BadDownload { .. }) if offline => return Err(e),
            Err(DataError::BadDownload {
                file,
                reason,
                removed: path,
                ..
            }) => {
                progress(LoadProgress::Notice {
                    text: format!(
                        "the cached {file} of {} was not a valid dataset file ({reason}) and was \
                         removed ({}); downloading it again",
                        ds.repo,
                        path.display()
                    ),
                });
                removed = Some(format!(
                    "the cached {file} was not a valid dataset file ({reason}) and was removed \
                     from the cache"
                ));
            }
            Err(e) => return Err(e),
        },
        None if offline => {
            let missing = ds
                .splits
                .iter()
                .flat_map(|s| s.files.iter())
                .next()
                .copied()
                .unwrap_or_default();
            return Err(DataError::NotCached {
                repo: ds.repo.to_string(),
                file: missing.to_string(),
                cache_dir: fetch.cache_dir.clone(),
                advice: Default::default(),
            });
        }
        None => {}
    }
    let mut download = || -> Result<Dataset, DataError> {
        let listing = fetch.list_files(progress)?;
        let mut files = Vec::new();
        for split_files in listing {
            let mut paths = Vec::new();
            for f in split_files {
                let p = fetch.download(&f, progress)?;
                paths.push((f, p));
            }
            files.push(paths);
        }
        let origin = format!("downloaded from {}", fetch.endpoint);
        fetch.decode(&files, &origin, progress)
    };
    download().map_err(|e| with_removed_note(e, removed.as_deref()))
}

/// `e`, saying also that a corrupt cached copy was removed before the download was tried (so
/// that an offline user learns why a dataset that was cached is gone).
fn with_removed_note(e: DataError, note: Option<&str>) -> DataError {
    let Some(note) = note else { return e };
    match e {
        DataError::Network {
            repo,
            endpoint,
            detail,
            advice,
        } => DataError::Network {
            repo,
            endpoint,
            detail: format!("{detail}; {note}"),
            advice,
        },
        DataError::Hub {
            repo,
            file,
            endpoint,
            detail,
        } => DataError::Hub {
            repo,
            file,
            endpoint,
            detail: format!("{detail}; {note}"),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    /// A cache that cannot be written is not called unreadable, and the way out is said.
    #[test]
    fn cache_trouble_names_the_cache_and_the_way_out() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "Permission denied");
        let m = super::cache_trouble(std::path::Path::new("/ro/hub"), &io);
        assert!(
            m.starts_with("cannot use the Hugging Face cache /ro/hub (Permission denied)")
                && m.contains("read and write")
                && m.contains("HF_HOME")
                && m.contains("--dataset PATH"),
            "{m}"
        );
    }
}
