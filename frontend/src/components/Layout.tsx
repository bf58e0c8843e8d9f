import { useState, type ReactNode } from "react";
import { Link, NavLink, Navigate, Outlet, useLocation } from "react-router";

import { useLogout, useMe } from "../api/queries";
import type { Me } from "../api/types";
import { describeError, isUnauthorized } from "../lib/errors";
import { useTheme, type ThemeChoice } from "../lib/theme";
import { useLiveEvents, type LiveState } from "../live/events";
import { ErrorNotice } from "./ErrorNotice";

interface NavItem {
  to: string;
  label: string;
  icon: ReactNode;
  end?: boolean;
}

// The sections of the app, in order.
const NAV: NavItem[] = [
  { to: "/", label: "Dashboard", icon: <Icon d="M3 13h8V3H3zm10 8h8V11h-8zM3 21h8v-6H3zm10-18v6h8V3z" />, end: true },
  { to: "/nodes", label: "Nodes", icon: <Icon d="M4 5h16v5H4zm0 9h16v5H4zM7 7.5h.01M7 16.5h.01" stroke /> },
  { to: "/jobs", label: "Jobs", icon: <Icon d="M4 5h16v14H4zM7.5 9.5l3 2.5-3 2.5M12.5 15h4" stroke /> },
  {
    to: "/notifications",
    label: "Notifications",
    icon: <Icon d="M6 8a6 6 0 1112 0c0 7 3 9 3 9H3s3-2 3-9zM10.3 21a1.94 1.94 0 003.4 0" stroke />,
  },
  { to: "/audit", label: "Audit log", icon: <Icon d="M6 3h9l4 4v14H6zM9 12h7M9 16h7M9 8h3" stroke /> },
  { to: "/api", label: "API", icon: <Icon d="M8 7l-5 5 5 5M16 7l5 5-5 5M13.5 5l-3 14" stroke /> },
  {
    to: "/settings",
    label: "Settings",
    icon: (
      <Icon
        d="M12 15a3 3 0 100-6 3 3 0 000 6zM19.4 15a1.7 1.7 0 00.3 1.8l.1.1a2 2 0 11-2.8 2.8l-.1-.1a1.7 1.7 0 00-1.8-.3 1.7 1.7 0 00-1 1.5V21a2 2 0 11-4 0v-.1a1.7 1.7 0 00-1.1-1.5 1.7 1.7 0 00-1.8.3l-.1.1a2 2 0 11-2.8-2.8l.1-.1a1.7 1.7 0 00.3-1.8 1.7 1.7 0 00-1.5-1H3a2 2 0 110-4h.1a1.7 1.7 0 001.5-1.1 1.7 1.7 0 00-.3-1.8l-.1-.1a2 2 0 112.8-2.8l.1.1a1.7 1.7 0 001.8.3H9a1.7 1.7 0 001-1.5V3a2 2 0 114 0v.1a1.7 1.7 0 001 1.5 1.7 1.7 0 001.8-.3l.1-.1a2 2 0 112.8 2.8l-.1.1a1.7 1.7 0 00-.3 1.8V9a1.7 1.7 0 001.5 1H21a2 2 0 110 4h-.1a1.7 1.7 0 00-1.5 1z"
        stroke
      />
    ),
  },
];

function Icon({ d, stroke = false }: { d: string; stroke?: boolean }) {
  return (
    <svg
      viewBox="0 0 24 24"
      width="18"
      height="18"
      aria-hidden="true"
      fill={stroke ? "none" : "currentColor"}
      stroke={stroke ? "currentColor" : "none"}
      strokeWidth={1.8}
      strokeLinecap="round"
      strokeLinejoin="round"
    >
      <path d={d} />
    </svg>
  );
}

export function Logo() {
  return (
    <span className="logo">
      <svg viewBox="0 0 32 32" width="26" height="26" aria-hidden="true">
        <rect width="32" height="32" rx="7" fill="var(--accent)" />
        <path d="M8 11h16M8 16h16M8 21h10" stroke="#fff" strokeWidth="3" strokeLinecap="round" />
        <circle cx="23" cy="21" r="2.5" fill="#34d399" />
      </svg>
      <span className="logo-text">Fleetdeck</span>
    </span>
  );
}

