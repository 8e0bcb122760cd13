// The Genline console: one page that draws itself from the path (/console/jobs,
// /console/jobs/{id}, /console/new, /console/subjects, /console/subjects/{id}, /console/usage, /console/account, /console/verify,
// /console/operator) with
// data from the public /v1 API (and /admin/v1 on the operator view). The API key lives in
// this tab's sessionStorage only. Each page is a module of its own; this one signs in and out and
// sends each path to its page.
import {accountPage} from "./account.js";
import {ADMIN_TOKEN, KEY, api, forgetCatalogue} from "./api.js";
import {announce, errorBox, field, h, show} from "./dom.js";
import {jobPage} from "./job.js";
import {jobsPage, newJobPage} from "./jobs.js";
import {drawPagesWith, navigate, newPage, route} from "./navigation.js";
import {operatorPage} from "./operator.js";
import {subjectPage, subjectsPage} from "./subjects.js";
import {usagePage} from "./usage.js";
import {verifyPage} from "./verify.js";

document.addEventListener("click", (event) => {
  const link = event.target.closest("a");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey
      || link.target || link.hasAttribute("download") || link.origin !== location.origin
      || !link.pathname.startsWith("/console")) return;
  event.preventDefault();
  navigate(link.pathname + link.search);
});
window.addEventListener("popstate", route);

function draw() {
  newPage();
  const path = location.pathname.replace(/\/+$/, "");
  for (const link of document.querySelectorAll(".top nav a")) {
    const current = path === link.pathname || (link.pathname !== "/docs/" && path.startsWith(`${link.pathname}/`));
    if (current) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  const signOut =

document.getElementById("sign-out");
  signOut.hidden = !sessionStorage.getItem(KEY) && !sessionStorage.getItem(ADMIN_TOKEN);
  if (path === "/console/operator") return operatorPage();
  if (path === "/console/verify") return verifyPage();
  if (!sessionStorage.getItem(KEY)) return signInPage();
  const job = path.match(/^\/console\/jobs\/([^/]+)$/);
  if (job) return jobPage(decodeURIComponent(job[1]));
  if (path === "/console/new") return newJobPage();
  const subject = path.match(/^\/console\/subjects\/([^/]+)$/);
  if (subject) return subjectPage(decodeURIComponent(subject[1]));
  if (path === "/console/subjects") return subjectsPage();
  if (path === "/console/account") return accountPage();
  if (path === "/console/usage") return usagePage();
  return jobsPage();
}

document.getElementById("sign-out").addEventListener("click", () => {
  forgetCatalogue();
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(ADMIN_TOKEN);
  announce("Signed out");
  navigate("/console/jobs");
});

function signInPage() {
  document.title = "Sign in · Genline";
  const input = h("input", {type: "password", name: "api-key", autocomplete: "off", required: true, spellcheck: "false"});
  const problem = h("div");
  const form = h("form", {onsubmit: async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, input.value.trim());
    try {
      await api("/v1/jobs?limit=1");
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
  show(h("h1", {text: "Sign in"}), h("section", {}, form));
  input.focus();
}

drawPagesWith(draw);
route();
