import { Link, Navigate, useSearchParams } from "react-router";

import { useMe } from "../api/queries";
import { ErrorNotice } from "../components/ErrorNotice";
import { Logo } from "../components/Layout";
import { isUnauthorized } from "../lib/errors";
import { usePageTitle } from "../lib/usePageTitle";

/** Why the last sign-in did not work, from the callback's redirect. */
export function loginMessage(params: URLSearchParams): { kind: "error" | "info"; text: string } | null {
  const error = params.get("error");
  if (error === "not_allowed") {
    const login = params.get("login") || "this GitHub account";
    return {
      kind: "error",
      text: `GitHub user ${login} is not allowed to use this Fleetdeck. Ask an administrator to add ${login} to GITHUB_ALLOWED_USERS, or sign in with another GitHub account.`,
    };
  }
  if (error === "denied") {
    return { kind: "error", text: "GitHub sign-in was cancelled or GitHub refused it. Try again, and approve Fleetdeck when GitHub asks." };
  }
  if (error) return { kind: "error", text: "Signing in did not work. Try again." };
  if (params.get("signed_out")) return { kind: "info", text: "You have signed out." };
  return null;
}

export function LoginPage() {
  usePageTitle("Sign in");
  const me = useMe();
  const [params] = useSearchParams();
  const message = loginMessage(params);

  let body;
  if (me.isPending) {
    body = (
      <p className="muted" aria-busy="true">
        Checking how this primary signs people in…
      </p>
    );
  } else if (me.isError && !isUnauthorized(me.error)) {
    body = <ErrorNotice error={me.error} onRetry={() => void me.refetch()} />;
  } else if (me.isSuccess && me.data.auth === "github" && me.data.user) {
    return <Navigate to="/" replace />;
  } else if (me.isSuccess && me.data.auth !== "github") {
    body = (
      <div className="auth-mode" data-testid="auth-upstream">
        <p>
          <strong>{me.data.auth === "cloudflare" ? "Sign-in is handled by Cloudflare Access." : "Sign-in is off on this primary."}</strong>
        </p>
        <p className="muted">
          {me.data.auth === "cloudflare"
            ? `You are signed in upstream${me.data.user?.kind === "user" ? ` as ${me.data.user.login}` : ""}; there is nothing to do here.`
            : "It trusts everyone who can reach it. Keep it on a private network or enable AUTH_ENABLED (GitHub sign-in) or Cloudflare Access."}
        </p>
        <Link className="button button-primary button-block" to="/">
          Open the dashboard
        </Link>
      </div>
    );
  } else {
    body = (
      <>
        <a className="button button-primary button-block button-github" href="/auth/github/login">
          <svg viewBox="0 0 16 16" width="18" height="18" aria-hidden="true" fill="currentColor">
            <path d="M8 0C3.58 0 0 3.58 0 8c0 3.54 2.29 6.53 5.47 7.59.4.07.55-.17.55-.38 0-.19-.01-.82-.01-1.49-2.01.37-2.53-.49-2.69-.94-.09-.23-.48-.94-.82-1.13-.28-.15-.68-.52-.01-.53.63-.01 1.08.58 1.23.82.72 1.21 1.87.87 2.33.66.07-.52.28-.87.51-1.07-1.78-.2-3.64-.89-3.64-3.95 0-.87.31-1.59.82-2.15-.08-.2-.36-1.02.08-2.12 0 0 .67-.21 2.2.82.64-.18 1.32-.27 2-.27.68 0 1.36.09 2 .27 1.53-1.04 2.2-.82 2.2-.82.44 1.1.16 1.92.08 2.12.51.56.82 1.27.82 2.15 0 3.07-1.87 3.75-3.65 3.95.29.25.54.73.54 1.48 0 1.07-.01 1.93-.01 2.2 0 .21.15.46.55.38A8.013 8.013 0 0016 8c0-4.42-3.58-8-8-8z" />
          </svg>
          Continue with GitHub
        </a>
        <p className="muted small center">Only GitHub accounts on this primary's allow-list can sign in.</p>
      </>
    );
  }

  return (
    <div className="login">
      <div className="login-card">
        <Logo />
        <h1 className="login-title">Sign in to your fleet</h1>
        {message && (
          <div
            className={`notice ${message.kind === "error" ? "notice-error" : "notice-info"}`}
            role={message.kind === "error" ? "alert" : "status"}
            data-testid="login-message"
          >
            {message.text}
          </div>
        )}
        {body}
      </div>
    </div>
  );
}
