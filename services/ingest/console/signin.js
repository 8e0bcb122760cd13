// Signing in: through the organization's identity provider (single sign-on), by a link mailed
// to a member of an organization without one, or with an API key kept in this tab; following
// a mailed sign-in link; and accepting an invitation (through the provider where there is one).
import {ApiError, KEY, api} from "./api.js";
import {announce, errorBox, field, h, show} from "./dom.js";
import {navigate, route} from "./navigation.js";
import {forgetCaller} from "./session.js";

function providerStart(tenant, extra = {}) {
  const query = new URLSearchParams({return_to: "/console/jobs", ...extra});
  return `/v1/sso/${encodeURIComponent(tenant)}/start?${query}`;
}

export function signInPage() {
  document.title = "Sign in · Genline";
  const said = new URLSearchParams(location.search);
  const failure = said.get("error") ? h("p", {class: "error", role: "alert", "data-testid": "sign-in-error",
    text: `Sign-in refused: ${said.get("detail") || said.get("error")}`}) : null;
  show(h("h1", {text: "Sign in"}), failure, organizationForm(), keyForm());
}

function organizationForm() {
  const tenant = h("input", {name: "organization", autocomplete: "organization", required: true, spellcheck: "false"});
  const email = h("input", {type: "email", name: "email", autocomplete: "email"});
  const outcome = h("div", {"aria-live": "polite"});
  const form = h("form", {onsubmit: async (event) => {
    event.preventDefault();
    if (!email.value) return location.assign(providerStart(tenant.value.trim()));
    try {
      await api("/v1/sessions/email-link", {method: "POST", body: {tenant_id: tenant.value.trim(), email: email.value}});
      outcome.replaceChildren(h("p", {class: "notice", text: "If this address is a member's, a sign-in link is on its way."}));
    } catch (error) {
      if (error instanceof ApiError && error.problem.start) return location.assign(providerStart(tenant.value.trim()));
      outcome.replaceChildren(errorBox(error));
    }
  }},
  field("organization", "Organization", tenant, "Your organization's id on this Genline."),
  field("email", "Email", email, "Leave empty to sign in through your organization's identity provider."),
  h("button", {type: "submit", text: "Continue"}), outcome);
  return h("section", {}, h("h2", {text: "With your organization"}), form);
}

function keyForm() {
  const input = h("input", {type: "password", name: "api-key", autocomplete: "off", required: true, spellcheck: "false"});
  const problem = h("div");
  const form = h("form", {onsubmit: async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, input.value.trim());
    forgetCaller();
    try {
      await api("/v1/me");
      announce("Signed in");
      route();
    } catch (error) {
      sessionStorage.removeItem(KEY);
      problem.replaceChildren(errorBox(error));
      input.focus();
    }
  }},
  field("api-key", "API key", input, "Kept in this browser tab only, and sent only to this server."),
  h("button", {type: "submit", text: "Sign in"}), problem);
  return h("section", {}, h("h2", {text: "With an API key"}), form);
}

// /console/sign-in/link#<token>: the link mailed to a member.
export async function signInLinkPage() {
  document.title = "Signing in · Genline";
  const token = location.hash.slice(1);
  history.replaceState(null, "", "/console/sign-in/link"); // the token leaves the address bar
  show(h("h1", {text: "Signing in"}));
  try {
    await api("/v1/sessions/email-link/redeem", {method: "POST", body: {token}});
    forgetCaller();
    navigate("/console/jobs");
  } catch (error) {
    show(h("h1", {text: "Sign-in link"}), errorBox(error));
  }
}

// /console/invitation#<token>: what the invitation offers, and accepting it.
export async function invitationPage() {
  document.title = "Invitation · Genline";
  const token = location.hash.slice(1) || sessionStorage.getItem("genline.invitation") || "";
  sessionStorage.setItem("genline.invitation", token);
  history.replaceState(null, "", "/console/invitation");
  let invitation;
  try {
    invitation = await api("/v1/invitation-links/lookup", {method: "POST", body: {token}});
  } catch (error) {
    return show(h("h1", {text: "Invitation"}), errorBox(error));
  }
  const problem = h("div");
  const accept = invitation.sso
    ? h("a", {class: "button", href: providerStart(invitation.tenant_id, {invitation: token}),
      text: "Continue with your identity provider"})
    : h("button", {type: "button", text: "Accept and sign in", onclick: async () => {
      try {
        await api("/v1/invitation-links/accept", {method: "POST", body: {token}});
        sessionStorage.removeItem("genline.invitation");
        forgetCaller();
        navigate("/console/jobs");
      } catch (error) {
        problem.replaceChildren(errorBox(error));
      }
    }});
  show(h("h1", {text: `Join ${invitation.tenant_id}`}),
    h("p", {"data-testid": "invitation", text: `${invitation.email} is invited as ${invitation.role}.`}), accept, problem);
}
