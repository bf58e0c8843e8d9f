//! Typed configuration, parsed once from the environment (and `.env`, see `ENV_FILE`).
//!
//! Every variable is read through [`Reader`], which collects all problems so a bad start
//! lists them together, and records which names it read so a test can hold `.env.example`
//! to exactly the variables the code understands. Secrets are `SecretString`s (redacted in
//! `Debug`) and accept a `NAME_FILE` variant for Docker secrets.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::db::DatabaseUrl;
use crate::nodes::{Labels, NodeId, NodeName, NodeUrl};
use crate::protocol::Connect;
use crate::secrets::ApiKey;

/// The whole configuration of one `fleetdeck` process.
#[derive(Debug, Clone)]
pub struct Config {
    pub development: bool,
    /// `LOG_JSON`; `None`: decided at start (`telemetry::log_json`).
    pub log_json: Option<bool>,
    pub server_address: SocketAddr,
    /// Whether this node serves HTTP at all: always, except an outbound secondary that was
    /// not given `SERVER_ADDRESS` (it has no listening port unless asked).
    pub listen: bool,
    pub data_dir: PathBuf,
    pub database_url: DatabaseUrl,
    pub node: NodeConfig,
    pub registration_token: Option<SecretString>,
    pub heartbeat_interval: Duration,
    pub health_check_interval: Duration,
    pub health_check_timeout: Duration,
    pub health_check_concurrency: usize,
    pub key_rotation_grace: Duration,
    pub stats_retention: Duration,
    pub master_key: Option<SecretString>,
    pub auth: AuthConfig,
    pub jobs: JobsConfig,
    pub alerts: AlertsConfig,
    /// The names this server answers to (`Host`); see [`AllowedHosts`].
    pub allowed_hosts: AllowedHosts,
    /// `METRICS_TOKEN`: a bearer token Prometheus may scrape `/metrics` with when user
    /// access is on (an API token works too).
    pub metrics_token: Option<SecretString>,
}

/// The host names a request's `Host` may carry: those of `SERVER_ADDRESS`,
/// `NODE_API_ENDPOINT` and `AUTH_BASE_URL`, `localhost`, this machine's host name, and
/// `ALLOWED_HOSTS` (for names a reverse proxy passes on). Any IP address is accepted too: a
/// DNS-rebinding page is always reached through a name its attacker controls, never through
/// an address literal. Ports are not compared (a proxy may change them); names are
/// case-insensitive, a trailing dot ignored.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    names: BTreeSet<String>,
}

impl AllowedHosts {
    fn of(endpoint: Option<&NodeUrl>, auth: Option<&AuthConfig>, extra: &[String]) -> AllowedHosts {
        let own_urls = [endpoint.and_then(|e| Url::parse(e.as_str()).ok()), auth.map(|a| a.base_url.clone())];
        let host_name = sysinfo::System::host_name().unwrap_or_default();
        let names = own_urls
            .iter()
            .flatten()
            .filter_map(Url::host_str)
            .chain(["localhost", host_name.as_str()])
            .chain(extra.iter().map(String::as_str));
        AllowedHosts { names: names.filter_map(normalize_host).collect() }
    }

    /// Whether a `Host` header value (`name`, `name:port`, `[v6]:port`) names this server.
    pub fn allows(&self, host: &str) -> bool {
        let Some(name) = normalize_host(host) else { return false };
        name.parse::<std::net::IpAddr>().is_ok() || self.names.contains(&name)
    }
}

/// The host name of a `Host` value or a configured name: lowercase, without port, brackets
/// or trailing dot; `None` when it is not one.
fn normalize_host(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let name = if let Some(rest) = raw.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok())) {
            return None;
        }
        v6
    } else {
        match raw.rsplit_once(':') {
            Some((name, port)) if port.parse::<u16>().is_ok() && !name.contains(':') => name,
            Some(_) if raw.parse::<std::net::Ipv6Addr>().is_ok() => raw,
            Some(_) => return None,
            None => raw,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c));
    valid.then_some(name)
}

/// Routed jobs (SPEC §8).
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// The longest `timeout_sec` a job may ask for.
    pub max_timeout: Duration,
    /// A job whose node has not been seen for this long is `lost`.
    pub lost_after: Duration,
    /// Finished jobs and their logs are kept this long.
    pub retention: Duration,
    /// Between SIGTERM and SIGKILL when a job times out or is cancelled.
    pub kill_grace: Duration,
    /// How long a stopping node lets its running jobs finish.
    pub drain_timeout: Duration,
}

