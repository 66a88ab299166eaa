//! `m365-mcp`: the Microsoft 365 MCP server's command line.
//!
//! Thin by design: it reads the environment, sets up logging, and hands each
//! subcommand to the library module that does the work.

use clap::{Parser, Subcommand};

use m365_mcp::{App, McpServer, ServerConfig, cache_cmd, demo, logging};

/// Microsoft 365 for AI assistants: mail, calendar, contacts, OneDrive and
/// search through Microsoft Graph, behind an encrypted response cache.
#[derive(Debug, Parser)]
#[command(name = "m365-mcp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve MCP (the default when no subcommand is given).
    Serve(ServeArgs),
    /// Sign accounts in and out.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Inspect and manage the encrypted cache.
    #[command(subcommand)]
    Cache(cache_cmd::CacheCommand),
    /// A guided tour on a built-in sandbox tenant; no Microsoft account needed.
    Demo(demo::DemoArgs),
    /// Run the Graph sandbox alone (for tests and experiments).
    Sandbox(demo::SandboxArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// `stdio` (default) or `http`.
    #[arg(long, env = "MCP_TRANSPORT", default_value = "stdio")]
    transport: String,
    /// Address to bind in HTTP mode.
    #[arg(long, env = "MCP_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Port in HTTP mode.
    #[arg(long, env = "MCP_PORT", default_value_t = 8000)]
    port: u16,
}

#[derive(Debug, Subcommand)]
enum AuthCommand {
    /// Sign in one more account with a device code (URL and code on stderr).
    Login,
    /// List signed-in accounts.
    List,
    /// Sign an account out and purge its cache entries.
    Remove {
        /// Account id or username.
        account: String,
    },
}

/// Whether this run serves one client over stdio. That client sends one
/// request at a time and waits for each answer, so a single-threaded
/// runtime answers sooner: no hand-offs between worker threads on the way
/// from stdin to stdout. HTTP serves many clients and gets every core.
fn serves_stdio(cli: &Cli) -> bool {
    let transport = match &cli.command {
        None => std::env::var("MCP_TRANSPORT").unwrap_or_else(|_| "stdio".into()),
        Some(Command::Serve(args)) => args.transport.clone(),
        Some(_) => return false,
    };
    transport == "stdio"
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut builder = if serves_stdio(&cli) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // The stdin reader is a blocking read that never returns on its own
    // after a signal; do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = ServerConfig::from_env()?;
    let mut log_config = logging::LogConfig::from_env(&config.paths.data_dir);
    if matches!(cli.command, Some(Command::Demo(_))) && std::env::var_os("MCP_LOG_LEVEL").is_none()
    {
        // The tour's report is the output; keep the log to what needs attention.
        log_config.level = "warn".into();
    }
    let _log_guard = logging::init(&log_config)?;
    let command = match cli.command {
        Some(command) => command,
        // No subcommand: serve, with the MCP_* variables clap would read.
        None => Command::Serve(ServeArgs {
            transport: std::env::var("MCP_TRANSPORT").unwrap_or_else(|_| "stdio".into()),
            host: std::env::var("MCP_HOST").unwrap_or_else(|_| "127.0.0.1".into()),
            port: match std::env::var("MCP_PORT") {
                Ok(p) => p.trim().parse().map_err(|_| {
                    anyhow::anyhow!("Invalid MCP_PORT '{p}'. Expected: a port number such as 8000")
                })?,
                Err(_) => 8000,
            },
        }),
    };
    match command {
        Command::Serve(args) => serve(config, args).await,
        Command::Auth(command) => auth(config, command).await,
        Command::Cache(command) => {
            let paths = config.paths.clone();
            tokio::task::spawn_blocking(move || cache_cmd::run(command, &paths)).await?
        }
        Command::Demo(args) => demo::run(args).await,
        Command::Sandbox(args) => demo::run_sandbox(args).await,
    }
}

async fn serve(config: ServerConfig, args: ServeArgs) -> anyhow::Result<()> {
    match args.transport.as_str() {
        "stdio" => {
            let app = App::start(config).await?;
            tracing::info!(version = m365_mcp::VERSION, "serving MCP on stdio");
            McpServer::new(app).serve_stdio().await
        }
        "http" => {
            // Settings are checked before anything is opened: a bad token
            // fails fast, without touching the cache or the accounts.
            let options = m365_mcp::http::HttpOptions::from_env(args.host, args.port)?;
            let app = App::start(config).await?;
            m365_mcp::http::serve(app, options, async {
                let signal = m365_mcp::server::shutdown_signal().await;
                tracing::info!(signal, "shutting down");
            })
            .await
        }
        other => anyhow::bail!("Invalid transport '{other}'. Expected: stdio or http"),
    }
}

async fn auth(config: ServerConfig, command: AuthCommand) -> anyhow::Result<()> {
    let app = App::start(config).await?;
    match command {
        AuthCommand::Login => {
            let record = app
                .accounts
                .login(|challenge| {
                    eprintln!("{}", challenge.message);
                    eprintln!("  URL:  {}", challenge.verification_uri);
                    eprintln!("  Code: {}", challenge.user_code);
                    eprintln!("Waiting for the sign-in to complete…");
                })
                .await?;
            eprintln!(
                "Signed in as {} ({}, {}).",
                record.username, record.account_id, record.account_type
            );
            let total = app.accounts.list()?.len();
            eprintln!("{total} account(s) signed in.");
        }
        AuthCommand::List => {
            let accounts = app.accounts.list()?;
            if accounts.is_empty() {
                println!("No account is signed in. Run `m365-mcp auth login`.");
            }
            for a in accounts {
                println!("{}\t{}\t{}", a.account_id, a.username, a.account_type);
            }
        }
        AuthCommand::Remove { account } => {
            let record = app.accounts.resolve(Some(&account))?;
            app.accounts.remove(&record.account_id)?;
            let purged = app.purge_account_cache(&record.account_id).await;
            println!(
                "Signed out {} ({}); {purged} cache entries removed.",
                record.username, record.account_id
            );
        }
    }
    Ok(())
}
