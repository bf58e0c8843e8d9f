//! `ctl login` (check a URL and token, save them) and `ctl tokens` (list, create, revoke
//! API tokens).

use std::time::SystemTime;

use clap::{Args, Subcommand};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::ctl::Format;
use crate::ctl::answers::{ApiToken, IssuedToken, Me, Principal, decode};
use crate::ctl::client::{Client, CtlError};
use crate::ctl::output::{Table, note, print_json, relative, write_out};
use crate::ctl::saved::{self, SavedLogin};

/// `ctl login`: `url` and `token` (`-`: read from stdin) checked with `GET /api/me`, then saved.
pub async fn login(url: Option<String>, token: Option<String>) -> Result<(), CtlError> {
    let url = url.ok_or_else(|| CtlError::Local("`ctl login` needs --url (or FLEETDECK_URL)".into()))?;
    let token = match token.as_deref() {
        Some("-") => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| CtlError::Local(format!("cannot read the token from stdin: {e}")))?;
            Some(line.trim().to_owned()).filter(|t| !t.is_empty())
        }
        _ => token,
    };
    let client = Client::new(&url, token.clone().map(SecretString::from))?;
    let me: Me = client.get("/api/me", &[]).await?;
    let who = match me.user {
        Some(Principal::Token { name }) => format!("as API token {name:?}"),
        Some(Principal::User { login, provider }) => format!("as {provider}:{login}"),
        Some(Principal::Anonymous) | None => format!("with no user (user access: {})", me.auth),
    };
    let path = saved::save(&SavedLogin { url: client.base().to_owned(), token })?;
    note(&format!("logged in to {} {who}; saved in {}", client.base(), path.display()));
    Ok(())
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TokensArgs {
    #[command(subcommand)]
    command: Option<TokensCommand>,
    #[command(flatten)]
    format: Format,
}

#[derive(Debug, Subcommand)]
enum TokensCommand {
    /// Create an API token. Prints its secret, which is shown only this once.
    Create {
        /// What the token is for, e.g. "ci".
        name: String,
        /// Expire it after this many days (1 to 3650; default: never).
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        format: Format,
    },
    /// Revoke an API token: requests with it are refused from now on.
    Revoke {
        /// The token's ID (from `ctl tokens`).
        #[arg(value_parser = crate::ctl::id_arg)]
        id: String,
    },
}

pub async fn main(client: &Client, args: TokensArgs) -> Result<(), CtlError> {
    match args.command {
        None => list(client, args.format).await,
        Some(TokensCommand::Create { name, expires_in_days, format }) => {
            let body = json!({ "name": name, "expires_in_days": expires_in_days });
            let answer: Value = client.post("/api/tokens", Some(&body)).await?;
            if format.json {
                return print_json(&answer);
            }
            let issued: IssuedToken = decode(answer)?;
            write_out(format!("{}\n", issued.secret).as_bytes())?;
            note(&format!(
                "created API token {:?} ({}); its secret is above and is not shown again",
                issued.token.name, issued.token.id
            ));
            Ok(())
        }
        Some(TokensCommand::Revoke { id }) => {
            client.delete(&format!("/api/tokens/{id}")).await?;
            note(&format!("revoked API token {id}"));
            Ok(())
        }
    }
}

async fn list(client: &Client, format: Format) -> Result<(), CtlError> {
    #[derive(serde::Deserialize)]
    struct Items {
        items: Vec<Value>,
    }
    let answer: Items = client.get("/api/tokens", &[]).await?;
    if format.json {
        return print_json(&Value::Array(answer.items));
    }
    let now = SystemTime::now();
    let mut table =
        Table::with_header(&["ID", "NAME", "STATE", "CREATED BY", "CREATED", "LAST USED", "EXPIRES"]);
    for item in answer.items {
        let token: ApiToken = decode(item)?;
        table.row([
            token.id.clone(),
            token.name.clone(),
            state(&token, now).to_owned(),
            token.created_by,
            relative(Some(&token.created_at), now),
            relative(token.last_used_at.as_deref(), now),
            relative(token.expires_at.as_deref(), now),
        ]);
    }
    table.print()
}

/// `active`, `revoked` or `expired`.
fn state(token: &ApiToken, now: SystemTime) -> &'static str {
    let expired = token
        .expires_at
        .as_deref()
        .and_then(|at| humantime::parse_rfc3339_weak(at).ok())
        .is_some_and(|at| at <= now);
    if token.revoked_at.is_some() {
        "revoked"
    } else if expired {
        "expired"
    } else {
        "active"
    }
}
