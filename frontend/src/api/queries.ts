// Queries and mutations over the API, with the cache keys live events update.
import { keepPreviousData, useInfiniteQuery, useMutation, useQuery, useQueryClient, type InfiniteData } from "@tanstack/react-query";

import { api, query } from "./client";
import type {
  AlertChannelList,
  AlertRuleList,
  AuditAction,
  AuditEntry,
  Channel,
  ChannelInput,
  CheckResult,
  ClusterView,
  CreateJoinToken,
  CreateNode,
  CreateToken,
  Delivery,
  DeliveryStatus,
  FiredAlertList,
  FleetStats,
  IssuedJoinToken,
  IssuedKeyResponse,
  IssuedToken,
  Job,
  JobState,
  OutputGroup,
  Run,
  RunDetail,
  SubmitRun,
  JoinTokenList,
  Me,
  Node,
  NodeStatus,
  Page,
  Rule,
  RuleInput,
  StatsHistory,
  StatusChange,
  SubmitJob,
  TestResult,
  TokenList,
  UpdateNode,
} from "./types";

export const keys = {
  me: ["me"] as const,
  nodes: ["nodes"] as const,
  joinTokens: ["join-tokens"] as const,
  nodeList: (filter: NodeFilter) => ["nodes", "list", filter] as const,
  node: (id: string) => ["nodes", "one", id] as const,
  /** A node's name alone (`null`: no such node), for pages that show node IDs. */
  nodeName: (id: string) => ["nodes", "name", id] as const,
  nodeHistory: (id: string) => ["node-history", id] as const,
  nodeStats: (id: string, range: string) => ["node-stats", id, range] as const,
  fleetStats: ["fleet-stats"] as const,
  fleetHistory: ["fleet-history"] as const,
  cluster: ["cluster"] as const,
  tokens: ["tokens"] as const,
  audit: (filter: AuditFilter) => ["audit", filter] as const,
  jobs: ["jobs"] as const,
  jobList: (filter: JobFilter) => ["jobs", "list", filter] as const,
  job: (id: string) => ["jobs", "one", id] as const,
  /** Not under `jobs`: a run of thousands of nodes would be refetched at each of their job
   * events. Runs are read every few seconds while they run instead. */
  runs: ["runs"] as const,
  runList: ["runs", "list"] as const,
  run: (id: string) => ["runs", "one", id] as const,
  /** `progress` changes as the run's jobs end: the output is read again then, not at each event. */
  runOutput: (id: string, progress: string) => ["runs", "output", id, progress] as const,
  /** Everything about alerts: a change to a channel or rule refetches all of it. */
  alerts: ["alerts"] as const,
  alertChannels: ["alerts", "channels"] as const,
  alertChannel: (id: string) => ["alerts", "channel", id] as const,
  alertRules: ["alerts", "rules"] as const,
  alertRule: (id: string) => ["alerts", "rule", id] as const,
  alertDeliveries: (filter: DeliveryFilter) => ["alerts", "deliveries", filter] as const,
  nodeAlerts: (id: string) => ["alerts", "node", id] as const,
};

export function useMe() {
  return useQuery({ queryKey: keys.me, queryFn: ({ signal }) => api.get<Me>("/api/me", { signal }), staleTime: 60_000 });
}

export interface NodeFilter {
  q: string;
  status: NodeStatus | "";
  label: string;
}

/** The API's largest page: ten requests bring 10,000 nodes. */
export const NODE_PAGE_SIZE = 1000;
/** Enough to fill a tall screen, small enough to arrive at once. */
export const FIRST_PAGE_SIZE = 200;

/**
 * Every node matching `filter`, fetched page after page (the first page renders at once,
 * the rest stream in behind it).
 */