/// Alert deliveries (SPEC §14).
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// `ALERTS_BLOCK_PRIVATE`: refuse to deliver to loopback, private and link-local
    /// addresses (for installations where whoever adds channels should not reach the LAN).
    pub block_private: bool,
    /// `ALERTS_FLAP_WINDOW`: a node back in an alert's condition within this of recovering
    /// is flapping, summarised in one message once it has been steady this long.
    pub flap_window: Duration,
}

/// Who may use the user-facing API and UI (SPEC §9).
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `AUTH_ENABLED=true`: GitHub login with an allow-list.
    pub github: Option<GitHubConfig>,
    /// `CF_ACCESS_TEAM_DOMAIN` + `CF_ACCESS_AUD`: every user request carries a verified
    /// Cloudflare Access assertion.
    pub cloudflare: Option<CloudflareConfig>,
    /// Public URL of the primary (OAuth callback, same-origin checks).
    pub base_url: Url,
    pub secure_cookie: bool,
    pub session_ttl: Duration,
    /// Extra origins allowed to make state-changing requests (a separately served UI).
    pub allowed_origins: Vec<String>,
}

impl AuthConfig {
    /// The primary's public URL without a trailing `/`: what people and joining machines
    /// are told to open.
    pub fn public_url(&self) -> &str {
        self.base_url.as_str().trim_end_matches('/')
    }
}

#[derive(Debug, Clone)]
pub struct GitHubConfig {
    pub client_id: String,
    pub client_secret: SecretString,
    /// Lowercase logins; empty means nobody.
    pub allowed_users: Vec<String>,
    pub auth_url: Url,
    pub token_url: Url,
    pub api_url: Url,
    pub jwt_secret: SecretString,
}

#[derive(Debug, Clone)]
pub struct CloudflareConfig {
    pub team_domain: String,
    pub audience: String,
    pub certs_url: Url,
}

/// What this node is and how others reach it.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub is_primary: bool,
    /// `None`: generated once and kept in `DATA_DIR`.
    pub id: Option<NodeId>,
    pub name: NodeName,
    pub api_endpoint: NodeUrl,
    /// `None`: generated once and kept in `DATA_DIR` (mode 0600).
    pub api_key: Option<ApiKey>,
    /// `NODE_LABELS`; `None` when unset (a secondary's labels are then the primary's to set).
    pub labels: Option<Labels>,
    pub max_jobs: u32,
    /// Secondary only: `PRIMARY_NODE_URL`, one URL or several (see
    /// [`PrimaryUrls`](crate::protocol::PrimaryUrls)); empty when unset.
    pub primary_urls: Vec<NodeUrl>,
    /// Secondary only; `None`: learned from the first heartbeat reply.
    pub primary_id: Option<NodeId>,
    /// Secondary only: `CF_ACCESS_CLIENT_ID` and `CF_ACCESS_CLIENT_SECRET`, sent on every
    /// request to the primary (a Cloudflare Access service token).
    pub access_token: Option<AccessServiceToken>,
    /// Secondary only: `JOIN_TOKEN`, the single-use token this node registers with once
    /// (the install script writes it).
    pub join_token: Option<SecretString>,
    /// Secondary only: `NODE_CONNECT` resolved: outbound when asked, or with `auto` when
    /// `NODE_API_ENDPOINT` is not set; inbound by default.
    pub connect: Connect,
}

/// A Cloudflare Access service token, which a secondary shows on every request to the primary
/// so the node API can sit behind an Access application with a service-auth policy.
#[derive(Debug, Clone)]
pub struct AccessServiceToken {
    pub client_id: String,
    pub client_secret: SecretString,
}

