// The operator view, with an operator token: providers, dead letters, margins per template
// and the calibration of a tenant's thresholds.
import {ADMIN_TOKEN, api} from "./api.js";
import {h, field, table, badge, usd, show, errorBox, format, fill} from "./dom.js";
import {route} from "./navigation.js";

export function operatorPage() {
  document.title = "Operator · Genline";
  if (!sessionStorage.getItem(ADMIN_TOKEN)) return operatorSignIn();
  const providers = h("section", {}, h("h2", {text: "Providers"}));
  const dead = h("section", {}, h("h2", {text: "Dead-lettered messages"}));
  const margins = h("section", {}, h("h2", {text: "Margin per template (last 30 days)"}));
  const calibration = h("section", {}, h("h2", {text: "Calibration"}), calibrationForm());
  show(h("div", {class: "actions"}, h("h1", {text: "Operator view"}),
    h("button", {type: "button", class: "secondary", text: "Forget operator token", onclick: () => {
      sessionStorage.removeItem(ADMIN_TOKEN);
      route();
    }})), providers, dead, margins, calibration);
  fill(providers, async () => drawProviders((await api("/admin/v1/providers", {admin: true})).providers));
  fill(dead, async () => drawDeadLetters(await api("/admin/v1/dead-letters", {admin: true})));
  fill(margins, async () => drawMargins((await api("/admin/v1/margins", {admin: true})).templates));
}

function operatorSignIn() {
  const input = h("input", {type: "password", name: "admin-token", autocomplete: "off", required: true});
  const problem = h("div");
  const form = h("form", {onsubmit: async (event) => {
    event.preventDefault();
    sessionStorage.setItem(ADMIN_TOKEN, input.value.trim());
    try {
      await api("/admin/v1/providers", {admin: true});
      route();
    } catch (error) {
      sessionStorage.removeItem(ADMIN_TOKEN);
      const hint = error.status === 404 ? " Open the console on ingest's admin port (GENLINE_ADMIN_PORT)." : "";
      problem.replaceChildren(errorBox(new Error(error.message + hint)));
    }
  }}, field("admin-token", "Operator token", input, "An operator token (GENLINE_ADMIN_TOKENS) with platform:read; billing:read shows margins, calibration:read calibration."),
  h("button", {type: "submit", text: "Open operator view"}), problem);
  show(h("h1", {text: "Operator view"}), h("section", {}, form));
  input.focus();
}

function drawProviders(providers) {
  return table([["Provider"], ["Breaker"], ["Price / image", "num"], ["Pass rate by template"], ["In flight", "num"],
    ["Latency", "num"], ["Calls / failures", "num"], ["Quality breakers"]], providers.map((p) => h("tr", {"data-provider": p.name},
    h("th", {scope: "row"}, p.name, h("div", {class: "muted", text: p.adapter})),
    h("td", {}, badge(p.state)),
    h("td", {class: "num", text: usd(p.price_micro_usd)}),
    h("td", {}, h("ul", {class: "compact"}, Object.entries(p.pass_rates).map(([t, r]) =>
      h("li", {text: `${t} ${(r * 100).toFixed(0)}%`})))),
    h("td", {class: "num", text: `${p.in_flight} / ${p.concurrency_limit}`}),
    h("td", {class: "num", text: `${p.latency_estimate_s.toFixed(2)} s`}),
    h("td", {class: "num", text: `${p.calls} / ${p.failures}`}),
    h("td", {text: Object.entries(p.quality).filter(([, q]) => q.state !== "closed")
      .map(([t, q]) => `${t}: ${q.state} (${q.reason})`).join("; ") || "all closed"}))), "Providers", true);
}

function drawDeadLetters(dead) {
  return [h("p", {}, "Messages a service gave up on after its retries: ", h("strong", {"data-testid": "dead-total", text: dead.total})),
    table([["Topic"], ["Messages", "num"]], Object.entries(dead.topics).map(([topic, count]) => h("tr", {},
      h("td", {class: "mono", text: topic}), h("td", {class: "num", text: count}))), "Dead-letter topics")];
}

function drawMargins(rows) {
  if (!rows.length) return h("p", {class: "muted", text: "No job was settled in the last 30 days."});
  return table([["Template"], ["Jobs", "num"], ["Credits charged", "num"], ["Revenue", "num"], ["Provider cost", "num"],
    ["Margin", "num"], ["Cost by stage"]], rows.map((row) => h("tr", {"data-template": row.template},
    h("th", {scope: "row", text: row.template}), h("td", {class: "num", text: row.jobs}),
    h("td", {class: "num", text: row.charged_credits}), h("td", {class: "num", text: usd(row.revenue_micro_usd)}),
    h("td", {class: "num", text: usd(row.provider_cost_micro_usd)}),
    h("td", {class: "num", "data-testid": `margin-${row.template}`, text: usd(row.margin_micro_usd)}),
    h("td", {text: Object.entries(row.stage_cost_micro_usd || {}).map(([stage, cost]) => `${stage} ${usd(cost)}`).join(", ") || "—"}))),
  "Margin per template", true);
}

function calibrationForm() {
  const tenant = h("input", {type: "text", name: "tenant_id", required: true, maxlength: "63"});
  const result = h("div");
  const form = h("form", {class: "filters", onsubmit: async (event) => {
    event.preventDefault();
    try {
      const report = await api(`/admin/v1/calibration?tenant_id=${encodeURIComponent(tenant.value)}`, {admin: true});
      result.replaceChildren(drawCalibration(report));
    } catch (error) {
      result.replaceChildren(errorBox(error));
    }
  }}, field("calibration-tenant", "Tenant", tenant), h("button", {type: "submit", text: "Show calibration"}));
  return h("div", {}, form, result);
}

function drawCalibration(report) {
  if (!report.dimensions.length) return h("p", {class: "muted", text: `No delivered images of ${report.tenant_id} in the last 30 days.`});
  return h("div", {}, h("p", {text: `${report.images} delivered images, ${report.reported_bad} reported bad.`}),
    table([["Profile"], ["Dimension"], ["Images", "num"], ["Bad", "num"], ["Pass rate", "num"], ["Bad passed", "num"],
      ["Threshold", "num"], ["Suggested", "num"]], report.dimensions.map((d) => h("tr", {},
      h("td", {text: d.profile}), h("td", {text: d.dimension}), h("td", {class: "num", text: d.images}),
      h("td", {class: "num", text: d.bad}), h("td", {class: "num", text: `${(d.pass_rate * 100).toFixed(0)}%`}),
      h("td", {class: "num", text: d.bad_passed}), h("td", {class: "num", text: format(d.threshold)}),
      h("td", {class: "num", text: d.suggested_threshold === null ? "—" : format(d.suggested_threshold)}))), "Calibration by dimension", true));
}