export function useNodeList(filter: NodeFilter) {
  const result = useInfiniteQuery({
    queryKey: keys.nodeList(filter),
    queryFn: ({ pageParam, signal }) =>
      api.get<Page<Node>>(
        "/api/nodes" +
          query({
            q: filter.q.trim(),
            status: filter.status,
            label: filter.label.trim().toLowerCase(),
            limit: pageParam === null ? FIRST_PAGE_SIZE : NODE_PAGE_SIZE,
            cursor: pageParam,
          }),
        { signal },
      ),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor,
    placeholderData: keepPreviousData,
    // Status changes come as events; what heartbeats bring (last seen, version) does not:
    // read again on the heartbeat interval's default, so a healthy node never looks stale.
    refetchInterval: 30_000,
  });
  return result;
}

export function allNodes(data: InfiniteData<Page<Node>> | undefined): Node[] {
  if (!data) return [];
  return data.pages.length === 1 ? (data.pages[0]?.items ?? []) : data.pages.flatMap((p) => p.items);
}

export function useFleetStats() {
  return useQuery({
    queryKey: keys.fleetStats,
    queryFn: ({ signal }) => api.get<FleetStats>("/api/system/stats", { signal }),
    refetchInterval: 30_000,
  });
}

export function useNode(id: string, { enabled = true }: { enabled?: boolean } = {}) {
  return useQuery({
    queryKey: keys.node(id),
    queryFn: ({ signal }) => api.get<Node>(`/api/nodes/${encodeURIComponent(id)}`, { signal }),
    // What heartbeats bring (last seen, version, job slots) changes without an event: a
    // node's page reads it again well within a heartbeat interval.
    refetchInterval: 10_000,
    enabled: enabled && id !== "",
  });
}

export function useNodeHistory(id: string) {
  return useInfiniteQuery({
    queryKey: keys.nodeHistory(id),
    queryFn: ({ pageParam, signal }) =>
      api.get<Page<StatusChange>>(`/api/nodes/${encodeURIComponent(id)}/history` + query({ limit: 20, cursor: pageParam }), { signal }),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor,
  });
}

export const STATS_RANGES = { "1h": 3600, "24h": 86400, "7d": 7 * 86400, "14d": 14 * 86400 } as const;
export type StatsRange = keyof typeof STATS_RANGES;

export function useNodeStatsHistory(id: string, range: StatsRange) {
  return useQuery({
    queryKey: keys.nodeStats(id, range),
    queryFn: ({ signal }) => {
      const since = new Date(Date.now() - STATS_RANGES[range] * 1000).toISOString();
      return api.get<StatsHistory>(`/api/nodes/${encodeURIComponent(id)}/stats` + query({ since }), { signal });
    },
    refetchInterval: 60_000,
    placeholderData: keepPreviousData,
  });
}

export function useFleetHistory(limit = 12) {
  return useQuery({
    queryKey: [...keys.fleetHistory, limit],
    queryFn: ({ signal }) => api.get<Page<StatusChange>>("/api/history" + query({ limit }), { signal }),
    refetchInterval: 60_000,
  });
}

/** The primaries sharing this database and which one leads (`GET /api/cluster`). */
export function useCluster() {
  return useQuery({
    queryKey: keys.cluster,
    queryFn: ({ signal }) => api.get<ClusterView>("/api/cluster", { signal }),
    refetchInterval: 15_000,
  });
}

export function useTokens() {
  return useQuery({ queryKey: keys.tokens, queryFn: ({ signal }) => api.get<TokenList>("/api/tokens", { signal }) });
}

export interface AuditFilter {
  actor: string;
  action: AuditAction | "";
  target: string;
}

export function useAudit(filter: AuditFilter) {
  return useInfiniteQuery({
    queryKey: keys.audit(filter),
    queryFn: ({ pageParam, signal }) =>
      api.get<Page<AuditEntry>>(
        "/api/audit" + query({ actor: filter.actor.trim(), action: filter.action, target: filter.target.trim(), limit: 50, cursor: pageParam }),
        { signal },
      ),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor,
    placeholderData: keepPreviousData,
  });
}

export interface JobFilter {
  status: JobState | "";
  node: string;
  label: string;
  q: string;
}