/// All configuration problems found, one per line.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    /// Reads the process environment, after loading `ENV_FILE` (default `.env`) if present.
    pub fn from_env() -> Result<Config, ConfigError> {
        let env_file = std::env::var("ENV_FILE").unwrap_or_else(|_| ".env".into());
        match dotenvy::from_path(&env_file) {
            Ok(()) => {}
            Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ConfigError(vec![format!("ENV_FILE {env_file}: {e}")])),
        }
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Parses configuration from any variable lookup (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut r = Reader::new(&lookup);
        let config = Config::read(&mut r);
        match config {
            Some(config) if r.errors.is_empty() => Ok(config),
            _ => Err(ConfigError(r.errors)),
        }
    }

    /// Every variable name the configuration reads (for the `.env.example` sync test).
    pub fn variable_names() -> BTreeSet<&'static str> {
        let lookup = |_: &str| None;
        let mut r = Reader::new(&lookup);
        let _ = Config::read(&mut r);
        r.names
    }

    fn read(r: &mut Reader<'_>) -> Option<Config> {
        let development = r.parse(
            "APP_ENV",
            || false,
            |v| match v {
                "development" => Ok(true),
                "production" => Ok(false),
                _ => Err("must be production or development".into()),
            },
        );
        let log_json = r.parse("LOG_JSON", || None, |v| parse_bool(v).map(Some));
        let server_address: SocketAddr = r.parse(
            "SERVER_ADDRESS",
            || SocketAddr::from(([127, 0, 0, 1], 8080)),
            |v| v.parse().map_err(|_| "must be host:port, e.g. 127.0.0.1:8080".into()),
        );
        let data_dir = PathBuf::from(r.string("DATA_DIR").unwrap_or_else(|| "./data".into()));
        let default_db = data_dir.join("fleetdeck.db");
        let database_url =
            r.parse_secret("DATABASE_URL", || DatabaseUrl::Sqlite(default_db), DatabaseUrl::parse);

        let is_primary = r.parse("NODE_IS_PRIMARY", || true, parse_bool);
        let id = r.optional("NODE_ID", NodeId::parse);
        let name = r.parse("NODE_NAME", default_node_name, |v| NodeName::parse(v).map(Some));
        if name.is_none() {
            r.error("NODE_NAME: the hostname is not a usable node name; set NODE_NAME");
        }
        let endpoint_given = r.string("NODE_API_ENDPOINT").is_some();
        let address_given = r.string("SERVER_ADDRESS").is_some();
        let connect = r.parse(
            "NODE_CONNECT",
            || Some(Connect::Inbound),
            |v| match v {
                "inbound" => Ok(Some(Connect::Inbound)),
                "outbound" => Ok(Some(Connect::Outbound)),
                "auto" => Ok(None),
                _ => Err("must be inbound, outbound or auto".into()),
            },
        );
        let connect = connect.unwrap_or(if endpoint_given { Connect::Inbound } else { Connect::Outbound });
        let api_endpoint = r
            .optional("NODE_API_ENDPOINT", NodeUrl::parse)
            .or_else(|| NodeUrl::parse(&format!("http://{server_address}")).ok());
        let api_key = r.optional_secret("NODE_API_KEY", ApiKey::parse);
        let labels = r.optional("NODE_LABELS", Labels::parse_list);
        let max_jobs = r.parse("NODE_MAX_JOBS", default_max_jobs, |v| match v.parse::<u32>() {
            Ok(n) if n <= 10_000 => Ok(n),
            _ => Err("must be a whole number from 0 (takes no jobs) to 10000".into()),
        });
        let primary_urls = r.parse("PRIMARY_NODE_URL", Vec::new, parse_url_list);
        let primary_id = r.optional("PRIMARY_NODE_ID", NodeId::parse);
        let access_id = r.optional("CF_ACCESS_CLIENT_ID", |v| header_value(v).map(str::to_owned));
        let access_secret = r.optional_secret("CF_ACCESS_CLIENT_SECRET", |v| {
            header_value(v).map(|v| SecretString::from(v.to_owned()))
        });
        let access_token = match (access_id, access_secret) {
            (Some(client_id), Some(client_secret)) => Some(AccessServiceToken { client_id, client_secret }),
            (None, None) => None,
            _ => {
                r.error("CF_ACCESS_CLIENT_ID and CF_ACCESS_CLIENT_SECRET go together: set both or neither");
                None
            }
        };
        let join_token = r.optional_secret("JOIN_TOKEN", |v| {
            let prefix = crate::nodes::registry::JOIN_TOKEN_PREFIX;
            if v.starts_with(prefix) && v.len() <= 200 && header_value(v).is_ok() {
                Ok(SecretString::from(v.to_owned()))
            } else {
                Err(format!("must be a join token ({prefix}…, from POST /api/nodes/join-tokens or the UI)"))
            }
        });
        let registration_token = r.optional_secret("REGISTRATION_TOKEN", |v| {
            if v.len() < 16 {
                Err("must be at least 16 characters".into())
            } else {
                Ok(SecretString::from(v.to_owned()))
            }
        });

        let heartbeat_interval = r.duration("HEARTBEAT_INTERVAL", 30);
        let health_check_interval = r.duration("HEALTH_CHECK_INTERVAL", 30);
        let health_check_timeout = r.duration("HEALTH_CHECK_TIMEOUT", 5);
        let health_check_concurrency = r.parse(
            "HEALTH_CHECK_CONCURRENCY",
            || 64,
            |v| match v.parse::<usize>() {
                Ok(n) if (1..=4096).contains(&n) => Ok(n),
                _ => Err("must be a whole number from 1 to 4096".into()),
            },
        );
        let key_rotation_grace = r.duration("KEY_ROTATION_GRACE", 600);
        let stats_retention = r.duration("STATS_RETENTION", 14 * 24 * 3600);
        let metrics_token = r.optional_secret("METRICS_TOKEN", |v| {
            if v.len() < 16 {
                Err("must be at least 16 characters".into())
            } else {
                Ok(SecretString::from(v.to_owned()))
            }
        });
        let master_key = r.optional_secret("FLEETDECK_MASTER_KEY", |v| {
            crate::secrets::MasterKey::decode(v).map(|_| SecretString::from(v.to_owned()))
        });

        let auth = read_auth(r, api_endpoint.as_ref());
        let extra_hosts = r.parse("ALLOWED_HOSTS", Vec::new, |v| {
            v.split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(|h| match normalize_host(h) {
                    Some(_) => Ok(h.to_owned()),
                    None => Err(format!("{h:?} is not a host name (give names such as fleet.example.com)")),
                })
                .collect()
        });
        let jobs = JobsConfig {
            max_timeout: r.parse(
                "JOB_MAX_TIMEOUT",
                || Duration::from_secs(24 * 3600),
                |v| {
                    parse_duration(v).and_then(|d| {
                        if d < Duration::from_secs(1) { Err("must be at least 1s".into()) } else { Ok(d) }
                    })
                },
            ),
            lost_after: r.duration("JOB_LOST_AFTER", 5 * 60),
            retention: r.duration("JOB_RETENTION", 30 * 24 * 3600),
            kill_grace: r.duration("JOB_KILL_GRACE", 10),
            drain_timeout: r.duration("JOB_DRAIN_TIMEOUT", 60),
        };
        let alerts = AlertsConfig {
            block_private: r.parse("ALERTS_BLOCK_PRIVATE", || false, parse_bool),
            flap_window: r.duration("ALERTS_FLAP_WINDOW", 600),
        };

        let allowed_hosts = AllowedHosts::of(api_endpoint.as_ref(), auth.as_ref(), &extra_hosts);
        if is_primary && join_token.is_some() {
            r.error("JOIN_TOKEN is for a secondary joining a primary: set NODE_IS_PRIMARY=false and PRIMARY_NODE_URL");
        }
        if !is_primary && primary_urls.is_empty() {
            r.error("PRIMARY_NODE_URL is required when NODE_IS_PRIMARY=false");
        }
        let connect = if is_primary { Connect::Inbound } else { connect };
        if !is_primary
            && connect == Connect::Inbound
            && server_address.ip().is_unspecified()
            && !endpoint_given
        {
            r.error(
                "NODE_API_ENDPOINT is required when SERVER_ADDRESS listens on every interface: \
                 set the URL the primary uses to reach this node",
            );
        }
        Some(Config {
            development,
            log_json,
            server_address,
            listen: connect == Connect::Inbound || address_given,
            data_dir,
            database_url,
            node: NodeConfig {
                is_primary,
                id,
                name: name?,
                api_endpoint: api_endpoint?,
                api_key,
                labels,
                max_jobs,
                primary_urls,
                primary_id,
                access_token,
                join_token,
                connect,
            },
            registration_token,
            heartbeat_interval,
            health_check_interval,
            health_check_timeout,
            health_check_concurrency,
            key_rotation_grace,
            stats_retention,
            master_key,
            allowed_hosts,
            metrics_token,
            auth: auth?,
            jobs,
            alerts,
        })
    }

    /// Replaces port 0 ("any free port") in the URLs derived from `SERVER_ADDRESS` with the
    /// port actually bound.
    pub fn resolve_bound_port(&mut self, port: u16) {
        self.node.api_endpoint = self.node.api_endpoint.with_bound_port(port);
        if self.auth.base_url.port() == Some(0) {
            let _ = self.auth.base_url.set_port(Some(port));
        }
    }

    /// Whether `NODE_API_ENDPOINT` names an address nobody else can use (`0.0.0.0`).
    pub fn endpoint_is_unroutable(&self) -> bool {
        url::Url::parse(self.node.api_endpoint.as_str())
            .ok()
            .and_then(|u| u.host_str().map(|h| h == "0.0.0.0" || h == "[::]"))
            .unwrap_or(false)
    }

    /// Whether the server listens on an address only this machine can reach.
    pub fn listens_on_loopback(&self) -> bool {
        self.server_address.ip().is_loopback()
    }
}

