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
    /// file:line:col: message and exits 1 on any error.
    Check {
        /// Config file to check.
        file: PathBuf,
    },
    /// Print a bcrypt hash of a password read from standard input, for
    /// server.auth.basic_auth_users.
    HashPassword {
        /// bcrypt cost (4-31).
        #[arg(long, default_value_t = 10)]
        cost: u32,
    },
    /// Print the version and git revision.
    Version,
}

fn main() -> ExitCode {
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
        Command::Check { file } => check(&file),
        Command::HashPassword { cost } => match hash_password(cost) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("infermon: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Version => {
            println!("infermon {} (revision {})", env!("CARGO_PKG_VERSION"), infermon::REVISION);
            ExitCode::SUCCESS
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("INFERMON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
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
    runtime.block_on(async {
        let shutdown = Shutdown::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            os_signal().await;
            tracing::info!("shutdown signal received; draining");
            trigger.trigger();
        });
        infermon::run(loaded.config, shutdown).await
    })?;
    Ok(())
}

fn check(file: &PathBuf) -> ExitCode {
    match Config::load_file(file) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                println!("{}:{}:{}: warning: {}", warning.file, warning.line, warning.column, warning.message);
            }
            let rule_files = loaded.config.rule_files.len();
            println!("SUCCESS: {} is valid infermon config ({rule_files} rule_files entries checked)", file.display());
            ExitCode::SUCCESS
        }
        Err(ConfigError::Invalid(problems)) => {
            for p in &problems {
                println!("{p}");
            }
            println!("FAILED: {} problem(s) in {}", problems.len(), file.display());
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn hash_password(cost: u32) -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!password.is_empty(), "empty password: pipe the password on standard input");
    let hash = bcrypt::hash(password, cost).context("cannot hash")?;
    println!("{hash}");
    Ok(())
}
