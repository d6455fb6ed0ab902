//! Changing the served models without downtime: [`Inference::apply`] loads
//! what changed in the background while the current set keeps serving, then
//! switches the whole set at once and lets the retired models drain.
//!
//! "Changed" is decided by the model's config entry and a [`Fingerprint`] of
//! its folder taken when it was loaded.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use super::service::{LoadedModel, Prepared, prepare};
use super::{Inference, InferenceError};
use crate::background::Priority;
use crate::config::ModelConfig;

/// Priority of the thread that loads changed models: below the model
/// threads, so serving keeps the CPU while a new model is read.
pub(super) const LOAD_PRIORITY: Priority = Priority {
    nice: 10,
    batch: true,
};

/// How long [`Inference::apply`] waits for a retired model to answer what it
/// accepted before returning anyway. Nothing is cut at this point: a model
/// still busy after it keeps answering and exits with its last request.
pub const DRAIN_WAIT: Duration = Duration::from_secs(30);

/// Longest wait for the loading thread to be free (applies run one at a
/// time, so it is free unless a cancelled load is still finishing).
const LOADER_WAIT: Duration = Duration::from_secs(600);

/// Most files looked at in one model folder, and how deep.
const MAX_FILES: usize = 10_000;
const MAX_DEPTH: usize = 4;

/// What [`Inference::apply`] did, by model name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelChanges {
    /// Models that were not served before and are now.
    pub added: Vec<String>,
    /// Models reloaded because their config entry or folder changed.
    pub replaced: Vec<String>,
    /// Models no longer served.
    pub removed: Vec<String>,
    /// Models kept as they were (same config entry, same files).
    pub unchanged: Vec<String>,
}

impl ModelChanges {
    /// Whether nothing was added, replaced or removed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.replaced.is_empty() && self.removed.is_empty()
    }
}

/// Files up to this size are also compared by content (configs, small
/// tokenizers), so an edit is seen even within the file system's timestamp
/// granularity.
const HASHED_BYTES: u64 = 1 << 20;
/// Most bytes hashed in one folder; past it, metadata only.
const HASHED_TOTAL: u64 = 64 << 20;

/// What one file looked like: size, modification time and, on Unix, inode
/// and status-change time (which `touch` cannot set back), symlinks
/// followed; for small files also a hash of the content.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    content: Option<u64>,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
    #[cfg(unix)]
    changed: (i64, i64),
}

/// What a model folder looked like: every file's path and [`Stamp`]. Large
/// files (weights) are compared by their metadata, not their content:
/// hashing gigabytes on every reload would take seconds, while writing or
/// replacing a file moves its times (and replacing it, its inode).
#[derive(Clone, Debug)]
pub struct Fingerprint(Result<Vec<(PathBuf, Stamp)>, String>);

impl Fingerprint {
    /// Stamps every file under `dir` (at most [`MAX_FILES`], [`MAX_DEPTH`]
    /// levels). A folder that cannot be read gives a fingerprint equal to
    /// nothing, so its model counts as changed and the loader says why.
    pub fn of(dir: &Path) -> Fingerprint {
        let mut files = Vec::new();
        let mut hashed = 0;
        let walked = walk(dir, Path::new(""), 0, &mut files, &mut hashed);
        Fingerprint(walked.map(|()| {
            files.sort_by(|a, b| a.0.cmp(&b.0));
            files
        }))
    }

    /// Whether both were read and show the same files with the same stamps.
    pub fn same_as(&self, other: &Fingerprint) -> bool {
        matches!((&self.0, &other.0), (Ok(a), Ok(b)) if a == b)
    }
}

fn walk(
    dir: &Path,
    rel: &Path,
    depth: usize,
    out: &mut Vec<(PathBuf, Stamp)>,
    hashed: &mut u64,
) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = entry.path();
        let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let rel = rel.join(entry.file_name());
        if meta.is_dir() {
            if depth + 1 < MAX_DEPTH {
                walk(&path, &rel, depth + 1, out, hashed)?;
            }
            continue;
        }
        if out.len() == MAX_FILES {
            return Err(format!("{}: more than {MAX_FILES} files", dir.display()));
        }
        let content = if meta.len() <= HASHED_BYTES && *hashed + meta.len() <= HASHED_TOTAL {
            *hashed += meta.len();
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(xxhash_rust::xxh64::xxh64(&bytes, 0))
        } else {
            None
        };
        out.push((rel, stamp(&meta, content)));
    }
    Ok(())
}

