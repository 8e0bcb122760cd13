// The account page: balance and grants, buying credits, the plan and its usage, credits held,
// API keys with their spend caps (set here) and what each spent, alerts and when they come, and
// webhook endpoints with their latest attempts.
import {FINAL, api} from "./api.js";
import {drawBilling} from "./billing.js";
import {newKeyForm, ownerOf} from "./keys.js";
import {can} from "./session.js";
import {h, facts, field, table, badge, when, show, fill, fillWith, announce, errorBox} from "./dom.js";

export async function accountPage() {
  document.title = "Account · Genline";
  const balance = h("section", {}, h("h2", {text: "Balance"}));
  const billing = h("section", {}, h("h2", {text: "Billing"}));
  const usage = h("section", {}, h("h2", {text: "Plan and usage"}));
  const holds = h("section", {}, h("h2", {text: "Holds"}));
  const keys = h("section", {}, h("h2", {text: "API keys"}));
  const alerts = h("section", {"data-testid": "alerts"}, h("h2", {text: "Alerts"}));
  const hooks = h("section", {}, h("h2", {text: "Webhook endpoints"}));
  show(h("h1", {text: "Account"}), balance, billing, usage, holds, keys, alerts, hooks);
  await Promise.all([
    fill(balance, async () => drawBalance(await api("/v1/account"))),
    fill(billing, async () => (can("billing:manage")
      ? drawBilling(await api("/v1/billing"), (note, session) => watchCredits(balance, note, session))
      : h("p", {class: "notice", "data-testid": "billing-refused", text: "Buying credits needs billing:manage."}))),
    fill(usage, async () => drawUsage(await api("/v1/usage"))),
    fill(holds, async () => drawHolds((await api("/v1/jobs?limit=100")).data)),
    fill(keys, async () => [newKeyForm(), ...drawKeys((await api("/v1/api-keys")).data)]),
    fill(alerts, async () => drawAlerts(await api("/v1/account/alerts"))),
    fill(hooks, async () => drawEndpoints((await api("/v1/webhook-endpoints")).data)),
  ]);
}

function drawBalance(account) {
  return [facts([
    ["Available", account.available, "account-available"], ["Posted", account.posted],
    ["Held for jobs in progress", account.pending], ["Retry tokens", account.retry_tokens],
    ["A reported image earns", account.report_policy || "the platform's default"],
  ]), h("h3", {text: "Grants"}), account.grants.length
    ? table([["Source"], ["Amount", "num"], ["Remaining", "num"], ["Expires"]], account.grants.map((g) => h("tr", {},
      h("td", {text: g.source}), h("td", {class: "num", text: g.amount}), h("td", {class: "num", text: g.remaining}),
      h("td", {text: g.expires_at ? when(g.expires_at) : "never"}))), "Grants, earliest expiring first")
    : h("p", {class: "muted", text: "No grants."})];
}

