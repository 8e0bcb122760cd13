// The members page (members:manage): who is in the organization and in which role (changed or
// removed here), invitations by mail (made, listed, revoked), service accounts, and, for
// owners (sso:manage), the organization's identity provider.
import {api} from "./api.js";
import {announce, errorBox, field, fill, h, select, show, table, when} from "./dom.js";
import {route} from "./navigation.js";
import {can} from "./session.js";

let roleTable = null;

async function grantable() {
  roleTable = roleTable || await api("/v1/roles");
  return roleTable.roles; // the server refuses a role beyond the caller's own, and says so
}

export async function membersPage() {
  document.title = "Members · Genline";
  const members = h("section", {}, h("h2", {text: "Members"}));
  const invitations = h("section", {}, h("h2", {text: "Invitations"}));
  const robots = h("section", {}, h("h2", {text: "Service accounts"}));
  const sso = can("sso:manage") ? h("section", {}, h("h2", {text: "Single sign-on"})) : null;
  show(h("h1", {text: "Members"}), members, invitations, robots, sso);
  const roles = await grantable();
  await Promise.all([
    fill(members, async () => drawMembers((await api("/v1/members")).data, roles)),
    fill(invitations, async () => [inviteForm(roles), ...drawInvitations((await api("/v1/invitations")).data)]),
    fill(robots, async () => serviceAccountForm(roles)),
    sso && fill(sso, async () => ssoForm(await api("/v1/sso").catch((error) => {
      if (error.status === 404) return null;
      throw error;
    }))),
  ]);
}

function act(problem, work, said) {
  return async (event) => {
    event.preventDefault();
    try {
      await work(event);
      announce(said);
      route();
    } catch (error) {
      problem.replaceChildren(errorBox(error));
    }
  };
}

function drawMembers(members, roles) {
  const problem = h("div");
  const rows = members.map((m) => {
    const choose = select("role", roles.map((r) => [r.name, r.name]), m.role);
    choose.setAttribute("aria-label", `Role of ${m.email || m.name}`);
    choose.addEventListener("change", act(problem, () => api(`/v1/members/${m.id}/role`,
      {method: "PUT", body: {role: choose.value}}), "Role changed"));
    const remove = h("button", {type: "button", text: "Remove", "aria-label": `Remove ${m.email || m.name}`,
      onclick: act(problem, () => api(`/v1/members/${m.id}`, {method: "DELETE"}), "Member removed")});
    return h("tr", {"data-testid": `member-${m.email || m.name}`}, h("td", {text: m.email || m.name}),
      h("td", {text: m.kind === "service" ? "service account" : "person"}), h("td", {}, choose),
      h("td", {class: "num", text: m.keys ?? 0}), h("td", {}, remove));
  });
  return [table([["Member"], ["Kind"], ["Role"], ["Keys", "num"], [""]], rows, "Members"), problem];
}

function inviteForm(roles) {
  const email = h("input", {type: "email", name: "email", required: true});
  const role = select("role", roles.filter((r) => r.name !== "owner" || can("sso:manage")).map((r) => [r.name, r.name]),
    "developer");
  const problem = h("div");
  return h("form", {onsubmit: act(problem, () => api("/v1/invitations", {method: "POST",
    body: {email: email.value, role: role.value}}), "Invitation sent")},
  field("invite-email", "Email", email), field("invite-role", "Role", role),
  h("button", {type: "submit", text: "Send invitation"}), problem);
}

function drawInvitations(invitations) {
  const problem = h("div");
  if (!invitations.length) return [h("p", {text: "No open invitations."})];
  const rows = invitations.map((i) => h("tr", {"data-testid": `invitation-${i.email}`}, h("td", {text: i.email}),
    h("td", {text: i.role}), h("td", {text: i.mailed ? "mailed" : `not mailed: ${i.mail_error}`}),
    h("td", {text: when(i.expires_at)}), h("td", {}, h("button", {type: "button", text: "Revoke",
      onclick: act(problem, () => api(`/v1/invitations/${i.id}`, {method: "DELETE"}), "Invitation revoked")}))));
  return [table([["Email"], ["Role"], ["Mail"], ["Expires"], [""]], rows, "Open invitations"), problem];
}

function serviceAccountForm(roles) {
  const name = h("input", {name: "name", required: true});
  const role = select("role", roles.filter((r) => r.name !== "owner").map((r) => [r.name, r.name]), "developer");
  const problem = h("div");
  return h("form", {onsubmit: act(problem, () => api("/v1/service-accounts", {method: "POST",
    body: {name: name.value, role: role.value}}), "Service account added")},
  h("p", {text: "A service account is no person: it owns API keys for machines, which outlive any member."}),
  field("robot-name", "Name", name), field("robot-role", "Role", role),
  h("button", {type: "submit", text: "Add service account"}), problem);
}

function ssoForm(current) {
  const value = (v) => (v === null || v === undefined ? "" : String(v));
  const issuer = h("input", {name: "issuer", type: "url", required: true, value: value(current?.issuer)});
  const client = h("input", {name: "client_id", required: true, value: value(current?.client_id)});
  const secret = h("input", {name: "client_secret", type: "password", required: true, autocomplete: "off"});
  const domains = h("input", {name: "domains", value: value(current?.allowed_domains?.join(", "))});
  const groups = h("input", {name: "groups", value: value(current ? Object.entries(current.group_roles)
    .map(([g, r]) => `${g}=${r}`).join(", ") : "")});
  const jit = h("input", {type: "checkbox", name: "jit", checked: Boolean(current?.just_in_time)});
  const problem = h("div");
  const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);
  return h("form", {onsubmit: act(problem, () => api("/v1/sso", {method: "PUT", body: {
    issuer: issuer.value, client_id: client.value, client_secret: secret.value, allowed_domains: list(domains.value),
    group_roles: Object.fromEntries(list(groups.value).map((pair) => pair.split("=").map((s) => s.trim()))),
    just_in_time: jit.checked}}), "Single sign-on saved")},
  current ? h("p", {text: `Redirect URI to register at the provider: ${current.redirect_uri}`}) : null,
  field("sso-issuer", "Issuer", issuer), field("sso-client", "Client id", client),
  field("sso-secret", "Client secret", secret, "Kept wrapped on the server; never shown again."),
  field("sso-domains", "Allowed email domains", domains, "Comma-separated; any when empty."),
  field("sso-groups", "Group roles", groups, "group=role pairs, comma-separated."),
  field("sso-jit", "Members join on first sign-in", jit),
  h("button", {type: "submit", text: "Save single sign-on"}), problem);
}
