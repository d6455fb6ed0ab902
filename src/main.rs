//! The `infermon` command line: parses arguments, sets up logging and calls
//! into the library.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use infermon::config::{Config, ConfigError};
use infermon::shutdown::{Shutdown, os_signal};

/// One binary for one GPU box: serves a text model and watches it.
#[derive(Parser)]
#[command(name = "infermon", version, about, long_about = None)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "INFERMON_LOG_FORMAT")]
    log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// Where `export` and `import` find the store.
#[derive(clap::Args)]
struct Source {
    /// Base URL of the running infermon.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API key, when server.auth is on.
    #[arg(long, env = "INFERMON_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Work on the data directory (storage.path) of a stopped infermon
    /// instead of calling a running one.
    #[arg(long, conflicts_with = "url")]
    data_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the models, scrape, evaluate rules and serve the dashboard.
    Serve {
        /// Config file; the embedded default when absent.
        #[arg(long, short = 'c', env = "INFERMON_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Check a config file and every rule file it names; prints problems as
    /// file:line:col: message and exits 1 on any error. With --diff OLD NEW,
    /// prints what a reload from OLD to NEW would change.
    Check {
        /// Config file to check.
        #[arg(required_unless_present = "diff")]
        file: Option<PathBuf>,
        /// Compare two config files (both checked first): scrape jobs, rule
        /// groups and rules, receivers and routes, remote_write
        /// destinations, models, dashboards, settings needing a restart.
        #[arg(long, num_args = 2, value_names = ["OLD", "NEW"], conflicts_with = "file")]
        diff: Option<Vec<PathBuf>>,
    },
    /// Ask a running infermon to reload its config file (as SIGHUP or
    /// POST /-/reload do); prints what changed, or every problem with its
    /// file:line:col and exits 1 (the running config then stays).
    Reload {
        /// Base URL of the running infermon.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// API key of an admin, when server.auth is on.
        #[arg(long, env = "INFERMON_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
    },
    /// Print a bcrypt hash of a password read from standard input, for
    /// server.auth.basic_auth_users.
    HashPassword {
        /// bcrypt cost (4-31).
        #[arg(long, default_value_t = 10)]
        cost: u32,
    },
    /// Export raw samples of a time range, from a running infermon (--url)
    /// or from a stopped one's data directory (--data-dir).
    Export {
        /// Start: unix seconds, RFC 3339 or YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// End: unix seconds, RFC 3339 or YYYY-MM-DD.
        #[arg(long)]
        to: String,
        /// Series selectors (repeatable), e.g. --match 'up{job="node"}'; all series when absent.
        #[arg(long = "match")]
        matchers: Vec<String>,
        /// openmetrics, csv or json (one object per series per line).
        #[arg(long, default_value = "openmetrics")]
        format: String,
        /// File to write (written to a temporary name, then renamed).
        #[arg(long, short = 'o')]
        output: PathBuf,
        #[command(flatten)]
        source: Source,
    },
    /// Load an OpenMetrics export (plain or .gz, e.g. a snapshot's
    /// metrics.om.gz) back into the store. Samples already stored are
    /// skipped, so importing a file twice adds nothing.
    Import {
        /// The file to import.
        file: PathBuf,
        #[command(flatten)]
        source: Source,
    },
    /// Replace a stopped infermon's database with a backup (a file from
    /// <snapshots dir>/backups/) after checking its integrity. The replaced
    /// database is kept beside it as infermon.db.replaced-<time>.
    Restore {
        /// The backup file.
        backup: PathBuf,
        /// The data directory to restore into (storage.path).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Take the data directory from this config's storage.path.
        #[arg(
            long,
            short = 'c',
            env = "INFERMON_CONFIG",
            conflicts_with = "data_dir"
        )]
        config: Option<PathBuf>,
    },
    /// Print the version, the git revision and the schema versions of the
    /// files this binary keeps (infermon.db, state.db); with --data-dir, also
    /// the versions a stopped store's files have (read only).
    Version {
        /// A data directory (storage.path) whose files to inspect.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Print the manual page (roff) generated from these options, e.g.
    /// `infermon man | man -l -`.
    Man,
    /// Download a model from the Hugging Face hub into DIR/NAME: config,
    /// tokenizer, sentence-transformers modules and one copy of the weights
    /// (safetensors preferred). Reads HF_ENDPOINT (a mirror such as
    /// https://hf-mirror.com), HF_TOKEN and HF_HOME; an interrupted pull
    /// resumes where it stopped.
    Pull {
        /// ORG/NAME or ORG/NAME@revision.
        repo: String,
        /// Folder the model folder is created in.
        #[arg(long, default_value = "models")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    // Before any thread starts: glibc's heap set for bursts of queries.
    infermon::util::heap::tune();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve { config } => match serve(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e:#}");
                eprintln!("infermon: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Check {
            diff: Some(files), ..
        } => check_diff(&files[0], &files[1]),
        Command::Check { file, .. } => match file {
            Some(file) => check(&file),
            None => ExitCode::FAILURE,
        },
        Command::Reload { url, api_key } => report(reload(url, api_key)),
        Command::HashPassword { cost } => report(hash_password(cost)),
        Command::Export {
            from,
            to,
            matchers,
            format,
            output,
            source,
        } => report(
            export(&from, &to, &matchers, &format, &output, &source).map(|bytes| {
                eprintln!("wrote {bytes} bytes to {}", output.display());
            }),
        ),
        Command::Import { file, source } => report(import(&file, &source)),
        Command::Restore {
            backup,
            data_dir,
            config,
        } => report(restore(&backup, data_dir, config)),
        Command::Pull { repo, dir } => report(pull(&repo, &dir)),
        Command::Version { data_dir } => report(version(data_dir.as_deref())),
        Command::Man => report(
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut std::io::stdout())
                .context("cannot write the manual page"),
        ),
    }
}