export const JOB_PAGE_SIZE = 50;

/** Jobs matching `filter`, newest first, a page at a time ("Show older jobs"). */
export function useJobList(filter: JobFilter, pageSize = JOB_PAGE_SIZE) {
  return useInfiniteQuery({
    queryKey: [...keys.jobList(filter), pageSize],
    queryFn: ({ pageParam, signal }) =>
      api.get<Page<Job>>(
        "/api/jobs" +
          query({
            status: filter.status,
            node: filter.node,
            label: filter.label.trim().toLowerCase(),
            q: filter.q.trim(),
            limit: pageSize,
            cursor: pageParam,
          }),
        { signal },
      ),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor,
    placeholderData: keepPreviousData,
    refetchInterval: 60_000,
  });
}

export function useJob(id: string) {
  return useQuery({
    queryKey: keys.job(id),
    queryFn: ({ signal }) => api.get<Job>(`/api/jobs/${encodeURIComponent(id)}`, { signal }),
    // Live events keep it current; this is the safety net.
    refetchInterval: (q) => (q.state.data && isFinalJobState(q.state.data.status) ? false : 15_000),
  });
}

export const FINAL_JOB_STATES: readonly JobState[] = ["succeeded", "failed", "timed_out", "cancelled", "lost"];

export function isFinalJobState(status: JobState): boolean {
  return FINAL_JOB_STATES.includes(status);
}

export function useSubmitJob() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: SubmitJob) => api.post<Job>("/api/jobs", body),
    onSuccess: (job) => {
      // The job as it was queued, to show at once; but it may have been dispatched and
      // started before this answer arrived (those events found nothing to patch yet), so
      // its page fetches it again.
      client.setQueryData(keys.job(job.id), job);
      void client.invalidateQueries({ queryKey: keys.job(job.id) });
      void client.invalidateQueries({ queryKey: [...keys.jobs, "list"] });
    },
  });
}

export function useCancelJob(id: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: () => api.post<Job>(`/api/jobs/${encodeURIComponent(id)}/cancel`),
    onSuccess: (job) => {
      client.setQueryData(keys.job(id), job);
      void client.invalidateQueries({ queryKey: keys.jobs });
    },
  });
}

/** How often a running run is read again (its page and the list). */
export const RUN_REFRESH_MS = 2_000;

export function useRunList() {
  return useInfiniteQuery({
    queryKey: keys.runList,
    queryFn: ({ pageParam, signal }) => api.get<Page<Run>>("/api/runs" + query({ limit: 50, cursor: pageParam }), { signal }),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.next_cursor ?? undefined,
    refetchInterval: (q) => (q.state.data?.pages.some((p) => p.items.some((r) => r.status === "running")) ? RUN_REFRESH_MS : 30_000),
  });
}

export function useRun(id: string) {
  return useQuery({
    queryKey: keys.run(id),
    queryFn: ({ signal }) => api.get<RunDetail>(`/api/runs/${encodeURIComponent(id)}`, { signal }),
    refetchInterval: (q) => (q.state.data && q.state.data.status !== "running" ? false : RUN_REFRESH_MS),
  });
}

/** The run's output grouped, read again when `run`'s jobs have moved on. */
export function useRunOutput(run: Run) {
  const t = run.totals;
  const progress = `${run.status}:${t.succeeded + t.failed + t.cancelled}`;
  return useQuery({
    queryKey: keys.runOutput(run.id, progress),
    queryFn: ({ signal }) => api.get<OutputGroup[]>(`/api/runs/${encodeURIComponent(run.id)}/output`, { signal }),
    placeholderData: keepPreviousData,
  });
}

export function useSubmitRun() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: SubmitRun) => api.post<RunDetail>("/api/runs", body),
    onSuccess: (run) => {
      client.setQueryData(keys.run(run.id), run);
      void client.invalidateQueries({ queryKey: keys.runList });
      void client.invalidateQueries({ queryKey: keys.jobs });
    },
  });
}

