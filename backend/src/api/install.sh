#!/bin/sh
# Fleetdeck node installer, served by the primary at @FLEETDECK_URL@ (Fleetdeck @FLEETDECK_VERSION@).
#
#   curl -fsSL @FLEETDECK_URL@/install.sh | sh -s -- --join <token>
#
# Downloads this primary's Fleetdeck binary from the primary itself (its SHA-256 checked),
# installs it, writes the node's configuration (mode 0600) and installs and starts a systemd
# unit running as its own user. Run again to upgrade: the binary is replaced and the node keeps
# its configuration and identity. `sh install.sh --help` lists the options.
set -eu

URL='@FLEETDECK_URL@'
JOIN=''
PREFIX=''
SERVICE=1
BINARY=''
LISTEN=''
ENDPOINT=''
SERVICE_USER=''

say() { printf 'fleetdeck-install: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

usage() {
	cat <<EOF
Installs a Fleetdeck node and joins it to the primary at $URL.

  curl -fsSL $URL/install.sh | sh -s -- --join <token> [options]

Options:
  --join TOKEN      the join token (created on the primary: Nodes -> Add node); needed
                    for a new node, not for an upgrade
  --url URL         the primary's URL (default: $URL)
  --prefix DIR      install under DIR: DIR/bin, DIR/etc/fleetdeck, DIR/var/lib/fleetdeck
                    (default: /usr/local/bin, /etc/fleetdeck, /var/lib/fleetdeck)
  --no-service      do not install or start the systemd unit (it is written beside the
                    configuration, for reference)
  --binary PATH     install this Fleetdeck binary instead of downloading the primary's
                    (for a machine of another architecture)
  --endpoint URL    the URL the primary reaches this node at. Without it the node
                    connects outbound: it dials the primary and keeps that connection,
                    so it needs no open port (behind NAT or a firewall)
  --listen ADDR     where the node's API listens (default with --endpoint: 0.0.0.0 on the
                    endpoint's port; without, it does not listen)
  --user NAME       the user the service runs as, created if missing (default: the one
                    an earlier install chose, else fleetdeck);
                    jobs run as this user
  -h, --help        this help

Behind Cloudflare Access, set CF_ACCESS_CLIENT_ID and CF_ACCESS_CLIENT_SECRET (a service
token) in the environment: they are sent with every request and kept in the configuration.
EOF
}

# Requests to the primary carry a Cloudflare Access service token when one is given (from
# a file of headers, so that the secret never shows in the process list).
fetch() {
	if [ -n "${ACCESS_HEADERS:-}" ]; then
		curl -sS --proto '=http,https' -H "@$ACCESS_HEADERS" "$@"
	else
		curl -sS --proto '=http,https' "$@"
	fi
}

sha256_of() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$1" | cut -d' ' -f1
	elif command -v shasum >/dev/null 2>&1; then
		shasum -a 256 "$1" | cut -d' ' -f1
	else
		openssl dgst -sha256 "$1" | sed 's/^.*= *//'
	fi
}

parse_args() {
	while [ $# -gt 0 ]; do
		case "$1" in
		--join) [ $# -ge 2 ] || die "--join needs a token"; JOIN=$2; shift 2 ;;
		--url) [ $# -ge 2 ] || die "--url needs a URL"; URL=$2; shift 2 ;;
		--prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; PREFIX=$2; shift 2 ;;
		--no-service) SERVICE=0; shift ;;
		--binary) [ $# -ge 2 ] || die "--binary needs a path"; BINARY=$2; shift 2 ;;
		--listen) [ $# -ge 2 ] || die "--listen needs host:port"; LISTEN=$2; shift 2 ;;
		--endpoint) [ $# -ge 2 ] || die "--endpoint needs a URL"; ENDPOINT=$2; shift 2 ;;
		--user) [ $# -ge 2 ] || die "--user needs a name"; SERVICE_USER=$2; shift 2 ;;
		-h | --help) usage; exit 0 ;;
		*) die "unknown option: $1 (see --help)" ;;
		esac
	done
}