fn parse_url(v: &str) -> Result<Url, String> {
    let url = Url::parse(v).map_err(|e| format!("not a valid URL: {}", crate::urls::problem(e)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must use http:// or https://".into());
    }
    Ok(url)
}

/// One URL, or several separated by commas (spaces around them ignored), each given once.
fn parse_url_list(v: &str) -> Result<Vec<NodeUrl>, String> {
    let items: Vec<&str> = v.split(',').map(str::trim).collect();
    let mut urls: Vec<NodeUrl> = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        if item.is_empty() {
            return Err(format!(
                "item {} of the list is empty (separate URLs with single commas, e.g. \
                 http://10.0.0.1:8080,http://10.0.0.2:8080)",
                n + 1
            ));
        }
        let url = match NodeUrl::parse(item) {
            Ok(url) => url,
            Err(e) if items.len() == 1 => return Err(e),
            Err(e) => return Err(format!("{item}: {e}")),
        };
        if urls.contains(&url) {
            return Err(format!("{item} is listed twice"));
        }
        urls.push(url);
    }
    Ok(urls)
}

fn read_auth(r: &mut Reader<'_>, endpoint: Option<&NodeUrl>) -> Option<AuthConfig> {
    let enabled = r.parse("AUTH_ENABLED", || false, parse_bool);
    let jwt_secret = r.optional_secret("JWT_SECRET", |v| {
        if v.len() < 32 {
            Err("must be at least 32 bytes (use `fleetdeck keygen`)".into())
        } else {
            Ok(SecretString::from(v.to_owned()))
        }
    });
    let base_url = r.optional("AUTH_BASE_URL", parse_url);
    let secure_cookie = r.optional("AUTH_SECURE_COOKIE", parse_bool);
    let session_ttl = r.duration("SESSION_TTL", 12 * 3600);
    let client_id = r.string("GITHUB_CLIENT_ID");
    let client_secret = r.secret_string("GITHUB_CLIENT_SECRET").map(SecretString::from);
    let allowed_users: Vec<String> = r
        .string("GITHUB_ALLOWED_USERS")
        .map(|v| v.split(',').map(|u| u.trim().to_lowercase()).filter(|u| !u.is_empty()).collect())
        .unwrap_or_default();
    let auth_url = r.parse(
        "GITHUB_AUTH_URL",
        || Url::parse("https://github.com/login/oauth/authorize").ok(),
        |v| parse_url(v).map(Some),
    );
    let token_url = r.parse(
        "GITHUB_TOKEN_URL",
        || Url::parse("https://github.com/login/oauth/access_token").ok(),
        |v| parse_url(v).map(Some),
    );
    let api_url =
        r.parse("GITHUB_API_URL", || Url::parse("https://api.github.com").ok(), |v| parse_url(v).map(Some));
    let team_domain = r.string("CF_ACCESS_TEAM_DOMAIN");
    let audience = r.string("CF_ACCESS_AUD");
    let certs_url = r.optional("CF_ACCESS_CERTS_URL", parse_url);
    let allowed_origins: Vec<String> = r
        .string("CORS_ALLOWED_ORIGINS")
        .map(|v| {
            v.split(',')
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect()
        })
        .unwrap_or_default();

    let github = if enabled {
        if client_id.is_none() || client_secret.is_none() {
            r.error("AUTH_ENABLED=true needs GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET");
        }
        if jwt_secret.is_none() {
            r.error("AUTH_ENABLED=true needs JWT_SECRET (at least 32 bytes; `fleetdeck keygen` makes one)");
        }
        match (client_id, client_secret, jwt_secret, auth_url, token_url, api_url) {
            (
                Some(client_id),
                Some(client_secret),
                Some(jwt_secret),
                Some(auth_url),
                Some(token_url),
                Some(api_url),
            ) => Some(GitHubConfig {
                client_id,
                client_secret,
                allowed_users,
                auth_url,
                token_url,
                api_url,
                jwt_secret,
            }),
            _ => None,
        }
    } else {
        None
    };
    let cloudflare = match (team_domain, audience) {
        (Some(team_domain), Some(audience)) => {
            let team_domain = team_domain.trim_start_matches("https://").trim_end_matches('/').to_owned();
            let certs_url =
                certs_url.or_else(|| Url::parse(&format!("https://{team_domain}/cdn-cgi/access/certs")).ok());
            match certs_url {
                Some(certs_url) => Some(CloudflareConfig { team_domain, audience, certs_url }),
                None => {
                    r.error("CF_ACCESS_TEAM_DOMAIN: not a valid host name");
                    None
                }
            }
        }
        (None, None) => None,
        _ => {
            r.error("CF_ACCESS_TEAM_DOMAIN and CF_ACCESS_AUD must be set together");
            None
        }
    };
    let base_url = base_url.or_else(|| endpoint.and_then(|e| Url::parse(e.as_str()).ok()))?;
    let secure_cookie = secure_cookie.unwrap_or(base_url.scheme() == "https");
    Some(AuthConfig { github, cloudflare, base_url, secure_cookie, session_ttl, allowed_origins })
}

