import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";

import type { Channel } from "../api/types";
import { CHANNEL_ID, channel } from "../test/alerts";
import { mockFetch, renderAt } from "../test/render";
import { ChannelFormPage } from "./ChannelFormPage";

function api(answer: { status?: number; body?: unknown } = { status: 201, body: channel() }, current?: Channel) {
  return mockFetch((call) => {
    if (call.url === "/api/alerts/channels" && call.method === "POST") return answer;
    if (current && call.url === `/api/alerts/channels/${current.id}`) return call.method === "GET" ? { body: current } : answer;
    return undefined;
  });
}

const renderNew = () => renderAt(<ChannelFormPage />, { route: "/notifications/channels/new", path: "/notifications/channels/new" });
const renderEdit = (id: string) => renderAt(<ChannelFormPage />, { route: `/notifications/channels/${id}/edit`, path: "/notifications/channels/:id/edit" });

describe("ChannelFormPage", () => {
  it("sends a webhook's URL, signing secret and summary threshold", async () => {
    const calls = api();
    renderNew();
    const user = userEvent.setup();
    await user.type(screen.getByLabelText("Name"), " ops hook ");
    await user.type(screen.getByLabelText("URL"), "https://hooks.example.com/fleetdeck");
    expect(screen.getByText(/X-Fleetdeck-Signature: sha256=/)).toBeInTheDocument();
    await user.type(screen.getByLabelText("Signing secret"), "s3cret");
    await user.type(screen.getByLabelText("Summarise above"), "5");
    await user.click(screen.getByRole("button", { name: "Add channel" }));
    expect(await screen.findByTestId("elsewhere")).toBeInTheDocument();
    const post = calls.find((c) => c.method === "POST")!;
    expect(post.body).toEqual({ name: "ops hook", kind: "webhook", url: "https://hooks.example.com/fleetdeck", secret: "s3cret", summary_over: 5 });
    expect(post.headers["X-Requested-With"]).toBe("fleetdeck");
  });

  it("sends a Telegram channel's bot token and chat ID, and no URL unless one is given", async () => {
    const calls = api();
    renderNew();
    const user = userEvent.setup();
    await user.selectOptions(screen.getByLabelText("Kind"), "telegram");
    await user.type(screen.getByLabelText("Name"), "on-call");
    await user.type(screen.getByLabelText("Bot token"), "123:abc");
    await user.type(screen.getByLabelText("Chat ID"), "-1001234567890");
    await user.click(screen.getByRole("button", { name: "Add channel" }));
    await screen.findByTestId("elsewhere");
    expect(calls.find((c) => c.method === "POST")!.body).toEqual({
      name: "on-call",
      kind: "telegram",
      secret: "123:abc",
      chat_id: "-1001234567890",
      summary_over: null,
    });
  });

  it("sends an email channel's recipients as a list, with its security and login", async () => {
    const calls = api();
    renderNew();
    const user = userEvent.setup();
    await user.selectOptions(screen.getByLabelText("Kind"), "email");
    await user.type(screen.getByLabelText("Name"), "mail");
    await user.type(screen.getByLabelText("SMTP server"), "smtp://mail.example.com");
    await user.selectOptions(screen.getByLabelText("Security"), "tls");
    await user.type(screen.getByLabelText("From"), "fleetdeck@example.com");
    await user.type(screen.getByLabelText("To"), "ops@example.com, oncall@example.com");
    await user.type(screen.getByLabelText("User name"), "fleetdeck");
    await user.type(screen.getByLabelText("Password"), "pw");
    await user.click(screen.getByRole("button", { name: "Add channel" }));
    await screen.findByTestId("elsewhere");
    expect(calls.find((c) => c.method === "POST")!.body).toEqual({
      name: "mail",
      kind: "email",
      url: "smtp://mail.example.com",
      tls: "tls",
      from: "fleetdeck@example.com",
      to: ["ops@example.com", "oncall@example.com"],
      username: "fleetdeck",
      secret: "pw",
      summary_over: null,
    });
  });

  it("shows no secret field for Discord: its webhook URL is the secret", async () => {
    api();
    renderNew();
    await userEvent.setup().selectOptions(screen.getByLabelText("Kind"), "discord");
    expect(screen.getByLabelText("Webhook URL")).toBeInTheDocument();
    expect(screen.queryByLabelText(/secret|token|password/i)).toBeNull();
    expect(screen.getByText(/shown only by its host/)).toBeInTheDocument();
  });

  it("puts the server's validation error next to the field it names", async () => {
    api({ status: 400, body: { error: { code: "validation_failed", message: "chat_id: is required: the chat to post to", field: "chat_id" } } });
    renderNew();
    const user = userEvent.setup();
    await user.selectOptions(screen.getByLabelText("Kind"), "telegram");
    await user.type(screen.getByLabelText("Name"), "on-call");
    await user.type(screen.getByLabelText("Bot token"), "123:abc");
    await user.click(screen.getByRole("button", { name: "Add channel" }));
    expect(await screen.findByText("Chat ID: is required: the chat to post to")).toBeInTheDocument();
    expect(screen.getByLabelText("Chat ID")).toHaveAttribute("aria-invalid", "true");
  });

  it("says a taken name next to the name", async () => {
    api({ status: 409, body: { error: { code: "conflict", message: "that name is taken (names are unique, whatever their case)" } } });
    renderNew();
    const user = userEvent.setup();
    await user.type(screen.getByLabelText("Name"), "Ops Hook");
    await user.type(screen.getByLabelText("URL"), "https://hooks.example.com/x");
    await user.click(screen.getByRole("button", { name: "Add channel" }));
    expect(await screen.findByText("That name is taken (names are unique, whatever their case).")).toBeInTheDocument();
    expect(screen.getByLabelText("Name")).toHaveAttribute("aria-invalid", "true");
  });

  it("edits a Discord channel without resending its hidden URL", async () => {
    const current = channel({ kind: "discord", name: "team chat", url: "https://discord.com/…", has_secret: false });
    const calls = api({ body: current }, current);
    renderEdit(CHANNEL_ID);
    const user = userEvent.setup();
    const name = await screen.findByLabelText("Name");
    expect(screen.getByLabelText("Kind")).toBeDisabled();
    expect(screen.getByLabelText("Webhook URL")).toHaveValue("");
    await user.clear(name);
    await user.type(name, "team alerts");
    await user.click(screen.getByRole("button", { name: "Save" }));
    await screen.findByTestId("elsewhere");
    const put = calls.find((c) => c.method === "PUT")!;
    expect(put.url).toBe(`/api/alerts/channels/${CHANNEL_ID}`);
    expect(put.body).toEqual({ name: "team alerts", summary_over: null });
  });

  it("keeps a webhook's secret unless it is replaced or removed", async () => {
    const current = channel();
    const calls = api({ body: current }, current);
    renderEdit(CHANNEL_ID);
    const user = userEvent.setup();
    expect(await screen.findByLabelText("Signing secret")).toHaveAttribute("placeholder", "set (kept when empty)");
    await user.click(screen.getByLabelText("Remove the signing secret"));
    await user.click(screen.getByRole("button", { name: "Save" }));
    await screen.findByTestId("elsewhere");
    expect(calls.find((c) => c.method === "PUT")!.body).toEqual({
      name: "ops hook",
      url: "https://hooks.example.com/fleetdeck",
      secret: "",
      summary_over: null,
    });
  });
});