/// `infermon version`: the binary, and the schema versions it writes (and,
/// with a data directory, the ones found there).
fn version(data_dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    use infermon::storage::schema::{STATE, STORE, file_version};
    println!(
        "infermon {} (revision {})",
        env!("CARGO_PKG_VERSION"),
        infermon::REVISION
    );
    for m in [&STORE, &STATE] {
        println!("schema {}: version {}", m.file, m.version());
    }
    if let Some(dir) = data_dir {
        for m in [&STORE, &STATE] {
            let path = dir.join(m.file);
            let found = match file_version(&path)? {
                None => "absent".to_string(),
                Some(v) if v > m.version() => {
                    format!("version {v} (newer than this binary; it refuses to open it)")
                }
                Some(v) if v < m.version() => {
                    format!(
                        "version {v} (migrated to {} at the next start)",
                        m.version()
                    )
                }
                Some(v) => format!("version {v}"),
            };
            println!("{}: {found}", path.display());
        }
    }
    Ok(())
}

/// Exit status of a one-shot command; errors go to standard error.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("infermon: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("INFERMON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn serve(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let loaded = match &config_path {
        Some(path) => Config::load_file(path),
        None => Config::load_default(),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))
    .context("invalid configuration")?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let shutdown = Shutdown::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            os_signal().await;
            tracing::info!("shutdown signal received; draining");
            trigger.trigger();
        });
        infermon::run(loaded.config, shutdown).await
    });
    // A stage abandoned at the deadline may still hold a blocking thread;
    // it must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result?;
    Ok(())
}

