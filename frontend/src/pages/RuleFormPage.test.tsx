import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";

import type { Channel, Rule } from "../api/types";
import { CHANNEL_ID, NODE_ID, RULE_ID, channel, rule } from "../test/alerts";
import { fleetApi, fleetOf } from "../test/fleet";
import { mockFetch, renderAt } from "../test/render";
import { RuleFormPage } from "./RuleFormPage";

const NODES = fleetOf(3).map((n, i) => (i === 1 ? { ...n, id: NODE_ID, name: "web-01" } : n));

function api({
  answer = { status: 201, body: rule() },
  channels = [channel()],
  current,
}: { answer?: { status?: number; body?: unknown }; channels?: Channel[]; current?: Rule } = {}) {
  const fleet = fleetApi(NODES);
  return mockFetch((call) => {
    if (call.url === "/api/alerts/channels") return { body: { items: channels } };
    if (call.url === "/api/alerts/rules" && call.method === "POST") return answer;
    if (current && call.url === `/api/alerts/rules/${current.id}`) return call.method === "GET" ? { body: current } : answer;
    return fleet(call);
  });
}

const renderNew = () => renderAt(<RuleFormPage />, { route: "/notifications/rules/new", path: "/notifications/rules/new" });

describe("RuleFormPage", () => {
  it("sends a threshold rule with its for, channels, labels and a picked node", async () => {
    const calls = api();
    renderNew();
    const user = userEvent.setup();
    await user.type(screen.getByLabelText("Name"), "disk full");
    await user.selectOptions(screen.getByLabelText("Event"), "disk_above");
    const threshold = screen.getByLabelText("Threshold (%)");
    await user.clear(threshold);
    await user.type(threshold, "85.5");
    await user.type(screen.getByLabelText("For"), "10m");
    await user.click(await screen.findByRole("checkbox", { name: /ops hook/ }));
    await user.type(screen.getByLabelText("Labels"), "DB, linux");
    await screen.findByRole("option", { name: "web-01" });
    await user.selectOptions(screen.getByLabelText("Nodes"), NODE_ID);
    expect(screen.getByTestId("rule-nodes")).toHaveTextContent("web-01");
    await user.click(screen.getByRole("button", { name: "Add rule" }));
    expect(await screen.findByTestId("elsewhere")).toBeInTheDocument();
    expect(calls.find((c) => c.method === "POST")!.body).toEqual({
      name: "disk full",
      event: "disk_above",
      threshold: 85.5,
      for: "10m",
      channels: [CHANNEL_ID],
      labels: ["db", "linux"],
      nodes: [NODE_ID],
      muted_until: null,
    });
  });

  it("sends neither threshold nor for with a one-off event, and explains down and back messages", async () => {
    const calls = api();
    renderNew();
    const user = userEvent.setup();
    expect(screen.getByTestId("down-and-back")).toHaveTextContent("one “down” message and one “back” message");
    await user.type(screen.getByLabelText("Name"), "new nodes");
    await user.selectOptions(screen.getByLabelText("Event"), "node_registered");
    expect(screen.queryByLabelText("For")).toBeNull();
    expect(screen.queryByLabelText("Threshold (%)")).toBeNull();
    await user.click(await screen.findByRole("checkbox", { name: /ops hook/ }));
    await user.click(screen.getByRole("button", { name: "Add rule" }));
    await screen.findByTestId("elsewhere");
    expect(calls.find((c) => c.method === "POST")!.body).toEqual({
      name: "new nodes",
      event: "node_registered",
      channels: [CHANNEL_ID],
      labels: [],
      nodes: [],
      muted_until: null,
    });
  });

  it("asks for a channel before sending, and points to adding one when there is none", async () => {
    const calls = api({ channels: [] });
    renderNew();
    const user = userEvent.setup();
    expect(await screen.findByTestId("no-channels")).toHaveTextContent("Add a channel first");
    await user.type(screen.getByLabelText("Name"), "x");
    await user.click(screen.getByRole("button", { name: "Add rule" }));
    expect(screen.getByText("Channels: choose at least one channel to send to.")).toBeInTheDocument();
    expect(calls.filter((c) => c.method === "POST")).toHaveLength(0);
  });

  it("puts the server's validation error next to the field it names", async () => {
    const calls = api({
      answer: { status: 400, body: { error: { code: "validation_failed", message: 'for: "soon" is not a duration; e.g. 30s, 5m, 1h', field: "for" } } },
    });
    renderNew();
    const user = userEvent.setup();
    await user.type(screen.getByLabelText("Name"), "down");
    await user.type(screen.getByLabelText("For"), "soon");
    await user.click(await screen.findByRole("checkbox", { name: /ops hook/ }));
    await user.click(screen.getByRole("button", { name: "Add rule" }));
    expect(await screen.findByText('For: "soon" is not a duration; e.g. 30s, 5m, 1h')).toBeInTheDocument();
    expect(screen.getByLabelText("For")).toHaveAttribute("aria-invalid", "true");
    expect(calls.find((c) => c.method === "POST")!.body).toMatchObject({ event: "node_offline", for: "soon" });
  });

  it("edits a rule, unmuting it", async () => {
    const current = rule({ event: "cpu_above", threshold: 90, for: "5m", muted_until: "2999-01-01T00:00:00Z", nodes: [NODE_ID] });
    const calls = api({ current, answer: { body: current } });
    renderAt(<RuleFormPage />, { route: `/notifications/rules/${RULE_ID}/edit`, path: "/notifications/rules/:id/edit" });
    const user = userEvent.setup();
    expect(await screen.findByLabelText("Threshold (%)")).toHaveValue("90");
    expect(screen.getByLabelText("For")).toHaveValue("5m");
    expect(screen.getByLabelText("Muted until")).not.toHaveValue("");
    expect(await screen.findByTestId("rule-nodes")).toHaveTextContent("web-01");
    await user.click(screen.getByRole("button", { name: "Unmute" }));
    await user.click(screen.getByRole("button", { name: "Save" }));
    await screen.findByTestId("elsewhere");
    const put = calls.find((c) => c.method === "PUT")!;
    expect(put.url).toBe(`/api/alerts/rules/${RULE_ID}`);
    expect(put.body).toEqual({
      name: "web down",
      event: "cpu_above",
      threshold: 90,
      for: "5m",
      channels: [CHANNEL_ID],
      labels: [],
      nodes: [NODE_ID],
      muted_until: null,
    });
  });
});