# Everything runs from here, once the whole script has arrived (a download cut short runs
# nothing).
main() {
	URL=${URL%/}
	case "$URL" in
	http://* | https://*) ;;
	*) die "--url must start with http:// or https:// (got: $URL)" ;;
	esac
	case "$JOIN" in
	*[!A-Za-z0-9_-]*) die "--join takes a join token (fdj_...), as shown on the primary" ;;
	'' | fdj_*) ;;
	*) die "--join takes a join token (fdj_...), as shown on the primary" ;;
	esac
	case "$SERVICE_USER" in
	*[!a-z0-9_-]*) die "--user must be a plain user name (a-z, 0-9, _ and -)" ;;
	esac
	case "$LISTEN" in
	'' | *:*) ;;
	*) die "--listen must be host:port (got: $LISTEN)" ;;
	esac
	case "$ENDPOINT" in
	'') ;;
	http://* | https://*)
		if [ -z "$LISTEN" ]; then
			PORT=$(printf '%s\n' "$ENDPOINT" | sed -n 's#^[a-z]*://[^/]*:\([0-9][0-9]*\).*#\1#p')
			LISTEN="0.0.0.0:${PORT:-8080}"
		fi
		;;
	*) die "--endpoint must start with http:// or https:// (got: $ENDPOINT)" ;;
	esac

	if [ -n "$PREFIX" ]; then
		mkdir -p "$PREFIX" || die "cannot create $PREFIX"
		PREFIX=$(cd "$PREFIX" && pwd)
		BIN_DIR=$PREFIX/bin
		CONF_DIR=$PREFIX/etc/fleetdeck
		DATA_DIR=$PREFIX/var/lib/fleetdeck
	else
		BIN_DIR=/usr/local/bin
		CONF_DIR=/etc/fleetdeck
		DATA_DIR=/var/lib/fleetdeck
	fi
	CONF=$CONF_DIR/fleetdeck.env
	UNIT_NAME=fleetdeck.service
	if [ -z "$SERVICE_USER" ]; then
		# An upgrade keeps the user an earlier install chose (it owns the node's files).
		for unit in "/etc/systemd/system/$UNIT_NAME" "$CONF_DIR/$UNIT_NAME"; do
			[ -z "$SERVICE_USER" ] && [ -f "$unit" ] && SERVICE_USER=$(sed -n 's/^User=//p' "$unit" | head -n 1)
		done
		SERVICE_USER=${SERVICE_USER:-fleetdeck}
	fi

	IS_ROOT=0
	[ "$(id -u)" = 0 ] && IS_ROOT=1
	if [ "$IS_ROOT" = 0 ]; then
		[ -n "$PREFIX" ] || die "run as root (sudo sh -s -- ...), or install under a directory of yours with --prefix DIR --no-service"
		[ "$SERVICE" = 0 ] || die "installing the systemd unit needs root: run as root, or add --no-service"
	fi
	if [ "$SERVICE" = 1 ] && ! command -v systemctl >/dev/null 2>&1; then
		die "systemd (systemctl) was not found: add --no-service and start $BIN_DIR/fleetdeck serve with ENV_FILE=$CONF yourself"
	fi
	if [ -f "$CONF" ]; then
		UPGRADE=1
		say "$CONF exists: upgrading in place (the node keeps its configuration and identity)"
	else
		UPGRADE=0
		[ -n "$JOIN" ] || die "--join TOKEN is needed for a new node: create one on the primary (Nodes -> Add node)"
	fi
	command -v curl >/dev/null 2>&1 || die "curl is needed"

	mkdir -p "$BIN_DIR" || die "cannot create $BIN_DIR"
	# The new binary is put beside the old one and moved over it only once it is whole and checked.
	TMP=$(mktemp "$BIN_DIR/.fleetdeck.XXXXXX") || die "cannot write in $BIN_DIR"
	HEADERS=$(mktemp) || die "cannot create a temporary file"
	ACCESS_HEADERS=''
	trap 'rm -f "$TMP" "$HEADERS" ${ACCESS_HEADERS:+"$ACCESS_HEADERS"}' EXIT
	trap 'exit 130' INT TERM
	if [ -n "${CF_ACCESS_CLIENT_ID:-}" ] && [ -n "${CF_ACCESS_CLIENT_SECRET:-}" ]; then
		ACCESS_HEADERS=$(mktemp) || die "cannot create a temporary file"
		printf 'CF-Access-Client-Id: %s\nCF-Access-Client-Secret: %s\n' "$CF_ACCESS_CLIENT_ID" "$CF_ACCESS_CLIENT_SECRET" >"$ACCESS_HEADERS"
	fi

	if [ -n "$BINARY" ]; then
		[ -f "$BINARY" ] || die "--binary $BINARY: no such file"
		cp "$BINARY" "$TMP" || die "cannot copy $BINARY"
		say "installing $BINARY"
	else
		OS=$(uname -s | tr 'A-Z' 'a-z')
		case "$(uname -m)" in
		x86_64 | amd64) ARCH=x86_64 ;;
		aarch64 | arm64) ARCH=aarch64 ;;
		armv7* | armv6* | arm) ARCH=arm ;;
		riscv64) ARCH=riscv64 ;;
		*) ARCH=$(uname -m) ;;
		esac
		say "downloading Fleetdeck for $OS/$ARCH from $URL"
		STATUS=$(fetch -L -D "$HEADERS" -o "$TMP" -w '%{http_code}' "$URL/api/download/fleetdeck?os=$OS&arch=$ARCH") ||
			die "the download from $URL failed or was cut off; nothing was installed (run the command again)"
		if [ "$STATUS" != 200 ]; then
			MESSAGE=$(sed -n 's/.*"message" *: *"\([^"]*\)".*/\1/p' "$TMP" | head -n 1)
			die "the primary answered HTTP $STATUS: ${MESSAGE:-$(head -c 300 "$TMP")}"
		fi
		EXPECTED=$(tr -d '\r' <"$HEADERS" | sed -n 's/^[Xx]-[Cc]hecksum-[Ss]ha256: *\([0-9a-f]*\).*/\1/p' | tail -n 1)
		[ -n "$EXPECTED" ] || die "the primary sent no X-Checksum-Sha256 header; nothing was installed"
		ACTUAL=$(sha256_of "$TMP")
		[ "$ACTUAL" = "$EXPECTED" ] ||
			die "the download is corrupt (SHA-256 $ACTUAL, the primary says $EXPECTED); nothing was installed"
	fi
	chmod 0755 "$TMP"
	"$TMP" --version >/dev/null 2>&1 || die "the binary does not run on this machine ($(uname -m)): get a build for it and pass --binary PATH"

	if [ "$SERVICE" = 1 ] && [ "$SERVICE_USER" != root ] && ! id "$SERVICE_USER" >/dev/null 2>&1; then
		if command -v useradd >/dev/null 2>&1; then
			useradd --system --home-dir "$DATA_DIR" --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER" ||
				die "cannot create the user $SERVICE_USER"
		else
			adduser -S -D -H -h "$DATA_DIR" -s /sbin/nologin "$SERVICE_USER" || die "cannot create the user $SERVICE_USER"
		fi
		say "created the system user $SERVICE_USER"
	fi
	# The service's user owns what it writes; without a service, whoever runs this does.
	OWNER=$(id -un)
	[ "$SERVICE" = 1 ] && OWNER=$SERVICE_USER

	mkdir -p "$CONF_DIR" "$DATA_DIR" || die "cannot create $CONF_DIR or $DATA_DIR"
	chmod 0700 "$DATA_DIR"
	chown "$OWNER" "$DATA_DIR" 2>/dev/null || true
	if [ "$UPGRADE" = 0 ]; then
		(
			umask 077
			{
				echo "# Fleetdeck node, written by $URL/install.sh. Variables: docs/CONFIGURATION.md."
				echo "NODE_IS_PRIMARY=false"
				echo "PRIMARY_NODE_URL=$URL"
				echo "JOIN_TOKEN=$JOIN"
				echo "DATA_DIR=$DATA_DIR"
				[ -z "$LISTEN" ] || echo "SERVER_ADDRESS=$LISTEN"
				if [ -n "$ENDPOINT" ]; then
					echo "NODE_API_ENDPOINT=$ENDPOINT"
				else
					echo "NODE_CONNECT=outbound"
				fi
				if [ -n "${CF_ACCESS_CLIENT_ID:-}" ] && [ -n "${CF_ACCESS_CLIENT_SECRET:-}" ]; then
					echo "CF_ACCESS_CLIENT_ID=$CF_ACCESS_CLIENT_ID"
					echo "CF_ACCESS_CLIENT_SECRET=$CF_ACCESS_CLIENT_SECRET"
				fi
			} >"$CONF.tmp"
		) || die "cannot write $CONF"
		mv "$CONF.tmp" "$CONF"
		say "wrote $CONF"
	elif [ -n "$JOIN" ]; then
		# A new token for a node that keeps its identity (say, one removed on the primary).
		(
			umask 077
			{
				grep -v '^JOIN_TOKEN=' "$CONF" || true
				echo "JOIN_TOKEN=$JOIN"
			} >"$CONF.tmp"
		) || die "cannot update $CONF"
		mv "$CONF.tmp" "$CONF"
		rm -f "$DATA_DIR/joined"
	fi
	chmod 0600 "$CONF"
	chown "$OWNER" "$CONF" 2>/dev/null || true

	mv -f "$TMP" "$BIN_DIR/fleetdeck" || die "cannot install $BIN_DIR/fleetdeck"
	say "installed $BIN_DIR/fleetdeck ($("$BIN_DIR/fleetdeck" --version 2>/dev/null || echo unknown version))"

	UNIT=$(
		cat <<EOF
[Unit]
Description=Fleetdeck node (joined to $URL)
Documentation=$URL/api-reference
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=$SERVICE_USER
Environment=ENV_FILE=$CONF
ExecStart=$BIN_DIR/fleetdeck serve
Restart=on-failure
RestartSec=5
# Running jobs get JOB_DRAIN_TIMEOUT (60 s) to finish on a stop.
TimeoutStopSec=90
NoNewPrivileges=true
ProtectSystem=full
ProtectHome=read-only
PrivateTmp=true
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectControlGroups=true
RestrictSUIDSGID=true
LockPersonality=true
ReadWritePaths=$DATA_DIR

[Install]
WantedBy=multi-user.target
EOF
	)
	if [ "$SERVICE" = 1 ]; then
		printf '%s\n' "$UNIT" >"/etc/systemd/system/$UNIT_NAME"
		systemctl daemon-reload
		systemctl enable "$UNIT_NAME" >/dev/null 2>&1 || die "systemctl enable $UNIT_NAME failed"
		systemctl restart "$UNIT_NAME" || die "systemctl restart $UNIT_NAME failed: see journalctl -u fleetdeck"
		say "started $UNIT_NAME: follow it with journalctl -u fleetdeck -f"
	else
		printf '%s\n' "$UNIT" >"$CONF_DIR/$UNIT_NAME"
		say "not installing the service (--no-service); its unit is in $CONF_DIR/$UNIT_NAME"
		say "start the node with: ENV_FILE=$CONF $BIN_DIR/fleetdeck serve"
	fi
	say "done: the node appears on $URL within seconds of starting"
}

parse_args "$@"
main