/** The signed-in frame: navigation, who is signed in, live-update state, and the page. */
export function Layout() {
  const me = useMe();
  const location = useLocation();
  const [menuOpen, setMenuOpen] = useState(false);
  const live = useLiveEvents(me.isSuccess);

  if (me.isPending) {
    return (
      <div className="boot" aria-busy="true">
        <Logo />
      </div>
    );
  }
  if (me.isError) {
    if (isUnauthorized(me.error)) {
      return <Navigate to="/login" replace state={{ from: location.pathname + location.search }} />;
    }
    return (
      <div className="boot">
        <Logo />
        <ErrorNotice error={me.error} title="Fleetdeck could not start" onRetry={() => void me.refetch()} />
      </div>
    );
  }

  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <aside className={`sidebar ${menuOpen ? "sidebar-open" : ""}`}>
        <div className="sidebar-head">
          <Link to="/" className="brand" aria-label="Fleetdeck home">
            <Logo />
          </Link>
          <button type="button" className="menu-button" aria-expanded={menuOpen} aria-controls="main-nav" onClick={() => setMenuOpen((o) => !o)}>
            <span className="sr-only">Menu</span>
            <Icon d="M4 6h16M4 12h16M4 18h16" stroke />
          </button>
        </div>
        <nav id="main-nav" aria-label="Main" className="nav">
          {NAV.map((item) => (
            <NavLink key={item.to} to={item.to} end={item.end} className="nav-link" onClick={() => setMenuOpen(false)}>
              {item.icon}
              <span>{item.label}</span>
            </NavLink>
          ))}
        </nav>
        <div className="sidebar-foot">
          <LiveIndicator state={live} />
          <ThemeSwitch />
          <Identity me={me.data} />
        </div>
      </aside>
      <div className="content">
        {live === "reconnecting" && (
          <div className="banner" role="status">
            <span className="spinner" aria-hidden="true" /> Live updates interrupted: reconnecting to the primary… What you see may be out of date.
          </div>
        )}
        <main id="main" tabIndex={-1}>
          <Outlet />
        </main>
      </div>
    </div>
  );
}

function LiveIndicator({ state }: { state: LiveState }) {
  const text = state === "live" ? "Live" : state === "connecting" ? "Connecting…" : "Reconnecting…";
  return (
    <div className={`live live-${state}`} title="Status changes appear here as they happen" data-testid="live-state">
      <span className="live-dot" aria-hidden="true" />
      {text}
    </div>
  );
}

function ThemeSwitch() {
  const [theme, setTheme] = useTheme();
  return (
    <label className="theme-switch">
      <span className="sr-only">Theme</span>
      <select value={theme} onChange={(e) => setTheme(e.target.value as ThemeChoice)} aria-label="Theme">
        <option value="system">System theme</option>
        <option value="light">Light</option>
        <option value="dark">Dark</option>
      </select>
    </label>
  );
}

function Identity({ me }: { me: Me }) {
  const logout = useLogout();
  const user = me.user;
  if (me.auth === "off") {
    return (
      <div className="identity" data-testid="auth-indicator">
        <span className="identity-mode">Sign-in off</span>
        <span className="muted small">This primary trusts its network</span>
      </div>
    );
  }
  const name = user?.kind === "user" ? user.login : user?.kind === "token" ? `token ${user.name}` : "anonymous";
  const avatar = user?.kind === "user" ? user.avatar_url : null;
  return (
    <div className="identity" data-testid="auth-indicator">
      <div className="identity-user">
        {avatar ? (
          <img src={avatar} alt="" width={28} height={28} className="avatar" />
        ) : (
          <span className="avatar avatar-empty" aria-hidden="true">
            {name.slice(0, 1).toUpperCase()}
          </span>
        )}
        <div className="identity-text">
          <span className="identity-name" data-testid="user-login">
            {name}
          </span>
          <span className="muted small">{me.auth === "github" ? "GitHub" : "Cloudflare Access"}</span>
        </div>
      </div>
      {me.auth === "github" && (
        <button type="button" className="button button-small button-ghost" disabled={logout.isPending} onClick={() => logout.mutate()}>
          Sign out
        </button>
      )}
      {logout.isError && <p className="field-error">{describeError(logout.error)}</p>}
    </div>
  );
}