export function useCancelRun(id: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: () => api.post<RunDetail>(`/api/runs/${encodeURIComponent(id)}/cancel`),
    onSuccess: (run) => {
      client.setQueryData(keys.run(id), run);
      void client.invalidateQueries({ queryKey: keys.runs });
      void client.invalidateQueries({ queryKey: keys.jobs });
    },
  });
}

/** After anything that changes nodes: refetch what shows them. */
function useInvalidateFleet() {
  const client = useQueryClient();
  return () => {
    void client.invalidateQueries({ queryKey: keys.nodes });
    void client.invalidateQueries({ queryKey: keys.fleetStats });
    void client.invalidateQueries({ queryKey: keys.fleetHistory });
  };
}

export function useJoinTokens() {
  return useQuery({ queryKey: keys.joinTokens, queryFn: ({ signal }) => api.get<JoinTokenList>("/api/nodes/join-tokens", { signal }) });
}

export function useCreateJoinToken() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateJoinToken) => api.post<IssuedJoinToken>("/api/nodes/join-tokens", body),
    onSuccess: () => client.invalidateQueries({ queryKey: keys.joinTokens }),
  });
}

export function useRevokeJoinToken() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api.delete(`/api/nodes/join-tokens/${encodeURIComponent(id)}`),
    onSuccess: () => client.invalidateQueries({ queryKey: keys.joinTokens }),
  });
}

export function useCreateNode() {
  const invalidate = useInvalidateFleet();
  return useMutation({
    mutationFn: (body: CreateNode) => api.post<IssuedKeyResponse>("/api/nodes", body),
    onSuccess: invalidate,
  });
}

export function useUpdateNode(id: string) {
  const invalidate = useInvalidateFleet();
  return useMutation({
    mutationFn: (body: UpdateNode) => api.put<Node>(`/api/nodes/${encodeURIComponent(id)}`, body),
    onSuccess: invalidate,
  });
}

export function useDeleteNode(id: string) {
  const client = useQueryClient();
  const invalidate = useInvalidateFleet();
  return useMutation({
    mutationFn: () => api.delete(`/api/nodes/${encodeURIComponent(id)}`),
    onSuccess: () => {
      client.removeQueries({ queryKey: keys.node(id) });
      invalidate();
    },
  });
}

export function useCheckNode(id: string) {
  const client = useQueryClient();
  const invalidate = useInvalidateFleet();
  return useMutation({
    mutationFn: () => api.post<CheckResult>(`/api/nodes/${encodeURIComponent(id)}/check`),
    onSuccess: (result) => {
      client.setQueryData(keys.node(id), result.node);
      void client.invalidateQueries({ queryKey: keys.nodeHistory(id) });
      invalidate();
    },
  });
}

export function useRotateKey(id: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: () => api.post<IssuedKeyResponse>(`/api/nodes/${encodeURIComponent(id)}/rotate-key`),
    onSuccess: (result) => client.setQueryData(keys.node(id), result.node),
  });
}

export function useCreateToken() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateToken) => api.post<IssuedToken>("/api/tokens", body),
    onSuccess: () => client.invalidateQueries({ queryKey: keys.tokens }),
  });
}

export function useRevokeToken() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api.delete(`/api/tokens/${encodeURIComponent(id)}`),
    onSuccess: () => client.invalidateQueries({ queryKey: keys.tokens }),
  });
}

// Alerts: channels (where messages go), rules (when), deliveries (how each went).

export function useAlertChannels() {
  return useQuery({
    queryKey: keys.alertChannels,
    queryFn: ({ signal }) => api.get<AlertChannelList>("/api/alerts/channels", { signal }),
    // Each channel shows how its latest delivery went.
    refetchInterval: 30_000,
  });
}

export function useAlertChannel(id: string) {
  return useQuery({
    queryKey: keys.alertChannel(id),
    queryFn: ({ signal }) => api.get<Channel>(`/api/alerts/channels/${encodeURIComponent(id)}`, { signal }),
    enabled: Boolean(id),
  });
}

