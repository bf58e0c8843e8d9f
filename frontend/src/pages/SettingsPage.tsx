import { useState, type FormEvent } from "react";

import { useCreateToken, useMe, useRevokeToken, useTokens } from "../api/queries";
import type { ApiToken, IssuedToken } from "../api/types";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { ErrorNotice } from "../components/ErrorNotice";
import { RelativeTime } from "../components/RelativeTime";
import { SecretBlock } from "../components/SecretBlock";
import { describeError } from "../lib/errors";
import { useTheme, type ThemeChoice } from "../lib/theme";
import { usePageTitle } from "../lib/usePageTitle";

export function SettingsPage() {
  usePageTitle("Settings");
  const me = useMe();
  const [theme, setTheme] = useTheme();
  const mode = me.data?.auth;
  return (
    <div className="page">
      <header className="page-head">
        <div>
          <h1>Settings</h1>
          <p className="muted">Sign-in, API tokens and appearance.</p>
        </div>
      </header>

      <section className="card" aria-labelledby="signin-title">
        <h2 id="signin-title">Sign-in</h2>
        {mode === "github" && (
          <p>
            People sign in with GitHub; only the accounts in <code>GITHUB_ALLOWED_USERS</code> get in. Sessions end on sign-out or after{" "}
            <code>SESSION_TTL</code>.
          </p>
        )}
        {mode === "cloudflare" && <p>Cloudflare Access signs people in at the edge; this primary verifies every request's Access token.</p>}
        {mode === "off" && (
          <div className="notice notice-warn">
            Sign-in is off: this primary trusts everyone who can reach it. Enable <code>AUTH_ENABLED</code> (GitHub) or Cloudflare Access (
            <code>CF_ACCESS_TEAM_DOMAIN</code>, <code>CF_ACCESS_AUD</code>) before exposing it beyond a private network.
          </div>
        )}
      </section>

      <Tokens />

      <section className="card" aria-labelledby="appearance-title">
        <h2 id="appearance-title">Appearance</h2>
        <div className="segmented" role="group" aria-label="Theme">
          {(["system", "light", "dark"] as ThemeChoice[]).map((t) => (
            <button key={t} type="button" aria-pressed={theme === t} onClick={() => setTheme(t)}>
              {t === "system" ? "Match system" : t === "light" ? "Light" : "Dark"}
            </button>
          ))}
        </div>
      </section>
    </div>
  );
}

function Tokens() {
  const tokens = useTokens();
  const create = useCreateToken();
  const [name, setName] = useState("");
  const [days, setDays] = useState("90");
  const [issued, setIssued] = useState<IssuedToken | null>(null);
  const [revoking, setRevoking] = useState<ApiToken | null>(null);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(
      { name: name.trim(), expires_in_days: days ? Number(days) : undefined },
      {
        onSuccess: (t) => {
          setIssued(t);
          setName("");
        },
      },
    );
  };

  return (
    <section className="card" aria-labelledby="tokens-title">
      <h2 id="tokens-title">API tokens</h2>
      <p className="muted">
        For scripts and the CLI: send <code>Authorization: Bearer &lt;token&gt;</code>. Tokens act with full rights; revoke the ones you no longer use.
      </p>

      {issued && (
        <div className="issued" data-testid="token-issued">
          <div className="notice notice-warn" role="status">
            <strong>Copy token “{issued.token.name}” now.</strong> It is shown this once; Fleetdeck keeps only a hash.
          </div>
          <SecretBlock text={issued.secret} label="token" testId="token-secret" />
          <pre className="code small">{`curl -H "Authorization: Bearer ${issued.secret}" ${window.location.origin}/api/nodes`}</pre>
          <button type="button" className="button button-small" onClick={() => setIssued(null)}>
            I have copied it
          </button>
        </div>
      )}

      <form className="inline-form" onSubmit={submit}>
        <label className="field field-grow">
          <span className="field-label">Name</span>
          <input value={name} onChange={(e) => setName(e.target.value)} placeholder="deploy script" required maxLength={100} />
        </label>
        <label className="field">
          <span className="field-label">Expires</span>
          <select value={days} onChange={(e) => setDays(e.target.value)}>
            <option value="30">in 30 days</option>
            <option value="90">in 90 days</option>
            <option value="365">in a year</option>
            <option value="">never</option>
          </select>
        </label>
        <button type="submit" className="button button-primary" disabled={create.isPending || !name.trim()}>
          {create.isPending ? "Creating…" : "Create token"}
        </button>
      </form>
      {create.isError && (
        <div className="notice notice-error" role="alert">
          {describeError(create.error)}
        </div>
      )}

      {tokens.isError ? (
        <ErrorNotice error={tokens.error} title="Could not load the tokens" />
      ) : (
        <table className="data-table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col" className="hide-narrow">
                Created
              </th>
              <th scope="col">Last used</th>
              <th scope="col" className="hide-narrow">
                Expires
              </th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody data-testid="token-rows">
            {tokens.isPending ? (
              <tr>
                <td colSpan={5} className="muted">
                  Loading…
                </td>
              </tr>
            ) : tokens.data.items.length === 0 ? (
              <tr>
                <td colSpan={5} className="muted">
                  No API tokens yet.
                </td>
              </tr>
            ) : (
              tokens.data.items.map((t) => (
                <tr key={t.id} className={t.revoked_at ? "row-dim" : ""}>
                  <td>
                    <strong>{t.name}</strong>
                    <div className="muted small">by {t.created_by}</div>
                  </td>
                  <td className="hide-narrow">
                    <RelativeTime at={t.created_at} />
                  </td>
                  <td>
                    <RelativeTime at={t.last_used_at} />
                  </td>
                  <td className="hide-narrow">{t.expires_at ? <RelativeTime at={t.expires_at} upcoming /> : "never"}</td>
                  <td className="right">
                    {t.revoked_at ? (
                      <span className="pill">revoked</span>
                    ) : (
                      <button type="button" className="button button-small button-danger-ghost" onClick={() => setRevoking(t)}>
                        Revoke
                      </button>
                    )}
                  </td>
                </tr>
              ))
            )}
          </tbody>
        </table>
      )}
      {revoking && <RevokeDialog token={revoking} onClose={() => setRevoking(null)} />}
    </section>
  );
}

function RevokeDialog({ token, onClose }: { token: ApiToken; onClose: () => void }) {
  const revoke = useRevokeToken();
  return (
    <ConfirmDialog
      title={`Revoke token “${token.name}”?`}
      confirm="Revoke"
      action={revoke}
      onConfirm={() => revoke.mutate(token.id, { onSuccess: onClose })}
      onClose={onClose}
    >
      <p>Scripts using it are refused from now on. This cannot be undone.</p>
    </ConfirmDialog>
  );
}