fn stamp(meta: &std::fs::Metadata, content: Option<u64>) -> Stamp {
    #[cfg(unix)]
    use std::os::unix::fs::MetadataExt;
    Stamp {
        len: meta.len(),
        content,
        modified: meta.modified().ok(),
        #[cfg(unix)]
        inode: (meta.dev(), meta.ino()),
        #[cfg(unix)]
        changed: (meta.ctime(), meta.ctime_nsec()),
    }
}

/// One configured model and what is known of it before loading.
struct Planned {
    cfg: ModelConfig,
    name: String,
    /// The served model of that name, if its config entry and directory
    /// are the same (its files still have to be compared).
    same_entry: Option<Arc<LoadedModel>>,
    /// Whether a model of that name is served now.
    served: bool,
}

/// The outcome of the background part for one model.
enum Read {
    Keep(Arc<LoadedModel>),
    Load(Box<Prepared>),
}

impl Inference {
    /// Makes `models` (relative paths against `base_dir`) the served set
    /// without failing a request.
    ///
    /// Guarantees:
    /// - A model whose config entry is equal and whose folder's files have
    ///   the same size, times and inodes as when it was loaded is kept as it
    ///   is (its queue, its metrics).
    /// - Added and changed models load on a low-priority background thread
    ///   while the current set keeps serving.
    /// - If any of them fails to load, nothing changes and the error names
    ///   the model and the reason.
    /// - Otherwise the whole set is switched at once: a request that looks
    ///   up its model after the switch (every request that starts after
    ///   `apply` returns) gets the new set; one that looked it up before
    ///   keeps the old model until it is answered. An unknown name then gets
    ///   the usual 404.
    /// - Replaced and removed models refuse nothing: each answers every
    ///   request that chose it and then stops, freeing its weights. `apply`
    ///   waits up to [`DRAIN_WAIT`] for that.
    /// - `infermon_model_info` and `infermon_model_load_seconds` follow the
    ///   set; a removed model's gauges (queue depth, in flight, load time)
    ///   are dropped once it has drained, its counters and histograms kept.
    /// - After [`stop`](Self::stop) it fails with
    ///   [`InferenceError::ShuttingDown`] and starts nothing.
    ///
    /// Calls run one at a time.
    pub async fn apply(
        &self,
        models: &[ModelConfig],
        base_dir: &Path,
    ) -> Result<ModelChanges, InferenceError> {
        let _one_at_a_time = self.inner.changes.lock().await;
        let current = self.models();
        if self.inner.stopped.load(Ordering::Relaxed) {
            return Err(InferenceError::ShuttingDown(loader_names(models)));
        }
        let mut names = HashSet::new();
        let mut plan = Vec::with_capacity(models.len());
        for cfg in models {
            let name = super::loader::model_name(cfg);
            if !names.insert(name.clone()) {
                return Err(InferenceError::BadModelConfig {
                    name,
                    message: "the name is used by two models; set `name:`".to_string(),
                });
            }
            let old = current.iter().find(|m| m.name == name);
            let dir = base_dir.join(&cfg.path);
            plan.push(Planned {
                cfg: cfg.clone(),
                same_entry: old.filter(|m| m.config == *cfg && m.dir == dir).cloned(),
                served: old.is_some(),
                name,
            });
        }

        let read = self.read_in_background(&plan, base_dir).await?;

        let mut changes = ModelChanges::default();
        let mut next = Vec::with_capacity(read.len());
        for (p, r) in plan.iter().zip(read) {
            match r {
                Read::Keep(model) => {
                    changes.unchanged.push(p.name.clone());
                    next.push(model);
                }
                Read::Load(prepared) => {
                    // Model threads start here, at normal priority.
                    next.push((*prepared).start(&self.inner.metrics)?);
                    if p.served {
                        changes.replaced.push(p.name.clone());
                    } else {
                        changes.added.push(p.name.clone());
                    }
                }
            }
        }
        // The plan holds the old models too; they must drain.
        drop(plan);
        let retired: Vec<Arc<LoadedModel>> = current
            .iter()
            .filter(|old| !next.iter().any(|m| Arc::ptr_eq(m, old)))
            .cloned()
            .collect();
        changes.removed = retired
            .iter()
            .filter(|old| !next.iter().any(|m| m.name == old.name))
            .map(|old| old.name.clone())
            .collect();

        // The switch.
        let next = Arc::new(next);
        {
            let mut set = self.inner.set.write().unwrap_or_else(|p| p.into_inner());
            if self.inner.stopped.load(Ordering::Relaxed) {
                return Err(InferenceError::ShuttingDown(loader_names(models)));
            }
            *set = next.clone();
        }
        drop(current);

        let metrics = &self.inner.metrics;
        for old in &retired {
            let labels = old.info_labels();
            let same_labels = next
                .iter()
                .any(|m| m.name == old.name && m.info_labels() == labels);
            if !same_labels {
                metrics.unpublish(&old.name, labels);
            }
        }
        for m in next.iter() {
            if !changes.unchanged.contains(&m.name) {
                m.publish(metrics);
            }
        }
        drop(next);
        for name in &changes.added {
            tracing::info!(model = %name, "model added");
        }
        for name in &changes.replaced {
            tracing::info!(model = %name, "model replaced; the old one drains");
        }
        for name in &changes.removed {
            tracing::info!(model = %name, "model removed; it drains");
        }

        drain(retired).await;
        for name in &changes.removed {
            metrics.forget(name);
        }
        Ok(changes)
    }