export function useAlertRules() {
  return useQuery({ queryKey: keys.alertRules, queryFn: ({ signal }) => api.get<AlertRuleList>("/api/alerts/rules", { signal }) });
}

export function useAlertRule(id: string) {
  return useQuery({
    queryKey: keys.alertRule(id),
    queryFn: ({ signal }) => api.get<Rule>(`/api/alerts/rules/${encodeURIComponent(id)}`, { signal }),
    enabled: Boolean(id),
  });
}

/** After any change to a channel or rule: refetch what shows alerts (a removed channel takes its deliveries and its place in rules with it). */
function useInvalidateAlerts() {
  const client = useQueryClient();
  return () => void client.invalidateQueries({ queryKey: keys.alerts });
}

export function useCreateChannel() {
  const invalidate = useInvalidateAlerts();
  return useMutation({ mutationFn: (body: ChannelInput) => api.post<Channel>("/api/alerts/channels", body), onSuccess: invalidate });
}

export function useUpdateChannel(id: string) {
  const invalidate = useInvalidateAlerts();
  return useMutation({ mutationFn: (body: ChannelInput) => api.put<Channel>(`/api/alerts/channels/${encodeURIComponent(id)}`, body), onSuccess: invalidate });
}

export function useDeleteChannel() {
  const invalidate = useInvalidateAlerts();
  return useMutation({ mutationFn: (id: string) => api.delete(`/api/alerts/channels/${encodeURIComponent(id)}`), onSuccess: invalidate });
}

/** Sends a test message now; answers what the receiver said (nothing is stored). */
export function useTestChannel(id: string) {
  return useMutation({ mutationFn: () => api.post<TestResult>(`/api/alerts/channels/${encodeURIComponent(id)}/test`) });
}

export function useCreateRule() {
  const invalidate = useInvalidateAlerts();
  return useMutation({ mutationFn: (body: RuleInput) => api.post<Rule>("/api/alerts/rules", body), onSuccess: invalidate });
}

export function useUpdateRule(id: string) {
  const invalidate = useInvalidateAlerts();
  return useMutation({ mutationFn: (body: RuleInput) => api.put<Rule>(`/api/alerts/rules/${encodeURIComponent(id)}`, body), onSuccess: invalidate });
}

export function useDeleteRule() {
  const invalidate = useInvalidateAlerts();
  return useMutation({ mutationFn: (id: string) => api.delete(`/api/alerts/rules/${encodeURIComponent(id)}`), onSuccess: invalidate });
}

export interface DeliveryFilter {
  status: DeliveryStatus | "";
  channel: string;
  node: string;
}

export const DELIVERY_PAGE_SIZE = 50;

/** Deliveries matching `filter`, newest first, a page at a time. */
export function useDeliveries(filter: DeliveryFilter) {
  return useInfiniteQuery({
    queryKey: keys.alertDeliveries(filter),
    queryFn: ({ pageParam, signal }) =>
      api.get<Page<Delivery>>(
        "/api/alerts/deliveries" + query({ status: filter.status, channel: filter.channel, node: filter.node, limit: DELIVERY_PAGE_SIZE, cursor: pageParam }),
        { signal },
      ),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor,
    placeholderData: keepPreviousData,
    refetchInterval: 30_000,
  });
}

/** The alerts that fired for a node, newest first. */
export function useNodeAlerts(id: string) {
  return useQuery({
    queryKey: keys.nodeAlerts(id),
    queryFn: ({ signal }) => api.get<FiredAlertList>(`/api/nodes/${encodeURIComponent(id)}/alerts`, { signal }),
    refetchInterval: 30_000,
  });
}

/** Ends the session, then reloads at the sign-in page so nothing of it stays in memory. */
export function useLogout() {
  return useMutation({
    mutationFn: () => api.post<void>("/auth/logout"),
    onSuccess: () => window.location.assign("/login?signed_out=1"),
  });
}
