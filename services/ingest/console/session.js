// Who is signed in: an API key kept in this tab, or a console session (its cookie is HttpOnly;
// the server answers GET /v1/me), with the scopes their role gives. Pages and links the role
// does not allow are not offered, and a page reached anyway says so instead of drawing.
import {KEY, api} from "./api.js";
import {h, show} from "./dom.js";

let caller = null; // GET /v1/me, read once a sign-in

// The scope each page needs (its routes declare the same ones to the API).
export const PAGE_SCOPES = {
  "/console/new": "jobs:write", "/console/jobs": "jobs:read", "/console/subjects": "jobs:read", "/console/usage": "account:read",
  "/console/account": "account:read", "/console/members": "members:manage", "/console/audit": "audit:read",
};

export async function whoAmI() {
  if (caller) return caller;
  try {
    caller = await api("/v1/me", {signal: new AbortController().signal});
  } catch (error) {
    if (error.status !== 401) throw error;
    caller = null;
  }
  return caller;
}

export function forgetCaller() {
  caller = null;
}

export function can(scope) {
  return Boolean(caller && caller.scopes.includes(scope));
}

export function viaSession() {
  return Boolean(caller && caller.via === "session") && !sessionStorage.getItem(KEY);
}

export function roleName() {
  return caller && caller.member ? caller.member.role : "this API key";
}

// A page the caller's role does not allow: refused, naming the role and what it lacks.
export function refused(path) {
  const scope = PAGE_SCOPES[path] || (/^\/console\/(jobs|subjects)\//.test(path) ? "jobs:read" : null);
  if (!scope || can(scope)) return false;
  document.title = "Not allowed · Genline";
  show(h("h1", {text: "Not allowed"}), h("p", {class: "notice", role: "alert", "data-testid": "refused",
    text: `The role ${roleName()} does not allow this page (it needs ${scope}).`}));
  return true;
}

// The console's navigation shows only the pages the caller may open.
export function offerPages() {
  for (const link of document.querySelectorAll(".top nav a")) {
    const scope = PAGE_SCOPES[link.pathname];
    const li = link.closest("li");
    if (li) li.hidden = Boolean(caller && scope && !can(scope));
  }
}