    /// Compares folders and loads what changed, on the low-priority thread.
    async fn read_in_background(
        &self,
        plan: &[Planned],
        base_dir: &Path,
    ) -> Result<Vec<Read>, InferenceError> {
        if plan.is_empty() {
            return Ok(Vec::new());
        }
        // Threads inherit their creator's priority: make sure rayon's
        // shared pool (used by the model kernels) exists before the loading
        // thread lowers its own, so it is never created at low priority.
        let _ = rayon::current_num_threads();
        let jobs: Vec<(ModelConfig, String, Option<Arc<LoadedModel>>)> = plan
            .iter()
            .map(|p| (p.cfg.clone(), p.name.clone(), p.same_entry.clone()))
            .collect();
        let base_dir = base_dir.to_path_buf();
        let started = Instant::now();
        let result = self
            .inner
            .loader
            .run(LOADER_WAIT, move |cancel| {
                let mut out = Vec::with_capacity(jobs.len());
                for (cfg, name, same_entry) in jobs {
                    if cancel.is_set() {
                        return Err(InferenceError::BadModelConfig {
                            name,
                            message: "loading was cancelled".to_string(),
                        });
                    }
                    if let Some(old) = same_entry
                        && Fingerprint::of(&old.dir).same_as(&old.folder)
                    {
                        out.push(Read::Keep(old));
                        continue;
                    }
                    out.push(Read::Load(Box::new(prepare(&cfg, &base_dir)?)));
                }
                Ok(out)
            })
            .await
            .map_err(|e| InferenceError::Loader(e.to_string()))?;
        match &result {
            Ok(read) => {
                let loaded: Vec<&str> = read
                    .iter()
                    .filter_map(|r| match r {
                        Read::Load(p) => Some(p.name()),
                        Read::Keep(_) => None,
                    })
                    .collect();
                if !loaded.is_empty() {
                    tracing::info!(models = ?loaded, seconds = started.elapsed().as_secs_f64(), "models read in the background");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "a model failed to load; the served models stay as they are");
            }
        }
        result
    }
}

/// The configured names, for messages.
fn loader_names(models: &[ModelConfig]) -> String {
    let names: Vec<String> = models.iter().map(super::loader::model_name).collect();
    names.join(", ")
}