// Back from a checkout: its state is read again until the processor's event has paid it
// (usually within a second or two), then the balance is drawn again with the credits.
async function watchCredits(section, note, session) {
  for (let look = 0; look < 60; look += 1) {
    const checkout = (await api("/v1/billing")).checkouts.find((c) => c.session_id === session);
    if (checkout && checkout.state !== "open" && checkout.state !== "awaiting_payment") {
      fillWith(section, h("h2", {text: "Balance"}), drawBalance(await api("/v1/account")));
      note.textContent = checkout.state === "paid" ? `Payment confirmed: ${checkout.credits} credits have arrived.`
        : `The payment did not go through (${checkout.state}); nothing was charged.`;
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

const LIMIT_NAMES = {requests_burst: "Requests at once (burst)", concurrent_jobs: "Jobs in progress",
  images_per_day: "Images today (UTC)"};

// GET /v1/usage: a bar per limit of the plan, filled to what the limit counts now.
function drawUsage(usage) {
  const plan = usage.plan;
  return [facts([
    ["Plan", plan.name, "usage-plan"], ["Request rate", `${plan.requests_per_s} a second, bursts of ${plan.burst}`],
    ["Requests today", usage.requests_today, "usage-requests-today"],
    ["Credits held", usage.credits_held ?? "the ledger does not answer"],
    ["Daily counters reset", when(usage.resets_at)],
  ]), h("ul", {class: "limits"}, usage.limits.map(limitBar))];
}

function limitBar(limit) {
  const label = LIMIT_NAMES[limit.name] || limit.name;
  const id = `limit-${limit.name}`;
  if (limit.limit === null) {
    return h("li", {"data-testid": `usage-${limit.name}`, "data-used": limit.used},
      h("span", {class: "limit-name", text: label}), h("span", {class: "muted", text: `${limit.used}, no limit on your plan`}));
  }
  const full = limit.used >= limit.limit;
  return h("li", {"data-testid": `usage-${limit.name}`, "data-used": limit.used, "data-limit": limit.limit},
    h("label", {for: id, class: "limit-name", text: label}),
    h("meter", {id, min: "0", max: String(limit.limit), value: String(limit.used), low: String(limit.limit * 0.8),
      high: String(limit.limit * 0.95), optimum: "0"}),
    h("span", {class: full ? "limit-count full" : "limit-count", text: `${limit.used} of ${limit.limit}`}));
}

// Credits held: the reservations of your newest jobs that are still running.
function drawHolds(jobs) {
  const held = jobs.filter((job) => !FINAL.has(job.state) && job.billing.state === "reserved");
  if (!held.length) return h("p", {class: "muted", text: "No credits are held: none of your newest jobs is running."});
  return table([["Job"], ["State"], ["Held", "num"]], held.map((job) => h("tr", {},
    h("td", {}, h("a", {href: `/console/jobs/${job.id}`, class: "mono", text: job.id.slice(0, 8), "aria-label": `Job ${job.id}`})),
    h("td", {}, badge(job.state)), h("td", {class: "num", text: job.billing.reserved}))), "Credits held by running jobs");
}

const spent = (used, cap) => `${used ?? "?"} of ${cap ?? "no cap"}`;

function drawKeys(keys) {
  return [table([["Name"], ["Owner"], ["Prefix"], ["Scopes"], ["Spent today", "num"], ["Spent this month", "num"],
    ["Last used"], ["Expires"]], keys.map((k) => h("tr", {"data-testid": `key-${k.id}`},
    h("td", {text: k.name}), h("td", {"data-testid": "key-owner", text: ownerOf(k)}),
    h("td", {class: "mono", text: `${k.prefix}…`}), h("td", {text: k.scopes.join(", ")}),
    h("td", {class: "num", "data-testid": "key-spent-today", text: spent(k.spent_today, k.daily_cap_credits)}),
    h("td", {class: "num", text: spent(k.spent_this_month, k.monthly_cap_credits)}),
    h("td", {text: when(k.last_used_at)}), h("td", {text: k.expires_at ? when(k.expires_at) : "—"}))), "API keys"),
  capForm(keys)];
}

const credits = (name, value) => h("input", {name, type: "number", min: "0", step: "1", inputmode: "numeric",
  value: value ?? ""});

// A key's spend caps, set here: a job the key submits past one is refused (402).
function capForm(keys) {
  const problem = h("p", {class: "error", role: "alert", hidden: true});
  const choose = h("select", {name: "key"}, keys.map((k) => h("option", {value: k.id, text: `${k.name || "unnamed"} (${k.prefix}…)`})));
  const form = h("form", {id: "cap-form", class: "panel", onsubmit: (event) => setCaps(event, form, problem)},
    h("h3", {text: "Spend caps"}),
    h("div", {class: "row"}, field("cap-key", "Key", choose),
      field("cap-daily", "Credits per day (UTC)", credits("daily"), "Empty: no cap."),
      field("cap-monthly", "Credits per month (UTC)", credits("monthly"), "Empty: no cap.")),
    h("button", {type: "submit", text: "Save caps"}), problem);
  const fillCaps = () => {
    const key = keys.find((k) => k.id === choose.value);
    form.elements.daily.value = key?.daily_cap_credits ?? "";
    form.elements.monthly.value = key?.monthly_cap_credits ?? "";
  };
  choose.addEventListener("change", fillCaps);
  fillCaps();
  return form;
}

const creditsOf = (input) => (input.value === "" ? null : Number(input.value));

async function setCaps(event, form, problem) {
  event.preventDefault();
  problem.hidden = true;
  try {
    const key = await api(`/v1/api-keys/${form.elements.key.value}/caps`, {method: "PUT", body: {
      daily_cap_credits: creditsOf(form.elements.daily), monthly_cap_credits: creditsOf(form.elements.monthly)}});
    const row = document.querySelector(`[data-testid="key-${key.id}"] [data-testid="key-spent-today"]`);
    if (row) row.textContent = spent(key.spent_today, key.daily_cap_credits);
    announce(`Caps of ${key.name || key.prefix} saved.`);
  } catch (error) {
    problem.textContent = error.message;
    problem.hidden = false;
  }
}

const ALERT_NAMES = {"account.balance_low": "Balance low", "account.grant_expiring": "Grant expiring",
  "account.key_cap_reached": "Key cap reached", "billing.topup_failed": "Top-up failed"};

function alertDetails(alert) {
  const d = alert.details;
  switch (alert.alert) {
    case "account.balance_low": return `${d.available} credits available, below ${d.threshold}`;
    case "account.grant_expiring": return `${d.remaining} credits expire ${when(d.expires_at)}`;
    case "account.key_cap_reached": return `key ${String(d.api_key_id).slice(0, 8)}: ${d.spent} of its ${d.period === "day" ? "daily" : "monthly"} cap of ${d.cap}`;
    default: return Object.entries(d).map(([k, v]) => `${k} ${v}`).join(", ");
  }
}

// Alerts come once per crossing, here and to the webhook endpoints subscribed to them.
function drawAlerts(answer) {
  const list = h("div", {"data-testid": "alert-list"});
  const draw = (alerts) => fillWith(list, alerts.length
    ? table([["Raised"], ["Alert"], ["What"], ["Cleared"]], alerts.map((a) => h("tr", {"data-testid": `alert-${a.alert}`},
      h("td", {text: when(a.raised_at)}), h("td", {}, h("span", {class: `badge ${a.cleared_at ? "" : "warn"}`,
        text: ALERT_NAMES[a.alert] || a.alert})), h("td", {text: alertDetails(a)}),
      h("td", {text: a.cleared_at ? when(a.cleared_at) : "—"}))), "Alerts, newest first")
    : h("p", {class: "muted", text: "No alerts yet."}));
  draw(answer.alerts);
  const problem = h("p", {class: "error", role: "alert", hidden: true});
  const form = h("form", {id: "alert-form", class: "panel", onsubmit: async (event) => {
    event.preventDefault();
    problem.hidden = true;
    try {
      await api("/v1/account/alerts/settings", {method: "PUT", body: {
        balance_low_below: creditsOf(form.elements.below), grant_expiring_days: Number(form.elements.days.value || 0)}});
      announce("Alert settings saved.");
    } catch (error) {
      fillWith(problem, errorBox(error));
      problem.hidden = false;
    }
  }}, h("div", {class: "row"},
    field("alert-below", "Alert below (available credits)", credits("below", answer.settings.balance_low_below),
      "Empty: never."),
    field("alert-days", "Days before a grant expires", credits("days", answer.settings.grant_expiring_days), "0: never.")),
  h("button", {type: "submit", text: "Save alert settings"}), problem);
  return [list, form];
}

async function drawEndpoints(endpoints) {
  if (!endpoints.length) return h("p", {class: "muted", text: "No webhook endpoints."});
  const blocks = await Promise.all(endpoints.map(async (endpoint) => {
    const attempts = (await api(`/v1/webhook-endpoints/${endpoint.id}/attempts`)).data.slice(0, 5);
    return h("div", {class: "panel"}, h("h3", {class: "mono", text: endpoint.url}),
      h("p", {}, endpoint.enabled ? badge("enabled") : badge("disabled"), ` ${endpoint.event_types.join(", ")}`),
      attempts.length ? table([["When"], ["Event"], ["Answer", "num"], ["State"]], attempts.map((a) => h("tr", {},
        h("td", {text: when(a.attempted_at)}), h("td", {text: a.event_type}),
        h("td", {class: "num", text: a.status_code ?? "none"}), h("td", {text: a.message_state}))), "Recent attempts")
        : h("p", {class: "muted", text: "No attempts yet."}));
  }));
  return blocks;
}
