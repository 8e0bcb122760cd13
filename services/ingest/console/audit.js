// The audit log page (audit:read): who did what to the organization's account, from where and
// when, newest first, filtered by action; and the same as CSV.
import {api} from "./api.js";
import {fill, h, show, table, when} from "./dom.js";

export async function auditPage() {
  document.title = "Audit log · Genline";
  const action = new URLSearchParams(location.search).get("action") || "";
  const query = new URLSearchParams({limit: "200", ...(action ? {action} : {})});
  const section = h("section", {});
  show(h("h1", {text: "Audit log"}),
    h("p", {}, h("a", {href: `/v1/audit/export?${query}`, download: "audit.csv", text: "Download as CSV"})), section);
  await fill(section, async () => {
    const {entries} = await api(`/v1/audit?${query}`);
    return table([["When"], ["Who"], ["From"], ["Action"], ["Target"]], entries.map((e) =>
      h("tr", {"data-testid": `audit-${e.action}`}, h("td", {text: when(e.at)}),
        h("td", {text: e.details.actor_email || e.actor}), h("td", {text: e.origin || "—"}), h("td", {text: e.action}),
        h("td", {text: e.target}))), "Audit log", true);
  });
}