/// Lets each retired model answer what it accepted and stop: its thread
/// exits once the last request holding the model is answered.
async fn drain(retired: Vec<Arc<LoadedModel>>) {
    let deadline = tokio::time::Instant::now() + DRAIN_WAIT;
    let mut threads = Vec::new();
    for model in retired {
        let name = model.name.clone();
        let thread = model.take_thread();
        drop(model);
        if let Some(thread) = thread {
            threads.push((name, tokio::task::spawn_blocking(move || thread.join())));
        }
    }
    for (name, join) in threads {
        match tokio::time::timeout_at(deadline, join).await {
            Ok(_) => tracing::info!(model = %name, "retired model drained and stopped"),
            Err(_) => tracing::warn!(
                model = %name,
                "retired model still answering after {DRAIN_WAIT:?}; it stops after its last request"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::Task;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }

    /// Replaces `dir` by a copy of `fixture` the way a deploy does: the new
    /// folder is written beside it and renamed into place.
    fn replace_dir(dir: &Path, fixture_name: &str) {
        let fresh = dir.with_extension("new");
        copy_dir(&fixture(fixture_name), &fresh);
        let old = dir.with_extension("old");
        std::fs::rename(dir, &old).unwrap();
        std::fs::rename(&fresh, dir).unwrap();
        std::fs::remove_dir_all(old).unwrap();
    }

    fn model(name: &str, path: &Path) -> ModelConfig {
        serde_yaml_ng::from_str(&format!("name: {name}\npath: {}", path.display())).unwrap()
    }

    async fn embed(inf: &Inference, name: &str, text: &str) -> Vec<f32> {
        let m = inf.pick(Some(name), Some(Task::Embed)).unwrap();
        let a = m.admit().unwrap();
        let mut out = m.embed(&a, &[text.to_string()], None, None).await.unwrap();
        out.vectors.remove(0)
    }

    /// The `infermon_model_info` and in-flight series, as `metric{model}`.
    fn series(registry: &prometheus::Registry) -> Vec<String> {
        let mut out = Vec::new();
        for family in registry.gather() {
            if !matches!(
                family.name(),
                "infermon_model_info" | "infermon_inference_in_flight"
            ) {
                continue;
            }
            for m in family.get_metric() {
                for l in m.get_label() {
                    if l.name() == "model" {
                        out.push(format!("{}{{{}}}", family.name(), l.value()));
                    }
                }
            }
        }
        out.sort();
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn apply_adds_replaces_removes_and_keeps_what_did_not_change() {
        let tmp = tempfile::tempdir().unwrap();
        let swapped = tmp.path().join("swapped");
        copy_dir(&fixture("tiny-st-max-dense"), &swapped);
        let registry = prometheus::Registry::new();
        let before = [
            model("kept", &fixture("tiny-st-max-dense")),
            model("swapped", &swapped),
            model("gone", &fixture("tiny-st-mean-sqrt-len")),
        ];
        let inf = Inference::load(&before, tmp.path(), &registry).unwrap();
        let kept = inf.pick(Some("kept"), None).unwrap();
        let old_vector = embed(&inf, "swapped", "hello world").await;
        let gone = Arc::downgrade(&inf.pick(Some("gone"), None).unwrap());
        let old_swapped = Arc::downgrade(&inf.pick(Some("swapped"), None).unwrap());

        replace_dir(&swapped, "tiny-st-weightedmean-dense");
        let after = [
            model("added", &fixture("tiny-st-mean-sqrt-len")),
            before[0].clone(),
            before[1].clone(),
        ];
        let started = Instant::now();
        let changes = inf.apply(&after, tmp.path()).await.unwrap();
        assert!(
            started.elapsed() < DRAIN_WAIT / 2,
            "the retired models drained at once, not at the deadline ({:?})",
            started.elapsed()
        );
        assert_eq!(
            changes,
            ModelChanges {
                added: vec!["added".into()],
                replaced: vec!["swapped".into()],
                removed: vec!["gone".into()],
                unchanged: vec!["kept".into()],
            }
        );
        let names: Vec<String> = inf.models().iter().map(|m| m.name.clone()).collect();
        assert_eq!(names, ["added", "kept", "swapped"], "config order");
        assert!(
            Arc::ptr_eq(&kept, &inf.pick(Some("kept"), None).unwrap()),
            "an unchanged model is kept, not reloaded"
        );
        assert!(gone.upgrade().is_none(), "the removed model was dropped");
        assert!(
            old_swapped.upgrade().is_none(),
            "the replaced model was dropped"
        );
        assert!(matches!(
            inf.pick(Some("gone"), None),
            Err(InferenceError::UnknownModel { .. })
        ));
        assert_eq!(
            inf.pick(None, Some(Task::Embed)).unwrap().name,
            "added",
            "the default follows the new order"
        );

        // The swapped model now answers as the new folder's model does.
        let new_vector = embed(&inf, "swapped", "hello world").await;
        let direct = Inference::load(
            &[model("direct", &fixture("tiny-st-weightedmean-dense"))],
            tmp.path(),
            &prometheus::Registry::new(),
        )
        .unwrap();
        assert_eq!(new_vector, embed(&direct, "direct", "hello world").await);
        assert_ne!(new_vector, old_vector);

        assert_eq!(
            series(&registry),
            [
                "infermon_inference_in_flight{added}",
                "infermon_inference_in_flight{kept}",
                "infermon_inference_in_flight{swapped}",
                "infermon_model_info{added}",
                "infermon_model_info{kept}",
                "infermon_model_info{swapped}",
            ],
            "a removed model's series are gone"
        );

        // Applying the same again changes nothing.
        let again = inf.apply(&after, tmp.path()).await.unwrap();
        assert!(again.is_empty(), "{again:?}");
        assert_eq!(again.unchanged, ["added", "kept", "swapped"]);
        inf.stop().await;
        direct.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_changed_config_entry_or_file_replaces_the_model() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        copy_dir(&fixture("tiny-st-mean-sqrt-len"), &dir);
        let cfg = model("m", &dir);
        let inf = Inference::load(
            std::slice::from_ref(&cfg),
            tmp.path(),
            &prometheus::Registry::new(),
        )
        .unwrap();
        let first = embed(&inf, "m", "a b c").await;

        let mut cls = cfg.clone();
        cls.pooling = Some("cls".into());
        let changes = inf
            .apply(std::slice::from_ref(&cls), tmp.path())
            .await
            .unwrap();
        assert_eq!(changes.replaced, ["m"]);
        assert_ne!(
            embed(&inf, "m", "a b c").await,
            first,
            "cls pooling answers"
        );

        // An edit of a small file in place is seen by its content.
        let pooling = dir.join("1_Pooling/config.json");
        let text = std::fs::read_to_string(&pooling).unwrap();
        let edited = text.replace("\"mean_sqrt_len_tokens\"", "\"mean\"");
        assert_ne!(text, edited, "{text}");
        std::fs::write(&pooling, edited).unwrap();
        let changes = inf
            .apply(std::slice::from_ref(&cfg), tmp.path())
            .await
            .unwrap();
        assert_eq!(changes.replaced, ["m"]);
        let mean = embed(&inf, "m", "a b c").await;
        assert_ne!(mean, first, "mean pooling answers");
        inf.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_model_that_fails_to_load_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let registry = prometheus::Registry::new();
        let cfg = model("a", &fixture("tiny-st-max-dense"));
        let inf = Inference::load(std::slice::from_ref(&cfg), tmp.path(), &registry).unwrap();
        let served = inf.models();
        let before = embed(&inf, "a", "x").await;

        let mut changed = cfg.clone();
        changed.pooling = Some("cls".into());
        let broken = tmp.path().join("broken");
        copy_dir(&fixture("tiny-st-max-dense"), &broken);
        std::fs::write(broken.join("config.json"), "{ not json").unwrap();
        let err = inf
            .apply(&[changed, model("b", &broken)], tmp.path())
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("\"b\"") && msg.contains("config.json"),
            "{msg}"
        );

        let now = inf.models();
        assert_eq!(now.len(), 1);
        assert!(
            Arc::ptr_eq(&now[0], &served[0]),
            "the old model still serves"
        );
        assert_eq!(embed(&inf, "a", "x").await, before);
        assert_eq!(
            series(&registry),
            ["infermon_inference_in_flight{a}", "infermon_model_info{a}"],
            "nothing of the failed set was published"
        );

        let dup = inf.apply(&[cfg.clone(), cfg.clone()], tmp.path()).await;
        assert!(
            matches!(&dup, Err(InferenceError::BadModelConfig { name, .. }) if name == "a"),
            "{:?}",
            dup.err()
        );
        inf.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_that_chose_the_old_model_is_answered_after_the_switch() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = model("m", &fixture("tiny-st-max-dense"));
        let inf = Inference::load(
            std::slice::from_ref(&cfg),
            tmp.path(),
            &prometheus::Registry::new(),
        )
        .unwrap();
        let old_vector = embed(&inf, "m", "q").await;
        // A request that looked its model up before the switch.
        let chosen = inf.pick(Some("m"), Some(Task::Embed)).unwrap();

        let mut changed = cfg.clone();
        changed.pooling = Some("cls".into());
        let applying = {
            let inf = inf.clone();
            tokio::spawn(async move { inf.apply(&[changed], Path::new("/")).await })
        };
        // Wait for the switch (bounded).
        let deadline = Instant::now() + Duration::from_secs(20);
        while Arc::ptr_eq(&inf.pick(Some("m"), None).unwrap(), &chosen) {
            assert!(Instant::now() < deadline, "no switch");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            !applying.is_finished(),
            "apply waits for the old model to drain"
        );
        let admission = chosen.admit().expect("the old model still admits");
        let out = chosen
            .embed(&admission, &["q".to_string()], None, None)
            .await
            .expect("answered by the old model");
        assert_eq!(out.vectors[0], old_vector);
        drop((admission, chosen));
        let changes = applying.await.unwrap().unwrap();
        assert_eq!(changes.replaced, ["m"]);
        assert_ne!(embed(&inf, "m", "q").await, old_vector);
        inf.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn apply_after_stop_switches_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = model("m", &fixture("tiny-st-max-dense"));
        let inf = Inference::load(
            std::slice::from_ref(&cfg),
            tmp.path(),
            &prometheus::Registry::new(),
        )
        .unwrap();
        let served = inf.models();
        inf.stop().await;
        let added = model("n", &fixture("tiny-st-mean-sqrt-len"));
        let err = inf.apply(&[cfg, added], tmp.path()).await.unwrap_err();
        assert!(matches!(err, InferenceError::ShuttingDown(_)), "{err}");
        let now = inf.models();
        assert_eq!(now.len(), 1);
        assert!(Arc::ptr_eq(&now[0], &served[0]));
    }

    /// (name, nice) of a thread from its `/proc` stat file.
    #[cfg(target_os = "linux")]
    fn name_and_nice(stat: &Path) -> Option<(String, i64)> {
        let stat = std::fs::read_to_string(stat).ok()?;
        let (open, close) = (stat.find('(')?, stat.rfind(')')?);
        // Fields after the name start at field 3 (state); nice is field 19.
        let nice = stat[close + 2..].split(' ').nth(16)?.parse().ok()?;
        Some((stat[open + 1..close].to_string(), nice))
    }

    /// Nice value of every thread of this process whose name starts with
    /// `prefix`.
    #[cfg(target_os = "linux")]
    fn nice_of_threads(prefix: &str) -> Vec<i64> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| name_and_nice(&t.ok()?.path().join("stat")))
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(_, nice)| nice)
            .collect()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn models_load_at_low_priority_and_serve_at_normal_priority() {
        let tmp = tempfile::tempdir().unwrap();
        let inf = Inference::load(&[], tmp.path(), &prometheus::Registry::new()).unwrap();
        let (_, own) = name_and_nice(Path::new("/proc/thread-self/stat")).unwrap();
        let added = model("prio-added", &fixture("tiny-st-max-dense"));
        inf.apply(&[added], tmp.path()).await.unwrap();
        let loaders = nice_of_threads("model-load");
        assert!(!loaders.is_empty(), "a loading thread ran");
        assert!(
            loaders
                .iter()
                .all(|&n| n >= own.max(LOAD_PRIORITY.nice.into())),
            "loading at nice {loaders:?}"
        );
        // A new thread names itself once it runs: wait for the name.
        let deadline = Instant::now() + Duration::from_secs(10);
        let served = loop {
            let found = nice_of_threads("model-prio-add");
            if !found.is_empty() || Instant::now() > deadline {
                break found;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert_eq!(
            served,
            [own],
            "the new model's thread keeps the normal priority"
        );
        inf.stop().await;
    }

    #[test]
    fn fingerprints_see_replaced_and_edited_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        copy_dir(&fixture("tiny-st-max-dense"), &dir);
        let first = Fingerprint::of(&dir);
        assert!(first.same_as(&Fingerprint::of(&dir)));
        replace_dir(&dir, "tiny-st-weightedmean-dense");
        let second = Fingerprint::of(&dir);
        assert!(!first.same_as(&second));
        std::fs::write(dir.join("extra.txt"), "x").unwrap();
        assert!(!second.same_as(&Fingerprint::of(&dir)));
        let missing = Fingerprint::of(&tmp.path().join("none"));
        assert!(
            !missing.same_as(&missing),
            "an unreadable folder is never the same"
        );
    }
}
