import { MutationCache, QueryCache, QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { lazy, Suspense, type ReactNode } from "react";
import { BrowserRouter, Route, Routes } from "react-router";

import { ApiError } from "./api/client";
import { keys } from "./api/queries";
import { Layout } from "./components/Layout";
import { isUnauthorized } from "./lib/errors";
import { DashboardPage } from "./pages/DashboardPage";
import { LoginPage } from "./pages/LoginPage";
import { NodesPage } from "./pages/NodesPage";

// The pages not needed for a first look load on demand, keeping the first download small.
const AddNodePage = lazy(() => import("./pages/AddNodePage").then((m) => ({ default: m.AddNodePage })));
const NodeDetailPage = lazy(() => import("./pages/NodeDetailPage").then((m) => ({ default: m.NodeDetailPage })));
const JobsPage = lazy(() => import("./pages/JobsPage").then((m) => ({ default: m.JobsPage })));
const NewJobPage = lazy(() => import("./pages/NewJobPage").then((m) => ({ default: m.NewJobPage })));
const JobDetailPage = lazy(() => import("./pages/JobDetailPage").then((m) => ({ default: m.JobDetailPage })));
const RunsPage = lazy(() => import("./pages/RunsPage").then((m) => ({ default: m.RunsPage })));
const RunDetailPage = lazy(() => import("./pages/RunDetailPage").then((m) => ({ default: m.RunDetailPage })));
const NotificationsPage = lazy(() => import("./pages/NotificationsPage").then((m) => ({ default: m.NotificationsPage })));
const ChannelFormPage = lazy(() => import("./pages/ChannelFormPage").then((m) => ({ default: m.ChannelFormPage })));
const RuleFormPage = lazy(() => import("./pages/RuleFormPage").then((m) => ({ default: m.RuleFormPage })));
const AuditPage = lazy(() => import("./pages/AuditPage").then((m) => ({ default: m.AuditPage })));
const SettingsPage = lazy(() => import("./pages/SettingsPage").then((m) => ({ default: m.SettingsPage })));
const ApiPage = lazy(() => import("./pages/ApiPage").then((m) => ({ default: m.ApiPage })));
const NotFoundPage = lazy(() => import("./pages/NotFoundPage").then((m) => ({ default: m.NotFoundPage })));

export function createQueryClient(): QueryClient {
  // A 401 anywhere means the session ended: re-ask who we are, and the layout sends the
  // user to the sign-in page.
  const onError = (error: unknown) => {
    if (isUnauthorized(error)) void client.invalidateQueries({ queryKey: keys.me });
  };
  const client: QueryClient = new QueryClient({
    queryCache: new QueryCache({
      onError: (error, query) => {
        if (query.queryKey[0] !== keys.me[0]) onError(error);
      },
    }),
    mutationCache: new MutationCache({ onError }),
    defaultOptions: {
      queries: {
        staleTime: 10_000,
        refetchOnWindowFocus: true,
        // A refused request will be refused again; only failures to reach the server and
        // server errors are worth retrying.
        retry: (failures, error) => failures < 2 && !(error instanceof ApiError && error.status >= 400 && error.status < 500),
      },
    },
  });
  return client;
}

function Lazy({ children }: { children: ReactNode }) {
  return (
    <Suspense
      fallback={
        <div className="page muted" aria-busy="true">
          Loading…
        </div>
      }
    >
      {children}
    </Suspense>
  );
}

export function AppRoutes() {
  return (
    <Routes>
      <Route path="/login" element={<LoginPage />} />
      <Route element={<Layout />}>
        <Route index element={<DashboardPage />} />
        <Route path="nodes" element={<NodesPage />} />
        <Route
          path="nodes/new"
          element={
            <Lazy>
              <AddNodePage />
            </Lazy>
          }
        />
        <Route
          path="nodes/:id"
          element={
            <Lazy>
              <NodeDetailPage />
            </Lazy>
          }
        />
        <Route
          path="jobs"
          element={
            <Lazy>
              <JobsPage />
            </Lazy>
          }
        />
        <Route
          path="jobs/new"
          element={
            <Lazy>
              <NewJobPage />
            </Lazy>
          }
        />
        <Route
          path="jobs/:id"
          element={
            <Lazy>
              <JobDetailPage />
            </Lazy>
          }
        />
        <Route
          path="runs"
          element={
            <Lazy>
              <RunsPage />
            </Lazy>
          }
        />
        <Route
          path="runs/:id"
          element={
            <Lazy>
              <RunDetailPage />
            </Lazy>
          }
        />
        <Route
          path="notifications"
          element={
            <Lazy>
              <NotificationsPage />
            </Lazy>
          }
        />
        <Route
          path="notifications/channels/new"
          element={
            <Lazy>
              <ChannelFormPage />
            </Lazy>
          }
        />
        <Route
          path="notifications/channels/:id/edit"
          element={
            <Lazy>
              <ChannelFormPage />
            </Lazy>
          }
        />
        <Route
          path="notifications/rules/new"
          element={
            <Lazy>
              <RuleFormPage />
            </Lazy>
          }
        />
        <Route
          path="notifications/rules/:id/edit"
          element={
            <Lazy>
              <RuleFormPage />
            </Lazy>
          }
        />
        <Route
          path="audit"
          element={
            <Lazy>
              <AuditPage />
            </Lazy>
          }
        />
        <Route
          path="settings"
          element={
            <Lazy>
              <SettingsPage />
            </Lazy>
          }
        />
        <Route
          path="api"
          element={
            <Lazy>
              <ApiPage />
            </Lazy>
          }
        />
        <Route
          path="*"
          element={
            <Lazy>
              <NotFoundPage />
            </Lazy>
          }
        />
      </Route>
    </Routes>
  );
}

export function App({ client }: { client: QueryClient }) {
  return (
    <QueryClientProvider client={client}>
      <BrowserRouter>
        <AppRoutes />
      </BrowserRouter>
    </QueryClientProvider>
  );
}