fn default_node_name() -> Option<NodeName> {
    let host = sysinfo::System::host_name().unwrap_or_default();
    NodeName::from_hostname(&host)
}

fn default_max_jobs() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
}

/// A value sent as an HTTP header as it is: visible ASCII, no spaces.
fn header_value(v: &str) -> Result<&str, String> {
    if v.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(v)
    } else {
        Err("must be printable ASCII without spaces (it is sent as an HTTP header)".into())
    }
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

/// A duration such as `30s`, `2m`, `1h30m`, or a plain number of seconds.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(v)
            .map_err(|_| "must be a duration such as 30s, 5m or 1h".to_string())?,
    };
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

/// Reads variables, collecting every problem instead of stopping at the first.
struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<String>,
    names: BTreeSet<&'static str>,
}

impl<'a> Reader<'a> {
    fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Reader { lookup, errors: Vec::new(), names: BTreeSet::new() }
    }

    fn error(&mut self, message: impl Into<String>) {
        self.errors.push(message.into());
    }

    /// The trimmed value, `None` when unset or empty.
    fn string(&mut self, name: &'static str) -> Option<String> {
        self.names.insert(name);
        (self.lookup)(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// Like `string`, also accepting `NAME_FILE` (the file's content, trimmed).
    fn secret_string(&mut self, name: &'static str) -> Option<String> {
        let direct = self.string(name);
        let file_name: &'static str = match name {
            "DATABASE_URL" => "DATABASE_URL_FILE",
            "NODE_API_KEY" => "NODE_API_KEY_FILE",
            "REGISTRATION_TOKEN" => "REGISTRATION_TOKEN_FILE",
            "FLEETDECK_MASTER_KEY" => "FLEETDECK_MASTER_KEY_FILE",
            "JWT_SECRET" => "JWT_SECRET_FILE",
            "GITHUB_CLIENT_SECRET" => "GITHUB_CLIENT_SECRET_FILE",
            "METRICS_TOKEN" => "METRICS_TOKEN_FILE",
            "CF_ACCESS_CLIENT_SECRET" => "CF_ACCESS_CLIENT_SECRET_FILE",
            _ => return direct,
        };
        let from_file = self.string(file_name).and_then(|path| {
            std::fs::read_to_string(&path)
                .map(|s| s.trim().to_owned())
                .map_err(|e| self.error(format!("{file_name}: cannot read {path}: {e}")))
                .ok()
        });
        if direct.is_some() && from_file.is_some() {
            self.error(format!("{name} and {file_name} are both set; keep one"));
        }
        direct.or(from_file)
    }

    fn check<T>(&mut self, name: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|e| self.error(format!("{name}: {e}"))).ok()
    }

    fn parse<T>(
        &mut self,
        name: &'static str,
        default: impl FnOnce() -> T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        match self.string(name) {
            Some(v) => self.check(name, parse(&v)).unwrap_or_else(default),
            None => default(),
        }
    }

    fn parse_secret<T>(
        &mut self,
        name: &'static str,
        default: impl FnOnce() -> T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        match self.secret_string(name) {
            Some(v) => self.check(name, parse(&v)).unwrap_or_else(default),
            None => default(),
        }
    }

    fn optional<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let v = self.string(name)?;
        self.check(name, parse(&v))
    }

    fn optional_secret<T>(
        &mut self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let v = self.secret_string(name)?;
        self.check(name, parse(&v))
    }

    fn duration(&mut self, name: &'static str, default_secs: u64) -> Duration {
        self.parse(name, || Duration::from_secs(default_secs), parse_duration)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_make_a_loopback_sqlite_primary() {
        let c = config(&[]).unwrap();
        assert!(c.node.is_primary);
        assert!(c.listens_on_loopback());
        assert_eq!(c.node.api_endpoint.as_str(), "http://127.0.0.1:8080");
        assert!(matches!(c.database_url, DatabaseUrl::Sqlite(ref p) if p.ends_with("fleetdeck.db")));
        assert_eq!(c.heartbeat_interval, Duration::from_secs(30));
        assert_eq!(c.key_rotation_grace, Duration::from_secs(600));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = config(&[
            ("DATABASE_URL", "mysql://x"),
            ("NODE_IS_PRIMARY", "false"),
            ("HEARTBEAT_INTERVAL", "soon"),
            ("NODE_MAX_JOBS", "many"),
            ("NODE_LABELS", "gpu,bad label"),
        ])
        .unwrap_err();
        let text = err.to_string();
        for needle in
            ["DATABASE_URL", "PRIMARY_NODE_URL", "HEARTBEAT_INTERVAL", "NODE_MAX_JOBS", "NODE_LABELS"]
        {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        assert_eq!(err.0.len(), 5, "{text}");
    }

    #[test]
    fn an_access_service_token_needs_both_halves_printable_and_its_secret_stays_hidden() {
        let secondary = [("NODE_IS_PRIMARY", "false"), ("PRIMARY_NODE_URL", "https://fleet.example.com")];
        let with = |extra: &[(&'static str, &'static str)]| config(&[&secondary[..], extra].concat());
        let c = with(&[("CF_ACCESS_CLIENT_ID", "abc.access"), ("CF_ACCESS_CLIENT_SECRET", "s3cret-value")])
            .unwrap();
        let token = c.node.access_token.clone().unwrap();
        assert_eq!(token.client_id, "abc.access");
        assert!(!format!("{c:?}").contains("s3cret-value"));
        assert!(with(&[]).unwrap().node.access_token.is_none());
        let half = with(&[("CF_ACCESS_CLIENT_ID", "abc.access")]).unwrap_err().to_string();
        assert!(half.contains("CF_ACCESS_CLIENT_ID and CF_ACCESS_CLIENT_SECRET go together"), "{half}");
        let spaced =
            with(&[("CF_ACCESS_CLIENT_ID", "abc access"), ("CF_ACCESS_CLIENT_SECRET", "x")]).unwrap_err();
        assert!(spaced.to_string().contains("CF_ACCESS_CLIENT_ID: must be printable ASCII"), "{spaced}");
    }

    #[test]
    fn secrets_are_redacted_and_read_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "registration-token-from-file\n").unwrap();
        let c = config(&[
            ("REGISTRATION_TOKEN_FILE", file.to_str().unwrap()),
            ("DATABASE_URL", "postgres://u:hunter2@localhost/db"),
        ])
        .unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("registration-token-from-file"), "{debug}");
        let token = c.registration_token.unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&token), "registration-token-from-file");
    }

    #[test]
    fn a_secondary_listening_everywhere_must_say_how_it_is_reached() {
        let secondary = [
            ("NODE_IS_PRIMARY", "false"),
            ("PRIMARY_NODE_URL", "http://primary:8080"),
            ("SERVER_ADDRESS", "0.0.0.0:8080"),
            ("NODE_CONNECT", "inbound"),
        ];
        let err = config(&secondary).unwrap_err();
        assert!(err.to_string().contains("NODE_API_ENDPOINT is required"), "{err}");
        let mut given = secondary.to_vec();
        given.push(("NODE_API_ENDPOINT", "http://10.0.0.7:8080"));
        assert_eq!(config(&given).unwrap().node.api_endpoint.as_str(), "http://10.0.0.7:8080");
        // A primary only gets a warning at start.
        assert!(config(&[("SERVER_ADDRESS", "0.0.0.0:8080")]).unwrap().endpoint_is_unroutable());
    }

    #[test]
    fn node_connect_auto_is_outbound_without_an_endpoint_and_an_outbound_node_listens_only_when_asked() {
        let inbound = [("NODE_IS_PRIMARY", "false"), ("PRIMARY_NODE_URL", "http://primary:8080")];
        let by_default = config(&inbound).unwrap();
        assert_eq!(
            (by_default.node.connect, by_default.listen),
            (Connect::Inbound, true),
            "inbound unless asked"
        );
        let secondary = [
            ("NODE_IS_PRIMARY", "false"),
            ("PRIMARY_NODE_URL", "http://primary:8080"),
            ("NODE_CONNECT", "auto"),
        ];
        let outbound = config(&secondary).unwrap();
        assert_eq!(outbound.node.connect, Connect::Outbound);
        assert!(!outbound.listen, "no port unless asked");
        let mut asked = secondary.to_vec();
        asked.push(("SERVER_ADDRESS", "127.0.0.1:9000"));
        assert!(config(&asked).unwrap().listen);
        let mut inbound = secondary.to_vec();
        inbound.push(("NODE_API_ENDPOINT", "http://10.0.0.7:8080"));
        let inbound = config(&inbound).unwrap();
        assert_eq!((inbound.node.connect, inbound.listen), (Connect::Inbound, true));
        let mut forced = secondary.to_vec();
        forced.extend([("NODE_API_ENDPOINT", "http://10.0.0.7:8080"), ("NODE_CONNECT", "outbound")]);
        assert_eq!(config(&forced).unwrap().node.connect, Connect::Outbound);
        let mut bad = secondary.to_vec();
        bad.push(("NODE_CONNECT", "sideways"));
        assert!(
            config(&bad).unwrap_err().to_string().contains("NODE_CONNECT: must be inbound, outbound or auto")
        );
        // A primary is always reached inbound and always listens.
        let primary = config(&[("NODE_CONNECT", "outbound")]).unwrap();
        assert_eq!((primary.node.connect, primary.listen), (Connect::Inbound, true));
    }

    #[test]
    fn primary_node_url_takes_one_url_or_a_list() {
        let primaries = |value: &str| {
            config(&[("NODE_IS_PRIMARY", "false"), ("PRIMARY_NODE_URL", value)])
                .map(|c| c.node.primary_urls.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        assert_eq!(primaries("http://primary:8080/").unwrap(), ["http://primary:8080"]);
        assert_eq!(
            primaries(" http://10.0.0.1:8080 ,http://10.0.0.2:8080,  https://p3.lan ").unwrap(),
            ["http://10.0.0.1:8080", "http://10.0.0.2:8080", "https://p3.lan"]
        );
        for (bad, says) in [
            ("http://a:1,,http://b:1", "item 2 of the list is empty"),
            ("http://a:1,", "item 2 of the list is empty"),
            ("http://a:1,http://b:1,http://a:1/", "http://a:1/ is listed twice"),
            ("http://a:1,ftp://b", "ftp://b: must use http:// or https://"),
            ("ftp://b", "PRIMARY_NODE_URL: must use http:// or https://"),
        ] {
            let err = primaries(bad).unwrap_err().to_string();
            assert!(err.contains("PRIMARY_NODE_URL: ") && err.contains(says), "{bad:?}: {err}");
        }
        // A primary does not need it.
        assert!(config(&[]).unwrap().node.primary_urls.is_empty());
    }

    #[test]
    fn durations_accept_units_and_seconds() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn env_example_documents_exactly_the_variables_read() {
        let example = include_str!("../../.env.example");
        let documented: BTreeSet<&str> = example
            .lines()
            .map(|l| l.trim_start_matches('#').trim())
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
            .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .collect();
        let mut read = Config::variable_names();
        read.insert("ENV_FILE");
        read.insert("RUST_LOG");
        let missing: Vec<_> = read.difference(&documented).collect();
        let stale: Vec<_> = documented.difference(&read).collect();
        assert!(missing.is_empty(), ".env.example lacks {missing:?}");
        assert!(stale.is_empty(), ".env.example documents unknown {stale:?}");
    }
}
