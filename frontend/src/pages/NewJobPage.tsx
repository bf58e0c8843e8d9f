import { useState, type FormEvent, type KeyboardEvent } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";

import { allNodes, useNodeList, useSubmitJob, useSubmitRun } from "../api/queries";
import type { SubmitJob, SubmitRun } from "../api/types";
import { Field, FormActions } from "../components/Form";
import { parseLabels } from "../lib/nodes";
import { useFormErrors } from "../lib/useFormErrors";
import { usePageTitle } from "../lib/usePageTitle";

type Target = "any" | "node" | "labels";

const TARGETS: [Target, string][] = [
  ["any", "Any node"],
  ["node", "A node"],
  ["labels", "Nodes with labels"],
];

interface EnvRow {
  key: number;
  name: string;
  value: string;
}

let nextRow = 0;
const newRow = (): EnvRow => ({ key: nextRow++, name: "", value: "" });

const ONLINE = { q: "", status: "online", label: "" } as const;

export function NewJobPage() {
  const [params] = useSearchParams();
  const submit = useSubmitJob();
  const submitRun = useSubmitRun();
  const navigate = useNavigate();
  const online = useNodeList(ONLINE);
  const onlineNodes = allNodes(online.data)
    .filter((n) => n.status === "online")
    .sort((a, b) => a.name.localeCompare(b.name));

  const [command, setCommand] = useState("");
  const [name, setName] = useState("");
  const [target, setTarget] = useState<Target>("any");
  const [nodeId, setNodeId] = useState("");
  const [labels, setLabels] = useState("");
  const [timeout, setTimeoutSec] = useState("");
  const [workingDir, setWorkingDir] = useState("");
  const [env, setEnv] = useState<EnvRow[]>([]);
  // Every matching node, one job each (a fleet-wide run), rather than one node of them.
  const [fleet, setFleet] = useState(params.get("fleet") === "1");
  const [maxParallel, setMaxParallel] = useState("");
  const [stopOnFailure, setStopOnFailure] = useState(false);
  const everywhere = fleet && target !== "node";
  usePageTitle(everywhere ? "New fleet-wide run" : "New job");
  const { fieldError, formError, setLocalError, onEdit } = useFormErrors(everywhere ? submitRun : submit);

  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    setLocalError(null);
    if (!command.trim()) return setLocalError({ field: "command", message: "Command: enter the command to run." });
    const body: SubmitJob = { command };
    if (name.trim()) body.name = name.trim();
    if (timeout.trim()) {
      const n = Number(timeout);
      if (!Number.isInteger(n) || n < 1) return setLocalError({ field: "timeout_sec", message: "Timeout: a whole number of seconds, 1 or more." });
      body.timeout_sec = n;
    }
    if (workingDir.trim()) body.working_dir = workingDir.trim();
    const vars = env.filter((r) => r.name.trim() || r.value);
    if (vars.length) {
      const missing = vars.find((r) => !r.name.trim());
      if (missing) return setLocalError({ field: "env", message: "Environment: every value needs a variable name." });
      body.env = Object.fromEntries(vars.map((r) => [r.name.trim(), r.value]));
    }
    if (target === "node") {
      if (!nodeId) return setLocalError({ field: "node_id", message: "Node: choose an online node." });
      body.node_id = nodeId;
    } else if (target === "labels") {
      const parsed = parseLabels(labels);
      if (!parsed.length) return setLocalError({ field: "labels", message: "Labels: enter at least one label." });
      body.labels = parsed;
    }
    if (!everywhere) return submit.mutate(body, { onSuccess: (job) => navigate(`/jobs/${job.id}`) });
    const run: SubmitRun = { ...body, ...(body.labels ? {} : { all: true }) };
    if (maxParallel.trim()) {
      const n = Number(maxParallel);
      if (!Number.isInteger(n) || n < 1) return setLocalError({ field: "max_parallel", message: "At a time: a whole number, 1 or more." });
      run.max_parallel = n;
      if (stopOnFailure) run.stop_on_failure = true;
    }
    submitRun.mutate(run, { onSuccess: (created) => navigate(`/runs/${created.id}`) });
  };

  // A radio group: one tab stop, the arrow keys move the choice.
  const onTargetKey = (e: KeyboardEvent<HTMLDivElement>) => {
    const step = e.key === "ArrowRight" || e.key === "ArrowDown" ? 1 : e.key === "ArrowLeft" || e.key === "ArrowUp" ? -1 : 0;
    if (!step) return;
    e.preventDefault();
    const index = TARGETS.findIndex(([value]) => value === target);
    const next = TARGETS[(index + step + TARGETS.length) % TARGETS.length]![0];
    setTarget(next);
    e.currentTarget.querySelector<HTMLButtonElement>(`[data-target="${next}"]`)?.focus();
  };

  return (
    <div className="page page-narrow">
      <header className="page-head">
        <div>
          <p className="crumbs">
            <Link to="/jobs">Jobs</Link> /
          </p>
          <h1>{everywhere ? "New fleet-wide run" : "New job"}</h1>
          <p className="muted">
            {everywhere
              ? "Run a shell command on every matching node at once, one job each, and see them side by side."
              : "Run a shell command on one node of the fleet and follow its output live."}
          </p>
        </div>
      </header>
      <form className="card form" onSubmit={onSubmit} onChange={onEdit} noValidate>
        <Field id="job-command" label="Command" error={fieldError("command")} help="Run with sh -c on the node, as the node's user.">
          {(control) => (
            <textarea
              {...control}
              className="mono"
              rows={5}
              value={command}
              onChange={(e) => setCommand(e.target.value)}
              placeholder={"df -h / && uptime"}
              spellCheck={false}
            />
          )}
        </Field>
        <Field id="job-name" label="Name" error={fieldError("name")} help="Optional; shown instead of the command in lists.">
          {(control) => <input {...control} value={name} onChange={(e) => setName(e.target.value)} placeholder="rotate logs" autoComplete="off" />}
        </Field>

        <fieldset className="fieldset">
          <legend className="field-label">Where it runs</legend>
          <div className="segmented" role="radiogroup" aria-label="Where it runs" onKeyDown={onTargetKey}>
            {TARGETS.map(([value, text]) => (
              <button
                key={value}
                type="button"
                role="radio"
                aria-checked={target === value}
                tabIndex={target === value ? 0 : -1}
                data-target={value}
                onClick={() => setTarget(value)}
              >
                {text}
              </button>
            ))}
          </div>
          {target === "any" && (
            <span className="field-help">
              {everywhere ? "Every node of the fleet, the primary included." : "The least-loaded online node with a free slot takes it, the primary included."}
            </span>
          )}
          {target === "node" && (
            <Field id="job-node" label="Node" error={fieldError("node_id")} help="Only online nodes take jobs.">
              {(control) => (
                <select {...control} value={nodeId} onChange={(e) => setNodeId(e.target.value)}>
                  <option value="">{online.isPending ? "Loading nodes…" : onlineNodes.length ? "Choose an online node" : "No node is online"}</option>
                  {onlineNodes.map((n) => (
                    <option key={n.id} value={n.id}>
                      {n.name}
                      {n.is_primary ? " (primary)" : ""}
                    </option>
                  ))}
                </select>
              )}
            </Field>
          )}
          {target === "labels" && (
            <Field
              id="job-labels"
              label="Labels"
              error={fieldError("labels")}
              help={
                everywhere
                  ? "Comma-separated; every node with all of them runs it."
                  : "Comma-separated; a node with all of them runs it. It waits queued until one is free."
              }
            >
              {(control) => <input {...control} value={labels} onChange={(e) => setLabels(e.target.value)} placeholder="linux, gpu" autoComplete="off" />}
            </Field>
          )}
          {target !== "node" && (
            <label className="check">
              <input type="checkbox" checked={fleet} onChange={(e) => setFleet(e.target.checked)} />
              Run on all matching nodes
            </label>
          )}
          {everywhere && (
            <>
              <span className="field-help">
                One job per node that is online now; the others are listed as skipped. Each node's output, exit code and duration show side by side.
              </span>
              <div className="form-row">
                <Field
                  id="run-max-parallel"
                  label="At a time"
                  error={fieldError("max_parallel")}
                  help="Optional: roll through the fleet this many nodes at a time (e.g. 2 for a rolling upgrade)."
                >
                  {(control) => (
                    <input
                      {...control}
                      inputMode="numeric"
                      value={maxParallel}
                      onChange={(e) => setMaxParallel(e.target.value)}
                      placeholder="all"
                      autoComplete="off"
                    />
                  )}
                </Field>
                <label className="check run-stop">
                  <input type="checkbox" checked={stopOnFailure} disabled={!maxParallel.trim()} onChange={(e) => setStopOnFailure(e.target.checked)} />
                  Stop at the first node that fails
                </label>
              </div>
            </>
          )}
        </fieldset>

        <div className="form-row">
          <Field id="job-timeout" label="Timeout (seconds)" error={fieldError("timeout_sec")} help="Stopped after this long on the node. Default 30 minutes.">
            {(control) => (
              <input {...control} inputMode="numeric" value={timeout} onChange={(e) => setTimeoutSec(e.target.value)} placeholder="1800" autoComplete="off" />
            )}
          </Field>
          <Field id="job-dir" label="Working directory" error={fieldError("working_dir")} help="Optional absolute path on the node.">
            {(control) => (
              <input
                {...control}
                className="mono"
                value={workingDir}
                onChange={(e) => setWorkingDir(e.target.value)}
                placeholder="/var/tmp"
                autoComplete="off"
              />
            )}
          </Field>
        </div>

        <fieldset className="fieldset">
          <legend className="field-label">Environment</legend>
          {env.length === 0 && (
            <span className="field-help">Variables added to the job's environment. Do not put secrets here: they are shown with the job.</span>
          )}
          {env.map((row, i) => (
            <div className="env-row" key={row.key}>
              <input
                className="mono"
                value={row.name}
                onChange={(e) => setEnv(env.map((r) => (r.key === row.key ? { ...r, name: e.target.value } : r)))}
                placeholder="NAME"
                aria-label={`Variable ${i + 1} name`}
                autoComplete="off"
                spellCheck={false}
                aria-invalid={Boolean(fieldError("env"))}
              />
              <span aria-hidden="true">=</span>
              <input
                className="mono"
                value={row.value}
                onChange={(e) => setEnv(env.map((r) => (r.key === row.key ? { ...r, value: e.target.value } : r)))}
                placeholder="value"
                aria-label={`Variable ${i + 1} value`}
                autoComplete="off"
                spellCheck={false}
              />
              <button
                type="button"
                className="button button-small button-ghost"
                onClick={() => setEnv(env.filter((r) => r.key !== row.key))}
                aria-label={`Remove variable ${i + 1}`}
              >
                Remove
              </button>
            </div>
          ))}
          {fieldError("env") && <span className="field-error">{fieldError("env")}</span>}
          <div>
            <button type="button" className="button button-small" onClick={() => setEnv([...env, newRow()])}>
              Add variable
            </button>
          </div>
        </fieldset>

        <FormActions
          error={formError}
          pending={submit.isPending || submitRun.isPending}
          submit={everywhere ? "Run on all matching nodes" : "Run job"}
          busy="Submitting…"
          cancelTo="/jobs"
        />
      </form>
    </div>
  );
}
