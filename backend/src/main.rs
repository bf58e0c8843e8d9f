//! The `fleetdeck` command: parse the command line, set up logging, run a subcommand.

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};
use fleetdeck::{App, Config};

#[derive(Parser)]
#[command(name = "fleetdeck", version, about = "Self-hosted control plane for a fleet of servers")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run this node (the default): primary or secondary per NODE_IS_PRIMARY.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print a new random key (for NODE_API_KEY, FLEETDECK_MASTER_KEY or REGISTRATION_TOKEN).
    Keygen,
    /// Exit 0 if the local server answers /api/health (for Docker's HEALTHCHECK).
    Healthcheck,
    /// A command-line client for a primary's API: nodes, jobs, `run`, tokens.
    Ctl(fleetdeck::ctl::CtlArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    // Keygen and the client need no server configuration (and log nothing).
    let command = match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Keygen => {
            println!("{}", fleetdeck::secrets::random_token(32));
            return ExitCode::SUCCESS;
        }
        Command::Ctl(args) => return fleetdeck::ctl::run(args, Cli::command).await,
        command => command,
    };
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            // Docker reserves health-check exit codes above 1.
            let healthcheck = matches!(command, Command::Healthcheck);
            return ExitCode::from(if healthcheck { 1 } else { 2 });
        }
    };
    let json = fleetdeck::telemetry::log_json(
        config.log_json,
        config.development,
        std::io::IsTerminal::is_terminal(&std::io::stdout()),
    );
    fleetdeck::telemetry::init(json, config.development);
    let result = match command {
        Command::Serve => serve(config).await,
        Command::Migrate => migrate(&config),
        Command::Healthcheck => healthcheck(&config).await,
        Command::Keygen | Command::Ctl(_) => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "fleetdeck failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    App::build(config).await?.run_until_signal().await
}

fn migrate(config: &Config) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.node.is_primary,
        "a secondary node has no database to migrate (NODE_IS_PRIMARY=false)"
    );
    let mut conn = fleetdeck::db::connect_once(&config.database_url)?;
    fleetdeck::db::run_migrations(&mut conn)?;
    println!("migrations are up to date");
    Ok(())
}

async fn healthcheck(config: &Config) -> anyhow::Result<()> {
    let mut address = config.server_address;
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{address}/api/health");
    let response = reqwest::Client::new().get(&url).timeout(std::time::Duration::from_secs(3)).send().await?;
    anyhow::ensure!(response.status().is_success(), "{url} answered HTTP {}", response.status());
    Ok(())
}