fn check(file: &std::path::Path) -> ExitCode {
    let loaded = match Config::load_file(file) {
        Ok(loaded) => loaded,
        Err(ConfigError::Invalid(problems)) => return failed(file, &problems),
        Err(e) => {
            println!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // Rule files are checked by the same code that loads them at start-up.
    match infermon::rules::load_rule_files(&loaded.config) {
        Ok(_) => {}
        Err(infermon::rules::RulesError::Invalid(problems)) => return failed(file, &problems),
        Err(e) => {
            println!("{e}");
            return ExitCode::FAILURE;
        }
    }
    // Dashboards too, by the code that loads them at start-up.
    let dashboards = loaded.config.dashboard_files();
    if let Err(e) = infermon::web::pages::Pages::load_dashboards(&dashboards) {
        println!("{e}");
        println!("FAILED: {}", file.display());
        return ExitCode::FAILURE;
    }
    for warning in &loaded.warnings {
        println!(
            "{}:{}:{}: warning: {}",
            warning.file, warning.line, warning.column, warning.message
        );
    }
    let rule_files = loaded.config.rule_files.len();
    println!(
        "SUCCESS: {} is valid infermon config ({rule_files} rule_files entries checked)",
        file.display()
    );
    ExitCode::SUCCESS
}

/// `infermon check --diff OLD NEW`: both files checked as `check` does,
/// then what a reload from OLD to NEW would change.
fn check_diff(old: &std::path::Path, new: &std::path::Path) -> ExitCode {
    let mut sets = Vec::new();
    for file in [old, new] {
        match infermon::ConfigSet::load(Some(file)) {
            Ok((set, _)) => sets.push(set),
            Err(failure) if !failure.diagnostics.is_empty() => {
                return failed(file, &failure.diagnostics);
            }
            Err(failure) => {
                println!("{}", failure.message);
                println!("FAILED: {}", file.display());
                return ExitCode::FAILURE;
            }
        }
    }
    println!("changes from {} to {}:", old.display(), new.display());
    print!("{}", infermon::ReloadDiff::between(&sets[0], &sets[1]));
    ExitCode::SUCCESS
}

/// `infermon reload`: POST /-/reload on the running instance.
fn reload(url: String, api_key: Option<String>) -> anyhow::Result<()> {
    let endpoint = format!("{}/-/reload", url.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, body) = runtime.block_on(async {
        let mut request = reqwest::Client::new().post(&endpoint);
        if let Some(key) = &api_key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {endpoint}"))?;
        let status = response.status();
        anyhow::Ok((status, response.bytes().await?))
    })?;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if status.is_success() {
        let lines = |key: &str| -> Vec<String> {
            v["data"][key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let changes = lines("changes");
        if changes.is_empty() {
            println!("reloaded: nothing to apply");
        } else {
            println!("reloaded:");
            for c in changes {
                println!("  {c}");
            }
        }
        let restart = lines("restart_required");
        if !restart.is_empty() {
            println!("requires a restart:");
            for r in restart {
                println!("  {r}");
            }
        }
        return Ok(());
    }
    match v["error"].as_str() {
        Some(error) => anyhow::bail!("{error}"),
        None => anyhow::bail!(
            "{endpoint} answered {status}: {}",
            String::from_utf8_lossy(&body)
        ),
    }
}

/// Prints every problem and the failure line of `infermon check`.
fn failed(file: &std::path::Path, problems: &[infermon::diag::Diagnostic]) -> ExitCode {
    for p in problems {
        println!("{p}");
    }
    println!(
        "FAILED: {} problem(s) in {}",
        problems.len(),
        file.display()
    );
    ExitCode::FAILURE
}

fn export(
    from: &str,
    to: &str,
    matchers: &[String],
    format: &str,
    output: &std::path::Path,
    source: &Source,
) -> anyhow::Result<usize> {
    let tmp = output.with_extension("partial");
    let written = match &source.data_dir {
        Some(dir) => export_local(dir, from, to, matchers, format, &tmp)?,
        None => {
            let mut query = vec![
                ("start", from.to_string()),
                ("end", to.to_string()),
                ("format", format.to_string()),
            ];
            query.extend(matchers.iter().map(|m| ("match[]", m.clone())));
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            let mut file = std::io::BufWriter::new(file);
            let written = call_into(
                source,
                reqwest::Method::GET,
                "/api/v1/export",
                &query,
                None,
                &mut file,
            )
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })?;
            let file = file.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            written as usize
        }
    };
    std::fs::rename(&tmp, output)
        .with_context(|| format!("cannot rename to {}", output.display()))?;
    Ok(written)
}

/// An export read straight from a stopped instance's store, written into
/// `out` one metric family at a time (the same path `GET /api/v1/export`
/// takes); returns the bytes written.
fn export_local(
    dir: &std::path::Path,
    from: &str,
    to: &str,
    matchers: &[String],
    format: &str,
    out: &std::path::Path,
) -> anyhow::Result<usize> {
    use infermon::snapshot::export;
    let start = export::parse_time(from).map_err(anyhow::Error::msg)?;
    let end = export::parse_time(to).map_err(anyhow::Error::msg)?;
    let format: export::ExportFormat = format.parse().map_err(anyhow::Error::msg)?;
    let groups = export::matcher_groups(matchers).map_err(anyhow::Error::msg)?;
    let store = open_store(dir)?;
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot write {}", out.display()))?;
    let mut file = std::io::BufWriter::new(file);
    export::stream(&store, &groups, start, end, format, &mut file).map_err(anyhow::Error::msg)?;
    let file = file.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    store.close()?;
    Ok(file.metadata()?.len() as usize)
}

fn open_store(dir: &std::path::Path) -> anyhow::Result<infermon::storage::SqliteStorage> {
    anyhow::ensure!(
        dir.join(infermon::storage::DB_FILE).is_file(),
        "{} holds no infermon store ({} is missing)",
        dir.display(),
        infermon::storage::DB_FILE
    );
    Ok(infermon::storage::SqliteStorage::open(
        dir,
        infermon::storage::StorageOptions::default(),
    )?)
}

fn import(file: &std::path::Path, source: &Source) -> anyhow::Result<()> {
    let open = || std::fs::File::open(file);
    open().with_context(|| format!("cannot open {}", file.display()))?;
    match &source.data_dir {
        Some(dir) => {
            let store = infermon::storage::SqliteStorage::open(
                dir,
                infermon::storage::StorageOptions::default(),
            )?;
            let report = infermon::snapshot::import(open()?, &store)?;
            store.close()?;
            eprintln!(
                "imported {}: {} series ({} new), {} samples added, {} already stored",
                file.display(),
                report.series,
                report.series_created,
                report.samples_added,
                report.samples_existing
            );
        }
        None => {
            // Bodies under the server's default request limit (2 MiB).
            let (mut added, mut existing) = (0u64, 0u64);
            let bodies = infermon::snapshot::split_import(open, 1 << 20, |body| {
                let reply = call(
                    source,
                    reqwest::Method::POST,
                    "/api/v1/admin/import",
                    &[],
                    Some(body),
                )
                .map_err(|e| format!("{e:#}"))?;
                let v: serde_json::Value =
                    serde_json::from_slice(&reply).map_err(|e| e.to_string())?;
                added += v["data"]["samples_added"].as_u64().unwrap_or(0);
                existing += v["data"]["samples_existing"].as_u64().unwrap_or(0);
                Ok(())
            })?;
            eprintln!(
                "imported {} in {bodies} request(s): {added} samples added, {existing} already stored",
                file.display()
            );
        }
    }
    Ok(())
}

fn restore(
    backup: &std::path::Path,
    data_dir: Option<PathBuf>,
    config: Option<PathBuf>,
) -> anyhow::Result<()> {
    let dir = match data_dir {
        Some(d) => d,
        None => {
            let loaded = match &config {
                Some(path) => Config::load_file(path),
                None => Config::load_default(),
            }
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            PathBuf::from(loaded.config.storage.path)
        }
    };
    let report = infermon::storage::SqliteStorage::restore(
        backup,
        &dir,
        infermon::storage::StorageOptions::default(),
    )?;
    if let Some(old) = &report.replaced {
        eprintln!("the replaced database was kept as {}", old.display());
    }
    eprintln!(
        "restored {} into {}: {} series, {} samples",
        backup.display(),
        dir.display(),
        report.series,
        report.samples
    );
    Ok(())
}

/// One request to a running infermon; the body of a 2xx answer.
fn call(
    source: &Source,
    method: reqwest::Method,
    path: &str,
    query: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    call_into(source, method, path, query, body, &mut out)?;
    Ok(out)
}

/// One request to a running infermon, streaming the body of a 2xx answer
/// into `out` as it arrives (an export may be larger than memory); returns
/// the bytes written. The body of an error answer is read up to 64 KiB for
/// the message.
fn call_into(
    source: &Source,
    method: reqwest::Method,
    path: &str,
    query: &[(&str, String)],
    body: Option<Vec<u8>>,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<u64> {
    const ERROR_BODY_CAP: usize = 64 * 1024;
    let endpoint = format!("{}{path}", source.url.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut request = reqwest::Client::new()
            .request(method, &endpoint)
            .query(query);
        if let Some(key) = &source.api_key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let mut response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {endpoint}"))?;
        let status = response.status();
        if !status.is_success() {
            let mut text = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                text.extend_from_slice(&chunk);
                if text.len() >= ERROR_BODY_CAP {
                    text.truncate(ERROR_BODY_CAP);
                    break;
                }
            }
            anyhow::bail!(
                "{endpoint} answered {status}: {}",
                String::from_utf8_lossy(&text)
            );
        }
        let mut written = 0u64;
        while let Some(chunk) = response
            .chunk()
            .await
            .with_context(|| format!("{endpoint}: the answer broke off"))?
        {
            out.write_all(&chunk)?;
            written += chunk.len() as u64;
        }
        Ok(written)
    })
}

fn pull(spec: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let repo = infermon::hub::RepoRef::parse(spec)?;
    let dest = dir.join(repo.folder_name());
    if dest.is_dir() {
        println!(
            "{} already exists; remove it to download again",
            dest.display()
        );
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let pulled = runtime.block_on(infermon::hub::pull_into(spec, &dest))?;
    println!(
        "{}: {} files. Serve it with:\n  models:\n    - path: {}",
        pulled.dir.display(),
        pulled.files.len(),
        pulled.dir.display()
    );
    Ok(())
}

fn hash_password(cost: u32) -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(
        !password.is_empty(),
        "empty password: pipe the password on standard input"
    );
    let hash = bcrypt::hash(password, cost).context("cannot hash")?;
    println!("{hash}");
    Ok(())
}
